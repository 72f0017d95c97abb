//! Broker of the current API (`reference/aio-broker.md` §2).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::listener::CertManagerPrivateKey;
use crate::enums::{
    KeyType, LogFormat, MemoryProfile, OperationalMode, PersistenceMode, QueueStrategy,
};

/// `spec` of a Broker.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerSpec {
    /// Client limits and internal traffic settings.
    pub advanced: Option<AdvancedSettings>,
    /// Pod counts (Kubernetes; recorded only).
    pub cardinality: Option<Cardinality>,
    /// The NATS JetStream cluster the nodes join (Wardgate extension, `wardgate.io/v1` only).
    pub cluster: Option<super::cluster::ClusterSettings>,
    /// Logs, metrics, self-check, traces.
    pub diagnostics: Option<BrokerDiagnostics>,
    /// Disk spill of subscriber queues (Kubernetes; recorded only).
    pub disk_backed_message_buffer: Option<DiskBackedMessageBuffer>,
    /// CPU requests (Kubernetes; recorded only).
    pub generate_resource_limits: Option<GenerateResourceLimits>,
    /// Tiny, Low, Medium (default) or High.
    pub memory_profile: Option<MemoryProfile>,
    /// On-disk persistence.
    pub persistence: Option<BrokerPersistence>,
}

/// `advanced`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdvancedSettings {
    /// Client limits.
    pub clients: Option<ClientConfig>,
    /// TLS between frontend and backend (Kubernetes; recorded only).
    pub encrypt_internal_traffic: Option<OperationalMode>,
    /// Internal certificate settings (Kubernetes; recorded only).
    pub internal_certs: Option<CertManagerCertOptions>,
}

/// `advanced.clients`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    /// 1–4294967295.
    pub max_session_expiry_seconds: Option<i64>,
    /// 1–4294967295.
    pub max_message_expiry_seconds: Option<i64>,
    /// 1–268435456.
    pub max_packet_size_bytes: Option<i64>,
    /// Outgoing queue bound.
    pub subscriber_queue_limit: Option<SubscriberQueueLimit>,
    /// 1–65535.
    pub max_receive_maximum: Option<i64>,
    /// 0–65535.
    pub max_keep_alive_seconds: Option<i64>,
}

/// `advanced.clients.subscriberQueueLimit`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberQueueLimit {
    /// 1–2^63−1.
    pub length: Option<i64>,
    /// None (default) or DropOldest.
    pub strategy: Option<QueueStrategy>,
}

/// `advanced.internalCerts`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManagerCertOptions {
    /// Go duration.
    pub duration: String,
    /// Go duration.
    pub renew_before: String,
    /// Key settings.
    pub private_key: CertManagerPrivateKey,
}

/// `cardinality`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cardinality {
    /// Backend chain.
    pub backend_chain: BackendChain,
    /// Frontend.
    pub frontend: Frontend,
}

/// `cardinality.backendChain`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendChain {
    /// 1–16.
    pub partitions: i64,
    /// 1–5.
    pub redundancy_factor: i64,
    /// 1–16 (default 1).
    pub workers: Option<i64>,
}

/// `cardinality.frontend`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Frontend {
    /// 1–16.
    pub replicas: i64,
    /// 1–16 (default 2).
    pub workers: Option<i64>,
}

/// `diagnostics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerDiagnostics {
    /// Logs.
    pub logs: Option<DiagnosticsLogs>,
    /// Metrics.
    pub metrics: Option<Metrics>,
    /// Self-check probe.
    pub self_check: Option<SelfCheck>,
    /// Traces.
    pub traces: Option<Traces>,
}

/// `diagnostics.logs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnosticsLogs {
    /// Level or filter (default `info`).
    pub level: Option<String>,
    /// Extension: Text (default) or Json.
    pub format: Option<LogFormat>,
}

/// `diagnostics.metrics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// 0–65535 (default 9600).
    pub prometheus_port: Option<i64>,
}

/// `diagnostics.selfCheck`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfCheck {
    /// Default Enabled.
    pub mode: Option<OperationalMode>,
    /// 30–300 (default 30).
    pub interval_seconds: Option<i64>,
    /// 5–120 (default 15).
    pub timeout_seconds: Option<i64>,
}

/// `diagnostics.traces`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Traces {
    /// Default Enabled.
    pub mode: Option<OperationalMode>,
    /// 1–128 (default 16).
    pub cache_size_megabytes: Option<i64>,
    /// Self tracing.
    pub self_tracing: Option<SelfTracing>,
    /// 1000–100000 (default 1000).
    pub span_channel_capacity: Option<i64>,
}

/// `diagnostics.traces.selfTracing`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfTracing {
    /// Default Enabled.
    pub mode: Option<OperationalMode>,
    /// 1–300 (default 30).
    pub interval_seconds: Option<i64>,
}

