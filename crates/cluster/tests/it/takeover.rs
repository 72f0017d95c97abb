//! Client IDs unique across the cluster: a connection on one node takes over the session its
//! client had on another (the old connection gets DISCONNECT 0x8E, the will rules of a
//! takeover apply), and the session moves with it: subscriptions, queued and in-flight QoS 1/2
//! messages, incoming QoS 2 state; a clean start drops it instead.

use std::time::Duration;

use bytes::Bytes;
use wardgate_protocol::{
    ConnAck, Connect, Packet, ProtocolVersion, PubAck, QoS, ReasonCode, SubscriptionOptions,
    TopicName, Will, WillProperties,
};
use wardgate_testkit::client::{RawClient, Received, connect_packet, pid, publish_packet};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{TestNode, client, node, received, settle};

/// A v5 CONNECT of `id` with a session expiry of 300 s.
fn persistent(id: &str, clean_start: bool, will: Option<Will>) -> Connect {
    let mut connect = connect_packet(ProtocolVersion::V5, id, clean_start);
    connect.properties.session_expiry_interval = Some(300);
    connect.will = will;
    connect
}

async fn connect(node: &TestNode, connect: Connect) -> (RawClient, ConnAck) {
    let (client, ack) = RawClient::connect_with(node.mqtt.tcp, connect).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    (client, ack)
}

fn will(delay: Option<u32>) -> Will {
    Will {
        topic: TopicName::new("wills/dev").expect("valid"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..WillProperties::default()
        },
    }
}

/// The old connection is told to go with DISCONNECT 0x8E (Session taken over).
async fn assert_taken_over(old: &mut RawClient) {
    match old.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER)
        }
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
}

/// Publishes and waits for the acknowledgement (PUBACK, PUBREC): once JetStream has the
/// message, which on a loaded machine may take longer than a plain read's timeout.
async fn publish(
    client: &mut RawClient,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    id: u16,
) -> Packet {
    let publish = publish_packet(topic, payload, qos, retain, id);
    client.send(&Packet::Publish(publish)).await;
    match client.recv_within(Duration::from_secs(30)).await {
        Received::Packet(ack @ (Packet::PubAck(_) | Packet::PubRec(_))) => ack,
        other => panic!("expected the acknowledgement, got {other:?}"),
    }
}

