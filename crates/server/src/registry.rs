//! The registry of live connections: who is connected where, for the admin API, `status`,
//! metrics, and re-checking clients when the authorization policy changes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use wardgate_core::Session;
use wardgate_protocol::ProtocolVersion;
use wardgate_protocol::ReasonCode;
use wardgate_security::authn::Identity;

use crate::wake::{Control, clock_ms};

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

/// How often the keep-alive deadlines are looked at: a client that went quiet is disconnected
/// within this much after 1.5 times its keep-alive.
const KEEP_ALIVE_TICK: Duration = Duration::from_millis(250);

/// Live connections, by id, and the watch of their keep-alive deadlines.
#[derive(Debug, Default)]
pub struct Registry {
    next: AtomicU64,
    /// Whether the keep-alive watch runs.
    watching: AtomicBool,
    connections: RwLock<BTreeMap<ConnectionId, ConnectionInfo>>,
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
                    c.control.watch_keep_alive(now);
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
}
