//! Stage two's result: the validated configuration, with typed values and every default filled
//! in. This is what the server, the security layer and the reload machinery consume.

pub mod cluster;

pub use crate::enums;

mod service_account;

pub use service_account::{
    ATTRIBUTE_ANNOTATION_PREFIX, OLD_ATTRIBUTE_ANNOTATION_PREFIX, ServiceAccount,
    attribute_of_annotation,
};

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub use crate::enums::*;
pub use cluster::{Cluster, NatsUrl, NatsUrls, NodeId, Replicas, SubjectPrefix};
use wardgate_protocol::TopicFilter;

use crate::raw::broker::VolumeClaimSpec;
use crate::topic::{TopicSegment, classify_segment};

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The one Broker.
    pub broker: Broker,
    /// Listeners, sorted by name.
    pub listeners: Vec<Listener>,
    /// BrokerAuthentications by name.
    pub authentications: BTreeMap<String, Authentication>,
    /// BrokerAuthorizations by name.
    pub authorizations: BTreeMap<String, Authorization>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Issuers and ClusterIssuers, including the built-in quickstart issuer.
    pub issuers: BTreeMap<(IssuerKind, String), Issuer>,
    /// cert-manager Certificates by name (each produces the Secret `secret_name`).
    pub certificates: BTreeMap<String, Certificate>,
    /// ServiceAccounts by name: the attributes of service-account tokens outside Kubernetes.
    pub service_accounts: BTreeMap<String, ServiceAccount>,
}

/// The Broker resource, typed, with defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    /// `default` (or `broker` for the old API).
    pub name: String,
    /// Memory profile (default Medium).
    pub memory_profile: MemoryProfile,
    /// Client limits.
    pub clients: ClientLimits,
    /// On-disk persistence; `None` = memory only.
    pub persistence: Option<Persistence>,
    /// Logs, metrics, self-check, traces.
    pub diagnostics: Diagnostics,
    /// Pod counts (Kubernetes; recorded only).
    pub cardinality: Option<Cardinality>,
    /// Frontend/backend TLS (Kubernetes; recorded only; default Enabled).
    pub encrypt_internal_traffic: OperationalMode,
    /// Internal certificate settings (Kubernetes; recorded only).
    pub internal_certs: Option<InternalCerts>,
    /// Disk-backed message buffer (Kubernetes; recorded only).
    pub disk_backed_message_buffer: Option<DiskBackedMessageBuffer>,
    /// CPU requests (Kubernetes; recorded only; default Enabled as in the API).
    pub generate_resource_limits_cpu: OperationalMode,
    /// The cluster the node joins (extension `spec.cluster`); `None` = a single node.
    pub cluster: Option<Cluster>,
}

impl Broker {
    /// The maximum packet size the broker accepts: `maxPacketSizeBytes` capped by the memory
    /// profile.
    pub fn max_packet_size(&self) -> u32 {
        let cap = self.memory_profile.max_packet_size();
        self.clients
            .max_packet_size_bytes
            .map_or(cap, |v| v.min(cap))
    }
}

/// `advanced.clients`, typed. AIO documents no defaults; Wardgate's are "no cap" except where
/// noted (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLimits {
    /// Upper bound on Session Expiry Interval (default 4294967295 = no cap).
    pub max_session_expiry_seconds: u32,
    /// Cap on Message Expiry Interval; `None` = no cap.
    pub max_message_expiry_seconds: Option<u32>,
    /// Configured maximum packet size; see [`Broker::max_packet_size`] for the effective one.
    pub max_packet_size_bytes: Option<u32>,
    /// Upper bound on the client's Receive Maximum (default 65535).
    pub max_receive_maximum: u16,
    /// Upper bound on the client's Keep Alive (default 65535).
    pub max_keep_alive_seconds: u16,
    /// Outgoing queue bound per subscriber.
    pub subscriber_queue_limit: SubscriberQueueLimit,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_session_expiry_seconds: u32::MAX,
            max_message_expiry_seconds: None,
            max_packet_size_bytes: None,
            max_receive_maximum: u16::MAX,
            max_keep_alive_seconds: u16::MAX,
            subscriber_queue_limit: SubscriberQueueLimit::default(),
        }
    }
}

