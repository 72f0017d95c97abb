//! Every class of bad input the decoder refuses, with the error and the reason code it maps to.
//! Grouped by the rule broken; rule numbers are those of MQTT 5.0 unless marked 3.1.1.

use wardgate_protocol::{DecodeError, Packet};

use crate::support::*;

#[test]
fn fixed_header_rules() {
    let mut too_large = case(
        "size limit checked from the fixed header alone, before the body",
        V5,
        "30 FF 7F",
        Expect::Error(
            DecodeError::PacketTooLarge {
                size: 16_386,
                max: 100,
            },
            0x95,
        ),
    );
    too_large.max_packet_size = Some(100);
    let mut at_limit = case(
        "a packet exactly at the limit is accepted",
        V5,
        "C0 00",
        canonical(Packet::PingReq),
    );
    at_limit.max_packet_size = Some(2);
    let mut over_limit = case(
        "the limit counts the fixed header",
        V5,
        "C0 00",
        Expect::Error(DecodeError::PacketTooLarge { size: 2, max: 1 }, 0x95),
    );
    over_limit.max_packet_size = Some(1);

    run(vec![
        too_large,
        at_limit,
        over_limit,
        case(
            "reserved packet type 0 [MQTT-2.1.2]",
            V5,
            "00 00",
            malformed("reserved packet type 0"),
        ),
        case(
            "AUTH is a reserved type in 3.1.1",
            V3,
            "F0 00",
            malformed("reserved packet type 15 (AUTH) in MQTT 3.1.1"),
        ),
        case(
            "PINGREQ flags must be 0 [MQTT-2.1.3-1]",
            V3,
            "C1 00",
            malformed("reserved fixed header flags are not 0"),
        ),
        case(
            "PUBACK flags must be 0",
            V5,
            "42 02 0001",
            malformed("reserved fixed header flags are not 0"),
        ),
        case(
            "CONNECT flags must be 0",
            NONE,
            "11 00",
            malformed("reserved fixed header flags are not 0"),
        ),
        case(
            "PUBREL flags must be 0010 [MQTT-3.6.1-1]",
            V3,
            "60 02 0001",
            malformed("fixed header flags of PUBREL, SUBSCRIBE or UNSUBSCRIBE are not 0010"),
        ),
        case(
            "SUBSCRIBE flags must be 0010 [MQTT-3.8.1-1]",
            V5,
            "80 07 0001 00 0001 '#' 00",
            malformed("fixed header flags of PUBREL, SUBSCRIBE or UNSUBSCRIBE are not 0010"),
        ),
        case(
            "UNSUBSCRIBE flags must be 0010 [MQTT-3.10.1-1]",
            V3,
            "A3 05 0001 0001 '#'",
            malformed("fixed header flags of PUBREL, SUBSCRIBE or UNSUBSCRIBE are not 0010"),
        ),
        case(
            "remaining length with a fifth byte [MQTT-1.5.5-1]",
            V3,
            "30 FF FF FF FF 7F",
            malformed("remaining length longer than four bytes"),
        ),
        case(
            "PUBLISH QoS 3 [MQTT-3.3.1-4]",
            V3,
            "36 05 0001 't' 0001",
            malformed("PUBLISH with QoS 3"),
        ),
        case(
            "PUBLISH QoS 0 with DUP [MQTT-3.3.1-2]",
            V5,
            "38 04 0001 't' 00",
            malformed("PUBLISH with QoS 0 and DUP set"),
        ),
        case(
            "first packet not CONNECT [MQTT-3.1.0-1]",
            NONE,
            "C0 00",
            protocol_error("first packet is not CONNECT"),
        ),
        case(
            "PUBLISH before CONNECT is refused from its first byte",
            NONE,
            "30",
            protocol_error("first packet is not CONNECT"),
        ),
        case(
            "second CONNECT [MQTT-3.1.0-2]",
            V3,
            "10 0C 0004 'MQTT' 04 02 003C 0000",
            protocol_error("second CONNECT packet"),
        ),
    ]);
}

