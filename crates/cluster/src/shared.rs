//! Shared groups' QoS 1/2 messages across nodes (docs/cluster.md, "Shared subscriptions"): one
//! durable JetStream pull consumer per group on the message stream, pulled by every node that
//! holds a member of the group, so JetStream gives each message to one node; and the hand-over
//! of a leaving member's unacknowledged copies through the group's own subject in the stream.
//! (QoS 0 shared messages stay on NATS queue groups: `node.rs`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_core::{Broker, RemoteScope};
use wardgate_protocol::{SubscriptionFilter, TopicFilter};

use crate::frame;
use crate::subject::{filter_subjects, stable_hash};

/// How long JetStream waits for a node's acknowledgement of a pulled message before it gives
/// the message to a puller again (a node acknowledges once the message is routed).
const ACK_WAIT: Duration = Duration::from_secs(10);

/// How long a group's consumer outlives its last puller (JetStream then removes it).
const INACTIVE: Duration = Duration::from_secs(300);

/// When a pulled message finds no member here, how soon JetStream offers it again.
const NO_MEMBER_DELAY: Duration = Duration::from_millis(100);

/// How far before its first local subscription a group's new consumer starts: the nodes' and
/// NATS servers' clocks may differ, and a message published just before a SUBSCRIBE may be
/// delivered, one published after it must be.
const START_MARGIN: Duration = Duration::from_secs(1);

/// Messages one pull request asks for.
const BATCH: usize = 64;

/// How long a failed consumer (JetStream not ready, the stream gone) waits before it tries again.
const RETRY: Duration = Duration::from_secs(1);

/// A shared group: its name and its filter (`$share/<name>/<filter>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Group {
    name: Arc<str>,
    filter: TopicFilter,
}

/// A group's subscriptions on this node.
#[derive(Debug, Clone, Copy)]
struct Held {
    subscriptions: usize,
    /// When the first of them was made.
    since: SystemTime,
}

/// The shared groups this node's sessions are members of.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    held: Mutex<HashMap<Group, Held>>,
    changed: Notify,
}

impl Groups {
    /// This node gained (`held`) or lost one subscription to `filter`; plain filters are not
    /// a group's and are ignored.
    pub(crate) fn interest(&self, filter: &SubscriptionFilter, held: bool) {
        let (plain, name) = filter.route();
        let Some(name) = name else { return };
        let group = Group {
            name: name.clone(),
            filter: plain.clone(),
        };
        let mut groups = self.held.lock();
        if held {
            let entry = groups.entry(group).or_insert(Held {
                subscriptions: 0,
                since: SystemTime::now(),
            });
            entry.subscriptions += 1;
        } else if let Some(entry) = groups.get_mut(&group) {
            entry.subscriptions -= 1;
            if entry.subscriptions == 0 {
                groups.remove(&group);
            }
        }
        drop(groups);
        self.changed.notify_one();
    }

    /// The groups held now, each with the time of its first subscription here.
    fn current(&self) -> HashMap<Group, SystemTime> {
        let groups = self.held.lock();
        groups
            .iter()
            .map(|(g, held)| (g.clone(), held.since))
            .collect()
    }
}

/// The JetStream consumer name of shared group `name` on `filter`: `g` and a [`stable_hash`],
/// which every node and every version computes alike, as all nodes must pull from one consumer.
pub(crate) fn consumer_name(name: &str, filter: &TopicFilter) -> String {
    let mut bytes = Vec::with_capacity(name.len() + 1 + filter.as_str().len());
    bytes.extend_from_slice(name.as_bytes());
    // Not a byte of UTF-8: the name and the filter cannot run into each other.
    bytes.push(0xff);
    bytes.extend_from_slice(filter.as_str().as_bytes());
    format!("g{}", stable_hash(&bytes))
}

/// The subject a leaving member's copies are handed over on, under `durable` (`<prefix>.m.1`):
/// class `g`, which no plain subscription and no other group takes.
pub(crate) fn hand_over_subject(durable: &str, name: &str, filter: &TopicFilter) -> String {
    format!("{durable}.g.{}", consumer_name(name, filter))
}

/// The consumer of shared group `group`: its filter's subjects in the QoS 1/2 class, hashed
/// topics, and its hand-over subject; the messages stored from `since` on, each acknowledged.
fn consumer_config(durable: &str, group: &Group, since: SystemTime) -> pull::Config {
    let mut subjects = filter_subjects(durable, &group.filter);
    subjects.push(format!("{durable}.h.>"));
    subjects.push(hand_over_subject(durable, &group.name, &group.filter));
    pull::Config {
        durable_name: Some(consumer_name(&group.name, &group.filter)),
        filter_subjects: subjects,
        deliver_policy: DeliverPolicy::ByStartTime {
            start_time: time::OffsetDateTime::from(since - START_MARGIN),
        },
        ack_policy: AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        inactive_threshold: INACTIVE,
        ..Default::default()
    }
}

