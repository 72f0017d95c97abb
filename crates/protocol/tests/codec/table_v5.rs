//! Well-formed MQTT 5.0 packets, byte for byte, including the short forms the spec allows
//! (MQTT 5 §3).

use wardgate_protocol::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, PubAck, Publish, PublishProperties,
    PublishQos, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will, WillProperties,
};

use crate::support::*;

fn connect() -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: String::new(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn ack(id: u16, reason: ReasonCode) -> PubAck {
    PubAck {
        packet_id: pid(id),
        reason,
        properties: AckProperties::default(),
    }
}

#[test]
fn v5_packets_decode_and_re_encode_exactly() {
    let connect_with_props = Connect {
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            ..ConnectProperties::default()
        },
        ..connect()
    };
    let connect_with_will = Connect {
        keep_alive: 0,
        client_id: "c".into(),
        will: Some(Will {
            topic: topic("t"),
            payload: b(b""),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                ..WillProperties::default()
            },
        }),
        password: Some(b(b"p")),
        ..connect()
    };
    let connect_all_props = Connect {
        client_id: "c".into(),
        username: Some("u".into()),
        properties: ConnectProperties {
            session_expiry_interval: Some(0xFFFF_FFFF),
            receive_maximum: Some(20),
            maximum_packet_size: Some(1024),
            topic_alias_maximum: Some(10),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "v2".into())],
            authentication_method: Some("m".into()),
            authentication_data: Some(b(b"\x00\x01")),
        },
        ..connect()
    };
    let connack_props = ConnAck {
        session_present: false,
        reason: ReasonCode::SUCCESS,
        properties: ConnAckProperties {
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            server_keep_alive: Some(60),
            ..ConnAckProperties::default()
        },
    };
    let aliased = Publish {
        dup: false,
        qos: PublishQos::AtMostOnce,
        retain: false,
        topic: None,
        properties: PublishProperties {
            topic_alias: Some(5),
            ..PublishProperties::default()
        },
        payload: b(b""),
    };
    let utf8_publish = Publish {
        dup: false,
        qos: PublishQos::AtLeastOnce(pid(7)),
        retain: false,
        topic: Some(topic("t")),
        properties: PublishProperties {
            payload_format_indicator: Some(true),
            content_type: Some("j".into()),
            ..PublishProperties::default()
        },
        payload: b(b"ok"),
    };
    let server_publish = Publish {
        dup: false,
        qos: PublishQos::AtMostOnce,
        retain: true,
        topic: Some(topic("t")),
        properties: PublishProperties {
            message_expiry_interval: Some(1),
            response_topic: Some(topic("r")),
            correlation_data: Some(b(b"c")),
            subscription_identifiers: vec![1, 268_435_455],
            user_properties: vec![("a".into(), "".into())],
            ..PublishProperties::default()
        },
        payload: b(b"p"),
    };

    run(vec![
        case(
            "CONNECT with Session Expiry Interval",
            NONE,
            "10 12 0004 'MQTT' 05 02 003C 05 11 0000000A 0000",
            canonical(Packet::Connect(Box::new(connect_with_props))),
        ),
        case(
            "CONNECT with will properties and a password without user name (allowed in v5)",
            NONE,
            "10 1C 0004 'MQTT' 05 46 0000 00 0001 'c' 05 18 00000005 0001 't' 0000 0001 'p'",
            canonical(Packet::Connect(Box::new(connect_with_will))),
        ),
        case(
            "CONNECT with every CONNECT property",
            NONE,
            "10 3D 0004 'MQTT' 05 82 003C \
             2C 11 FFFFFFFF 15 0001 'm' 16 0002 0001 17 00 19 01 21 0014 22 000A \
                26 0001 'k' 0001 'v' 26 0001 'k' 0002 'v2' 27 00000400 \
             0001 'c' 0001 'u'",
            canonical(Packet::Connect(Box::new(connect_all_props))),
        ),
        case(
            "CONNACK success without properties",
            V5,
            "20 03 00 00 00",
            canonical(Packet::ConnAck(ConnAck {
                session_present: false,
                reason: ReasonCode::SUCCESS,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "CONNACK with Maximum QoS, Retain Available and Server Keep Alive",
            V5,
            "20 0A 00 00 07 13 003C 24 01 25 00",
            canonical(Packet::ConnAck(connack_props)),
        ),
        case(
            "CONNACK Bad authentication method",
            V5,
            "20 03 00 8C 00",
            canonical(Packet::ConnAck(ConnAck {
                session_present: false,
                reason: ReasonCode::BAD_AUTHENTICATION_METHOD,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "PUBLISH with an empty topic and a Topic Alias",
            V5,
            "30 06 0000 03 23 0005",
            canonical(Packet::Publish(aliased)),
        ),
        case(
            "PUBLISH QoS 1 with a UTF-8 payload and a Content Type",
            V5,
            "32 0E 0001 't' 0007 06 01 01 03 0001 'j' 'ok'",
            canonical(Packet::Publish(utf8_publish)),
        ),
        case(
            "PUBLISH with repeated Subscription Identifiers and more properties",
            V5,
            "31 1F 0001 't' 1A 02 00000001 08 0001 'r' 09 0001 'c' 0B 01 0B FFFFFF7F \
             26 0001 'a' 0000 'p'",
            canonical(Packet::Publish(server_publish)),
        ),
        case(
            "PUBACK with remaining length 2 means Success [MQTT-3.4.2.1]",
            V5,
            "40 02 0001",
            canonical(Packet::PubAck(ack(1, ReasonCode::SUCCESS))),
        ),
        case(
            "PUBACK with a reason and no property length",
            V5,
            "40 03 0001 10",
            canonical(Packet::PubAck(ack(1, ReasonCode::NO_MATCHING_SUBSCRIBERS))),
        ),
        case(
            "PUBACK with an empty property length (longer than needed)",
            V5,
            "40 04 0001 10 00",
            Expect::Packet(Packet::PubAck(ack(1, ReasonCode::NO_MATCHING_SUBSCRIBERS))),
        ),
        case(
            "PUBREC with a reason string",
            V5,
            "50 08 0001 80 04 1F 0001 'x'",
            canonical(Packet::PubRec(PubAck {
                properties: AckProperties {
                    reason_string: Some("x".into()),
                    user_properties: Vec::new(),
                },
                ..ack(1, ReasonCode::UNSPECIFIED_ERROR)
            })),
        ),
        case(
            "PUBREL Packet Identifier not found",
            V5,
            "62 03 0001 92",
            canonical(Packet::PubRel(ack(
                1,
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            ))),
        ),
        case(
            "PUBCOMP",
            V5,
            "70 02 0009",
            canonical(Packet::PubComp(ack(9, ReasonCode::SUCCESS))),
        ),
        case(
            "SUBSCRIBE with a Subscription Identifier and every option",
            V5,
            "82 09 0001 02 0B 07 0001 '#' 2E",
            canonical(Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                subscription_identifier: Some(7),
                user_properties: Vec::new(),
                filters: vec![(
                    filter("#"),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DontSend,
                    },
                )],
            })),
        ),
        case(
            "SUBSCRIBE to a shared filter",
            V5,
            "82 10 0003 00 000A '$share/g/#' 11",
            canonical(Packet::Subscribe(Subscribe {
                packet_id: pid(3),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: vec![(
                    filter("$share/g/#"),
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        retain_handling: RetainHandling::SendIfNew,
                        ..SubscriptionOptions::default()
                    },
                )],
            })),
        ),
        case(
            "SUBACK",
            V5,
            "90 05 0001 00 02 87",
            canonical(Packet::SubAck(SubAck {
                packet_id: pid(1),
                properties: AckProperties::default(),
                reasons: vec![ReasonCode::GRANTED_QOS_2, ReasonCode::NOT_AUTHORIZED],
            })),
        ),
        case(
            "UNSUBSCRIBE with a user property",
            V5,
            "A2 0D 0001 07 26 0001 'k' 0001 'v' 0001 '#'",
            canonical(Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(1),
                user_properties: vec![("k".into(), "v".into())],
                filters: vec![filter("#")],
            })),
        ),
        case(
            "UNSUBACK No subscription existed",
            V5,
            "B0 04 0001 00 11",
            canonical(Packet::UnsubAck(UnsubAck {
                packet_id: pid(1),
                properties: AckProperties::default(),
                reasons: vec![ReasonCode::NO_SUBSCRIPTION_EXISTED],
            })),
        ),
        case(
            "DISCONNECT with remaining length 0 is a normal disconnection",
            V5,
            "E0 00",
            canonical(Packet::Disconnect(Disconnect::new(
                ReasonCode::NORMAL_DISCONNECTION,
            ))),
        ),
        case(
            "DISCONNECT with will, no property length",
            V5,
            "E0 01 04",
            canonical(Packet::Disconnect(Disconnect::new(
                ReasonCode::DISCONNECT_WITH_WILL,
            ))),
        ),
        case(
            "DISCONNECT with a reason string and a session expiry",
            V5,
            "E0 0B 8B 09 11 0000001E 1F 0001 'x'",
            canonical(Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_SHUTTING_DOWN,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(30),
                    reason_string: Some("x".into()),
                    ..DisconnectProperties::default()
                },
            })),
        ),
        case(
            "AUTH with remaining length 0 is Success",
            V5,
            "F0 00",
            canonical(Packet::Auth(Auth {
                reason: ReasonCode::SUCCESS,
                properties: AuthProperties::default(),
            })),
        ),
        case(
            "AUTH continue with a method and data",
            V5,
            "F0 0B 18 09 15 0001 'm' 16 0002 ABCD",
            canonical(Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some("m".into()),
                    authentication_data: Some(b(b"\xAB\xCD")),
                    ..AuthProperties::default()
                },
            })),
        ),
        case("PINGREQ", V5, "C0 00", canonical(Packet::PingReq)),
    ]);
}
