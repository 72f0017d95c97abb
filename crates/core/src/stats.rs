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
    /// SUBSCRIBE filters refused with 0x97: the session's subscriptions would cost more than
    /// `BrokerSettings::max_subscription_levels`.
    pub subscriptions_refused: AtomicU64,
    /// SUBSCRIBE filters subscribed without their retained messages: the packet's budget of
    /// retained topics to visit was spent (`RETAINED_VISITS_PER_QUEUED`).
    pub retained_lookups_skipped: AtomicU64,
    /// Drops and refusals, one counter per reason (`publish_dropped` is their sum for copies).
    pub drops: Drops,
}

/// Message copies dropped and new messages refused, by reason. Every drop of the broker is
/// counted in exactly one of these.
#[derive(Debug, Default)]
pub struct Drops {
    /// A copy not queued: the subscriber's queue was full (strategy `None`).
    pub queue_full: AtomicU64,
    /// A queued copy dropped to make room (strategy `DropOldest`).
    pub queue_oldest: AtomicU64,
    /// A QoS 0 copy for a session with no connection.
    pub offline_qos0: AtomicU64,
    /// A queued copy whose Message Expiry Interval passed before it was sent.
    pub expired: AtomicU64,
    /// A copy larger than the subscriber's Maximum Packet Size.
    pub too_large: AtomicU64,
    /// A new QoS 1/2 message refused with 0x97: past 75% of the in-flight PUBLISH budget.
    pub memory_budget: AtomicU64,
    /// A new QoS 0 message dropped: past 100% of the in-flight PUBLISH budget.
    pub memory_budget_qos0: AtomicU64,
    /// A new QoS 1/2 message refused with 0x97: the store is past `persistence.maxSize` (QoS 0
    /// messages are not stored, so they still flow).
    pub store_full: AtomicU64,
    /// A queued copy of a stalled or offline session dropped to bring the memory budget back
    /// under its threshold, so that the other clients' messages are not refused.
    pub reclaimed: AtomicU64,
    /// A CONNECT refused (0x97) because its will would take more memory than a session may
    /// hold (`QueueLimits::max_queued_bytes`).
    pub will_too_large: AtomicU64,
    /// A queued or in-flight copy that the principal resuming the session may not read (its
    /// grant went while the session had no connection).
    pub not_authorized: AtomicU64,
}

impl Drops {
    /// Every counter with its reason label, for metrics.
    pub fn by_reason(&self) -> [(&'static str, u64); 11] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("queue_full", get(&self.queue_full)),
            ("queue_drop_oldest", get(&self.queue_oldest)),
            ("offline_qos0", get(&self.offline_qos0)),
            ("expired", get(&self.expired)),
            ("too_large", get(&self.too_large)),
            ("memory_budget", get(&self.memory_budget)),
            ("memory_budget_qos0", get(&self.memory_budget_qos0)),
            ("store_full", get(&self.store_full)),
            ("memory_reclaim", get(&self.reclaimed)),
            ("will_too_large", get(&self.will_too_large)),
            ("not_authorized", get(&self.not_authorized)),
        ]
    }
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
