//! The in-cluster source of resources: the kinds Wardgate reads from files, watched through the
//! Kubernetes API (kube-runtime's `watcher`, which resumes on resourceVersion and relists after
//! 410 Gone) and handed to the configuration loader as one [`Source`] per object, named
//! `kube:<namespace>/<Kind>/<name>`, so that the loader's errors read like a file's.
//!
//! Each watched kind runs in its own task and keeps its objects here, reduced to what the loader
//! reads (no `status`, no server-set metadata): a relist or a status write that changes nothing
//! the loader sees does not wake the serve loop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use wardgate_config::Source;

use super::client::Cluster;

/// The AIO groups and the version of each that is watched. A CRD's versions are views of the
/// same objects, so each group is watched in one version (`v1beta1` objects of the current
/// group arrive as `v1`, which the loader reads the same).
const AIO_GROUPS: [(&str, &str); 3] = [
    ("mqttbroker.iotoperations.azure.com", "v1"),
    ("wardgate.io", "v1"),
    ("mq.iotoperations.azure.com", "v1beta1"),
];

/// The AIO kinds and their plurals.
const AIO_KINDS: [(&str, &str); 4] = [
    ("Broker", "brokers"),
    ("BrokerListener", "brokerlisteners"),
    ("BrokerAuthentication", "brokerauthentications"),
    ("BrokerAuthorization", "brokerauthorizations"),
];

/// One kind Wardgate watches.
#[derive(Debug, Clone)]
struct WatchedKind {
    resource: ApiResource,
    /// Cluster-scoped kinds (ClusterIssuer) are watched in every namespace.
    namespaced: bool,
}

impl WatchedKind {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        WatchedKind {
            resource: ApiResource::from_gvk_with_plural(&gvk, plural),
            namespaced,
        }
    }

    /// `plural.group` (or `plural`), as logs name a resource type.
    fn qualified(&self) -> String {
        let r = &self.resource;
        if r.group.is_empty() {
            r.plural.clone()
        } else {
            format!("{}.{}", r.plural, r.group)
        }
    }
}

/// Every kind of SPEC.md §3 that comes from the API: the four AIO kinds in each group, Secrets,
/// ConfigMaps and cert-manager's Issuers, ClusterIssuers and Certificates.
fn watched_kinds() -> Vec<WatchedKind> {
    let mut kinds = Vec::new();
    for (group, version) in AIO_GROUPS {
        for (kind, plural) in AIO_KINDS {
            kinds.push(WatchedKind::new(group, version, kind, plural, true));
        }
    }
    kinds.push(WatchedKind::new("", "v1", "Secret", "secrets", true));
    kinds.push(WatchedKind::new("", "v1", "ConfigMap", "configmaps", true));
    let cert_manager = wardgate_config::CERT_MANAGER_GROUP;
    kinds.push(WatchedKind::new(
        cert_manager,
        "v1",
        "Issuer",
        "issuers",
        true,
    ));
    kinds.push(WatchedKind::new(
        cert_manager,
        "v1",
        "ClusterIssuer",
        "clusterissuers",
        false,
    ));
    kinds.push(WatchedKind::new(
        cert_manager,
        "v1",
        "Certificate",
        "certificates",
        true,
    ));
    kinds
}

/// An object as the loader reads it, and the uid Services' owner references need.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    /// apiVersion, kind, metadata (name, namespace, labels, annotations) and the rest but status.
    object: Value,
    uid: Option<String>,
}

/// What one watched kind holds.
#[derive(Debug, Default)]
struct KindState {
    /// Whether its first list is done (or the API does not serve it).
    synced: bool,
    /// By `namespace/name`.
    objects: BTreeMap<String, Kept>,
}

/// The objects of every watched kind, shared by the watch tasks and the serve loop.
struct Shared {
    kinds: Vec<WatchedKind>,
    states: Mutex<Vec<KindState>>,
    /// Bumped whenever what the loader would read changes.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// Runs `change` on kind `index`'s state; wakes the serve loop if it says the objects or the
    /// synced flag changed.
    fn update(&self, index: usize, change: impl FnOnce(&mut KindState) -> bool) {
        let changed = self.states.lock().get_mut(index).is_some_and(change);
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The watched resources of the in-cluster mode.
pub(crate) struct KubeSource {
    shared: Arc<Shared>,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl KubeSource {
    /// Starts watching every kind in `cluster`'s namespace (ClusterIssuers cluster-wide); the
    /// watches end at `shutdown`.
    pub(crate) fn start(
        cluster: &Cluster,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> KubeSource {
        let kinds = watched_kinds();
        let (changes, receiver) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            states: Mutex::new(kinds.iter().map(|_| KindState::default()).collect()),
            kinds,
            changes,
        });
        for (index, kind) in shared.kinds.iter().enumerate() {
            let api = if kind.namespaced {
                Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &kind.resource)
            } else {
                Api::all_with(cluster.client.clone(), &kind.resource)
            };
            tasks.spawn(watch_kind(api, index, shared.clone(), shutdown.clone()));
        }
        KubeSource {
            shared,
            changes: receiver,
        }
    }

    /// Waits until every kind has been listed once, or fails after `limit`.
    pub(crate) async fn synced(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let waiting: Vec<String> = {
                let states = self.shared.states.lock();
                self.shared
                    .kinds
                    .iter()
                    .zip(states.iter())
                    .filter(|(_, s)| !s.synced)
                    .map(|(k, _)| k.qualified())
                    .collect()
            };
            if waiting.is_empty() {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => {}
                _ => anyhow::bail!(
                    "cannot list {} from the Kubernetes API within {limit:?}",
                    waiting.join(", ")
                ),
            }
        }
    }