/// `subscriberQueueLimit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberQueueLimit {
    /// Maximum queued messages; `None` = the broker's own bound.
    pub length: Option<u64>,
    /// What happens when the queue is full.
    pub strategy: QueueStrategy,
}

/// `diagnostics`, with defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// Level or filter (default `info`).
    pub log_level: String,
    /// Text (default) or Json.
    pub log_format: LogFormat,
    /// Metrics port (default 9600).
    pub prometheus_port: u16,
    /// Self-check probe.
    pub self_check: SelfCheck,
    /// Traces.
    pub traces: Traces,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics {
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            prometheus_port: 9600,
            self_check: SelfCheck::default(),
            traces: Traces::default(),
        }
    }
}

/// `diagnostics.selfCheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheck {
    /// Default Enabled.
    pub mode: OperationalMode,
    /// Default 30 s.
    pub interval: Duration,
    /// Default 15 s.
    pub timeout: Duration,
}

impl Default for SelfCheck {
    fn default() -> Self {
        SelfCheck {
            mode: OperationalMode::Enabled,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(15),
        }
    }
}

/// `diagnostics.traces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traces {
    /// Default Enabled.
    pub mode: OperationalMode,
    /// Default 16.
    pub cache_size_megabytes: u32,
    /// Default 1000.
    pub span_channel_capacity: u32,
    /// Default Enabled.
    pub self_tracing_mode: OperationalMode,
    /// Default 30 s.
    pub self_tracing_interval: Duration,
}

impl Default for Traces {
    fn default() -> Self {
        Traces {
            mode: OperationalMode::Enabled,
            cache_size_megabytes: 16,
            span_channel_capacity: 1000,
            self_tracing_mode: OperationalMode::Enabled,
            self_tracing_interval: Duration::from_secs(30),
        }
    }
}

/// `persistence`.
#[derive(Debug, Clone, PartialEq)]
pub struct Persistence {
    /// Size limit in bytes.
    pub max_size_bytes: u64,
    /// Encryption at rest (default Enabled).
    pub encryption: OperationalMode,
    /// Retained messages, selected by topic filter.
    pub retain: PersistencePolicy<TopicFilter>,
    /// Subscriber queues, selected by client ID pattern (`*` matches any run of characters).
    pub subscriber_queue: PersistencePolicy<String>,
    /// State store keys.
    pub state_store: StateStorePersistence,
    /// The user property that requests persistence (default `aio-persistence` = `true`).
    pub dynamic_user_property: (String, String),
    /// Volume (Kubernetes; recorded only).
    pub persistent_volume_claim_spec: Option<VolumeClaimSpec>,
}

/// A retain or subscriber-queue persistence policy; `S` is what selects the persisted items,
/// parsed when the configuration is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistencePolicy<S> {
    /// All, None (default) or Custom.
    pub mode: PersistenceMode,
    /// Custom: retain topic filters, or subscriber client ID patterns.
    pub selectors: Vec<S>,
    /// Custom: persistence on request via the user property (default Enabled).
    pub dynamic: OperationalMode,
}

/// The state-store persistence policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStorePersistence {
    /// All, None (default) or Custom.
    pub mode: PersistenceMode,
    /// Custom: the keys that persist.
    pub keys: Vec<(KeyType, String)>,
    /// Custom: persistence on request (default Enabled).
    pub dynamic: OperationalMode,
}

/// `cardinality`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cardinality {
    /// 1–16.
    pub frontend_replicas: u8,
    /// 1–16 (default 2).
    pub frontend_workers: u8,
    /// 1–16.
    pub backend_partitions: u8,
    /// 1–5.
    pub backend_redundancy_factor: u8,
    /// 1–16 (default 1).
    pub backend_workers: u8,
}

