//! Kubernetes ServiceAccounts, for the authorization attributes of service-account tokens.

use std::collections::BTreeMap;

/// The annotation prefix whose keys become authorization attributes (AIO).
pub const ATTRIBUTE_ANNOTATION_PREFIX: &str = "aio-broker-auth/";

/// The old API's annotation prefix, also read.
pub const OLD_ATTRIBUTE_ANNOTATION_PREFIX: &str = "aio-mq-broker-auth/";

/// The attribute an annotation key names (`aio-broker-auth/group` → `group`), or `None` when the
/// key has neither prefix. An empty result (`aio-broker-auth/`) names no attribute.
pub fn attribute_of_annotation(key: &str) -> Option<&str> {
    key.strip_prefix(ATTRIBUTE_ANNOTATION_PREFIX)
        .or_else(|| key.strip_prefix(OLD_ATTRIBUTE_ANNOTATION_PREFIX))
}

/// A ServiceAccount: who a token's `sub` (`system:serviceaccount:<namespace>:<name>`) is, and the
/// attributes its `aio-broker-auth/<key>: <value>` annotations give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// The resource name.
    pub name: String,
    /// The namespace as written; `None` matches tokens of every namespace (resources are not
    /// namespaced outside Kubernetes, SPEC.md §3).
    pub namespace: Option<String>,
    /// Authorization attributes, annotation prefix removed.
    pub attributes: BTreeMap<String, String>,
}

impl ServiceAccount {
    /// Whether this is the service account `name` of `namespace`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}
