//! What the connection tasks and the accept loops count, for `/metrics` to export: security
//! outcomes, the traffic of each metric category, and accepts that failed. One
//! [`ConnectionStats`] per broker, shared by its ports and read by its metrics at scrape time;
//! it knows nothing of the connections themselves (that is the registry).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;

/// Authentication outcomes. The connection tasks increment them (through
/// [`ConnectionStats::count_authentication`]); the metrics export the same handles.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationMetrics {
    /// `wardgate_authentication_successes_total` (AIO `aio_broker_authentication_successes`).
    pub successes: Counter,
    /// `wardgate_authentication_failures_total` (AIO `aio_broker_authentication_failures`).
    pub failures: Counter,
}

/// Authorization decisions. The connection tasks increment them (through
/// [`ConnectionStats::count_authorization`]); the metrics export the same handles.
#[derive(Debug, Clone, Default)]
pub struct AuthorizationMetrics {
    /// `wardgate_authorization_allow_total` (AIO `aio_broker_authorization_allow`).
    pub allow: Counter,
    /// `wardgate_authorization_deny_total` (AIO `aio_broker_authorization_deny`).
    pub deny: Counter,
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

/// The counts of one broker's connections, since it started.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Authentication outcomes of this broker's connections (CONNECT and re-authentication on
    /// ports with a BrokerAuthentication).
    pub authentication: AuthenticationMetrics,
    /// Authorization decisions on ports with a BrokerAuthorization (CONNECT, each PUBLISH,
    /// each SUBSCRIBE filter).
    pub authorization: AuthorizationMetrics,
    categories: RwLock<BTreeMap<Arc<str>, Arc<CategoryStats>>>,
    /// Accepts that failed (out of file descriptors, most often), on every port.
    pub accept_failures: AtomicU64,
    /// Connections closed as soon as accepted because the process was out of descriptors.
    pub connections_shed: AtomicU64,
}

impl ConnectionStats {
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
        let r = ConnectionStats::default();
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
