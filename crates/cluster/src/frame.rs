//! The frame a message travels in between nodes, and is kept in as a retained message in the
//! cluster's bucket: a small header (the origin node, its sequence number, the absolute expiry)
//! followed by the message as an MQTT 5 PUBLISH packet. The PUBLISH is the protocol crate's own
//! encoding, so every property MQTT 5 forwards (payload format, content type, response topic,
//! correlation data, user properties in order) crosses the cluster exactly, and the decoder that
//! reads clients' packets (fuzzed, bounded) reads the other nodes' too.
//!
//! ```text
//! 1 byte   version (1)
//! 1 byte   origin length n, then n bytes: the origin node's id
//! 8 bytes  the origin's sequence number (big-endian)
//! 8 bytes  expiry: milliseconds since the Unix epoch, 0 = none (big-endian)
//! rest     an MQTT 5 PUBLISH (QoS 1/2 with packet id 1: the id is per connection, not kept)
//! ```
//!
//! The expiry is absolute, so the Message Expiry Interval a subscriber on another node gets is
//! counted down from the moment it was published (the nodes' clocks are assumed in sync, as
//! JetStream's own message ages assume).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use wardgate_core::Message;
use wardgate_protocol::{
    DecodeLimits, Packet, PacketId, ProtocolVersion, PublishParts, PublishQos, QoS,
    encode_publish_parts,
};

/// The frame's version byte.
const VERSION: u8 = 1;

/// A message read from a frame.
#[derive(Debug)]
pub struct Received {
    /// The node it was published on.
    pub origin: String,
    /// Its sequence number at that node.
    pub seq: u64,
    /// The message, its expiry converted to this node's clock.
    pub message: Message,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its header says.
    #[error("frame truncated")]
    Truncated,
    /// A version this node does not know.
    #[error("frame version {0} is not known (this node reads version {VERSION})")]
    Version(u8),
    /// The origin is not UTF-8.
    #[error("frame origin is not UTF-8")]
    Origin,
    /// The packet is not a PUBLISH with a topic.
    #[error("frame does not hold a PUBLISH: {0}")]
    Packet(String),
}

/// Writes `message`, published on node `origin` as its `seq`-th, into a frame. `now` and
/// `wall` are the same moment on the monotonic and the wall clock.
pub fn encode(message: &Message, origin: &str, seq: u64, now: Instant, wall: SystemTime) -> Bytes {
    let expiry_ms = message.expires_at.map_or(0, |at| {
        let left = at.saturating_duration_since(now);
        // At least 1: 0 means "no expiry".
        millis_since_epoch(wall + left).max(1)
    });
    let origin = &origin.as_bytes()[..origin.len().min(u8::MAX as usize)];
    let qos = match message.qos {
        QoS::AtMostOnce => PublishQos::AtMostOnce,
        level => PublishQos::new(level, placeholder_id()),
    };
    // The expiry travels in the header; the packet's own interval is ignored when read.
    let parts = PublishParts {
        dup: false,
        qos,
        retain: message.retain,
        topic: message.topic.as_str(),
        properties: Some(&message.properties),
        payload: &message.payload,
    };
    let mut out = BytesMut::with_capacity(18 + origin.len() + parts.encoded_len(V5));
    out.put_u8(VERSION);
    out.put_u8(origin.len() as u8);
    out.put_slice(origin);
    out.put_u64(seq);
    out.put_u64(expiry_ms);
    encode_publish_parts(&parts, V5, &mut out);
    out.freeze()
}

