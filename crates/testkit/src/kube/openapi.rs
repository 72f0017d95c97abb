//! The OpenAPI v3 documents kubectl reads before `apply` (`/openapi/v3` and one document per
//! group-version): kubectl looks for a PATCH operation of the object's kind that takes the
//! `fieldValidation` query parameter, and then leaves validation to the server. The documents
//! list each type's item path and that operation only — no schemas: the fake does not validate
//! objects against schemas, and kubectl falls back to its compiled-in types for patch strategies.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

/// `api/v1` or `apis/<group>/<version>`, as the root document keys them.
fn key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions(types: &[ResourceType]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in types {
        for v in &t.versions {
            let gv = (t.group.clone(), v.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out
}

/// `GET /openapi/v3`.
pub(super) fn root(types: &[ResourceType]) -> Value {
    let paths: Map<String, Value> = group_versions(types)
        .into_iter()
        .map(|(g, v)| {
            let k = key(&g, &v);
            let url = format!("/openapi/v3/{k}?hash={}", types.len());
            (k, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>`; `None` when nothing is served there.
pub(super) fn document(types: &[ResourceType], path: &str) -> Option<Value> {
    let (group, version) = group_versions(types)
        .into_iter()
        .find(|(g, v)| key(g, v) == path)?;
    let mut paths = Map::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.versions.contains(&version))
    {
        let item = if t.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("/{path}/{}/{{name}}", t.plural)
        };
        paths.insert(item, json!({"patch": {
            "operationId": format!("patch{}", t.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": t.kind},
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
        }}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
