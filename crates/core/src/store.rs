//! What the core asks of persistent storage (`Broker.spec.persistence`, SPEC.md §10), and what it
//! gets back at start. The core opens no file: the `store` crate implements [`Store`].
//!
//! The core describes every change to persistent state as an [`Op`] and hands a slice of them to
//! [`Store::write`], which appends them atomically and returns a [`Ticket`]. Tickets grow in write
//! order; [`Store::durable`] says up to which ticket everything survives a crash (the store fsyncs
//! in groups). A session remembers the ticket of the last write made on its behalf
//! ([`Session::ticket`](crate::Session::ticket)); its connection holds back every packet it wrote
//! after that write (PUBACK, PUBREC, PUBCOMP, SUBACK, CONNACK, an outgoing QoS 2 PUBLISH or PUBREL)
//! until the ticket is durable, so nothing is acknowledged before it is on disk.
//!
//! Write order is the order of the session's lock: a session's own changes (drain, acks, drops)
//! are written while its lock is held. A publisher writes its whole message (every queue copy,
//! the retained update and, for QoS 2, the incoming packet id) as one batch *before* the copies
//! become visible in the queues, so no subscriber can acknowledge (and delete) a copy whose
//! creation is not yet in the store.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use wardgate_protocol::{
    PacketId, ProtocolVersion, QoS, SubscriptionOptions, TopicFilter, TopicName, Will,
};

use crate::ids::SessionId;
use crate::message::{Message, SharedRef};
use crate::wake::Wake;

/// Where an outbound QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// A subscription as the session remembers it (the index holds the routing copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionEntry {
    /// The options from SUBSCRIBE.
    pub options: SubscriptionOptions,
    /// The Subscription Identifier, if the SUBSCRIBE carried one.
    pub id: Option<u32>,
}

/// A position in the store's write order. `Ticket(0)` is "nothing written".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticket(pub u64);

/// Persistent storage for sessions, subscriptions, queued and in-flight messages, incoming QoS 2
/// packet ids, retained messages and wills.
pub trait Store: Send + Sync {
    /// Appends `ops` atomically: after a crash either all of them or none are there, and a write
    /// is never there without every earlier one. Returns the write's ticket. A write that fails
    /// (I/O error) leaves the store failed: its ticket never becomes durable.
    fn write(&self, ops: &[Op<'_>]) -> Ticket;

    /// Every write up to this ticket survives a crash.
    fn durable(&self) -> Ticket;

    /// Wakes `waker` once `ticket` is durable (at once if it already is).
    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>);

    /// Whether the store is past its size limit (`maxSize`) or failed: new QoS 1/2 messages are
    /// refused with 0x97.
    fn is_full(&self) -> bool;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// One change to persistent state.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// A session's record, created or updated.
    Session(&'a SessionRecord),
    /// A session ended: its record and everything it held go.
    DropSession(SessionId),
    /// A subscription was added or replaced.
    Subscribe {
        /// The session.
        session: SessionId,
        /// The filter as subscribed (may be `$share/...`).
        filter: &'a TopicFilter,
        /// Its options and identifier.
        entry: SubscriptionEntry,
    },
    /// A subscription was removed.
    Unsubscribe {
        /// The session.
        session: SessionId,
        /// The filter.
        filter: &'a TopicFilter,
    },
    /// A QoS 1/2 copy was queued for a session under its queue sequence number.
    Enqueue {
        /// The session.
        session: SessionId,
        /// The copy's place in the session's queue.
        seq: NonZeroU64,
        /// The copy.
        delivery: StoredDelivery<'a>,
    },
    /// Queue entry `seq` was sent with `packet_id` and is in flight (QoS 2 only: a QoS 1 copy
    /// that is resent after a restart may get a new packet id).
    Inflight {
        /// The session.
        session: SessionId,
        /// The queue entry.
        seq: u64,
        /// Its packet id.
        packet_id: PacketId,
        /// Where its flow is.
        state: InflightState,
    },
    /// Queue entry `seq` is done: acknowledged, dropped or expired.
    Dequeue {
        /// The session.
        session: SessionId,
        /// The queue entry.
        seq: u64,
    },
    /// A QoS 2 PUBLISH from the session's client was received (and routed in the same write).
    IncomingQos2 {
        /// The session.
        session: SessionId,
        /// The client's packet id, held until PUBREL.
        packet_id: PacketId,
    },
    /// The client released an incoming QoS 2 packet id (PUBREL).
    ReleaseQos2 {
        /// The session.
        session: SessionId,
        /// The packet id.
        packet_id: PacketId,
    },
    /// A retained message was set.
    Retain(&'a Message),
    /// A topic's retained message was cleared or expired.
    ClearRetained(&'a TopicName),
}

/// A queued copy as stored: the message and what its subscription decided.
#[derive(Debug, Clone, Copy)]
pub struct StoredDelivery<'a> {
    /// The message.
    pub message: &'a Message,
    /// The QoS to deliver with.
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers.
    pub subscription_ids: &'a [u32],
    /// The shared group it came through, if any.
    pub shared: Option<&'a SharedRef>,
}

/// A session's own record.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// The session's number (the store's key; kept across restarts).
    pub id: SessionId,
    /// The client identifier.
    pub client_id: Arc<str>,
    /// Protocol of its last connection.
    pub protocol: ProtocolVersion,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// The principal that created it, the only one that resumes it (`None`: unknown).
    pub owner: Option<Arc<str>>,
    /// Whether its QoS 1/2 queue is persisted (the `subscriberQueue` policy).
    pub persist_queue: bool,
    /// When it lost its connection; `None` while connected (a restart counts as the loss).
    pub disconnected_at: Option<Instant>,
    /// The will of the connection, or the delayed will waiting after it went.
    pub will: Option<Will>,
    /// When the delayed will is due (set with `will` once the connection is gone).
    pub will_due: Option<Instant>,
}

/// What a store held at start.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Sessions with what they held.
    pub sessions: Vec<RecoveredSession>,
    /// Retained messages.
    pub retained: Vec<Message>,
}

/// One session as recovered.
#[derive(Debug)]
pub struct RecoveredSession {
    /// Its record.
    pub record: SessionRecord,
    /// Its subscriptions.
    pub subscriptions: Vec<(TopicFilter, SubscriptionEntry)>,
    /// Its queued and in-flight copies, in queue order.
    pub messages: Vec<RecoveredDelivery>,
    /// Incoming QoS 2 packet ids not yet released.
    pub incoming_qos2: Vec<PacketId>,
}

/// One queued or in-flight copy as recovered.
#[derive(Debug)]
pub struct RecoveredDelivery {
    /// Its queue sequence number.
    pub seq: u64,
    /// The message.
    pub message: Message,
    /// The QoS to deliver with.
    pub qos: QoS,
    /// The RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers.
    pub subscription_ids: Vec<u32>,
    /// The shared group it came through.
    pub shared: Option<SharedRef>,
    /// Set when it was in flight (resent with DUP and the same packet id).
    pub inflight: Option<(PacketId, InflightState)>,
}

/// How a persistence policy selects (`All`, `None`, `Custom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyMode {
    /// Everything is persisted.
    All,
    /// Nothing is persisted.
    #[default]
    None,
    /// What the list selects, or what asks for it with the dynamic user property.
    Custom,
}

