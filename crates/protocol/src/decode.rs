//! Decoding: finding one packet at the front of a byte buffer (the fixed header, the size limit)
//! and parsing it into a [`Packet`], enforcing the malformed-packet and protocol-error rules of
//! MQTT 3.1.1 and 5.0.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Packet, PacketKind, PubAck, Publish, PublishProperties,
    SubAck, Subscribe, UnsubAck, Unsubscribe, Will, WillProperties,
};
use crate::property;
use crate::topic::{TopicError, TopicFilter, TopicName};
use crate::types::{
    PacketId, ProtocolVersion, PublishQos, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};
use crate::wire::{Reader, Result};

/// The largest packet MQTT can express: a 4-byte remaining length of 268,435,455 plus the
/// fixed header.
pub const MAX_PACKET_SIZE: u32 = 268_435_460;

/// Limits the decoder enforces before it allocates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest acceptable packet, fixed header included.
    pub max_packet_size: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_packet_size: MAX_PACKET_SIZE,
        }
    }
}

/// Decode one packet from the front of `buf`. `Ok(None)` = need more bytes (buf untouched).
///
/// On `Ok(Some(p))` the packet's bytes are consumed (split_to + freeze so payloads are zero-copy
/// `Bytes`). `version`: `None` before CONNECT has been decoded (then only CONNECT is acceptable:
/// any other first packet is `Err(ProtocolError)`); afterwards `Some(the CONNECT's version)`, which
/// decides the v3/v5 layout. The remaining length is checked against `limits.max_packet_size` as
/// soon as the fixed header is complete, BEFORE waiting for/allocating the body ->
/// `Err(DecodeError::PacketTooLarge)`. After an error the connection must be closed; how much of
/// `buf` was consumed is unspecified.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    limits: &DecodeLimits,
) -> std::result::Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // Everything the first byte can tell is checked before waiting for more.
    let kind = check_first_byte(first, version)?;
    let Some((header_len, size)) = frame_size(buf, limits)? else {
        return Ok(None);
    };
    if buf.len() < size {
        return Ok(None);
    }
    let frame = buf.split_to(size).freeze();
    decode_body(kind, first, frame, header_len, version).map(Some)
}

/// The size of the packet at the front of `buf` (fixed header included) once its fixed header is
/// complete, checked against `limits`. Useful to reserve buffer space for a large packet.
pub fn peek_size(
    buf: &[u8],
    limits: &DecodeLimits,
) -> std::result::Result<Option<usize>, DecodeError> {
    Ok(frame_size(buf, limits)?.map(|(_, size)| size))
}

/// `Some((fixed header length, whole packet size))` once the fixed header has arrived, with the
/// size checked against the limit.
fn frame_size(buf: &[u8], limits: &DecodeLimits) -> Result<Option<(usize, usize)>> {
    let Some((header_len, remaining)) = fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header_len + remaining;
    if size > limits.max_packet_size as usize {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: limits.max_packet_size,
        });
    }
    Ok(Some((header_len, size)))
}

/// Parses the Remaining Length after the first byte: `Some((header length, remaining length))`,
/// or `None` if it hasn't fully arrived. Its fifth byte would be malformed (MQTT 5 §1.5.5).
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((2 + i, remaining)));
        }
    }
    Err(DecodeError::MalformedPacket(
        "remaining length longer than four bytes",
    ))
}

