//! The limits of `Broker.spec.advanced.clients` and the memory profile (SPEC.md §9), set through
//! the configuration as a user writes it, with the exact reason codes in v3.1.1 and v5.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wardgate_core::BrokerSettings;
use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_server::ConnectionSettings;
use wardgate_server::plan::{Plan, ServeOptions};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet, pid, publish_packet};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V3: ProtocolVersion = ProtocolVersion::V311;

/// The settings a Broker resource with this `spec` body (indented by four spaces) produces.
fn settings(spec: &str) -> (BrokerSettings, ConnectionSettings) {
    let yaml = format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n{spec}"
    );
    let loaded = wardgate_config::load_str("broker.yaml", &yaml)
        .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n{yaml}"));
    let plan = Plan::from_model(loaded.model, &ServeOptions::default());
    (plan.broker, plan.connection)
}

async fn broker(spec: &str) -> TestBroker {
    let (b, c) = settings(spec);
    TestBroker::with(b, c).await
}

async fn disconnect_reason(c: &mut RawClient) -> ReasonCode {
    match c.packet().await {
        Packet::Disconnect(d) => d.reason,
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
}

#[test]
fn packet_size_is_capped_by_the_memory_profile_and_budgets_follow_it() {
    let (_, c) = settings(
        "  memoryProfile: Tiny\n  advanced:\n    clients:\n      maxPacketSizeBytes: 268435456\n",
    );
    assert_eq!(c.max_packet_size, 4 * 1024 * 1024, "Tiny caps at 4 MiB");
    let (b, c) = settings(
        "  memoryProfile: High\n  advanced:\n    clients:\n      maxPacketSizeBytes: 1000\n",
    );
    assert_eq!(c.max_packet_size, 1000);
    assert_eq!(b.publish_budget, 2048 * 1024 * 1024);
    assert_eq!(b.max_subscription_levels, 2_000_000);
    let (b, _) = settings("  memoryProfile: Tiny\n");
    assert_eq!(b.publish_budget, 16 * 1024 * 1024);
    assert_eq!(b.max_subscription_levels, 25_000);
    let (b, _) = settings("  memoryProfile: Low\n");
    assert_eq!(b.max_subscription_levels, 100_000);
    let (b, c) = settings("  memoryProfile: Medium\n");
    assert_eq!(
        (b.publish_budget, c.max_packet_size),
        (576 * 1024 * 1024, 64 * 1024 * 1024)
    );
    assert_eq!(b.max_subscription_levels, 1_000_000);
}

#[tokio::test]
async fn max_packet_size_is_announced_and_larger_packets_get_0x95() {
    let b = broker("  advanced:\n    clients:\n      maxPacketSizeBytes: 1000\n").await;
    let (mut c, ack) = RawClient::connect(b.tcp, V5, "big5").await;
    assert_eq!(ack.properties.maximum_packet_size, Some(1000));
    // A v5 QoS 0 PUBLISH to `t` is 1 + 2 (remaining length) + 3 (topic) + 1 (properties) bytes
    // plus the payload: 993 bytes of payload make exactly 1000.
    c.send(&Packet::Publish(publish_packet(
        "t",
        &[0u8; 994],
        QoS::AtMostOnce,
        false,
        0,
    )))
    .await;
    assert_eq!(
        disconnect_reason(&mut c).await,
        ReasonCode::PACKET_TOO_LARGE
    );
    assert_eq!(c.recv().await, Received::Closed);

    // A packet of exactly the limit is accepted.
    let (mut ok, _) = RawClient::connect(b.tcp, V5, "fits").await;
    ok.send(&Packet::Publish(publish_packet(
        "t",
        &[0u8; 993],
        QoS::AtMostOnce,
        false,
        0,
    )))
    .await;
    ok.send(&Packet::PingReq).await;
    assert_eq!(ok.packet().await, Packet::PingResp);

    // v3.1.1 has no DISCONNECT from the server: the connection closes.
    let (mut c3, _) = RawClient::connect(b.tcp, V3, "big3").await;
    c3.send(&Packet::Publish(publish_packet(
        "t",
        &[0u8; 2000],
        QoS::AtMostOnce,
        false,
        0,
    )))
    .await;
    assert_eq!(c3.recv().await, Received::Closed);
}

#[tokio::test]
async fn max_receive_maximum_caps_what_the_client_asks_for() {
    let b = broker("  advanced:\n    clients:\n      maxReceiveMaximum: 2\n").await;
    let mut sc = connect_packet(V5, "rm", true);
    sc.properties.receive_maximum = Some(100);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("rm", QoS::AtLeastOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, V5, "pub").await;
    for i in 1..=3u16 {
        publ.publish("rm", &[b'0' + i as u8], QoS::AtLeastOnce, false, i)
            .await;
    }
    let first = sub.publish_received().await;
    let _second = sub.publish_received().await;
    assert_eq!(
        sub.recv_within(Duration::from_millis(300)).await,
        Received::Timeout,
        "only 2 unacknowledged"
    );
    sub.puback(first.qos.packet_id().expect("id")).await;
    assert_eq!(&sub.publish_received().await.payload[..], b"3");
}

#[tokio::test]
async fn max_keep_alive_is_server_keep_alive_in_v5_and_a_refusal_in_v311() {
    let b = broker("  advanced:\n    clients:\n      maxKeepAliveSeconds: 10\n").await;
    for asked in [60, 0] {
        let mut c = connect_packet(V5, "ka", true);
        c.keep_alive = asked;
        let (_, ack) = RawClient::connect_with(b.tcp, c).await;
        assert_eq!(ack.properties.server_keep_alive, Some(10), "asked {asked}");
    }
    let mut c = connect_packet(V5, "ka", true);
    c.keep_alive = 5;
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.properties.server_keep_alive, None, "within the cap");

    // v3.1.1 cannot be told: refused with return code 2 (identifier rejected), as Mosquitto does.
    let mut c = connect_packet(V3, "ka3", true);
    c.keep_alive = 60;
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    let mut c = connect_packet(V3, "ka3", true);
    c.keep_alive = 10;
    let (_, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
}

#[tokio::test]
async fn keep_alive_cap_is_enforced() {
    let b = broker("  advanced:\n    clients:\n      maxKeepAliveSeconds: 1\n").await;
    let mut c = connect_packet(V5, "slow-pinger", true);
    c.keep_alive = 600;
    let (mut c, ack) = RawClient::connect_with(b.tcp, c).await;
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    assert_eq!(
        disconnect_reason(&mut c).await,
        ReasonCode::KEEP_ALIVE_TIMEOUT
    );
}

async fn fill_queue(b: &TestBroker, version: ProtocolVersion) -> RawClient {
    let name = format!("q{version:?}");
    let mut sc = connect_packet(version, &name, false);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc.clone()).await;
    sub.subscribe(&name, QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V5, "qpub").await;
    for i in 1..=4u16 {
        publ.publish(&name, &[b'0' + i as u8], QoS::AtLeastOnce, false, i)
            .await;
    }
    let (sub, ack) = RawClient::connect_with(b.tcp, sc).await;
    assert!(ack.session_present);
    sub
}

