//! MQTT 3.1.1 behaviour.

use std::time::Duration;

use wardgate_protocol::{
    Packet, ProtocolVersion, QoS, ReasonCode, TopicName, Will, WillProperties,
};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet};

const V: ProtocolVersion = ProtocolVersion::V311;

#[tokio::test]
async fn connack_then_pubsub_at_every_qos() {
    let b = TestBroker::start().await;
    let (mut sub, ack) = RawClient::connect(b.tcp, V, "sub").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    assert!(!ack.session_present);
    let suback = sub.subscribe("t/#", QoS::ExactlyOnce).await;
    assert_eq!(suback.reasons, vec![ReasonCode::GRANTED_QOS_2]);
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;

    assert_eq!(
        publ.publish("t/0", b"zero", QoS::AtMostOnce, false, 0)
            .await,
        None
    );
    let p = sub.publish_received().await;
    assert_eq!(
        (&p.payload[..], p.qos.level()),
        (&b"zero"[..], QoS::AtMostOnce)
    );

    assert!(
        matches!(publ.publish("t/1", b"one", QoS::AtLeastOnce, false, 7).await, Some(Packet::PubAck(a)) if a.packet_id.get() == 7)
    );
    let p = sub.publish_received().await;
    assert_eq!(p.qos.level(), QoS::AtLeastOnce);
    sub.puback(p.qos.packet_id().expect("QoS 1 has an id"))
        .await;

    let rec = publ
        .publish("t/2", b"two", QoS::ExactlyOnce, false, 8)
        .await;
    let Some(Packet::PubRec(rec)) = rec else {
        panic!("expected PUBREC, got {rec:?}")
    };
    publ.send(&Packet::PubRel(rec.clone())).await;
    assert!(matches!(publ.packet().await, Packet::PubComp(c) if c.packet_id == rec.packet_id));
    let p = sub.publish_received().await;
    assert_eq!(
        (p.qos.level(), &p.payload[..]),
        (QoS::ExactlyOnce, &b"two"[..])
    );
    let id = p.qos.packet_id().expect("QoS 2 has an id");
    sub.send(&Packet::PubRec(wardgate_protocol::PubAck::new(id)))
        .await;
    assert!(matches!(sub.packet().await, Packet::PubRel(r) if r.packet_id == id));
    sub.send(&Packet::PubComp(wardgate_protocol::PubAck::new(id)))
        .await;
}

#[tokio::test]
async fn qos2_retransmission_is_not_delivered_twice() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "sub").await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("t", b"once", QoS::ExactlyOnce, false, 3).await;
    let mut again =
        wardgate_testkit::client::publish_packet("t", b"once", QoS::ExactlyOnce, false, 3);
    again.dup = true;
    publ.send(&Packet::Publish(again)).await;
    assert!(matches!(publ.packet().await, Packet::PubRec(_)));
    assert_eq!(&sub.publish_received().await.payload[..], b"once");
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
}

