//! The objects, kept as JSON in memory: one resourceVersion counter for the whole server, the
//! history of changes a watch replays from, and the garbage collector that deletes the objects a
//! deleted owner owned.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::patch::{Patch, PatchKind};
use super::resources::{self, ResourceType};
use super::selector::{Selector, SelectorKind};
use super::status::ApiError;

/// Changes kept for watches to resume from; older ones are dropped and a watch from before them
/// gets 410 Gone, as after an etcd compaction.
const HISTORY: usize = 10_000;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated or patched.
    Modified,
    /// Deleted (the object as it was last).
    Deleted,
}

impl EventType {
    /// The watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the change made.
    pub rv: u64,
    /// What happened.
    pub event: EventType,
    /// The resource type's group.
    pub group: String,
    /// The resource type's plural.
    pub plural: String,
    /// The object's namespace ("" when cluster-scoped).
    pub namespace: String,
    /// The object after the change.
    pub object: Value,
}

/// Which part of an object a write replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` when the type has a status subresource.
    Main,
    /// Only `status` (the `/status` subresource).
    Status,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: String,
    plural: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(rt: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: rt.storage_group().to_string(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }
}

struct State {
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// A watch may resume from this resourceVersion or any later one.
    oldest: u64,
    uids: u64,
}

/// The object store; every operation holds one lock, so each is atomic.
pub struct Store {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
}

/// What a new watch starts from.
#[derive(Debug)]
pub struct Subscription {
    /// The changes it sends first.
    pub first: Vec<Arc<Change>>,
    /// The changes after those.
    pub changes: broadcast::Receiver<Arc<Change>>,
    /// The resourceVersion `first` brings the watcher up to.
    pub snapshot: u64,
}

fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn rv_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/resourceVersion")?.as_str()
}

fn uid_of(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid")?.as_str()
}

impl Store {
    /// A store with the built-in types and the `default`, `kube-system` and `kube-public`
    /// namespaces a cluster starts with.
    pub fn new() -> Store {
        let (changes, _) = broadcast::channel(4096);
        let store = Store {
            state: Mutex::new(State {
                types: resources::builtin(),
                objects: BTreeMap::new(),
                rv: 1,
                history: VecDeque::new(),
                oldest: 1,
                uids: 0,
            }),
            changes,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            if let Some(rt) = store.find_type("", "v1", "namespaces") {
                // Cannot fail: the store is empty and the names differ.
                let _ = store.create(&rt, "", namespace);
            }
        }
        store
    }

    /// The types served now (built-in ones and those of created CRDs).
    pub fn types(&self) -> Vec<ResourceType> {
        self.state.lock().types.clone()
    }

    /// The type served at `group/version` under `plural`.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        let state = self.state.lock();
        state
            .types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// Stops serving every type of `group`, as a cluster without that group's CRDs does (say
    /// `cert-manager.io` where cert-manager is not installed).
    pub fn remove_group(&self, group: &str) {
        self.state.lock().types.retain(|t| t.group != group);
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().rv
    }

