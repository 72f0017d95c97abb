//! Kubernetes `Secret` and `ConfigMap` (apiVersion `v1`), as `kubectl` writes them.

use std::collections::BTreeMap;

use serde::Deserialize;

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
