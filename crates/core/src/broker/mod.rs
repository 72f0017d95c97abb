//! The broker: the session registry, the shared subscription index and retained store, and the
//! router that fans a published message out to the sessions' queues.
//!
//! There is no router task: the publisher's connection task routes its own messages by calling
//! [`Broker::publish`], so routing runs on as many cores as there are busy connections.
//!
//! One file per flow: `connect` (attach, takeover, clean start, disconnect), `subscribe`,
//! `route` (admission and PUBLISH), `tick` (wills, session and retained expiry, `$SYS`) and
//! `restore`. The broker asks a session for what it needs through the session's methods; the
//! session's state is the session module's own.

mod connect;
mod handoff;
mod restore;
mod route;
mod subscribe;
#[cfg(test)]
mod tests;
mod tick;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use wardgate_protocol::{
    PacketId, ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubscriptionFilter, SubscriptionOptions, TopicFilter, TopicName, Will,
};

use crate::budget::{Budget, Charge};
use crate::fabric::{ArmedWill, Fabric};
use crate::ids::SessionId;
use crate::message::{Delivery, Message, SharedRef, will_weight};
use crate::retained::RetainedStore;
use crate::session::{
    Enqueued, Qos2Admission, QueueLimits, Session, SessionEntryCheck, Subscribed, stored,
};
use crate::stats::Stats;
use crate::store::{Op, PersistenceSettings, Recovered, Store, SubscriptionEntry};
use crate::subscriptions::{Subscriber, SubscriptionIndex};
use crate::wake::Wake;

/// How often, at most, [`Broker::admit`] trims slow consumers' queues for the memory budget.
pub const RECLAIM_INTERVAL: Duration = Duration::from_millis(50);

/// Broker-wide settings the core enforces.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Queue bounds for every session.
    pub queue: QueueLimits,
    /// Cap on Session Expiry Interval, in seconds.
    pub max_session_expiry: u32,
    /// Cap on Message Expiry Interval, in seconds (`None`: no cap).
    pub max_message_expiry: Option<u32>,
    /// How often `$SYS/broker/...` statistics are published.
    pub sys_interval: Duration,
    /// The memory budget for in-flight PUBLISH data, in bytes (`u64::MAX`: none). Past 75% of
    /// it new QoS 1/2 messages are refused with 0x97; past 100% QoS 0 messages are dropped.
    pub publish_budget: u64,
    /// What is persisted when the broker has a store.
    pub persistence: PersistenceSettings,
    /// The most a session's subscriptions may cost, in levels (the sum over its filters of
    /// [`TopicFilter::levels`]): a wildcard filter's level is a node of the index (about 80 bytes
    /// for `+`, 450 for a literal level), so this bounds the index memory one client can take.
    /// A SUBSCRIBE filter past it is refused with 0x97 (v3.1.1: 0x80) and counted in
    /// [`Stats::subscriptions_refused`]. [`DEFAULT_MAX_SUBSCRIPTION_LEVELS`] by default.
    pub max_subscription_levels: u64,
}

/// The default of [`BrokerSettings::max_subscription_levels`] (and the Medium memory profile's):
/// 100,000 filters of 10 levels, or 100 of 10,000 levels (at most about 450 MB of index for
/// literal levels, 80 MB for `+`; unbounded, one 64 MiB SUBSCRIBE could ask for 15 GB).
pub const DEFAULT_MAX_SUBSCRIPTION_LEVELS: u64 = 1_000_000;

/// The retained topics one SUBSCRIBE packet may visit, per message its session's queue may
/// hold ([`QueueLimits::max_queued`]): its filters' retained lookups share that budget, and the
/// filters after it is spent get no retained messages (their subscriptions stand), each counted
/// in [`Stats::retained_lookups_skipped`]. More than the queue can take would be dropped by the
/// queue's strategy anyway; the margin is for filters that visit topics they do not match.
pub const RETAINED_VISITS_PER_QUEUED: usize = 4;

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            queue: QueueLimits::default(),
            max_session_expiry: u32::MAX,
            max_message_expiry: None,
            sys_interval: Duration::from_secs(10),
            publish_budget: u64::MAX,
            persistence: PersistenceSettings::default(),
            max_subscription_levels: DEFAULT_MAX_SUBSCRIPTION_LEVELS,
        }
    }
}

/// Why a new message was refused before it was routed (PUBACK/PUBREC 0x97 for QoS 1/2; QoS 0
/// messages are dropped). Each refusal is counted in [`Stats::drops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The in-flight PUBLISH budget of the memory profile is used up.
    MemoryBudget,
    /// The store is past `persistence.maxSize`.
    StoreFull,
}

impl Refusal {
    /// The reason code for PUBACK/PUBREC: Quota exceeded.
    pub fn reason_code(self) -> ReasonCode {
        ReasonCode::QUOTA_EXCEEDED
    }
}