/// Reads a frame written by [`encode`]. A message already expired at `now` comes back with an
/// expiry of `now` (the router drops it).
pub fn decode(mut frame: Bytes, now: Instant, wall: SystemTime) -> Result<Received, FrameError> {
    if frame.len() < 2 {
        return Err(FrameError::Truncated);
    }
    let version = frame.get_u8();
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let n = frame.get_u8() as usize;
    if frame.len() < n + 16 {
        return Err(FrameError::Truncated);
    }
    let origin = std::str::from_utf8(&frame[..n])
        .map_err(|_| FrameError::Origin)?
        .to_owned();
    frame.advance(n);
    let seq = frame.get_u64();
    let expiry_ms = frame.get_u64();
    let mut packet = BytesMut::from(frame);
    let limits = DecodeLimits {
        max_packet_size: u32::try_from(packet.len()).unwrap_or(u32::MAX),
    };
    let publish = match wardgate_protocol::decode(&mut packet, Some(V5), &limits) {
        Ok(Some(Packet::Publish(publish))) => publish,
        Ok(Some(other)) => return Err(FrameError::Packet(format!("{other:?}"))),
        Ok(None) => return Err(FrameError::Truncated),
        Err(e) => return Err(FrameError::Packet(e.to_string())),
    };
    let mut properties = publish.properties;
    properties.message_expiry_interval = None;
    let topic = publish
        .topic
        .ok_or_else(|| FrameError::Packet("no topic".into()))?;
    let expires_at = (expiry_ms != 0).then(|| {
        let at = UNIX_EPOCH + Duration::from_millis(expiry_ms);
        now + at.duration_since(wall).unwrap_or_default()
    });
    Ok(Received {
        origin,
        seq,
        message: Message {
            topic,
            payload: publish.payload,
            qos: publish.qos.level(),
            retain: publish.retain,
            properties,
            origin: None,
            expires_at,
        },
    })
}

const V5: ProtocolVersion = ProtocolVersion::V5;

/// The packet id a QoS 1/2 PUBLISH in a frame carries: ids are per connection, the receiving
/// node's session assigns its own.
fn placeholder_id() -> PacketId {
    PacketId::new(1).unwrap_or_else(|| unreachable!("1 is a packet id"))
}

fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_protocol::{PublishProperties, TopicName};

    fn message(qos: QoS, expiry: Option<Duration>, now: Instant) -> Message {
        Message {
            topic: TopicName::new("a b/./ü/").expect("valid"),
            payload: Bytes::from_static(b"\x00payload\xff"),
            qos,
            retain: true,
            properties: PublishProperties {
                payload_format_indicator: Some(false),
                message_expiry_interval: Some(99),
                content_type: Some("application/x".into()),
                response_topic: Some(TopicName::new("reply/to").expect("valid")),
                correlation_data: Some(Bytes::from_static(b"corr")),
                user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2\n".into())],
                ..PublishProperties::default()
            },
            origin: None,
            expires_at: expiry.map(|d| now + d),
        }
    }

    #[test]
    fn every_forwarded_property_and_the_expiry_cross_the_frame() {
        let now = Instant::now();
        let wall = SystemTime::now();
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let sent = message(qos, Some(Duration::from_secs(30)), now);
            let frame = encode(&sent, "node-a", 7, now, wall);
            // Read 10 s later on another node whose clocks agree: 20 s left.
            let later = now + Duration::from_secs(10);
            let got = decode(frame, later, wall + Duration::from_secs(10)).expect("reads");
            assert_eq!((got.origin.as_str(), got.seq), ("node-a", 7));
            let m = got.message;
            assert_eq!(
                (m.topic.as_str(), &m.payload[..]),
                ("a b/./ü/", &sent.payload[..])
            );
            assert_eq!((m.qos, m.retain), (qos, true));
            let mut expected = sent.properties.clone();
            expected.message_expiry_interval = None;
            assert_eq!(m.properties, expected);
            assert_eq!(m.remaining_expiry(later), Some(20));
        }
    }

    #[test]
    fn no_expiry_stays_none_and_a_past_expiry_is_expired() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let frame = encode(&message(QoS::AtMostOnce, None, now), "n", 1, now, wall);
        let got = decode(frame, now, wall).expect("reads");
        assert_eq!(got.message.expires_at, None);

        let frame = encode(
            &message(QoS::AtMostOnce, Some(Duration::from_secs(1)), now),
            "n",
            1,
            now,
            wall,
        );
        let later = now + Duration::from_secs(5);
        let got = decode(frame, later, wall + Duration::from_secs(5)).expect("reads");
        assert!(got.message.is_expired(later));
    }

    #[test]
    fn a_broken_frame_is_an_error_never_a_panic() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let good = encode(&message(QoS::AtLeastOnce, None, now), "node", 1, now, wall);
        assert_eq!(
            decode(Bytes::new(), now, wall).err(),
            Some(FrameError::Truncated)
        );
        assert_eq!(
            decode(Bytes::from_static(&[9, 0]), now, wall).err(),
            Some(FrameError::Version(9))
        );
        for cut in 0..good.len() {
            assert!(
                decode(good.slice(..cut), now, wall).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = good.to_vec();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(Bytes::from(flipped.clone()), now, wall);
            flipped[i] ^= 0xff;
        }
    }
}
