//! The registry of live connections: who is connected where, for the admin API, `status`,
//! metrics, and re-checking clients when the authorization policy changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

use futures_util::task::AtomicWaker;
use parking_lot::RwLock;
use wardgate_core::{Session, Wake};
use wardgate_protocol::ProtocolVersion;
use wardgate_protocol::ReasonCode;
use wardgate_security::authn::Identity;

use crate::metrics::{AuthenticationMetrics, AuthorizationMetrics};

/// A connection's number, unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// What is known about one live connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Its number.
    pub id: ConnectionId,
    /// The port it connected to.
    pub port: u16,
    /// The client's address.
    pub peer: SocketAddr,
    /// MQTT version.
    pub protocol: ProtocolVersion,
    /// When CONNACK was sent.
    pub connected_at: SystemTime,
    /// The session, for subscriptions and queue depth.
    pub session: Arc<Session>,
    /// Who authentication says the client is (what authorization decides from): its user name
    /// (CONNECT's, or the certificate's CN) and attributes.
    pub identity: Arc<Identity>,
    /// Lets the broker end the connection with a reason (policy changes).
    pub control: Arc<Control>,
    /// Its metric category (the CONNECT user property `metriccategory`).
    pub category: Arc<str>,
}

impl ConnectionInfo {
    /// The MQTT client identifier (assigned or sent).
    pub fn client_id(&self) -> &Arc<str> {
        self.session.client_id()
    }
}

/// A live connection's wake-up: what happened since its task last looked, and the waker of that
/// task. The core (queued messages, a takeover, a durable store write), a congested queue that has
/// room again, and the broker ending the connection all set a bit here and wake the task, which
/// needs no stored future (and no memory) per thing it waits for.
#[derive(Debug, Default)]
pub struct Control {
    events: AtomicU8,
    reason: AtomicU8,
    waker: AtomicWaker,
    /// When the client's keep-alive runs out, in [`clock_ms`] (0: no keep-alive). The registry
    /// watches every connection's deadline ([`Registry::watch_keep_alive`]), so no connection
    /// needs a timer of its own.
    keep_alive_due: AtomicU64,
}

impl Control {
    /// The session's queue has work, or the session was taken over, or a store write the
    /// connection waits for is durable.
    pub const QUEUE: u8 = 1;
    /// A congested queue the connection's publisher waited for has room again.
    pub const SPACE: u8 = 2;
    /// The broker ends the connection ([`Control::kick`]).
    pub const KICK: u8 = 4;
    /// The keep-alive deadline passed.
    pub const KEEP_ALIVE: u8 = 8;

    /// Asks the connection to send DISCONNECT `reason` (v5) and close.
    pub fn kick(&self, reason: ReasonCode) {
        self.reason.store(reason.0, Ordering::Release);
        self.signal(Self::KICK);
    }