    /// Resolves when the watched objects changed since the last call.
    pub(crate) async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // Every watch ended (shutdown): nothing more will change.
            std::future::pending::<()>().await;
        }
    }

    /// The objects as configuration sources, one per object, in a stable order.
    pub(crate) fn sources(&self) -> Vec<Source> {
        let states = self.shared.states.lock();
        let mut sources = Vec::new();
        for (kind, state) in self.shared.kinds.iter().zip(states.iter()) {
            for (key, kept) in &state.objects {
                if runs_only_in_cert_manager(&kept.object) {
                    continue;
                }
                let name = format!("kube:{}", source_name(&kind.resource.kind, key));
                let text = match serde_saphyr::to_string(&kept.object) {
                    Ok(text) => text,
                    // Values from JSON always serialise; say so rather than drop the object.
                    Err(e) => format!("# cannot be written as YAML: {e}\n"),
                };
                sources.push(Source {
                    name: PathBuf::from(name),
                    text,
                });
            }
        }
        sources
    }

    /// The apiVersion and uid of the BrokerListener `name`, for owner references.
    pub(crate) fn listener(&self, name: &str) -> Option<(String, String)> {
        let states = self.shared.states.lock();
        self.shared
            .kinds
            .iter()
            .zip(states.iter())
            .filter(|(k, _)| k.resource.kind == "BrokerListener")
            .flat_map(|(k, s)| s.objects.values().map(move |o| (k, o)))
            .find(|(_, o)| o.object["metadata"]["name"].as_str() == Some(name))
            .and_then(|(k, o)| Some((k.resource.api_version.clone(), o.uid.clone()?)))
    }
}

/// Whether `object` is an Issuer or ClusterIssuer only cert-manager can run (ACME, Vault,
/// Venafi: a cluster's Let's Encrypt issuer, say). Such issuers exist only where cert-manager
/// does, and there cert-manager issues every automatic certificate (`certificates/`): Wardgate
/// does not read them, rather than refuse the whole configuration as it refuses them in files.
fn runs_only_in_cert_manager(object: &Value) -> bool {
    matches!(object["kind"].as_str(), Some("Issuer" | "ClusterIssuer"))
        && ["acme", "vault", "venafi"]
            .iter()
            .any(|field| !object["spec"][*field].is_null())
}

/// `<namespace>/<Kind>/<name>`, or `<Kind>/<name>` for a cluster-scoped object.
fn source_name(kind: &str, key: &str) -> String {
    match key.split_once('/') {
        Some(("", name)) => format!("{kind}/{name}"),
        Some((namespace, name)) => format!("{namespace}/{kind}/{name}"),
        None => format!("{kind}/{key}"),
    }
}

/// `namespace/name` of an object.
fn key(object: &DynamicObject) -> String {
    let m = &object.metadata;
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default()
    )
}

/// What the loader reads of `object`: the type from the watched kind (list items carry none),
/// the metadata it knows, every other field but `status`.
fn keep(kind: &WatchedKind, object: DynamicObject) -> Kept {
    let m = object.metadata;
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(m.name.unwrap_or_default()));
    if let Some(namespace) = m.namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    if let Some(labels) = m.labels.filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(annotations) = m.annotations.filter(|a| !a.is_empty()) {
        metadata.insert("annotations".into(), json!(annotations));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(kind.resource.api_version));
    out.insert("kind".into(), json!(kind.resource.kind));
    out.insert("metadata".into(), Value::Object(metadata));
    if let Value::Object(fields) = object.data {
        for (field, value) in fields {
            if !matches!(
                field.as_str(),
                "status" | "apiVersion" | "kind" | "metadata"
            ) {
                out.insert(field, value);
            }
        }
    }
    Kept {
        object: Value::Object(out),
        uid: m.uid,
    }
}

