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
    ProtocolVersion, PublishProperties, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
    TopicFilter, TopicName, Will,
};

use crate::budget::Budget;
use crate::message::{Delivery, Message, SharedRef};
use crate::retained::RetainedStore;
use crate::session::{Enqueued, QueueLimits, Session, SessionEntryCheck, SessionId, Wake};
use crate::stats::Stats;
use crate::subscriptions::{Subscriber, SubscriptionIndex};

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
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            queue: QueueLimits::default(),
            max_session_expiry: u32::MAX,
            max_message_expiry: None,
            sys_interval: Duration::from_secs(10),
            publish_budget: u64::MAX,
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
    /// Whether it replaced an existing subscription of the session to the same filter.
    pub existed: bool,
    /// Retained messages queued for it.
    pub retained_sent: usize,
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
    next_session: AtomicU64,
    started: Instant,
    last_sys: Mutex<Option<Instant>>,
}

struct Target {
    session: Arc<Session>,
    qos: QoS,
    retain_as_published: bool,
    id: Option<u32>,
    shared: Option<SharedRef>,
}

impl Broker {
    /// Creates a broker with `settings`.
    pub fn new(settings: BrokerSettings) -> Self {
        Self {
            budget: Budget::new(settings.publish_budget),
            settings: ArcSwap::from_pointee(settings),
            sessions: Mutex::new(HashMap::new()),
            index: RwLock::new(SubscriptionIndex::default()),
            retained: RwLock::new(RetainedStore::default()),
            stats: Arc::new(Stats::default()),
            next_session: AtomicU64::new(1),
            started: Instant::now(),
            last_sys: Mutex::new(None),
        }
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
        let (percent, counter) = if qos == QoS::AtMostOnce {
            (100, &drops.memory_budget_qos0)
        } else {
            (75, &drops.memory_budget)
        };
        if self.budget.would_pass(bytes, percent) {
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MemoryBudget);
        }
        Ok(())
    }

    /// Counters for `$SYS` and metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Attaches a connection to its session, creating, resuming or replacing it. A connection
    /// already attached to the session is told to go with DISCONNECT 0x8E (session taken over).
    pub fn connect(&self, params: ConnectParams, now: Instant) -> Attached {
        let assigned_client_id = params.client_id.is_empty().then(|| self.assign_client_id());
        let client_id: Arc<str> =
            Arc::from(assigned_client_id.as_deref().unwrap_or(&params.client_id));
        let session_expiry = params
            .session_expiry
            .min(self.settings.load().max_session_expiry);

        let mut sessions = self.sessions.lock();
        let existing = sessions.get(&client_id).cloned();
        let (session, session_present) = match existing {
            Some(old) if !params.clean_start => (old, true),
            Some(old) => {
                // Clean start replaces the old session: its subscriptions go, its connection is
                // kicked, and its will (if any) fires since that session ends now.
                let will = old.retire();
                let fresh = self.new_session(client_id.clone(), params.protocol);
                sessions.insert(client_id.clone(), fresh.clone());
                drop(sessions);
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
        let pending_will = {
            let mut st = session.state.lock();
            st.protocol = params.protocol;
            st.expiry_interval = session_expiry;
            st.will = params.will;
            // A reconnection within the will delay cancels the will [MQTT-3.1.3-9].
            st.pending_will.take()
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
            let will = st.will.take();
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
                session.state.lock().pending_will = Some((at, will));
            }
        }
        self.redistribute_shared(session, now);
        if expiry == 0 {
            self.end_session(session);
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
        let shared = filter.shared().ok().flatten();
        let existed = session
            .state
            .lock()
            .subscriptions
            .insert(
                filter.clone(),
                crate::session::SubscriptionEntry { options, id },
            )
            .is_some();
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
        let mut retained_sent = 0;
        if send_retained {
            let messages = self.retained.read().matching(filter, now);
            for message in messages {
                let qos = message.qos.min(options.qos);
                let delivery = Delivery {
                    message,
                    qos,
                    retain: true,
                    subscription_ids: id.into_iter().collect(),
                    shared: None,
                    charge: None,
                };
                if matches!(session.enqueue(delivery), Enqueued::Queued { .. }) {
                    retained_sent += 1;
                }
            }
        }
        SubscribeResult {
            existed,
            retained_sent,
        }
    }

    /// Removes `session`'s subscription to `filter`. Returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &TopicFilter) -> bool {
        let existed = session.state.lock().subscriptions.remove(filter).is_some();
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
        let message = Arc::new(message);
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        if message.retain {
            let mut retained = self.retained.write();
            retained.apply(&message);
            self.stats
                .retained
                .store(retained.len() as u64, Ordering::Relaxed);
        }
        let mut targets: Vec<Target> = Vec::new();
        {
            let index = self.index.read();
            let origin = message.origin;
            index.for_each_match(message.topic.as_str(), |entry| {
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
        self.deliver(&message, targets)
    }

    fn deliver(&self, message: &Arc<Message>, mut targets: Vec<Target>) -> RouteResult {
        let mut result = RouteResult::default();
        if targets.is_empty() {
            return result;
        }
        let charge = self
            .budget
            .charge((message.payload.len() + message.topic.as_str().len()) as u64);
        if targets.len() > 1 {
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
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(qos),
                retain: message.retain && rap,
                subscription_ids: ids,
                shared: t.shared.clone(),
                charge: Some(charge.clone()),
            };
            let drops = &self.stats.drops;
            match t.session.enqueue(delivery) {
                Enqueued::Queued {
                    congested,
                    dropped_oldest,
                } => {
                    result.delivered += 1;
                    if dropped_oldest {
                        result.dropped += 1;
                        drops.queue_oldest.fetch_add(1, Ordering::Relaxed);
                    }
                    if congested && result.congested.is_none() {
                        result.congested = Some(t.session.clone());
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
            i = j;
        }
        if result.dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(result.dropped as u64, Ordering::Relaxed);
        }
        result
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
        if purged > 0 {
            self.stats
                .retained
                .store(self.retained.read().len() as u64, Ordering::Relaxed);
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
            for (topic, payload) in self.stats.sys_topics(now.duration_since(self.started)) {
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
        for (target, delivery) in moved {
            target.enqueue(delivery);
        }
    }

    fn end_session(&self, session: &Arc<Session>) {
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
        let filters: Vec<TopicFilter> = session
            .state
            .lock()
            .subscriptions
            .drain()
            .map(|(f, _)| f)
            .collect();
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
        ))
    }

    fn assign_client_id(&self) -> String {
        let n = self.next_session.load(Ordering::Relaxed);
        let nanos = self.started.elapsed().as_nanos() as u64;
        format!(
            "wardgate-{:016x}",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos
        )
    }
}