/// `advanced.internalCerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalCerts {
    /// Lifetime.
    pub duration: Duration,
    /// Renewal lead time.
    pub renew_before: Duration,
    /// Key settings.
    pub private_key: PrivateKey,
}

/// `diskBackedMessageBuffer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskBackedMessageBuffer {
    /// Size in bytes.
    pub max_size_bytes: u64,
    /// Ephemeral volume.
    pub ephemeral_volume_claim_spec: Option<VolumeClaimSpec>,
    /// Persistent volume.
    pub persistent_volume_claim_spec: Option<VolumeClaimSpec>,
}

/// A BrokerListener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The resource name.
    pub name: String,
    /// The Service name (default: the listener name).
    pub service_name: String,
    /// Where the ports are reachable (SPEC.md §4.2).
    pub service_type: ServiceType,
    /// The ports.
    pub ports: Vec<ListenerPort>,
}

/// One port of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPort {
    /// The TCP port (0 = chosen by the OS).
    pub port: u16,
    /// The node port; set (30000–32767) on every NodePort listener.
    pub node_port: Option<u16>,
    /// Mqtt or WebSockets.
    pub protocol: PortProtocol,
    /// TLS; `None` = plain TCP.
    pub tls: Option<Tls>,
    /// BrokerAuthentication name; `None` = everyone is accepted as anonymous.
    pub authentication_ref: Option<String>,
    /// BrokerAuthorization name; only effective with an `authentication_ref`.
    pub authorization_ref: Option<String>,
}

impl ListenerPort {
    /// A plain MQTT port with no TLS and no authentication.
    pub fn plain(port: u16) -> Self {
        ListenerPort {
            port,
            node_port: None,
            protocol: PortProtocol::Mqtt,
            tls: None,
            authentication_ref: None,
            authorization_ref: None,
        }
    }

    /// The port number bound outside Kubernetes: `nodePort` for NodePort listeners, else
    /// `port`.
    pub fn bound_port(&self, service_type: ServiceType) -> u16 {
        match (service_type, self.node_port) {
            (ServiceType::NodePort, Some(n)) => n,
            _ => self.port,
        }
    }

    /// The authorization that takes effect: none without authentication (AIO behaviour).
    pub fn effective_authorization_ref(&self) -> Option<&str> {
        self.authentication_ref
            .as_ref()
            .and(self.authorization_ref.as_deref())
    }
}

/// A port's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Issued from a cert-manager issuer.
    Automatic(AutomaticTls),
    /// From a Secret.
    Manual(ManualTls),
}

impl Tls {
    /// Automatic or Manual.
    pub fn mode(&self) -> TlsMode {
        match self {
            Tls::Automatic(_) => TlsMode::Automatic,
            Tls::Manual(_) => TlsMode::Manual,
        }
    }
}

/// `tls.certManagerCertificateSpec`, with defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomaticTls {
    /// The issuer.
    pub issuer_ref: IssuerRef,
    /// Lifetime (default 720h).
    pub duration: Duration,
    /// Renewal lead time (default 240h).
    pub renew_before: Duration,
    /// Secret name (default `{serviceName}-frontend-server-{port}`).
    pub secret_name: String,
    /// Key settings (default Ec256, Always).
    pub private_key: PrivateKey,
    /// Extra DNS SANs.
    pub san_dns: Vec<String>,
    /// Extra IP SANs.
    pub san_ip: Vec<IpAddr>,
}

/// A reference to a cert-manager issuer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// Issuer or ClusterIssuer.
    pub kind: IssuerKind,
    /// API group (default `cert-manager.io`).
    pub group: String,
}

/// Private key settings of an issued certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrivateKey {
    /// Algorithm.
    pub algorithm: KeyAlgorithm,
    /// Rotation.
    pub rotation_policy: RotationPolicy,
}

