//! MQTT 5.0 behaviour.

use std::time::Duration;

use bytes::Bytes;
use wardgate_protocol::{
    Packet, ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubscriptionOptions, TopicName, Will, WillProperties,
};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};

const V: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test]
async fn connack_advertises_capabilities_and_assigns_client_ids() {
    let b = TestBroker::start().await;
    let (_, ack) = RawClient::connect(b.tcp, V, "").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    let assigned = ack
        .properties
        .assigned_client_identifier
        .expect("an id is assigned");
    assert!(!assigned.is_empty());
    assert_eq!(ack.properties.shared_subscription_available, Some(true));
    assert_eq!(
        ack.properties.subscription_identifiers_available,
        Some(true)
    );
    assert!(ack.properties.topic_alias_maximum.is_some_and(|m| m > 0));
    assert!(ack.properties.receive_maximum.is_some());
}

#[tokio::test]
async fn takeover_sends_disconnect_0x8e_to_the_old_connection() {
    let b = TestBroker::start().await;
    let (mut old, _) = RawClient::connect(b.tcp, V, "same").await;
    let (_new, ack) = RawClient::connect(b.tcp, V, "same").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    match old.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(old.recv().await, Received::Closed);
}

#[tokio::test]
async fn session_expiry_keeps_then_drops_the_session() {
    let b = TestBroker::start().await;
    let mut c = connect_packet(V, "exp", true);
    c.properties.session_expiry_interval = Some(1);
    let (mut first, _) = RawClient::connect_with(b.tcp, c.clone()).await;
    first.subscribe("e", QoS::AtLeastOnce).await;
    first.drop_connection().await;
    let mut resume = c.clone();
    resume.clean_start = false;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (again, ack) = RawClient::connect_with(b.tcp, resume.clone()).await;
    assert!(ack.session_present, "resumed within the expiry");
    again.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let (_, ack) = RawClient::connect_with(b.tcp, resume).await;
    assert!(!ack.session_present, "expired after 1 s");
}

#[tokio::test]
async fn disconnect_can_shorten_session_expiry() {
    let b = TestBroker::start().await;
    let mut c = connect_packet(V, "short", true);
    c.properties.session_expiry_interval = Some(600);
    let (mut first, _) = RawClient::connect_with(b.tcp, c.clone()).await;
    let mut d = wardgate_protocol::Disconnect::new(ReasonCode::SUCCESS);
    d.properties.session_expiry_interval = Some(0);
    first.send(&Packet::Disconnect(d)).await;
    assert_eq!(first.recv().await, Received::Closed);
    c.clean_start = false;
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert!(!ack.session_present);
}

#[tokio::test]
async fn topic_aliases_in_both_directions() {
    let b = TestBroker::start().await;
    let mut sc = connect_packet(V, "sub", true);
    sc.properties.topic_alias_maximum = Some(5);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("alias/#", QoS::AtMostOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let mut p = publish_packet("alias/long/topic", b"1", QoS::AtMostOnce, false, 0);
    p.properties.topic_alias = Some(1);
    publ.send(&Packet::Publish(p.clone())).await;
    p.topic = None;
    p.payload = Bytes::from_static(b"2");
    publ.send(&Packet::Publish(p)).await;

    let first = sub.publish_received().await;
    assert_eq!(
        first.topic.as_ref().map(|t| t.as_str()),
        Some("alias/long/topic")
    );
    let alias = first
        .properties
        .topic_alias
        .expect("broker assigns an alias");
    let second = sub.publish_received().await;
    assert_eq!(second.topic, None, "second delivery uses the alias alone");
    assert_eq!(second.properties.topic_alias, Some(alias));
    assert_eq!(&second.payload[..], b"2");
}

#[tokio::test]
async fn unknown_topic_alias_is_a_protocol_error() {
    let b = TestBroker::start().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let mut p = publish_packet("t", b"x", QoS::AtMostOnce, false, 0);
    p.topic = None;
    p.properties.topic_alias = Some(3);
    publ.send(&Packet::Publish(p)).await;
    match publ.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn subscription_identifiers_and_properties_are_forwarded() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "sub").await;
    sub.subscribe_with(
        "props/+",
        SubscriptionOptions::new(QoS::AtMostOnce),
        Some(42),
    )
    .await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let mut p = publish_packet("props/x", b"{}", QoS::AtMostOnce, false, 0);
    p.properties = PublishProperties {
        payload_format_indicator: Some(true),
        content_type: Some("application/json".into()),
        response_topic: Some(TopicName::new("reply/here").expect("valid")),
        correlation_data: Some(Bytes::from_static(b"corr-1")),
        user_properties: vec![("k".into(), "v".into()), ("k".into(), "v2".into())],
        ..Default::default()
    };
    publ.send(&Packet::Publish(p.clone())).await;
    let got = sub.publish_received().await;
    assert_eq!(got.properties.subscription_identifiers, vec![42]);
    assert_eq!(got.properties.content_type, p.properties.content_type);
    assert_eq!(got.properties.response_topic, p.properties.response_topic);
    assert_eq!(
        got.properties.correlation_data,
        p.properties.correlation_data
    );
    assert_eq!(got.properties.user_properties, p.properties.user_properties);
    assert_eq!(got.properties.payload_format_indicator, Some(true));
}

