//! Each resource's `status` in the cluster (issue 19 item 5), from the port supervisor's
//! [`Status`]: AIO's `provisioningState` and `healthState` (its 2026 shape: `status`,
//! `reasonCode`, `message` and the times), and for a BrokerListener its ports' states
//! (`Listening`, `AwaitingSecret`, `AwaitingIssuer`, `AwaitingConfigMap`, `Failed`), written
//! through the status subresource when they change, with the Events of [`super::events`].
//!
//! [`run`] polls the status handle every [`POLL`] (the supervisor has no change notification;
//! a comparison of a few small values per resource is all a quiet second costs). A refused
//! configuration is reported on the objects its errors name ([`Refusals::set`]) until a
//! configuration is applied again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use wardgate_config::{ConfigErrors, Model};
use wardgate_server::{PortState, Status};

use super::events::{EventLog, Happening};

/// How often the supervisor's status is compared with what was written.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// How long a resource not found in the API (a built-in default, say) is not looked for again.
const RELOCATE_AFTER: Duration = Duration::from_secs(30);

/// The resource kinds that have a status, with their plural.
const KINDS: [(&str, &str); 4] = [
    ("Broker", "brokers"),
    ("BrokerListener", "brokerlisteners"),
    ("BrokerAuthentication", "brokerauthentications"),
    ("BrokerAuthorization", "brokerauthorizations"),
];

/// Where a resource may live, tried in this order: AIO's current group (its storage version
/// serves objects written in any version), Wardgate's, the 2023 preview group.
const GROUPS: [(&str, &str); 3] = [
    ("mqttbroker.iotoperations.azure.com", "v1"),
    ("wardgate.io", "v1"),
    ("mq.iotoperations.azure.com", "v1beta1"),
];