#[test]
fn length_and_truncation_rules() {
    run(vec![
        case(
            "string longer than the remaining length",
            V3,
            "30 03 0005 'a'",
            malformed("UTF-8 string longer than the remaining packet"),
        ),
        case(
            "PUBLISH QoS 1 without its packet identifier",
            V3,
            "32 03 0001 't'",
            malformed("truncated packet identifier"),
        ),
        case(
            "PUBACK with remaining length 1",
            V5,
            "40 01 00",
            malformed("truncated packet identifier"),
        ),
        case(
            "3.1.1 PUBACK with a trailing byte",
            V3,
            "40 03 0001 00",
            malformed("bytes after the last PUBACK field"),
        ),
        case(
            "PINGREQ remaining length must be 0",
            V3,
            "C0 01 00",
            malformed("PINGREQ with a non-zero remaining length"),
        ),
        case(
            "PINGRESP remaining length must be 0",
            V5,
            "D0 01 00",
            malformed("PINGRESP with a non-zero remaining length"),
        ),
        case(
            "3.1.1 DISCONNECT remaining length must be 0",
            V3,
            "E0 01 00",
            malformed("bytes after the last DISCONNECT field"),
        ),
        case(
            "v5 DISCONNECT with bytes after its properties",
            V5,
            "E0 03 00 00 FF",
            malformed("bytes after the last DISCONNECT field"),
        ),
        case(
            "3.1.1 CONNACK with a trailing byte",
            V3,
            "20 03 00 00 00",
            malformed("bytes after the last CONNACK field"),
        ),
        case(
            "CONNECT with bytes after the password",
            NONE,
            "10 13 0004 'MQTT' 04 C2 003C 0000 0001 'u' 0001 'p' FF",
            malformed("bytes after the last CONNECT field"),
        ),
        case(
            "CONNECT cut inside the keep alive",
            NONE,
            "10 09 0004 'MQTT' 04 02 00",
            malformed("truncated keep alive"),
        ),
        case(
            "3.1.1 UNSUBACK carries no reason codes",
            V3,
            "B0 03 0001 00",
            malformed("bytes after the UNSUBACK packet identifier"),
        ),
        case(
            "property length beyond the packet",
            V5,
            "40 04 0001 10 05",
            malformed("property length exceeds the remaining packet"),
        ),
        case(
            "User Property without its value",
            V5,
            "40 09 0001 00 05 26 0001 'k' 00",
            malformed("truncated UTF-8 string length"),
        ),
        case(
            "Subscription Identifier longer than four bytes [MQTT-1.5.5-1]",
            V5,
            "82 0D 0001 06 0B FFFFFFFF7F 0001 '#' 00",
            malformed("variable byte integer longer than four bytes"),
        ),
    ]);
}

#[test]
fn utf8_string_rules() {
    run(vec![
        case(
            "topic that is not UTF-8 [MQTT-1.5.4-1]",
            V3,
            "30 04 0002 C328",
            malformed("string is not valid UTF-8"),
        ),
        case(
            "overlong encoding of '/' is not UTF-8",
            V3,
            "30 04 0002 C0AF",
            malformed("string is not valid UTF-8"),
        ),
        case(
            "topic containing U+0000 [MQTT-1.5.4-2]",
            V5,
            "30 05 0002 'a' 00 00",
            malformed("string contains the null character U+0000"),
        ),
        case(
            "client identifier with an encoded surrogate U+D800 [MQTT-1.5.4-1]",
            NONE,
            "10 0F 0004 'MQTT' 04 02 003C 0003 EDA080",
            malformed("string is not valid UTF-8"),
        ),
        case(
            "PUBLISH topic with '#' [MQTT-3.3.2-2]",
            V3,
            "30 05 0003 'a/#'",
            Expect::Error(
                DecodeError::TopicNameInvalid("topic name contains '+' or '#'"),
                0x90,
            ),
        ),
        case(
            "PUBLISH topic with '+' [MQTT-3.3.2-2]",
            V5,
            "30 04 0001 '+' 00",
            Expect::Error(
                DecodeError::TopicNameInvalid("topic name contains '+' or '#'"),
                0x90,
            ),
        ),
        case(
            "empty topic in 3.1.1 [MQTT-4.7.3-1]",
            V3,
            "30 02 0000",
            Expect::Error(DecodeError::TopicNameInvalid("empty topic name"), 0x90),
        ),
        case(
            "empty topic without a Topic Alias [MQTT-3.3.2-1]",
            V5,
            "30 03 0000 00",
            protocol_error("empty topic name without a Topic Alias"),
        ),
        case(
            "will topic with a wildcard [MQTT-3.1.3-11]",
            NONE,
            "10 11 0004 'MQTT' 04 06 003C 0000 0001 '#' 0000",
            Expect::Error(
                DecodeError::TopicNameInvalid("topic name contains '+' or '#'"),
                0x90,
            ),
        ),
    ]);
}