    /// Records `event` and wakes the connection's task.
    pub fn signal(&self, event: u8) {
        self.events.fetch_or(event, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Makes `waker` the one [`Control::signal`] wakes. Register before [`Control::take`], so
    /// that no event is missed between the two.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Takes the events recorded since the last call.
    pub fn take(&self) -> u8 {
        self.events.swap(0, Ordering::AcqRel)
    }

    /// Moves the keep-alive deadline to `due` ([`clock_ms`]).
    pub fn set_keep_alive_due(&self, due: u64) {
        self.keep_alive_due.store(due, Ordering::Relaxed);
    }

    /// The keep-alive deadline ([`clock_ms`]; 0: none).
    pub fn keep_alive_due(&self) -> u64 {
        self.keep_alive_due.load(Ordering::Relaxed)
    }

    /// The reason of the last [`Control::kick`].
    pub fn kick_reason(&self) -> ReasonCode {
        ReasonCode(self.reason.load(Ordering::Acquire))
    }
}

/// The core wakes a connection through its session waker: that is its [`Control`].
impl Wake for Control {
    fn wake(&self) {
        self.signal(Self::QUEUE);
    }
}

/// Milliseconds since the process first asked: the clock of keep-alive deadlines.
pub fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How often the keep-alive deadlines are looked at: a client that went quiet is disconnected
/// within this much after 1.5 times its keep-alive.
const KEEP_ALIVE_TICK: Duration = Duration::from_millis(250);

/// The waker handed to a congested session: room there wakes the publisher's connection.
pub(crate) struct SpaceWake(pub(crate) Arc<Control>);

impl Wake for SpaceWake {
    fn wake(&self) {
        self.0.signal(Control::SPACE);
    }
}

/// The CONNECT user property that tags a session's metrics (AIO's `metriccategory`).
pub const CATEGORY_PROPERTY: &str = "metriccategory";
/// The category of clients that name none (AIO's default).
pub const UNCATEGORIZED: &str = "uncategorized";
/// Where clients go once [`MAX_CATEGORIES`] categories exist: each category is a metric series,
/// and clients must not be able to grow the scrape without bound.
pub const OTHER_CATEGORY: &str = "other";
/// The most distinct categories counted (besides `uncategorized` and `other`).
pub const MAX_CATEGORIES: usize = 64;
/// The longest category name kept; longer ones count as `uncategorized`.
pub const MAX_CATEGORY_LEN: usize = 64;

/// What the connections of one metric category did, since the broker started. The connection
/// tasks add to these; the metrics read them at scrape time.
#[derive(Debug, Default)]
pub struct CategoryStats {
    /// PUBLISH packets received from its clients and routed.
    pub publishes_received: AtomicU64,
    /// PUBLISH packets sent to its clients.
    pub publishes_sent: AtomicU64,
    /// Bytes read from its clients (whole packets).
    pub bytes_received: AtomicU64,
    /// Bytes written to its clients (whole packets).
    pub bytes_sent: AtomicU64,
}

impl CategoryStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Live connections, by id, the metric categories seen, and the security outcomes the
/// connection tasks count (`/metrics` exports them).
#[derive(Debug, Default)]
pub struct Registry {
    /// Authentication outcomes of this broker's connections (CONNECT and re-authentication on
    /// ports with a BrokerAuthentication).
    pub authentication: AuthenticationMetrics,
    /// Authorization decisions on ports with a BrokerAuthorization (CONNECT, each PUBLISH,
    /// each SUBSCRIBE filter).
    pub authorization: AuthorizationMetrics,
    next: AtomicU64,
    /// Whether the keep-alive watch runs.
    watching: AtomicBool,
    connections: RwLock<BTreeMap<ConnectionId, ConnectionInfo>>,
    categories: RwLock<BTreeMap<Arc<str>, Arc<CategoryStats>>>,
    /// Accepts that failed (out of file descriptors, most often), on every port.
    pub accept_failures: AtomicU64,
    /// Connections closed as soon as accepted because the process was out of descriptors.
    pub connections_shed: AtomicU64,
}

impl Registry {
    /// A fresh connection number.
    pub fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Starts (once) the keep-alive watch: a task that wakes every connection whose keep-alive
    /// deadline passed, for as long as the registry lives.
    pub fn watch_keep_alive(self: &Arc<Self>) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEEP_ALIVE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                let now = clock_ms();
                for c in registry.connections.read().values() {
                    let due = c.control.keep_alive_due();
                    if due != 0 && now >= due {
                        c.control.signal(Control::KEEP_ALIVE);
                    }
                }
            }
        });
    }

    /// Records a connection after CONNACK.
    pub fn insert(&self, info: ConnectionInfo) {
        self.connections.write().insert(info.id, info);
    }

    /// Ends (through [`Control::kick`]) every connection of `port`: the port closes or the
    /// broker shuts down.
    pub fn kick_port(&self, port: u16, reason: ReasonCode) {
        for c in self.connections.read().values() {
            if c.port == port {
                c.control.kick(reason);
            }
        }
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, id: ConnectionId) {
        self.connections.write().remove(&id);
    }

    /// A snapshot of every live connection, in connection order.
    pub fn snapshot(&self) -> Vec<ConnectionInfo> {
        self.connections.read().values().cloned().collect()
    }

    /// Number of live connections per port.
    pub fn per_port(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for c in self.connections.read().values() {
            *counts.entry(c.port).or_insert(0) += 1;
        }
        counts
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.connections.read().len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.connections.read().is_empty()
    }

    /// Counts an authentication outcome.
    pub fn count_authentication(&self, success: bool) {
        match success {
            true => self.authentication.successes.inc(),
            false => self.authentication.failures.inc(),
        };
    }

    /// Counts an accept that failed, and the connections shed because of it.
    pub fn count_accept_failure(&self, shed: u64) {
        self.accept_failures.fetch_add(1, Ordering::Relaxed);
        self.connections_shed.fetch_add(shed, Ordering::Relaxed);
    }

    /// Counts an authorization decision.
    pub fn count_authorization(&self, allowed: bool) {
        match allowed {
            true => self.authorization.allow.inc(),
            false => self.authorization.deny.inc(),
        };
    }

    /// The category a client's CONNECT user properties name (the first `metriccategory`), and
    /// its counters. No property, an empty one or one longer than [`MAX_CATEGORY_LEN`] is
    /// `uncategorized`; a new name past [`MAX_CATEGORIES`] is `other`.
    pub fn category(&self, user_properties: &[(String, String)]) -> (Arc<str>, Arc<CategoryStats>) {
        let named = user_properties
            .iter()
            .find(|(k, _)| k == CATEGORY_PROPERTY)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty() && v.chars().count() <= MAX_CATEGORY_LEN)
            .unwrap_or(UNCATEGORIZED);
        if let Some((name, stats)) = self.categories.read().get_key_value(named) {
            return (name.clone(), stats.clone());
        }
        let mut categories = self.categories.write();
        let counted = categories
            .keys()
            .filter(|k| !matches!(&***k, UNCATEGORIZED | OTHER_CATEGORY))
            .count();
        let name = if named == UNCATEGORIZED || counted < MAX_CATEGORIES {
            named
        } else {
            OTHER_CATEGORY
        };
        let (name, stats) = match categories.get_key_value(name) {
            Some((k, v)) => (k.clone(), v.clone()),
            None => {
                let key: Arc<str> = Arc::from(name);
                let stats = Arc::new(CategoryStats::default());
                categories.insert(key.clone(), stats.clone());
                (key, stats)
            }
        };
        (name, stats)
    }

    /// Every category seen since start, with its counters, by name.
    pub fn categories(&self) -> Vec<(Arc<str>, Arc<CategoryStats>)> {
        self.categories
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(v: &str) -> Vec<(String, String)> {
        vec![(CATEGORY_PROPERTY.to_owned(), v.to_owned())]
    }

    #[test]
    fn categories_are_named_by_the_user_property_and_bounded() {
        let r = Registry::default();
        assert_eq!(&*r.category(&[]).0, UNCATEGORIZED);
        assert_eq!(&*r.category(&prop("")).0, UNCATEGORIZED);
        assert_eq!(&*r.category(&prop(&"x".repeat(65))).0, UNCATEGORIZED);
        let (name, a) = r.category(&prop("plant-a"));
        assert_eq!(&*name, "plant-a");
        let (_, again) = r.category(&prop("plant-a"));
        assert!(Arc::ptr_eq(&a, &again));
        for i in 1..MAX_CATEGORIES {
            assert_eq!(&*r.category(&prop(&format!("c{i}"))).0, format!("c{i}"));
        }
        assert_eq!(&*r.category(&prop("one-too-many")).0, OTHER_CATEGORY);
        assert_eq!(&*r.category(&prop("plant-a")).0, "plant-a");
        assert_eq!(r.categories().len(), MAX_CATEGORIES + 2);
    }
}
