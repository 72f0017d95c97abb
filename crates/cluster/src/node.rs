//! A node's part of the cluster (docs/cluster.md): its NATS connection, the streams and buckets
//! it makes sure exist, the [`Fabric`] the core forwards to, the interest subscriptions that
//! bring other nodes' messages here, and the router that hands them to the core.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_core::store::RecoveredSession;
use wardgate_core::{Broker, Fabric, Message, RemoteScope, Ticket, Wake};
use wardgate_protocol::{QoS, SubscriptionFilter, TopicFilter, TopicName};

use crate::error::NodeError;
use crate::frame;
use crate::outbox::{self, Link, Outbox};
use crate::ownership::Ownership;
use crate::retained;
use crate::subject::{filter_subjects, topic_subject};
use crate::takeover;

/// How a node joins the cluster.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// NATS server URLs (`nats://host:port`); the client learns the rest of the NATS cluster.
    pub urls: Vec<String>,
    /// This node's id: unique in the cluster, a valid NATS subject token.
    pub node_id: String,
    /// JetStream replicas of the stream and buckets (1, 3 or 5).
    pub replicas: usize,
    /// The first token of every subject (and, upper-cased, of every stream and bucket name).
    pub prefix: String,
    /// How long the QoS 1/2 message stream keeps a message.
    pub max_age: Duration,
}

/// This node in the cluster: what the server and the admin API ask about it.
pub struct Node {
    id: String,
    fabric: Arc<NodeFabric>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("id", &self.id).finish()
    }
}

