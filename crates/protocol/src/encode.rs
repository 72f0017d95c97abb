//! Encoding: writing packets in the MQTT 3.1.1 or 5.0 layout, and computing their exact size
//! without writing them.
//!
//! Every packet's size is computed once by a `*_layout` function that both [`encode`] and
//! [`encoded_len`] use, so the two can't drift apart.

use bytes::{BufMut, BytesMut};

use crate::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PubAck, Publish, PublishProperties, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use crate::property::{EncodeProperties, put_properties, section_len};
use crate::types::{ProtocolVersion, PublishQos, ReasonCode};
use crate::wire::{bin_len, put_bin, put_str, put_varint, str_len, varint_len};

/// The sizes an encoder needs before writing: the remaining length and the property lengths
/// (which are written before the properties themselves).
#[derive(Clone, Copy, Default)]
struct Layout {
    /// The Remaining Length of the fixed header.
    remaining: usize,
    /// The length of the packet's properties (v5).
    properties: usize,
    /// The length of the will properties (v5 CONNECT).
    will_properties: usize,
}

impl Layout {
    /// The whole packet's size.
    #[inline]
    fn total(self) -> usize {
        1 + varint_len(self.remaining) + self.remaining
    }
}

/// Append the packet to `out` in the layout of `version` (v3.1.1 drops properties and reason codes
/// where the v3.1.1 packet has none; CONNACK v3 uses `reason.to_v311_connack()`; SUBACK v3 maps error
/// codes to 0x80). Never panics.
///
/// CONNECT is written in the layout of its own `protocol` field. AUTH does not exist before MQTT 5:
/// in a 3.1.1 layout nothing is written (and [`encoded_len`] is 0).
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    let v5 = version.is_v5();
    match packet {
        Packet::Publish(p) => encode_publish(p, version, out),
        Packet::Connect(c) => encode_connect(c, out),
        Packet::ConnAck(c) => encode_connack(c, v5, out),
        Packet::PubAck(a) => encode_puback(0x40, a, v5, out),
        Packet::PubRec(a) => encode_puback(0x50, a, v5, out),
        Packet::PubRel(a) => encode_puback(0x62, a, v5, out),
        Packet::PubComp(a) => encode_puback(0x70, a, v5, out),
        Packet::Subscribe(s) => encode_subscribe(s, v5, out),
        Packet::SubAck(s) => encode_suback(s, v5, out),
        Packet::Unsubscribe(u) => encode_unsubscribe(u, v5, out),
        Packet::UnsubAck(u) => encode_unsuback(u, v5, out),
        Packet::PingReq => out.put_slice(&[0xC0, 0x00]),
        Packet::PingResp => out.put_slice(&[0xD0, 0x00]),
        Packet::Disconnect(d) => encode_disconnect(d, v5, out),
        Packet::Auth(a) => {
            if v5 {
                encode_auth(a, out);
            }
        }
    }
}

/// The exact encoded size (for honouring the client's Maximum Packet Size before sending).
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let v5 = version.is_v5();
    match packet {
        Packet::Publish(p) => publish_layout(p, v5).total(),
        Packet::Connect(c) => connect_layout(c).total(),
        Packet::ConnAck(c) => connack_layout(c, v5).total(),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            puback_layout(a, v5).total()
        }
        Packet::Subscribe(s) => subscribe_layout(s, v5).total(),
        Packet::SubAck(s) => suback_layout(s, v5).total(),
        Packet::Unsubscribe(u) => unsubscribe_layout(u, v5).total(),
        Packet::UnsubAck(u) => unsuback_layout(u, v5).total(),
        Packet::PingReq | Packet::PingResp => 2,
        Packet::Disconnect(d) => disconnect_layout(d, v5).total(),
        Packet::Auth(a) => {
            if v5 {
                auth_layout(a).total()
            } else {
                0
            }
        }
    }
}

/// The exact encoded size of a PUBLISH (the [`encoded_len`] of [`encode_publish`]).
pub fn encoded_publish_len(publish: &Publish, version: ProtocolVersion) -> usize {
    publish_layout(publish, version.is_v5()).total()
}