/// `persistence.subscriberQueue`: whose QoS 1/2 queues are persisted (sessions with a session
/// expiry only).
#[derive(Debug, Clone, Default)]
pub struct QueuePolicy {
    /// All, None or Custom.
    pub mode: PolicyMode,
    /// Custom: client IDs; `*` matches any run of characters.
    pub client_ids: Vec<String>,
    /// Custom: a v5 CONNECT with the dynamic user property asks for persistence.
    pub dynamic: bool,
}

/// `persistence.retain`: which retained messages are persisted.
#[derive(Debug, Clone, Default)]
pub struct RetainPolicy {
    /// All, None or Custom.
    pub mode: PolicyMode,
    /// Custom: topic filters.
    pub topics: Vec<TopicFilter>,
    /// Custom: a PUBLISH with the dynamic user property asks for persistence.
    pub dynamic: bool,
}

/// The persistence policies. Sessions, subscriptions, incoming QoS 2 state and wills are always
/// persisted when a store is attached (AIO: "all MQTT session-state metadata").
#[derive(Debug, Clone)]
pub struct PersistenceSettings {
    /// Subscriber queues.
    pub queues: QueuePolicy,
    /// Retained messages.
    pub retained: RetainPolicy,
    /// The user property that asks for persistence (`aio-persistence` = `true`).
    pub dynamic_property: (String, String),
}

impl Default for PersistenceSettings {
    fn default() -> Self {
        Self {
            queues: QueuePolicy::default(),
            retained: RetainPolicy::default(),
            dynamic_property: ("aio-persistence".to_owned(), "true".to_owned()),
        }
    }
}

impl PersistenceSettings {
    fn asks(&self, user_properties: &[(String, String)]) -> bool {
        let (k, v) = &self.dynamic_property;
        user_properties.iter().any(|(pk, pv)| pk == k && pv == v)
    }

    /// Whether the queue of `client_id` is persisted; `user_properties` are its CONNECT's.
    pub fn persists_queue(&self, client_id: &str, user_properties: &[(String, String)]) -> bool {
        let q = &self.queues;
        match q.mode {
            PolicyMode::All => true,
            PolicyMode::None => false,
            PolicyMode::Custom => {
                q.client_ids.iter().any(|p| glob(p, client_id))
                    || (q.dynamic && self.asks(user_properties))
            }
        }
    }

    /// Whether the retained message `message` is persisted.
    pub fn persists_retained(&self, message: &Message) -> bool {
        let topic = message.topic.as_str();
        if topic.starts_with("$SYS/") {
            // Regenerated every few seconds; storing them would only wear the disk.
            return false;
        }
        let r = &self.retained;
        match r.mode {
            PolicyMode::All => true,
            PolicyMode::None => false,
            PolicyMode::Custom => {
                r.topics.iter().any(|f| f.matches(topic))
                    || (r.dynamic && self.asks(&message.properties.user_properties))
            }
        }
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_patterns() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("dev-*", "dev-1", true),
            ("dev-*", "dev", false),
            ("*-east", "a-east", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*a", "a", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn queue_policy_custom_and_dynamic() {
        let mut s = PersistenceSettings::default();
        assert!(!s.persists_queue("x", &[]));
        s.queues = QueuePolicy {
            mode: PolicyMode::Custom,
            client_ids: vec!["keep-*".into()],
            dynamic: true,
        };
        assert!(s.persists_queue("keep-1", &[]));
        assert!(!s.persists_queue("other", &[]));
        let ask = [("aio-persistence".to_owned(), "true".to_owned())];
        assert!(s.persists_queue("other", &ask));
        s.queues.dynamic = false;
        assert!(!s.persists_queue("other", &ask));
        s.queues.mode = PolicyMode::All;
        assert!(s.persists_queue("other", &[]));
    }
}