#[tokio::test]
async fn message_expiry_is_decremented_and_expired_messages_dropped() {
    let b = TestBroker::start().await;
    let mut sc = connect_packet(V, "slow", true);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc.clone()).await;
    sub.subscribe("exp/#", QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let mut short = publish_packet("exp/short", b"short", QoS::AtLeastOnce, false, 1);
    short.properties.message_expiry_interval = Some(1);
    publ.send(&Packet::Publish(short)).await;
    let mut long = publish_packet("exp/long", b"long", QoS::AtLeastOnce, false, 2);
    long.properties.message_expiry_interval = Some(100);
    publ.send(&Packet::Publish(long)).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    sc.clean_start = false;
    let (mut back, _) = RawClient::connect_with(b.tcp, sc).await;
    let got = back.publish_received().await;
    assert_eq!(&got.payload[..], b"long", "the expired message was dropped");
    let left = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!((97..=98).contains(&left), "remaining interval {left}");
}

#[tokio::test]
async fn no_local_and_retain_as_published() {
    let b = TestBroker::start().await;
    let (mut c, _) = RawClient::connect(b.tcp, V, "self").await;
    let mut o = SubscriptionOptions::new(QoS::AtMostOnce);
    o.no_local = true;
    o.retain_as_published = true;
    c.subscribe_with("nl", o, None).await;
    c.publish("nl", b"mine", QoS::AtMostOnce, true, 0).await;
    let (mut other, _) = RawClient::connect(b.tcp, V, "other").await;
    other
        .publish("nl", b"theirs", QoS::AtMostOnce, true, 0)
        .await;
    let got = c.publish_received().await;
    assert_eq!(&got.payload[..], b"theirs");
    assert!(got.retain, "Retain As Published keeps the flag");
}

#[tokio::test]
async fn retain_handling_2_sends_no_retained() {
    let b = TestBroker::start().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("rh", b"kept", QoS::AtLeastOnce, true, 1).await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "sub").await;
    let mut o = SubscriptionOptions::new(QoS::AtLeastOnce);
    o.retain_handling = RetainHandling::DontSend;
    sub.subscribe_with("rh", o, None).await;
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
    o.retain_handling = RetainHandling::SendIfNew;
    sub.subscribe_with("rh", o, None).await;
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        Received::Timeout,
        "not new"
    );
}