/// `diskBackedMessageBuffer`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskBackedMessageBuffer {
    /// `^[0-9]+[KMGTPE]$`.
    pub max_size: String,
    /// Ephemeral volume.
    pub ephemeral_volume_claim_spec: Option<VolumeClaimSpec>,
    /// Persistent volume.
    pub persistent_volume_claim_spec: Option<VolumeClaimSpec>,
}

/// `generateResourceLimits`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateResourceLimits {
    /// Default Enabled in the API.
    pub cpu: Option<OperationalMode>,
}

/// `persistence`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerPersistence {
    /// Size limit, e.g. `10GiB` (more than 100 MB).
    pub max_size: String,
    /// Volume (Kubernetes; recorded only).
    pub persistent_volume_claim_spec: Option<VolumeClaimSpec>,
    /// Encryption at rest (default Enabled).
    pub encryption: Option<ModeOnly>,
    /// Retained messages.
    pub retain: Option<RetainPolicy>,
    /// Subscriber queues.
    pub subscriber_queue: Option<SubscriberQueuePolicy>,
    /// State store keys.
    pub state_store: Option<StateStorePolicy>,
    /// The user property that asks for persistence (removed in API 2025-10-01; accepted).
    pub dynamic_settings: Option<DynamicSettings>,
}

/// An object with only `mode`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeOnly {
    /// Enabled or Disabled.
    pub mode: OperationalMode,
}

/// `persistence.retain`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetainPolicy {
    /// All, None or Custom.
    pub mode: PersistenceMode,
    /// Settings of Custom.
    pub retain_settings: Option<RetainSettings>,
}

/// `persistence.retain.retainSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetainSettings {
    /// Topic filters whose retained messages persist.
    pub topics: Option<Vec<String>>,
    /// Persistence on request.
    pub dynamic: Option<ModeOnly>,
}

/// `persistence.subscriberQueue`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberQueuePolicy {
    /// All, None or Custom.
    pub mode: PersistenceMode,
    /// Settings of Custom.
    pub subscriber_queue_settings: Option<SubscriberQueueSettings>,
}

/// `persistence.subscriberQueue.subscriberQueueSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriberQueueSettings {
    /// Client IDs (`*` wildcard).
    pub subscriber_client_ids: Option<Vec<String>>,
    /// Persistence on request.
    pub dynamic: Option<ModeOnly>,
    /// Removed in API 2025-10-01; accepted.
    pub topics: Option<Vec<String>>,
}

/// `persistence.stateStore`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateStorePolicy {
    /// All, None or Custom.
    pub mode: PersistenceMode,
    /// Settings of Custom.
    pub state_store_settings: Option<StateStoreSettings>,
}

/// `persistence.stateStore.stateStoreSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateStoreSettings {
    /// Keys that persist.
    pub state_store_resources: Option<Vec<StateStoreKeys>>,
    /// Persistence on request.
    pub dynamic: Option<ModeOnly>,
}

/// One entry of `stateStoreResources` in persistence settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateStoreKeys {
    /// Pattern, String or Binary.
    pub key_type: KeyType,
    /// The keys.
    pub keys: Vec<String>,
}

/// `persistence.dynamicSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DynamicSettings {
    /// User property key (default `aio-persistence`).
    pub user_property_key: String,
    /// User property value (default `true`).
    pub user_property_value: String,
}

/// A Kubernetes PersistentVolumeClaim spec, recorded for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeClaimSpec {
    /// Volume name.
    pub volume_name: Option<String>,
    /// Filesystem or Block.
    pub volume_mode: Option<String>,
    /// Storage class.
    pub storage_class_name: Option<String>,
    /// Access modes.
    pub access_modes: Option<Vec<String>>,
    /// Data source.
    pub data_source: Option<LocalObjectReference>,
    /// Data source reference.
    pub data_source_ref: Option<ObjectReference>,
    /// Resources.
    pub resources: Option<VolumeResources>,
    /// Selector.
    pub selector: Option<LabelSelector>,
}

/// `dataSource`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// API group.
    pub api_group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// `dataSourceRef`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// API group.
    pub api_group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: Option<String>,
}

/// `resources`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeResources {
    /// Limits.
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// Requests.
    pub requests: Option<BTreeMap<String, Quantity>>,
    /// Claims.
    pub claims: Option<Vec<ClaimName>>,
}

/// A resource claim.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimName {
    /// Name.
    pub name: String,
}

/// A label selector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Exact labels.
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Expressions.
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One selector expression.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: String,
    /// Values.
    pub values: Option<Vec<String>>,
}

/// A Kubernetes quantity (`10Gi`, `1`), written as a string or a number; kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity(pub String);

/// A quantity is an integer or a string, as Kubernetes' own `Quantity` schema says.
impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"x-kubernetes-int-or-string": true})
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 10Gi")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
