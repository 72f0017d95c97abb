//! A session's state: its subscriptions, its bounded outbound queue, the outbound inflight window
//! with its QoS 1/2 state machines, incoming QoS 2 packet ids, its will and its expiry.
//!
//! The state sits behind one short-held mutex per session. The router pushes into the queue from
//! publishers' connection tasks; the owning connection task drains it. Lock order: the subscription
//! index is never acquired while a session lock is held.

mod connection;
mod handoff;
mod incoming;
mod outbound;
mod persistence;
mod queue;
mod subscriptions;
#[cfg(test)]
mod tests;

pub use incoming::{Qos2Admission, Qos2Receipt};
pub(crate) use persistence::stored;

use std::collections::{HashMap, HashSet, VecDeque};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wardgate_protocol::{
    PacketId, ProtocolVersion, PublishQos, QoS, SubscriptionFilter, TopicFilter, Will,
};

use crate::ids::SessionId;
use crate::message::Delivery;
use crate::stats::Stats;
use crate::store::{
    InflightState, Op, SessionRecord, Store, StoredDelivery, SubscriptionEntry, Ticket,
};
use crate::wake::Wake;

pub(crate) use connection::ConnectTerms;
pub(crate) use subscriptions::Subscribed;

/// A connected session whose queue is past its congestion threshold and took nothing from it for
/// this long is stalled (its client stopped reading): publishers no longer wait for it, so one
/// stuck subscriber cannot slow the others; its queue fills and drops by its overflow policy.
pub const STALLED_AFTER: Duration = Duration::from_secs(1);

/// Hashes a packet id with one multiplication (Fibonacci hashing), spreading the 16 bits over
/// the whole word as the hash table wants; SipHash cost ~8% of the CPU in QoS 1/2 fan-out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PacketIdHash;

impl std::hash::BuildHasher for PacketIdHash {
    type Hasher = PacketIdHasher;
    fn build_hasher(&self) -> PacketIdHasher {
        PacketIdHasher(0)
    }
}

/// The hasher of [`PacketIdHash`].
#[derive(Debug)]
pub(crate) struct PacketIdHasher(u64);

impl std::hash::Hasher for PacketIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u16(&mut self, id: u16) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What happens when a session's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOverflow {
    /// Drop the new message (Mosquitto's behaviour).
    #[default]
    DropNew,
    /// Drop the oldest queued message to make room (EMQX's, and AIO's `DropOldest`).
    DropOldest,
}

/// Per-session queue bounds, from the broker's limits.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Hard bound on queued (not yet inflight) messages; past it `overflow` applies.
    pub max_queued: usize,
    /// Hard bound on the bytes of the session's queued and in-flight copies, as charged to the
    /// broker's memory budget (payload, topic, properties; [`crate::Message::weight`]); past it
    /// `overflow` applies. A queue with nothing queued still takes one message, however large.
    /// It keeps one subscriber that stops reading from filling the broker-wide budget, which
    /// would refuse everyone's messages (`u64::MAX`: no bound but the budget).
    pub max_queued_bytes: u64,
    /// Above this many queued messages the session reports itself congested, so publishers slow down.
    pub congestion_threshold: usize,
    /// What to drop when the queue is full.
    pub overflow: QueueOverflow,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_queued: 100_000,
            max_queued_bytes: u64::MAX,
            congestion_threshold: 2_000,
            overflow: QueueOverflow::DropNew,
        }
    }
}

/// The result of offering a message to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued (after dropping `dropped_oldest` of the oldest under `DropOldest`: one to stay
    /// within `max_queued`, or as many as `max_queued_bytes` needs).
    Queued {
        congested: bool,
        dropped_oldest: usize,
    },
    /// Dropped: QoS 0 to an offline session.
    DroppedOffline,
    /// Dropped: the queue is full (in messages or in bytes) and the policy keeps old messages.
    DroppedFull,
}

#[derive(Debug)]
struct Inflight {
    packet_id: PacketId,
    delivery: Delivery,
    state: InflightState,
}