impl Node {
    /// Connects to NATS, makes sure the message stream and the retained bucket exist, makes
    /// `broker` a node of the cluster ([`Broker::join`]), loads the cluster's retained messages,
    /// and starts the tasks that carry messages both ways on `tracker`, until `stop`.
    pub async fn join(
        broker: Arc<Broker>,
        options: NodeOptions,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Result<Arc<Node>, NodeError> {
        let urls = options.urls.join(",");
        let client = async_nats::ConnectOptions::new()
            .name(format!("wardgate-{}", options.node_id))
            .connection_timeout(Duration::from_secs(5))
            .connect(urls.as_str())
            .await
            .map_err(|e| NodeError::Connect {
                urls: urls.clone(),
                reason: e.to_string(),
            })?;
        let jetstream = jetstream::new(client.clone());
        let names = Names::new(&options.prefix);
        jetstream
            .get_or_create_stream(stream::Config {
                name: names.messages_stream.clone(),
                subjects: vec![format!("{}.>", names.durable_messages)],
                num_replicas: options.replicas,
                storage: stream::StorageType::File,
                max_age: options.max_age,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| NodeError::JetStream {
                what: "stream",
                name: names.messages_stream.clone(),
                reason: e.to_string(),
            })?;
        let retained = bucket(&jetstream, &names.retained_bucket, options.replicas).await?;

        let clients = bucket(&jetstream, &names.clients_bucket, options.replicas).await?;
        let ownership = Ownership {
            clients,
            client: client.clone(),
            node_id: options.node_id.clone(),
            prefix: options.prefix.clone(),
            takeover_timeout: TAKEOVER_TIMEOUT,
        };
        let requests = takeover::listen(&client, &options.prefix, &options.node_id).await?;
        tracker.spawn(takeover::serve(
            broker.clone(),
            client.clone(),
            requests,
            stop.clone(),
        ));
        let outbox = Arc::new(Outbox::default());
        let fabric = Arc::new(NodeFabric {
            node_id: options.node_id.clone(),
            incarnation: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            names,
            seq: AtomicU64::new(0),
            outbox: outbox.clone(),
            interest: Mutex::new(HashMap::new()),
            interest_changed: Notify::new(),
            ownership,
        });
        let link = Link {
            client: client.clone(),
            jetstream,
            retained: retained.clone(),
        };
        // The retained messages first, so a subscriber of this node sees them from the start.
        let watch = retained::load(&broker, &retained, &fabric.names.retained_key).await?;
        tracker.spawn(retained::follow(
            broker.clone(),
            watch,
            fabric.names.retained_key.clone(),
            stop.clone(),
        ));
        tracker.spawn(outbox::send(outbox, link, stop.clone()));
        let (incoming, received) = mpsc::channel(INCOMING);
        tracker.spawn(route(
            broker.clone(),
            options.node_id.clone(),
            received,
            stop.clone(),
        ));
        tracker.spawn(subscribe(
            fabric.clone(),
            client,
            incoming,
            tracker.clone(),
            stop,
        ));
        if broker.join(fabric.clone()).is_err() {
            tracing::warn!("cluster: the broker was already a node of a cluster");
        }
        Ok(Arc::new(Node {
            id: options.node_id,
            fabric,
        }))
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// QoS 0 messages not sent to the cluster (backlog full, or refused by NATS).
    pub fn dropped(&self) -> u64 {
        self.fabric.outbox.dropped.load(Ordering::Relaxed)
    }

    /// QoS 1/2 publishes sent again after JetStream refused or did not acknowledge them.
    pub fn retried(&self) -> u64 {
        self.fabric.outbox.retried.load(Ordering::Relaxed)
    }
}

/// Makes sure the key-value bucket `name` exists (one value per key, on file, `replicas`).
async fn bucket(
    jetstream: &jetstream::Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, NodeError> {
    jetstream
        .create_or_update_key_value(kv::Config {
            bucket: name.to_owned(),
            history: 1,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| NodeError::JetStream {
            what: "bucket",
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

/// How long a node has to answer a takeover request before it is taken for gone.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages received from NATS and not routed yet, at most (the subscription tasks wait).
const INCOMING: usize = 8_192;

/// The subjects, stream and bucket names under one prefix.
struct Names {
    /// `<prefix>.m.0`: QoS 0 messages (core NATS only).
    messages: String,
    /// `<prefix>.m.1`: QoS 1/2 messages (captured by the stream).
    durable_messages: String,
    /// `<prefix>.m.*`: both, for subscriptions.
    any_messages: String,
    /// `<PREFIX>_MSG`.
    messages_stream: String,
    /// `<PREFIX>_RETAINED`.
    retained_bucket: String,
    /// The prefix of a retained message's key (`r`).
    retained_key: String,
    /// `<PREFIX>_CLIENTS`: which node holds each client ID.
    clients_bucket: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        let upper = prefix.to_ascii_uppercase().replace(['.', '-'], "_");
        Names {
            messages: format!("{prefix}.m.0"),
            durable_messages: format!("{prefix}.m.1"),
            any_messages: format!("{prefix}.m.*"),
            messages_stream: format!("{upper}_MSG"),
            retained_bucket: format!("{upper}_RETAINED"),
            retained_key: "r".to_owned(),
            clients_bucket: format!("{upper}_CLIENTS"),
        }
    }
}

/// The core's view of the cluster.
struct NodeFabric {
    node_id: String,
    /// Distinguishes this run of the node in JetStream message ids (a restarted node's sequence
    /// numbers start again).
    incarnation: u64,
    names: Names,
    seq: AtomicU64,
    outbox: Arc<Outbox>,
    /// Local subscriptions per filter (plain or shared).
    interest: Mutex<HashMap<SubscriptionFilter, usize>>,
    interest_changed: Notify,
    ownership: Ownership,
}

impl Fabric for NodeFabric {
    fn forward(&self, message: &Message) -> Option<Ticket> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let frame = frame::encode(message, &self.node_id, seq, now, SystemTime::now());
        if message.retain {
            let key = topic_subject(&self.names.retained_key, &message.topic);
            let value = (!message.payload.is_empty()).then(|| frame.clone());
            self.outbox.push_retained(key, value);
        }
        if message.qos == QoS::AtMostOnce {
            let subject = topic_subject(&self.names.messages, &message.topic);
            self.outbox.push_message(subject, frame);
            return None;
        }
        let subject = topic_subject(&self.names.durable_messages, &message.topic);
        let id = format!("{}-{:x}-{seq}", self.node_id, self.incarnation);
        Some(self.outbox.push_durable(subject, frame, id))
    }

    fn durable(&self) -> Ticket {
        self.outbox.durable()
    }

    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        self.outbox.wait_durable(ticket, waker);
    }

    fn interest(&self, filter: &SubscriptionFilter, held: bool) {
        let mut interest = self.interest.lock();
        if held {
            *interest.entry(filter.clone()).or_default() += 1;
        } else if let Some(n) = interest.get_mut(filter) {
            *n -= 1;
            if *n == 0 {
                interest.remove(filter);
            }
        }
        drop(interest);
        self.interest_changed.notify_one();
    }

    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        resume: bool,
    ) -> Pin<Box<dyn Future<Output = Option<RecoveredSession>> + Send + 'a>> {
        Box::pin(self.ownership.claim(client_id, resume))
    }
}

/// One NATS subscription the node wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Want {
    /// Plain subscribers' messages on `subject` (a first-level cover, below).
    Plain { subject: String },
    /// Shared group `group` on `filter`, through a NATS queue group.
    Group {
        subject: String,
        group: Arc<str>,
        filter: TopicFilter,
    },
}

/// What the node wants now. Plain interest is kept per first topic level: a filter `a/b/+`
/// subscribes `…a` and `…a.>`, a filter starting with a wildcard subscribes every
/// non-`$` topic. Such subscriptions never overlap, so every message reaches the node on one
/// subscription only, in its publisher's order; the core's index does the fine matching.
fn wanted(names: &Names, interest: &HashMap<SubscriptionFilter, usize>) -> HashSet<Want> {
    let mut wants = HashSet::new();
    let mut every_topic = false;
    let mut first_levels = HashSet::new();
    for filter in interest.keys() {
        let (plain, group) = filter.route();
        if let Some(group) = group {
            for subject in filter_subjects(&names.any_messages, plain) {
                wants.insert(Want::Group {
                    subject,
                    group: group.clone(),
                    filter: plain.clone(),
                });
            }
            continue;
        }
        let first = plain.split('/').next().unwrap_or_default();
        if first == "+" || first == "#" {
            every_topic = true;
        } else if let Ok(level) = TopicName::new(first) {
            first_levels.insert(level);
        }
    }
    if every_topic {
        wants.insert(Want::Plain {
            subject: format!("{}.t.>", names.any_messages),
        });
    }
    for level in first_levels {
        if every_topic && !level.is_system() {
            continue;
        }
        let subject = topic_subject(&names.any_messages, &level);
        wants.insert(Want::Plain {
            subject: format!("{subject}.>"),
        });
        wants.insert(Want::Plain { subject });
    }
    wants
}

/// A message from NATS, for the router.
struct Incoming {
    payload: Bytes,
    group: Option<(Arc<str>, TopicFilter)>,
}

/// Keeps the node's NATS subscriptions equal to what its sessions need, until `stop`.
async fn subscribe(
    fabric: Arc<NodeFabric>,
    client: async_nats::Client,
    incoming: mpsc::Sender<Incoming>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let mut held: HashMap<Want, CancellationToken> = HashMap::new();
    loop {
        let wants = wanted(&fabric.names, &fabric.interest.lock());
        let mut added = false;
        for want in &wants {
            if held.contains_key(want) {
                continue;
            }
            match open(&client, want).await {
                Ok(subscriber) => {
                    let token = stop.child_token();
                    let group = match want {
                        Want::Plain { .. } => None,
                        Want::Group { group, filter, .. } => Some((group.clone(), filter.clone())),
                    };
                    tracker.spawn(relay(subscriber, group, incoming.clone(), token.clone()));
                    held.insert(want.clone(), token);
                    added = true;
                }
                Err(e) => tracing::warn!(error = %e, "cluster: a subscription failed; retrying"),
            }
        }
        if added {
            // The subscriptions are at the server before the ones they replace go.
            let _ = client.flush().await;
        }
        held.retain(|want, token| {
            let keep = wants.contains(want);
            if !keep {
                token.cancel();
            }
            keep
        });
        let retry = held.len() < wants.len();
        tokio::select! {
            () = fabric.interest_changed.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)), if retry => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn open(
    client: &async_nats::Client,
    want: &Want,
) -> Result<async_nats::Subscriber, NodeError> {
    let (subject, result) = match want {
        Want::Plain { subject } => (subject, client.subscribe(subject.clone()).await),
        Want::Group {
            subject,
            group,
            filter,
        } => (
            subject,
            client
                .queue_subscribe(subject.clone(), queue_name(group, filter))
                .await,
        ),
    };
    result.map_err(|e| NodeError::Subscribe {
        subject: subject.clone(),
        reason: e.to_string(),
    })
}

/// The NATS queue group of MQTT shared group `group` on `filter` (a group is its name and its
/// filter): the name as a subject token, and a hash of the filter.
fn queue_name(group: &str, filter: &TopicFilter) -> String {
    let mut hasher = DefaultHasher::new();
    filter.as_str().hash(&mut hasher);
    let name: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    format!("g{name}-{:016x}", hasher.finish())
}

/// Passes one subscription's messages to the router, in order, until `stop` (which drops the
/// subscription: NATS is told).
async fn relay(
    mut subscriber: async_nats::Subscriber,
    group: Option<(Arc<str>, TopicFilter)>,
    incoming: mpsc::Sender<Incoming>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            m = subscriber.next() => m,
            () = stop.cancelled() => None,
        };
        let Some(message) = message else { return };
        let item = Incoming {
            payload: message.payload,
            group: group.clone(),
        };
        if incoming.send(item).await.is_err() {
            return;
        }
    }
}

/// Routes what other nodes published to this node's sessions, until `stop`.
async fn route(
    broker: Arc<Broker>,
    node_id: String,
    mut received: mpsc::Receiver<Incoming>,
    stop: CancellationToken,
) {
    let mut recent = Recent::default();
    loop {
        let item = tokio::select! {
            item = received.recv() => item,
            () = stop.cancelled() => None,
        };
        let Some(item) = item else { return };
        let read = match frame::decode(item.payload, Instant::now(), SystemTime::now()) {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: a message from NATS is not a Wardgate frame; dropped");
                continue;
            }
        };
        match &item.group {
            None => {
                // This node routed its own messages already; a message seen twice (while a
                // subscription is replaced by a wider one) is routed once.
                if read.origin == node_id || !recent.first_time(&read.origin, read.seq) {
                    continue;
                }
                broker.publish_remote(read.message, RemoteScope::Subscribers);
            }
            Some((group, filter)) => {
                let scope = RemoteScope::Group { group, filter };
                broker.publish_remote(read.message, scope);
            }
        }
    }
}

