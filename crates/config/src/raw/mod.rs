//! Stage one: serde types close to the YAML of every accepted kind and apiVersion, and the
//! envelope (`apiVersion`, `kind`, `metadata`, `status`) they share.
//!
//! Numbers are `i64` here and checked against their ranges in stage two, so that an out-of-range
//! value gets the same worded error as every other rule. Unknown fields are errors
//! (`deny_unknown_fields`) everywhere except under `metadata` and `status`.

pub mod authn;
pub mod authz;
pub mod broker;
pub mod certmanager;
pub mod cluster;
pub mod k8s;
pub mod listener;
pub mod old;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// The part of `metadata` Wardgate reads; every other field (labels, uid, ...) is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// The resource name.
    pub name: String,
    /// Accepted and ignored in standalone mode (SPEC.md §3).
    pub namespace: Option<String>,
}

/// A custom resource: envelope plus `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    /// The apiVersion as written.
    pub api_version: String,
    /// The kind as written.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The resource's settings.
    pub spec: S,
    /// Ignored.
    pub status: Option<IgnoredAny>,
}

/// The API generation a resource was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiGeneration {
    /// `mqttbroker.iotoperations.azure.com/v1|v1beta1` or `wardgate.io/v1`.
    Current,
    /// `mq.iotoperations.azure.com/v1beta1`, converted at load.
    Old,
}

/// One resource read from a document, in its raw form.
#[derive(Debug, Clone)]
pub enum RawResource {
    /// A Broker (current API).
    Broker(Box<Object<broker::BrokerSpec>>),
    /// A BrokerListener (current API).
    BrokerListener(Box<Object<listener::BrokerListenerSpec>>),
    /// A BrokerAuthentication (current API).
    BrokerAuthentication(Box<Object<authn::BrokerAuthenticationSpec>>),
    /// A BrokerAuthorization (current API).
    BrokerAuthorization(Box<Object<authz::BrokerAuthorizationSpec>>),
    /// A Broker of `mq.iotoperations.azure.com/v1beta1`.
    OldBroker(Box<Object<old::BrokerSpec>>),
    /// A BrokerListener of `mq.iotoperations.azure.com/v1beta1`.
    OldBrokerListener(Box<Object<old::BrokerListenerSpec>>),
    /// A BrokerAuthentication of `mq.iotoperations.azure.com/v1beta1`.
    OldBrokerAuthentication(Box<Object<old::BrokerAuthenticationSpec>>),
    /// A BrokerAuthorization of `mq.iotoperations.azure.com/v1beta1`.
    OldBrokerAuthorization(Box<Object<old::BrokerAuthorizationSpec>>),
    /// A Kubernetes Secret.
    Secret(k8s::Secret),
    /// A Kubernetes ConfigMap.
    ConfigMap(k8s::ConfigMap),
    /// A Kubernetes ServiceAccount (its `aio-broker-auth/*` annotations).
    ServiceAccount(k8s::ServiceAccount),
    /// A cert-manager Issuer.
    Issuer(Box<Object<certmanager::IssuerSpec>>),
    /// A cert-manager ClusterIssuer.
    ClusterIssuer(Box<Object<certmanager::IssuerSpec>>),
    /// A cert-manager Certificate.
    Certificate(Box<Object<certmanager::CertificateSpec>>),
}

impl RawResource {
    /// The kind, as Wardgate names it in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RawResource::Broker(_) | RawResource::OldBroker(_) => "Broker",
            RawResource::BrokerListener(_) | RawResource::OldBrokerListener(_) => "BrokerListener",
            RawResource::BrokerAuthentication(_) | RawResource::OldBrokerAuthentication(_) => {
                "BrokerAuthentication"
            }
            RawResource::BrokerAuthorization(_) | RawResource::OldBrokerAuthorization(_) => {
                "BrokerAuthorization"
            }
            RawResource::Secret(_) => "Secret",
            RawResource::ConfigMap(_) => "ConfigMap",
            RawResource::ServiceAccount(_) => "ServiceAccount",
            RawResource::Issuer(_) => "Issuer",
            RawResource::ClusterIssuer(_) => "ClusterIssuer",
            RawResource::Certificate(_) => "Certificate",
        }
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        match self {
            RawResource::Broker(o) => &o.metadata.name,
            RawResource::BrokerListener(o) => &o.metadata.name,
            RawResource::BrokerAuthentication(o) => &o.metadata.name,
            RawResource::BrokerAuthorization(o) => &o.metadata.name,
            RawResource::OldBroker(o) => &o.metadata.name,
            RawResource::OldBrokerListener(o) => &o.metadata.name,
            RawResource::OldBrokerAuthentication(o) => &o.metadata.name,
            RawResource::OldBrokerAuthorization(o) => &o.metadata.name,
            RawResource::Secret(o) => &o.metadata.name,
            RawResource::ConfigMap(o) => &o.metadata.name,
            RawResource::ServiceAccount(o) => &o.metadata.name,
            RawResource::Issuer(o) => &o.metadata.name,
            RawResource::ClusterIssuer(o) => &o.metadata.name,
            RawResource::Certificate(o) => &o.metadata.name,
        }
    }

    /// The API generation of an AIO resource (`None` for Kubernetes and cert-manager kinds).
    pub fn generation(&self) -> Option<ApiGeneration> {
        match self {
            RawResource::Broker(_)
            | RawResource::BrokerListener(_)
            | RawResource::BrokerAuthentication(_)
            | RawResource::BrokerAuthorization(_) => Some(ApiGeneration::Current),
            RawResource::OldBroker(_)
            | RawResource::OldBrokerListener(_)
            | RawResource::OldBrokerAuthentication(_)
            | RawResource::OldBrokerAuthorization(_) => Some(ApiGeneration::Old),
            _ => None,
        }
    }
}

/// The apiVersions of the current AIO resources.
pub const CURRENT_API_VERSIONS: &[&str] = &[
    "mqttbroker.iotoperations.azure.com/v1",
    "mqttbroker.iotoperations.azure.com/v1beta1",
    "wardgate.io/v1",
];

/// The apiVersion of the old (2023 preview) AIO resources.
pub const OLD_API_VERSION: &str = "mq.iotoperations.azure.com/v1beta1";

/// The apiVersion of cert-manager resources.
pub const CERT_MANAGER_API_VERSION: &str = "cert-manager.io/v1";

/// Every kind Wardgate reads.
pub const KINDS: &[&str] = &[
    "Broker",
    "BrokerListener",
    "BrokerAuthentication",
    "BrokerAuthorization",
    "Secret",
    "ConfigMap",
    "ServiceAccount",
    "Issuer",
    "ClusterIssuer",
    "Certificate",
];
