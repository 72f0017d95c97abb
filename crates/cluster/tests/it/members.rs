//! The cluster's members on a real 3-server NATS cluster: every node sees every node up, and a
//! node that leaves is down for the others within seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::Node;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_testkit::nats::NatsCluster;

async fn join(nats: &NatsCluster, server: usize, id: &str) -> (Arc<Node>, CancellationToken) {
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let stop = CancellationToken::new();
    let options = crate::fabric::options(nats, server, id);
    let node = Node::join(broker, options, &TaskTracker::new(), stop.clone())
        .await
        .expect("joins the cluster");
    (node, stop)
}

/// `(id, up)` of every member `node` sees, by id.
fn health(node: &Node) -> Vec<(String, bool)> {
    node.members()
        .into_iter()
        .map(|m| (m.record.id, m.up))
        .collect()
}

async fn until(node: &Node, want: &[(&str, bool)], within: Duration) -> Duration {
    let want: Vec<(String, bool)> = want.iter().map(|(id, up)| ((*id).into(), *up)).collect();
    let start = Instant::now();
    while health(node) != want {
        assert!(
            start.elapsed() < within,
            "members after {within:?}: {:?}, wanted {want:?}",
            health(node)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_sees_every_node_up_and_a_node_that_leaves_goes_down() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let (a, _stop_a) = join(&nats, 0, "a").await;
    a.report_ports(|| vec![1883, 8883]);
    let (b, _stop_b) = join(&nats, 1, "b").await;
    let (_c, stop_c) = join(&nats, 2, "c").await;
    let all_up = [("a", true), ("b", true), ("c", true)];
    until(&a, &all_up, Duration::from_secs(10)).await;
    until(&b, &all_up, Duration::from_secs(10)).await;
    let record = b
        .members()
        .into_iter()
        .find(|m| m.record.id == "a")
        .expect("a is listed")
        .record;
    assert_eq!(record.ports, [1883, 8883]);
    assert_eq!(record.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(record.clients, 0);
    assert!(a.connection_state() == "connected");

    stop_c.cancel();
    let took = until(
        &a,
        &[("a", true), ("b", true), ("c", false)],
        Duration::from_secs(6),
    )
    .await;
    eprintln!("c was down for a after {took:?}");
}
