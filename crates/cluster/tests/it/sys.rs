//! `$SYS` per node (docs/cluster.md, "Operations"): each node's `$SYS/broker/...` stays on the
//! node, and the same figures go to every node as `$SYS/brokers/<node-id>/...`, not retained,
//! so a subscriber on any node sees every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::Node;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_protocol::{Packet, QoS};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::Received;
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::options;

/// A node publishing `$SYS` every second.
struct SysNode {
    mqtt: TestBroker,
    _node: Arc<Node>,
    stop: CancellationToken,
}

impl Drop for SysNode {
    fn drop(&mut self) {
        self.stop.cancel();
        self.mqtt.shutdown();
    }
}

async fn sys_node(nats: &NatsCluster, server: usize, id: &str) -> SysNode {
    let settings = BrokerSettings {
        sys_interval: Duration::from_secs(1),
        ..BrokerSettings::default()
    };
    let broker = Arc::new(Broker::new(settings));
    let stop = CancellationToken::new();
    let node = Node::join(
        broker.clone(),
        options(nats, server, id),
        &TaskTracker::new(),
        stop.clone(),
    )
    .await
    .expect("joins the cluster");
    let mqtt = TestBroker::with_broker(broker, Default::default()).await;
    SysNode {
        mqtt,
        _node: node,
        stop,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_node_sees_every_nodes_sys_figures_under_its_id() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = sys_node(&nats, 0, "a").await;
    let b = sys_node(&nats, 1, "b").await;
    let (mut subscriber, _) = wardgate_testkit::client::RawClient::connect(
        b.mqtt.tcp,
        wardgate_protocol::ProtocolVersion::V5,
        "sys-watcher",
    )
    .await;
    subscriber
        .subscribe("$SYS/brokers/#", QoS::AtMostOnce)
        .await;

    // Each node's own figures (a has no client, b has the subscriber), and every figure of
    // `$SYS/broker/...` for each node.
    let values = [
        ("$SYS/brokers/a/clients/connected", "0"),
        ("$SYS/brokers/b/clients/connected", "1"),
    ];
    let names = [
        "version",
        "uptime",
        "messages/received",
        "subscriptions/count",
    ];
    let mut latest: HashMap<String, String> = HashMap::new();
    let complete = |latest: &HashMap<String, String>| {
        values
            .iter()
            .all(|(t, v)| latest.get(*t).is_some_and(|got| got == v))
            && ["a", "b"].iter().all(|node| {
                names
                    .iter()
                    .all(|name| latest.contains_key(&format!("$SYS/brokers/{node}/{name}")))
            })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !complete(&latest) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match subscriber.recv_within(left).await {
            Received::Packet(Packet::Publish(p)) => {
                let topic = p.topic.as_ref().map(|t| t.as_str().to_owned());
                let topic = topic.expect("a topic");
                assert!(!p.retain, "{topic}: not retained");
                latest.insert(topic, String::from_utf8_lossy(&p.payload).into_owned());
            }
            other => panic!("expected both nodes' $SYS figures, got {other:?}; so far {latest:?}"),
        }
    }
    drop(a);
}