/// Watches one kind until `shutdown`, keeping its objects in `shared`.
async fn watch_kind(
    api: Api<DynamicObject>,
    index: usize,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let Some(kind) = shared.kinds.get(index).cloned() else {
        return;
    };
    let resource = kind.qualified();
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing: Option<BTreeMap<String, Kept>> = None;
    let mut reported_absent = false;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = stream.next() => event,
        };
        match event {
            None => return,
            Some(Ok(watcher::Event::Init)) => listing = Some(BTreeMap::new()),
            Some(Ok(watcher::Event::InitApply(object))) => {
                listing
                    .get_or_insert_default()
                    .insert(key(&object), keep(&kind, object));
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let objects = listing.take().unwrap_or_default();
                debug!(%resource, count = objects.len(), "listed");
                shared.update(index, |state| {
                    let changed = !state.synced || state.objects != objects;
                    state.objects = objects;
                    state.synced = true;
                    changed
                });
            }
            Some(Ok(watcher::Event::Apply(object))) => {
                let (key, kept) = (key(&object), keep(&kind, object));
                shared.update(index, |state| {
                    let before = state.objects.insert(key.clone(), kept);
                    before.as_ref() != state.objects.get(&key)
                });
            }
            Some(Ok(watcher::Event::Delete(object))) => {
                let key = key(&object);
                shared.update(index, |state| state.objects.remove(&key).is_some());
            }
            Some(Err(e)) if is_not_served(&e) => {
                // A CRD not installed (cert-manager, the old AIO group): nothing of that kind
                // exists; the watcher keeps trying, so installing it later is noticed.
                if !reported_absent {
                    info!(%resource, "not served by the Kubernetes API (CRD not installed); watching for it");
                    reported_absent = true;
                }
                shared.update(index, |state| {
                    // Also when its CRD was deleted: its objects went with it.
                    let changed = !state.synced || !state.objects.is_empty();
                    state.objects.clear();
                    state.synced = true;
                    changed
                });
            }
            Some(Err(e)) => {
                warn!(%resource, error = %e, "watch of the Kubernetes API failed; resuming");
            }
        }
    }
}

/// Whether the API answered 404 for the kind itself.
fn is_not_served(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.is_not_found(),
        _ => false,
    }
}

/// Waits for a burst of changes (`kubectl apply -f dir/` is one event per object) to settle:
/// due [`Debounce::QUIET`] after the last change, at most [`Debounce::MAX`] after the first.
#[derive(Debug, Default)]
pub(crate) struct Debounce {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    /// Quiet time that ends a burst.
    const QUIET: Duration = Duration::from_millis(300);
    /// The longest a change waits.
    const MAX: Duration = Duration::from_secs(2);

    /// Notes a change.
    pub(crate) fn changed(&mut self) {
        self.changed_at(Instant::now());
    }

    fn changed_at(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to act, if a change waits.
    pub(crate) fn due(&self) -> Option<Instant> {
        Some((self.last? + Self::QUIET).min(self.first? + Self::MAX))
    }

    /// The changes were acted on.
    pub(crate) fn clear(&mut self) {
        *self = Debounce::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_keeps_what_the_loader_reads_and_is_named_like_a_file() {
        let kind = WatchedKind::new(
            "mqttbroker.iotoperations.azure.com",
            "v1",
            "BrokerListener",
            "brokerlisteners",
            true,
        );
        let object: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "l", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl"}], "labels": {"a": "b"}},
            "spec": {"ports": [{"port": 1883}]},
            "status": {"provisioningState": "Succeeded"}
        }))
        .unwrap();
        let kept = keep(&kind, object);
        assert_eq!(kept.uid.as_deref(), Some("u-1"));
        assert_eq!(
            kept.object,
            json!({"apiVersion": "mqttbroker.iotoperations.azure.com/v1", "kind": "BrokerListener",
                   "metadata": {"name": "l", "namespace": "ns", "labels": {"a": "b"}},
                   "spec": {"ports": [{"port": 1883}]}})
        );
        assert_eq!(source_name("BrokerListener", "ns/l"), "ns/BrokerListener/l");
        assert_eq!(source_name("ClusterIssuer", "/ca"), "ClusterIssuer/ca");
    }

    #[test]
    fn a_burst_settles_after_a_quiet_time_but_never_waits_longer_than_the_maximum() {
        let mut debounce = Debounce::default();
        assert_eq!(debounce.due(), None);
        let start = Instant::now();
        debounce.changed_at(start);
        assert_eq!(debounce.due(), Some(start + Debounce::QUIET));
        for i in 1..=20 {
            debounce.changed_at(start + Duration::from_millis(200) * i);
        }
        assert_eq!(debounce.due(), Some(start + Debounce::MAX));
        debounce.clear();
        assert_eq!(debounce.due(), None);
    }
}
