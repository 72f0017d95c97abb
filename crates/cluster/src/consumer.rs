//! How a node receives the other nodes' QoS 1/2 messages (docs/cluster.md, "Receiving"): through
//! ONE durable pull consumer of its own on the message stream `<PREFIX>_MSG`, never through core
//! NATS subscriptions, which drop what a slow node cannot take.
//!
//! The consumer's `filter_subjects` are the node's first-level cover ([`cover`]) under
//! `<prefix>.m.1`, updated in place when the cover changes (an update keeps the consumer's
//! position). The node pulls a bounded batch, routes each message into its local sessions
//! ([`Broker::publish_remote`]) in stream order, and only then acknowledges the batch: after the
//! routed copies' store write is durable when the broker keeps a store, and after a congested
//! subscriber's queue has room again (or [`CONGESTION_WAIT`] passed, as a publisher on the node
//! waits). Nothing is dropped: a node that does not keep up stops pulling, and JetStream keeps
//! the messages. A message delivered again (an acknowledgement lost, a pull answered into a
//! connection that broke) is routed once: the node remembers the stream sequences it routed.
//!
//! Shared groups are not this consumer's: their messages come on NATS queue subscriptions
//! (node.rs, `Want::Group`), which `shared*.rs` moves onto JetStream.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, Consumer, DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_core::{Broker, RemoteScope, Session, Wake};

use crate::frame;
use crate::patience::patiently;
use crate::recent::Recent;
use crate::subject::level_token;

/// Messages pulled at once, at most: what the node holds without having acknowledged it.
const BATCH: usize = 256;

/// How long one pull waits for messages before the node asks again.
const PULL_WAIT: Duration = Duration::from_secs(1);

/// Unacknowledged deliveries JetStream allows the consumer (a few batches).
const MAX_ACK_PENDING: i64 = 4 * BATCH as i64;

/// How long JetStream waits for an acknowledgement before it delivers a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// How long the node waits for a congested subscriber's queue to have room before it pulls
/// more (the wait of a publisher on the node, `congestion_wait`).
const CONGESTION_WAIT: Duration = Duration::from_millis(500);

/// How long the node waits before asking JetStream again after a failure.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The filter of a consumer that wants nothing: a class no topic maps to.
const IDLE_TAIL: &str = "idle";

/// What the consumer asks of the node about its interest.
pub(crate) trait Interest: Send + Sync {
    /// The tails of the node's QoS 1/2 cover now (`<prefix>.m.1.<tail>` each).
    fn tails(&self) -> BTreeSet<String>;
    /// Notified when the node's interest changed.
    fn changed(&self) -> &Notify;
}

/// What the receiving task needs.
pub(crate) struct Receiver {
    pub(crate) broker: Arc<Broker>,
    pub(crate) node_id: String,
    /// `<prefix>.m.1`.
    pub(crate) durable_messages: String,
    pub(crate) stream: stream::Stream,
    /// The node's interest and its changes.
    pub(crate) interest: Arc<dyn Interest>,
    /// Messages from other nodes routed here.
    pub(crate) received: Arc<AtomicU64>,
    /// How long an idle consumer outlives its node (the stream's `max_age`).
    pub(crate) inactive_threshold: Duration,
}

/// The durable name of `node_id`'s consumer: the id as one subject token.
pub(crate) fn durable_name(node_id: &str) -> String {
    format!("node-{}", level_token(node_id))
}

impl Receiver {
    fn config(&self, tails: &BTreeSet<String>, deliver: DeliverPolicy) -> pull::Config {
        let filter_subjects = if tails.is_empty() {
            vec![format!("{}.{IDLE_TAIL}", self.durable_messages)]
        } else {
            tails
                .iter()
                .map(|tail| format!("{}.{tail}", self.durable_messages))
                .collect()
        };
        pull::Config {
            durable_name: Some(durable_name(&self.node_id)),
            deliver_policy: deliver,
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: MAX_ACK_PENDING,
            filter_subjects,
            inactive_threshold: self.inactive_threshold,
            ..Default::default()
        }
    }

