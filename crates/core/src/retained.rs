//! Retained messages: one per topic, replaced by a newer retained publish, cleared by an empty one.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use wardgate_protocol::{TopicFilter, TopicName};

use crate::message::Message;

/// The retained-message store.
///
/// Topics are kept in order, so a lookup by filter visits only the topics that begin with the
/// filter's literal prefix (the text before its first wildcard): one topic for a filter without
/// wildcards, the subtree for `a/b/+` or `a/b/#`, and every topic only for a filter that starts
/// with a wildcard. A SUBSCRIBE with many filters therefore costs what its filters match, not
/// filters × retained topics (100,000 filters over 10,000 retained topics took minutes).
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: BTreeMap<TopicName, Arc<Message>>,
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
        let mut budget = usize::MAX;
        self.matching_within(filter, now, &mut budget)
            .unwrap_or_default()
    }

    /// Like [`RetainedStore::matching`], visiting at most `*budget` retained topics and taking
    /// those it visits from `budget`. `None` when the budget ran out before the lookup was
    /// complete: the filter then gets none of its retained messages (not an arbitrary part).
    /// It bounds the work of one SUBSCRIBE: a filter starting with a wildcard visits every
    /// retained topic, and a packet may carry thousands of them.
    pub fn matching_within(
        &self,
        filter: &TopicFilter,
        now: Instant,
        budget: &mut usize,
    ) -> Option<Vec<Arc<Message>>> {
        let mut found = Vec::new();
        let (visited, complete) = self.for_each_candidate(filter, *budget, |topic, msg| {
            if filter.matches(topic.as_str()) && !msg.is_expired(now) {
                found.push(msg.clone());
            }
        });
        *budget -= visited;
        complete.then_some(found)
    }

    /// Calls `f` with every retained topic that `filter` may match: those beginning with its
    /// literal prefix, in order, at most `limit` of them. Returns how many it visited and
    /// whether that was all of them.
    fn for_each_candidate(
        &self,
        filter: &TopicFilter,
        limit: usize,
        mut f: impl FnMut(&TopicName, &Arc<Message>),
    ) -> (usize, bool) {
        let text = filter.as_str();
        let Some(wild) = text.find(['+', '#']) else {
            return match self.by_topic.get_key_value(text) {
                Some(_) if limit == 0 => (0, false),
                Some((topic, msg)) => {
                    f(topic, msg);
                    (1, true)
                }
                None => (0, true),
            };
        };
        // `a/b/#` also matches its parent `a/b`: the prefix without the separator covers both.
        let prefix = if text[wild..].starts_with('#') {
            text[..wild].strip_suffix('/').unwrap_or(&text[..wild])
        } else {
            &text[..wild]
        };
        let mut visited = 0;
        for (topic, msg) in self
            .by_topic
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(topic, _)| topic.as_str().starts_with(prefix))
        {
            if visited == limit {
                return (visited, false);
            }
            visited += 1;
            f(topic, msg);
        }
        (visited, true)
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

    /// A lookup visits only the topics under the filter's literal prefix (so a SUBSCRIBE with
    /// many filters costs what they match, not filters × retained topics), and finds exactly
    /// what a scan of every topic with the MQTT matching rule finds.
    #[test]
    fn lookups_visit_only_topics_under_the_literal_prefix() {
        let now = Instant::now();
        let mut store = RetainedStore::default();
        let mut topics: Vec<String> = ["a", "a/b", "a/b/c", "a/bc", "a//", "/", "$SYS/x", "b"]
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        topics.extend((0..1000).map(|i| format!("x/{i}")));
        for t in &topics {
            store.apply(&msg(t, b"1", None));
        }
        let visits = |f: &str| {
            store
                .for_each_candidate(&TopicFilter::new(f).expect("valid"), usize::MAX, |_, _| {})
                .0
        };
        assert_eq!(visits("x/5"), 1);
        assert_eq!(visits("x/nothing"), 0);
        assert_eq!(visits("x/+"), 1000);
        assert_eq!(visits("a/b/#"), 3, "a/b, a/b/c and a/bc");
        assert_eq!(visits("a/+/c"), 4, "everything under a/");
        assert_eq!(visits("#"), topics.len());
        for f in [
            "#", "+", "+/+", "a/#", "a/+", "a/b/#", "a/b/+", "a/+/c", "a//#", "a//+", "/+", "+/",
            "/#", "$SYS/#", "$SYS/+", "+/x", "x/+", "x/7", "x/#", "a/bc", "b/#", "a/b/c/#",
        ] {
            let filter = TopicFilter::new(f).expect("valid");
            let mut got: Vec<String> = store
                .matching(&filter, now)
                .iter()
                .map(|m| m.topic.to_string())
                .collect();
            got.sort();
            let mut expected: Vec<String> = topics
                .iter()
                .filter(|t| filter.matches(t))
                .cloned()
                .collect();
            expected.sort();
            assert_eq!(got, expected, "{f}");
        }
    }

    /// One SUBSCRIBE's retained lookups share a budget of visited topics: a packet of filters
    /// starting with a wildcard stops visiting when it is spent, instead of costing filters ×
    /// retained topics. A filter whose lookup it cuts short gets nothing (not an arbitrary part).
    #[test]
    fn lookups_stop_visiting_when_the_packet_budget_is_spent() {
        let now = Instant::now();
        let mut store = RetainedStore::default();
        for i in 0..1000 {
            store.apply(&msg(&format!("x/{i}"), b"1", None));
        }
        store.apply(&msg("y", b"1", None));
        let filter = |f: &str| TopicFilter::new(f).expect("valid");
        let mut visits = 0;
        let mut budget = 2500;
        let mut complete = 0;
        for _ in 0..100 {
            let before = budget;
            if let Some(found) = store.matching_within(&filter("+/#"), now, &mut budget) {
                assert_eq!(found.len(), 1001);
                complete += 1;
            }
            visits += before - budget;
        }
        assert_eq!(complete, 2, "two full lookups fit in 2,500 visits");
        assert_eq!(
            visits, 2500,
            "then visiting stops (100 filters x 1,001 topics without it)"
        );
        assert_eq!(budget, 0);
        // A spent budget still finds nothing for a literal filter, without visiting.
        assert!(
            store
                .matching_within(&filter("y"), now, &mut budget)
                .is_none()
        );
        let mut one = 1;
        assert_eq!(
            store
                .matching_within(&filter("y"), now, &mut one)
                .map(|m| m.len()),
            Some(1)
        );
        assert_eq!(one, 0);
        let mut some = 10;
        assert!(
            store
                .matching_within(&filter("x/+"), now, &mut some)
                .is_none()
        );
        assert_eq!(some, 0, "a cut lookup takes what it visited");
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
