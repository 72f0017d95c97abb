//! The broker: the session registry, the shared subscription index and retained store, and the
//! router that fans a published message out to the sessions' queues.
//!
//! There is no router task: the publisher's connection task routes its own messages by calling
//! [`Broker::publish`], so routing runs on as many cores as there are busy connections.

mod lifecycle;
mod route;
mod subscribe;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use wardgate_protocol::{
    PacketId, ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling,
    SubscriptionOptions, TopicFilter, TopicName, Will,
};

use crate::budget::{Budget, Charge};
use crate::ids::SessionId;
use crate::message::{Delivery, Message, SharedRef, will_weight};
use crate::retained::RetainedStore;
use crate::session::{Enqueued, Qos2Admission, QueueLimits, Session, SessionEntryCheck, stored};
use crate::stats::Stats;
use crate::store::{Op, PersistenceSettings, Recovered, Store, SubscriptionEntry, Ticket};
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
    /// [`subscription_cost`]): a wildcard filter's level is a node of the index (about 80 bytes
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

/// What one SUBSCRIBE filter costs against [`BrokerSettings::max_subscription_levels`]: its
/// levels (`$share/<group>/` included), whether or not it has wildcards.
pub fn subscription_cost(filter: &TopicFilter) -> u64 {
    filter.as_str().bytes().filter(|&b| b == b'/').count() as u64 + 1
}

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

struct Target {
    session: Arc<Session>,
    qos: QoS,
    retain_as_published: bool,
    id: Option<u32>,
    shared: Option<SharedRef>,
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

