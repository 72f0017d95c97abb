//! Server-side printing: the `Table` (`meta.k8s.io/v1`) kubectl asks for with
//! `Accept: application/json;as=Table;...`, with the columns a real server prints: Name and Age
//! for every type, and Type, Cluster-IP, External-IP and Port(s) for Services.

use serde_json::{Value, json};

use super::resources::ResourceType;

fn column(name: &str, format: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0})
}

/// `5s`, `3m`, `2h`, `4d`: how kubectl shows an age.
fn age(object: &Value) -> String {
    let Some(created) = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
    else {
        return "<unknown>".into();
    };
    let seconds = (time::OffsetDateTime::now_utc() - created)
        .whole_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn text(object: &Value, pointer: &str) -> Option<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn service_cells(object: &Value) -> Vec<Value> {
    let kind = text(object, "/spec/type").unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = text(object, "/spec/clusterIP").unwrap_or_else(|| "<none>".into());
    let ingress: Vec<String> = object
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let external = match (kind.as_str(), ingress.is_empty()) {
        (_, false) => ingress.join(","),
        ("LoadBalancer", true) => "<pending>".into(),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = object
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(node) => format!("{port}:{node}/{protocol}"),
                        None => format!("{port}/{protocol}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        json!(kind),
        json!(cluster_ip),
        json!(external),
        json!(ports),
    ]
}

/// The Table of a list's items.
pub(super) fn of_list(rt: &ResourceType, list: &Value) -> Value {
    let service = rt.group.is_empty() && rt.kind == "Service";
    let mut columns = vec![column("Name", "name")];
    if service {
        for name in ["Type", "Cluster-IP", "External-IP", "Port(s)"] {
            columns.push(column(name, ""));
        }
    }
    columns.push(column("Age", ""));
    let rows: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(text(o, "/metadata/name").unwrap_or_default())];
                    if service {
                        cells.extend(service_cells(o));
                    }
                    cells.push(json!(age(o)));
                    json!({"cells": cells, "object": o})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": list.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))},
        "columnDefinitions": columns,
        "rows": rows,
    })
}
