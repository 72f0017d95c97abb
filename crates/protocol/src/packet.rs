//! The packets of MQTT 3.1.1 and 5.0 and their v5 property sets, as plain data.
//!
//! One set of types serves both versions: fields that only exist in v5 (properties, most reason
//! codes) are left at their defaults when decoding 3.1.1 and dropped when encoding it.

use std::fmt;

use bytes::Bytes;

use crate::topic::{TopicFilter, TopicName};
use crate::types::{PacketId, ProtocolVersion, PublishQos, QoS, ReasonCode, SubscriptionOptions};

/// User properties (MQTT 5 §3.1.2.11.8): order preserved, duplicates allowed.
pub type UserProperties = Vec<(String, String)>;

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT, boxed because it is by far the largest and is seen once per connection.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// PUBREC.
    PubRec(PubAck),
    /// PUBREL.
    PubRel(PubAck),
    /// PUBCOMP.
    PubComp(PubAck),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (3.1.1 carries none of its fields).
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// Which of the 15 packet types this is.
    pub fn kind(&self) -> PacketKind {
        match self {
            Packet::Connect(_) => PacketKind::Connect,
            Packet::ConnAck(_) => PacketKind::ConnAck,
            Packet::Publish(_) => PacketKind::Publish,
            Packet::PubAck(_) => PacketKind::PubAck,
            Packet::PubRec(_) => PacketKind::PubRec,
            Packet::PubRel(_) => PacketKind::PubRel,
            Packet::PubComp(_) => PacketKind::PubComp,
            Packet::Subscribe(_) => PacketKind::Subscribe,
            Packet::SubAck(_) => PacketKind::SubAck,
            Packet::Unsubscribe(_) => PacketKind::Unsubscribe,
            Packet::UnsubAck(_) => PacketKind::UnsubAck,
            Packet::PingReq => PacketKind::PingReq,
            Packet::PingResp => PacketKind::PingResp,
            Packet::Disconnect(_) => PacketKind::Disconnect,
            Packet::Auth(_) => PacketKind::Auth,
        }
    }
}

/// The 15 packet types, without their contents (for logs, metrics and errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PacketKind {
    /// CONNECT (type 1).
    Connect = 1,
    /// CONNACK (type 2).
    ConnAck = 2,
    /// PUBLISH (type 3).
    Publish = 3,
    /// PUBACK (type 4).
    PubAck = 4,
    /// PUBREC (type 5).
    PubRec = 5,
    /// PUBREL (type 6).
    PubRel = 6,
    /// PUBCOMP (type 7).
    PubComp = 7,
    /// SUBSCRIBE (type 8).
    Subscribe = 8,
    /// SUBACK (type 9).
    SubAck = 9,
    /// UNSUBSCRIBE (type 10).
    Unsubscribe = 10,
    /// UNSUBACK (type 11).
    UnsubAck = 11,
    /// PINGREQ (type 12).
    PingReq = 12,
    /// PINGRESP (type 13).
    PingResp = 13,
    /// DISCONNECT (type 14).
    Disconnect = 14,
    /// AUTH (type 15, MQTT 5 only).
    Auth = 15,
}

impl PacketKind {
    /// The kind for the packet type in the high nibble of the first byte; 0 is reserved.
    pub fn from_type(packet_type: u8) -> Option<PacketKind> {
        Some(match packet_type {
            1 => PacketKind::Connect,
            2 => PacketKind::ConnAck,
            3 => PacketKind::Publish,
            4 => PacketKind::PubAck,
            5 => PacketKind::PubRec,
            6 => PacketKind::PubRel,
            7 => PacketKind::PubComp,
            8 => PacketKind::Subscribe,
            9 => PacketKind::SubAck,
            10 => PacketKind::Unsubscribe,
            11 => PacketKind::UnsubAck,
            12 => PacketKind::PingReq,
            13 => PacketKind::PingResp,
            14 => PacketKind::Disconnect,
            15 => PacketKind::Auth,
            _ => return None,
        })
    }

    /// The packet type number (high nibble of the first byte).
    #[inline]
    pub fn packet_type(self) -> u8 {
        self as u8
    }