/// Reserves room for the whole packet and writes its fixed header.
#[inline]
fn put_header(out: &mut BytesMut, first: u8, layout: Layout) {
    out.reserve(layout.total());
    out.put_u8(first);
    put_varint(out, layout.remaining);
}

// ---- PUBLISH -----------------------------------------------------------------------------------

/// A PUBLISH as borrowed parts: what [`encode_publish_parts`] writes without the caller building
/// a [`Publish`] (a broker sends one message to many subscribers; building one per subscriber
/// clones and drops the topic and payload handles, atomics on lines they all share).
#[derive(Debug, Clone, Copy)]
pub struct PublishParts<'a> {
    /// DUP (ignored at QoS 0).
    pub dup: bool,
    /// QoS and, above QoS 0, the packet identifier.
    pub qos: PublishQos,
    /// RETAIN.
    pub retain: bool,
    /// The topic; empty when a topic alias stands for it.
    pub topic: &'a str,
    /// MQTT 5 properties; `None` is an empty property section (ignored for 3.1.1).
    pub properties: Option<&'a PublishProperties>,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> PublishParts<'a> {
    /// The parts of `p`.
    pub fn of(p: &'a Publish) -> Self {
        Self {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic.as_deref().unwrap_or_default(),
            properties: Some(&p.properties),
            payload: &p.payload,
        }
    }

    /// The size of the encoded PUBLISH.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        self.layout(version.is_v5()).total()
    }

    fn layout(&self, v5: bool) -> Layout {
        let properties = match self.properties {
            Some(props) if v5 => props.encoded_len(),
            _ => 0,
        };
        let mut remaining = str_len(self.topic) + self.payload.len();
        if self.qos.packet_id().is_some() {
            remaining += 2;
        }
        if v5 {
            remaining += section_len(properties);
        }
        Layout {
            remaining,
            properties,
            will_properties: 0,
        }
    }
}

fn publish_layout(p: &Publish, v5: bool) -> Layout {
    PublishParts::of(p).layout(v5)
}

/// Fast path for the broker's hot loop: encode a PUBLISH without building a Packet.
///
/// The packet identifier is written iff QoS > 0 (the type carries one exactly then), and DUP is
/// cleared for QoS 0 [MQTT-3.3.1-2], so the output is always a parseable packet.
pub fn encode_publish(publish: &Publish, version: ProtocolVersion, out: &mut BytesMut) {
    encode_publish_parts(&PublishParts::of(publish), version, out);
}

/// Encodes a PUBLISH from borrowed parts, as [`encode_publish`] does.
pub fn encode_publish_parts(
    parts: &PublishParts<'_>,
    version: ProtocolVersion,
    out: &mut BytesMut,
) {
    let v5 = version.is_v5();
    let layout = parts.layout(v5);
    let packet_id = parts.qos.packet_id();
    let dup = parts.dup && packet_id.is_some();
    let first =
        0x30 | (u8::from(dup) << 3) | (parts.qos.level().as_u8() << 1) | u8::from(parts.retain);
    put_header(out, first, layout);
    put_str(out, parts.topic);
    if let Some(id) = packet_id {
        out.put_u16(id.get());
    }
    if v5 {
        match parts.properties {
            Some(props) => put_properties(out, props, layout.properties),
            None => put_varint(out, 0),
        }
    }
    out.put_slice(parts.payload);
}

// ---- CONNECT / CONNACK -------------------------------------------------------------------------

fn connect_layout(c: &Connect) -> Layout {
    let v5 = c.protocol.is_v5();
    let mut layout = Layout::default();
    // Protocol name, level, flags, keep alive.
    let mut remaining = str_len(c.protocol.protocol_name()) + 1 + 1 + 2;
    if v5 {
        layout.properties = c.properties.encoded_len();
        remaining += section_len(layout.properties);
    }
    remaining += str_len(&c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            layout.will_properties = will.properties.encoded_len();
            remaining += section_len(layout.will_properties);
        }
        remaining += str_len(&will.topic) + bin_len(&will.payload);
    }
    if let Some(username) = &c.username {
        remaining += str_len(username);
    }
    if let Some(password) = &c.password {
        remaining += bin_len(password);
    }
    layout.remaining = remaining;
    layout
}