/// `tls.manual`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualTls {
    /// A `kubernetes.io/tls` Secret.
    pub secret_ref: String,
}

/// A BrokerAuthentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// The resource name.
    pub name: String,
    /// Methods, tried in order.
    pub methods: Vec<AuthnMethod>,
}

impl Authentication {
    /// Whether any method is X509.
    pub fn has_x509(&self) -> bool {
        self.methods
            .iter()
            .any(|m| matches!(m, AuthnMethod::X509(_)))
    }
}

/// One authentication method with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthnMethod {
    /// Kubernetes service-account tokens.
    ServiceAccountToken(SatSettings),
    /// Client certificates.
    X509(X509Settings),
    /// External HTTPS server.
    Custom(CustomSettings),
    /// Password hashes in a Secret.
    UsernamePassword(UsernamePasswordSettings),
}

impl AuthnMethod {
    /// The method's kind.
    pub fn kind(&self) -> AuthnMethodKind {
        match self {
            AuthnMethod::ServiceAccountToken(_) => AuthnMethodKind::ServiceAccountToken,
            AuthnMethod::X509(_) => AuthnMethodKind::X509,
            AuthnMethod::Custom(_) => AuthnMethodKind::Custom,
            AuthnMethod::UsernamePassword(_) => AuthnMethodKind::UsernamePassword,
        }
    }
}

/// ServiceAccountToken settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatSettings {
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Extension: ConfigMap with the JWKS used outside Kubernetes.
    pub issuer_keys_config_map: Option<String>,
}

/// X509 settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Settings {
    /// ConfigMap of trusted client CAs (default `client-ca`).
    pub trusted_client_ca_cert: String,
    /// Subject → attributes, keyed by label.
    pub authorization_attributes: BTreeMap<String, X509Attributes>,
    /// Extra validation.
    pub additional_validation: AdditionalValidation,
    /// Old API: Secret with `x509Attributes.toml` holding the attribute mapping.
    pub attributes_secret: Option<String>,
}

/// One `authorizationAttributes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Attributes {
    /// The subject as written, e.g. `CN = thermostat`.
    pub subject: String,
    /// Attributes given to that subject.
    pub attributes: BTreeMap<String, String>,
}

/// Custom settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomSettings {
    /// `https://` URL.
    pub endpoint: String,
    /// ConfigMap with the server's CA.
    pub ca_cert_config_map: Option<String>,
    /// Secret with the client certificate the broker presents.
    pub client_cert_secret: Option<String>,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
}

/// UsernamePassword settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernamePasswordSettings {
    /// Secret whose key `passwords.toml` holds the hashes.
    pub secret_ref: String,
}

/// A BrokerAuthorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The resource name.
    pub name: String,
    /// Decision cache (default Enabled).
    pub cache: OperationalMode,
    /// Rules; empty = deny everything.
    pub rules: Vec<Rule>,
}

/// One authorization rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Who it applies to.
    pub principals: Principals,
    /// MQTT grants.
    pub broker_resources: Vec<BrokerResource>,
    /// State store grants.
    pub state_store_resources: Vec<StateStoreResource>,
}

/// `principals`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    /// Client IDs.
    pub client_ids: Vec<String>,
    /// Usernames.
    pub usernames: Vec<String>,
    /// Attribute maps (ORed; keys ANDed).
    pub attributes: Vec<BTreeMap<String, String>>,
}

/// One MQTT grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerResource {
    /// Connect, Publish or Subscribe.
    pub method: BrokerMethod,
    /// Connect: client IDs allowed (trailing `*` = prefix); empty = any.
    pub client_ids: Vec<String>,
    /// Publish/Subscribe: topic filters with tokens.
    pub topics: Vec<TopicTemplate>,
}