    /// Makes the consumer exist with the filter of `tails` and `deliver` (which an update
    /// cannot change): created, or the existing one (this node's earlier run, or before the
    /// cover changed) updated, which keeps its position.
    async fn ensure(
        &self,
        tails: &BTreeSet<String>,
        deliver: DeliverPolicy,
    ) -> Result<Consumer<pull::Config>, String> {
        self.stream
            .create_consumer(self.config(tails, deliver))
            .await
            .map_err(|e| e.to_string())
    }

    /// The deliver policy of this node's consumer if it exists (an earlier run's, perhaps
    /// rewound), or "new messages only".
    async fn deliver_policy(&self) -> DeliverPolicy {
        match self.stream.consumer_info(durable_name(&self.node_id)).await {
            Ok(info) => info.config.deliver_policy,
            Err(_) => DeliverPolicy::New,
        }
    }

    /// Makes the consumer start again right after what this node took: deliveries were lost
    /// on the way (a pull whose answer went to a subscription the client had given up), and
    /// routing what comes after them first would break the publishers' order. The consumer is
    /// deleted and made again from the first sequence neither taken here nor acknowledged.
    async fn rewind(&self, state: &mut State) -> Result<Consumer<pull::Config>, String> {
        let name = durable_name(&self.node_id);
        let floor = self
            .stream
            .consumer_info(&name)
            .await
            .map(|info| info.ack_floor.stream_sequence)
            .map_err(|e| e.to_string())?;
        let start = state.taken.max(floor) + 1;
        self.stream
            .delete_consumer(&name)
            .await
            .map_err(|e| e.to_string())?;
        state.deliver = DeliverPolicy::ByStartSequence {
            start_sequence: start,
        };
        tracing::info!(
            start,
            "cluster: deliveries were lost on the way; the consumer starts again after the last message taken"
        );
        let consumer = self.ensure(&state.tails, state.deliver).await?;
        state.next_delivery = consumer.cached_info().delivered.consumer_sequence + 1;
        Ok(consumer)
    }

    /// The last sequence of the message stream now.
    async fn last_sequence(&self) -> Result<u64, String> {
        let mut stream = self.stream.clone();
        stream
            .info()
            .await
            .map(|info| info.state.last_sequence)
            .map_err(|e| e.to_string())
    }
}

/// Makes the node's consumer exist with its cover now (the sessions it holds, restored from its
/// store after a restart), and starts receiving on `tracker` until `stop`.
pub(crate) async fn start(
    receiver: Receiver,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> Result<(), String> {
    let tails = receiver.interest.tails();
    let deliver = receiver.deliver_policy().await;
    let consumer = patiently(|| receiver.ensure(&tails, deliver)).await?;
    // Everything the consumer has for this cover is for this node: from "now" for a new
    // consumer, from where it stopped for the consumer of this node's earlier run.
    let since = tails.iter().map(|tail| (tail.clone(), 0)).collect();
    let mut state = State {
        tails,
        since,
        deliver,
        next_delivery: 0,
        taken: 0,
        routed: Routed::default(),
    };
    state.next_delivery = consumer.cached_info().delivered.consumer_sequence + 1;
    tracker.spawn(receive(receiver, state, consumer, stop));
    Ok(())
}

/// Receives the other nodes' QoS 1/2 messages until `stop`.
async fn receive(
    receiver: Receiver,
    mut state: State,
    consumer: Consumer<pull::Config>,
    stop: CancellationToken,
) {
    let mut consumer = Some(consumer);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(current) = consumer.as_ref() else {
            match refresh(&receiver, &mut state, true).await {
                Ok(Some(c)) if state.follow(&c) => consumer = Some(c),
                Ok(_) => match receiver.rewind(&mut state).await {
                    Ok(c) => consumer = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster: the consumer was not made again; trying again");
                        pause(&stop).await;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: the node's JetStream consumer is not ready; asking again");
                    pause(&stop).await;
                }
            }
            continue;
        };
        let batch = current
            .batch()
            .max_messages(BATCH)
            .expires(PULL_WAIT)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: a pull from JetStream failed; asking again");
                consumer = None;
                pause(&stop).await;
                continue;
            }
        };
        let mut taken = Taken::default();
        let mut lost = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = receiver.interest.changed().notified() => {
                    match refresh(&receiver, &mut state, false).await {
                        Ok(Some(c)) => consumer = Some(c),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster: the consumer's filter was not updated; trying again");
                            pause(&stop).await;
                            receiver.interest.changed().notify_one();
                        }
                    }
                }
                message = batch.next() => match message {
                    Some(Ok(message)) => {
                        if !take(&receiver, &mut state, &mut taken, message) {
                            lost = true;
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::info!(error = %e, "cluster: a pull ended early");
                        break;
                    }
                    None => break,
                },
            }
        }
        settle(&receiver, taken, &stop).await;
        if lost {
            match receiver.rewind(&mut state).await {
                Ok(c) => consumer = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: the consumer was not made again; trying again");
                    consumer = None;
                    pause(&stop).await;
                }
            }
        }
    }
}

