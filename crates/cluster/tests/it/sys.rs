//! `$SYS` per node (docs/cluster.md, "Operations"): each node's `$SYS/broker/...` stays on the
//! node, and the same figures go to every node as `$SYS/brokers/<node-id>/...`, not retained,
//! so a subscriber on any node sees every node.

use std::collections::HashMap;
use std::time::Duration;

use wardgate_protocol::{Packet, QoS};
use wardgate_testkit::client::Received;
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{client, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_node_sees_every_nodes_sys_figures_under_its_id() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let mut subscriber = client(&b, "sys-watcher").await;
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
    // `$SYS` goes out every 10 s: the figures after the subscription come within one interval.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
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
    drop((a, b));
}
