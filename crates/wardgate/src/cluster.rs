//! `serve` in a cluster (docs/cluster.md): joins the NATS cluster the plan names before the
//! ports open, so a client never sees this node before it is part of the broker.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_cluster::{NatsAuth, Node, NodeOptions};
use wardgate_config::model::{Cluster, Model};
use wardgate_core::Broker;
use wardgate_server::plan::{ClusterPlan, Plan};

/// How long the QoS 1/2 message stream keeps a message: what a node that was away may still
/// read back (issue 18), and the bound on the stream's size besides JetStream's own limits.
const MESSAGE_MAX_AGE: Duration = Duration::from_secs(3600);

/// Joins the cluster of `plan` with `broker`, with the NATS credentials of the Secret `model`
/// holds; its tasks run on `tasks` until `shutdown`.
pub(crate) async fn join(
    broker: Arc<Broker>,
    plan: &ClusterPlan,
    model: &Model,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Node>> {
    let cluster = &plan.cluster;
    let auth = nats_auth(cluster, model)?;
    let auth_kind = auth.kind();
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
        auth,
    };
    let joined = Node::join(broker, options, tasks, shutdown).await;
    let node = match (&cluster.credentials_secret_ref, joined) {
        (_, Ok(node)) => node,
        (Some(secret), Err(e)) => {
            return Err(anyhow::Error::new(e).context(format!(
                "cannot join the cluster with the NATS credentials of Secret {secret} (spec.cluster.nats.credentialsSecretRef)"
            )));
        }
        (None, Err(e)) => return Err(anyhow::Error::new(e).context("cannot join the cluster")),
    };
    tracing::info!(
        node_id = node.id(),
        replicas = cluster.replicas.count(),
        nats_auth = auth_kind,
        "joined the cluster"
    );
    Ok(node)
}

/// The credentials of `spec.cluster.nats.credentialsSecretRef`, read from the configuration's
/// Secret (anonymous without one); the error names the Secret and what is wrong with it.
fn nats_auth(cluster: &Cluster, model: &Model) -> anyhow::Result<NatsAuth> {
    let Some(name) = &cluster.credentials_secret_ref else {
        return Ok(NatsAuth::Anonymous);
    };
    let Some(secret) = model.secrets.get(name) else {
        anyhow::bail!(
            "spec.cluster.nats.credentialsSecretRef: Secret {name} is not in the configuration: the node cannot authenticate to NATS without it"
        );
    };
    NatsAuth::from_secret(&secret.data)
        .map_err(|e| anyhow::anyhow!("spec.cluster.nats.credentialsSecretRef: Secret {name} {e}"))
}

/// Says, on a reload, that a changed `spec.cluster` (or its credentials Secret) waits for a
/// restart: the node keeps its NATS connection and settings.
pub(crate) fn warn_if_changed(running: &Plan, reloaded: &Plan) {
    let secret = |plan: &Plan| {
        let cluster = plan.cluster.as_ref()?;
        let name = cluster.cluster.credentials_secret_ref.as_ref()?;
        plan.model().secrets.get(name).map(|s| s.data.clone())
    };
    if running.cluster != reloaded.cluster || secret(running) != secret(reloaded) {
        tracing::warn!(
            "spec.cluster or its NATS credentials Secret changed: the cluster settings apply at the next restart; this node keeps its NATS connection as it is"
        );
    }
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