    /// The packet's name as the specifications write it.
    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Connect => "CONNECT",
            PacketKind::ConnAck => "CONNACK",
            PacketKind::Publish => "PUBLISH",
            PacketKind::PubAck => "PUBACK",
            PacketKind::PubRec => "PUBREC",
            PacketKind::PubRel => "PUBREL",
            PacketKind::PubComp => "PUBCOMP",
            PacketKind::Subscribe => "SUBSCRIBE",
            PacketKind::SubAck => "SUBACK",
            PacketKind::Unsubscribe => "UNSUBSCRIBE",
            PacketKind::UnsubAck => "UNSUBACK",
            PacketKind::PingReq => "PINGREQ",
            PacketKind::PingResp => "PINGRESP",
            PacketKind::Disconnect => "DISCONNECT",
            PacketKind::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// CONNECT (MQTT 5 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol level; also decides the layout the encoder writes.
    pub protocol: ProtocolVersion,
    /// Clean Start (v5) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// The client identifier; may be empty (the broker decides whether to assign one).
    pub client_id: String,
    /// The will message, if the Will Flag is set.
    pub will: Option<Will>,
    /// The user name, if the User Name Flag is set.
    pub username: Option<String>,
    /// The password, if the Password Flag is set.
    pub password: Option<Bytes>,
    /// v5 CONNECT properties (default in 3.1.1).
    pub properties: ConnectProperties,
}

/// CONNECT properties (MQTT 5 §3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum (never 0).
    pub receive_maximum: Option<u16>,
    /// 0x27 Maximum Packet Size the client accepts (never 0).
    pub maximum_packet_size: Option<u32>,
    /// 0x22 Topic Alias Maximum the client accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x19 Request Response Information.
    pub request_response_information: Option<bool>,
    /// 0x17 Request Problem Information.
    pub request_problem_information: Option<bool>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x15 Authentication Method (enhanced authentication).
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data (only with a method).
    pub authentication_data: Option<Bytes>,
}

/// The will message of a CONNECT (MQTT 5 §3.1.2.5, §3.1.3.2-4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Where the will is published.
    pub topic: TopicName,
    /// The will payload (zero-copy slice of the CONNECT).
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// v5 will properties (default in 3.1.1).
    pub properties: WillProperties,
}

/// Will properties (MQTT 5 §3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// 0x18 Will Delay Interval, seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x01 Payload Format Indicator: true = UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<String>,
    /// 0x08 Response Topic.
    pub response_topic: Option<TopicName>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

/// CONNACK (MQTT 5 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// The v5 reason; 3.1.1 carries [`ReasonCode::to_v311_connack`] of it.
    pub reason: ReasonCode,
    /// v5 CONNACK properties.
    pub properties: ConnAckProperties,
}

/// CONNACK properties (MQTT 5 §3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// 0x11 Session Expiry Interval the server uses.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum of the server (never 0).
    pub receive_maximum: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25 Retain Available.
    pub retain_available: Option<bool>,
    /// 0x27 Maximum Packet Size the server accepts (never 0).
    pub maximum_packet_size: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<String>,
    /// 0x22 Topic Alias Maximum the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x1F Reason String.
    pub reason_string: Option<String>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x28 Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29 Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// 0x2A Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// 0x13 Server Keep Alive, seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x1A Response Information.
    pub response_information: Option<String>,
    /// 0x1C Server Reference.
    pub server_reference: Option<String>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH (MQTT 5 §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery (never set with QoS 0).
    pub dup: bool,
    /// QoS and, above QoS 0, the packet identifier.
    pub qos: PublishQos,
    /// RETAIN.
    pub retain: bool,
    /// None only when the topic name on the wire was empty (v5 with a Topic Alias); the decoder
    /// rejects an empty topic without an alias, and always in v3.1.1.
    pub topic: Option<TopicName>,
    /// v5 PUBLISH properties.
    pub properties: PublishProperties,
    /// The application message: a zero-copy slice of the input buffer.
    pub payload: Bytes,
}

