//! Broker-wide counters: the source of `$SYS/broker/...` topics (Mosquitto's names) and metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Counters updated lock-free from every connection task.
#[derive(Debug, Default)]
pub struct Stats {
    /// Clients connected now.
    pub clients_connected: AtomicI64,
    /// The most clients connected at once.
    pub clients_maximum: AtomicI64,
    /// Connections accepted since start.
    pub clients_total: AtomicU64,
    /// PUBLISH packets received from clients (and wills and `$SYS` updates routed).
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
    /// Message copies dropped (queue full, offline QoS 0, expired, too large for the client).
    pub publish_dropped: AtomicU64,
    /// Subscriptions in the index.
    pub subscriptions: AtomicU64,
    /// Retained topics.
    pub retained: AtomicU64,
    /// Wills published.
    pub wills_sent: AtomicU64,
}

impl Stats {
    /// Adjusts the connected-clients gauge and its high-water mark.
    pub fn connected(&self, delta: i64) {
        let now = self.clients_connected.fetch_add(delta, Ordering::Relaxed) + delta;
        self.clients_maximum.fetch_max(now, Ordering::Relaxed);
    }

    /// The `$SYS/broker/...` topics and their payloads, with Mosquitto's names where it has them.
    pub fn sys_topics(&self, uptime: Duration) -> Vec<(String, String)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let connected = self.clients_connected.load(Ordering::Relaxed).max(0);
        vec![
            (
                "$SYS/broker/version".into(),
                format!("wardgate {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "$SYS/broker/uptime".into(),
                format!("{} seconds", uptime.as_secs()),
            ),
            (
                "$SYS/broker/clients/connected".into(),
                connected.to_string(),
            ),
            ("$SYS/broker/clients/active".into(), connected.to_string()),
            (
                "$SYS/broker/clients/maximum".into(),
                self.clients_maximum.load(Ordering::Relaxed).to_string(),
            ),
            ("$SYS/broker/clients/total".into(), get(&self.clients_total)),
            (
                "$SYS/broker/messages/received".into(),
                get(&self.messages_received),
            ),
            ("$SYS/broker/messages/sent".into(), get(&self.messages_sent)),
            (
                "$SYS/broker/publish/messages/received".into(),
                get(&self.messages_received),
            ),
            (
                "$SYS/broker/publish/messages/sent".into(),
                get(&self.messages_sent),
            ),
            (
                "$SYS/broker/publish/messages/dropped".into(),
                get(&self.publish_dropped),
            ),
            (
                "$SYS/broker/bytes/received".into(),
                get(&self.bytes_received),
            ),
            ("$SYS/broker/bytes/sent".into(), get(&self.bytes_sent)),
            (
                "$SYS/broker/subscriptions/count".into(),
                get(&self.subscriptions),
            ),
            (
                "$SYS/broker/retained messages/count".into(),
                get(&self.retained),
            ),
        ]
    }
}