#[test]
fn packet_identifier_rules() {
    run(vec![
        case(
            "PUBLISH QoS 1 with packet identifier 0 [MQTT-2.2.1-3]",
            V3,
            "32 05 0001 't' 0000",
            protocol_error("packet identifier 0"),
        ),
        case(
            "SUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3]",
            V5,
            "82 07 0000 00 0001 '#' 00",
            protocol_error("packet identifier 0"),
        ),
        case(
            "PUBREL with packet identifier 0",
            V3,
            "62 02 0000",
            protocol_error("packet identifier 0"),
        ),
    ]);
}

#[test]
fn connect_rules() {
    let unsupported = |level| Expect::Error(DecodeError::UnsupportedProtocolVersion(level), 0x84);
    run(vec![
        case(
            "protocol name other than MQTT/MQIsdp [MQTT-3.1.2-1]",
            NONE,
            "10 0C 0004 'MQTX' 04 02 003C 0000",
            Expect::Error(DecodeError::InvalidProtocolName, 0x84),
        ),
        case(
            "protocol level 6 [MQTT-3.1.2-2]",
            NONE,
            "10 0C 0004 'MQTT' 06 02 003C 0000",
            unsupported(6),
        ),
        case(
            "MQIsdp only goes with level 3",
            NONE,
            "10 0E 0006 'MQIsdp' 04 02 003C 0000",
            unsupported(4),
        ),
        case(
            "MQTT does not go with level 3",
            NONE,
            "10 0C 0004 'MQTT' 03 02 003C 0000",
            unsupported(3),
        ),
        case(
            "reserved connect flag [MQTT-3.1.2-3]",
            NONE,
            "10 0C 0004 'MQTT' 04 03 003C 0000",
            malformed("reserved connect flag is set"),
        ),
        case(
            "will QoS 3 [MQTT-3.1.2-12]",
            NONE,
            "10 11 0004 'MQTT' 04 1E 003C 0000 0001 't' 0000",
            malformed("will QoS 3"),
        ),
        case(
            "will QoS without the will flag [MQTT-3.1.2-11]",
            NONE,
            "10 0C 0004 'MQTT' 04 0A 003C 0000",
            malformed("will QoS or will retain set without the will flag"),
        ),
        case(
            "will retain without the will flag [MQTT-3.1.2-13]",
            NONE,
            "10 0C 0004 'MQTT' 04 22 003C 0000",
            malformed("will QoS or will retain set without the will flag"),
        ),
        case(
            "password without user name in 3.1.1 [3.1.1 MQTT-3.1.2-22]",
            NONE,
            "10 0F 0004 'MQTT' 04 42 003C 0000 0001 'p'",
            malformed("password flag set without the user name flag"),
        ),
        case(
            "will payload not UTF-8 although its format indicator says so",
            NONE,
            "10 16 0004 'MQTT' 05 06 003C 00 0000 02 01 01 0001 't' 0001 FF",
            Expect::Error(DecodeError::PayloadFormatInvalid, 0x99),
        ),
        case(
            "Authentication Data without Authentication Method [MQTT-3.1.2.11.10]",
            NONE,
            "10 11 0004 'MQTT' 05 02 003C 04 16 0001 AA 0000",
            protocol_error("Authentication Data without Authentication Method"),
        ),
        case(
            "duplicate Session Expiry Interval [MQTT-3.1.2.11.2]",
            NONE,
            "10 17 0004 'MQTT' 05 02 003C 0A 11 00000001 11 00000002 0000",
            protocol_error("duplicate Session Expiry Interval property"),
        ),
        case(
            "Receive Maximum 0 [MQTT-3.1.2.11.3]",
            NONE,
            "10 10 0004 'MQTT' 05 02 003C 03 21 0000 0000",
            protocol_error("Receive Maximum of 0"),
        ),
        case(
            "Maximum Packet Size 0 [MQTT-3.1.2.11.4]",
            NONE,
            "10 12 0004 'MQTT' 05 02 003C 05 27 00000000 0000",
            protocol_error("Maximum Packet Size of 0"),
        ),
        case(
            "Request Problem Information 2 [MQTT-3.1.2.11.7]",
            NONE,
            "10 0F 0004 'MQTT' 05 02 003C 02 17 02 0000",
            protocol_error("Request Problem Information other than 0 or 1"),
        ),
        case(
            "Will Delay Interval is a will property, not a CONNECT one [MQTT-2.2.2.2]",
            NONE,
            "10 12 0004 'MQTT' 05 02 003C 05 18 00000001 0000",
            malformed("property not allowed in CONNECT"),
        ),
    ]);
}