/// One state-store grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStoreResource {
    /// Read, Write or ReadWrite.
    pub method: StateStoreMethod,
    /// How keys match.
    pub key_type: KeyType,
    /// Keys (Binary: decoded bytes).
    pub keys: Vec<Vec<u8>>,
}

/// An authorization topic filter whose `{principal.…}` tokens are whole segments; validated at
/// load.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicTemplate(String);

impl TopicTemplate {
    pub(crate) fn new_unchecked(s: String) -> Self {
        TopicTemplate(s)
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments, each either literal text (with `+`/`#`) or a token.
    pub fn segments(&self) -> impl Iterator<Item = TopicSegment<'_>> {
        self.0.split('/').map(classify_segment)
    }
}

/// A Kubernetes Secret with decoded values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The resource name.
    pub name: String,
    /// The Secret type (`Opaque` when absent).
    pub type_: String,
    /// Decoded values (`stringData` merged over `data`).
    pub data: BTreeMap<String, Vec<u8>>,
}

impl Secret {
    /// The `kubernetes.io/tls` type.
    pub const TLS_TYPE: &'static str = "kubernetes.io/tls";

    /// A value by key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }
}

/// A Kubernetes ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMap {
    /// The resource name.
    pub name: String,
    /// Text values.
    pub data: BTreeMap<String, String>,
    /// Decoded binary values.
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

impl ConfigMap {
    /// A value by key, from `data` or `binaryData`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data
            .get(key)
            .map(String::as_bytes)
            .or_else(|| self.binary_data.get(key).map(Vec::as_slice))
    }

    /// Every value, text and binary.
    pub fn values(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.data
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .chain(
                self.binary_data
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice())),
            )
    }
}

/// A cert-manager Issuer or ClusterIssuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// Issuer or ClusterIssuer.
    pub kind: IssuerKind,
    /// The resource name.
    pub name: String,
    /// How it issues.
    pub source: IssuerSource,
}

/// What an issuer signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerSource {
    /// Wardgate's quickstart CA in the data dir (built in, SPEC.md §6.2).
    Quickstart,
    /// Each certificate signs itself.
    SelfSigned,
    /// The CA certificate and key in a `kubernetes.io/tls` Secret.
    Ca {
        /// The Secret.
        secret_name: String,
    },
}

/// A cert-manager Certificate: a certificate issued into the Secret `secret_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The resource name.
    pub name: String,
    /// The Secret written.
    pub secret_name: String,
    /// The issuer.
    pub issuer_ref: IssuerRef,
    /// Whether it is a CA.
    pub is_ca: bool,
    /// Subject CN.
    pub common_name: Option<String>,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// Lifetime (default 2160h, cert-manager's).
    pub duration: Duration,
    /// Renewal lead time (default a third of the duration).
    pub renew_before: Duration,
    /// Key algorithm (cert-manager default RSA 2048; ECDSA 256/384/521 map to Ec*).
    pub private_key: PrivateKey,
    /// Key usages as written (e.g. `server auth`).
    pub usages: Vec<String>,
}

/// A resource a port needs before it can listen (SPEC.md §4.4). A missing one makes the port
/// wait; it is not a configuration error.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// A Secret (server certificate, CA of an issuer, password file, client certificate).
    Secret(String),
    /// A ConfigMap (trusted client CAs, JWKS, custom server CA).
    ConfigMap(String),
    /// A cert-manager Issuer or ClusterIssuer.
    Issuer(IssuerKind, String),
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dependency::Secret(n) => write!(f, "Secret/{n}"),
            Dependency::ConfigMap(n) => write!(f, "ConfigMap/{n}"),
            Dependency::Issuer(k, n) => write!(f, "{k}/{n}"),
        }
    }
}

impl Model {
    /// The ServiceAccount `name` of `namespace`, if the configuration has it.
    pub fn service_account(&self, namespace: &str, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts
            .get(name)
            .filter(|sa| sa.is(namespace, name))
    }

