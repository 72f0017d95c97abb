//! What a node sends to the cluster, in the order its clients published it: messages (QoS 0 as
//! core NATS publishes, QoS 1/2 as JetStream publishes whose acknowledgement makes their ticket
//! durable) and retained-bucket updates.
//!
//! [`Outbox::push`] runs on the publisher's connection task and never blocks: it appends to a
//! queue under a short lock and wakes the sender task. The queue's bound: QoS 0 messages past
//! [`QOS0_BACKLOG`] are dropped and counted; QoS 1/2 messages are bounded by the clients
//! themselves, since each waits for its acknowledgement and a client has at most Receive
//! Maximum of them in flight.
//!
//! The sender task publishes in queue order on the node's one NATS connection (so one
//! publisher's messages reach every other node in order), and hands each JetStream
//! acknowledgement to the acknowledger task, which awaits them in ticket order: a ticket is
//! durable when it and every earlier one are acknowledged. A publish JetStream refuses or does
//! not acknowledge in time is sent again with the same message id (JetStream stores it once)
//! until it is acknowledged; meanwhile the acknowledgements wait (docs/cluster.md).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wardgate_core::{Ticket, Wake};

use crate::partition::{Unsettled, Waiting};

/// QoS 0 messages waiting to be sent, at most; more are dropped (and counted).
pub(crate) const QOS0_BACKLOG: usize = 65_536;

/// How long the sender waits before sending a refused publish again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// The environment variable that makes every ticket durable as soon as it is queued: the node
/// then acknowledges QoS 1/2 PUBLISH before JetStream stored them. A defect on purpose, for the
/// fault-injection suite to show its checker catches loss (`wardgate-faults run
/// --ack-before-durable`); never set it otherwise.
pub(crate) const ACK_BEFORE_DURABLE_ENV: &str = "WARDGATE_TEST_ACK_BEFORE_DURABLE";

/// Whether [`ACK_BEFORE_DURABLE_ENV`] is set to `1` (read once).
fn acknowledge_before_durable() -> bool {
    static SET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SET.get_or_init(|| std::env::var_os(ACK_BEFORE_DURABLE_ENV).is_some_and(|v| v == "1"))
}

/// One thing to send.
#[derive(Debug)]
pub(crate) enum Item {
    /// A QoS 0 message: a core NATS publish.
    Message { subject: String, frame: Bytes },
    /// A QoS 1/2 message: a JetStream publish; `ticket` is durable once it is acknowledged.
    Durable {
        subject: String,
        frame: Bytes,
        id: String,
        ticket: Ticket,
    },
    /// The retained message of a topic set (`Some`) or cleared (`None`) in the bucket.
    Retained { key: String, frame: Option<Bytes> },
}

/// The queue, the tickets and who waits for them.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    wake_sender: Notify,
    durable: AtomicU64,
    waiters: Mutex<Vec<(Ticket, Arc<dyn Wake>)>>,
    /// QoS 0 messages dropped because the backlog was full, or refused by NATS.
    pub(crate) dropped: AtomicU64,
    /// QoS 1/2 publishes sent again after a refusal or a timeout.
    pub(crate) retried: AtomicU64,
    /// The tickets not durable yet, with when they were queued (`partition`).
    pub(crate) unsettled: Unsettled,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    qos0: usize,
    last_ticket: u64,
}

impl Outbox {
    /// Queues a QoS 0 message; false when the backlog is full (it is dropped and counted).
    pub(crate) fn push_message(&self, subject: String, frame: Bytes) -> bool {
        let mut q = self.queue.lock();
        if q.qos0 >= QOS0_BACKLOG {
            drop(q);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.qos0 += 1;
        q.items.push_back(Item::Message { subject, frame });
        drop(q);
        self.wake_sender.notify_one();
        true
    }

    /// Queues a QoS 1/2 message with the next ticket, which it returns.
    pub(crate) fn push_durable(&self, subject: String, frame: Bytes, id: String) -> Ticket {
        let mut q = self.queue.lock();
        q.last_ticket += 1;
        let ticket = Ticket(q.last_ticket);
        self.unsettled.queued(ticket);
        q.items.push_back(Item::Durable {
            subject,
            frame,
            id,
            ticket,
        });
        drop(q);
        self.wake_sender.notify_one();
        if acknowledge_before_durable() {
            self.settle(ticket);
        }
        ticket
    }

    /// Queues a retained-bucket update.
    pub(crate) fn push_retained(&self, key: String, frame: Option<Bytes>) {
        self.queue
            .lock()
            .items
            .push_back(Item::Retained { key, frame });
        self.wake_sender.notify_one();
    }

    /// Every ticket up to this one is durable.
    pub(crate) fn durable(&self) -> Ticket {
        Ticket(self.durable.load(Ordering::Acquire))
    }

    /// Wakes `waker` once `ticket` is durable.
    pub(crate) fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        let mut waiters = self.waiters.lock();
        // Checked under the waiters' lock, which `settle` takes after advancing: no wake-up
        // is missed.
        if self.durable() >= ticket {
            drop(waiters);
            waker.wake();
            return;
        }
        waiters.push((ticket, waker));
    }

