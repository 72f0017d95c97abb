//! The will of a client whose node died is published by the cluster, after its delay, once
//! (docs/cluster.md, guarantee 9). Node a's part in the cluster stops (its heartbeat, outbox
//! and will records end, as when its process dies) while its MQTT side, and the client's
//! connection, stay: only the surviving nodes can publish the will.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::Node;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_protocol::{
    Connect, ProtocolVersion, QoS, ReasonCode, TopicName, Will, WillProperties,
};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{client, node, options, received, settle};

const DELAY: u32 = 2;

/// A v5 CONNECT of `id` with a session expiry and a will on `will/<id>` delayed [`DELAY`] s.
fn with_will(id: &str) -> Connect {
    let mut connect = connect_packet(ProtocolVersion::V5, id, true);
    connect.properties.session_expiry_interval = Some(60);
    connect.will = Some(Will {
        topic: TopicName::new(format!("will/{id}")).expect("valid"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(DELAY),
            ..WillProperties::default()
        },
    });
    connect
}

/// Node a, stopped by the token it returns (its cluster part only: its MQTT side and the
/// client stay), with client `dying` connected with a will.
async fn a_with_a_dying_client(
    nats: &NatsCluster,
) -> (CancellationToken, Arc<Node>, TestBroker, RawClient) {
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let stop = CancellationToken::new();
    let node = Node::join(
        broker.clone(),
        options(nats, 0, "a"),
        &TaskTracker::new(),
        stop.clone(),
    )
    .await
    .expect("joins the cluster");
    let mqtt = TestBroker::with_broker(broker, Default::default()).await;
    let (dying, ack) = RawClient::connect_with(mqtt.tcp, with_will("dying")).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    (stop, node, mqtt, dying)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_will_of_a_dead_nodes_client_is_published_by_a_survivor_after_its_delay_once() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let b = node(&nats, 1, "b").await;
    let _c = node(&nats, 2, "c").await;
    let mut subscriber = client(&b, "sub").await;
    subscriber.subscribe("will/#", QoS::AtLeastOnce).await;

    let (stop, _a, mqtt, _dying) = a_with_a_dying_client(&nats).await;
    // A will discarded by a normal DISCONNECT is not the cluster's to publish later.
    let (leaving, ack) = RawClient::connect_with(mqtt.tcp, with_will("leaving")).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    leaving.disconnect().await;
    settle().await;

    stop.cancel();
    let died = Instant::now();
    let will = received(&mut subscriber).await;
    assert_eq!(&will.payload[..], b"gone");
    assert_eq!(will.topic.as_ref().map(|t| t.as_str()), Some("will/dying"));
    assert!(
        died.elapsed() >= Duration::from_secs(u64::from(DELAY)),
        "published before its delay: {:?}",
        died.elapsed()
    );
    if let Some(id) = will.qos.packet_id() {
        subscriber.puback(id).await;
    }
    // Two survivors raced for it: one published it.
    assert_eq!(
        subscriber.recv_within(Duration::from_secs(3)).await,
        Received::Timeout,
        "the will is published once, and the discarded one never"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_before_it_looked_gone_publishes_its_previous_runs_wills() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let (first_run, _first, _mqtt, _dying) = a_with_a_dying_client(&nats).await;
    settle().await;
    first_run.cancel();

    // The same node id again at once: no other node ever saw it gone.
    let again = node(&nats, 0, "a").await;
    let mut subscriber = client(&again, "sub").await;
    subscriber.subscribe("will/#", QoS::AtLeastOnce).await;
    let will = received(&mut subscriber).await;
    assert_eq!(will.topic.as_ref().map(|t| t.as_str()), Some("will/dying"));
}
