//! The 2023 preview API `mq.iotoperations.azure.com/v1beta1` (`reference/aio-broker.md` §2.8,
//! §3.3, §5.7): one port per listener, `authenticationEnabled`/`authorizationEnabled`, and
//! authentication/authorization linked to listeners by `listenerRef`. Converted to the current
//! model in stage two.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::broker::{Cardinality, DiskBackedMessageBuffer};
use super::certmanager::CertManagerKeyAlgorithm;
use super::listener::{IssuerRef, SanForCert};
use crate::enums::{BrokerMethod, MemoryProfile, PortProtocol, RotationPolicy, ServiceType};

/// `spec` of an old Broker.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerSpec {
    /// auto or distributed (recorded only).
    pub mode: Option<String>,
    /// Pod counts.
    pub cardinality: Option<Cardinality>,
    /// tiny, low, medium or high.
    pub memory_profile: Option<MemoryProfile>,
    /// Frontend/backend TLS (default true).
    pub encrypt_internal_traffic: Option<bool>,
    /// Container image (ignored).
    #[schemars(with = "Option<serde_json::Value>")]
    pub auth_image: Option<IgnoredAny>,
    /// Container image (ignored).
    #[schemars(with = "Option<serde_json::Value>")]
    pub broker_image: Option<IgnoredAny>,
    /// Container image (ignored).
    #[schemars(with = "Option<serde_json::Value>")]
    pub health_manager_image: Option<IgnoredAny>,
    /// Diagnostics.
    pub diagnostics: Option<Diagnostics>,
    /// Disk buffer.
    pub disk_backed_message_buffer_settings: Option<DiskBackedMessageBuffer>,
}

/// `diagnostics` of an old Broker.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Diagnostics {
    /// Recorded only.
    pub diagnostic_service_endpoint: Option<String>,
    /// Default true.
    pub enable_metrics: Option<bool>,
    /// Default true.
    pub enable_tracing: Option<bool>,
    /// Default `info`.
    pub log_level: Option<String>,
    /// Default true.
    pub enable_self_check: Option<bool>,
    /// Default true.
    pub enable_self_tracing: Option<bool>,
    /// text or json.
    pub log_format: Option<crate::enums::LogFormat>,
    /// Default 30.
    pub metric_update_frequency_seconds: Option<i64>,
    /// Default 30.
    pub self_check_frequency_seconds: Option<i64>,
    /// Default 15.
    pub self_check_timeout_seconds: Option<i64>,
    /// Default 30.
    pub self_trace_frequency_seconds: Option<i64>,
    /// Default 1000.
    pub span_channel_capacity: Option<i64>,
    /// Container image (ignored).
    #[schemars(with = "Option<serde_json::Value>")]
    pub probe_image: Option<IgnoredAny>,
}

/// `spec` of an old BrokerListener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerListenerSpec {
    /// The Broker (`broker`).
    pub broker_ref: Option<String>,
    /// The one port.
    pub port: i64,
    /// Extension: the node port of a nodePort listener (Kubernetes assigned one).
    pub node_port: Option<i64>,
    /// Extension: Mqtt (default) or WebSockets.
    pub protocol: Option<PortProtocol>,
    /// clusterIp (default), loadBalancer or nodePort.
    pub service_type: Option<ServiceType>,
    /// Default `aio-mq-dmqtt-frontend`.
    pub service_name: Option<String>,
    /// Default false.
    pub authentication_enabled: Option<bool>,
    /// Default false.
    pub authorization_enabled: Option<bool>,
    /// TLS.
    pub tls: Option<Tls>,
}

/// `tls` of an old listener: exactly one of the three.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// cert-manager.
    pub automatic: Option<AutomaticTls>,
    /// A Secret.
    pub manual: Option<ManualTls>,
    /// Azure Key Vault (not supported standalone).
    #[schemars(with = "Option<serde_json::Value>")]
    pub key_vault: Option<IgnoredAny>,
}