/// Where the pullers take messages from and give them to.
pub(crate) struct Pulling {
    pub(crate) broker: Arc<Broker>,
    pub(crate) jetstream: jetstream::Context,
    /// `<PREFIX>_MSG`.
    pub(crate) stream: String,
    /// `<prefix>.m.1`.
    pub(crate) durable: String,
    /// Messages from other nodes routed here (shared with the node's router).
    pub(crate) received: Arc<AtomicU64>,
}

/// Keeps one puller per group this node's sessions are members of, until `stop`.
pub(crate) async fn follow(
    groups: Arc<Groups>,
    pulling: Arc<Pulling>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut pullers: HashMap<Group, CancellationToken> = HashMap::new();
    loop {
        let wanted = groups.current();
        for (group, since) in &wanted {
            if !pullers.contains_key(group) {
                let token = stop.child_token();
                let puller = pull(pulling.clone(), group.clone(), *since, token.clone());
                tracker.spawn(puller);
                pullers.insert(group.clone(), token);
            }
        }
        pullers.retain(|group, token| {
            let keep = wanted.contains_key(group);
            if !keep {
                token.cancel();
            }
            keep
        });
        tokio::select! {
            () = groups.changed.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Pulls `group`'s messages (held here `since`) and routes each to a local member, until
/// `stop`; binds to the consumer again after a failure.
async fn pull(pulling: Arc<Pulling>, group: Group, since: SystemTime, stop: CancellationToken) {
    loop {
        if let Err(e) = pull_until_failure(&pulling, &group, since, &stop).await {
            tracing::warn!(group = %group.name, filter = %group.filter, error = %e,
                "cluster: a shared group's consumer failed; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn pull_until_failure(
    pulling: &Pulling,
    group: &Group,
    since: SystemTime,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut messages = tokio::select! {
        messages = bind(pulling, group, since) => messages?,
        () = stop.cancelled() => return Ok(()),
    };
    loop {
        let next = tokio::select! {
            next = messages.next() => next,
            () = stop.cancelled() => return Ok(()),
        };
        let Some(next) = next else {
            return Err("the pull stream ended".into());
        };
        let message = next.map_err(|e| e.to_string())?;
        let payload = message.payload.clone();
        let ack = route_one(&pulling.broker, &pulling.received, group, payload);
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "cluster: acknowledging a shared group's message failed");
        }
    }
}

/// The group's consumer: the one that exists (made by another node, or before), or a new one
/// starting at `since` (a node that loses the race to make it binds on its next attempt).
async fn bind(pulling: &Pulling, group: &Group, since: SystemTime) -> Result<pull::Stream, String> {
    let name = consumer_name(&group.name, &group.filter);
    let jetstream = &pulling.jetstream;
    let consumer: jetstream::consumer::Consumer<pull::Config> = match jetstream
        .get_consumer_from_stream(&name, &pulling.stream)
        .await
    {
        Ok(consumer) => consumer,
        Err(_) => {
            let config = consumer_config(&pulling.durable, group, since);
            jetstream
                .create_consumer_strict_on_stream(config, &pulling.stream)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    consumer
        .stream()
        .max_messages_per_batch(BATCH)
        .messages()
        .await
        .map_err(|e| e.to_string())
}

/// Routes one pulled message to a member of `group` here, and says what JetStream is told: a
/// routed message (or one the member's full queue dropped, counted as on one node) is
/// acknowledged, as is one the group's filter does not match (a hashed topic); one that is not
/// a frame is terminated (never offered again); one that finds no member here is refused, for
/// another puller.
fn route_one(
    broker: &Broker,
    received: &AtomicU64,
    group: &Group,
    payload: bytes::Bytes,
) -> AckKind {
    let read = match frame::decode(payload, Instant::now(), SystemTime::now()) {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: a message in the stream is not a Wardgate frame; dropped");
            return AckKind::Term;
        }
    };
    if !group.filter.matches(read.message.topic.as_str()) {
        return AckKind::Ack;
    }
    let scope = RemoteScope::Group {
        group: &group.name,
        filter: &group.filter,
    };
    let routed = broker.publish_remote(read.message, scope);
    if routed.delivered == 0 && routed.dropped == 0 {
        return AckKind::Nak(Some(NO_MEMBER_DELAY));
    }
    received.fetch_add(1, Ordering::Relaxed);
    AckKind::Ack
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn group(name: &str, filter: &str) -> Group {
        Group {
            name: name.into(),
            filter: TopicFilter::new(filter).expect("valid"),
        }
    }

    #[test]
    fn a_groups_consumer_name_is_stable_and_tells_groups_apart() {
        let f = TopicFilter::new("s/#").expect("valid");
        // The same on every node and every build: pinned (FNV-1a of `g`, 0xff, `s/#`).
        assert_eq!(consumer_name("g", &f), "ga1d6cf7ddedf0be2c2633b1d0baa6a03");
        let g = TopicFilter::new("#").expect("valid");
        assert_ne!(consumer_name("g", &f), consumer_name("h", &f));
        assert_ne!(consumer_name("g", &f), consumer_name("g", &g));
        // The separator keeps "a" + "b/c" and "ab" + "/c"-like splits apart.
        let bc = TopicFilter::new("b/c").expect("valid");
        let c = TopicFilter::new("/c").expect("valid");
        assert_ne!(consumer_name("a", &bc), consumer_name("ab", &c));
    }

    #[test]
    fn a_groups_consumer_takes_its_filters_qos1_subjects_hashed_topics_and_its_hand_over() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let config = consumer_config("wg.m.1", &group("g", "a/#"), since);
        let name = consumer_name("g", &TopicFilter::new("a/#").expect("valid"));
        assert_eq!(config.durable_name.as_deref(), Some(name.as_str()));
        assert_eq!(
            config.filter_subjects,
            [
                "wg.m.1.t.a".to_owned(),
                "wg.m.1.t.a.>".to_owned(),
                "wg.m.1.h.>".to_owned(),
                format!("wg.m.1.g.{name}"),
            ]
        );
        let start = time::OffsetDateTime::from_unix_timestamp(999).expect("valid");
        assert_eq!(
            config.deliver_policy,
            DeliverPolicy::ByStartTime { start_time: start }
        );
        assert_eq!(config.ack_policy, AckPolicy::Explicit);
    }

    struct Asleep;

    impl wardgate_core::Wake for Asleep {
        fn wake(&self) {}
    }

    /// What JetStream is told about a frame of `topic` pulled for `$share/g/s/+` on `broker`.
    fn told(broker: &Broker, topic: &str) -> String {
        let message = wardgate_core::Message {
            topic: wardgate_protocol::TopicName::new(topic).expect("valid"),
            payload: bytes::Bytes::from_static(b"x"),
            qos: wardgate_protocol::QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            origin: None,
            expires_at: None,
        };
        let frame = frame::encode(&message, "a", 1, Instant::now(), SystemTime::now());
        let received = AtomicU64::new(0);
        format!(
            "{:?}",
            route_one(broker, &received, &group("g", "s/+"), frame)
        )
    }

    #[test]
    fn a_pulled_message_is_acknowledged_once_routed_and_refused_when_no_member_is_here() {
        let broker = Broker::new(wardgate_core::BrokerSettings::default());
        assert_eq!(told(&broker, "s/1"), "Nak(Some(100ms))", "no member here");
        let params = wardgate_core::ConnectParams {
            client_id: "member".into(),
            clean_start: true,
            session_expiry: 0,
            protocol: wardgate_protocol::ProtocolVersion::V5,
            receive_maximum: 10,
            will: None,
            principal: None,
            waker: Arc::new(Asleep),
        };
        let member = broker.connect(params, Instant::now());
        let filter = SubscriptionFilter::new(TopicFilter::new("$share/g/s/+").expect("valid"))
            .expect("well-formed");
        let options =
            wardgate_protocol::SubscriptionOptions::new(wardgate_protocol::QoS::AtLeastOnce);
        broker.subscribe(&member.session, &filter, options, None, Instant::now());
        assert_eq!(told(&broker, "s/1"), "Ack", "routed to the member");
        // A hashed topic the group's filter does not match: taken, not routed, not refused.
        assert_eq!(told(&broker, "t/1"), "Ack");
        let routed = AtomicU64::new(0);
        let junk = bytes::Bytes::from_static(b"not a frame");
        let kind = route_one(&broker, &routed, &group("g", "s/+"), junk);
        assert_eq!(format!("{kind:?}"), "Term");
        assert_eq!(member.session.queued_len(), 1, "one copy, for s/1");
    }

    #[test]
    fn groups_count_their_subscriptions_and_ignore_plain_filters() {
        let groups = Groups::default();
        let shared =
            SubscriptionFilter::new(TopicFilter::new("$share/g/a/#").expect("valid")).expect("ok");
        let plain = SubscriptionFilter::new(TopicFilter::new("a/#").expect("valid")).expect("ok");
        groups.interest(&shared, true);
        groups.interest(&shared, true);
        groups.interest(&plain, true);
        let held: HashSet<Group> = groups.current().into_keys().collect();
        assert_eq!(held, HashSet::from([group("g", "a/#")]));
        groups.interest(&shared, false);
        assert_eq!(groups.current().len(), 1);
        groups.interest(&shared, false);
        assert!(groups.current().is_empty());
    }
}