    /// Drops the watch history, so that a watch from any earlier resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        let mut state = self.state.lock();
        state.history.clear();
        state.oldest = state.rv;
    }

    /// `POST`: stores a new object in `namespace` (ignored for cluster-scoped types).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let mut state = self.state.lock();
        let name = match object.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => match object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) => format!("{prefix}{:05x}", state.uids + 1),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: metadata.name: Required value",
                        rt.kind, rt.versions[0], rt.kind
                    )));
                }
            },
        };
        check_kind(rt, &object)?;
        if rt.namespaced {
            let ns_key = Key {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: namespace.into(),
            };
            if !state.objects.contains_key(&ns_key) {
                return Err(ApiError::not_found("namespaces", namespace));
            }
        }
        let key = Key::new(rt, namespace, &name);
        if state.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.qualified(), &name));
        }
        state.uids += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", state.uids);
        let metadata = object
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?
            .entry("metadata")
            .or_insert_with(|| json!({}));
        let Value::Object(metadata) = metadata else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        metadata.insert("name".into(), json!(name));
        if rt.namespaced {
            metadata.insert("namespace".into(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now()));
        metadata.insert("generation".into(), json!(1));
        if rt.group.is_empty() && rt.kind == "Service" {
            allocate_service_addresses(&mut object, state.uids);
        }
        if rt.kind == "CustomResourceDefinition"
            && let Some(served) = resources::from_crd(&object)
            && !state
                .types
                .iter()
                .any(|t| t.group == served.group && t.plural == served.plural)
        {
            state.types.push(served);
        }
        Ok(self.record(&mut state, key, object, EventType::Added))
    }

    /// `GET` by name.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let state = self.state.lock();
        state
            .objects
            .get(&Key::new(rt, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))
    }

    /// `GET` of a collection: the matching objects and the resourceVersion of the list.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &Selector,
    ) -> (Vec<Value>, u64) {
        let state = self.state.lock();
        let items = state
            .objects
            .iter()
            .filter(|(k, _)| k.group == rt.storage_group() && k.plural == rt.plural)
            .filter(|(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, o)| {
                labels.matches(o, SelectorKind::Label) && fields.matches(o, SelectorKind::Field)
            })
            .map(|(_, o)| o.clone())
            .collect();
        (items, state.rv)
    }

    /// `PUT`: replaces `part` of an existing object; a `resourceVersion` in the body must be the
    /// stored one.
    pub fn replace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        part: Part,
    ) -> Result<Value, ApiError> {
        check_kind(rt, &object)?;
        let mut state = self.state.lock();
        let key = Key::new(rt, namespace, name);
        let current = state
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        if let Some(rv) = rv_of(&object)
            && !rv.is_empty()
            && Some(rv) != rv_of(current)
        {
            return Err(ApiError::conflict(&rt.qualified(), name));
        }
        let updated = merge_part(rt, current, object, part);
        Ok(self.record(&mut state, key, updated, EventType::Modified))
    }

    /// `PATCH`: applies `patch` to `part` of an object; server-side apply creates it when absent.
    /// Returns the object and whether it was created.
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: &Patch,
        part: Part,
    ) -> Result<(Value, bool), ApiError> {
        let key = Key::new(rt, namespace, name);
        let exists = self.state.lock().objects.contains_key(&key);
        if !exists && patch.kind == PatchKind::Apply && part == Part::Main {
            let mut object = patch.body.clone();
            json_patch::merge(&mut object, &json!({"metadata": {"name": name}}));
            return self.create(rt, namespace, object).map(|o| (o, true));
        }
        let mut state = self.state.lock();
        let current = state
            .objects
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        let mut patched = current.clone();
        patch.apply_to(&mut patched)?;
        let updated = merge_part(rt, current, patched, part);
        Ok((
            self.record(&mut state, key, updated, EventType::Modified),
            false,
        ))
    }

    /// `DELETE`: removes the object and, unless `orphan`, every object it owns (transitively),
    /// and every object in a deleted Namespace.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        orphan: bool,
    ) -> Result<Value, ApiError> {
        let mut state = self.state.lock();
        let key = Key::new(rt, namespace, name);
        let deleted = state
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        let mut owners: Vec<String> = uid_of(&deleted).map(str::to_string).into_iter().collect();
        let emptied_namespace =
            (rt.group.is_empty() && rt.plural == "namespaces").then(|| name.to_string());
        let result = self.record_deletion(&mut state, key, deleted);
        if let Some(ns) = emptied_namespace {
            let inside: Vec<Key> = state
                .objects
                .keys()
                .filter(|k| k.namespace == ns)
                .cloned()
                .collect();
            for k in inside {
                if let Some(o) = state.objects.remove(&k) {
                    self.record_deletion(&mut state, k, o);
                }
            }
        }
        // The garbage collector: a worklist of deleted owners' uids, not recursion.
        while let Some(owner) = owners.pop() {
            if orphan {
                break;
            }
            let owned: Vec<Key> = state
                .objects
                .iter()
                .filter(|(_, o)| is_owned_by(o, &owner))
                .map(|(k, _)| k.clone())
                .collect();
            for k in owned {
                if let Some(o) = state.objects.remove(&k) {
                    owners.extend(uid_of(&o).map(str::to_string));
                    self.record_deletion(&mut state, k, o);
                }
            }
        }
        Ok(result)
    }

    /// What a watch of `rt` in `namespace` (all when `None`) from resourceVersion `from` sees
    /// first, and the live channel; 410 Gone when `from` is older than the kept history. With no
    /// `from` (or 0), the first changes are an ADDED per existing object.
    pub fn subscribe(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        from: Option<u64>,
    ) -> Result<Subscription, ApiError> {
        let state = self.state.lock();
        let receiver = self.changes.subscribe();
        let ours = |group: &str, plural: &str, ns: &str| {
            group == rt.storage_group() && plural == rt.plural && namespace.is_none_or(|n| n == ns)
        };
        let first = match from {
            None | Some(0) => state
                .objects
                .iter()
                .filter(|(k, _)| ours(&k.group, &k.plural, &k.namespace))
                .map(|(k, o)| {
                    Arc::new(Change {
                        rv: rv_of(o).and_then(|r| r.parse().ok()).unwrap_or(0),
                        event: EventType::Added,
                        group: k.group.clone(),
                        plural: k.plural.clone(),
                        namespace: k.namespace.clone(),
                        object: o.clone(),
                    })
                })
                .collect(),
            Some(rv) if rv < state.oldest => return Err(ApiError::expired(rv, state.oldest)),
            Some(rv) => state
                .history
                .iter()
                .filter(|c| c.rv > rv && ours(&c.group, &c.plural, &c.namespace))
                .cloned()
                .collect(),
        };
        Ok(Subscription {
            first,
            changes: receiver,
            snapshot: state.rv,
        })
    }

    fn record(&self, state: &mut State, key: Key, mut object: Value, event: EventType) -> Value {
        state.rv += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), json!(state.rv.to_string()));
        }
        self.publish(state, &key, object.clone(), event);
        state.objects.insert(key, object.clone());
        object
    }

    fn record_deletion(&self, state: &mut State, key: Key, mut object: Value) -> Value {
        state.rv += 1;
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("resourceVersion".into(), json!(state.rv.to_string()));
        }
        self.publish(state, &key, object.clone(), EventType::Deleted);
        object
    }

    fn publish(&self, state: &mut State, key: &Key, object: Value, event: EventType) {
        let change = Arc::new(Change {
            rv: state.rv,
            event,
            group: key.group.clone(),
            plural: key.plural.clone(),
            namespace: key.namespace.clone(),
            object,
        });
        if state.history.len() == HISTORY
            && let Some(dropped) = state.history.pop_front()
        {
            state.oldest = dropped.rv;
        }
        state.history.push_back(change.clone());
        // No receiver is not an error: nobody watches.
        let _ = self.changes.send(change);
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

fn check_kind(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    match object.get("kind").and_then(Value::as_str) {
        Some(kind) if kind != rt.kind => Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the resource ({})",
            rt.kind
        ))),
        _ => Ok(()),
    }
}