/// The checks the first byte alone allows: reserved types, the reserved flag bits
/// [MQTT-2.1.3-1], QoS 3 [MQTT-3.3.1-4], DUP on QoS 0 [MQTT-3.3.1-2], and CONNECT being first and
/// only [MQTT-3.1.0-1, MQTT-3.1.0-2].
fn check_first_byte(first: u8, version: Option<ProtocolVersion>) -> Result<PacketKind> {
    let flags = first & 0x0F;
    let kind = PacketKind::from_type(first >> 4)
        .ok_or(DecodeError::MalformedPacket("reserved packet type 0"))?;
    match (version, kind) {
        (None, PacketKind::Connect) => {}
        (None, _) => {
            return Err(DecodeError::ProtocolError("first packet is not CONNECT"));
        }
        (Some(_), PacketKind::Connect) => {
            return Err(DecodeError::ProtocolError("second CONNECT packet"));
        }
        (Some(v), PacketKind::Auth) if !v.is_v5() => {
            return Err(DecodeError::MalformedPacket(
                "reserved packet type 15 (AUTH) in MQTT 3.1.1",
            ));
        }
        (Some(_), _) => {}
    }
    match kind {
        PacketKind::Publish => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::MalformedPacket("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::MalformedPacket(
                    "PUBLISH with QoS 0 and DUP set",
                ));
            }
        }
        PacketKind::PubRel | PacketKind::Subscribe | PacketKind::Unsubscribe => {
            if flags != 0b0010 {
                return Err(DecodeError::MalformedPacket(
                    "fixed header flags of PUBREL, SUBSCRIBE or UNSUBSCRIBE are not 0010",
                ));
            }
        }
        _ => {
            if flags != 0 {
                return Err(DecodeError::MalformedPacket(
                    "reserved fixed header flags are not 0",
                ));
            }
        }
    }
    Ok(kind)
}

/// Parses the variable header and payload of a packet of `kind`, whose bytes are `frame` with the
/// variable header starting at `header_len`.
fn decode_body(
    kind: PacketKind,
    first: u8,
    frame: Bytes,
    header_len: usize,
    version: Option<ProtocolVersion>,
) -> Result<Packet> {
    let v5 = version.is_some_and(ProtocolVersion::is_v5);
    if kind == PacketKind::Publish {
        // The hot path: the frame itself becomes the payload, saving a reference count round trip.
        return decode_publish(first, frame, header_len, v5).map(Packet::Publish);
    }
    let r = &mut Reader::new(&frame, header_len, frame.len());
    Ok(match kind {
        PacketKind::Connect => Packet::Connect(Box::new(decode_connect(r)?)),
        PacketKind::ConnAck => Packet::ConnAck(decode_connack(r, v5)?),
        PacketKind::Publish => {
            Packet::Publish(decode_publish(first, frame.clone(), header_len, v5)?)
        }
        PacketKind::PubAck => Packet::PubAck(decode_puback(r, v5, kind)?),
        PacketKind::PubRec => Packet::PubRec(decode_puback(r, v5, kind)?),
        PacketKind::PubRel => Packet::PubRel(decode_puback(r, v5, kind)?),
        PacketKind::PubComp => Packet::PubComp(decode_puback(r, v5, kind)?),
        PacketKind::Subscribe => Packet::Subscribe(decode_subscribe(r, v5)?),
        PacketKind::SubAck => Packet::SubAck(decode_suback(r, v5)?),
        PacketKind::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(r, v5)?),
        PacketKind::UnsubAck => Packet::UnsubAck(decode_unsuback(r, v5)?),
        PacketKind::PingReq => {
            r.expect_end("PINGREQ with a non-zero remaining length")?;
            Packet::PingReq
        }
        PacketKind::PingResp => {
            r.expect_end("PINGRESP with a non-zero remaining length")?;
            Packet::PingResp
        }
        PacketKind::Disconnect => Packet::Disconnect(decode_disconnect(r, v5)?),
        PacketKind::Auth => Packet::Auth(decode_auth(r)?),
    })
}

/// A Packet Identifier; 0 is refused [MQTT-2.2.1-3].
#[inline]
fn packet_id(r: &mut Reader<'_>) -> Result<PacketId> {
    let id = r.u16("truncated packet identifier")?;
    PacketId::new(id).ok_or(DecodeError::ProtocolError("packet identifier 0"))
}