/// What a connection asks for when it attaches to a session.
#[derive(Debug)]
pub struct ConnectParams {
    /// The client identifier; empty means "assign one" (checked by the caller for v3.1.1).
    pub client_id: String,
    /// Clean Start (v5) / Clean Session (v3.1.1).
    pub clean_start: bool,
    /// Session Expiry Interval asked for (v3.1.1: 0 when clean, `u32::MAX` when persistent).
    pub session_expiry: u32,
    /// Protocol version of the connection.
    pub protocol: ProtocolVersion,
    /// The client's Receive Maximum.
    pub receive_maximum: u16,
    /// The will, if any.
    pub will: Option<Will>,
    /// Who authentication says the client is (its principal, e.g. `UsernamePassword:alice`);
    /// `None` when unknown. A session remembers the principal that created it and is resumed
    /// only by that principal: another one gets a new session (Session Present 0).
    pub principal: Option<Arc<str>>,
    /// Wakes the connection task.
    pub waker: Arc<dyn Wake>,
}

/// A connection attached to its session.
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub session: Arc<Session>,
    /// This connection's generation within the session (to detect takeover).
    pub generation: u64,
    /// Whether an existing session was resumed (CONNACK Session Present).
    pub session_present: bool,
    /// The identifier the broker assigned, when the client sent none.
    pub assigned_client_id: Option<String>,
    /// The Session Expiry Interval granted (after the cap).
    pub session_expiry: u32,
}

/// How a connection ended, for will and session-expiry handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// DISCONNECT 0x00: discard the will. `session_expiry` is DISCONNECT's update, if any.
    Normal { session_expiry: Option<u32> },
    /// DISCONNECT 0x04, or any other reason: publish the will. The client's update is honoured.
    WithWill { session_expiry: Option<u32> },
    /// The network connection was lost, or the server closed it: publish the will.
    Lost,
}

/// The result of one SUBSCRIBE filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeResult {
    /// Refused: the session's subscriptions would cost more than
    /// [`BrokerSettings::max_subscription_levels`] (SUBACK 0x97). Nothing else was done.
    pub quota_exceeded: bool,
    /// Whether it replaced an existing subscription of the session to the same filter.
    pub existed: bool,
    /// Its retained messages were not looked up: the SUBSCRIBE's retained budget was spent.
    pub retained_skipped: bool,
    /// Retained messages queued for it.
    pub retained_sent: usize,
    /// Retained messages its queue had no room for: dropped by the queue's strategy (or
    /// replacing older queued ones under `DropOldest`) and counted in [`Stats::drops`].
    pub retained_dropped: usize,
}

/// What [`Broker::restore`] brought back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Sessions restored.
    pub sessions: usize,
    /// Sessions that had expired while the broker was down (removed).
    pub expired: usize,
    /// Queued and in-flight copies.
    pub messages: usize,
    /// Retained messages.
    pub retained: usize,
    /// Wills published at start (connections the restart cut, delays that passed).
    pub wills: usize,
}

/// The result of routing one message.
#[derive(Debug, Default)]
pub struct RouteResult {
    /// Sessions the message was queued for.
    pub delivered: usize,
    /// Sessions that dropped it (queue full or offline QoS 0).
    pub dropped: usize,
    /// A queue past its congestion threshold, for the publisher to wait on.
    pub congested: Option<Arc<Session>>,
}

impl RouteResult {
    /// Every matching queue dropped the message (and at least one matched): it was not taken,
    /// and is never acknowledged as delivered (v5: 0x97).
    pub fn refused(&self) -> bool {
        self.delivered == 0 && self.dropped > 0
    }
}

/// The broker core. Shared as `Arc<Broker>` by every connection task.
#[derive(Debug)]
pub struct Broker {
    settings: ArcSwap<BrokerSettings>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    index: RwLock<SubscriptionIndex>,
    retained: RwLock<RetainedStore>,
    stats: Arc<Stats>,
    budget: Arc<Budget>,
    store: Option<Arc<dyn Store>>,
    /// The cluster, when this node is one of several ([`Broker::join`]).
    fabric: OnceLock<Arc<dyn Fabric>>,
    next_session: AtomicU64,
    started: Instant,
    last_sys: Mutex<Option<Instant>>,
    /// When slow consumers' queues were last trimmed for the memory budget ([`Broker::reclaim`]).
    last_reclaim: Mutex<Option<Instant>>,
    sys_source: Mutex<Option<SysSource>>,
}

/// More `$SYS` topics and payloads, computed at each `$SYS` interval by whoever knows them (the
/// server: per-port client counts).
pub type SysTopics = dyn Fn() -> Vec<(String, String)> + Send + Sync;

#[derive(Clone)]
struct SysSource(Arc<SysTopics>);

impl std::fmt::Debug for SysSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SysSource")
    }
}

/// Which of this node's subscribers a message from another node is for
/// ([`Broker::publish_remote`]).
#[derive(Debug, Clone, Copy)]
pub enum RemoteScope<'a> {
    /// Every matching plain subscription (shared groups get the message through their own
    /// scope: the cluster picks one node per group).
    Subscribers,
    /// One member of the shared group `group` on `filter` (the cluster picked this node).
    Group {
        /// The group's name.
        group: &'a str,
        /// The group's filter.
        filter: &'a TopicFilter,
    },
}

