//! The registry of live connections: who is connected where, for the admin API, `status`,
//! metrics, and re-checking clients when the authorization policy changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use wardgate_core::Session;
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
    /// The MQTT client identifier (assigned or sent).
    pub client_id: Arc<str>,
    /// The user name the client is known by (CONNECT's, or the certificate CN once X.509
    /// authentication exists).
    pub username: Option<String>,
    /// Authorization attributes from authentication.
    pub attributes: BTreeMap<String, String>,
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
    /// Who authentication says the client is (what authorization decides from).
    pub identity: Arc<Identity>,
    /// Lets the broker end the connection with a reason (policy changes).
    pub control: Arc<Control>,
    /// Its metric category (the CONNECT user property `metriccategory`).
    pub category: Arc<str>,
}

/// A handle to end a live connection from outside its task.
#[derive(Debug, Default)]
pub struct Control {
    notify: Notify,
    reason: Mutex<Option<ReasonCode>>,
}

impl Control {
    /// Asks the connection to send DISCONNECT `reason` (v5) and close.
    pub fn kick(&self, reason: ReasonCode) {
        *self.reason.lock() = Some(reason);
        self.notify.notify_one();
    }

    /// Waits until [`Control::kick`] is called; returns its reason.
    pub async fn kicked(&self) -> ReasonCode {
        loop {
            if let Some(reason) = *self.reason.lock() {
                return reason;
            }
            self.notify.notified().await;
        }
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
    connections: RwLock<BTreeMap<ConnectionId, ConnectionInfo>>,
    categories: RwLock<BTreeMap<Arc<str>, Arc<CategoryStats>>>,
}

impl Registry {
    /// A fresh connection number.
    pub fn next_id(&self) -> ConnectionId {
        ConnectionId(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Records a connection after CONNACK.
    pub fn insert(&self, info: ConnectionInfo) {
        self.connections.write().insert(info.id, info);
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