#[test]
fn property_rules() {
    run(vec![
        case(
            "Topic Alias 0 [MQTT-3.3.2-8]",
            V5,
            "30 07 0001 't' 03 23 0000",
            protocol_error("Topic Alias of 0"),
        ),
        case(
            "duplicate Topic Alias",
            V5,
            "30 0A 0001 't' 06 23 0001 23 0002",
            protocol_error("duplicate Topic Alias property"),
        ),
        case(
            "Session Expiry Interval in PUBLISH [MQTT-2.2.2.2]",
            V5,
            "30 09 0001 't' 05 11 00000001",
            malformed("property not allowed in PUBLISH"),
        ),
        case(
            "unknown property identifier 0x7F",
            V5,
            "30 06 0001 't' 02 7F 00",
            malformed("unknown property identifier"),
        ),
        case(
            "payload not UTF-8 with Payload Format Indicator 1 [MQTT-3.3.2-4]",
            V5,
            "30 07 0001 't' 02 01 01 FF",
            Expect::Error(DecodeError::PayloadFormatInvalid, 0x99),
        ),
        case(
            "Payload Format Indicator 2",
            V5,
            "30 06 0001 't' 02 01 02",
            protocol_error("Payload Format Indicator other than 0 or 1"),
        ),
        case(
            "Response Topic with a wildcard [MQTT-3.3.2-14]",
            V5,
            "30 09 0001 't' 05 08 0002 'a#'",
            protocol_error("Response Topic is empty or contains a wildcard"),
        ),
        case(
            "Subscription Identifier 0 in PUBLISH [MQTT-3.3.2.3.8]",
            V5,
            "30 06 0001 't' 02 0B 00",
            protocol_error("Subscription Identifier of 0"),
        ),
        case(
            "Maximum QoS 2 in CONNACK [MQTT-3.2.2.3.4]",
            V5,
            "20 05 00 00 02 24 02",
            protocol_error("Maximum QoS other than 0 or 1"),
        ),
        case(
            "Topic Alias in CONNACK",
            V5,
            "20 06 00 00 03 23 0001",
            malformed("property not allowed in CONNACK"),
        ),
        case(
            "duplicate Reason String in PUBACK",
            V5,
            "40 0C 0001 80 08 1F 0001 'a' 1F 0001 'b'",
            protocol_error("duplicate Reason String property"),
        ),
        case(
            "Session Expiry Interval in PUBACK",
            V5,
            "40 09 0001 80 05 11 00000001",
            malformed("property not allowed in PUBACK"),
        ),
        case(
            "Server Reference in AUTH",
            V5,
            "F0 06 18 04 1C 0001 'x'",
            malformed("property not allowed in AUTH"),
        ),
        case(
            "Subscription Identifier in UNSUBSCRIBE",
            V5,
            "A2 08 0001 02 0B 01 0001 '#'",
            malformed("property not allowed in UNSUBSCRIBE"),
        ),
        case(
            "Reason String in SUBSCRIBE",
            V5,
            "82 0B 0001 04 1F 0001 'x' 0001 '#' 00",
            malformed("property not allowed in SUBSCRIBE"),
        ),
    ]);
}

