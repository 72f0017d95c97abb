//! Kubernetes `Secret`, `ConfigMap` and `ServiceAccount` (apiVersion `v1`), as `kubectl` writes
//! them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::Metadata;

/// A Kubernetes Secret: `data` is base64, `stringData` is plain text and wins on the same key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// `v1`.
    pub api_version: String,
    /// `Secret`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The Secret type, e.g. `kubernetes.io/tls` or `Opaque` (the default).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Base64-encoded values.
    pub data: Option<BTreeMap<String, String>>,
    /// Plain-text values.
    pub string_data: Option<BTreeMap<String, String>>,
    /// Accepted and ignored.
    pub immutable: Option<bool>,
}

/// A Kubernetes ConfigMap: `data` is text, `binaryData` is base64.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// `v1`.
    pub api_version: String,
    /// `ConfigMap`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// Text values.
    pub data: Option<BTreeMap<String, String>>,
    /// Base64-encoded values.
    pub binary_data: Option<BTreeMap<String, String>>,
    /// Accepted and ignored.
    pub immutable: Option<bool>,
}

/// A Kubernetes ServiceAccount: outside Kubernetes, where the `aio-broker-auth/*` annotations of
/// the service accounts whose tokens the ServiceAccountToken method verifies are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccount {
    /// `v1`.
    pub api_version: String,
    /// `ServiceAccount`.
    pub kind: String,
    /// Name, namespace and annotations.
    pub metadata: AnnotatedMetadata,
    /// Accepted and ignored.
    pub secrets: Option<IgnoredAny>,
    /// Accepted and ignored.
    pub image_pull_secrets: Option<IgnoredAny>,
    /// Accepted and ignored.
    pub automount_service_account_token: Option<bool>,
}

/// `metadata` with its annotations; every other field (labels, uid, ...) is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotatedMetadata {
    /// The resource name.
    pub name: String,
    /// The namespace; when written, a token's namespace must be this one.
    pub namespace: Option<String>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}
