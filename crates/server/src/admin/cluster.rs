//! The cluster in the admin API (docs/admin-api.md, `GET /api/v1/cluster`) and in `/metrics`:
//! this node, its NATS connection, the members and their health, and the fabric's counters. The
//! server crate does not know the cluster crate: `wardgate` implements [`ClusterView`] on its
//! node and adds it with [`attach`]. Without a cluster the route answers 404.

use std::fmt;
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::ConstCounter;
use serde::{Deserialize, Serialize};

use super::AdminState;
use crate::metrics::gauge_family;

/// What the admin API reads from the node of a cluster. Must be cheap and must not block.
pub trait ClusterView: Send + Sync + 'static {
    /// The node's view of the cluster now.
    fn cluster(&self) -> Cluster;

    /// The node that holds `client_id`'s session (`Ok(None)`: none does), from the cluster's
    /// ownership records.
    fn locate<'a>(
        &'a self,
        client_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// This node's id.
    pub node: String,
    /// Its NATS connection: `connected`, `disconnected` or `pending`.
    pub nats: String,
    /// Every node seen since this one joined, itself included, by id.
    pub members: Vec<ClusterMember>,
    /// This node's clients' messages handed to the cluster.
    pub forwarded: u64,
    /// Messages from other nodes routed to this node's sessions.
    pub received: u64,
    /// QoS 0 messages not sent to the cluster (backlog full, or refused by NATS).
    pub dropped: u64,
    /// QoS 1/2 publishes sent again after JetStream refused or did not acknowledge them.
    pub retried: u64,
}

/// One member of the cluster, as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    /// Its node id.
    pub id: String,
    /// Whether its heartbeat is fresh.
    pub up: bool,
    /// Milliseconds since its latest heartbeat arrived here.
    pub last_seen_ms: u64,
    /// When it joined (RFC 3339).
    pub started: String,
    /// The Wardgate version it runs.
    pub version: String,
    /// Its MQTT ports.
    pub ports: Vec<u16>,
    /// Clients connected to it.
    pub clients: u64,
}

/// Serves `GET /api/v1/cluster` from `view` and exports its counters in `/metrics`.
pub fn attach(mut state: AdminState, view: Arc<dyn ClusterView>) -> AdminState {
    state.cluster = Some(view.clone());
    state
        .metrics
        .register_collector(Box::new(ClusterCollector(view.clone())));
    let routes = Router::new()
        .route("/api/v1/cluster", get(cluster))
        .with_state(view);
    state.with_routes(routes)
}

async fn cluster(
    axum::extract::State(view): axum::extract::State<Arc<dyn ClusterView>>,
) -> Json<Cluster> {
    Json(view.cluster())
}

/// The cluster's metrics, read at scrape time.
struct ClusterCollector(Arc<dyn ClusterView>);

impl fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCollector").finish_non_exhaustive()
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let c = self.0.cluster();
        let counters = [
            (
                "cluster_messages_forwarded",
                "This node's clients' messages handed to the cluster",
                c.forwarded,
            ),
            (
                "cluster_messages_received",
                "Messages from other nodes routed to this node's sessions",
                c.received,
            ),
            (
                "cluster_messages_dropped",
                "QoS 0 messages not sent to the cluster (backlog full, or refused by NATS)",
                c.dropped,
            ),
            (
                "cluster_publishes_retried",
                "QoS 1/2 publishes sent again after JetStream refused or did not acknowledge them",
                c.retried,
            ),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        let series: Vec<_> = c
            .members
            .iter()
            .map(|m| ([("member", m.id.clone())], i64::from(m.up)))
            .collect();
        gauge_family(
            &mut encoder,
            "cluster_member_up",
            "1 while a member's heartbeat is fresh, 0 once it is not",
            &series,
        )?;
        gauge_family(
            &mut encoder,
            "cluster_nats_connected",
            "1 while this node's NATS connection is up",
            &[([("node", c.node)], i64::from(c.nats == "connected"))],
        )
    }
}

/// `GET /api/v1/cluster` from `api`: `None` when the broker is not in a cluster (404).
pub async fn fetch(
    api: &super::client::AdminClient,
) -> Result<Option<Cluster>, super::client::ClientError> {
    let response = api.get("/api/v1/cluster").await?;
    if response.status == 404 {
        return Ok(None);
    }
    serde_json::from_slice(&response.body)
        .map(Some)
        .map_err(|source| super::client::ClientError::Json {
            path: "/api/v1/cluster".to_string(),
            source,
        })
}