#[test]
fn subscribe_rules() {
    let bad_filter = "topic filter uses '+' or '#' other than as a whole level";
    run(vec![
        case(
            "Subscription Identifier 0 [MQTT-3.8.2.1.2]",
            V5,
            "82 09 0001 02 0B 00 0001 '#' 00",
            protocol_error("Subscription Identifier of 0"),
        ),
        case(
            "two Subscription Identifiers in SUBSCRIBE",
            V5,
            "82 0B 0001 04 0B 01 0B 02 0001 '#' 00",
            protocol_error("duplicate Subscription Identifier property"),
        ),
        case(
            "reserved subscription option bits 6-7 [MQTT-3.8.3-5]",
            V5,
            "82 07 0001 00 0001 '#' 40",
            malformed("reserved subscription option bits are set"),
        ),
        case(
            "Retain Handling 3 [MQTT-3.8.3.1]",
            V5,
            "82 07 0001 00 0001 '#' 30",
            protocol_error("Retain Handling 3"),
        ),
        case(
            "subscription Maximum QoS 3 [MQTT-3.8.3.1]",
            V5,
            "82 07 0001 00 0001 '#' 03",
            protocol_error("subscription Maximum QoS 3"),
        ),
        case(
            "No Local on a shared subscription [MQTT-3.8.3-4]",
            V5,
            "82 10 0001 00 000A '$share/g/#' 04",
            protocol_error("No Local set on a shared subscription"),
        ),
        case(
            "3.1.1 requested QoS with reserved bits [3.1.1 MQTT-3-8.3-4]",
            V3,
            "82 06 0001 0001 '#' 04",
            malformed("requested QoS byte is not 0, 1 or 2"),
        ),
        case(
            "3.1.1 requested QoS 3 [3.1.1 MQTT-3-8.3-4]",
            V3,
            "82 06 0001 0001 '#' 03",
            malformed("requested QoS byte is not 0, 1 or 2"),
        ),
        case(
            "3.1.1 SUBSCRIBE without filters [MQTT-3.8.3-3]",
            V3,
            "82 02 0001",
            protocol_error("SUBSCRIBE without topic filters"),
        ),
        case(
            "v5 SUBSCRIBE without filters [MQTT-3.8.3-2]",
            V5,
            "82 03 0001 00",
            protocol_error("SUBSCRIBE without topic filters"),
        ),
        case(
            "filter without its options byte",
            V3,
            "82 05 0001 0001 '#'",
            malformed("topic filter without subscription options"),
        ),
        case(
            "'#' not the last level [MQTT-4.7.1-1]",
            V3,
            "82 08 0001 0003 '#/a' 00",
            malformed(bad_filter),
        ),
        case(
            "'+' inside a level [MQTT-4.7.1-2]",
            V5,
            "82 08 0001 00 0002 'a+' 00",
            malformed(bad_filter),
        ),
        case(
            "empty filter [MQTT-4.7.3-1]",
            V3,
            "82 05 0001 0000 00",
            malformed("empty topic filter"),
        ),
        case(
            "v5 UNSUBSCRIBE without filters [MQTT-3.10.3-2]",
            V5,
            "A2 03 0001 00",
            protocol_error("UNSUBSCRIBE without topic filters"),
        ),
        case(
            "3.1.1 UNSUBSCRIBE without filters [MQTT-3.10.3-2]",
            V3,
            "A2 02 0001",
            protocol_error("UNSUBSCRIBE without topic filters"),
        ),
        case(
            "UNSUBSCRIBE with an invalid filter",
            V3,
            "A2 06 0001 0002 'a#'",
            malformed(bad_filter),
        ),
    ]);
}

