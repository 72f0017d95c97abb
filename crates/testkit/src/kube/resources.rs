//! The resource types the fake API server knows, and the discovery documents (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>/<version>`) built from them.

use serde_json::{Value, json};

/// One resource type: where it is served and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for core (`/api/v1`).
    pub group: String,
    /// The versions served, preferred first; objects are stored once per group and plural and
    /// read in any served version (the schemas are identical, so no conversion is needed).
    pub versions: Vec<String>,
    /// The kind, e.g. `BrokerListener`.
    pub kind: String,
    /// The plural, e.g. `brokerlisteners`, as it appears in URLs.
    pub plural: String,
    /// True for namespaced resources.
    pub namespaced: bool,
    /// Whether a `status` subresource exists (the main resource's writes then keep `status`).
    pub status: bool,
    /// kubectl's short names.
    pub short_names: Vec<String>,
    /// The verbs allowed; `TokenReview` only allows `create`.
    pub verbs: &'static [&'static str],
}

/// The verbs of an ordinary stored resource.
pub const STORED_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    fn new(group: &str, versions: &[&str], kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            versions: versions.iter().map(|v| (*v).into()).collect(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status: false,
            short_names: Vec::new(),
            verbs: STORED_VERBS,
        }
    }

    fn with_status(mut self) -> Self {
        self.status = true;
        self
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| (*n).into()).collect();
        self
    }

    /// `group/version`, or just `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The group objects of this type are stored under: `events.k8s.io` Events are core ones.
    pub fn storage_group(&self) -> &str {
        if self.is_events_view() {
            ""
        } else {
            &self.group
        }
    }

    /// True for `events.k8s.io` Events, a view of the core Events.
    pub fn is_events_view(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    /// `object` as read in `version`: with that apiVersion and this kind.
    pub fn show(&self, version: &str, object: Value) -> Value {
        let mut object = if self.is_events_view() {
            super::events::to_new(object)
        } else {
            object
        };
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(self.api_version(version)));
            map.insert("kind".into(), json!(self.kind));
        }
        object
    }

    /// `plural.group` (or `plural` for core), as Status messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The entries of this type in an `APIResourceList`.
    fn discovery_entries(&self) -> Vec<Value> {
        let singular = self.kind.to_lowercase();
        let mut entries = vec![json!({
            "name": self.plural,
            "singularName": singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
            "shortNames": self.short_names,
        })];
        if self.status {
            entries.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// The resource types known at start: core v1, apps, RBAC, the AIO groups (current and old
/// API), `wardgate.io`, cert-manager, CRDs and TokenReview.
pub fn builtin() -> Vec<ResourceType> {
    let aio = ["mqttbroker.iotoperations.azure.com", "wardgate.io"];
    let mut types = vec![
        ResourceType::new("", &["v1"], "Namespace", "namespaces", false)
            .with_status()
            .short(&["ns"]),
        ResourceType::new("", &["v1"], "Secret", "secrets", true),
        ResourceType::new("", &["v1"], "ConfigMap", "configmaps", true).short(&["cm"]),
        ResourceType::new("", &["v1"], "Service", "services", true)
            .with_status()
            .short(&["svc"]),
        ResourceType::new("", &["v1"], "ServiceAccount", "serviceaccounts", true).short(&["sa"]),
        ResourceType::new("", &["v1"], "Event", "events", true).short(&["ev"]),
        ResourceType::new("events.k8s.io", &["v1"], "Event", "events", true).short(&["ev"]),
        ResourceType::new("", &["v1"], "Pod", "pods", true)
            .with_status()
            .short(&["po"]),
        ResourceType::new("apps", &["v1"], "Deployment", "deployments", true)
            .with_status()
            .short(&["deploy"]),
        ResourceType::new("apps", &["v1"], "StatefulSet", "statefulsets", true)
            .with_status()
            .short(&["sts"]),
        ResourceType::new("rbac.authorization.k8s.io", &["v1"], "Role", "roles", true),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            &["v1"],
            "RoleBinding",
            "rolebindings",
            true,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            &["v1"],
            "ClusterRole",
            "clusterroles",
            false,
        ),
        ResourceType::new(
            "rbac.authorization.k8s.io",
            &["v1"],
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        ResourceType::new(
            "apiextensions.k8s.io",
            &["v1"],
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .with_status()
        .short(&["crd", "crds"]),
        ResourceType::new("cert-manager.io", &["v1"], "Issuer", "issuers", true).with_status(),
        ResourceType::new(
            "cert-manager.io",
            &["v1"],
            "ClusterIssuer",
            "clusterissuers",
            false,
        )
        .with_status(),
        ResourceType::new(
            "cert-manager.io",
            &["v1"],
            "Certificate",
            "certificates",
            true,
        )
        .with_status()
        .short(&["cert", "certs"]),
        ResourceType {
            verbs: &["create"],
            ..ResourceType::new(
                "authentication.k8s.io",
                &["v1"],
                "TokenReview",
                "tokenreviews",
                false,
            )
        },
    ];
    for (group, versions) in [
        (aio[0], &["v1", "v1beta1"][..]),
        (aio[1], &["v1"][..]),
        ("mq.iotoperations.azure.com", &["v1beta1"][..]),
    ] {
        for (kind, plural) in [
            ("Broker", "brokers"),
            ("BrokerListener", "brokerlisteners"),
            ("BrokerAuthentication", "brokerauthentications"),
            ("BrokerAuthorization", "brokerauthorizations"),
        ] {
            types.push(ResourceType::new(group, versions, kind, plural, true).with_status());
        }
    }
    types
}

/// `GET /api`.
pub fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

/// One `APIGroup` document for `group`.
pub fn group(types: &[ResourceType], group: &str) -> Option<Value> {
    let mut versions: Vec<&str> = Vec::new();
    for t in types.iter().filter(|t| t.group == group) {
        for v in &t.versions {
            if !versions.contains(&v.as_str()) {
                versions.push(v);
            }
        }
    }
    let preferred = versions.first()?;
    let entry = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    Some(json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions.iter().map(|v| entry(v)).collect::<Vec<_>>(),
        "preferredVersion": entry(preferred),
    }))
}

/// `GET /apis`: every non-core group.
pub fn group_list(types: &[ResourceType]) -> Value {
    let mut names: Vec<&str> = Vec::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        if !names.contains(&t.group.as_str()) {
            names.push(&t.group);
        }
    }
    let groups: Vec<Value> = names.iter().filter_map(|g| group(types, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/<group>/<version>`; `None` when nothing is served there.
pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
        .collect();
    if served.is_empty() {
        return None;
    }
    let resources: Vec<Value> = served.iter().flat_map(|t| t.discovery_entries()).collect();
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": served[0].api_version(version),
        "resources": resources,
    }))
}

/// The type a CustomResourceDefinition declares, so that creating a CRD serves its resources
/// as a real API server does; `None` when the CRD lacks the fields that say where.
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let versions: Vec<String> = spec
        .get("versions")?
        .as_array()?
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .filter_map(|v| v.get("name")?.as_str().map(str::to_string))
        .collect();
    let has_status = spec
        .get("versions")?
        .as_array()?
        .iter()
        .any(|v| v.pointer("/subresources/status").is_some());
    let short_names = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(ResourceType {
        group: spec.get("group")?.as_str()?.into(),
        versions,
        kind: names.get("kind")?.as_str()?.into(),
        plural: names.get("plural")?.as_str()?.into(),
        namespaced: spec.get("scope")?.as_str()? == "Namespaced",
        status: has_status,
        short_names,
        verbs: STORED_VERBS,
    })
}