    /// Records that every ticket up to `ticket` is durable and wakes who waited for them.
    fn settle(&self, ticket: Ticket) {
        self.durable.fetch_max(ticket.0, Ordering::AcqRel);
        self.unsettled.settled(ticket);
        let ready: Vec<Arc<dyn Wake>> = {
            let mut waiters = self.waiters.lock();
            let (ready, waiting) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|(t, _)| *t <= ticket);
            *waiters = waiting;
            ready.into_iter().map(|(_, w)| w).collect()
        };
        for waker in ready {
            waker.wake();
        }
    }

    /// Takes what is queued, up to `max` items.
    fn take(&self, max: usize, into: &mut Vec<Item>) {
        let mut q = self.queue.lock();
        let n = q.items.len().min(max);
        let from = into.len();
        into.extend(q.items.drain(..n));
        let qos0 = into[from..]
            .iter()
            .filter(|item| matches!(item, Item::Message { .. }))
            .count();
        q.qos0 -= qos0;
    }
}

impl Waiting for Outbox {
    fn unsettled(&self) -> &Unsettled {
        &self.unsettled
    }

    /// Wakes everyone waiting for a ticket not durable yet (the node became unavailable: they
    /// end instead of waiting). They stay registered: one that finds the node available again
    /// by the time it looks is woken when its ticket is durable, as before. Waiters nobody else
    /// holds any more (their connection ended) are forgotten, so a long outage does not pile
    /// them up.
    fn wake_all(&self) {
        let waiters: Vec<Arc<dyn Wake>> = {
            let mut waiters = self.waiters.lock();
            waiters.retain(|(_, w)| Arc::strong_count(w) > 1);
            waiters.iter().map(|(_, w)| w.clone()).collect()
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

/// A JetStream publish waiting for its acknowledgement, with what it takes to send it again.
struct Pending {
    ack: PublishAckFuture,
    subject: String,
    frame: Bytes,
    id: String,
    ticket: Ticket,
}

/// The node's connection, as the sender and the acknowledger use it.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: async_nats::jetstream::Context,
    pub(crate) retained: kv::Store,
}

/// Sends what the outbox holds, in order, until `stop`.
pub(crate) async fn send(outbox: Arc<Outbox>, link: Link, stop: CancellationToken) {
    let (acks, pending) = mpsc::channel::<Pending>(1024);
    let acknowledger = tokio::spawn(acknowledge(outbox.clone(), link.clone(), pending));
    let mut batch = Vec::with_capacity(256);
    loop {
        outbox.take(256, &mut batch);
        if batch.is_empty() {
            tokio::select! {
                () = outbox.wake_sender.notified() => continue,
                () = stop.cancelled() => break,
            }
        }
        for item in batch.drain(..) {
            match item {
                Item::Message { subject, frame } => {
                    if let Err(e) = link.client.publish(subject, frame).await {
                        outbox.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "cluster: a QoS 0 message was not sent");
                    }
                }
                Item::Durable {
                    subject,
                    frame,
                    id,
                    ticket,
                } => {
                    let Some(ack) =
                        publish_durable(&outbox, &link, &subject, &frame, &id, &stop).await
                    else {
                        break;
                    };
                    let pending = Pending {
                        ack,
                        subject,
                        frame,
                        id,
                        ticket,
                    };
                    if acks.send(pending).await.is_err() {
                        break;
                    }
                }
                Item::Retained { key, frame } => update_retained(&link, &key, frame).await,
            }
        }
        if stop.is_cancelled() {
            break;
        }
    }
    drop(acks);
    let _ = acknowledger.await;
}

/// Sends a JetStream publish, again after each refusal, until it is sent or `stop`.
async fn publish_durable(
    outbox: &Outbox,
    link: &Link,
    subject: &str,
    frame: &Bytes,
    id: &str,
    stop: &CancellationToken,
) -> Option<PublishAckFuture> {
    loop {
        let message = PublishMessage::build()
            .payload(frame.clone())
            .message_id(id);
        match link
            .jetstream
            .send_publish(subject.to_owned(), message)
            .await
        {
            Ok(ack) => return Some(ack),
            Err(e) => {
                outbox.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, subject, "cluster: JetStream refused a publish; sending it again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY_AFTER) => {}
            () = stop.cancelled() => return None,
        }
    }
}

/// Awaits the acknowledgements in ticket order, settling each; a publish that fails is sent
/// again (same message id) until acknowledged.
async fn acknowledge(outbox: Arc<Outbox>, link: Link, mut pending: mpsc::Receiver<Pending>) {
    let never = CancellationToken::new();
    while let Some(mut p) = pending.recv().await {
        loop {
            match p.ack.await {
                Ok(_) => break,
                Err(e) => {
                    outbox.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, subject = p.subject, "cluster: a publish was not acknowledged; sending it again");
                    tokio::time::sleep(RETRY_AFTER).await;
                    let Some(ack) =
                        publish_durable(&outbox, &link, &p.subject, &p.frame, &p.id, &never).await
                    else {
                        return;
                    };
                    p.ack = ack;
                }
            }
        }
        outbox.settle(p.ticket);
    }
}

/// Writes (or deletes) a retained message in the bucket; a failure is logged: the node that set
/// it has it, and the next retained message on the topic sets it again.
async fn update_retained(link: &Link, key: &str, frame: Option<Bytes>) {
    let result = match frame {
        Some(frame) => link
            .retained
            .put(key, frame)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => link.retained.delete(key).await.map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, key, "cluster: the retained bucket was not updated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Woken(AtomicUsize);

    impl Wake for Woken {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn tickets_follow_queue_order_and_wake_once_durable() {
        let outbox = Outbox::default();
        let t1 = outbox.push_durable("s".into(), Bytes::new(), "1".into());
        let t2 = outbox.push_durable("s".into(), Bytes::new(), "2".into());
        assert_eq!((t1, t2), (Ticket(1), Ticket(2)));
        let woken = Arc::new(Woken::default());
        outbox.wait_durable(t2, woken.clone());
        outbox.settle(t1);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        outbox.settle(t2);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        // Already durable: woken at once.
        outbox.wait_durable(t1, woken.clone());
        assert_eq!(woken.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn wake_all_wakes_the_waiting_and_forgets_the_ones_nobody_holds() {
        let outbox = Outbox::default();
        let t1 = outbox.push_durable("s".into(), Bytes::new(), "1".into());
        let held = Arc::new(Woken::default());
        outbox.wait_durable(t1, held.clone());
        outbox.wait_durable(t1, Arc::new(Woken::default()));
        outbox.wake_all();
        outbox.wake_all();
        assert_eq!(
            held.0.load(Ordering::SeqCst),
            2,
            "woken each time, still registered"
        );
        assert_eq!(
            outbox.waiters.lock().len(),
            1,
            "the one nobody holds is gone"
        );
        outbox.settle(t1);
        assert_eq!(held.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn the_qos0_backlog_is_bounded_and_counted() {
        let outbox = Outbox::default();
        for _ in 0..QOS0_BACKLOG {
            assert!(outbox.push_message("s".into(), Bytes::new()));
        }
        assert!(!outbox.push_message("s".into(), Bytes::new()));
        assert_eq!(outbox.dropped.load(Ordering::Relaxed), 1);
        // QoS 1/2 messages are never dropped here: their clients bound them.
        outbox.push_durable("s".into(), Bytes::new(), "x".into());
        let mut taken = Vec::new();
        outbox.take(usize::MAX, &mut taken);
        assert_eq!(taken.len(), QOS0_BACKLOG + 1);
        assert!(outbox.push_message("s".into(), Bytes::new()));
    }
}