#[tokio::test]
async fn empty_client_id_needs_clean_session() {
    let b = TestBroker::start().await;
    let (_, ack) = RawClient::connect_with(b.tcp, connect_packet(V, "", false)).await;
    assert_eq!(ack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    let (_, ack) = RawClient::connect_with(b.tcp, connect_packet(V, "", true)).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queues_qos1() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect_with(b.tcp, connect_packet(V, "keeper", false)).await;
    sub.subscribe("q", QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("q", b"while-away", QoS::AtLeastOnce, false, 1)
        .await;
    let (mut back, ack) = RawClient::connect_with(b.tcp, connect_packet(V, "keeper", false)).await;
    assert!(ack.session_present);
    assert_eq!(&back.publish_received().await.payload[..], b"while-away");
}

/// MQTT 3.1 (level 3) has no Session Present flag: that CONNACK byte is reserved and must be 0,
/// also when a persistent session is resumed (it used to be `20 02 01 00`).
#[tokio::test]
async fn a_v31_client_resuming_a_session_gets_no_session_present_flag() {
    let b = TestBroker::start().await;
    let v31 = ProtocolVersion::V31;
    let (mut first, ack) = RawClient::connect_with(b.tcp, connect_packet(v31, "old", false)).await;
    assert!(!ack.session_present);
    first.subscribe("q", QoS::AtLeastOnce).await;
    first.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("q", b"while-away", QoS::AtLeastOnce, false, 1)
        .await;
    let (mut back, ack) = RawClient::connect_with(b.tcp, connect_packet(v31, "old", false)).await;
    assert!(!ack.session_present, "the reserved byte is 0 in MQTT 3.1");
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    // The session was resumed all the same.
    assert_eq!(&back.publish_received().await.payload[..], b"while-away");
}

/// `$SYS` is the broker's (spec 4.7.2): a v3.1.1 client's PUBLISH there is acknowledged (3.1.1
/// has no way to say no) and dropped; a will there is refused with return code 5.
#[tokio::test]
async fn a_v311_publish_to_sys_is_acknowledged_and_dropped() {
    let b = TestBroker::start().await;
    let (mut spoofer, _) = RawClient::connect(b.tcp, V, "spoofer").await;
    let ack = spoofer
        .publish("$SYS/broker/version", b"spoofed", QoS::AtLeastOnce, true, 1)
        .await;
    assert!(matches!(ack, Some(Packet::PubAck(_))), "{ack:?}");
    spoofer
        .publish("$SYS/broker/version", b"spoofed", QoS::AtMostOnce, true, 0)
        .await;
    let (mut reader, _) = RawClient::connect(b.tcp, V, "reader").await;
    reader.subscribe("$SYS/#", QoS::AtLeastOnce).await;
    let got = super::payloads_until_quiet(&mut reader, Duration::from_millis(300)).await;
    assert!(!got.iter().any(|p| &p[..] == b"spoofed"), "{got:?}");

    let mut c = connect_packet(V, "sys-will", true);
    c.will = Some(super::will_on("$SYS/broker/uptime"));
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn retained_set_replace_and_clear() {
    let b = TestBroker::start().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("r", b"old", QoS::AtLeastOnce, true, 1).await;
    publ.publish("r", b"new", QoS::AtLeastOnce, true, 2).await;
    let (mut sub, _) = RawClient::connect(b.tcp, V, "s1").await;
    sub.subscribe("r", QoS::AtLeastOnce).await;
    let p = sub.publish_received().await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"new");
    publ.publish("r", b"", QoS::AtLeastOnce, true, 3).await;
    let (mut late, _) = RawClient::connect(b.tcp, V, "s2").await;
    late.subscribe("r", QoS::AtLeastOnce).await;
    assert_eq!(
        late.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
}

#[tokio::test]
async fn will_is_published_when_the_connection_drops() {
    let b = TestBroker::start().await;
    let (mut watcher, _) = RawClient::connect(b.tcp, V, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let mut c = connect_packet(V, "dying", true);
    c.will = Some(Will {
        topic: TopicName::new("wills/dying").expect("valid"),
        payload: bytes::Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    let (dying, _) = RawClient::connect_with(b.tcp, c.clone()).await;
    dying.drop_connection().await;
    assert_eq!(&watcher.publish_received().await.payload[..], b"bye");
    // A clean DISCONNECT discards the will.
    let (polite, _) = RawClient::connect_with(b.tcp, c).await;
    polite.disconnect().await;
    assert_eq!(
        watcher.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
}

#[tokio::test]
async fn keep_alive_closes_a_silent_client_after_one_and_a_half_intervals() {
    let b = TestBroker::start().await;
    let mut c = connect_packet(V, "quiet", true);
    c.keep_alive = 1;
    let (mut quiet, _) = RawClient::connect_with(b.tcp, c).await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        quiet.recv_within(Duration::from_secs(4)).await,
        Received::Closed
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn ping_gets_pong() {
    let b = TestBroker::start().await;
    let (mut c, _) = RawClient::connect(b.tcp, V, "pinger").await;
    c.send(&Packet::PingReq).await;
    assert_eq!(c.packet().await, Packet::PingResp);
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let b = TestBroker::start().await;
    let (mut all, _) = RawClient::connect(b.tcp, V, "all").await;
    all.subscribe("#", QoS::AtMostOnce).await;
    all.subscribe("+/x", QoS::AtMostOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    publ.publish("$app/x", b"hidden", QoS::AtMostOnce, false, 0)
        .await;
    publ.publish("a/x", b"seen", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(&all.publish_received().await.payload[..], b"seen");
    assert_eq!(
        all.recv_within(Duration::from_millis(300)).await,
        Received::Timeout
    );
}

#[tokio::test]
async fn a_v311_publisher_is_disconnected_rather_than_acknowledged_when_every_queue_dropped() {
    let b = super::tiny_queues().await;
    let (mut sub, _) = RawClient::connect_with(b.tcp, connect_packet(V, "away", false)).await;
    sub.subscribe("full/#", QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V, "pub").await;
    assert!(matches!(
        publ.publish("full/1", b"queued", QoS::AtLeastOnce, false, 1)
            .await,
        Some(Packet::PubAck(_))
    ));
    publ.send(&Packet::Publish(wardgate_testkit::client::publish_packet(
        "full/2",
        b"x",
        QoS::AtLeastOnce,
        false,
        2,
    )))
    .await;
    assert_eq!(
        publ.recv().await,
        Received::Closed,
        "no PUBACK for a message nobody queued"
    );
}

/// A clean session lasts as long as its network connection [MQTT-3.1.2-6]: a connection with
/// CleanSession=0 that takes the client ID over starts a new session (Session Present 0), without
/// the clean session's subscriptions.
#[tokio::test]
async fn a_clean_session_taken_over_by_clean_session_0_is_not_resumed() {
    let b = TestBroker::start().await;
    let (mut clean, _) = RawClient::connect(b.tcp, V, "cs-takeover").await;
    clean.subscribe("cs", QoS::AtLeastOnce).await;
    let (mut next, ack) =
        RawClient::connect_with(b.tcp, connect_packet(V, "cs-takeover", false)).await;
    assert!(!ack.session_present, "the clean session ended on takeover");
    assert_eq!(clean.recv().await, Received::Closed);
    let (mut publ, _) = RawClient::connect(b.tcp, V, "cs-pub").await;
    publ.publish("cs", b"x", QoS::AtLeastOnce, false, 1).await;
    assert_eq!(
        next.recv_within(Duration::from_millis(300)).await,
        Received::Timeout,
        "the clean session's subscription went with it"
    );
}