/// Whether a v5 packet of `kind` may carry reason code `code` (the tables of MQTT 5 §3.x).
fn valid_reason(kind: PacketKind, code: u8) -> bool {
    match kind {
        PacketKind::ConnAck => matches!(
            code,
            0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
        ),
        PacketKind::PubAck | PacketKind::PubRec => {
            matches!(
                code,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            )
        }
        PacketKind::PubRel | PacketKind::PubComp => matches!(code, 0x00 | 0x92),
        PacketKind::SubAck => matches!(
            code,
            0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
        PacketKind::UnsubAck => matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
        PacketKind::Disconnect => matches!(
            code,
            0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2
        ),
        PacketKind::Auth => matches!(code, 0x00 | 0x18 | 0x19),
        _ => false,
    }
}

/// Reads a v5 reason code and checks it belongs to `kind`'s table.
fn reason(r: &mut Reader<'_>, kind: PacketKind, err: &'static str) -> Result<ReasonCode> {
    let code = r.u8("truncated reason code")?;
    if valid_reason(kind, code) {
        Ok(ReasonCode(code))
    } else {
        Err(DecodeError::MalformedPacket(err))
    }
}

/// Fails if a payload the Payload Format Indicator marks as UTF-8 isn't [MQTT-3.3.2-4].
fn check_payload_format(indicator: Option<bool>, payload: &[u8]) -> Result<()> {
    if indicator == Some(true) && std::str::from_utf8(payload).is_err() {
        return Err(DecodeError::PayloadFormatInvalid);
    }
    Ok(())
}

/// The topic name error for a PUBLISH or will topic.
fn name_error(error: TopicError) -> DecodeError {
    DecodeError::TopicNameInvalid(match error {
        TopicError::Empty => "empty topic name",
        TopicError::Wildcard => "topic name contains '+' or '#'",
        _ => "topic name is not valid",
    })
}

/// A syntactically invalid filter makes SUBSCRIBE/UNSUBSCRIBE malformed [MQTT-4.7.1-1,
/// MQTT-4.7.1-2, MQTT-4.7.3-1]; reason 0x8F is for filters that parse but are refused.
fn filter_error(error: TopicError) -> DecodeError {
    DecodeError::MalformedPacket(match error {
        TopicError::Empty => "empty topic filter",
        TopicError::InvalidWildcard => "topic filter uses '+' or '#' other than as a whole level",
        _ => "topic filter is not valid",
    })
}

/// CONNECT (MQTT 5 §3.1, MQTT 3.1.1 §3.1). The protocol level comes from the packet itself.
fn decode_connect(r: &mut Reader<'_>) -> Result<Connect> {
    let name_len = r.u16("truncated protocol name")?;
    let name = r.take(usize::from(name_len), "truncated protocol name")?;
    let level = r.u8("truncated protocol level")?;
    let protocol = match (name, level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        (b"MQTT" | b"MQIsdp", level) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let v5 = protocol.is_v5();

    let flags = r.u8("truncated connect flags")?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::MalformedPacket("reserved connect flag is set"));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos =
        QoS::from_u8((flags >> 3) & 0b11).ok_or(DecodeError::MalformedPacket("will QoS 3"))?;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::MalformedPacket(
            "will QoS or will retain set without the will flag",
        ));
    }
    if !v5 && password_flag && !username_flag {
        return Err(DecodeError::MalformedPacket(
            "password flag set without the user name flag",
        ));
    }
    let keep_alive = r.u16("truncated keep alive")?;
    let properties = if v5 {
        property::decode_connect(r)?
    } else {
        ConnectProperties::default()
    };

    let client_id = r.string()?;
    let will = if will_flag {
        let will_properties = if v5 {
            property::decode_will(r)?
        } else {
            WillProperties::default()
        };
        let topic = TopicName::new(r.str()?).map_err(name_error)?;
        let payload = r.binary()?;
        check_payload_format(will_properties.payload_format_indicator, &payload)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    r.expect_end("bytes after the last CONNECT field")?;
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// CONNACK (MQTT 5 §3.2, MQTT 3.1.1 §3.2).
fn decode_connack(r: &mut Reader<'_>, v5: bool) -> Result<ConnAck> {
    let flags = r.u8("truncated connect acknowledge flags")?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::MalformedPacket(
            "reserved connect acknowledge flags are set",
        ));
    }
    let (reason, properties) = if v5 {
        let reason = reason(r, PacketKind::ConnAck, "reason code not allowed in CONNACK")?;
        (reason, property::decode_connack(r)?)
    } else {
        let code = r.u8("truncated connect return code")?;
        let reason = ReasonCode::from_v311_connack(code)
            .ok_or(DecodeError::MalformedPacket("unknown connect return code"))?;
        (reason, ConnAckProperties::default())
    };
    r.expect_end("bytes after the last CONNACK field")?;
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        reason,
        properties,
    })
}