/// One packet the connection task must write for its session's outbound flow.
#[derive(Debug)]
pub enum Outgoing {
    /// A PUBLISH at `qos` (the delivery's QoS and, above 0, its packet id), `dup` on
    /// redelivery.
    Publish {
        delivery: Delivery,
        qos: PublishQos,
        dup: bool,
    },
    /// A PUBREL to (re)send for a QoS 2 flow that got its PUBREC.
    PubRel(PacketId),
}

/// Where [`Session::drain_into`] puts the messages it takes: the connection encodes each one
/// straight from the session's queue or in-flight entry, so no delivery is cloned for it (a clone
/// is two reference-count round trips on lines every subscriber of the message shares).
pub trait Sink {
    /// Whether `d` can be sent (the client's Maximum Packet Size); a delivery that cannot is
    /// dropped and counted.
    fn fits(&self, d: &Delivery) -> bool;
    /// Writes `d` as a new PUBLISH at `qos` (the delivery's QoS and, above 0, its packet id).
    fn publish(&mut self, d: &Delivery, qos: PublishQos);
    /// Whether to take another message: a connection stops at its write buffer's soft limit, so
    /// large messages are not encoded far ahead of the socket (1,000 subscribers of 1 KiB
    /// messages each held hundreds of KiB of encoded copies).
    fn has_room(&self) -> bool {
        true
    }
}

/// The [`Sink`] of [`Session::drain`]: copies of the deliveries, for callers that want them.
struct Collect<'a, F> {
    fits: F,
    out: &'a mut Vec<Outgoing>,
}

impl<F: Fn(&Delivery) -> bool> Sink for Collect<'_, F> {
    fn fits(&self, d: &Delivery) -> bool {
        (self.fits)(d)
    }
    fn publish(&mut self, d: &Delivery, qos: PublishQos) {
        self.out.push(Outgoing::Publish {
            delivery: d.clone(),
            qos,
            dup: false,
        });
    }
}

/// What [`Session::check_expiry`] found.
#[derive(Debug)]
pub(crate) enum SessionEntryCheck {
    /// Nothing to do.
    Alive,
    /// The delayed will is due; the session lives on.
    WillDue(Will),
    /// The session expired (with its pending will, if any, to publish first).
    Expired(Option<Will>),
}

#[derive(Debug)]
struct Link {
    generation: u64,
    waker: Arc<dyn Wake>,
    kick: Option<wardgate_protocol::ReasonCode>,
    /// A new connection for the client ID waits for this one to hand the session over
    /// ([`Session::request_handover`]); each is woken when this link ends.
    handover: Vec<Arc<dyn Wake>>,
}

impl Drop for Link {
    /// However the connection leaves the session (detached, replaced, retired), the
    /// connections waiting for it go on.
    fn drop(&mut self) {
        for w in self.handover.drain(..) {
            w.wake();
        }
    }
}

/// Where connection `generation` stands with its session ([`Session::link_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Attached, nothing asked of it.
    Attached,
    /// A new connection for the client ID waits: process what the client sent before (up to
    /// DISCONNECT, or what can be read now), then end.
    HandoverAsked,
    /// Told to go (session taken over, or the reason given), or no longer attached.
    Gone(wardgate_protocol::ReasonCode),
}