/// Sets the consumer's filter to the node's cover now, when it changed (or `force`: the
/// consumer is made again); returns the consumer when it was (re)made.
async fn refresh(
    receiver: &Receiver,
    state: &mut State,
    force: bool,
) -> Result<Option<Consumer<pull::Config>>, String> {
    let tails = receiver.interest.tails();
    if !force && tails == state.tails {
        return Ok(None);
    }
    // A message older than the interest in its subject is not for this node: a filter update
    // keeps the consumer's position, which may be behind messages the old filter skipped.
    let since = receiver.last_sequence().await? + 1;
    let consumer = receiver.ensure(&tails, state.deliver).await?;
    state.since.retain(|tail, _| tails.contains(tail));
    for tail in &tails {
        state.since.entry(tail.clone()).or_insert(since);
    }
    state.tails = tails;
    Ok(Some(consumer))
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(RETRY_AFTER) => {}
        () = stop.cancelled() => {}
    }
}

/// What the node knows across batches.
struct State {
    /// The cover the consumer's filter was last set to.
    tails: BTreeSet<String>,
    /// For each tail of the cover, the first stream sequence that is for this node.
    since: HashMap<String, u64>,
    /// The consumer's deliver policy (new messages, or from where a rewind made it start).
    deliver: DeliverPolicy,
    /// The consumer sequence the next delivery must have: another one means deliveries were
    /// lost on the way.
    next_delivery: u64,
    /// The highest stream sequence taken (routed, or skipped as not for this node).
    taken: u64,
    /// The stream sequences routed lately.
    routed: Routed,
}

impl State {
    /// Expects the deliveries of `consumer` from where it is; false when it delivered more
    /// than this node saw (lost on the way).
    fn follow(&mut self, consumer: &Consumer<pull::Config>) -> bool {
        let delivered = consumer.cached_info().delivered.consumer_sequence;
        let intact = delivered < self.next_delivery;
        self.next_delivery = delivered + 1;
        intact
    }
}

/// The messages of one batch, handled and waiting for their acknowledgement.
#[derive(Default)]
struct Taken {
    messages: Vec<jetstream::Message>,
    /// Whether one was routed (the store has a write to wait for).
    routed: bool,
    /// A subscriber's queue the batch found congested.
    congested: Option<Arc<Session>>,
}

