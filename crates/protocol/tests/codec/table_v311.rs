//! Well-formed MQTT 3.1.1 (and 3.1) packets, byte for byte (MQTT 3.1.1 §3).

use wardgate_protocol::{
    AckProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, Packet, ProtocolVersion, PubAck, Publish, PublishProperties, PublishQos,
    QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
    WillProperties,
};

use crate::support::*;

fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn publish(qos: PublishQos, topic_name: &str, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Some(topic(topic_name)),
        properties: PublishProperties::default(),
        payload: b(payload),
    }
}

#[test]
fn v311_packets_decode_and_re_encode_exactly() {
    let full_connect = Connect {
        keep_alive: 10,
        client_id: "id".into(),
        will: Some(Will {
            topic: topic("w"),
            payload: b(b"wp"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some("u".into()),
        password: Some(b(b"pw")),
        ..connect(ProtocolVersion::V311, "")
    };
    let mut dup_qos2 = publish(PublishQos::ExactlyOnce(pid(5)), "t", b"xy");
    dup_qos2.dup = true;
    dup_qos2.retain = true;

    run(vec![
        case(
            "CONNECT minimal, empty client id [MQTT-3.1.3-6]",
            NONE,
            "10 0C 0004 'MQTT' 04 02 003C 0000",
            canonical(Packet::Connect(Box::new(connect(
                ProtocolVersion::V311,
                "",
            )))),
        ),
        case(
            "CONNECT MQTT 3.1 (MQIsdp, level 3)",
            NONE,
            "10 0F 0006 'MQIsdp' 03 02 003C 0001 'a'",
            canonical(Packet::Connect(Box::new(connect(
                ProtocolVersion::V31,
                "a",
            )))),
        ),
        case(
            "CONNECT with will QoS 1 retained, user name and password",
            NONE,
            "10 1C 0004 'MQTT' 04 EE 000A 0002 'id' 0001 'w' 0002 'wp' 0001 'u' 0002 'pw'",
            canonical(Packet::Connect(Box::new(full_connect))),
        ),
        case(
            "CONNECT without clean session",
            NONE,
            "10 0D 0004 'MQTT' 04 00 0000 0001 'c'",
            canonical(Packet::Connect(Box::new(Connect {
                clean_start: false,
                keep_alive: 0,
                ..connect(ProtocolVersion::V311, "c")
            }))),
        ),
        case(
            "CONNACK accepted, session present",
            V3,
            "20 02 01 00",
            canonical(Packet::ConnAck(ConnAck {
                session_present: true,
                reason: ReasonCode::SUCCESS,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "CONNACK return code 5 is Not authorized",
            V3,
            "20 02 00 05",
            canonical(Packet::ConnAck(ConnAck {
                session_present: false,
                reason: ReasonCode::NOT_AUTHORIZED,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "CONNACK return code 3 is Server unavailable",
            V3,
            "20 02 00 03",
            canonical(Packet::ConnAck(ConnAck {
                session_present: false,
                reason: ReasonCode::SERVER_UNAVAILABLE,
                properties: ConnAckProperties::default(),
            })),
        ),
        case(
            "PUBLISH QoS 0",
            V3,
            "30 07 0003 'a/b' 'hi'",
            canonical(Packet::Publish(publish(
                PublishQos::AtMostOnce,
                "a/b",
                b"hi",
            ))),
        ),
        case(
            "PUBLISH QoS 0 with an empty payload",
            V3,
            "30 03 0001 't'",
            canonical(Packet::Publish(publish(PublishQos::AtMostOnce, "t", b""))),
        ),
        case(
            "PUBLISH QoS 1",
            V3,
            "32 07 0001 't' 0001 'hi'",
            canonical(Packet::Publish(publish(
                PublishQos::AtLeastOnce(pid(1)),
                "t",
                b"hi",
            ))),
        ),
        case(
            "PUBLISH QoS 2, DUP and RETAIN",
            V3,
            "3D 07 0001 't' 0005 'xy'",
            canonical(Packet::Publish(dup_qos2)),
        ),
        case(
            "PUBLISH to a $SYS topic with a UTF-8 level",
            V3,
            "30 0A 0008 '$SYS/' C3A9 'x' ",
            canonical(Packet::Publish(publish(
                PublishQos::AtMostOnce,
                "$SYS/éx",
                b"",
            ))),
        ),
        case(
            "PUBACK",
            V3,
            "40 02 0001",
            canonical(Packet::PubAck(PubAck::new(pid(1)))),
        ),
        case(
            "PUBREC",
            V3,
            "50 02 FFFF",
            canonical(Packet::PubRec(PubAck::new(pid(65535)))),
        ),
        case(
            "PUBREL has flags 0010 [MQTT-3.6.1-1]",
            V3,
            "62 02 0002",
            canonical(Packet::PubRel(PubAck::new(pid(2)))),
        ),
        case(
            "PUBCOMP",
            V3,
            "70 02 0002",
            canonical(Packet::PubComp(PubAck::new(pid(2)))),
        ),
        case(
            "SUBSCRIBE two filters",
            V3,
            "82 0C 0001 0003 'a/+' 01 0001 '#' 02",
            canonical(Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: vec![
                    (filter("a/+"), SubscriptionOptions::new(QoS::AtLeastOnce)),
                    (filter("#"), SubscriptionOptions::new(QoS::ExactlyOnce)),
                ],
            })),
        ),
        case(
            "SUBACK with a failure",
            V3,
            "90 04 0001 01 80",
            canonical(Packet::SubAck(SubAck {
                packet_id: pid(1),
                properties: AckProperties::default(),
                reasons: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
            })),
        ),
        case(
            "UNSUBSCRIBE",
            V3,
            "A2 05 0002 0001 '#'",
            canonical(Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(2),
                user_properties: Vec::new(),
                filters: vec![filter("#")],
            })),
        ),
        case(
            "UNSUBACK has no reason codes in 3.1.1",
            V3,
            "B0 02 0002",
            canonical(Packet::UnsubAck(UnsubAck {
                packet_id: pid(2),
                properties: AckProperties::default(),
                reasons: Vec::new(),
            })),
        ),
        case("PINGREQ", V3, "C0 00", canonical(Packet::PingReq)),
        case("PINGRESP", V3, "D0 00", canonical(Packet::PingResp)),
        case(
            "DISCONNECT",
            V3,
            "E0 00",
            canonical(Packet::Disconnect(Disconnect {
                reason: ReasonCode::NORMAL_DISCONNECTION,
                properties: DisconnectProperties::default(),
            })),
        ),
        case(
            "MQTT 3.1 session decodes with the 3.1.1 layout",
            Some(ProtocolVersion::V31),
            "82 06 0001 0001 '#' 00",
            canonical(Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: vec![(filter("#"), SubscriptionOptions::new(QoS::AtMostOnce))],
            })),
        ),
    ]);
}

#[test]
fn v311_incomplete_input_asks_for_more() {
    run(vec![
        case("empty buffer", V3, "", Expect::Incomplete),
        case("first byte only", V3, "30", Expect::Incomplete),
        case(
            "remaining length unfinished",
            V3,
            "30 80",
            Expect::Incomplete,
        ),
        case("body unfinished", V3, "30 05 0001", Expect::Incomplete),
        case(
            "CONNECT unfinished",
            NONE,
            "10 0C 0004 'MQ'",
            Expect::Incomplete,
        ),
    ]);
}