/// PUBLISH (MQTT 5 §3.3, MQTT 3.1.1 §3.3) from `frame`, whose variable header starts at
/// `header_len`; the first byte was checked by `check_first_byte`. The payload is what remains of
/// `frame`.
fn decode_publish(first: u8, mut frame: Bytes, header_len: usize, v5: bool) -> Result<Publish> {
    let qos = QoS::from_u8((first >> 1) & 0b11)
        .ok_or(DecodeError::MalformedPacket("PUBLISH with QoS 3"))?;
    let mut r = Reader::new(&frame, header_len, frame.len());
    let topic = r.str()?;
    let qos = match qos {
        QoS::AtMostOnce => PublishQos::AtMostOnce,
        QoS::AtLeastOnce => PublishQos::AtLeastOnce(packet_id(&mut r)?),
        QoS::ExactlyOnce => PublishQos::ExactlyOnce(packet_id(&mut r)?),
    };
    let properties = if v5 {
        property::decode_publish(&mut r)?
    } else {
        PublishProperties::default()
    };
    let topic = if topic.is_empty() {
        // An empty topic is only a reference to a Topic Alias (MQTT 5 §3.3.2.3.4).
        if !v5 {
            return Err(DecodeError::TopicNameInvalid("empty topic name"));
        }
        if properties.topic_alias.is_none() {
            return Err(DecodeError::ProtocolError(
                "empty topic name without a Topic Alias",
            ));
        }
        None
    } else {
        Some(TopicName::new(topic).map_err(name_error)?)
    };
    let payload_start = r.position();
    frame.advance(payload_start);
    let payload = frame;
    check_payload_format(properties.payload_format_indicator, &payload)?;
    Ok(Publish {
        dup: first & 0x08 != 0,
        qos,
        retain: first & 0x01 != 0,
        topic,
        properties,
        payload,
    })
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP. In v5 a remaining length of 2 means reason 0x00 without
/// properties, and of 3 a reason without properties (MQTT 5 §3.4.2.1).
fn decode_puback(r: &mut Reader<'_>, v5: bool, kind: PacketKind) -> Result<PubAck> {
    let packet_id = packet_id(r)?;
    let mut reason_code = ReasonCode::SUCCESS;
    let mut properties = AckProperties::default();
    let (bad_reason, misplaced, trailing) = match kind {
        PacketKind::PubAck => (
            "reason code not allowed in PUBACK",
            "property not allowed in PUBACK",
            "bytes after the last PUBACK field",
        ),
        PacketKind::PubRec => (
            "reason code not allowed in PUBREC",
            "property not allowed in PUBREC",
            "bytes after the last PUBREC field",
        ),
        PacketKind::PubRel => (
            "reason code not allowed in PUBREL",
            "property not allowed in PUBREL",
            "bytes after the last PUBREL field",
        ),
        _ => (
            "reason code not allowed in PUBCOMP",
            "property not allowed in PUBCOMP",
            "bytes after the last PUBCOMP field",
        ),
    };
    if v5 && !r.is_empty() {
        reason_code = reason(r, kind, bad_reason)?;
        if !r.is_empty() {
            properties = property::decode_ack(r, misplaced)?;
        }
    }
    r.expect_end(trailing)?;
    Ok(PubAck {
        packet_id,
        reason: reason_code,
        properties,
    })
}

/// SUBSCRIBE (MQTT 5 §3.8, MQTT 3.1.1 §3.8).
fn decode_subscribe(r: &mut Reader<'_>, v5: bool) -> Result<Subscribe> {
    let packet_id = packet_id(r)?;
    let (subscription_identifier, user_properties) = if v5 {
        property::decode_subscribe(r)?
    } else {
        (None, Vec::new())
    };
    let mut filters = Vec::with_capacity(1);
    while !r.is_empty() {
        let filter = TopicFilter::new(r.str()?).map_err(filter_error)?;
        let byte = r.u8("topic filter without subscription options")?;
        let options = if v5 {
            if byte & 0xC0 != 0 {
                return Err(DecodeError::MalformedPacket(
                    "reserved subscription option bits are set",
                ));
            }
            let qos = QoS::from_u8(byte & 0b11)
                .ok_or(DecodeError::ProtocolError("subscription Maximum QoS 3"))?;
            let retain_handling = RetainHandling::from_u8((byte >> 4) & 0b11)
                .ok_or(DecodeError::ProtocolError("Retain Handling 3"))?;
            let no_local = byte & 0x04 != 0;
            if no_local && filter.is_shared() {
                return Err(DecodeError::ProtocolError(
                    "No Local set on a shared subscription",
                ));
            }
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: byte & 0x08 != 0,
                retain_handling,
            }
        } else {
            // MQTT 3.1.1 §3.8.3: the upper six bits are reserved [MQTT-3-8.3-4].
            let qos = QoS::from_u8(byte).ok_or(DecodeError::MalformedPacket(
                "requested QoS byte is not 0, 1 or 2",
            ))?;
            SubscriptionOptions::new(qos)
        };
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::ProtocolError(
            "SUBSCRIBE without topic filters",
        ));
    }
    Ok(Subscribe {
        packet_id,
        subscription_identifier,
        user_properties,
        filters,
    })
}