/// Routes one message (unless it was routed before, is this node's own, or is older than the
/// interest in its subject) and keeps it for the batch's acknowledgement; false, taking
/// nothing, when deliveries before it were lost on the way.
fn take(
    receiver: &Receiver,
    state: &mut State,
    taken: &mut Taken,
    message: jetstream::Message,
) -> bool {
    let (seq, delivery) = match message.info() {
        Ok(info) => (info.stream_sequence, info.consumer_sequence),
        Err(e) => {
            tracing::warn!(error = %e, "cluster: a message from the consumer has no sequence; dropped");
            return true;
        }
    };
    if delivery != state.next_delivery {
        return false;
    }
    state.next_delivery += 1;
    state.taken = state.taken.max(seq);
    let tail = message
        .subject
        .as_str()
        .strip_prefix(receiver.durable_messages.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or_default();
    let wanted = covering(tail)
        .into_iter()
        .flatten()
        .any(|t| state.since.get(&t).is_some_and(|&since| since <= seq));
    if wanted && state.routed.first_time(seq) {
        match frame::decode(message.payload.clone(), Instant::now(), SystemTime::now()) {
            Ok(read) if read.origin != receiver.node_id => {
                receiver.received.fetch_add(1, Ordering::Relaxed);
                let result = receiver
                    .broker
                    .publish_remote(read.message, RemoteScope::Subscribers);
                taken.routed = true;
                if taken.congested.is_none() {
                    taken.congested = result.congested;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cluster: a message in the stream is not a Wardgate frame; dropped");
            }
        }
    }
    taken.messages.push(message);
    true
}

/// The cover tails that can hold a message whose subject ends in `tail` (after the QoS class):
/// `t.a.b` → `t.a.>` and `t.>`; `t.a` → `t.a` and `t.>`; `s.x.y` → `s.x.>`; `h.…` → `h.>`.
fn covering(tail: &str) -> [Option<String>; 2] {
    let mut tokens = tail.splitn(3, '.');
    let class = tokens.next().unwrap_or_default();
    let first = tokens.next().unwrap_or_default();
    let deeper = tokens.next().is_some();
    let exact = if deeper {
        format!("{class}.{first}.>")
    } else {
        format!("{class}.{first}")
    };
    match class {
        "h" => [Some("h.>".to_owned()), None],
        "t" => [Some(exact), Some("t.>".to_owned())],
        "s" => [Some(exact), None],
        _ => [None, None],
    }
}

/// Acknowledges a batch once what it routed is durable here and a congested subscriber had
/// room (or [`CONGESTION_WAIT`] passed).
async fn settle(receiver: &Receiver, taken: Taken, stop: &CancellationToken) {
    if taken.routed
        && let Some(store) = receiver.broker.store()
    {
        // A write after the routed copies': durable once they are.
        let barrier = store.write(&[]);
        let woken = Arc::new(Woken::default());
        store.wait_durable(barrier, woken.clone());
        tokio::select! {
            () = woken.0.notified() => {}
            () = stop.cancelled() => return,
        }
    }
    for message in &taken.messages {
        if let Err(e) = message.ack().await {
            tracing::warn!(error = %e, "cluster: an acknowledgement to JetStream was not sent");
        }
    }
    if let Some(session) = taken.congested {
        let woken = Arc::new(Woken::default());
        if session.wait_for_space(woken.clone()) {
            tokio::select! {
                () = woken.0.notified() => {}
                () = tokio::time::sleep(CONGESTION_WAIT) => {}
                () = stop.cancelled() => {}
            }
        }
    }
}

/// A waker that a task awaits.
#[derive(Default)]
struct Woken(Notify);

impl Wake for Woken {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// The stream sequences routed lately, to route a message delivered again only once: more
/// than JetStream can deliver again (only unacknowledged messages, at most [`MAX_ACK_PENDING`]
/// of them, within [`ACK_WAIT`] of their delivery).
type Routed = Recent<{ 1 << 17 }>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_covered_by_its_first_level_or_every_topic() {
        assert_eq!(
            covering("t.a.b"),
            [Some("t.a.>".to_owned()), Some("t.>".to_owned())]
        );
        assert_eq!(
            covering("t.a"),
            [Some("t.a".to_owned()), Some("t.>".to_owned())]
        );
        assert_eq!(covering("s._24.x"), [Some("s._24.>".to_owned()), None]);
        assert_eq!(covering("h.0123"), [Some("h.>".to_owned()), None]);
        assert_eq!(covering("idle"), [None, None]);
    }

    #[test]
    fn a_durable_name_is_one_token() {
        assert_eq!(durable_name("a"), "node-a");
        assert_eq!(durable_name("a.b c"), "node-_612e622063");
    }
}