/// Where a routed message goes.
#[derive(Debug, Clone, Copy)]
enum Reach<'a> {
    /// This node's subscribers only (`$SYS`, the self-check): every matching shared group picks
    /// a local member.
    Node,
    /// Every node: this node's subscribers, then the fabric (a client's message, a will). In a
    /// cluster, shared groups are left to the fabric, which picks one node per group.
    Cluster,
    /// A message from another node.
    Remote(RemoteScope<'a>),
}

struct Target {
    session: Arc<Session>,
    qos: QoS,
    retain_as_published: bool,
    id: Option<u32>,
    shared: Option<SharedRef>,
}

impl Target {
    /// `sub`, the member of `group` picked for a message.
    fn member(sub: &Subscriber, group: &crate::subscriptions::SharedGroup) -> Target {
        Target {
            session: sub.session.clone(),
            qos: sub.options.qos,
            retain_as_published: sub.options.retain_as_published,
            id: sub.id,
            shared: Some(SharedRef {
                group: group.name.clone(),
                filter: group.filter.clone(),
            }),
        }
    }
}

impl Broker {
    /// Creates a broker with `settings` and no persistence.
    pub fn new(settings: BrokerSettings) -> Self {
        Self::build(settings, None)
    }

    /// Creates a broker that keeps its state in `store` (fill it with [`Broker::restore`]
    /// before serving).
    pub fn with_store(settings: BrokerSettings, store: Arc<dyn Store>) -> Self {
        Self::build(settings, Some(store))
    }

    fn build(settings: BrokerSettings, store: Option<Arc<dyn Store>>) -> Self {
        Self {
            store,
            fabric: OnceLock::new(),
            budget: Budget::new(settings.publish_budget),
            settings: ArcSwap::from_pointee(settings),
            sessions: Mutex::new(HashMap::new()),
            index: RwLock::new(SubscriptionIndex::default()),
            retained: RwLock::new(RetainedStore::default()),
            stats: Arc::new(Stats::default()),
            next_session: AtomicU64::new(1),
            started: Instant::now(),
            last_sys: Mutex::new(None),
            last_reclaim: Mutex::new(None),
            sys_source: Mutex::new(None),
        }
    }

    /// Publishes `source`'s topics (retained, QoS 0) with the broker's own `$SYS/broker/...`
    /// statistics at every `$SYS` interval. Replaces an earlier source.
    pub fn set_sys_source(&self, source: Arc<SysTopics>) {
        *self.sys_source.lock() = Some(SysSource(source));
    }

    /// The broker's current settings.
    pub fn settings(&self) -> Arc<BrokerSettings> {
        self.settings.load_full()
    }

    /// Replaces the settings. They apply to sessions created from now on, and to caps checked
    /// from now on (session and message expiry); existing queues keep their bounds.
    pub fn update_settings(&self, settings: BrokerSettings) {
        self.budget.set_limit(settings.publish_budget);
        self.settings.store(Arc::new(settings));
    }

    /// Bytes of in-flight PUBLISH data charged against the memory budget now.
    pub fn publish_budget_used(&self) -> u64 {
        self.budget.used()
    }

    /// Counters for `$SYS` and metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The store, when persistence is on.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Makes this broker a node of a cluster: from now on the messages its clients publish and
    /// its wills go to `fabric` too, its acknowledgements wait for the fabric's tickets, and the
    /// fabric learns every filter its sessions subscribe to (the ones held now at once). Call
    /// once, before serving; a second call is refused with the fabric given.
    pub fn join(&self, fabric: Arc<dyn Fabric>) -> Result<(), Arc<dyn Fabric>> {
        self.fabric.set(fabric.clone())?;
        let held: Vec<SubscriptionFilter> = {
            let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
            sessions
                .iter()
                .flat_map(|s| s.subscription_filters())
                .collect()
        };
        for filter in &held {
            fabric.interest(filter, true);
        }
        Ok(())
    }

    /// The cluster this node belongs to, if any.
    pub fn fabric(&self) -> Option<&Arc<dyn Fabric>> {
        self.fabric.get()
    }

    /// The session registered for `client_id`.
    pub fn session(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(client_id).cloned()
    }

    /// Number of sessions, connected or not.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Payload bytes of the retained messages.
    pub fn retained_bytes(&self) -> usize {
        self.retained.read().bytes()
    }

    /// Wills held by sessions (of live connections, or waiting for their delay): how many, and
    /// their payload bytes. Visits every session; meant for scrapes, not the publish path.
    pub fn wills(&self) -> (usize, usize) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        sessions
            .iter()
            .filter_map(|s| s.will_bytes())
            .fold((0, 0), |(n, bytes), b| (n + 1, bytes + b))
    }

    /// Caps a Message Expiry Interval at the broker's maximum.
    pub fn cap_message_expiry(&self, interval: Option<u32>) -> Option<u32> {
        match (interval, self.settings.load().max_message_expiry) {
            (Some(i), Some(max)) => Some(i.min(max)),
            (None, Some(max)) => Some(max),
            (i, None) => i,
        }
    }
}