    /// The listener with this name.
    pub fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// Whether a dependency is present in the configuration.
    pub fn has(&self, dep: &Dependency) -> bool {
        match dep {
            Dependency::Secret(n) => self.secrets.contains_key(n),
            Dependency::ConfigMap(n) => self.config_maps.contains_key(n),
            Dependency::Issuer(k, n) => self.issuers.contains_key(&(*k, n.clone())),
        }
    }

    /// What a port's TLS needs: the manual Secret, or the issuer (and a CA issuer's Secret).
    /// A CA issuer's Secret that a cert-manager `Certificate` of the configuration writes (the
    /// bootstrapping of `seeds/000_…`) is not needed as such: the broker issues it, so the
    /// Certificate's own issuer (and so on, a few levels) is needed instead.
    pub fn tls_dependencies(&self, port: &ListenerPort) -> Vec<Dependency> {
        let mut deps = Vec::new();
        match &port.tls {
            None => {}
            Some(Tls::Manual(m)) => deps.push(Dependency::Secret(m.secret_ref.clone())),
            Some(Tls::Automatic(a)) => {
                let mut r = &a.issuer_ref;
                // Bounded like the issuing itself (tls::automatic): a loop is refused there.
                for _ in 0..6 {
                    deps.push(Dependency::Issuer(r.kind, r.name.clone()));
                    let Some(Issuer {
                        source: IssuerSource::Ca { secret_name },
                        ..
                    }) = self.issuers.get(&(r.kind, r.name.clone()))
                    else {
                        break;
                    };
                    if self.secrets.contains_key(secret_name) {
                        deps.push(Dependency::Secret(secret_name.clone()));
                        break;
                    }
                    match self
                        .certificates
                        .values()
                        .find(|c| &c.secret_name == secret_name)
                    {
                        Some(c) => r = &c.issuer_ref,
                        None => {
                            deps.push(Dependency::Secret(secret_name.clone()));
                            break;
                        }
                    }
                }
            }
        }
        deps.dedup();
        deps
    }

    /// What a port's authentication methods need.
    pub fn authentication_dependencies(&self, port: &ListenerPort) -> Vec<Dependency> {
        let mut deps = Vec::new();
        let Some(auth) = port
            .authentication_ref
            .as_ref()
            .and_then(|a| self.authentications.get(a))
        else {
            return deps;
        };
        for m in &auth.methods {
            match m {
                AuthnMethod::ServiceAccountToken(s) => {
                    if let Some(c) = &s.issuer_keys_config_map {
                        deps.push(Dependency::ConfigMap(c.clone()));
                    }
                }
                AuthnMethod::X509(x) => {
                    deps.push(Dependency::ConfigMap(x.trusted_client_ca_cert.clone()));
                    if let Some(s) = &x.attributes_secret {
                        deps.push(Dependency::Secret(s.clone()));
                    }
                }
                AuthnMethod::Custom(c) => {
                    if let Some(cm) = &c.ca_cert_config_map {
                        deps.push(Dependency::ConfigMap(cm.clone()));
                    }
                    if let Some(s) = &c.client_cert_secret {
                        deps.push(Dependency::Secret(s.clone()));
                    }
                }
                AuthnMethod::UsernamePassword(u) => {
                    deps.push(Dependency::Secret(u.secret_ref.clone()));
                }
            }
        }
        deps
    }

    /// Everything a port needs, TLS first.
    pub fn port_dependencies(&self, port: &ListenerPort) -> Vec<Dependency> {
        let mut deps = self.tls_dependencies(port);
        deps.extend(self.authentication_dependencies(port));
        deps
    }

    /// The dependencies of a port that are not in the configuration (the port waits for them).
    pub fn missing_dependencies(&self, port: &ListenerPort) -> Vec<Dependency> {
        self.port_dependencies(port)
            .into_iter()
            .filter(|d| !self.has(d))
            .collect()
    }
}