/// The last messages routed, by origin and sequence number, to route a message only once when
/// it arrives twice.
#[derive(Default)]
struct Recent {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    const CAPACITY: usize = 16_384;

    fn first_time(&mut self, origin: &str, seq: u64) -> bool {
        let mut hasher = DefaultHasher::new();
        (origin, seq).hash(&mut hasher);
        let key = hasher.finish();
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interest(filters: &[&str]) -> HashMap<SubscriptionFilter, usize> {
        filters
            .iter()
            .map(|f| {
                let f = TopicFilter::new(*f).expect("valid");
                (SubscriptionFilter::new(f).expect("well-formed"), 1)
            })
            .collect()
    }

    fn subjects(filters: &[&str]) -> Vec<String> {
        let mut subjects: Vec<String> = wanted(&Names::new("wg"), &interest(filters))
            .into_iter()
            .map(|w| match w {
                Want::Plain { subject } => subject,
                Want::Group { subject, group, .. } => format!("{subject} queue {group}"),
            })
            .collect();
        subjects.sort();
        subjects
    }

    #[test]
    fn plain_interest_is_a_first_level_cover_that_never_overlaps() {
        assert_eq!(
            subjects(&["a/b/+", "a/#", "$SYS/x", "b c"]),
            [
                "wg.m.*.s._24535953",
                "wg.m.*.s._24535953.>",
                "wg.m.*.t._622063",
                "wg.m.*.t._622063.>",
                "wg.m.*.t.a",
                "wg.m.*.t.a.>",
            ]
        );
        // A filter starting with a wildcard takes every non-`$` topic, and only that.
        assert_eq!(
            subjects(&["+/x", "a/b", "$SYS/#"]),
            ["wg.m.*.s._24535953", "wg.m.*.s._24535953.>", "wg.m.*.t.>"]
        );
    }

    #[test]
    fn a_shared_group_subscribes_its_filters_subjects_in_a_queue_group() {
        assert_eq!(
            subjects(&["$share/g/a/#"]),
            ["wg.m.*.t.a queue g", "wg.m.*.t.a.> queue g"]
        );
    }

    #[test]
    fn a_message_seen_twice_is_routed_once() {
        let mut recent = Recent::default();
        assert!(recent.first_time("a", 1));
        assert!(!recent.first_time("a", 1));
        assert!(recent.first_time("b", 1));
        for seq in 2..(Recent::CAPACITY as u64 + 10) {
            assert!(recent.first_time("a", seq));
        }
        assert_eq!(recent.seen.len(), Recent::CAPACITY);
    }
}