/// SUBACK (MQTT 5 §3.9, MQTT 3.1.1 §3.9).
fn decode_suback(r: &mut Reader<'_>, v5: bool) -> Result<SubAck> {
    let packet_id = packet_id(r)?;
    let properties = if v5 {
        property::decode_ack(r, "property not allowed in SUBACK")?
    } else {
        AckProperties::default()
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = if v5 {
            reason(r, PacketKind::SubAck, "reason code not allowed in SUBACK")?
        } else {
            match r.u8("truncated return code")? {
                code @ (0..=2 | 0x80) => ReasonCode(code),
                _ => return Err(DecodeError::MalformedPacket("unknown SUBACK return code")),
            }
        };
        reasons.push(code);
    }
    if reasons.is_empty() {
        return Err(DecodeError::ProtocolError("SUBACK without reason codes"));
    }
    Ok(SubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// UNSUBSCRIBE (MQTT 5 §3.10, MQTT 3.1.1 §3.10).
fn decode_unsubscribe(r: &mut Reader<'_>, v5: bool) -> Result<Unsubscribe> {
    let packet_id = packet_id(r)?;
    let user_properties = if v5 {
        property::decode_unsubscribe(r)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::with_capacity(1);
    while !r.is_empty() {
        filters.push(TopicFilter::new(r.str()?).map_err(filter_error)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::ProtocolError(
            "UNSUBSCRIBE without topic filters",
        ));
    }
    Ok(Unsubscribe {
        packet_id,
        user_properties,
        filters,
    })
}

/// UNSUBACK (MQTT 5 §3.11, MQTT 3.1.1 §3.11: just the packet identifier).
fn decode_unsuback(r: &mut Reader<'_>, v5: bool) -> Result<UnsubAck> {
    let packet_id = packet_id(r)?;
    let mut properties = AckProperties::default();
    let mut reasons = Vec::new();
    if v5 {
        properties = property::decode_ack(r, "property not allowed in UNSUBACK")?;
        reasons.reserve_exact(r.remaining());
        while !r.is_empty() {
            reasons.push(reason(
                r,
                PacketKind::UnsubAck,
                "reason code not allowed in UNSUBACK",
            )?);
        }
        if reasons.is_empty() {
            return Err(DecodeError::ProtocolError("UNSUBACK without reason codes"));
        }
    }
    r.expect_end("bytes after the UNSUBACK packet identifier")?;
    Ok(UnsubAck {
        packet_id,
        properties,
        reasons,
    })
}

/// DISCONNECT: empty in 3.1.1; in v5 the reason and properties may be omitted (MQTT 5 §3.14.2).
fn decode_disconnect(r: &mut Reader<'_>, v5: bool) -> Result<Disconnect> {
    let mut disconnect = Disconnect {
        reason: ReasonCode::NORMAL_DISCONNECTION,
        properties: DisconnectProperties::default(),
    };
    if v5 && !r.is_empty() {
        disconnect.reason = reason(
            r,
            PacketKind::Disconnect,
            "reason code not allowed in DISCONNECT",
        )?;
        if !r.is_empty() {
            disconnect.properties = property::decode_disconnect(r)?;
        }
    }
    r.expect_end("bytes after the last DISCONNECT field")?;
    Ok(disconnect)
}

/// AUTH (MQTT 5 §3.15): a remaining length of 0 means Success without properties.
fn decode_auth(r: &mut Reader<'_>) -> Result<Auth> {
    let mut auth = Auth {
        reason: ReasonCode::SUCCESS,
        properties: AuthProperties::default(),
    };
    if !r.is_empty() {
        auth.reason = reason(r, PacketKind::Auth, "reason code not allowed in AUTH")?;
        if !r.is_empty() {
            auth.properties = property::decode_auth(r)?;
        }
    }
    r.expect_end("bytes after the last AUTH field")?;
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_hex(
        bytes: &[u8],
        version: Option<ProtocolVersion>,
    ) -> std::result::Result<Option<Packet>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        decode(&mut buf, version, &DecodeLimits::default())
    }

    #[test]
    fn incomplete_input_leaves_the_buffer_untouched() {
        let mut buf = BytesMut::from(&[0x30, 0x05, 0x00][..]);
        let v5 = Some(ProtocolVersion::V5);
        assert_eq!(decode(&mut buf, v5, &DecodeLimits::default()), Ok(None));
        assert_eq!(&buf[..], &[0x30, 0x05, 0x00]);
        let mut empty = BytesMut::new();
        assert_eq!(decode(&mut empty, v5, &DecodeLimits::default()), Ok(None));
    }

    #[test]
    fn size_limit_is_checked_from_the_fixed_header_alone() {
        // A 2 MiB PUBLISH announced by its fixed header; no body has arrived.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x01][..]);
        let limits = DecodeLimits {
            max_packet_size: 1024,
        };
        assert_eq!(
            decode(&mut buf, Some(ProtocolVersion::V311), &limits),
            Err(DecodeError::PacketTooLarge {
                size: 5 + 2_097_152,
                max: 1024
            })
        );
    }

    #[test]
    fn peek_size_reports_the_whole_packet_once_the_header_is_there() {
        let limits = DecodeLimits::default();
        assert_eq!(peek_size(&[0x30], &limits), Ok(None));
        assert_eq!(peek_size(&[0x30, 0x80], &limits), Ok(None));
        assert_eq!(peek_size(&[0x30, 0x80, 0x01], &limits), Ok(Some(3 + 128)));
        assert_eq!(
            peek_size(
                &[0x30, 0x80, 0x01],
                &DecodeLimits {
                    max_packet_size: 130
                }
            ),
            Err(DecodeError::PacketTooLarge {
                size: 131,
                max: 130
            })
        );
    }

    #[test]
    fn consumes_exactly_one_packet() {
        let mut buf = BytesMut::from(&[0xC0, 0x00, 0xC0, 0x00, 0xC0][..]);
        let v = Some(ProtocolVersion::V311);
        let limits = DecodeLimits::default();
        assert_eq!(decode(&mut buf, v, &limits), Ok(Some(Packet::PingReq)));
        assert_eq!(decode(&mut buf, v, &limits), Ok(Some(Packet::PingReq)));
        assert_eq!(decode(&mut buf, v, &limits), Ok(None));
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn first_packet_must_be_connect() {
        assert_eq!(
            decode_hex(&[0xC0, 0x00], None),
            Err(DecodeError::ProtocolError("first packet is not CONNECT"))
        );
    }

    #[test]
    fn publish_payload_is_a_slice_of_the_input() {
        let mut buf = BytesMut::from(&[0x30, 0x05, 0x00, 0x01, b'a', b'h', b'i'][..]);
        let base = buf.as_ptr() as usize;
        let packet = decode(
            &mut buf,
            Some(ProtocolVersion::V311),
            &DecodeLimits::default(),
        );
        let Ok(Some(Packet::Publish(publish))) = packet else {
            panic!("expected a PUBLISH, got {packet:?}");
        };
        assert_eq!(&publish.payload[..], b"hi");
        assert_eq!(publish.payload.as_ptr() as usize, base + 5);
    }

    #[test]
    fn every_reason_table_accepts_success_except_none() {
        for kind in [
            PacketKind::ConnAck,
            PacketKind::PubAck,
            PacketKind::PubRec,
            PacketKind::PubRel,
            PacketKind::PubComp,
            PacketKind::SubAck,
            PacketKind::UnsubAck,
            PacketKind::Disconnect,
            PacketKind::Auth,
        ] {
            assert!(valid_reason(kind, 0), "{kind}");
            assert!(!valid_reason(kind, 0x03), "{kind}");
        }
        assert!(valid_reason(PacketKind::Disconnect, 0xA2));
        assert!(!valid_reason(PacketKind::Disconnect, 0x8C));
        assert!(valid_reason(PacketKind::ConnAck, 0x8C));
        assert!(!valid_reason(PacketKind::ConnAck, 0x8B));
    }

    #[test]
    fn publish_above_qos_0_without_a_packet_id_is_refused() {
        // QoS 1 and QoS 2 PUBLISHes whose variable header ends after the topic "t".
        for first in [0x32, 0x34] {
            assert_eq!(
                decode_hex(&[first, 3, 0, 1, b't'], Some(ProtocolVersion::V311)),
                Err(DecodeError::MalformedPacket("truncated packet identifier"))
            );
        }
    }

    #[test]
    fn every_publish_qos_round_trips() {
        let id = PacketId::new(0x1234).expect("non-zero");
        for qos in [
            PublishQos::AtMostOnce,
            PublishQos::AtLeastOnce(id),
            PublishQos::ExactlyOnce(id),
        ] {
            for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
                let publish = Publish {
                    dup: false,
                    qos,
                    retain: false,
                    topic: TopicName::new("t").ok(),
                    properties: PublishProperties::default(),
                    payload: Bytes::from_static(b"x"),
                };
                let mut buf = BytesMut::new();
                crate::encode_publish(&publish, version, &mut buf);
                assert_eq!(
                    decode(&mut buf, Some(version), &DecodeLimits::default()),
                    Ok(Some(Packet::Publish(publish)))
                );
            }
        }
    }
}
