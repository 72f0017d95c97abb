//! `spec.cluster` of the Broker (Wardgate extension, `wardgate.io/v1` only; issue 17).

use schemars::JsonSchema;
use serde::Deserialize;

/// `spec.cluster`: the NATS JetStream cluster the nodes of this broker join.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Where the NATS servers are and how to authenticate to them.
    pub nats: Option<NatsSettings>,
    /// 1, 3 (default) or 5.
    pub replicas: Option<i64>,
    /// Subject prefix (default `wg`).
    pub subject_prefix: Option<String>,
}

/// `spec.cluster.nats`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatsSettings {
    /// NATS server URLs (`nats://host:port`, ...).
    pub urls: Option<Vec<String>>,
    /// A Secret holding the NATS credentials: a credentials file under key `nats.creds`, or
    /// `username` and `password`, or `token`.
    pub credentials_secret_ref: Option<String>,
}