/// `tls.automatic`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomaticTls {
    /// The issuer.
    pub issuer_ref: IssuerRef,
    /// Secret to write the certificate to (default `{issuer}-{port}`).
    pub secret: Option<String>,
    /// Ignored.
    pub secret_namespace: Option<String>,
    /// Ignored.
    pub namespace: Option<String>,
    /// Key settings.
    pub private_key: Option<PrivateKey>,
    /// Go duration.
    pub duration: Option<String>,
    /// Go duration.
    pub renew_before: Option<String>,
    /// Extra SANs.
    pub san: Option<SanForCert>,
}

/// `tls.automatic.privateKey`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateKey {
    /// ECDSA (default), RSA or Ed25519.
    pub algorithm: Option<CertManagerKeyAlgorithm>,
    /// Key size.
    pub size: Option<i64>,
    /// Always (default) or Never.
    pub rotation_policy: Option<RotationPolicy>,
}

/// `tls.manual`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManualTls {
    /// A `kubernetes.io/tls` Secret.
    pub secret_name: String,
    /// Ignored.
    pub secret_namespace: Option<String>,
}

/// `spec` of an old BrokerAuthentication.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerAuthenticationSpec {
    /// Listeners this authentication applies to.
    pub listener_ref: Vec<String>,
    /// Methods, each with exactly one key.
    pub authentication_methods: Vec<AuthnMethod>,
}

/// One old authentication method.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthnMethod {
    /// Service-account tokens.
    pub sat: Option<Sat>,
    /// Client certificates.
    pub x509: Option<X509>,
    /// External server.
    pub custom: Option<Custom>,
    /// Password hashes.
    pub username_password: Option<UsernamePassword>,
}

/// `sat`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sat {
    /// Audiences.
    pub audiences: Vec<String>,
}

/// `x509`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509 {
    /// ConfigMap of trusted client CAs (key `client_ca.pem`).
    pub trusted_client_ca_cert: Option<String>,
    /// Attributes in a Secret (`x509Attributes.toml`).
    pub attributes: Option<SecretName>,
}

/// An object naming a Secret.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretName {
    /// The Secret.
    pub secret_name: String,
    /// Ignored.
    pub namespace: Option<String>,
}

/// `custom`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Custom {
    /// `https://` URL.
    pub endpoint: String,
    /// ConfigMap with the server's CA.
    pub ca_cert: Option<String>,
    /// Client certificate.
    pub auth: Option<CustomAuth>,
    /// Extra headers.
    pub headers: Option<BTreeMap<String, String>>,
}

/// `custom.auth`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuth {
    /// The client certificate Secret.
    pub x509: SecretName,
}

/// `usernamePassword`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsernamePassword {
    /// Secret with `passwords.toml`.
    pub secret_name: String,
}

/// `spec` of an old BrokerAuthorization.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerAuthorizationSpec {
    /// Listeners this authorization applies to.
    pub listener_ref: Vec<String>,
    /// The policy.
    pub authorization_policies: AuthorizationPolicies,
}

/// `authorizationPolicies`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicies {
    /// Default false.
    pub enable_cache: Option<bool>,
    /// Rules.
    pub rules: Option<Vec<Rule>>,
}

/// An old rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Who.
    pub principals: Principals,
    /// What.
    pub broker_resources: Vec<BrokerResource>,
}

/// Old principals; `clientids` was the 2023 spelling.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principals {
    /// Client IDs.
    #[serde(alias = "clientids")]
    pub client_ids: Option<Vec<String>>,
    /// Usernames.
    pub usernames: Option<Vec<String>>,
    /// Attribute maps.
    pub attributes: Option<Vec<BTreeMap<String, String>>>,
}

/// An old broker resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerResource {
    /// Connect, Publish or Subscribe.
    pub method: BrokerMethod,
    /// Topics.
    pub topics: Option<Vec<String>>,
}
