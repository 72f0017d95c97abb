//! The application message as the router fans it out: one `Arc<Message>` shared by every subscriber.

use std::time::{Duration, Instant};

use bytes::Bytes;
use wardgate_protocol::{PublishProperties, QoS, TopicName, Will};

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::budget::Charge;
use crate::ids::SessionId;

/// What one user property costs in memory beyond its key and value bytes: the `(String, String)`
/// slot in its vector and the two heap allocations' rounding and bookkeeping.
pub const PROPERTY_OVERHEAD: usize = 80;

/// A published application message, immutable once routed.
///
/// Per-subscriber differences (granted QoS, retain flag, subscription identifiers, packet id, topic
/// alias, remaining expiry) live in [`Delivery`], so the payload is never copied during fan-out.
#[derive(Debug)]
pub struct Message {
    /// The topic it was published to.
    pub topic: TopicName,
    /// The application payload: from a client, its own allocation below 64 KiB (a slice would
    /// keep the publisher's whole read buffer alive while the message is queued), a slice of
    /// the packet's buffer above.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// Properties forwarded to subscribers. `topic_alias` and `subscription_identifiers` are always
    /// empty here: they are per connection.
    pub properties: PublishProperties,
    /// The session that published it (for No Local), if any.
    pub origin: Option<SessionId>,
    /// When the message expires (from Message Expiry Interval), if it does.
    pub expires_at: Option<Instant>,
}

impl Message {
    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The Message Expiry Interval to forward at `now`: the remaining whole seconds, rounded up,
    /// or `None` when the message has no expiry. Expired messages yield `Some(0)`.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }

    /// The bytes the memory budget charges for this message: its payload and topic, and the data
    /// of its properties with [`PROPERTY_OVERHEAD`] for each user property (two heap strings in
    /// a vector: a packet of many tiny user properties costs several times its size in memory).
    pub fn weight(&self) -> u64 {
        let p = &self.properties;
        let properties = properties_weight(
            &p.user_properties,
            p.response_topic.as_ref(),
            p.correlation_data.as_ref(),
            p.content_type.as_ref(),
        );
        (self.payload.len() + self.topic.as_str().len() + properties) as u64
    }

    /// Computes the absolute expiry from a Message Expiry Interval in seconds.
    pub fn expiry_from(now: Instant, interval: Option<u32>) -> Option<Instant> {
        interval.map(|secs| now + Duration::from_secs(u64::from(secs)))
    }
}

/// What a will costs in memory while its session holds it, as [`Message::weight`] counts the
/// message it becomes.
pub fn will_weight(will: &Will) -> u64 {
    let p = &will.properties;
    let properties = properties_weight(
        &p.user_properties,
        p.response_topic.as_ref(),
        p.correlation_data.as_ref(),
        p.content_type.as_ref(),
    );
    (will.payload.len() + will.topic.as_str().len() + properties) as u64
}

/// The memory the properties of a message hold: their data, and [`PROPERTY_OVERHEAD`] for each
/// user property.
fn properties_weight(
    users: &[(String, String)],
    response_topic: Option<&TopicName>,
    correlation_data: Option<&Bytes>,
    content_type: Option<&String>,
) -> usize {
    let users: usize = users
        .iter()
        .map(|(k, v)| k.len() + v.len() + PROPERTY_OVERHEAD)
        .sum();
    users
        + response_topic.map_or(0, |t| t.as_str().len())
        + correlation_data.map_or(0, Bytes::len)
        + content_type.map_or(0, String::len)
}

/// One message queued for one session, with what that subscription decided about it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// The QoS to deliver with: the minimum of the publish QoS and the granted QoS.
    pub qos: QoS,
    /// The RETAIN flag to send (Retain As Published, or set for retained messages sent on subscribe).
    pub retain: bool,
    /// Subscription identifiers of every matching subscription of this session.
    pub subscription_ids: Vec<u32>,
    /// Set when the delivery came through a shared subscription: which group, so that it can be
    /// handed to another member if this one goes away before acknowledging it.
    pub shared: Option<SharedRef>,
    /// The message's share of the in-flight PUBLISH budget, released with the last copy.
    pub(crate) charge: Option<Arc<Charge>>,
    /// Its key in the session's stored queue (`None`: not stored).
    pub(crate) seq: Option<NonZeroU64>,
}

impl Delivery {
    /// The bytes this copy counts against its session's `max_queued_bytes`: its message's
    /// charge to the memory budget (none for copies not charged, such as retained messages sent
    /// on subscribe, which the retained store holds anyway), and its own subscription
    /// identifiers (one per matching subscription: a session with thousands of overlapping
    /// subscriptions makes every copy that large).
    pub(crate) fn bytes(&self) -> u64 {
        let ids = (self.subscription_ids.len() * std::mem::size_of::<u32>()) as u64;
        self.charge.as_ref().map_or(0, |c| c.bytes()) + ids
    }
}

/// The shared subscription group a delivery was chosen for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRef {
    /// The share name (`$share/<group>/...`).
    pub group: Arc<str>,
    /// The filter after the share name.
    pub filter: wardgate_protocol::TopicFilter,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(expires_at: Option<Instant>) -> Message {
        Message {
            topic: TopicName::new("a/b").expect("valid topic"),
            payload: Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProperties::default(),
            origin: None,
            expires_at,
        }
    }

    #[test]
    fn remaining_expiry_rounds_up_and_reaches_zero() {
        let now = Instant::now();
        let msg = message(Message::expiry_from(now, Some(10)));
        assert_eq!(msg.remaining_expiry(now), Some(10));
        assert_eq!(
            msg.remaining_expiry(now + Duration::from_millis(500)),
            Some(10)
        );
        assert_eq!(
            msg.remaining_expiry(now + Duration::from_millis(9_001)),
            Some(1)
        );
        assert_eq!(msg.remaining_expiry(now + Duration::from_secs(10)), Some(0));
        assert!(msg.is_expired(now + Duration::from_secs(10)));
        assert!(!msg.is_expired(now + Duration::from_secs(9)));
        assert_eq!(message(None).remaining_expiry(now), None);
    }
}
