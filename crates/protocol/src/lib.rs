//! Wardgate's sans-IO MQTT codec: every packet, property and reason code of MQTT 3.1.1 (and 3.1)
//! and 5.0, decoded from and encoded to `bytes` buffers, plus the topic types and matching rules.
//!
//! The crate does no I/O. [`decode`] takes whatever bytes have arrived and returns `Ok(None)` until a
//! whole packet is there; the packet-size limit is checked from the fixed header before the body is
//! awaited. Payloads and binary fields are zero-copy slices of the input. [`encode`] appends to a
//! `BytesMut`, and [`encoded_len`] says how many bytes that will be without writing them.
//!
//! ```
//! use bytes::BytesMut;
//! use wardgate_protocol::{decode, encode, DecodeLimits, Packet, ProtocolVersion};
//!
//! let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
//! let packet = decode(&mut buf, Some(ProtocolVersion::V5), &DecodeLimits::default());
//! assert_eq!(packet, Ok(Some(Packet::PingReq)));
//!
//! let mut out = BytesMut::new();
//! encode(&Packet::PingResp, ProtocolVersion::V5, &mut out);
//! assert_eq!(&out[..], &[0xD0, 0x00]);
//! ```

mod decode;
mod encode;
mod error;
mod packet;
mod property;
mod topic;
mod types;
mod wire;

pub use decode::{DecodeLimits, MAX_PACKET_SIZE, decode, peek_size};
pub use encode::{
    PublishParts, encode, encode_publish, encode_publish_parts, encoded_len, encoded_publish_len,
};
pub use error::DecodeError;
pub use packet::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Packet, PacketKind, PubAck, Publish, PublishProperties,
    SubAck, Subscribe, UnsubAck, Unsubscribe, UserProperties, Will, WillProperties,
};
pub use property::MAX_USER_PROPERTIES;
pub use topic::{
    MAX_TOPIC_LEN, SharedFilter, SubscriptionFilter, TopicError, TopicFilter, TopicName,
    topic_matches,
};
pub use types::{
    PacketId, ProtocolVersion, PublishQos, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};
pub use wire::MAX_VARINT;