/// A resource: its kind and name.
pub(crate) type ObjectKey = (&'static str, String);

/// What a resource's status says, before times are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceStatus {
    /// `Succeeded`, `Provisioning` (a port waits for something) or `Failed`.
    pub(crate) provisioning: &'static str,
    /// `Available`, `Degraded`, `Unavailable` or `Unknown`.
    pub(crate) health: &'static str,
    /// Why: a port state's name, or `InvalidConfiguration`.
    pub(crate) reason: &'static str,
    /// The line the log prints.
    pub(crate) message: String,
    /// A listener's ports: number, state and its reason.
    pub(crate) ports: Option<Vec<(u16, &'static str, Option<String>)>>,
}

/// The refused configuration's errors by the object they name, reported until cleared.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals(Arc<Mutex<BTreeMap<ObjectKey, Vec<String>>>>);

impl Refusals {
    /// A configuration was refused (`Some`) or applied (`None`, which clears the reports).
    pub(crate) fn set(&self, errors: Option<&ConfigErrors>) {
        let mut by_object = BTreeMap::new();
        for e in errors.into_iter().flat_map(|e| &e.errors) {
            let Some((kind, name)) = e.resource.as_deref().and_then(|r| r.split_once('/')) else {
                continue;
            };
            let Some((kind, _)) = KINDS.iter().find(|(k, _)| *k == kind) else {
                continue;
            };
            let line = match &e.path {
                Some(path) if !path.is_empty() => format!("{path} {}", e.message),
                _ => e.message.clone(),
            };
            by_object
                .entry((*kind, name.to_owned()))
                .or_insert_with(Vec::new)
                .push(line);
        }
        *self.lock() = by_object;
    }

    fn snapshot(&self) -> BTreeMap<ObjectKey, Vec<String>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, Vec<String>>> {
        // Replaced whole under the lock: a panic cannot leave it torn.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every resource's status as the supervisor's `status` and the refusals make it.
pub(crate) fn desired(
    status: &Status,
    refusals: &BTreeMap<ObjectKey, Vec<String>>,
) -> BTreeMap<ObjectKey, ResourceStatus> {
    let mut out = BTreeMap::new();
    if let Some(model) = status.model.as_deref() {
        derive_running(model, status, &mut out);
    }
    for (key, lines) in refusals {
        let health = out.get(key).map_or("Unknown", |s| s.health);
        out.insert(
            key.clone(),
            ResourceStatus {
                provisioning: "Failed",
                health,
                reason: "InvalidConfiguration",
                message: format!(
                    "the configuration was refused, the previous one runs: {}",
                    lines.join("; ")
                ),
                ports: out.get(key).and_then(|s| s.ports.clone()),
            },
        );
    }
    out
}

fn derive_running(model: &Model, status: &Status, out: &mut BTreeMap<ObjectKey, ResourceStatus>) {
    let state_of = |port: u16| status.ports.get(&port).map(|p| &p.state);
    let mut all_ports = Vec::new();
    for listener in &model.listeners {
        let ports: Vec<(u16, &PortState)> = listener
            .ports
            .iter()
            .filter_map(|p| state_of(p.port).map(|s| (p.port, s)))
            .collect();
        all_ports.extend(ports.iter().copied());
        out.insert(
            ("BrokerListener", listener.name.clone()),
            from_ports(&ports, "every port is listening"),
        );
    }
    let mut used_by = |kind: &'static str, name: &str, uses: &dyn Fn(&str) -> bool| {
        let prefix = format!("{kind}/{name}:");
        let ports: Vec<(u16, &PortState)> = model
            .listeners
            .iter()
            .flat_map(|l| &l.ports)
            .filter(|p| {
                uses(p.authentication_ref.as_deref().unwrap_or("")) || {
                    uses(p.effective_authorization_ref().unwrap_or(""))
                }
            })
            .filter_map(|p| state_of(p.port).map(|s| (p.port, s)))
            // Only the problems this resource causes; the others are the listener's.
            .filter(|(_, s)| s.reason().is_some_and(|r| r.starts_with(&prefix)))
            .collect();
        let mut status = from_ports(&ports, "in use");
        status.ports = None;
        out.insert((kind, name.to_owned()), status);
    };
    for name in model.authentications.keys() {
        used_by("BrokerAuthentication", name, &|r| r == name);
    }
    for name in model.authorizations.keys() {
        used_by("BrokerAuthorization", name, &|r| r == name);
    }
    let mut broker = from_ports(&all_ports, "every port is listening");
    broker.ports = None;
    out.insert(("Broker", model.broker.name.clone()), broker);
}

/// A resource's status from the states of the ports it concerns (all Listening when empty).
fn from_ports(ports: &[(u16, &PortState)], fine: &str) -> ResourceStatus {
    let listening = ports
        .iter()
        .filter(|(_, s)| **s == PortState::Listening)
        .count();
    let first_problem = ports.iter().find(|(_, s)| **s != PortState::Listening);
    let provisioning = if ports.iter().any(|(_, s)| matches!(s, PortState::Failed(_))) {
        "Failed"
    } else if ports.iter().any(|(_, s)| s.is_waiting()) {
        "Provisioning"
    } else {
        "Succeeded"
    };
    let health = match first_problem {
        None => "Available",
        Some(_) if listening > 0 => "Degraded",
        Some(_) => "Unavailable",
    };
    let (reason, message) = match first_problem {
        None => ("Listening", fine.to_owned()),
        Some((port, state)) => (
            state.name(),
            format!("port {port}: {}", state.reason().unwrap_or(state.name())),
        ),
    };
    ResourceStatus {
        provisioning,
        health,
        reason,
        message,
        ports: Some(
            ports
                .iter()
                .map(|(n, s)| (*n, s.name(), s.reason().map(str::to_owned)))
                .collect(),
        ),
    }
}

/// Writes statuses and records Events for the resources of one namespace.
pub(crate) struct StatusReporter {
    client: kube::Client,
    namespace: String,
    located: HashMap<ObjectKey, Located>,
    /// Resources not found, and when they were looked for.
    missing: HashMap<ObjectKey, Instant>,
    written: HashMap<ObjectKey, Written>,
    events: EventLog,
}

/// A resource found in the API: where to write its status, and what Events regard.
#[derive(Clone)]
struct Located {
    api: Api<DynamicObject>,
    reference: ObjectReference,
}

struct Written {
    status: ResourceStatus,
    since: Timestamp,
}

impl StatusReporter {
    /// A reporter for the resources of `namespace`, recording Events as `wardgate`.
    pub(crate) fn new(client: kube::Client, namespace: &str) -> StatusReporter {
        StatusReporter {
            events: EventLog::new(client.clone()),
            client,
            namespace: namespace.to_owned(),
            located: HashMap::new(),
            missing: HashMap::new(),
            written: HashMap::new(),
        }
    }

    /// Writes what changed in `desired` and records its Events; a resource that is not (yet)
    /// in the API is tried again next time.
    pub(crate) async fn report(&mut self, desired: BTreeMap<ObjectKey, ResourceStatus>) {
        self.written.retain(|key, _| desired.contains_key(key));
        self.located.retain(|key, _| desired.contains_key(key));
        self.missing.retain(|key, _| desired.contains_key(key));
        for (key, status) in desired {
            if self.written.get(&key).is_some_and(|w| w.status == status) {
                continue;
            }
            let Some(located) = self.locate(&key).await else {
                continue;
            };
            let now = Timestamp::now();
            let since = match self.written.get(&key) {
                Some(w) if w.status.health == status.health => w.since,
                _ => now,
            };
            let body = json!({"status": status_json(&status, since, now)});
            let name = key.1.as_str();
            match located
                .api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => {
                    let previous = self.written.get(&key).map(|w| &w.status);
                    for happening in happenings(previous, &status) {
                        self.events.record(&located.reference, &happening).await;
                    }
                    self.written.insert(key, Written { status, since });
                }
                Err(e) => {
                    warn!(resource = %format!("{}/{}", key.0, key.1), error = %e, "cannot write the resource's status");
                    self.located.remove(&key);
                }
            }
        }
    }

    async fn locate(&mut self, key: &ObjectKey) -> Option<Located> {
        let recently_missed = self
            .missing
            .get(key)
            .is_some_and(|at| at.elapsed() < RELOCATE_AFTER);
        if !self.located.contains_key(key) && !recently_missed {
            let plural = KINDS.iter().find(|(k, _)| *k == key.0)?.1;
            for (group, version) in GROUPS {
                let gvk = GroupVersionKind::gvk(group, version, key.0);
                let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
                if let Ok(Some(object)) = api.get_opt(&key.1).await {
                    let reference = object.object_ref(&resource);
                    self.located.insert(key.clone(), Located { api, reference });
                    break;
                }
            }
            if !self.located.contains_key(key) {
                self.missing.insert(key.clone(), Instant::now());
            }
        }
        self.located.get(key).cloned()
    }
}

/// The Events for what changed from `previous` (nothing written yet: `None`) to `current`.
fn happenings(previous: Option<&ResourceStatus>, current: &ResourceStatus) -> Vec<Happening> {
    let same_health =
        previous.is_some_and(|p| p.reason == current.reason && p.message == current.message);
    if current.reason == "InvalidConfiguration" {
        return match same_health {
            true => Vec::new(),
            false => vec![Happening::warning(current.reason, &current.message)],
        };
    }
    if let Some(ports) = &current.ports {
        let before = previous.and_then(|p| p.ports.as_deref()).unwrap_or(&[]);
        return ports
            .iter()
            .filter(|port| !before.contains(port))
            .map(|(number, state, reason)| Happening::port(*number, state, reason.as_deref()))
            .collect();
    }
    match (previous, current.health) {
        _ if same_health => Vec::new(),
        (None, "Available") => Vec::new(),
        (_, "Available") => vec![Happening::normal("Available", current.message.clone())],
        _ => vec![Happening::warning(current.reason, &current.message)],
    }
}

/// The `status` object: AIO's fields, and `ports` for a listener.
fn status_json(status: &ResourceStatus, since: Timestamp, now: Timestamp) -> Value {
    let mut out = json!({
        "provisioningState": status.provisioning,
        "healthState": {
            "status": status.health,
            "reasonCode": status.reason,
            "message": status.message,
            "lastTransitionTime": since.to_string(),
            "lastUpdateTime": now.to_string(),
        },
    });
    if let Some(ports) = &status.ports {
        out["ports"] = ports
            .iter()
            .map(|(port, state, reason)| match reason {
                Some(r) => json!({"port": port, "state": state, "message": r}),
                None => json!({"port": port, "state": state}),
            })
            .collect();
    }
    out
}

/// Reports `status` (the supervisor's) and `refusals` through `reporter` every [`POLL`] until
/// `shutdown`.
pub(crate) async fn run(
    mut reporter: StatusReporter,
    status: Arc<RwLock<Status>>,
    refusals: Refusals,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let wanted = desired(&status.read(), &refusals.snapshot());
        reporter.report(wanted).await;
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