/// The mutable part of a session.
#[derive(Debug)]
struct SessionState {
    link: Option<Link>,
    subscriptions: HashMap<SubscriptionFilter, SubscriptionEntry>,
    /// What `subscriptions` cost ([`TopicFilter::levels`]), bounded by
    /// `BrokerSettings::max_subscription_levels` for new subscriptions.
    subscription_levels: u64,
    queue: VecDeque<Delivery>,
    /// The bytes of `queue` and `inflight` ([`Delivery::bytes`]), bounded by
    /// `limits.max_queued_bytes`.
    held_bytes: u64,
    /// Outbound QoS 1/2 flows in the order they were sent (the order of redelivery).
    inflight: VecDeque<Inflight>,
    /// The packet ids of `inflight`, for allocating a free one.
    inflight_ids: HashSet<u16, PacketIdHash>,
    next_packet_id: u16,
    /// The client's Receive Maximum: how many QoS 1/2 PUBLISH may be unacknowledged.
    send_quota: u16,
    incoming_qos2: HashSet<u16, PacketIdHash>,
    expiry_interval: u32,
    /// The principal that created the session (`None`: unknown), the only one that resumes it.
    owner: Option<Arc<str>>,
    protocol: ProtocolVersion,
    will: Option<Box<Will>>,
    /// A will waiting for its delay after the connection dropped.
    pending_will: Option<Box<(Instant, Will)>>,
    /// When the session was left without a connection.
    disconnected_at: Option<Instant>,
    space_waiters: Vec<Arc<dyn Wake>>,
    limits: QueueLimits,
    dropped: u64,
    generation_counter: u64,
    /// When the attached connection last took a message from the queue (or attached).
    last_drain: Instant,
    /// Persistence (all false without a store): the session's record is in the store.
    stored: bool,
    /// Its subscriptions and incoming QoS 2 state are stored (it has a session expiry).
    persist_subs: bool,
    /// Its QoS 1/2 queue is stored (the `subscriberQueue` policy).
    persist_queue: bool,
    /// The next queue sequence number (the store key of a queued copy).
    next_seq: NonZeroU64,
}

/// A session: identity plus state. Shared as `Arc<Session>` by the registry, the subscription
/// index and the connection task.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    client_id: Arc<str>,
    connected: AtomicBool,
    stats: Arc<Stats>,
    store: Option<Arc<dyn Store>>,
    /// The ticket of the last store write made on this session's behalf.
    ticket: AtomicU64,
    /// The ticket of the last message this session's client published that the cluster must
    /// make durable before it is acknowledged (docs/cluster.md).
    fabric_ticket: AtomicU64,
    /// A copy of `persist_queue`, read without the lock.
    queue_stored: AtomicBool,
    state: Mutex<SessionState>,
}

impl Session {
    /// A new session without a connection. The broker makes them; public for the fuzz target
    /// that drives a subscription index directly.
    pub fn new(
        id: SessionId,
        client_id: Arc<str>,
        protocol: ProtocolVersion,
        limits: QueueLimits,
        stats: Arc<Stats>,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        Self {
            id,
            client_id,
            connected: AtomicBool::new(false),
            stats,
            store,
            ticket: AtomicU64::new(0),
            fabric_ticket: AtomicU64::new(0),
            queue_stored: AtomicBool::new(false),
            state: Mutex::new(SessionState {
                link: None,
                subscriptions: HashMap::new(),
                subscription_levels: 0,
                queue: VecDeque::new(),
                held_bytes: 0,
                inflight: VecDeque::new(),
                inflight_ids: HashSet::default(),
                next_packet_id: 1,
                send_quota: u16::MAX,
                incoming_qos2: HashSet::default(),
                expiry_interval: 0,
                owner: None,
                protocol,
                will: None,
                pending_will: None,
                disconnected_at: None,
                space_waiters: Vec::new(),
                limits,
                dropped: 0,
                generation_counter: 0,
                last_drain: Instant::now(),
                stored: false,
                persist_subs: false,
                persist_queue: false,
                next_seq: NonZeroU64::MIN,
            }),
        }
    }

    /// The session's number.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The MQTT client identifier.
    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    /// The payload size of the will this session holds (set by its connection, or waiting for
    /// its delay), if any.
    pub fn will_bytes(&self) -> Option<usize> {
        let st = self.state.lock();
        st.will
            .as_ref()
            .map(|w| w.payload.len())
            .or(st.pending_will.as_ref().map(|p| p.1.payload.len()))
    }

    /// The topic of the will the attached connection set, if any (re-checked when the
    /// authorization policy changes).
    pub fn will_topic(&self) -> Option<wardgate_protocol::TopicName> {
        self.state.lock().will.as_ref().map(|w| w.topic.clone())
    }

    /// Discards the will the attached connection set (its topic is no longer authorized): it
    /// is not published when the connection ends. Returns whether there was one.
    pub fn discard_will(&self) -> bool {
        let mut st = self.state.lock();
        let had = st.will.take().is_some();
        if had && st.stored {
            let record = self.record(&st);
            self.write_background(&[Op::Session(&record)]);
        }
        had
    }

