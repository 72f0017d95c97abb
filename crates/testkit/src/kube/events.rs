//! `events.k8s.io/v1` Events are a second view of the core `v1` Events, as in a real API
//! server: one storage, fields renamed between the two. A controller records with the new API
//! (kube-runtime's `Recorder`), `kubectl describe` reads the core one.

use serde_json::{Map, Value};

/// The fields the two APIs name differently: (events.k8s.io/v1, core v1).
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedSource", "source"),
    ("reportingController", "reportingComponent"),
];

fn rename(object: Value, from_new: bool) -> Value {
    let Value::Object(map) = object else {
        return object;
    };
    let out: Map<String, Value> = map
        .into_iter()
        .map(|(key, value)| {
            let renamed = RENAMED.iter().find_map(|(new, core)| match from_new {
                true if key == *new => Some((*core).to_string()),
                false if key == *core => Some((*new).to_string()),
                _ => None,
            });
            (renamed.unwrap_or(key), value)
        })
        .collect();
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event as the core Event it is stored as; `count`, `lastTimestamp` and
/// `source.component` are filled from `series`, `eventTime` and `reportingController` when
/// absent, as the API server's conversion does.
pub(super) fn to_core(object: Value) -> Value {
    let mut core = rename(object, true);
    let series_count = core.pointer("/series/count").cloned();
    let last_seen = core
        .pointer("/series/lastObservedTime")
        .or_else(|| core.get("eventTime"))
        .cloned();
    let component = core.get("reportingComponent").cloned();
    if let Some(map) = core.as_object_mut() {
        if let Some(count) = series_count {
            map.insert("count".into(), count);
        }
        map.entry("count").or_insert(Value::from(1));
        if let Some(time) = last_seen {
            map.entry("firstTimestamp").or_insert(time.clone());
            map.insert("lastTimestamp".into(), time);
        }
        if let Some(component) = component {
            map.entry("source")
                .or_insert(serde_json::json!({"component": component}));
        }
    }
    core
}

/// A stored core Event as an `events.k8s.io/v1` Event.
pub(super) fn to_new(object: Value) -> Value {
    rename(object, false)
}