#[tokio::test]
async fn subscriber_queue_limit_drop_oldest() {
    let b = broker("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 2\n        strategy: DropOldest\n").await;
    for version in [V5, V3] {
        let mut sub = fill_queue(&b, version).await;
        let got: Vec<u8> = [sub.publish_received().await, sub.publish_received().await]
            .iter()
            .map(|p| p.payload[0])
            .collect();
        assert_eq!(got, b"34", "{version:?}: the two newest remain");
        sub.disconnect().await;
    }
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.queue_oldest.load(Ordering::Relaxed), 4);
    assert_eq!(drops.queue_full.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn subscriber_queue_limit_none_drops_new() {
    let b = broker("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 2\n        strategy: None\n").await;
    let mut sub = fill_queue(&b, V5).await;
    assert_eq!(&sub.publish_received().await.payload[..], b"1");
    assert_eq!(&sub.publish_received().await.payload[..], b"2");
    assert_eq!(
        sub.recv_within(Duration::from_millis(200)).await,
        Received::Timeout
    );
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.queue_full.load(Ordering::Relaxed), 2);
}

/// Retained messages sent on SUBSCRIBE go through the subscriber's bounded queue: those that do
/// not fit are dropped by its strategy and counted like every other drop, in the metrics and
/// `$SYS/broker/publish/messages/dropped` (issue 15: a subscriber matching 150,000 retained
/// topics got 100,000 and the rest vanished uncounted).
#[tokio::test]
async fn retained_messages_beyond_the_subscriber_queue_are_counted_as_drops() {
    for (strategy, reason) in [("None", "queue_full"), ("DropOldest", "queue_drop_oldest")] {
        let b = broker(&format!("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 3\n        strategy: {strategy}\n")).await;
        let (mut publ, _) = RawClient::connect(b.tcp, V5, "retainer").await;
        for i in 1..=10u16 {
            publ.publish(&format!("r/{i:02}"), b"x", QoS::AtLeastOnce, true, i)
                .await;
        }
        let (mut sub, _) = RawClient::connect(b.tcp, V5, "late").await;
        sub.subscribe("r/+", QoS::AtLeastOnce).await;
        let mut got = 0;
        while let Received::Packet(Packet::Publish(p)) =
            sub.recv_within(Duration::from_millis(300)).await
        {
            assert!(p.retain);
            sub.puback(p.qos.packet_id().expect("QoS 1")).await;
            got += 1;
        }
        assert_eq!(got, 3, "{strategy}: the queue's length");
        let stats = b.broker.stats();
        let counted: Vec<(&str, u64)> = stats
            .drops
            .by_reason()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(counted, vec![(reason, 7)], "{strategy}: every drop counted");
        assert_eq!(stats.publish_dropped.load(Ordering::Relaxed), 7);
    }
}