    /// Whether a connection is attached (lock-free; used by shared-subscription selection).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Whether a connection of `principal` with Clean Start 0 resumes this session: not when
    /// its Session Expiry is 0 (it ends with its network connection, [MQTT-3.1.2-6]), nor when
    /// another principal created it. A session whose principal is unknown (stored before
    /// sessions remembered it) is resumed, and then belongs to the one that resumed it.
    pub(crate) fn resumable_by(&self, principal: Option<&str>) -> bool {
        let st = self.state.lock();
        st.expiry_interval > 0
            && st
                .owner
                .as_deref()
                .is_none_or(|owner| Some(owner) == principal)
    }

    /// Attaches a connection, kicking any previous one with `kick_reason`. Returns the new
    /// connection's generation and whether a previous connection was kicked.
    pub(crate) fn attach(
        &self,
        waker: Arc<dyn Wake>,
        send_quota: u16,
        kick_reason: wardgate_protocol::ReasonCode,
    ) -> (u64, Option<Will>) {
        let mut st = self.state.lock();
        let old_will = st.will.take().map(|w| *w);
        if let Some(old) = st.link.as_mut() {
            old.kick = Some(kick_reason);
            old.waker.wake();
        }
        st.generation_counter += 1;
        let generation = st.generation_counter;
        st.link = Some(Link {
            generation,
            waker,
            kick: None,
            handover: Vec::new(),
        });
        st.send_quota = send_quota.max(1);
        st.disconnected_at = None;
        st.last_drain = Instant::now();
        self.connected.store(true, Ordering::Release);
        (generation, old_will)
    }

    /// Ends this session's life as a routing target because a clean-start connection replaces
    /// it: the attached connection (if any) is told to go (its `kicked` then reports session
    /// takeover), and the will it had, or the delayed will still pending, is returned for
    /// publishing (the session ends now).
    pub(crate) fn retire(&self) -> Option<Will> {
        let mut st = self.state.lock();
        if let Some(old) = st.link.take() {
            old.waker.wake();
        }
        self.connected.store(false, Ordering::Release);
        let pending = st.pending_will.take().map(|p| p.1);
        st.will.take().map(|w| *w).or(pending)
    }

    /// Decides what periodic maintenance this session needs at `now`.
    pub(crate) fn check_expiry(&self, now: Instant) -> SessionEntryCheck {
        let mut st = self.state.lock();
        let Some(since) = st.disconnected_at else {
            return SessionEntryCheck::Alive;
        };
        if st.link.is_some() {
            return SessionEntryCheck::Alive;
        }
        let expired = st.expiry_interval != u32::MAX
            && now.duration_since(since)
                >= std::time::Duration::from_secs(u64::from(st.expiry_interval));
        if expired {
            return SessionEntryCheck::Expired(st.pending_will.take().map(|p| p.1));
        }
        if st.pending_will.as_ref().is_some_and(|p| now >= p.0)
            && let Some(pending) = st.pending_will.take()
        {
            return SessionEntryCheck::WillDue(pending.1);
        }
        SessionEntryCheck::Alive
    }

    /// Detaches connection `generation` if it is still the attached one. Returns false if another
    /// connection has taken the session over meanwhile.
    pub(crate) fn detach(&self, generation: u64, now: Instant) -> bool {
        let mut st = self.state.lock();
        match &st.link {
            Some(link) if link.generation == generation => {
                st.link = None;
                st.disconnected_at = Some(now);
                self.connected.store(false, Ordering::Release);
                // Publishers waiting for room must not wait on a session nobody drains.
                for w in st.space_waiters.drain(..) {
                    w.wake();
                }
                true
            }
            _ => false,
        }
    }

    /// Asks the attached connection, if any, to hand the session over to a new connection of
    /// the same client ID: to process what its client sent before (up to DISCONNECT, or what
    /// it can read now), then end ([`LinkState::HandoverAsked`]), so that the new connection
    /// overtakes none of it. `done` is woken once that connection has left the session.
    /// Returns false, registering nothing, when no connection is attached.
    pub fn request_handover(&self, done: Arc<dyn Wake>) -> bool {
        let mut st = self.state.lock();
        let Some(link) = st.link.as_mut() else {
            return false;
        };
        link.handover.push(done);
        link.waker.wake();
        true
    }

