//! Ownership keys of sessions gone are swept (docs/cluster.md, "Client IDs"): a node that joins
//! again deletes the keys naming it whose client has no session there, and keeps the others.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::Node;
use wardgate_core::store::{RecoveredSession, SessionRecord};
use wardgate_core::{Broker, BrokerSettings, SessionId};
use wardgate_protocol::ProtocolVersion;
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{client, node, options};

async fn join(nats: &NatsCluster, broker: Arc<Broker>, stop: &CancellationToken) -> Arc<Node> {
    Node::join(
        broker,
        options(nats, 0, "a"),
        &TaskTracker::new(),
        stop.clone(),
    )
    .await
    .expect("joins the cluster")
}

/// `client_id`'s session as a store would give it back at a restart.
fn restored(client_id: &str) -> RecoveredSession {
    RecoveredSession {
        record: SessionRecord {
            id: SessionId(1),
            client_id: client_id.into(),
            protocol: ProtocolVersion::V5,
            expiry_interval: 3600,
            owner: None,
            persist_queue: false,
            disconnected_at: Some(Instant::now()),
            will: None,
            will_due: None,
        },
        subscriptions: Vec::new(),
        messages: Vec::new(),
        incoming_qos2: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_again_sweeps_the_keys_of_sessions_it_lost_and_keeps_the_others() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let b = node(&nats, 1, "b").await;
    let first = node(&nats, 0, "a").await;
    for id in ["lost", "kept"] {
        client(&first, id).await.disconnect().await;
    }
    client(&b, "elsewhere").await.disconnect().await;
    drop(first);

    // Node a again, without a store: only "kept" comes back (as a store would restore it).
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    broker.adopt(restored("kept"), Instant::now());
    let stop = CancellationToken::new();
    let again = join(&nats, broker, &stop).await;
    assert_eq!(again.owner_of("lost").await, Ok(None), "swept");
    assert_eq!(again.owner_of("kept").await, Ok(Some("a".into())));
    assert_eq!(again.owner_of("elsewhere").await, Ok(Some("b".into())));
    stop.cancel();
}