#[test]
fn reason_code_rules() {
    run(vec![
        case(
            "PUBACK reason 0x05 [MQTT-3.4.2-1]",
            V5,
            "40 03 0001 05",
            malformed("reason code not allowed in PUBACK"),
        ),
        case(
            "PUBREC reason 0x92 [MQTT-3.5.2-1]",
            V5,
            "50 03 0001 92",
            malformed("reason code not allowed in PUBREC"),
        ),
        case(
            "PUBREL reason 0x10 [MQTT-3.6.2-1]",
            V5,
            "62 03 0001 10",
            malformed("reason code not allowed in PUBREL"),
        ),
        case(
            "PUBCOMP reason 0x80 [MQTT-3.7.2-1]",
            V5,
            "70 03 0001 80",
            malformed("reason code not allowed in PUBCOMP"),
        ),
        case(
            "DISCONNECT reason 0x91 [MQTT-3.14.2-1]",
            V5,
            "E0 01 91",
            malformed("reason code not allowed in DISCONNECT"),
        ),
        case(
            "AUTH reason 0x01 [MQTT-3.15.2-1]",
            V5,
            "F0 02 01 00",
            malformed("reason code not allowed in AUTH"),
        ),
        case(
            "CONNACK reason 0x8B [MQTT-3.2.2-6]",
            V5,
            "20 03 00 8B 00",
            malformed("reason code not allowed in CONNACK"),
        ),
        case(
            "3.1.1 CONNACK return code 6",
            V3,
            "20 02 00 06",
            malformed("unknown connect return code"),
        ),
        case(
            "CONNACK reserved flag bits [MQTT-3.2.2-1]",
            V3,
            "20 02 02 00",
            malformed("reserved connect acknowledge flags are set"),
        ),
        case(
            "3.1.1 SUBACK return code 3",
            V3,
            "90 03 0001 03",
            malformed("unknown SUBACK return code"),
        ),
        case(
            "SUBACK reason 0x11 [MQTT-3.9.3-2]",
            V5,
            "90 04 0001 00 11",
            malformed("reason code not allowed in SUBACK"),
        ),
        case(
            "SUBACK without reason codes",
            V3,
            "90 02 0001",
            protocol_error("SUBACK without reason codes"),
        ),
        case(
            "UNSUBACK reason 0x10 [MQTT-3.11.3-2]",
            V5,
            "B0 04 0001 00 10",
            malformed("reason code not allowed in UNSUBACK"),
        ),
        case(
            "v5 UNSUBACK without reason codes",
            V5,
            "B0 03 0001 00",
            protocol_error("UNSUBACK without reason codes"),
        ),
    ]);
}

/// A property set of many tiny User Properties costs far more in memory than on the wire (a
/// million in a 14 MB CONNECT's will held 86 MB): more than `MAX_USER_PROPERTIES` in one set
/// is refused with Quota exceeded, in every packet that carries them; the limit itself passes.
#[test]
fn user_properties_are_bounded_per_property_set() {
    use bytes::BytesMut;
    use wardgate_protocol::{
        Connect, ConnectProperties, DecodeLimits, MAX_USER_PROPERTIES, ProtocolVersion, Publish,
        PublishProperties, PublishQos, QoS, Will, WillProperties, decode, encode,
    };
    let users = |n: usize| -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), String::new())).collect()
    };
    let connect = |will_users: usize, connect_users: usize| {
        Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: "c".into(),
            will: Some(Will {
                topic: topic("w"),
                payload: b(b"gone"),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: WillProperties {
                    user_properties: users(will_users),
                    ..WillProperties::default()
                },
            }),
            username: None,
            password: None,
            properties: ConnectProperties {
                user_properties: users(connect_users),
                ..ConnectProperties::default()
            },
        }))
    };
    let publish = |n: usize| {
        Packet::Publish(Publish {
            dup: false,
            qos: PublishQos::AtMostOnce,
            retain: false,
            topic: Some(topic("t")),
            properties: PublishProperties {
                user_properties: users(n),
                ..PublishProperties::default()
            },
            payload: b(b""),
        })
    };
    let decoded = |packet: &Packet, version| {
        let mut buf = BytesMut::new();
        encode(packet, ProtocolVersion::V5, &mut buf);
        decode(&mut buf, version, &DecodeLimits::default())
    };
    let over = MAX_USER_PROPERTIES + 1;
    for (name, packet, version) in [
        ("will", connect(over, 0), NONE),
        ("connect", connect(0, over), NONE),
        ("publish", publish(over), V5),
    ] {
        let e = decoded(&packet, version).expect_err(name);
        assert_eq!(
            e,
            DecodeError::TooManyUserProperties {
                max: MAX_USER_PROPERTIES
            },
            "{name}"
        );
        assert_eq!(e.reason_code().0, 0x97, "{name}");
    }
    for (name, packet, version) in [
        (
            "will",
            connect(MAX_USER_PROPERTIES, MAX_USER_PROPERTIES),
            NONE,
        ),
        ("publish", publish(MAX_USER_PROPERTIES), V5),
    ] {
        assert_eq!(
            decoded(&packet, version),
            Ok(Some(packet.clone())),
            "{name}"
        );
    }
}
