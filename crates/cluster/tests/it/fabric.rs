//! Two Wardgate nodes (in process, each serving MQTT on loopback) joined to a real 3-server
//! NATS cluster with JetStream, each node on its own NATS server: one broker across them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::{Node, NodeOptions};
use wardgate_core::{Broker, BrokerSettings};
use wardgate_protocol::{
    Packet, ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubscriptionOptions, TopicName,
};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};
use wardgate_testkit::nats::NatsCluster;

/// A node: the MQTT broker and its place in the cluster.
pub(crate) struct TestNode {
    pub(crate) mqtt: TestBroker,
    _node: Arc<Node>,
    stop: CancellationToken,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop.cancel();
        self.mqtt.shutdown();
    }
}

/// How a test node joins: on NATS server `server`, R3, prefix `wg`.
pub(crate) fn options(nats: &NatsCluster, server: usize, id: &str) -> NodeOptions {
    NodeOptions {
        urls: vec![nats.url(server)],
        node_id: id.into(),
        replicas: 3,
        prefix: "wg".into(),
        max_age: Duration::from_secs(3600),
        auth: wardgate_cluster::NatsAuth::default(),
    }
}

pub(crate) async fn node(nats: &NatsCluster, server: usize, id: &str) -> TestNode {
    node_with(options(nats, server, id)).await
}

/// A node joined with `options`, its tasks on the runtime this runs on.
pub(crate) async fn node_with(options: NodeOptions) -> TestNode {
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let stop = CancellationToken::new();
    let node = Node::join(broker.clone(), options, &TaskTracker::new(), stop.clone())
        .await
        .expect("joins the cluster");
    let mqtt = TestBroker::with_broker(broker, Default::default()).await;
    TestNode {
        mqtt,
        _node: node,
        stop,
    }
}

pub(crate) async fn client(node: &TestNode, id: &str) -> RawClient {
    let (client, ack) =
        RawClient::connect_with(node.mqtt.tcp, connect_packet(ProtocolVersion::V5, id, true)).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    client
}

/// Gives the subscribing node's interest time to reach the other NATS servers.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