/// PUBLISH properties (MQTT 5 §3.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// 0x01 Payload Format Indicator: true = UTF-8 payload.
    pub payload_format_indicator: Option<bool>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x23 Topic Alias (never 0).
    pub topic_alias: Option<u16>,
    /// 0x08 Response Topic.
    pub response_topic: Option<TopicName>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x0B Subscription Identifiers (server to client; may repeat).
    pub subscription_identifiers: Vec<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<String>,
}

impl PublishProperties {
    /// Whether no property is set (the common case, which the codec keeps cheap).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.topic_alias.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
            && self.content_type.is_none()
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP share one shape (MQTT 5 §3.4-§3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    /// The PUBLISH (or PUBREL) being acknowledged.
    pub packet_id: PacketId,
    /// The v5 reason (SUCCESS in 3.1.1).
    pub reason: ReasonCode,
    /// v5 properties.
    pub properties: AckProperties,
}

impl PubAck {
    /// A successful acknowledgement without properties (the only kind 3.1.1 has).
    pub fn new(packet_id: PacketId) -> PubAck {
        PubAck {
            packet_id,
            reason: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }
    }
}

/// The properties of the acknowledgements (PUBACK..PUBCOMP, SUBACK, UNSUBACK).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<String>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

impl AckProperties {
    /// Whether no property is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

/// SUBSCRIBE (MQTT 5 §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 0x0B Subscription Identifier: 1..=268_435_455; 0 is a protocol error.
    pub subscription_identifier: Option<u32>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// The filters and their options; never empty.
    pub filters: Vec<(TopicFilter, SubscriptionOptions)>,
}

/// SUBACK (MQTT 5 §3.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE being acknowledged.
    pub packet_id: PacketId,
    /// v5 properties.
    pub properties: AckProperties,
    /// One per filter, in order; 3.1.1 encodes every error as 0x80.
    pub reasons: Vec<ReasonCode>,
}

/// UNSUBSCRIBE (MQTT 5 §3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// The filters to remove; never empty.
    pub filters: Vec<TopicFilter>,
}

/// UNSUBACK (MQTT 5 §3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE being acknowledged.
    pub packet_id: PacketId,
    /// v5 properties.
    pub properties: AckProperties,
    /// One per filter (v5); 3.1.1 has none: ignored on encode, empty on decode.
    pub reasons: Vec<ReasonCode>,
}

/// DISCONNECT (MQTT 5 §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why (NORMAL_DISCONNECTION in 3.1.1).
    pub reason: ReasonCode,
    /// v5 properties.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A disconnect with the given reason and no properties.
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: DisconnectProperties::default(),
        }
    }
}

/// DISCONNECT properties (MQTT 5 §3.14.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// 0x11 Session Expiry Interval (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// 0x1F Reason String.
    pub reason_string: Option<String>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
    /// 0x1C Server Reference.
    pub server_reference: Option<String>,
}

impl DisconnectProperties {
    /// Whether no property is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.session_expiry_interval.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
            && self.server_reference.is_none()
    }
}

/// AUTH (MQTT 5 §3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// SUCCESS, CONTINUE_AUTHENTICATION or REAUTHENTICATE.
    pub reason: ReasonCode,
    /// AUTH properties.
    pub properties: AuthProperties,
}

/// AUTH properties (MQTT 5 §3.15.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// 0x15 Authentication Method.
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x1F Reason String.
    pub reason_string: Option<String>,
    /// 0x26 User Properties.
    pub user_properties: UserProperties,
}

impl AuthProperties {
    /// Whether no property is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.authentication_method.is_none()
            && self.authentication_data.is_none()
            && self.reason_string.is_none()
            && self.user_properties.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_type_numbers() {
        for t in 1..=15 {
            let kind = PacketKind::from_type(t).expect("1..=15 are packet types");
            assert_eq!(kind.packet_type(), t);
        }
        assert_eq!(PacketKind::from_type(0), None);
        assert_eq!(Packet::PingReq.kind().to_string(), "PINGREQ");
    }

    #[test]
    fn packet_enum_stays_small() {
        // Publish is the largest inline variant; keep an eye on it because every queued message
        // pays for it.
        assert!(
            std::mem::size_of::<Packet>() <= 256,
            "{}",
            std::mem::size_of::<Packet>()
        );
    }
}
