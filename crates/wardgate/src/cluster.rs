//! `serve` in a cluster (docs/cluster.md): joins the NATS cluster the plan names before the
//! ports open, so a client never sees this node before it is part of the broker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::{Node, NodeOptions};
use wardgate_core::Broker;
use wardgate_server::plan::ClusterPlan;

/// How long the QoS 1/2 message stream keeps a message: what a node that was away may still
/// read back (issue 18), and the bound on the stream's size besides JetStream's own limits.
const MESSAGE_MAX_AGE: Duration = Duration::from_secs(3600);

/// Joins the cluster of `plan` with `broker`; its tasks run on `tasks` until `shutdown`.
pub(crate) async fn join(
    broker: Arc<Broker>,
    plan: &ClusterPlan,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Node>> {
    let cluster = &plan.cluster;
    if let Some(secret) = &cluster.credentials_secret_ref {
        anyhow::bail!(
            "spec.cluster.nats.credentialsSecretRef ({secret}): NATS credentials are not supported by this build yet; connect to NATS without credentials on a private network, or leave the cluster out"
        );
    }
    let options = NodeOptions {
        urls: cluster
            .nats_urls
            .as_slice()
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        node_id: plan.node_id.as_str().to_owned(),
        replicas: cluster.replicas.count(),
        prefix: cluster.subject_prefix.as_str().to_owned(),
        max_age: MESSAGE_MAX_AGE,
    };
    let node = Node::join(broker, options, tasks, shutdown)
        .await
        .context("cannot join the cluster")?;
    tracing::info!(
        node_id = node.id(),
        replicas = cluster.replicas.count(),
        "joined the cluster"
    );
    Ok(node)
}

/// The admin API's view of this node (`GET /api/v1/cluster`, the cluster metrics).
pub(crate) struct NodeView(pub(crate) Arc<Node>);

impl wardgate_server::admin::cluster::ClusterView for NodeView {
    fn cluster(&self) -> wardgate_server::admin::cluster::Cluster {
        use wardgate_server::admin::cluster::{Cluster, ClusterMember};
        use wardgate_server::admin::dto::rfc3339;
        let node = &self.0;
        let members = node
            .members()
            .into_iter()
            .map(|m| ClusterMember {
                id: m.record.id,
                up: m.up,
                last_seen_ms: u64::try_from(m.last_seen.as_millis()).unwrap_or(u64::MAX),
                started: rfc3339(
                    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(m.record.started),
                ),
                version: m.record.version,
                ports: m.record.ports,
                clients: m.record.clients,
            })
            .collect();
        Cluster {
            node: node.id().to_owned(),
            nats: node.connection_state(),
            members,
            forwarded: node.forwarded(),
            received: node.received(),
            dropped: node.dropped(),
            retried: node.retried(),
        }
    }

    fn locate<'a>(
        &'a self,
        client_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>> {
        Box::pin(self.0.owner_of(client_id))
    }
}