fn text(p: &wardgate_protocol::Publish) -> &str {
    std::str::from_utf8(&p.payload).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_on_another_node_takes_the_session_over_with_its_subscriptions() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let (mut old, ack) = connect(&a, persistent("dev", false, None)).await;
    assert!(!ack.session_present);
    let options = SubscriptionOptions::new(QoS::AtLeastOnce);
    old.subscribe_with("s/#", options, Some(7)).await;

    let (mut new, ack) = connect(&b, persistent("dev", false, None)).await;
    assert_taken_over(&mut old).await;
    assert!(ack.session_present, "the session moved from node a");
    assert!(
        a.mqtt.broker.session("dev").is_none(),
        "node a dropped its copy"
    );

    settle().await;
    let mut publisher = client(&a, "pub").await;
    publish(&mut publisher, "s/1", b"after", QoS::AtLeastOnce, false, 1).await;
    let got = received(&mut new).await;
    assert_eq!(text(&got), "after");
    assert_eq!(got.properties.subscription_identifiers, vec![7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_on_one_node_while_offline_are_delivered_on_another_in_order() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let (mut old, _) = connect(&a, persistent("dev", true, None)).await;
    old.subscribe("q/#", QoS::AtLeastOnce).await;
    old.disconnect().await;
    let mut publisher = client(&a, "pub").await;
    for i in 1..=20u16 {
        let ack = publish(
            &mut publisher,
            "q/x",
            i.to_string().as_bytes(),
            QoS::AtLeastOnce,
            false,
            i,
        )
        .await;
        assert!(matches!(ack, Packet::PubAck(_)));
    }

    let (mut new, ack) = connect(&b, persistent("dev", false, None)).await;
    assert!(ack.session_present);
    for i in 1..=20u16 {
        let got = received(&mut new).await;
        assert_eq!(text(&got), i.to_string());
        new.puback(got.qos.packet_id().expect("QoS 1")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_qos_1_and_2_messages_are_resent_on_the_new_node() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let (mut old, _) = connect(&a, persistent("dev", true, None)).await;
    old.subscribe("f/1", QoS::AtLeastOnce).await;
    old.subscribe("f/2", QoS::ExactlyOnce).await;
    let mut publisher = client(&a, "pub").await;
    publish(&mut publisher, "f/1", b"one", QoS::AtLeastOnce, false, 1).await;
    publish(&mut publisher, "f/2", b"two", QoS::ExactlyOnce, false, 2).await;
    // Received, never acknowledged.
    let first = received(&mut old).await;
    let second = received(&mut old).await;

    let (mut new, ack) = connect(&b, persistent("dev", false, None)).await;
    assert_taken_over(&mut old).await;
    assert!(ack.session_present);
    for sent in [first, second] {
        let again = received(&mut new).await;
        assert!(again.dup, "resent with DUP");
        assert_eq!(again.qos, sent.qos, "same QoS and packet id");
        assert_eq!(again.payload, sent.payload);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_qos_2_state_moves_so_a_dup_resend_is_not_routed_twice() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut subscriber = client(&a, "sub").await;
    subscriber.subscribe("e/#", QoS::AtMostOnce).await;
    settle().await;

    let (mut old, _) = connect(&a, persistent("dev", true, None)).await;
    let rec = publish(&mut old, "e/x", b"once", QoS::ExactlyOnce, false, 9).await;
    assert!(matches!(rec, Packet::PubRec(_)));
    assert_eq!(text(&received(&mut subscriber).await), "once");

    // The PUBREC was lost: the client resends the PUBLISH with DUP on the other node.
    let (mut new, ack) = connect(&b, persistent("dev", false, None)).await;
    assert!(ack.session_present);
    let mut again = publish_packet("e/x", b"once", QoS::ExactlyOnce, false, 9);
    again.dup = true;
    new.send(&Packet::Publish(again)).await;
    assert!(matches!(new.packet().await, Packet::PubRec(_)));
    new.send(&Packet::PubRel(PubAck::new(pid(9)))).await;
    assert!(matches!(new.packet().await, Packet::PubComp(_)));
    assert_eq!(
        subscriber.recv_within(Duration::from_secs(2)).await,
        Received::Timeout,
        "the resend was not routed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_start_on_another_node_discards_the_session() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let (mut old, _) = connect(&a, persistent("dev", true, None)).await;
    old.subscribe("c/#", QoS::AtLeastOnce).await;
    old.disconnect().await;
    let mut publisher = client(&a, "pub").await;
    publish(&mut publisher, "c/x", b"queued", QoS::AtLeastOnce, false, 1).await;

    let (mut new, ack) = connect(&b, persistent("dev", true, None)).await;
    assert!(!ack.session_present);
    assert!(a.mqtt.broker.session("dev").is_none(), "node a dropped it");
    settle().await;
    publish(&mut publisher, "c/x", b"later", QoS::AtLeastOnce, false, 2).await;
    assert_eq!(
        new.recv_within(Duration::from_secs(2)).await,
        Received::Timeout,
        "neither the queued message nor the subscription came along"
    );
}

/// Takes `dev` (with `will`) over from node a on node b, `resume` or not; whether the will
/// reached a subscriber.
async fn will_on_takeover(will_delay: Option<u32>, resume: bool) -> bool {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut watcher = client(&b, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    settle().await;
    let (mut old, _) = connect(&a, persistent("dev", true, Some(will(will_delay)))).await;
    let (_new, _) = connect(&b, persistent("dev", !resume, None)).await;
    assert_taken_over(&mut old).await;
    // Long enough for a will on a loaded machine; the case without one waits it out.
    match watcher.recv_within(Duration::from_secs(8)).await {
        Received::Packet(Packet::Publish(p)) => {
            assert_eq!(text(&p), "gone");
            true
        }
        Received::Timeout => false,
        other => panic!("expected the will or nothing, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_across_nodes_follows_the_will_rules() {
    // The session continues: a will without delay is published, a delayed one is not.
    assert!(will_on_takeover(None, true).await);
    assert!(!will_on_takeover(Some(60), true).await);
    // The session ends (clean start): the will is published, delay or not.
    assert!(will_on_takeover(Some(60), false).await);
}
