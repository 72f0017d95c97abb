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

/// Live connections, by id.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU64,
    connections: RwLock<BTreeMap<ConnectionId, ConnectionInfo>>,
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
}