    /// Decides whether a new client message of `qos` with `bytes` of payload may be routed.
    /// Call it before [`Broker::publish`] for messages from clients (not for retransmissions of
    /// a QoS 2 message already routed); a refusal is counted here.
    pub fn admit(&self, qos: QoS, bytes: usize) -> Result<(), Refusal> {
        let bytes = bytes as u64;
        let drops = &self.stats.drops;
        if qos != QoS::AtMostOnce
            && let Some(store) = &self.store
            && store.is_full()
        {
            drops.store_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::StoreFull);
        }
        let (percent, counter) = if qos == QoS::AtMostOnce {
            (100, &drops.memory_budget_qos0)
        } else {
            (75, &drops.memory_budget)
        };
        if self.budget.would_pass(bytes, percent) && !self.reclaim(bytes, percent) {
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MemoryBudget);
        }
        Ok(())
    }

    /// Whether a CONNECT's will may be held: a will becomes a message its session queues, so it
    /// may take at most what a session may hold ([`QueueLimits::max_queued_bytes`]; payload,
    /// topic and properties, [`will_weight`]). A refusal (CONNACK 0x97) is counted here.
    pub fn admit_will(&self, will: &Will) -> bool {
        let fits = will_weight(will) <= self.settings.load().queue.max_queued_bytes;
        if !fits {
            self.stats
                .drops
                .will_too_large
                .fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// A slow consumer pays for its own backlog, not the other clients: when the memory budget
    /// is past a threshold, the queues of the sessions that are not being drained (stalled, or
    /// without a connection) are trimmed, each to an equal part of a quarter of the budget, by
    /// their overflow policy, before a new message is refused. In-flight copies are never
    /// dropped. At most once per [`RECLAIM_INTERVAL`] (it visits every session). Returns
    /// whether `bytes` more now stay within `percent`.
    fn reclaim(&self, bytes: u64, percent: u64) -> bool {
        let now = Instant::now();
        {
            let mut last = self.last_reclaim.lock();
            if last.is_some_and(|t| now.saturating_duration_since(t) < RECLAIM_INTERVAL) {
                return false;
            }
            *last = Some(now);
        }
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        let slow: Vec<(u64, Arc<Session>)> = sessions
            .into_iter()
            .filter_map(|s| s.reclaimable(now).map(|held| (held, s)))
            .collect();
        if slow.is_empty() {
            return false;
        }
        let share = self.budget.limit() / 4 / slow.len() as u64;
        let shed: u64 = slow
            .iter()
            .filter(|(held, _)| *held > share)
            .map(|(_, s)| s.shed_to(share))
            .sum();
        if shed > 0 {
            self.stats
                .drops
                .reclaimed
                .fetch_add(shed, Ordering::Relaxed);
            self.stats
                .publish_dropped
                .fetch_add(shed, Ordering::Relaxed);
        }
        !self.budget.would_pass(bytes, percent)
    }

    /// Counters for `$SYS` and metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The store, when persistence is on.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Attaches a connection to its session, creating, resuming or replacing it. A connection
    /// already attached to the session is told to go with DISCONNECT 0x8E (session taken over).
    pub fn connect(&self, params: ConnectParams, now: Instant) -> Attached {
        self.connect_with_properties(params, &[], now)
    }

    /// [`Broker::connect`] with the CONNECT's user properties, which may ask for the session's
    /// queue to be persisted (`aio-persistence: true`, the `dynamic` policy). With persistence
    /// on, the session's record (and the removal of a session it replaces) is written before
    /// this returns: the CONNACK waits for [`Session::ticket`].
    pub fn connect_with_properties(
        &self,
        params: ConnectParams,
        user_properties: &[(String, String)],
        now: Instant,
    ) -> Attached {
        let assigned_client_id = params.client_id.is_empty().then(|| self.assign_client_id());
        let client_id: Arc<str> =
            Arc::from(assigned_client_id.as_deref().unwrap_or(&params.client_id));
        let session_expiry = params
            .session_expiry
            .min(self.settings.load().max_session_expiry);

        let mut sessions = self.sessions.lock();
        let existing = sessions.get(&client_id).cloned();
        let (session, session_present) = match existing {
            Some(old) if !params.clean_start && old.resumable_by(params.principal.as_deref()) => {
                (old, true)
            }
            Some(old) => {
                // Clean start replaces the old session, and so does a connection that may not
                // resume it: a session with Session Expiry 0 ends with its network connection
                // [MQTT-3.1.2-6], and one created by another principal is not handed over.
                // Its subscriptions go, its connection is kicked, and its will (if any) fires
                // since that session ends now.
                let will = old.retire();
                let fresh = self.new_session(client_id.clone(), params.protocol);
                sessions.insert(client_id.clone(), fresh.clone());
                drop(sessions);
                if let Some(ticket) = self.drop_stored(&old) {
                    fresh.note_ticket(ticket);
                }
                self.drop_subscriptions(&old);
                if let Some(will) = will {
                    self.publish_will(will, Some(old.id()), now);
                }
                sessions = self.sessions.lock();
                (fresh, false)
            }
            None => {
                let fresh = self.new_session(client_id.clone(), params.protocol);
                sessions.insert(client_id.clone(), fresh.clone());
                (fresh, false)
            }
        };
        drop(sessions);

        let (generation, old_will) = session.attach(
            params.waker,
            params.receive_maximum,
            ReasonCode::SESSION_TAKEN_OVER,
        );
        let persistence = self.settings.load().persistence.clone();
        let pending_will =
            {
                let mut st = session.state.lock();
                if st.owner.is_none() {
                    // A new session, or one stored before sessions remembered their principal.
                    st.owner = params.principal;
                }
                st.protocol = params.protocol;
                st.expiry_interval = session_expiry;
                st.will = params.will.map(Box::new);
                // A reconnection within the will delay cancels the will [MQTT-3.1.3-9].
                let pending = st.pending_will.take();
                if self.store.is_some() {
                    let was_stored = st.stored;
                    let had_subs = st.persist_subs;
                    st.stored = session_expiry > 0 || st.will.is_some();
                    st.persist_subs = session_expiry > 0;
                    // Switching a queue's persistence off takes a clean start (AIO).
                    let persist_queue = session_expiry > 0
                        && (st.persist_queue
                            || persistence.persists_queue(&client_id, user_properties));
                    session.set_persist_queue(&mut st, persist_queue);
                    if st.stored {
                        let record = session.record(&st);
                        let mut ops = vec![Op::Session(&record)];
                        if st.persist_subs && !had_subs {
                            // A live session taken over with a session expiry now.
                            ops.extend(st.subscriptions.iter().map(|(filter, entry)| {
                                Op::Subscribe {
                                    session: session.id(),
                                    filter,
                                    entry: *entry,
                                }
                            }));
                        }
                        session.write(&ops);
                    } else if was_stored {
                        session.write(&[Op::DropSession(session.id())]);
                    }
                }
                pending
            };
        drop(pending_will);
        // Takeover: the old connection's will is sent only if it had no delay [MQTT-3.1.3-9].
        if let Some(will) = old_will
            && will.properties.will_delay_interval.unwrap_or(0) == 0
        {
            self.publish_will(will, Some(session.id()), now);
        }
        self.stats.clients_total.fetch_add(1, Ordering::Relaxed);
        self.stats.connected(1);
        Attached {
            session,
            generation,
            session_present,
            assigned_client_id,
            session_expiry,
        }
    }

    /// Detaches a connection that ended. Publishes or schedules its will, ends the session if
    /// its expiry is zero, and hands shared-subscription messages it had not acknowledged to
    /// other members of their groups.
    pub fn disconnect(
        &self,
        session: &Arc<Session>,
        generation: u64,
        how: Disconnect,
        now: Instant,
    ) {
        if !session.detach(generation, now) {
            // Taken over: the new connection owns the session; the takeover handled the will.
            self.stats.connected(-1);
            return;
        }
        self.stats.connected(-1);
        let (expiry, will) = {
            let mut st = session.state.lock();
            let update = match how {
                Disconnect::Normal { session_expiry } | Disconnect::WithWill { session_expiry } => {
                    session_expiry
                }
                Disconnect::Lost => None,
            };
            if let Some(e) = update {
                st.expiry_interval = e.min(self.settings.load().max_session_expiry);
            }
            let will = st.will.take().map(|w| *w);
            let will = if matches!(how, Disconnect::Normal { .. }) {
                None
            } else {
                will
            };
            (st.expiry_interval, will)
        };
        if let Some(will) = will {
            let delay = will.properties.will_delay_interval.unwrap_or(0);
            if delay == 0 || expiry == 0 {
                self.publish_will(will, Some(session.id()), now);
            } else {
                let at = now + Duration::from_secs(u64::from(delay.min(expiry)));
                session.state.lock().pending_will = Some(Box::new((at, will)));
            }
        }
        self.redistribute_shared(session, now);
        if expiry == 0 {
            self.end_session(session);
        } else {
            session.write_record();
        }
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

    /// A fresh client identifier for a client that sent none (MQTT 5 Assigned Client
    /// Identifier).
    pub fn assign_client_id(&self) -> String {
        let n = self.next_session.load(Ordering::Relaxed);
        let nanos = self.started.elapsed().as_nanos() as u64;
        format!(
            "wardgate-{:016x}",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos
        )
    }
}