#[tokio::test]
async fn shared_subscription_round_robins() {
    let b = TestBroker::start().await;
    let mut members = Vec::new();
    for name in ["m1", "m2"] {
        let (mut m, _) = RawClient::connect(b.tcp, V, name).await;
        m.subscribe("$share/g/work/+", QoS::AtMostOnce).await;
        members.push(m);
    }
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    for i in 0..4 {
        publ.publish(&format!("work/{i}"), b"job", QoS::AtMostOnce, false, 0)
            .await;
    }
    for m in &mut members {
        for _ in 0..2 {
            m.publish_received().await;
        }
        assert_eq!(
            m.recv_within(Duration::from_millis(200)).await,
            Received::Timeout
        );
    }
}

#[tokio::test]
async fn will_delay_and_disconnect_with_will() {
    let b = TestBroker::start().await;
    let (mut watcher, _) = RawClient::connect(b.tcp, V, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let mut c = connect_packet(V, "dying", true);
    c.properties.session_expiry_interval = Some(60);
    c.will = Some(Will {
        topic: TopicName::new("wills/dying").expect("valid"),
        payload: Bytes::from_static(b"late"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(1),
            ..Default::default()
        },
    });
    let (mut dying, _) = RawClient::connect_with(b.tcp, c).await;
    dying
        .send(&Packet::Disconnect(wardgate_protocol::Disconnect::new(
            ReasonCode::DISCONNECT_WITH_WILL,
        )))
        .await;
    assert_eq!(
        watcher.recv_within(Duration::from_millis(500)).await,
        Received::Timeout,
        "delayed"
    );
    assert_eq!(&watcher.publish_received().await.payload[..], b"late");
}

#[tokio::test]
async fn enhanced_auth_is_refused_with_bad_authentication_method() {
    let b = TestBroker::start().await;
    let mut c = connect_packet(V, "sat", true);
    c.properties.authentication_method = Some("K8S-SAT".into());
    let (mut conn, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert_eq!(conn.recv().await, Received::Closed);
}

#[tokio::test]
async fn client_maximum_packet_size_is_honoured() {
    let b = TestBroker::start().await;
    let mut sc = connect_packet(V, "small", true);
    sc.properties.maximum_packet_size = Some(64);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("big/#", QoS::AtMostOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("big/1", &[b'x'; 200], QoS::AtMostOnce, false, 0)
        .await;
    publ.publish("big/2", b"small", QoS::AtMostOnce, false, 0)
        .await;
    let got = sub.publish_received().await;
    assert_eq!(&got.payload[..], b"small", "the large message was not sent");
}

/// The full CONNACK is 24 bytes; a client whose Maximum Packet Size is 20 gets it without the
/// properties that repeat their default (the four "available" flags), one whose limit is 24
/// gets all of it [MQTT-3.1.2-24].
#[tokio::test]
async fn a_connack_larger_than_the_clients_maximum_packet_size_drops_default_properties() {
    let b = TestBroker::start().await;
    for (limit, flags) in [(20, None), (24, Some(true)), (u32::MAX, Some(true))] {
        let mut c = connect_packet(V, &format!("limit-{limit}"), true);
        c.properties.maximum_packet_size = Some(limit);
        let (_, ack) = RawClient::connect_with(b.tcp, c).await;
        assert_eq!(ack.reason, ReasonCode::SUCCESS);
        let p = &ack.properties;
        assert_eq!(p.retain_available, flags, "limit {limit}");
        assert_eq!(p.wildcard_subscription_available, flags, "limit {limit}");
        assert_eq!(p.subscription_identifiers_available, flags, "limit {limit}");
        assert_eq!(p.shared_subscription_available, flags, "limit {limit}");
        // What is not a default stays.
        assert_eq!(p.receive_maximum, Some(1024));
        assert!(p.maximum_packet_size.is_some() && p.topic_alias_maximum.is_some());
        let len = wardgate_protocol::encoded_len(&Packet::ConnAck(ack.clone()), V);
        assert!(
            len <= limit as usize,
            "a {len}-byte CONNACK for a limit of {limit}"
        );
    }
}

/// A client whose Maximum Packet Size no CONNACK fits (2 bytes) is closed without one, and
/// takes no session: nothing was attached for it.
#[tokio::test]
async fn a_client_no_connack_fits_is_closed_without_one_and_gets_no_session() {
    let b = TestBroker::start().await;
    let mut c = connect_packet(V, "tiny-limit", false);
    c.properties.maximum_packet_size = Some(2);
    c.properties.session_expiry_interval = Some(600);
    let mut conn = RawClient::open(b.tcp, V).await;
    conn.send(&Packet::Connect(Box::new(c))).await;
    assert_eq!(conn.recv().await, Received::Closed);
    assert!(b.broker.session("tiny-limit").is_none());

    // A refusal (here: an authentication method the port does not have) is not sent either.
    let mut c = connect_packet(V, "tiny-refused", true);
    c.properties.maximum_packet_size = Some(4);
    c.properties.authentication_method = Some("K8S-SAT".into());
    let mut conn = RawClient::open(b.tcp, V).await;
    conn.send(&Packet::Connect(Box::new(c))).await;
    assert_eq!(conn.recv().await, Received::Closed);
}

/// `$SYS` is the broker's (spec 4.7.2): a client's PUBLISH there gets 0x87 (QoS 0: dropped) and
/// reaches no one, retained or not; a will there refuses the CONNECT with 0x87. Mosquitto
/// bridges keep `$SYS/broker/connection/<id>/state` (their state, and their will).
#[tokio::test]
async fn clients_cannot_publish_to_sys() {
    let b = TestBroker::start().await;
    let (mut spoofer, _) = RawClient::connect(b.tcp, V, "spoofer").await;
    for (qos, id) in [
        (QoS::AtMostOnce, 0),
        (QoS::AtLeastOnce, 1),
        (QoS::ExactlyOnce, 2),
    ] {
        let ack = spoofer
            .publish("$SYS/broker/version", b"spoofed", qos, true, id)
            .await;
        let reason = match ack {
            None => None,
            Some(Packet::PubAck(a) | Packet::PubRec(a)) => Some(a.reason),
            Some(other) => panic!("{other:?}"),
        };
        let want = (qos != QoS::AtMostOnce).then_some(ReasonCode::NOT_AUTHORIZED);
        assert_eq!(reason, want, "{qos:?}");
    }
    let ack = spoofer
        .publish("$SYS/x", b"spoofed", QoS::AtLeastOnce, true, 3)
        .await;
    assert!(matches!(ack, Some(Packet::PubAck(a)) if a.reason == ReasonCode::NOT_AUTHORIZED));
    let ack = spoofer
        .publish(
            "$SYS/broker/connection/bridge-1/state",
            b"1",
            QoS::AtLeastOnce,
            true,
            4,
        )
        .await;
    assert!(
        matches!(&ack, Some(Packet::PubAck(a)) if !a.reason.is_error()),
        "{ack:?}"
    );

    let (mut reader, _) = RawClient::connect(b.tcp, V, "reader").await;
    reader.subscribe("$SYS/#", QoS::AtLeastOnce).await;
    let got = super::payloads_until_quiet(&mut reader, Duration::from_millis(300)).await;
    assert!(!got.iter().any(|p| &p[..] == b"spoofed"), "{got:?}");
    assert!(
        got.iter().any(|p| &p[..] == b"1"),
        "the bridge state is kept: {got:?}"
    );

    let mut c = connect_packet(V, "sys-will", true);
    c.will = Some(super::will_on("$SYS/broker/uptime"));
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED);
    let mut c = connect_packet(V, "bridge-2", true);
    c.will = Some(super::will_on("$SYS/broker/connection/bridge-2/state"));
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
}

/// A SUBACK carries a reason code per filter: 30 filters make a 35-byte SUBACK, which a client
/// whose Maximum Packet Size is 20 may not be sent [MQTT-3.1.2-24]. Nothing is subscribed and the
/// connection ends with DISCONNECT 0x95, instead of an oversized SUBACK; UNSUBSCRIBE alike.
#[tokio::test]
async fn a_suback_larger_than_the_clients_maximum_packet_size_is_not_sent() {
    let b = TestBroker::start().await;
    for unsubscribe in [false, true] {
        let mut c = connect_packet(V, "small-acks", true);
        c.properties.maximum_packet_size = Some(20);
        let (mut conn, _) = RawClient::connect_with(b.tcp, c).await;
        let filters: Vec<_> = (0..30)
            .map(|i| wardgate_protocol::TopicFilter::new(format!("f/{i}")).expect("filter"))
            .collect();
        let packet = if unsubscribe {
            Packet::Unsubscribe(wardgate_protocol::Unsubscribe {
                packet_id: wardgate_testkit::client::pid(1),
                user_properties: Vec::new(),
                filters,
            })
        } else {
            Packet::Subscribe(wardgate_protocol::Subscribe {
                packet_id: wardgate_testkit::client::pid(1),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: filters
                    .into_iter()
                    .map(|f| (f, SubscriptionOptions::new(QoS::AtMostOnce)))
                    .collect(),
            })
        };
        conn.send(&packet).await;
        match conn.recv().await {
            Received::Packet(Packet::Disconnect(d)) => {
                assert_eq!(d.reason, ReasonCode::PACKET_TOO_LARGE)
            }
            other => panic!("unsubscribe {unsubscribe}: {other:?}"),
        }
        assert_eq!(
            b.broker
                .stats()
                .subscriptions
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "nothing subscribed"
        );
    }
}

#[tokio::test]
async fn receive_maximum_limits_unacknowledged_deliveries() {
    let b = TestBroker::start().await;
    let mut sc = connect_packet(V, "rm", true);
    sc.properties.receive_maximum = Some(1);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("rm", QoS::AtLeastOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("rm", b"1", QoS::AtLeastOnce, false, 1).await;
    publ.publish("rm", b"2", QoS::AtLeastOnce, false, 2).await;
    let first = sub.publish_received().await;
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
    sub.puback(first.qos.packet_id().expect("id")).await;
    assert_eq!(&sub.publish_received().await.payload[..], b"2");
}

#[tokio::test]
async fn graceful_shutdown_sends_0x8b() {
    let b = TestBroker::start().await;
    let (mut c, _) = RawClient::connect(b.tcp, V, "c").await;
    b.shutdown();
    match c.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::SERVER_SHUTTING_DOWN),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn puback_reports_no_matching_subscribers() {
    let b = TestBroker::start().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    match publ
        .publish("nobody/listens", b"x", QoS::AtLeastOnce, false, 1)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn registry_lists_live_connections() {
    let b = TestBroker::start().await;
    let (c, _) = RawClient::connect(b.tcp, V, "listed").await;
    let live = b.registry.snapshot();
    assert_eq!(live.len(), 1);
    assert_eq!(&**live[0].client_id(), "listed");
    assert_eq!(live[0].port, b.tcp.port());
    c.disconnect().await;
    for _ in 0..50 {
        if b.registry.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the connection stayed registered after DISCONNECT");
}

#[tokio::test]
async fn subscription_identifier_from_a_client_is_a_protocol_error() {
    let b = TestBroker::start().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let mut p = publish_packet("t", b"x", QoS::AtMostOnce, false, 0);
    p.properties.subscription_identifiers = vec![7];
    publ.send(&Packet::Publish(p)).await;
    match publ.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_every_queue_dropped_is_not_acknowledged_as_delivered() {
    let b = super::tiny_queues().await;
    let mut sc = connect_packet(V, "away", true);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("full/#", QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    let first = publ
        .publish("full/1", b"queued", QoS::AtLeastOnce, false, 1)
        .await;
    assert!(
        matches!(&first, Some(Packet::PubAck(a)) if a.reason == ReasonCode::SUCCESS),
        "{first:?}"
    );
    let second = publ
        .publish("full/2", b"dropped", QoS::AtLeastOnce, false, 2)
        .await;
    assert!(
        matches!(&second, Some(Packet::PubAck(a)) if a.reason == ReasonCode::QUOTA_EXCEEDED),
        "{second:?}"
    );
    let third = publ
        .publish("full/3", b"dropped", QoS::ExactlyOnce, false, 3)
        .await;
    assert!(
        matches!(&third, Some(Packet::PubRec(a)) if a.reason == ReasonCode::QUOTA_EXCEEDED),
        "{third:?}"
    );
}

/// PUBLISH packets that arrive together are routed together (one run per topic), but every
/// answer leaves in the order the packets came [MQTT-4.6.0-2]: a topic nobody subscribes to
/// (0x10) and a PINGREQ in the middle of a pipelined burst keep their places.
#[tokio::test]
async fn pipelined_publishes_are_acknowledged_in_order() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "run-sub").await;
    sub.subscribe("run/t", QoS::AtLeastOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "run-pub").await;
    let mut burst = bytes::BytesMut::new();
    let publish = |topic: &str, id: u16, burst: &mut bytes::BytesMut| {
        let p = publish_packet(topic, &id.to_be_bytes(), QoS::AtLeastOnce, false, id);
        wardgate_protocol::encode(&Packet::Publish(p), V, burst);
    };
    publish("run/t", 1, &mut burst);
    publish("run/t", 2, &mut burst);
    publish("run/nobody", 3, &mut burst);
    wardgate_protocol::encode(&Packet::PingReq, V, &mut burst);
    for id in 4..=40 {
        publish("run/t", id, &mut burst);
    }
    publ.send_bytes(&burst).await;
    let mut answers = Vec::new();
    while answers.len() < 41 {
        match publ.recv().await {
            Received::Packet(Packet::PubAck(ack)) => {
                answers.push((ack.packet_id.get(), ack.reason));
            }
            Received::Packet(Packet::PingResp) => answers.push((0, ReasonCode::SUCCESS)),
            other => panic!("after {answers:?}: {other:?}"),
        }
    }
    let mut expected = vec![
        (1, ReasonCode::SUCCESS),
        (2, ReasonCode::SUCCESS),
        (3, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        (0, ReasonCode::SUCCESS),
    ];
    expected.extend((4..=40).map(|id| (id, ReasonCode::SUCCESS)));
    assert_eq!(answers, expected);
    let mut got = Vec::new();
    while got.len() < 39 {
        let p = sub.publish_received().await;
        got.push(u16::from_be_bytes([p.payload[0], p.payload[1]]));
        sub.puback(p.qos.packet_id().expect("QoS 1")).await;
    }
    let mut sent: Vec<u16> = vec![1, 2];
    sent.extend(4..=40);
    assert_eq!(got, sent);
}

/// A QoS 2 PUBLISH answered with an error PUBREC (0x87 not authorized, 0x97 every matching
/// queue full) ends its flow: no PUBREL follows, so its packet id must not stay recorded as
/// received. The next PUBLISH with the same packet id is a new message and is routed, not
/// answered with PUBREC as a duplicate.
#[tokio::test]
async fn a_qos2_packet_id_refused_with_an_error_pubrec_starts_a_new_message() {
    let b = crate::mqtt::tiny_queues().await;
    let mut sc = connect_packet(V, "er-away", true);
    sc.properties.session_expiry_interval = Some(60);
    let (mut away, _) = RawClient::connect_with(b.tcp, sc).await;
    away.subscribe("full/#", QoS::AtLeastOnce).await;
    away.drop_connection().await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "er-sub").await;
    sub.subscribe("ok", QoS::AtLeastOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "er-pub").await;
    let reason = |ack: Option<Packet>| match ack {
        Some(Packet::PubRec(a)) => a.reason,
        other => panic!("expected PUBREC, got {other:?}"),
    };
    let first = publ
        .publish("full/1", b"q", QoS::AtLeastOnce, false, 1)
        .await;
    assert!(
        matches!(&first, Some(Packet::PubAck(a)) if a.reason == ReasonCode::SUCCESS),
        "the offline subscriber's queue is now full: {first:?}"
    );
    for (topic, id, refused) in [
        ("$SYS/x", 2, ReasonCode::NOT_AUTHORIZED),
        ("full/2", 3, ReasonCode::QUOTA_EXCEEDED),
    ] {
        let first = publ
            .publish(topic, b"refused", QoS::ExactlyOnce, false, id)
            .await;
        assert_eq!(reason(first), refused, "{topic}");
        let again = publ
            .publish("ok", topic.as_bytes(), QoS::ExactlyOnce, false, id)
            .await;
        assert_eq!(reason(again), ReasonCode::SUCCESS, "{topic}");
        let got = sub.publish_received().await;
        assert_eq!(
            &got.payload[..],
            topic.as_bytes(),
            "packet id {id} is routed"
        );
        sub.puback(got.qos.packet_id().expect("QoS 1")).await;
    }
}

/// A new QoS 2 PUBLISH past the server's Receive Maximum ends the connection with DISCONNECT
/// 0x93, unacknowledged. Its packet id must not stay recorded as received: the client's
/// retransmission (DUP) after resuming its session is routed, not answered with PUBREC as a
/// duplicate of a message that was never delivered.
#[tokio::test]
async fn a_qos2_message_refused_for_receive_maximum_is_routed_when_sent_again() {
    let conn = wardgate_server::ConnectionSettings {
        receive_maximum: 1,
        ..Default::default()
    };
    let b = TestBroker::with(Default::default(), conn).await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "rm2-sub").await;
    sub.subscribe("rm2", QoS::AtLeastOnce).await;
    let mut pc = connect_packet(V, "rm2-pub", false);
    pc.properties.session_expiry_interval = Some(60);
    let (mut publ, _) = RawClient::connect_with(b.tcp, pc.clone()).await;
    assert!(matches!(
        publ.publish("rm2", b"1", QoS::ExactlyOnce, false, 1).await,
        Some(Packet::PubRec(_))
    ));
    // Packet 1 awaits PUBREL: packet 2 exceeds the Receive Maximum of 1.
    match publ.publish("rm2", b"2", QoS::ExactlyOnce, false, 2).await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
    assert_eq!(&sub.publish_received().await.payload[..], b"1");

    // The client resumes, completes packet 1 and sends packet 2 again with DUP.
    let (mut publ, ack) = RawClient::connect_with(b.tcp, pc).await;
    assert!(ack.session_present);
    publ.send(&Packet::PubRel(wardgate_protocol::PubAck::new(
        wardgate_testkit::client::pid(1),
    )))
    .await;
    assert!(matches!(publ.packet().await, Packet::PubComp(_)));
    let mut again = publish_packet("rm2", b"2", QoS::ExactlyOnce, false, 2);
    again.dup = true;
    publ.send(&Packet::Publish(again)).await;
    assert!(matches!(publ.packet().await, Packet::PubRec(_)));
    assert_eq!(
        &sub.publish_received().await.payload[..],
        b"2",
        "the retransmission is routed"
    );
}

/// A session with Session Expiry 0 ends when its network connection closes (v5 3.1.4: the
/// original session ends on takeover): a connection with Clean Start 0 that takes the client ID
/// over gets Session Present 0 and none of its subscriptions.
#[tokio::test]
async fn a_session_with_expiry_0_taken_over_by_clean_start_0_is_not_resumed() {
    let b = TestBroker::start().await;
    let (mut first, _) = RawClient::connect_with(b.tcp, connect_packet(V, "se0", false)).await;
    first.subscribe("se0", QoS::AtLeastOnce).await;
    let mut again = connect_packet(V, "se0", false);
    again.properties.session_expiry_interval = Some(60);
    let (mut next, ack) = RawClient::connect_with(b.tcp, again).await;
    assert!(!ack.session_present, "the session ended on takeover");
    match first.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    let (mut publ, _) = RawClient::connect(b.tcp, V, "se0-pub").await;
    publ.publish("se0", b"x", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(
        next.recv_within(Duration::from_millis(300)).await,
        Received::Timeout,
        "the ended session's subscription went with it"
    );
}