/// What a real API server fills in a new Service: a cluster IP unless one is given (or
/// `None`), and a node port for each port of a NodePort or LoadBalancer Service that has none.
fn allocate_service_addresses(service: &mut Value, serial: u64) {
    let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if !spec.contains_key("clusterIP") {
        let ip = format!("10.96.{}.{}", (serial / 250) % 250, serial % 250 + 1);
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !matches!(kind, "NodePort" | "LoadBalancer") {
        return;
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, port) in ports.iter_mut().enumerate() {
            if let Some(port) = port.as_object_mut() {
                let node_port = 30000 + (serial * 8 + i as u64) % 2768;
                port.entry("nodePort").or_insert(json!(node_port));
            }
        }
    }
}

fn is_owned_by(object: &Value, owner_uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
        })
}

/// The object a write of `part` leaves: identity fields from `current`, `status` from
/// `current` or `written` depending on the part, `generation` bumped when `spec` changed.
fn merge_part(rt: &ResourceType, current: &Value, mut written: Value, part: Part) -> Value {
    let mut updated = match part {
        Part::Status => {
            let mut updated = current.clone();
            if let (Some(map), Some(status)) = (updated.as_object_mut(), written.get_mut("status"))
            {
                map.insert("status".into(), status.take());
            }
            updated
        }
        Part::Main => {
            if let Some(map) = written.as_object_mut() {
                match current.get("status") {
                    Some(status) if rt.status => {
                        map.insert("status".into(), status.clone());
                    }
                    None if rt.status => {
                        map.remove("status");
                    }
                    _ => {}
                }
            }
            written
        }
    };
    let spec_changed = current.get("spec") != updated.get("spec");
    for field in ["uid", "creationTimestamp", "namespace", "name"] {
        if let Some(value) = current.pointer(&format!("/metadata/{field}"))
            && let Some(metadata) = updated.get_mut("metadata").and_then(Value::as_object_mut)
        {
            metadata.insert(field.into(), value.clone());
        }
    }
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if let Some(metadata) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert(
            "generation".into(),
            json!(if spec_changed {
                generation + 1
            } else {
                generation
            }),
        );
    }
    updated
}