/// A live subscriber slower than its publisher slows the publisher down (backpressure) instead of
/// overflowing its queue: a v3.1.1 publisher that pipelines 1,000 QoS 1 messages at once, into a
/// queue of 100, gets every PUBACK, and the subscriber gets every message, in order. (Before,
/// the publisher's whole read was routed at once, the queue dropped, and a v3.1.1 publisher,
/// which has no reason codes, was disconnected.)
#[tokio::test]
async fn a_slow_live_subscriber_slows_its_publisher_and_nothing_is_dropped() {
    let b = broker("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 100\n        strategy: None\n").await;
    const N: u16 = 1_000;
    let (mut sub, _) = RawClient::connect(b.tcp, V5, "slow-sub").await;
    sub.subscribe("bp", QoS::AtLeastOnce).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < usize::from(N) {
            let p = sub.publish_received().await;
            got.push(u16::from_be_bytes([p.payload[0], p.payload[1]]));
            sub.puback(p.qos.packet_id().expect("QoS 1")).await;
            if got.len() % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        got
    });
    let (mut publ, _) = RawClient::connect(b.tcp, V3, "fast-pub").await;
    let mut burst = bytes::BytesMut::new();
    for i in 1..=N {
        let p = publish_packet("bp", &i.to_be_bytes(), QoS::AtLeastOnce, false, i);
        wardgate_protocol::encode(&Packet::Publish(p), V3, &mut burst);
    }
    publ.send_bytes(&burst).await;
    for i in 1..=N {
        match publ.recv().await {
            Received::Packet(Packet::PubAck(ack)) => assert_eq!(ack.packet_id.get(), i),
            other => panic!("PUBACK {i} of {N}: got {other:?}"),
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the subscriber gets everything")
        .expect("reader");
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.queue_full.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn v311_persistent_sessions_get_the_session_expiry_cap() {
    let b = broker("  advanced:\n    clients:\n      maxSessionExpirySeconds: 1\n").await;
    let (mut c, _) = RawClient::connect_with(b.tcp, connect_packet(V3, "capped", false)).await;
    c.subscribe("x", QoS::AtLeastOnce).await;
    c.drop_connection().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.broker.session("capped").is_some(), "kept within the cap");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(b.broker.session("capped").is_none(), "expired after 1 s");
    let (_, ack) = RawClient::connect_with(b.tcp, connect_packet(V3, "capped", false)).await;
    assert!(!ack.session_present);
}

/// A broker whose in-flight PUBLISH budget is `budget` bytes, with a subscriber that holds
/// everything published on `b/#` in flight: it reads but does not acknowledge (the broker
/// cannot drop what it sent, while it would trim the queue of a stalled or offline one).
async fn budget_broker(budget: u64) -> (TestBroker, RawClient, RawClient) {
    let b = TestBroker::with(
        BrokerSettings {
            publish_budget: budget,
            ..BrokerSettings::default()
        },
        ConnectionSettings::default(),
    )
    .await;
    let mut sc = connect_packet(V5, "holder", false);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("b/#", QoS::AtLeastOnce).await;
    let (publisher, _) = RawClient::connect(b.tcp, V5, "publisher").await;
    (b, publisher, sub)
}

#[tokio::test]
async fn publish_budget_refuses_qos1_and_qos2_with_0x97_past_75_percent() {
    let (b, mut publ, mut sub) = budget_broker(4100).await;
    let payload = [7u8; 1000];
    // A message costs its payload and topic: 3 x 1003 bytes fit in 75% (3075), a fourth does not.
    for i in 1..=3u16 {
        match publ
            .publish("b/1", &payload, QoS::AtLeastOnce, false, i)
            .await
        {
            Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS, "message {i}"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    match publ
        .publish("b/1", &payload, QoS::AtLeastOnce, false, 4)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match publ
        .publish("b/1", &payload, QoS::ExactlyOnce, false, 5)
        .await
    {
        Some(Packet::PubRec(a)) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // QoS 0 still flows until 100%.
    publ.publish("b/0", &payload[..100], QoS::AtMostOnce, false, 0)
        .await;
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.memory_budget.load(Ordering::Relaxed), 2);
    assert_eq!(drops.memory_budget_qos0.load(Ordering::Relaxed), 0);

    // v3.1.1 cannot carry 0x97: the publisher is disconnected without an acknowledgement.
    let (mut p3, _) = RawClient::connect(b.tcp, V3, "p3").await;
    p3.send(&Packet::Publish(publish_packet(
        "b/1",
        &payload,
        QoS::AtLeastOnce,
        false,
        1,
    )))
    .await;
    assert_eq!(p3.recv().await, Received::Closed);
    // So is a QoS 2 publisher, and its packet id is not kept as received (below: sent again,
    // the message is routed, not answered as a duplicate).
    let (mut q2, _) = RawClient::connect_with(b.tcp, connect_packet(V3, "p3-q2", false)).await;
    q2.send(&Packet::Publish(publish_packet(
        "b/2",
        &payload,
        QoS::ExactlyOnce,
        false,
        9,
    )))
    .await;
    assert_eq!(q2.recv().await, Received::Closed);

    // The holder acknowledges its messages: the budget is free again.
    for _ in 0..4 {
        let p = sub.publish_received().await;
        if let Some(id) = p.qos.packet_id() {
            sub.puback(id).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.broker.publish_budget_used(), 0);
    // The refused QoS 2 flow is over: the same packet id starts a new message.
    match publ
        .publish("b/1", &payload, QoS::ExactlyOnce, false, 5)
        .await
    {
        Some(Packet::PubRec(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    let (mut q2, ack) = RawClient::connect_with(b.tcp, connect_packet(V3, "p3-q2", false)).await;
    assert!(ack.session_present);
    let mut again = publish_packet("b/2", &payload, QoS::ExactlyOnce, false, 9);
    again.dup = true;
    q2.send(&Packet::Publish(again)).await;
    assert!(matches!(q2.packet().await, Packet::PubRec(_)));
    let topics: Vec<String> = [sub.publish_received().await, sub.publish_received().await]
        .iter()
        .map(|p| {
            p.topic
                .as_ref()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default()
        })
        .collect();
    assert!(topics.contains(&"b/2".to_owned()), "got {topics:?}");
}

#[tokio::test]
async fn publish_budget_drops_qos0_past_100_percent() {
    let (b, mut publ, _holder) = budget_broker(2000).await;
    let payload = [7u8; 1000];
    // QoS 0 to an offline session is dropped anyway; keep a live QoS 0 subscriber that never
    // reads, so copies stay queued.
    let (mut live, _) = RawClient::connect(b.tcp, V5, "live").await;
    live.subscribe("c/#", QoS::AtMostOnce).await;
    // 1403 bytes held (under 75% of 2000), then 1003 more would pass 100%.
    let held = [7u8; 1400];
    publ.publish("b/1", &held, QoS::AtLeastOnce, false, 1).await;
    publ.publish("c/1", &payload, QoS::AtMostOnce, false, 0)
        .await;
    publ.send(&Packet::PingReq).await;
    assert_eq!(publ.packet().await, Packet::PingResp);
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.memory_budget_qos0.load(Ordering::Relaxed), 1);
    assert_eq!(
        live.recv_within(Duration::from_millis(200)).await,
        Received::Timeout
    );
}

/// A v3.1.1 QoS 2 message that every matching queue drops is refused by closing the connection
/// unacknowledged (v3.1.1 has no reason codes). Its packet id must not stay recorded as received:
/// the client's retransmission after reconnecting is then routed, not answered with PUBREC as a
/// duplicate of a message that was never delivered.
#[tokio::test]
async fn a_v311_qos2_message_refused_by_closing_is_routed_when_sent_again() {
    let b = broker("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 1\n        strategy: None\n").await;
    let mut sc = connect_packet(V5, "q2-sub", false);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc.clone()).await;
    sub.subscribe("q2", QoS::AtLeastOnce).await;
    sub.drop_connection().await;

    let (mut publ, _) = RawClient::connect_with(b.tcp, connect_packet(V3, "q2-pub", false)).await;
    assert!(
        matches!(
            publ.publish("q2", b"1", QoS::ExactlyOnce, false, 1).await,
            Some(Packet::PubRec(_))
        ),
        "the first fills the offline subscriber's queue"
    );
    publ.send(&Packet::PubRel(wardgate_protocol::PubAck::new(pid(1))))
        .await;
    assert!(matches!(publ.packet().await, Packet::PubComp(_)));
    publ.send(&Packet::Publish(publish_packet(
        "q2",
        b"2",
        QoS::ExactlyOnce,
        false,
        2,
    )))
    .await;
    assert_eq!(
        publ.recv().await,
        Received::Closed,
        "the queue is full: closed, no PUBREC"
    );

    // The subscriber comes back and empties its queue; the publisher sends message 2 again.
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    let first = sub.publish_received().await;
    assert_eq!(&first.payload[..], b"1");
    sub.puback(first.qos.packet_id().expect("QoS 1")).await;
    let (mut publ, ack) = RawClient::connect_with(b.tcp, connect_packet(V3, "q2-pub", false)).await;
    assert!(ack.session_present);
    let mut again = publish_packet("q2", b"2", QoS::ExactlyOnce, false, 2);
    again.dup = true;
    publ.send(&Packet::Publish(again)).await;
    assert!(matches!(publ.packet().await, Packet::PubRec(_)));
    assert_eq!(&sub.publish_received().await.payload[..], b"2");
}

/// Floods `stalled` subscribers (they subscribe to `big/#`, then never read) with `count` QoS 0
/// messages of `size` bytes, on a Tiny broker (16 MiB memory budget) with queue `strategy`;
/// then checks that the other clients lose nothing: a v5 QoS 1 PUBLISH gets PUBACK 0x00, a
/// v3.1.1 one a PUBACK (not a disconnect), and a QoS 0 message reaches a reading subscriber.
/// Returns the broker, for the drop counters.
async fn stalled_subscribers_flooded(
    strategy: &str,
    stalled: usize,
    size: usize,
    count: usize,
) -> TestBroker {
    let b = broker(&format!(
        "  memoryProfile: Tiny\n  advanced:\n    clients:\n      subscriberQueueLimit:\n        strategy: {strategy}\n"
    ))
    .await;
    let mut idle = Vec::new();
    for n in 0..stalled {
        let (mut s, _) = RawClient::connect(b.tcp, V5, &format!("stalled-{n}")).await;
        s.subscribe("big/#", QoS::AtLeastOnce).await;
        idle.push(s);
    }
    let (mut reader, _) = RawClient::connect(b.tcp, V5, "reader").await;
    reader.subscribe("small/#", QoS::AtMostOnce).await;
    let (mut flood, _) = RawClient::connect(b.tcp, V5, "flood").await;
    let payload = vec![b'x'; size];
    for _ in 0..count {
        flood
            .send(&Packet::Publish(publish_packet(
                "big/t",
                &payload,
                QoS::AtMostOnce,
                false,
                0,
            )))
            .await;
    }
    flood.send(&Packet::PingReq).await;
    assert_eq!(flood.packet().await, Packet::PingResp, "flood routed");

    let (mut p5, _) = RawClient::connect(b.tcp, V5, "p5").await;
    match p5
        .publish("small/1", b"hi", QoS::AtLeastOnce, false, 1)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS, "v5 QoS 1 refused"),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let (mut p3, _) = RawClient::connect(b.tcp, V3, "p3").await;
    p3.send(&Packet::Publish(publish_packet(
        "small/3",
        b"hi",
        QoS::AtLeastOnce,
        false,
        1,
    )))
    .await;
    assert!(
        matches!(p3.recv().await, Received::Packet(Packet::PubAck(_))),
        "v3.1.1 QoS 1 publisher must be acknowledged, not disconnected"
    );
    p5.publish("small/0", b"zero", QoS::AtMostOnce, false, 0)
        .await;
    let mut topics = Vec::new();
    for _ in 0..3 {
        let p = reader.publish_received().await;
        topics.push(p.topic.map(|t| t.as_str().to_owned()).unwrap_or_default());
    }
    assert!(
        topics.contains(&"small/0".to_owned()),
        "QoS 0 to a reading subscriber lost: {topics:?}"
    );
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.memory_budget.load(Ordering::Relaxed), 0);
    assert_eq!(drops.memory_budget_qos0.load(Ordering::Relaxed), 0);
    assert!(
        b.broker.publish_budget_used()
            <= (stalled as u64 + 1) * 16 * 1024 * 1024 / 32 + size as u64,
        "the stalled sessions hold {} bytes",
        b.broker.publish_budget_used()
    );
    drop(idle);
    b
}

#[tokio::test]
async fn a_stalled_subscriber_fills_only_its_own_queue_not_the_memory_budget() {
    // 3,000 x 16 KiB: 48 MiB, three times the budget (the case was 40,000 of them).
    let b = stalled_subscribers_flooded("None", 1, 16 * 1024, 3_000).await;
    let drops = &b.broker.stats().drops;
    assert!(
        drops.queue_full.load(Ordering::Relaxed) > 1_000,
        "the stalled subscriber's own drops are counted"
    );
}

#[tokio::test]
async fn five_stalled_subscribers_with_drop_oldest_fill_only_their_own_queues() {
    // 6,000 x 4 KiB: 24 MiB in each of five queues.
    let b = stalled_subscribers_flooded("DropOldest", 5, 4 * 1024, 6_000).await;
    let drops = &b.broker.stats().drops;
    assert!(
        drops.queue_oldest.load(Ordering::Relaxed) > 5 * 1_000,
        "the stalled subscribers' own drops are counted: {}",
        drops.queue_oldest.load(Ordering::Relaxed)
    );
}

/// Sessions that are not drained (here offline, persistent, each on its own topic) may together
/// hold more than the budget's threshold although each stays within its own share: before a
/// new message is refused, their queues are trimmed (counted), so other clients go on.
#[tokio::test]
async fn offline_sessions_over_their_share_are_trimmed_before_anyone_is_refused() {
    let b = broker("  memoryProfile: Tiny\n").await;
    const SESSIONS: usize = 32;
    for n in 0..SESSIONS {
        let mut sc = connect_packet(V5, &format!("off-{n}"), false);
        sc.properties.session_expiry_interval = Some(600);
        let (mut s, _) = RawClient::connect_with(b.tcp, sc).await;
        s.subscribe(&format!("o/{n}"), QoS::AtLeastOnce).await;
        s.drop_connection().await;
    }
    // 40 x 16 KiB for each: 640 KiB, more than a session's share; 20 MiB in all.
    let (mut flood, _) = RawClient::connect(b.tcp, V5, "flood").await;
    let payload = vec![b'x'; 16 * 1024];
    let mut id = 0u16;
    for n in 0..SESSIONS {
        for _ in 0..40 {
            id += 1;
            flood
                .send(&Packet::Publish(publish_packet(
                    &format!("o/{n}"),
                    &payload,
                    QoS::AtLeastOnce,
                    false,
                    id,
                )))
                .await;
        }
    }
    flood.send(&Packet::PingReq).await;
    while flood.packet().await != Packet::PingResp {}
    // Trimming runs at most every 50 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A 1 MiB message of another client: the budget has room for it again.
    let (mut p5, _) = RawClient::connect(b.tcp, V5, "p5").await;
    let big = vec![b'y'; 1024 * 1024];
    match p5
        .publish("small/1", &big, QoS::AtLeastOnce, false, 1)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    let drops = &b.broker.stats().drops;
    assert!(
        drops.reclaimed.load(Ordering::Relaxed) > 0,
        "trims are counted"
    );
    assert!(b.broker.publish_budget_used() <= 16 * 1024 * 1024);
}

/// A will is held for the connection's life and becomes a message its session queues: one
/// larger than a session may hold (here 60 KiB) is refused with 0x97 (v3.1.1: return code 3),
/// and a will of more user properties than the decoder keeps closes the connection.
#[tokio::test]
async fn a_will_larger_than_a_session_may_hold_is_refused() {
    use wardgate_protocol::{Will, WillProperties};
    let b = TestBroker::with(
        BrokerSettings {
            queue: wardgate_core::QueueLimits {
                max_queued_bytes: 60 * 1024,
                ..Default::default()
            },
            ..BrokerSettings::default()
        },
        ConnectionSettings::default(),
    )
    .await;
    // `users` user properties of `value` bytes each (v5 only), and a payload of at most 64 KiB
    // (its length is two bytes on the wire).
    let will = |payload: usize, users: usize, value: usize| Will {
        topic: wardgate_protocol::TopicName::new("gone").expect("topic"),
        payload: vec![b'w'; payload].into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties {
            user_properties: (0..users)
                .map(|i| (format!("k{i}"), "v".repeat(value)))
                .collect(),
            ..WillProperties::default()
        },
    };
    for (version, big) in [(V5, will(1000, 12, 50_000)), (V3, will(65_000, 0, 0))] {
        let mut c = connect_packet(version, "big-will", true);
        c.will = Some(big);
        let mut client = RawClient::open(b.tcp, version).await;
        client.send(&Packet::Connect(Box::new(c))).await;
        match client.packet().await {
            // v3.1.1 has no Quota exceeded: return code 3, Server unavailable.
            Packet::ConnAck(a) if version == V5 => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
            Packet::ConnAck(a) => assert_eq!(a.reason, ReasonCode::SERVER_UNAVAILABLE),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        let mut c = connect_packet(version, "small-will", true);
        c.will = Some(will(1000, 2, 100));
        let (_ok, ack) = RawClient::connect_with(b.tcp, c).await;
        assert_eq!(ack.reason, ReasonCode::SUCCESS);
    }
    assert_eq!(
        b.broker
            .stats()
            .drops
            .will_too_large
            .load(Ordering::Relaxed),
        2
    );
    let mut c = connect_packet(V5, "many-properties", true);
    c.will = Some(will(4, 20_000, 0));
    let mut client = RawClient::open(b.tcp, V5).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    assert_eq!(client.recv().await, Received::Closed);
}

/// A queued message keeps nothing of its publisher's read buffer: decoded, its payload was a
/// slice of that buffer and kept the whole allocation (up to 64 KiB) alive while queued. One
/// stalled subscriber of 1 KB messages, each read along with 60 KB for others, held 1 GB of
/// read buffers (release build, Medium) for its 18 MiB of queued messages.
#[tokio::test]
async fn a_queued_message_does_not_keep_its_publishers_read_buffer() {
    let b = TestBroker::with(BrokerSettings::default(), ConnectionSettings::default()).await;
    let mut sc = connect_packet(V5, "pinned", false);
    sc.properties.session_expiry_interval = Some(60);
    let (mut sub, _) = RawClient::connect_with(b.tcp, sc).await;
    sub.subscribe("p/#", QoS::AtLeastOnce).await;
    sub.drop_connection().await;
    let (mut publ, _) = RawClient::connect(b.tcp, V5, "publisher").await;
    // Two messages in one write: one read, one buffer.
    let mut both = bytes::BytesMut::new();
    for id in 1..=2 {
        let mut p = publish_packet("p/1", &[b'x'; 1000], QoS::AtLeastOnce, false, id);
        p.properties.correlation_data = Some(bytes::Bytes::from_static(b"correlation"));
        wardgate_protocol::encode(&Packet::Publish(p), V5, &mut both);
    }
    publ.send_bytes(&both).await;
    for _ in 0..2 {
        assert!(matches!(publ.packet().await, Packet::PubAck(_)));
    }
    let session = b.broker.session("pinned").expect("persistent session");
    let mut out = Vec::new();
    session.drain(std::time::Instant::now(), 10, |_| true, &mut out);
    assert_eq!(out.len(), 2);
    for o in out {
        let wardgate_core::Outgoing::Publish { delivery, .. } = o else {
            panic!("expected a PUBLISH");
        };
        let m = &delivery.message;
        assert!(m.payload.is_unique(), "the payload shares the read buffer");
        let correlation = m.properties.correlation_data.as_ref().expect("kept");
        assert!(correlation.is_unique(), "the correlation data shares it");
    }
}

/// The memory budget admits a message as it charges it, properties included: a PUBLISH of 10
/// bytes of payload and 1,000 user properties costs about 81 KB, past 75% of a 4,100-byte
/// budget, and is refused although its payload alone would fit.
#[tokio::test]
async fn publish_budget_counts_user_properties() {
    let (b, mut publ, _holder) = budget_broker(4100).await;
    let mut p = publish_packet("b/1", b"0123456789", QoS::AtLeastOnce, false, 1);
    p.properties.user_properties = (0..1000)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    publ.send(&Packet::Publish(p)).await;
    match publ.packet().await {
        Packet::PubAck(a) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert_eq!(
        b.broker.stats().drops.memory_budget.load(Ordering::Relaxed),
        1
    );
}

/// A SUBSCRIBE of the given filters (QoS 0).
fn subscribe_packet(filters: &[String]) -> Packet {
    Packet::Subscribe(wardgate_protocol::Subscribe {
        packet_id: pid(1),
        subscription_identifier: None,
        user_properties: Vec::new(),
        filters: filters
            .iter()
            .map(|f| {
                (
                    wardgate_protocol::TopicFilter::new(f).expect("valid filter"),
                    wardgate_protocol::SubscriptionOptions::new(QoS::AtMostOnce),
                )
            })
            .collect(),
    })
}

async fn suback(c: &mut RawClient, filters: &[String]) -> Vec<ReasonCode> {
    c.send(&subscribe_packet(filters)).await;
    match c.packet().await {
        Packet::SubAck(a) => a.reasons,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// `+/+/…/+` with `levels` levels.
fn plus_filter(levels: usize) -> String {
    format!("{}+", "+/".repeat(levels - 1))
}

/// A session's subscriptions are bounded in levels (each a node of the index, up to ~450 bytes):
/// a SUBSCRIBE filter past the bound is refused with 0x97 (v3.1.1: 0x80) and counted, the other
/// filters of the packet are granted, a replaced subscription is not counted twice, and
/// UNSUBSCRIBE and the session's end give the levels back (issue 15: one 64 MiB SUBSCRIBE of
/// deep filters could make the broker hold ~15 GB of index until the client left).
#[tokio::test]
async fn subscriptions_past_the_session_limit_in_levels_get_0x97() {
    let b = TestBroker::with(
        BrokerSettings {
            max_subscription_levels: 100,
            ..BrokerSettings::default()
        },
        ConnectionSettings::default(),
    )
    .await;
    let refused = || {
        b.broker
            .stats()
            .subscriptions_refused
            .load(Ordering::Relaxed)
    };
    let index = || b.broker.stats().subscriptions.load(Ordering::Relaxed);
    let failure = |v: ProtocolVersion| {
        if v.is_v5() {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode(0x80)
        }
    };
    let ok = ReasonCode::GRANTED_QOS_0;
    let mut count = 0;
    for version in [V5, V3] {
        let (mut c, _) = RawClient::connect(b.tcp, version, "levels").await;
        // 3 + 50 levels fit, another 50 would make 103: refused; "x" (1) still fits.
        let reasons = suback(
            &mut c,
            &[
                "a/+/c".into(),
                plus_filter(50),
                format!("b/{}", plus_filter(49)),
                "x".into(),
            ],
        )
        .await;
        count += 1;
        assert_eq!(reasons, vec![ok, ok, failure(version), ok], "{version:?}");
        assert_eq!(refused(), count);
        assert_eq!(index(), 3, "the refused filter is not in the index");
        // Subscribing to the same filter again replaces it: 54 levels, not 104.
        assert_eq!(suback(&mut c, &[plus_filter(50)]).await, vec![ok]);
        // Exactly at the bound: 54 + 46 = 100.
        assert_eq!(
            suback(&mut c, &[format!("c/{}", plus_filter(45))]).await,
            vec![ok]
        );
        assert_eq!(suback(&mut c, &["y".into()]).await, vec![failure(version)]);
        count += 1;
        assert_eq!(refused(), count);
        // UNSUBSCRIBE gives the levels back.
        c.send(&Packet::Unsubscribe(wardgate_protocol::Unsubscribe {
            packet_id: pid(2),
            user_properties: Vec::new(),
            filters: vec![wardgate_protocol::TopicFilter::new("x").expect("valid")],
        }))
        .await;
        assert!(matches!(c.packet().await, Packet::UnsubAck(_)));
        assert_eq!(suback(&mut c, &["y".into()]).await, vec![ok]);
        // The granted subscriptions work.
        let (mut p, _) = RawClient::connect(b.tcp, version, "levels-pub").await;
        p.publish("a/b/c", b"m", QoS::AtMostOnce, false, 1).await;
        assert_eq!(&c.publish_received().await.payload[..], b"m");
        p.disconnect().await;
        // The session ends with the connection (clean): the next one starts from zero.
        c.disconnect().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(index(), 0);
    let (mut c, _) = RawClient::connect(b.tcp, V5, "levels").await;
    assert_eq!(suback(&mut c, &[plus_filter(100)]).await, vec![ok]);
    assert_eq!(refused(), count);
}

/// The retained lookups of one SUBSCRIBE share a budget of retained topics to visit (4 per
/// message the subscriber's queue may hold): past it, the packet's remaining filters are
/// subscribed without their retained messages, and each is counted (issue 15: a packet of
/// filters starting with a wildcard cost filters × retained topics).
#[tokio::test]
async fn retained_lookups_of_one_subscribe_stop_at_its_budget() {
    // A queue of 10: 40 retained topics visited per SUBSCRIBE.
    let b = broker("  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 10\n        strategy: None\n").await;
    assert_eq!(b.broker.retained_budget(), 40);
    let (mut publ, _) = RawClient::connect(b.tcp, V5, "retainer").await;
    for i in 1..=30u16 {
        publ.publish(&format!("r/{i:02}"), b"x", QoS::AtLeastOnce, true, i)
            .await;
    }
    let skipped = || {
        b.broker
            .stats()
            .retained_lookups_skipped
            .load(Ordering::Relaxed)
    };
    publ.publish("r/01/x", b"x", QoS::AtLeastOnce, true, 31)
        .await;
    let (mut sub, _) = RawClient::connect(b.tcp, V5, "late").await;
    // "r/+/x" visits the 31 topics under "r/" (matching one), "r/#" would visit 31 more: only
    // 9 are left, so it and the literal "r/05" after it get no retained messages.
    let filters: Vec<String> = ["r/+/x", "r/#", "r/05"].map(String::from).into();
    let ok = ReasonCode::GRANTED_QOS_0;
    assert_eq!(suback(&mut sub, &filters).await, vec![ok, ok, ok]);
    assert_eq!(skipped(), 2);
    let mut got = Vec::new();
    while let Received::Packet(Packet::Publish(p)) =
        sub.recv_within(Duration::from_millis(300)).await
    {
        got.push(p.topic.map(|t| t.to_string()).unwrap_or_default());
    }
    assert_eq!(got, vec!["r/01/x".to_string()], "only the first filter's");
    // The subscriptions stand.
    publ.publish("r/z", b"live", QoS::AtMostOnce, false, 1)
        .await;
    assert_eq!(&sub.publish_received().await.payload[..], b"live");
    // The next SUBSCRIBE has its own budget.
    assert_eq!(suback(&mut sub, &["r/05".into()]).await, vec![ok]);
    assert_eq!(sub.publish_received().await.topic.as_deref(), Some("r/05"));
    assert_eq!(skipped(), 2);
}

/// The default limit on a session's subscriptions (1,000,000 levels) lets a real client's
/// 100,000 filters of 5 levels through in one SUBSCRIBE, and then 20 of 25,000 levels, up to
/// the limit exactly; the next filter is refused.
#[tokio::test]
async fn the_default_subscription_limit_grants_100000_filters_of_5_levels() {
    let b = TestBroker::start().await;
    assert_eq!(
        b.broker.settings().max_subscription_levels,
        wardgate_core::DEFAULT_MAX_SUBSCRIPTION_LEVELS
    );
    let (mut c, _) = RawClient::connect(b.tcp, V5, "many").await;
    let filters: Vec<String> = (0..100_000).map(|i| format!("d/{i}/+/x/#")).collect();
    let reasons = suback(&mut c, &filters).await;
    assert_eq!(reasons.len(), 100_000);
    assert!(reasons.iter().all(|r| *r == ReasonCode::GRANTED_QOS_0));
    let deep: Vec<String> = (0..21)
        .map(|i| format!("{i}/{}", plus_filter(24_999)))
        .collect();
    let reasons = suback(&mut c, &deep).await;
    assert_eq!(reasons[..20], [ReasonCode::GRANTED_QOS_0; 20]);
    assert_eq!(reasons[20], ReasonCode::QUOTA_EXCEEDED);
    assert_eq!(
        b.broker
            .stats()
            .subscriptions_refused
            .load(Ordering::Relaxed),
        1
    );
}