pub(crate) async fn received(client: &mut RawClient) -> wardgate_protocol::Publish {
    match client.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Publish(p)) => p,
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_on_one_node_reaches_a_subscriber_on_another_with_every_property() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("t/#", QoS::ExactlyOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;

    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let mut publish = publish_packet("t/x", b"payload", qos, false, 7);
        publish.properties = PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(600),
            content_type: Some("text/plain".into()),
            response_topic: Some(TopicName::new("reply/to").expect("valid")),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            ..PublishProperties::default()
        };
        publisher.send(&Packet::Publish(publish.clone())).await;
        if qos != QoS::AtMostOnce {
            // The acknowledgement comes once JetStream has the message.
            match publisher.packet().await {
                Packet::PubAck(ack) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
                Packet::PubRec(rec) => assert_eq!(rec.reason, ReasonCode::SUCCESS),
                other => panic!("expected PUBACK/PUBREC, got {other:?}"),
            }
        }
        let got = received(&mut subscriber).await;
        assert_eq!(got.qos.level(), qos);
        assert_eq!(&got.payload[..], b"payload");
        let p = &got.properties;
        assert_eq!(p.payload_format_indicator, Some(true));
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            p.response_topic.as_ref().map(|t| t.as_str()),
            Some("reply/to")
        );
        assert_eq!(p.correlation_data.as_deref(), Some(&b"corr"[..]));
        assert_eq!(p.user_properties, publish.properties.user_properties);
        let expiry = p.message_expiry_interval.expect("expiry forwarded");
        assert!((598..=600).contains(&expiry), "counted down: {expiry}");
        if let Some(id) = got.qos.packet_id() {
            match qos {
                QoS::AtLeastOnce => subscriber.puback(id).await,
                _ => {
                    let ack = wardgate_protocol::PubAck::new(id);
                    subscriber.send(&Packet::PubRec(ack.clone())).await;
                    assert!(matches!(subscriber.packet().await, Packet::PubRel(_)));
                    subscriber.send(&Packet::PubComp(ack)).await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publishers_messages_arrive_on_another_node_in_order() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 2, "b").await;
    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("o/+", QoS::AtLeastOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;
    const N: u16 = 200;
    for i in 1..=N {
        let topic = if i % 2 == 0 { "o/even" } else { "o/odd" };
        let publish = publish_packet(topic, i.to_string().as_bytes(), QoS::AtLeastOnce, false, i);
        publisher.send(&Packet::Publish(publish)).await;
    }
    for i in 1..=N {
        let got = received(&mut subscriber).await;
        assert_eq!(
            std::str::from_utf8(&got.payload).expect("utf-8"),
            i.to_string()
        );
        if let Some(id) = got.qos.packet_id() {
            subscriber.puback(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_given_every_servers_url_joins_and_carries_messages() {
    // `serve --cluster nats://a,nats://b,nats://c`: each URL is one server to try.
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node_with(NodeOptions {
        urls: nats.urls(),
        ..options(&nats, 0, "a")
    })
    .await;
    let b = node(&nats, 1, "b").await;
    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("u/+", QoS::AtLeastOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;
    let publish = publish_packet("u/1", b"every url", QoS::AtLeastOnce, false, 1);
    publisher.send(&Packet::Publish(publish)).await;
    let got = received(&mut subscriber).await;
    assert_eq!(&got.payload[..], b"every url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_puback_waits_until_jetstream_has_the_message() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let mut publisher = client(&a, "pub").await;
    // Without a quorum (two of three servers paused), JetStream cannot acknowledge.
    nats.pause(1).expect("pause");
    nats.pause(2).expect("pause");
    let publish = publish_packet("held/x", b"m", QoS::AtLeastOnce, false, 1);
    publisher.send(&Packet::Publish(publish)).await;
    assert_eq!(
        publisher.recv_within(Duration::from_secs(2)).await,
        Received::Timeout,
        "no PUBACK before the message is durable"
    );
    nats.resume(1).expect("resume");
    nats.resume(2).expect("resume");
    match publisher.recv_within(Duration::from_secs(20)).await {
        Received::Packet(Packet::PubAck(ack)) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
        other => panic!("expected the PUBACK once the quorum is back, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_message_set_on_one_node_is_sent_on_subscribe_at_another() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut publisher = client(&a, "pub").await;
    publisher
        .publish("r/1", b"kept", QoS::AtLeastOnce, true, 1)
        .await;
    settle().await;

    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("r/+", QoS::AtLeastOnce).await;
    let got = received(&mut subscriber).await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"kept");

    // Retain Handling 2: not sent.
    let mut other = client(&b, "other").await;
    let mut options = SubscriptionOptions::new(QoS::AtLeastOnce);
    options.retain_handling = RetainHandling::DontSend;
    other.subscribe_with("r/+", options, None).await;
    assert_eq!(
        other.recv_within(Duration::from_millis(500)).await,
        Received::Timeout
    );

    // Cleared on A: gone at B too.
    publisher
        .publish("r/1", b"", QoS::AtLeastOnce, true, 2)
        .await;
    settle().await;
    let mut late = client(&b, "late").await;
    late.subscribe("r/+", QoS::AtLeastOnce).await;
    assert_eq!(
        late.recv_within(Duration::from_millis(500)).await,
        Received::Timeout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_across_nodes_gets_each_message_once() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut on_a = client(&a, "member-a").await;
    let mut on_b = client(&b, "member-b").await;
    on_a.subscribe("$share/g/s/#", QoS::AtMostOnce).await;
    on_b.subscribe("$share/g/s/#", QoS::AtMostOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;
    const N: usize = 40;
    for i in 0..N {
        publisher
            .publish("s/x", i.to_string().as_bytes(), QoS::AtMostOnce, false, 0)
            .await;
    }
    let mut got = Vec::new();
    let mut per_member = [0usize; 2];
    for (n, member) in [&mut on_a, &mut on_b].into_iter().enumerate() {
        while let Received::Packet(Packet::Publish(p)) =
            member.recv_within(Duration::from_millis(1_000)).await
        {
            got.push(String::from_utf8_lossy(&p.payload).into_owned());
            per_member[n] += 1;
        }
    }
    got.sort_by_key(|s| s.parse::<usize>().unwrap_or(usize::MAX));
    let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(got, expected, "each message exactly once across the group");
    assert!(
        per_member.iter().all(|&n| n > 0),
        "both nodes' members take part: {per_member:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_too_long_for_a_nats_subject_still_crosses_nodes_and_is_retained() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    // 3,000 levels: a subject of 6,000 bytes, past nats-server's 4 KiB control line.
    let long = vec!["x"; 3_000].join("/");
    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("x/#", QoS::AtLeastOnce).await;
    let mut shared = client(&b, "member").await;
    shared.subscribe("$share/g/x/#", QoS::AtLeastOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;
    let ack = publisher
        .publish(&long, b"far", QoS::AtLeastOnce, true, 1)
        .await;
    assert!(matches!(ack, Some(Packet::PubAck(a)) if a.reason == ReasonCode::SUCCESS));
    for who in [&mut subscriber, &mut shared] {
        let got = received(who).await;
        assert_eq!(got.topic.as_ref().map(|t| t.as_str()), Some(long.as_str()));
    }
    settle().await;
    let mut late = client(&b, "late").await;
    late.subscribe("x/#", QoS::AtLeastOnce).await;
    let got = received(&mut late).await;
    assert!(got.retain);
    assert_eq!(&got.payload[..], b"far");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscription_on_another_node_gets_only_messages_published_after_it() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    // B's consumer first takes `x`, then, when `y/#` is subscribed, `y` too: the messages on
    // `y` it skipped meanwhile are older than the subscription and never delivered.
    let mut early = client(&b, "early").await;
    early.subscribe("x/#", QoS::AtLeastOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;
    for (i, topic) in ["y/old", "x/1", "y/old", "x/2"].into_iter().enumerate() {
        let id = u16::try_from(i + 1).expect("small");
        let ack = publisher
            .publish(topic, b"before", QoS::AtLeastOnce, false, id)
            .await;
        assert!(matches!(ack, Some(Packet::PubAck(_))));
    }
    for _ in 0..2 {
        let got = received(&mut early).await;
        if let Some(id) = got.qos.packet_id() {
            early.puback(id).await;
        }
    }
    let mut late = client(&b, "late").await;
    late.subscribe("y/#", QoS::AtLeastOnce).await;
    settle().await;
    publisher
        .publish("y/new", b"after", QoS::AtLeastOnce, false, 9)
        .await;
    let got = received(&mut late).await;
    assert_eq!(got.topic.as_ref().map(|t| t.as_str()), Some("y/new"));
    assert_eq!(
        late.recv_within(Duration::from_millis(500)).await,
        Received::Timeout,
        "nothing older than the subscription"
    );
}