    /// Where connection `generation` stands: attached, asked to hand over, or gone.
    pub fn link_state(&self, generation: u64) -> LinkState {
        let st = self.state.lock();
        match &st.link {
            Some(link) if link.generation == generation => match link.kick {
                Some(reason) => LinkState::Gone(reason),
                None if link.handover.is_empty() => LinkState::Attached,
                None => LinkState::HandoverAsked,
            },
            _ => LinkState::Gone(wardgate_protocol::ReasonCode::SESSION_TAKEN_OVER),
        }
    }

    /// If connection `generation` has been told to go away, the reason.
    pub fn kicked(&self, generation: u64) -> Option<wardgate_protocol::ReasonCode> {
        let st = self.state.lock();
        match &st.link {
            Some(link) if link.generation == generation => link.kick,
            _ => Some(wardgate_protocol::ReasonCode::SESSION_TAKEN_OVER),
        }
    }

    /// The subscriptions the session holds, as (filter, entry).
    pub fn subscriptions(&self) -> Vec<(TopicFilter, SubscriptionEntry)> {
        self.state
            .lock()
            .subscriptions
            .iter()
            .map(|(f, e)| (f.as_filter().clone(), *e))
            .collect()
    }

    /// Queued (not inflight) messages.
    pub fn queued_len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Outbound QoS 1/2 flows awaiting acknowledgement.
    pub fn inflight_len(&self) -> usize {
        self.state.lock().inflight.len()
    }

    /// Messages this session dropped (queue full, offline QoS 0, expired, too large).
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

impl SessionState {
    /// Whether a copy of `bytes` finds the queue full: `max_queued` messages queued, or the
    /// copy would take the session's queued and in-flight bytes past `max_queued_bytes` while
    /// something is queued (an empty queue takes one message, however large).
    fn is_full(&self, bytes: u64) -> bool {
        self.queue.len() >= self.limits.max_queued
            || (!self.queue.is_empty()
                && self.held_bytes.saturating_add(bytes) > self.limits.max_queued_bytes)
    }

    /// Whether publishers should wait for this queue: more than `congestion_threshold`
    /// messages, or more than half of `max_queued_bytes`, are queued.
    fn is_congested(&self) -> bool {
        self.queue.len() > self.limits.congestion_threshold
            || self.held_bytes > self.limits.max_queued_bytes / 2
    }

    /// Whether a congested queue has drained enough to wake the publishers waiting for it: to
    /// half of its congestion thresholds.
    fn has_drained(&self) -> bool {
        self.queue.len() <= self.limits.congestion_threshold / 2
            && self.held_bytes <= self.limits.max_queued_bytes / 4
    }

    /// Where the flow with `packet_id` sits in `inflight`. Packet ids are allocated in sequence
    /// and acknowledgements mostly come in order, so the id's distance from the first flow's id
    /// is almost always its position (one less after the ids wrapped past 0, which is never
    /// used); a scan covers the rest (ids skipped while in use, restored or re-queued flows).
    fn inflight_position(&self, packet_id: PacketId) -> Option<usize> {
        let first = self.inflight.front()?.packet_id.get();
        let distance = usize::from(packet_id.get().wrapping_sub(first));
        let at = |pos: usize| {
            self.inflight
                .get(pos)
                .is_some_and(|f| f.packet_id == packet_id)
        };
        if at(distance) {
            return Some(distance);
        }
        if let Some(pos) = distance.checked_sub(1)
            && at(pos)
        {
            return Some(pos);
        }
        self.inflight.iter().position(|f| f.packet_id == packet_id)
    }

    /// Takes the next queue sequence number.
    fn take_seq(&mut self) -> NonZeroU64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }

    fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            let candidate = self.next_packet_id;
            self.next_packet_id = if candidate == u16::MAX {
                1
            } else {
                candidate + 1
            };
            if !self.inflight_ids.contains(&candidate)
                && let Some(id) = PacketId::new(candidate)
            {
                return id;
            }
        }
    }
}
