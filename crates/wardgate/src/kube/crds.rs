//! The CustomResourceDefinitions of the resources Wardgate reads, generated from the same serde
//! types the configuration loader parses (`wardgate_config::raw`), so that they cannot drift
//! from what the binary accepts.
//!
//! The schemas come from `schemars` with the settings and transforms kube-rs's
//! `#[derive(CustomResource)]` uses (OpenAPI 3, subschemas inlined, structural rewrite), then
//! two of Wardgate's own: enum values become a case-insensitive `pattern`, because the loader
//! matches them case-insensitively (`loadBalancer` is `LoadBalancer`, SPEC.md §3); and fields
//! the loader accepts and ignores keep unknown fields (`x-kubernetes-preserve-unknown-fields`).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use schemars::transform::AddNullable;
use serde_json::{Value, json};
use wardgate_config::raw::{authn, authz, broker, listener, old};

/// One group of CRDs: the API group, its versions (the first is the storage version).
struct Group {
    name: &'static str,
    versions: &'static [&'static str],
    old_api: bool,
}

const GROUPS: &[Group] = &[
    Group {
        name: "mqttbroker.iotoperations.azure.com",
        versions: &["v1", "v1beta1"],
        old_api: false,
    },
    Group {
        name: "wardgate.io",
        versions: &["v1"],
        old_api: false,
    },
    Group {
        name: "mq.iotoperations.azure.com",
        versions: &["v1beta1"],
        old_api: true,
    },
];

/// The `spec` schema of `T`, structural as Kubernetes requires.
fn spec_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
        root.remove("$schema");
    }
    kubernetes_rules(&mut schema);
    schema
}

/// Applies Wardgate's two rules to every subschema (a walk over our own types' schema, whose
/// depth the types fix).
fn kubernetes_rules(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(escape)
            .collect();
        if !names.is_empty() {
            map.remove("enum");
            map.insert("type".into(), json!("string"));
            map.insert(
                "pattern".into(),
                json!(format!("^(?i:{})$", names.join("|"))),
            );
        }
    }
    let shaped = [
        "type",
        "properties",
        "anyOf",
        "oneOf",
        "allOf",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
    ];
    if !shaped.iter().any(|k| map.contains_key(*k)) {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(kubernetes_rules);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get_mut(key).filter(|s| s.is_object()) {
            kubernetes_rules(sub);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            subs.iter_mut().for_each(kubernetes_rules);
        }
    }
}

/// Escapes a regex metacharacter in an enum value (they are identifiers today).
fn escape(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// One CRD: `kind` in every version of `group`, with a `status` subresource.
fn crd(group: &Group, kind: &str, spec: &Value) -> Value {
    let plural = format!("{}s", kind.to_lowercase());
    let versions: Vec<Value> = group
        .versions
        .iter()
        .enumerate()
        .map(|(i, version)| {
            json!({
                "name": version,
                "served": true,
                "storage": i == 0,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": format!("{kind}, as Wardgate reads it."),
                    "required": ["spec"],
                    "properties": {
                        "spec": spec,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{}", group.name), "labels": super::labels()},
        "spec": {
            "group": group.name,
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural, "singular": kind.to_lowercase()},
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}

/// Every CRD: Broker, BrokerListener, BrokerAuthentication and BrokerAuthorization in the AIO
/// group (v1, v1beta1), `wardgate.io/v1` and the old `mq.iotoperations.azure.com/v1beta1`.
pub(crate) fn all() -> Vec<Value> {
    let current = [
        ("Broker", spec_schema::<broker::BrokerSpec>()),
        (
            "BrokerListener",
            spec_schema::<listener::BrokerListenerSpec>(),
        ),
        (
            "BrokerAuthentication",
            spec_schema::<authn::BrokerAuthenticationSpec>(),
        ),
        (
            "BrokerAuthorization",
            spec_schema::<authz::BrokerAuthorizationSpec>(),
        ),
    ];
    let previous = [
        ("Broker", spec_schema::<old::BrokerSpec>()),
        ("BrokerListener", spec_schema::<old::BrokerListenerSpec>()),
        (
            "BrokerAuthentication",
            spec_schema::<old::BrokerAuthenticationSpec>(),
        ),
        (
            "BrokerAuthorization",
            spec_schema::<old::BrokerAuthorizationSpec>(),
        ),
    ];
    let mut crds = Vec::new();
    for group in GROUPS {
        let kinds = if group.old_api { &previous } else { &current };
        crds.extend(kinds.iter().map(|(kind, spec)| crd(group, kind, spec)));
    }
    crds
}

/// The API groups whose CRDs [`all`] prints (for the RBAC rules).
pub(crate) fn groups() -> Vec<&'static str> {
    GROUPS.iter().map(|g| g.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_become_case_insensitive_patterns_and_untyped_fields_keep_unknowns() {
        let mut schema = json!({"type": "object", "properties": {
            "serviceType": {"enum": ["ClusterIp", "LoadBalancer"]},
            "image": {"nullable": true},
        }});
        kubernetes_rules(&mut schema);
        assert_eq!(
            schema["properties"]["serviceType"]["pattern"],
            "^(?i:ClusterIp|LoadBalancer)$"
        );
        assert_eq!(
            schema["properties"]["image"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }
}
