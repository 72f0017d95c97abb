//! The broker: the session registry, the shared subscription index and retained store, and the
//! router that fans a published message out to the sessions' queues.
//!
//! There is no router task: the publisher's connection task routes its own messages by calling
//! [`Broker::publish`], so routing runs on as many cores as there are busy connections.

use std::collections::HashMap;
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
use crate::message::{Delivery, Message, SharedRef, will_weight};
use crate::retained::RetainedStore;
use crate::session::{
    Enqueued, QueueLimits, Session, SessionEntryCheck, SessionId, SubscriptionEntry, Wake, stored,
};
use crate::stats::Stats;
use crate::store::{Op, PersistenceSettings, Recovered, Store, Ticket};
use crate::subscriptions::{Subscriber, SubscriptionIndex};

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

    /// Subscribes `session` to `filter` (which may be `$share/<group>/<filter>`), then queues the
    /// retained messages its Retain Handling asks for (never for shared subscriptions).
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &TopicFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
        now: Instant,
    ) -> SubscribeResult {
        let mut unbounded = usize::MAX;
        self.subscribe_within(session, filter, options, id, now, &mut unbounded)
    }

    /// The retained topics one SUBSCRIBE may visit ([`RETAINED_VISITS_PER_QUEUED`]), for
    /// [`Broker::subscribe_within`].
    pub fn retained_budget(&self) -> usize {
        self.settings
            .load()
            .queue
            .max_queued
            .saturating_mul(RETAINED_VISITS_PER_QUEUED)
    }

    /// [`Broker::subscribe`] for one filter of a SUBSCRIBE whose retained lookups share
    /// `retained_budget` ([`Broker::retained_budget`]): when it is spent, the subscription is
    /// made but its retained messages are not looked up (`retained_skipped`).
    pub fn subscribe_within(
        &self,
        session: &Arc<Session>,
        filter: &TopicFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
        now: Instant,
        retained_budget: &mut usize,
    ) -> SubscribeResult {
        let shared = filter.shared().ok().flatten();
        let entry = SubscriptionEntry { options, id };
        let existed = {
            let mut st = session.state.lock();
            if !st.subscriptions.contains_key(filter) {
                // A replaced subscription (same filter) costs what it already cost.
                let cost = subscription_cost(filter);
                let limit = self.settings.load().max_subscription_levels;
                if st.subscription_levels.saturating_add(cost) > limit {
                    self.stats
                        .subscriptions_refused
                        .fetch_add(1, Ordering::Relaxed);
                    return SubscribeResult {
                        quota_exceeded: true,
                        existed: false,
                        retained_skipped: false,
                        retained_sent: 0,
                        retained_dropped: 0,
                    };
                }
                st.subscription_levels += cost;
            }
            if st.persist_subs {
                // SUBACK waits for this.
                session.write(&[Op::Subscribe {
                    session: session.id(),
                    filter,
                    entry,
                }]);
            }
            st.subscriptions.insert(filter.clone(), entry).is_some()
        };
        let sub = Subscriber {
            session: session.clone(),
            options,
            id,
        };
        {
            let mut index = self.index.write();
            match &shared {
                Some(s) => index.insert(&s.filter, Some(&s.group), sub),
                None => index.insert(filter, None, sub),
            };
            self.stats
                .subscriptions
                .store(index.len() as u64, Ordering::Relaxed);
        }
        let send_retained = shared.is_none()
            && match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DontSend => false,
            };
        // Through the session's bounded queue like any message: what does not fit is dropped by
        // the queue's strategy and counted (never silently).
        let mut result = RouteResult::default();
        let mut retained_skipped = false;
        let messages = if send_retained {
            let found = self
                .retained
                .read()
                .matching_within(filter, now, retained_budget);
            if found.is_none() {
                retained_skipped = true;
                self.stats
                    .retained_lookups_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
            found
        } else {
            None
        };
        if let Some(messages) = messages {
            let copies = messages.into_iter().map(|message| Delivery {
                qos: message.qos.min(options.qos),
                message,
                retain: true,
                subscription_ids: id.into_iter().collect(),
                shared: None,
                charge: None,
                seq: 0,
            });
            session.enqueue_many(copies, |enqueued| {
                self.count(&mut result, session, enqueued);
            });
            if result.dropped > 0 {
                self.stats
                    .publish_dropped
                    .fetch_add(result.dropped as u64, Ordering::Relaxed);
            }
        }
        SubscribeResult {
            quota_exceeded: false,
            existed,
            retained_skipped,
            retained_sent: result.delivered,
            retained_dropped: result.dropped,
        }
    }

    /// Removes `session`'s subscription to `filter`. Returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &TopicFilter) -> bool {
        let existed = {
            let mut st = session.state.lock();
            let existed = st.subscriptions.remove(filter).is_some();
            if existed {
                st.subscription_levels = st
                    .subscription_levels
                    .saturating_sub(subscription_cost(filter));
            }
            if existed && st.persist_subs {
                session.write(&[Op::Unsubscribe {
                    session: session.id(),
                    filter,
                }]);
            }
            existed
        };
        if existed {
            let mut index = self.index.write();
            match filter.shared().ok().flatten() {
                Some(s) => index.remove(&s.filter, Some(&s.group), session.id()),
                None => index.remove(filter, None, session.id()),
            };
            self.stats
                .subscriptions
                .store(index.len() as u64, Ordering::Relaxed);
        }
        existed
    }

    /// Routes a message: updates the retained store when RETAIN is set, then queues the message
    /// once for every session with a matching subscription (the highest granted QoS and every
    /// subscription identifier when several of its subscriptions match), and for one member of
    /// every matching shared group.
    pub fn publish(&self, message: Message) -> RouteResult {
        self.route(message, None)
    }

    /// [`Broker::publish`] for a message from a client's `session`. With persistence on, the
    /// message's stored copies, its retained update and, for QoS 2, the client's `packet_id`
    /// are written as one batch, and the PUBACK/PUBREC waits for [`Session::ticket`]: after a
    /// restart a retransmission of the same QoS 2 packet is then known, and not routed twice.
    pub fn publish_from(
        &self,
        session: &Arc<Session>,
        packet_id: Option<PacketId>,
        message: Message,
    ) -> RouteResult {
        self.route(message, Some((session, packet_id)))
    }

    /// Routes a run of messages from `session`'s client, in order, as [`Broker::publish_from`]
    /// would one by one, and pushes each one's result onto `results`. When the broker keeps no
    /// store and the messages share one topic, none retained, and no shared group matches, the
    /// matching subscriptions are looked up once and each session takes its copies of the whole
    /// run under one lock and with one wake-up: a fan-out's cost per delivery is then mostly
    /// the copy itself, not the session's lock and wake-up moving between cores.
    pub fn publish_run(
        &self,
        session: &Arc<Session>,
        mut run: impl ExactSizeIterator<Item = (Message, Option<PacketId>)>,
        results: &mut Vec<RouteResult>,
    ) {
        let one = |(m, id): (Message, Option<PacketId>)| self.route(m, Some((session, id)));
        if self.store.is_some() || run.len() < 2 {
            results.extend(run.map(one));
            return;
        }
        let Some((first, id)) = run.next() else {
            return;
        };
        if first.retain {
            results.push(one((first, id)));
            return self.publish_run(session, run, results);
        }
        let (mut targets, overlapping) = self.targets(&first);
        let topic = first.topic.clone();
        let mut messages: Vec<Arc<Message>> = Vec::with_capacity(run.len() + 1);
        messages.push(Arc::new(first));
        if targets.iter().any(|t| t.shared.is_some()) {
            // A shared group's member is picked for each message: the first goes to the members
            // just picked, the others are routed one by one.
            self.deliver_run(&mut messages, &mut targets, overlapping, results);
            results.extend(run.map(one));
            return;
        }
        for (message, id) in run {
            if message.retain || message.topic != topic {
                // Not part of the run: the messages before it go first.
                self.deliver_run(&mut messages, &mut targets, overlapping, results);
                results.push(one((message, id)));
            } else {
                messages.push(Arc::new(message));
            }
        }
        self.deliver_run(&mut messages, &mut targets, overlapping, results);
    }

    fn deliver_run(
        &self,
        messages: &mut Vec<Arc<Message>>,
        targets: &mut [Target],
        overlapping: bool,
        results: &mut Vec<RouteResult>,
    ) {
        if messages.is_empty() {
            return;
        }
        self.stats
            .messages_received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let from = results.len();
        results.extend((0..messages.len()).map(|_| RouteResult::default()));
        let mut held = Vec::new();
        self.deliver(
            messages,
            targets,
            overlapping,
            &mut held,
            &mut results[from..],
        );
        debug_assert!(held.is_empty(), "no store, nothing held");
        let dropped: usize = results[from..].iter().map(|r| r.dropped).sum();
        if dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        messages.clear();
    }

    fn route(
        &self,
        message: Message,
        from: Option<(&Arc<Session>, Option<PacketId>)>,
    ) -> RouteResult {
        let message = Arc::new(message);
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        // Whether the retained store changed in a way the disk must follow.
        let mut retained_change = None;
        if message.retain {
            let mut retained = self.retained.write();
            retained.apply(&message);
            self.stats
                .retained
                .store(retained.len() as u64, Ordering::Relaxed);
            if self.store.is_some() {
                let keep = !message.payload.is_empty()
                    && self.settings.load().persistence.persists_retained(&message);
                let was = retained.set_persisted(&message.topic, keep);
                retained_change = (keep || was).then_some(keep);
            }
        }
        let (mut targets, overlapping) = self.targets(&message);
        let mut held = Vec::new();
        let mut results = [RouteResult::default()];
        self.deliver(
            std::slice::from_ref(&message),
            &mut targets,
            overlapping,
            &mut held,
            &mut results,
        );
        let [mut result] = results;
        if let Some(store) = &self.store {
            let incoming = from.and_then(|(session, packet_id)| {
                let id = packet_id.filter(|_| message.qos == QoS::ExactlyOnce)?;
                session.persists_incoming().then_some((session.id(), id))
            });
            let mut ops: Vec<Op<'_>> = held
                .iter()
                .map(
                    |(session, delivery): &(Arc<Session>, Delivery)| Op::Enqueue {
                        session: session.id(),
                        seq: delivery.seq,
                        delivery: stored(delivery),
                    },
                )
                .collect();
            match retained_change {
                Some(true) => ops.push(Op::Retain(&message)),
                Some(false) => ops.push(Op::ClearRetained(&message.topic)),
                None => {}
            }
            if let Some((session, packet_id)) = incoming {
                ops.push(Op::IncomingQos2 { session, packet_id });
            }
            if !ops.is_empty() {
                let ticket = store.write(&ops);
                drop(ops);
                if let Some((session, _)) = from {
                    session.note_ticket(ticket);
                }
            }
            // Only now, with their creation in the store, may the stored copies be taken.
            for (session, delivery) in held {
                self.count(&mut result, &session, session.enqueue(delivery));
            }
        }
        if result.dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(result.dropped as u64, Ordering::Relaxed);
        }
        result
    }

    /// The subscriptions `message` goes to (one member of each matching shared group), and
    /// whether a session may be named twice (several matching entries: overlapping
    /// subscriptions, merged in `deliver`).
    fn targets(&self, message: &Message) -> (Vec<Target>, bool) {
        let mut targets: Vec<Target> = Vec::new();
        // Within one filter's entry a session subscribes once; only several matching entries
        // can name a session twice (overlapping subscriptions, merged in `deliver`).
        let mut entries = 0;
        {
            let index = self.index.read();
            let origin = message.origin;
            index.for_each_match(message.topic.as_str(), |entry| {
                entries += usize::from(!entry.subscribers.is_empty());
                for sub in &entry.subscribers {
                    if sub.options.no_local && Some(sub.session.id()) == origin {
                        continue;
                    }
                    targets.push(Target {
                        session: sub.session.clone(),
                        qos: sub.options.qos,
                        retain_as_published: sub.options.retain_as_published,
                        id: sub.id,
                        shared: None,
                    });
                }
                for group in &entry.groups {
                    if let Some(sub) = group.pick(None) {
                        targets.push(Target {
                            session: sub.session.clone(),
                            qos: sub.options.qos,
                            retain_as_published: sub.options.retain_as_published,
                            id: sub.id,
                            shared: Some(SharedRef {
                                group: group.name.clone(),
                                filter: group.filter.clone(),
                            }),
                        });
                    }
                }
            });
        }
        (targets, entries > 1)
    }

    /// Queues `messages` (one, or a publisher's run to one topic) for every target, each
    /// session taking its copies of all of them under one lock; `results` has one entry per
    /// message. With persistence on, the QoS 1/2 copies for sessions whose queue is stored get a
    /// sequence number and go to `held` instead, for the caller to write and then queue.
    fn deliver(
        &self,
        messages: &[Arc<Message>],
        targets: &mut [Target],
        overlapping: bool,
        held: &mut Vec<(Arc<Session>, Delivery)>,
        results: &mut [RouteResult],
    ) {
        if targets.is_empty() {
            return;
        }
        let charges: Vec<Arc<Charge>> = messages
            .iter()
            .map(|m| self.budget.charge(m.weight()))
            .collect();
        if overlapping && targets.len() > 1 {
            // Overlapping subscriptions of one session: one copy, highest QoS, every identifier
            // [MQTT-3.3.4-2, 3.3.4-3]. Shared deliveries stay separate copies.
            targets.sort_by_key(|t| (t.session.id(), t.shared.is_some()));
        }
        let mut i = 0;
        while i < targets.len() {
            let mut j = i + 1;
            let mut qos = targets[i].qos;
            let mut rap = targets[i].retain_as_published;
            let mut ids: Vec<u32> = targets[i].id.into_iter().collect();
            if targets[i].shared.is_none() {
                while j < targets.len()
                    && targets[j].shared.is_none()
                    && targets[j].session.id() == targets[i].session.id()
                {
                    qos = qos.max(targets[j].qos);
                    rap |= targets[j].retain_as_published;
                    ids.extend(targets[j].id);
                    j += 1;
                }
            }
            let t = &targets[i];
            let copies = messages.iter().zip(&charges).map(|(m, c)| Delivery {
                message: m.clone(),
                qos: m.qos.min(qos),
                retain: m.retain && rap,
                subscription_ids: ids.clone(),
                shared: t.shared.clone(),
                charge: Some(c.clone()),
                seq: 0,
            });
            if self.store.is_some() && t.session.queue_stored() {
                for (n, mut delivery) in copies.enumerate() {
                    if delivery.qos != QoS::AtMostOnce
                        && let Some(seq) = t.session.reserve_seq()
                    {
                        delivery.seq = seq;
                        held.push((t.session.clone(), delivery));
                    } else {
                        let enqueued = t.session.enqueue(delivery);
                        self.count(&mut results[n], &t.session, enqueued);
                    }
                }
            } else {
                let mut n = 0;
                t.session.enqueue_many(copies, |enqueued| {
                    self.count(&mut results[n], &t.session, enqueued);
                    n += 1;
                });
            }
            i = j;
        }
    }

    /// Accounts for one offered copy.
    fn count(&self, result: &mut RouteResult, session: &Arc<Session>, enqueued: Enqueued) {
        let drops = &self.stats.drops;
        match enqueued {
            Enqueued::Queued {
                congested,
                dropped_oldest,
            } => {
                result.delivered += 1;
                if dropped_oldest > 0 {
                    result.dropped += dropped_oldest;
                    drops
                        .queue_oldest
                        .fetch_add(dropped_oldest as u64, Ordering::Relaxed);
                }
                if congested && result.congested.is_none() {
                    result.congested = Some(session.clone());
                }
            }
            Enqueued::DroppedOffline => {
                result.dropped += 1;
                drops.offline_qos0.fetch_add(1, Ordering::Relaxed);
            }
            Enqueued::DroppedFull => {
                result.dropped += 1;
                drops.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Periodic work: fires wills whose delay has passed, ends expired sessions, purges expired
    /// retained messages, and publishes `$SYS` statistics when due. Call about once a second.
    pub fn tick(&self, now: Instant) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            match session.check_expiry(now) {
                SessionEntryCheck::Alive => {}
                SessionEntryCheck::WillDue(will) => {
                    self.publish_will(will, Some(session.id()), now);
                    session.write_record();
                }
                SessionEntryCheck::Expired(will) => {
                    if let Some(will) = will {
                        self.publish_will(will, Some(session.id()), now);
                    }
                    self.end_session(&session);
                }
            }
        }
        let purged = self.retained.write().purge_expired(now);
        if !purged.is_empty() {
            self.stats
                .retained
                .store(self.retained.read().len() as u64, Ordering::Relaxed);
            if let Some(store) = &self.store {
                // Expired data leaves the disk too, not only the index.
                let ops: Vec<Op<'_>> = purged
                    .iter()
                    .filter(|(_, persisted)| *persisted)
                    .map(|(topic, _)| Op::ClearRetained(topic))
                    .collect();
                if !ops.is_empty() {
                    store.write(&ops);
                }
            }
        }
        let due = {
            let mut last = self.last_sys.lock();
            let due =
                last.is_none_or(|t| now.duration_since(t) >= self.settings.load().sys_interval);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let mut topics = self.stats.sys_topics(now.duration_since(self.started));
            let source = self.sys_source.lock().clone();
            if let Some(source) = source {
                topics.extend((source.0)());
            }
            for (topic, payload) in topics {
                if let Ok(topic) = TopicName::new(topic.as_str()) {
                    self.publish(Message {
                        topic,
                        payload: Bytes::from(payload),
                        qos: QoS::AtMostOnce,
                        retain: true,
                        properties: PublishProperties::default(),
                        origin: None,
                        expires_at: None,
                    });
                }
            }
        }
    }

    /// Fills the broker from what its store held at start: sessions (without connections),
    /// their subscriptions, queued and in-flight copies and incoming QoS 2 state, and retained
    /// messages. A session that was connected when the broker stopped lost its connection now:
    /// its will is published (after its delay), and it expires from now. Expired sessions and
    /// retained messages are removed from the store. Call once, before serving.
    pub fn restore(&self, recovered: Recovered, now: Instant) -> Restored {
        let mut report = Restored::default();
        let mut wills = Vec::new();
        let mut max_id = 0;
        let limits = self.settings.load().queue;
        for r in recovered.sessions {
            let record = r.record;
            max_id = max_id.max(record.id.0);
            let was_connected = record.disconnected_at.is_none();
            let since = record.disconnected_at.unwrap_or(now).min(now);
            let session = Arc::new(Session::new(
                record.id,
                record.client_id.clone(),
                record.protocol,
                limits,
                self.stats.clone(),
                self.store.clone(),
            ));
            let messages: Vec<_> = r
                .messages
                .into_iter()
                .map(|m| {
                    let charge = self.budget.charge(m.message.weight());
                    let delivery = Delivery {
                        message: Arc::new(m.message),
                        qos: m.qos,
                        retain: m.retain,
                        subscription_ids: m.subscription_ids,
                        shared: m.shared,
                        charge: Some(charge),
                        seq: m.seq,
                    };
                    (delivery, m.inflight)
                })
                .collect();
            report.messages += messages.len();
            session.restore(&record, since, &r.subscriptions, messages, &r.incoming_qos2);
            let expired = record.expiry_interval != u32::MAX
                && now.duration_since(since)
                    >= Duration::from_secs(u64::from(record.expiry_interval));
            // The will of a connection the restart cut, or a delayed will still waiting.
            let mut due = None;
            if let Some(will) = record.will {
                let at = match record.will_due {
                    Some(at) if !was_connected => at,
                    _ => {
                        let delay = will.properties.will_delay_interval.unwrap_or(0);
                        now + Duration::from_secs(u64::from(delay.min(record.expiry_interval)))
                    }
                };
                if expired || at <= now {
                    wills.push((will, session.id()));
                } else {
                    due = Some((at, will));
                }
            }
            if expired {
                report.expired += 1;
                self.drop_stored(&session);
                continue;
            }
            session.state.lock().pending_will = due.map(Box::new);
            for (filter, entry) in &r.subscriptions {
                self.index_insert(&session, filter, *entry);
            }
            session.write_record();
            self.sessions
                .lock()
                .insert(record.client_id.clone(), session);
            report.sessions += 1;
        }
        self.next_session.fetch_max(max_id + 1, Ordering::Relaxed);
        {
            let mut retained = self.retained.write();
            let mut expired = Vec::new();
            for message in recovered.retained {
                if message.is_expired(now) {
                    expired.push(message.topic);
                    continue;
                }
                let message = Arc::new(message);
                retained.apply(&message);
                retained.set_persisted(&message.topic, true);
                report.retained += 1;
            }
            self.stats
                .retained
                .store(retained.len() as u64, Ordering::Relaxed);
            if let Some(store) = &self.store
                && !expired.is_empty()
            {
                let ops: Vec<Op<'_>> = expired.iter().map(Op::ClearRetained).collect();
                store.write(&ops);
            }
        }
        report.wills = wills.len();
        for (will, origin) in wills {
            self.publish_will(will, Some(origin), now);
        }
        report
    }

    fn index_insert(&self, session: &Arc<Session>, filter: &TopicFilter, entry: SubscriptionEntry) {
        let sub = Subscriber {
            session: session.clone(),
            options: entry.options,
            id: entry.id,
        };
        let mut index = self.index.write();
        match filter.shared().ok().flatten() {
            Some(s) => index.insert(&s.filter, Some(&s.group), sub),
            None => index.insert(filter, None, sub),
        };
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
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

    fn publish_will(&self, will: Will, origin: Option<SessionId>, now: Instant) {
        let expiry = self.cap_message_expiry(will.properties.message_expiry_interval);
        let properties = PublishProperties {
            payload_format_indicator: will.properties.payload_format_indicator,
            message_expiry_interval: expiry,
            topic_alias: None,
            response_topic: will.properties.response_topic,
            correlation_data: will.properties.correlation_data,
            user_properties: will.properties.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: will.properties.content_type,
        };
        self.stats.wills_sent.fetch_add(1, Ordering::Relaxed);
        self.publish(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            origin,
            expires_at: Message::expiry_from(now, expiry),
        });
    }

    fn redistribute_shared(&self, session: &Arc<Session>, _now: Instant) {
        let orphans = session.take_shared_deliveries();
        if orphans.is_empty() {
            return;
        }
        let mut moved = Vec::new();
        {
            let index = self.index.read();
            for delivery in orphans {
                let Some(shared) = &delivery.shared else {
                    continue;
                };
                let pick = index
                    .group(&shared.filter, &shared.group)
                    .and_then(|g| g.pick(Some(session.id())))
                    .filter(|s| s.session.is_connected());
                match pick {
                    Some(sub) => moved.push((sub.session.clone(), delivery)),
                    // No other member is connected: keep it with this (persistent) session.
                    None => moved.push((session.clone(), delivery)),
                }
            }
        }
        // A member whose queue is full drops what it is handed: counted as any drop.
        let mut result = RouteResult::default();
        for (target, delivery) in moved {
            self.count(&mut result, &target, target.enqueue(delivery));
        }
        if result.dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(result.dropped as u64, Ordering::Relaxed);
        }
    }

    fn end_session(&self, session: &Arc<Session>) {
        self.drop_stored(session);
        {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(session.client_id())
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(session.client_id());
            }
        }
        self.drop_subscriptions(session);
    }

    fn drop_subscriptions(&self, session: &Arc<Session>) {
        let filters: Vec<TopicFilter> = {
            let mut st = session.state.lock();
            st.subscription_levels = 0;
            st.subscriptions.drain().map(|(f, _)| f).collect()
        };
        if filters.is_empty() {
            return;
        }
        let mut index = self.index.write();
        for filter in &filters {
            match filter.shared().ok().flatten() {
                Some(s) => index.remove(&s.filter, Some(&s.group), session.id()),
                None => index.remove(filter, None, session.id()),
            };
        }
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
    }

    fn new_session(&self, client_id: Arc<str>, protocol: ProtocolVersion) -> Arc<Session> {
        let id = SessionId(self.next_session.fetch_add(1, Ordering::Relaxed));
        Arc::new(Session::new(
            id,
            client_id,
            protocol,
            self.settings.load().queue,
            self.stats.clone(),
            self.store.clone(),
        ))
    }

    /// Removes a session's data from the store (it ended or was replaced). Returns the ticket
    /// when something was written.
    fn drop_stored(&self, session: &Session) -> Option<Ticket> {
        let store = self.store.as_ref()?;
        let mut st = session.state.lock();
        if !st.stored {
            return None;
        }
        st.stored = false;
        st.persist_subs = false;
        session.set_persist_queue(&mut st, false);
        Some(store.write(&[Op::DropSession(session.id())]))
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
