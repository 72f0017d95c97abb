//! A node's part of the cluster (docs/cluster.md): its NATS connection, the streams and buckets
//! it makes sure exist, the [`Fabric`] the core forwards to, the interest subscriptions that
//! bring other nodes' messages here, and the router that hands them to the core.

use std::collections::{BTreeSet, HashMap, HashSet};
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
use wardgate_core::{ArmedWill, Broker, Fabric, Message, RemoteScope, SharedRef, Ticket, Wake};
use wardgate_protocol::{QoS, SubscriptionFilter, TopicFilter, TopicName};

use crate::auth::NatsAuth;
use crate::consumer;
use crate::error::NodeError;
use crate::frame;
use crate::members::{self, Member, Members};
use crate::outbox::{self, Link, Outbox};
use crate::ownership::Ownership;
use crate::partition;
use crate::patience::patiently;
use crate::recent::Recent;
use crate::retained;
use crate::shared::{self, Groups, Pulling};
use crate::subject::{filter_subjects, topic_subject};
use crate::sweep;
use crate::takeover;
use crate::wills::{self, Wills};

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
    /// What the node presents to the NATS servers.
    pub auth: NatsAuth,
}

/// This node in the cluster: what the server and the admin API ask about it.
pub struct Node {
    id: String,
    fabric: Arc<NodeFabric>,
    client: async_nats::Client,
    members: Arc<Members>,
    /// Messages from other nodes routed here.
    received: Arc<AtomicU64>,
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
        let refused = |reason: String| NodeError::Connect {
            urls: urls.clone(),
            reason,
        };
        let client = options
            .auth
            .apply(async_nats::ConnectOptions::new())
            .map_err(|e| refused(e.to_string()))?
            .name(format!("wardgate-{}", options.node_id))
            .connection_timeout(Duration::from_secs(5))
            .connect(options.urls.as_slice())
            .await
            .map_err(|e| refused(e.to_string()))?;
        let jetstream = jetstream::new(client.clone());
        let names = Names::new(&options.prefix);
        let stream_config = stream::Config {
            name: names.messages_stream.clone(),
            subjects: vec![format!("{}.>", names.durable_messages)],
            num_replicas: options.replicas,
            storage: stream::StorageType::File,
            max_age: options.max_age,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let messages_stream = patiently(|| jetstream.get_or_create_stream(stream_config.clone()))
            .await
            .map_err(|reason| NodeError::JetStream {
                what: "stream",
                name: names.messages_stream.clone(),
                reason,
            })?;
        let retained = bucket(&jetstream, &names.retained_bucket, options.replicas).await?;
        let nodes = patiently(|| {
            jetstream.create_or_update_key_value(members::bucket_config(
                names.nodes_bucket.clone(),
                options.replicas,
            ))
        })
        .await
        .map_err(|reason| NodeError::JetStream {
            what: "bucket",
            name: names.nodes_bucket.clone(),
            reason,
        })?;

        let clients = bucket(&jetstream, &names.clients_bucket, options.replicas).await?;
        let wills_bucket = bucket(&jetstream, &names.wills_bucket, options.replicas).await?;
        let (wills, will_changes) = Wills::new(options.node_id.clone());
        tracker.spawn(wills::write(
            wills_bucket.clone(),
            options.node_id.clone(),
            will_changes,
            stop.clone(),
        ));
        // Before this node serves: keys naming it of sessions it no longer holds go.
        sweep::sweep_lost(&broker, &clients, &options.node_id).await;
        let ownership = Ownership {
            clients,
            client: client.clone(),
            node_id: options.node_id.clone(),
            prefix: options.prefix.clone(),
            takeover_timeout: TAKEOVER_TIMEOUT,
            held: Arc::default(),
        };
        tracker.spawn(ownership.follow(broker.clone(), stop.clone()).await?);
        let requests = takeover::listen(&client, &options.prefix, &options.node_id).await?;
        tracker.spawn(takeover::serve(
            broker.clone(),
            client.clone(),
            requests,
            stop.clone(),
        ));
        let outbox = Arc::new(Outbox::default());
        let groups = Arc::new(Groups::default());
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
            consumer_interest: Notify::new(),
            forwarded: AtomicU64::new(0),
            ownership,
            groups: groups.clone(),
            wills,
        });
        let members = Arc::new(Members::default());
        tracker.spawn(members::follow(
            nodes.clone(),
            members.clone(),
            stop.clone(),
        ));
        tracker.spawn(wills::publish_orphans(
            broker.clone(),
            wills_bucket,
            members.clone(),
            options.node_id.clone(),
            stop.clone(),
        ));
        tracker.spawn(members::heartbeat(
            nodes,
            broker.clone(),
            members.clone(),
            options.node_id.clone(),
            stop.clone(),
        ));
        let received_count = Arc::new(AtomicU64::new(0));
        let connection = client.clone();
        let pulling = Arc::new(Pulling {
            broker: broker.clone(),
            jetstream: jetstream.clone(),
            stream: fabric.names.messages_stream.clone(),
            durable: fabric.names.durable_messages.clone(),
            received: received_count.clone(),
        });
        tracker.spawn(shared::follow(
            groups,
            pulling,
            tracker.clone(),
            stop.clone(),
        ));
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
        tracker.spawn(partition::watch(outbox.clone(), stop.clone()));
        tracker.spawn(outbox::send(outbox, link, stop.clone()));
        let (incoming, received) = mpsc::channel(INCOMING);
        tracker.spawn(route(
            broker.clone(),
            options.node_id.clone(),
            received,
            received_count.clone(),
            stop.clone(),
        ));
        tracker.spawn(subscribe(
            fabric.clone(),
            client,
            incoming,
            tracker.clone(),
            stop.clone(),
        ));
        if broker.join(fabric.clone()).is_err() {
            tracing::warn!("cluster: the broker was already a node of a cluster");
        }
        // After `join`: the consumer's first filter covers the sessions the broker holds.
        let receiver = consumer::Receiver {
            broker: broker.clone(),
            node_id: options.node_id.clone(),
            durable_messages: fabric.names.durable_messages.clone(),
            stream: messages_stream,
            interest: fabric.clone(),
            received: received_count.clone(),
            inactive_threshold: options.max_age,
        };
        let name = consumer::durable_name(&options.node_id);
        consumer::start(receiver, tracker, stop)
            .await
            .map_err(|reason| NodeError::JetStream {
                what: "consumer",
                name,
                reason,
            })?;
        Ok(Arc::new(Node {
            id: options.node_id,
            fabric,
            client: connection,
            members,
            received: received_count,
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

    /// The node that holds the session of `client_id` (connected or not), from the cluster's
    /// ownership bucket; `Err` when the bucket cannot be read.
    pub async fn owner_of(&self, client_id: &str) -> Result<Option<String>, String> {
        self.fabric.ownership.owner(client_id).await
    }

    /// This node's clients' messages handed to the cluster.
    pub fn forwarded(&self) -> u64 {
        self.fabric.forwarded.load(Ordering::Relaxed)
    }

    /// Messages from other nodes routed to this node's sessions.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The state of this node's NATS connection (`connected`, `disconnected`, `pending`).
    pub fn connection_state(&self) -> String {
        self.client.connection_state().to_string()
    }

    /// Every node seen since this one joined (itself included once its first record is back),
    /// by id, with its health now.
    pub fn members(&self) -> Vec<Member> {
        self.members.list()
    }

    /// Makes this node's record, at each heartbeat, report the MQTT ports `ports` returns then.
    pub fn report_ports(&self, ports: impl Fn() -> Vec<u16> + Send + Sync + 'static) {
        self.members.report_ports(Box::new(ports));
    }
}

/// Makes sure the key-value bucket `name` exists (one value per key, on file, `replicas`).
async fn bucket(
    jetstream: &jetstream::Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, NodeError> {
    let config = kv::Config {
        bucket: name.to_owned(),
        history: 1,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    patiently(|| jetstream.create_or_update_key_value(config.clone()))
        .await
        .map_err(|reason| NodeError::JetStream {
            what: "bucket",
            name: name.to_owned(),
            reason,
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
    /// `<PREFIX>_MSG`.
    messages_stream: String,
    /// `<PREFIX>_RETAINED`.
    retained_bucket: String,
    /// The prefix of a retained message's key (`r`).
    retained_key: String,
    /// `<PREFIX>_NODES`: the members' records.
    nodes_bucket: String,
    /// `<PREFIX>_CLIENTS`: which node holds each client ID.
    clients_bucket: String,
    /// `<PREFIX>_WILLS`: the wills the cluster publishes if their node dies.
    wills_bucket: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        let upper = prefix.to_ascii_uppercase().replace(['.', '-'], "_");
        Names {
            messages: format!("{prefix}.m.0"),
            durable_messages: format!("{prefix}.m.1"),
            messages_stream: format!("{upper}_MSG"),
            retained_bucket: format!("{upper}_RETAINED"),
            retained_key: "r".to_owned(),
            nodes_bucket: format!("{upper}_NODES"),
            clients_bucket: format!("{upper}_CLIENTS"),
            wills_bucket: format!("{upper}_WILLS"),
        }
    }
}

/// The core's view of the cluster.
pub(crate) struct NodeFabric {
    node_id: String,
    /// Distinguishes this run of the node in JetStream message ids (a restarted node's sequence
    /// numbers start again).
    incarnation: u64,
    names: Names,
    seq: AtomicU64,
    outbox: Arc<Outbox>,
    /// Local subscriptions per filter (plain or shared).
    pub(crate) interest: Mutex<HashMap<SubscriptionFilter, usize>>,
    /// Wakes the task that keeps the core NATS subscriptions (QoS 0, shared groups).
    interest_changed: Notify,
    /// Wakes the task that keeps the JetStream consumer's filter (QoS 1/2).
    pub(crate) consumer_interest: Notify,
    /// Messages handed to the outbox.
    forwarded: AtomicU64,
    ownership: Ownership,
    /// Shared groups with members here: their QoS 1/2 messages come from JetStream.
    groups: Arc<Groups>,
    /// This node's will records.
    wills: Wills,
}

/// The longest subject (or retained key) made from a topic; a longer one is replaced by a hash
/// of the topic under the class `h` (nats-server's control line is 4 KiB by default, and a topic
/// of 65,535 bytes maps to a subject of up to twice that).
const MAX_SUBJECT: usize = 1_024;

/// The subject of `topic` under `prefix`: its mapped levels, or, when that is longer than
/// [`MAX_SUBJECT`], `<prefix>.h.<hash>` (the frame carries the topic; every node with any
/// interest takes class `h`, and its index does the matching).
fn subject_of(prefix: &str, topic: &TopicName) -> String {
    let subject = topic_subject(prefix, topic);
    if subject.len() <= MAX_SUBJECT {
        return subject;
    }
    let mut high = DefaultHasher::new();
    (0u8, topic.as_str()).hash(&mut high);
    let mut low = DefaultHasher::new();
    (1u8, topic.as_str()).hash(&mut low);
    format!("{prefix}.h.{:016x}{:016x}", high.finish(), low.finish())
}

impl NodeFabric {
    /// `message` as it travels between nodes, under this node's next sequence number.
    fn frame(&self, message: &Message) -> (u64, Bytes) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let frame = frame::encode(
            message,
            &self.node_id,
            seq,
            Instant::now(),
            SystemTime::now(),
        );
        (seq, frame)
    }

    /// The JetStream message id of this node's message `seq` (`Nats-Msg-Id`: the stream stores
    /// a message published twice under one id once).
    fn message_id(&self, seq: u64) -> String {
        format!("{}-{:x}-{seq}", self.node_id, self.incarnation)
    }
}

impl consumer::Interest for NodeFabric {
    fn tails(&self) -> BTreeSet<String> {
        cover(&self.interest.lock())
    }

    fn changed(&self) -> &Notify {
        &self.consumer_interest
    }
}

impl Fabric for NodeFabric {
    fn forward(&self, message: &Message) -> Option<Ticket> {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let (seq, frame) = self.frame(message);
        if message.retain {
            let key = subject_of(&self.names.retained_key, &message.topic);
            // A hashed key is cleared with an empty message (its key does not give the topic
            // back); a plain one is deleted.
            let hashed = key.starts_with(&format!("{}.h.", self.names.retained_key));
            let value = (!message.payload.is_empty() || hashed).then(|| frame.clone());
            self.outbox.push_retained(key, value);
        }
        if message.qos == QoS::AtMostOnce {
            let subject = subject_of(&self.names.messages, &message.topic);
            self.outbox.push_message(subject, frame);
            return None;
        }
        let subject = subject_of(&self.names.durable_messages, &message.topic);
        Some(
            self.outbox
                .push_durable(subject, frame, self.message_id(seq)),
        )
    }

    fn durable(&self) -> Ticket {
        self.outbox.durable()
    }

    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        self.outbox.wait_durable(ticket, waker);
    }

    fn will(&self, client_id: &str, will: ArmedWill<'_>) {
        self.wills.set(client_id, will);
    }

    fn unavailable(&self) -> bool {
        self.outbox.unsettled.stalled(Instant::now())
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
        self.consumer_interest.notify_one();
        self.groups.interest(filter, held);
    }

    fn hand_over(&self, group: &SharedRef, message: &Message) {
        let (seq, frame) = self.frame(message);
        let durable = &self.names.durable_messages;
        let subject = shared::hand_over_subject(durable, &group.group, &group.filter);
        self.outbox
            .push_durable(subject, frame, self.message_id(seq));
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        resume: bool,
        principal: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Option<RecoveredSession>> + Send + 'a>> {
        Box::pin(self.ownership.claim(client_id, resume, principal))
    }
}

/// One NATS subscription the node wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Want {
    /// Plain subscribers' messages on `subject` (a first-level cover, below).
    Plain { subject: String },
    /// Shared group `group` on `filter`'s QoS 0 messages, through a NATS queue group.
    Group {
        subject: String,
        group: Arc<str>,
        filter: TopicFilter,
    },
}

/// The first-level cover of this node's plain (not shared) interest, as subject tails after
/// the QoS class (`t.a`, `t.a.>`, `t.>`, `s._24535953`, `h.>`): a filter `a/b/+` takes `t.a` and
/// `t.a.>`, a filter starting with a wildcard every non-`$` topic (`t.>`), and any interest the
/// hashed topics (`h.>`). The tails never overlap, so every message matches one of them at most
/// and reaches the node once, in its publisher's order; the core's index does the fine matching.
/// QoS 0 takes them under `<prefix>.m.0` (core subscriptions, [`wanted`]), QoS 1/2 under
/// `<prefix>.m.1` (the node's JetStream consumer, [`crate::consumer`]).
pub(crate) fn cover(interest: &HashMap<SubscriptionFilter, usize>) -> BTreeSet<String> {
    let mut tails = BTreeSet::new();
    if interest.is_empty() {
        return tails;
    }
    // Topics too long for a subject travel hashed: every interested node takes them.
    tails.insert("h.>".to_owned());
    let mut every_topic = false;
    let mut first_levels = HashSet::new();
    for filter in interest.keys() {
        let (plain, group) = filter.route();
        if group.is_some() {
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
        tails.insert("t.>".to_owned());
    }
    for level in first_levels {
        if every_topic && !level.is_system() {
            continue;
        }
        // `topic_subject("", level)` is `.<class>.<token>`.
        let subject = topic_subject("", &level);
        let tail = subject.trim_start_matches('.');
        tails.insert(format!("{tail}.>"));
        tails.insert(tail.to_owned());
    }
    tails
}

/// The core NATS subscriptions the node wants now: its plain cover for QoS 0 messages (QoS 1/2
/// come through its JetStream consumer), and each shared group's filter subjects in a NATS queue
/// group, for QoS 0 (a group's QoS 1/2 come through the group's JetStream consumer, `shared.rs`).
fn wanted(names: &Names, interest: &HashMap<SubscriptionFilter, usize>) -> HashSet<Want> {
    let mut wants: HashSet<Want> = cover(interest)
        .into_iter()
        .map(|tail| Want::Plain {
            subject: format!("{}.{tail}", names.messages),
        })
        .collect();
    for filter in interest.keys() {
        let (plain, group) = filter.route();
        let Some(group) = group else { continue };
        let hashed = format!("{}.h.>", names.messages);
        for subject in filter_subjects(&names.messages, plain)
            .into_iter()
            .chain([hashed])
        {
            wants.insert(Want::Group {
                subject,
                group: group.clone(),
                filter: plain.clone(),
            });
        }
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
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    // The last 16,384 QoS 0 messages routed.
    let mut recent = Recent::<16_384>::default();
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
                if read.origin == node_id || !recent.first_time(origin_key(&read.origin, read.seq))
                {
                    continue;
                }
                count.fetch_add(1, Ordering::Relaxed);
                broker.publish_remote(read.message, RemoteScope::Subscribers);
            }
            Some((group, filter)) => {
                count.fetch_add(1, Ordering::Relaxed);
                let scope = RemoteScope::Group { group, filter };
                broker.publish_remote(read.message, scope);
            }
        }
    }
}

/// The key of a message in [`Recent`]: its origin and sequence number.
fn origin_key(origin: &str, seq: u64) -> u64 {
    let mut hasher = DefaultHasher::new();
    (origin, seq).hash(&mut hasher);
    hasher.finish()
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
    fn plain_interest_is_a_first_level_cover_that_never_overlaps_for_qos0() {
        assert_eq!(
            subjects(&["a/b/+", "a/#", "$SYS/x", "b c"]),
            [
                "wg.m.0.h.>",
                "wg.m.0.s._24535953",
                "wg.m.0.s._24535953.>",
                "wg.m.0.t._622063",
                "wg.m.0.t._622063.>",
                "wg.m.0.t.a",
                "wg.m.0.t.a.>",
            ]
        );
        // A filter starting with a wildcard takes every non-`$` topic, and only that.
        assert_eq!(
            subjects(&["+/x", "a/b", "$SYS/#"]),
            [
                "wg.m.0.h.>",
                "wg.m.0.s._24535953",
                "wg.m.0.s._24535953.>",
                "wg.m.0.t.>"
            ]
        );
    }

    #[test]
    fn a_shared_group_subscribes_its_filters_qos0_subjects_in_a_queue_group() {
        assert_eq!(
            subjects(&["$share/g/a/#"]),
            [
                "wg.m.0.h.>",
                "wg.m.0.h.> queue g",
                "wg.m.0.t.a queue g",
                "wg.m.0.t.a.> queue g"
            ]
        );
    }

    #[test]
    fn a_topic_too_long_for_a_subject_is_hashed_and_nothing_else_is() {
        let short = TopicName::new("a/b").expect("valid");
        assert_eq!(subject_of("wg.m.1", &short), "wg.m.1.t.a.b");
        let long = TopicName::new("é/".repeat(400)).expect("valid");
        let subject = subject_of("wg.m.1", &long);
        assert!(subject.starts_with("wg.m.1.h.") && subject.len() == "wg.m.1.h.".len() + 32);
        let other = TopicName::new("è/".repeat(400)).expect("valid");
        assert_ne!(subject, subject_of("wg.m.1", &other));
    }

    #[test]
    fn a_message_seen_twice_is_routed_once() {
        let mut recent = Recent::<100>::default();
        assert!(recent.first_time(origin_key("a", 1)));
        assert!(!recent.first_time(origin_key("a", 1)));
        assert!(recent.first_time(origin_key("b", 1)));
        for seq in 2..110 {
            assert!(recent.first_time(origin_key("a", seq)));
        }
        // Forgotten past the capacity.
        assert!(recent.first_time(origin_key("a", 1)));
    }
}
