//! Decoding errors and their one mapping to MQTT reason codes.

use crate::types::ReasonCode;

/// Why the bytes at the front of the buffer are not an acceptable packet. Every variant means the
/// connection must be closed (with a DISCONNECT / CONNACK carrying [`DecodeError::reason_code`] in v5).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes break the packet grammar: bad remaining length, truncated field, bad flags, invalid UTF-8, U+0000, QoS 3, reserved bits, unknown or misplaced property, trailing bytes, syntactically invalid topic filter.
    #[error("malformed packet: {0}")]
    MalformedPacket(&'static str),
    /// The bytes parse but break a protocol rule: packet id 0, first packet not CONNECT, second CONNECT, duplicate property, zero-valued limit, empty SUBSCRIBE.
    #[error("protocol error: {0}")]
    ProtocolError(&'static str),
    /// The packet (fixed header included) is larger than the maximum packet size; detected from the fixed header alone.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// The whole packet's size in bytes, fixed header included.
        size: usize,
        /// The limit it broke.
        max: u32,
    },
    /// CONNECT names a protocol level this broker does not speak.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's protocol name is neither "MQTT" nor "MQIsdp".
    #[error("protocol name is neither MQTT nor MQIsdp")]
    InvalidProtocolName,
    /// A PUBLISH or will topic name is not valid (empty, or contains a wildcard).
    #[error("topic name invalid: {0}")]
    TopicNameInvalid(&'static str),
    /// A well-formed topic filter is refused; the decoder reports syntactically invalid filters as MalformedPacket [MQTT-4.7.1], so this is for the broker.
    #[error("topic filter invalid: {0}")]
    TopicFilterInvalid(&'static str),
    /// The Payload Format Indicator says UTF-8 but the payload is not valid UTF-8 [MQTT-3.3.2-4].
    #[error("payload format indicator is 1 but the payload is not valid UTF-8")]
    PayloadFormatInvalid,
    /// One property set carries more User Properties than the broker keeps
    /// ([`crate::MAX_USER_PROPERTIES`]): an implementation limit, Quota exceeded.
    #[error("more than {max} user properties in one packet")]
    TooManyUserProperties {
        /// The limit it broke.
        max: usize,
    },
}

impl DecodeError {
    /// The MQTT 5 reason code that reports this error to the peer (the one place this mapping lives).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::MalformedPacket(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::ProtocolError(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            DecodeError::TopicNameInvalid(_) => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::TopicFilterInvalid(_) => ReasonCode::TOPIC_FILTER_INVALID,
            DecodeError::PayloadFormatInvalid => ReasonCode::PAYLOAD_FORMAT_INVALID,
            DecodeError::TooManyUserProperties { .. } => ReasonCode::QUOTA_EXCEEDED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_reason_code() {
        let cases = [
            (DecodeError::MalformedPacket("x"), 0x81),
            (DecodeError::ProtocolError("x"), 0x82),
            (DecodeError::PacketTooLarge { size: 10, max: 5 }, 0x95),
            (DecodeError::UnsupportedProtocolVersion(6), 0x84),
            (DecodeError::InvalidProtocolName, 0x84),
            (DecodeError::TopicNameInvalid("x"), 0x90),
            (DecodeError::TopicFilterInvalid("x"), 0x8F),
            (DecodeError::PayloadFormatInvalid, 0x99),
            (DecodeError::TooManyUserProperties { max: 1 }, 0x97),
        ];
        for (error, code) in cases {
            assert_eq!(error.reason_code(), ReasonCode(code), "{error}");
        }
    }
}