fn encode_connect(c: &Connect, out: &mut BytesMut) {
    let v5 = c.protocol.is_v5();
    let layout = connect_layout(c);
    put_header(out, 0x10, layout);
    put_str(out, c.protocol.protocol_name());
    out.put_u8(c.protocol.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos.as_u8() << 3) | (u8::from(will.retain) << 5);
    }
    flags |= u8::from(c.password.is_some()) << 6;
    flags |= u8::from(c.username.is_some()) << 7;
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    if v5 {
        put_properties(out, &c.properties, layout.properties);
    }
    put_str(out, &c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            put_properties(out, &will.properties, layout.will_properties);
        }
        put_str(out, &will.topic);
        put_bin(out, &will.payload);
    }
    if let Some(username) = &c.username {
        put_str(out, username);
    }
    if let Some(password) = &c.password {
        put_bin(out, password);
    }
}

fn connack_layout(c: &ConnAck, v5: bool) -> Layout {
    if v5 {
        let properties = c.properties.encoded_len();
        Layout {
            remaining: 2 + section_len(properties),
            properties,
            will_properties: 0,
        }
    } else {
        Layout {
            remaining: 2,
            ..Layout::default()
        }
    }
}

fn encode_connack(c: &ConnAck, v5: bool, out: &mut BytesMut) {
    let layout = connack_layout(c, v5);
    put_header(out, 0x20, layout);
    out.put_u8(u8::from(c.session_present));
    if v5 {
        out.put_u8(c.reason.0);
        put_properties(out, &c.properties, layout.properties);
    } else {
        out.put_u8(c.reason.to_v311_connack());
    }
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP -----------------------------------------------------------

/// v5 omits the reason code when it is Success without properties, and the property length when
/// there are no properties (MQTT 5 §3.4.2.1).
fn puback_layout(a: &PubAck, v5: bool) -> Layout {
    if !v5 {
        return Layout {
            remaining: 2,
            ..Layout::default()
        };
    }
    let properties = a.properties.encoded_len();
    let remaining = match (a.reason == ReasonCode::SUCCESS, properties) {
        (true, 0) => 2,
        (false, 0) => 3,
        _ => 3 + section_len(properties),
    };
    Layout {
        remaining,
        properties,
        will_properties: 0,
    }
}

fn encode_puback(first: u8, a: &PubAck, v5: bool, out: &mut BytesMut) {
    let layout = puback_layout(a, v5);
    put_header(out, first, layout);
    out.put_u16(a.packet_id.get());
    if layout.remaining > 2 {
        out.put_u8(a.reason.0);
    }
    if layout.remaining > 3 {
        put_properties(out, &a.properties, layout.properties);
    }
}

// ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK --------------------------------------------------

fn subscribe_layout(s: &Subscribe, v5: bool) -> Layout {
    let mut layout = Layout::default();
    let mut remaining = 2;
    if v5 {
        layout.properties = s.encoded_len();
        remaining += section_len(layout.properties);
    }
    for (filter, _) in &s.filters {
        remaining += str_len(filter) + 1;
    }
    layout.remaining = remaining;
    layout
}

fn encode_subscribe(s: &Subscribe, v5: bool, out: &mut BytesMut) {
    let layout = subscribe_layout(s, v5);
    put_header(out, 0x82, layout);
    out.put_u16(s.packet_id.get());
    if v5 {
        put_properties(out, s, layout.properties);
    }
    for (filter, options) in &s.filters {
        put_str(out, filter);
        out.put_u8(if v5 {
            options.to_byte()
        } else {
            options.qos.as_u8()
        });
    }
}

fn suback_layout(s: &SubAck, v5: bool) -> Layout {
    let mut layout = Layout {
        remaining: 2 + s.reasons.len(),
        ..Layout::default()
    };
    if v5 {
        layout.properties = s.properties.encoded_len();
        layout.remaining += section_len(layout.properties);
    }
    layout
}

fn encode_suback(s: &SubAck, v5: bool, out: &mut BytesMut) {
    let layout = suback_layout(s, v5);
    put_header(out, 0x90, layout);
    out.put_u16(s.packet_id.get());
    if v5 {
        put_properties(out, &s.properties, layout.properties);
        for reason in &s.reasons {
            out.put_u8(reason.0);
        }
    } else {
        // 3.1.1 return codes are the granted QoS or 0x80 Failure (MQTT 3.1.1 §3.9.3).
        for reason in &s.reasons {
            out.put_u8(if reason.0 <= 2 { reason.0 } else { 0x80 });
        }
    }
}

fn unsubscribe_layout(u: &Unsubscribe, v5: bool) -> Layout {
    let mut layout = Layout::default();
    let mut remaining = 2;
    if v5 {
        layout.properties = u.encoded_len();
        remaining += section_len(layout.properties);
    }
    for filter in &u.filters {
        remaining += str_len(filter);
    }
    layout.remaining = remaining;
    layout
}

fn encode_unsubscribe(u: &Unsubscribe, v5: bool, out: &mut BytesMut) {
    let layout = unsubscribe_layout(u, v5);
    put_header(out, 0xA2, layout);
    out.put_u16(u.packet_id.get());
    if v5 {
        put_properties(out, u, layout.properties);
    }
    for filter in &u.filters {
        put_str(out, filter);
    }
}

fn unsuback_layout(u: &UnsubAck, v5: bool) -> Layout {
    if !v5 {
        return Layout {
            remaining: 2,
            ..Layout::default()
        };
    }
    let properties = u.properties.encoded_len();
    Layout {
        remaining: 2 + section_len(properties) + u.reasons.len(),
        properties,
        will_properties: 0,
    }
}

fn encode_unsuback(u: &UnsubAck, v5: bool, out: &mut BytesMut) {
    let layout = unsuback_layout(u, v5);
    put_header(out, 0xB0, layout);
    out.put_u16(u.packet_id.get());
    if v5 {
        put_properties(out, &u.properties, layout.properties);
        for reason in &u.reasons {
            out.put_u8(reason.0);
        }
    }
}

// ---- DISCONNECT, AUTH --------------------------------------------------------------------------

/// v5 omits what it can: nothing for a normal disconnection, no property length without
/// properties (MQTT 5 §3.14.2.1).
fn disconnect_layout(d: &Disconnect, v5: bool) -> Layout {
    if !v5 {
        return Layout::default();
    }
    let properties = d.properties.encoded_len();
    let remaining = match (d.reason == ReasonCode::NORMAL_DISCONNECTION, properties) {
        (true, 0) => 0,
        (false, 0) => 1,
        _ => 1 + section_len(properties),
    };
    Layout {
        remaining,
        properties,
        will_properties: 0,
    }
}

fn encode_disconnect(d: &Disconnect, v5: bool, out: &mut BytesMut) {
    let layout = disconnect_layout(d, v5);
    put_header(out, 0xE0, layout);
    if layout.remaining > 0 {
        out.put_u8(d.reason.0);
    }
    if layout.remaining > 1 {
        put_properties(out, &d.properties, layout.properties);
    }
}

/// AUTH may be empty for Success without properties (MQTT 5 §3.15.2.1); otherwise it carries
/// both the reason and the property length.
fn auth_layout(a: &Auth) -> Layout {
    let properties = a.properties.encoded_len();
    let remaining = if a.reason == ReasonCode::SUCCESS && properties == 0 {
        0
    } else {
        1 + section_len(properties)
    };
    Layout {
        remaining,
        properties,
        will_properties: 0,
    }
}

fn encode_auth(a: &Auth, out: &mut BytesMut) {
    let layout = auth_layout(a);
    put_header(out, 0xF0, layout);
    if layout.remaining > 0 {
        out.put_u8(a.reason.0);
        put_properties(out, &a.properties, layout.properties);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::packet::{AckProperties, DisconnectProperties, PublishProperties};
    use crate::topic::TopicName;
    use crate::types::PacketId;

    fn bytes_of(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(packet, version, &mut out);
        assert_eq!(out.len(), encoded_len(packet, version), "{packet:?}");
        out.to_vec()
    }

    fn pid(n: u16) -> PacketId {
        PacketId::new(n).expect("non-zero")
    }

    #[test]
    fn publish_qos1_v311_layout() {
        let publish = Publish {
            dup: true,
            qos: PublishQos::AtLeastOnce(pid(10)),
            retain: true,
            topic: TopicName::new("a/b").ok(),
            properties: PublishProperties::default(),
            payload: Bytes::from_static(b"hi"),
        };
        assert_eq!(
            bytes_of(&Packet::Publish(publish), ProtocolVersion::V311),
            [0x3B, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']
        );
    }

    #[test]
    fn publish_qos0_clears_dup_and_skips_the_packet_id() {
        let publish = Publish {
            dup: true,
            qos: PublishQos::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").ok(),
            properties: PublishProperties::default(),
            payload: Bytes::new(),
        };
        assert_eq!(
            bytes_of(&Packet::Publish(publish), ProtocolVersion::V5),
            [0x30, 4, 0, 1, b't', 0]
        );
    }

    #[test]
    fn v5_acks_omit_what_they_can() {
        let mut ack = PubAck::new(pid(1));
        assert_eq!(
            bytes_of(&Packet::PubAck(ack.clone()), ProtocolVersion::V5),
            [0x40, 2, 0, 1]
        );
        ack.reason = ReasonCode::NO_MATCHING_SUBSCRIBERS;
        assert_eq!(
            bytes_of(&Packet::PubAck(ack.clone()), ProtocolVersion::V5),
            [0x40, 3, 0, 1, 0x10]
        );
        ack.properties = AckProperties {
            reason_string: Some("x".into()),
            user_properties: Vec::new(),
        };
        assert_eq!(
            bytes_of(&Packet::PubRel(ack.clone()), ProtocolVersion::V5),
            [0x62, 8, 0, 1, 0x10, 4, 0x1F, 0, 1, b'x']
        );
        assert_eq!(
            bytes_of(&Packet::PubComp(ack), ProtocolVersion::V311),
            [0x70, 2, 0, 1]
        );
    }

    #[test]
    fn disconnect_and_auth_shapes() {
        let normal = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
        assert_eq!(bytes_of(&normal, ProtocolVersion::V5), [0xE0, 0]);
        let busy = Packet::Disconnect(Disconnect {
            reason: ReasonCode::SERVER_BUSY,
            properties: DisconnectProperties::default(),
        });
        assert_eq!(bytes_of(&busy, ProtocolVersion::V5), [0xE0, 1, 0x89]);
        assert_eq!(bytes_of(&busy, ProtocolVersion::V311), [0xE0, 0]);
        let auth = Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Default::default(),
        });
        assert_eq!(bytes_of(&auth, ProtocolVersion::V5), [0xF0, 2, 0x18, 0]);
        assert_eq!(bytes_of(&auth, ProtocolVersion::V311), [] as [u8; 0]);
    }

    #[test]
    fn v311_suback_reports_errors_as_0x80() {
        let suback = Packet::SubAck(SubAck {
            packet_id: pid(2),
            properties: AckProperties::default(),
            reasons: vec![ReasonCode::GRANTED_QOS_2, ReasonCode::NOT_AUTHORIZED],
        });
        assert_eq!(
            bytes_of(&suback, ProtocolVersion::V311),
            [0x90, 4, 0, 2, 2, 0x80]
        );
        assert_eq!(
            bytes_of(&suback, ProtocolVersion::V5),
            [0x90, 5, 0, 2, 0, 2, 0x87]
        );
    }

    #[test]
    fn v311_connack_uses_the_return_code() {
        let connack = Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::BAD_USERNAME_OR_PASSWORD,
            properties: Default::default(),
        });
        assert_eq!(bytes_of(&connack, ProtocolVersion::V311), [0x20, 2, 0, 4]);
        assert_eq!(
            bytes_of(&connack, ProtocolVersion::V5),
            [0x20, 3, 0, 0x86, 0]
        );
    }
}
