//! The application message as the router fans it out: one `Arc<Message>` shared by every subscriber.

use std::time::{Duration, Instant};

use bytes::Bytes;
use wardgate_protocol::{PublishProperties, QoS, TopicName};

use std::sync::Arc;

use crate::budget::Charge;
use crate::session::SessionId;

/// A published application message, immutable once routed.
///
/// Per-subscriber differences (granted QoS, retain flag, subscription identifiers, packet id, topic
/// alias, remaining expiry) live in [`Delivery`], so the payload is never copied during fan-out.
#[derive(Debug)]
pub struct Message {
    /// The topic it was published to.
    pub topic: TopicName,
    /// The application payload (zero-copy slice of the publisher's read buffer).
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

    /// Computes the absolute expiry from a Message Expiry Interval in seconds.
    pub fn expiry_from(now: Instant, interval: Option<u32>) -> Option<Instant> {
        interval.map(|secs| now + Duration::from_secs(u64::from(secs)))
    }
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
    #[expect(
        dead_code,
        reason = "held for its Drop, which gives the bytes back to the budget"
    )]
    pub(crate) charge: Option<Arc<Charge>>,
    /// Its key in the session's stored queue; 0 when it is not stored.
    pub(crate) seq: u64,
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
