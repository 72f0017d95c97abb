//! Retained messages: one per topic, replaced by a newer retained publish, cleared by an empty one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use wardgate_protocol::{TopicFilter, TopicName};

use crate::message::Message;

/// The retained-message store.
///
/// Lookup by filter scans every retained topic; that is linear in the number of retained topics
/// and only happens on SUBSCRIBE, never on the publish path.
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: HashMap<TopicName, Arc<Message>>,
    bytes: usize,
    /// Topics whose current message is in the persistent store.
    persisted: HashSet<TopicName>,
}

impl RetainedStore {
    /// Stores `message` as the retained message of its topic, or clears the topic when the payload
    /// is empty [MQTT-3.3.1-6, 3.3.1-7].
    pub fn apply(&mut self, message: &Arc<Message>) {
        if message.payload.is_empty() {
            if let Some(old) = self.by_topic.remove(&message.topic) {
                self.bytes -= old.payload.len();
            }
            return;
        }
        self.bytes += message.payload.len();
        if let Some(old) = self.by_topic.insert(message.topic.clone(), message.clone()) {
            self.bytes -= old.payload.len();
        }
    }

    /// The retained messages matching `filter` that have not expired at `now`.
    pub fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        self.by_topic
            .iter()
            .filter(|(topic, msg)| filter.matches(topic.as_str()) && !msg.is_expired(now))
            .map(|(_, msg)| msg.clone())
            .collect()
    }

    /// Removes expired messages; returns their topics, each with whether it was persisted.
    pub fn purge_expired(&mut self, now: Instant) -> Vec<(TopicName, bool)> {
        let mut purged = Vec::new();
        let bytes = &mut self.bytes;
        let persisted = &mut self.persisted;
        self.by_topic.retain(|topic, m| {
            let keep = !m.is_expired(now);
            if !keep {
                *bytes -= m.payload.len();
                let was = persisted.remove(topic);
                purged.push((topic.clone(), was));
            }
            keep
        });
        purged
    }

    /// Records whether `topic`'s retained message is in the persistent store; returns whether
    /// the previous one was.
    pub fn set_persisted(&mut self, topic: &TopicName, persisted: bool) -> bool {
        if persisted {
            !self.persisted.insert(topic.clone())
        } else {
            self.persisted.remove(topic)
        }
    }

    /// Number of retained topics.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Payload bytes retained.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;
    use wardgate_protocol::{PublishProperties, QoS};

    fn msg(topic: &str, payload: &'static [u8], expires_at: Option<Instant>) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::new(topic).expect("valid topic"),
            payload: Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: PublishProperties::default(),
            origin: None,
            expires_at,
        })
    }

    #[test]
    fn set_replace_clear_and_match() {
        let now = Instant::now();
        let mut store = RetainedStore::default();
        store.apply(&msg("a/b", b"1", None));
        store.apply(&msg("a/b", b"22", None));
        store.apply(&msg("a/c", b"3", None));
        store.apply(&msg("$SYS/x", b"4", None));
        assert_eq!(store.len(), 3);
        assert_eq!(store.bytes(), 4);
        let all = TopicFilter::new("#").expect("valid");
        let got = store.matching(&all, now);
        assert_eq!(got.len(), 2, "# does not match $SYS");
        let ab = store.matching(&TopicFilter::new("a/b").expect("valid"), now);
        assert_eq!(&ab[0].payload[..], b"22");
        store.apply(&msg("a/b", b"", None));
        assert_eq!(store.len(), 2);
        assert_eq!(store.bytes(), 2);
    }

    #[test]
    fn expired_retained_messages_are_not_delivered_and_are_purged() {
        let now = Instant::now();
        let mut store = RetainedStore::default();
        store.apply(&msg("t", b"x", Some(now + Duration::from_secs(1))));
        let f = TopicFilter::new("t").expect("valid");
        assert_eq!(store.matching(&f, now).len(), 1);
        assert!(store.matching(&f, now + Duration::from_secs(2)).is_empty());
        assert_eq!(store.purge_expired(now + Duration::from_secs(2)).len(), 1);
        assert!(store.is_empty());
    }
}
