//! A node cut off from the NATS majority stops acknowledging (docs/cluster.md, guarantee 10).
//!
//! Every QoS 1/2 forward waits for JetStream's acknowledgement before its publisher's PUBACK or
//! PUBREC leaves (the durability gate). Without a quorum, or without NATS at all, that
//! acknowledgement never comes: the outbox keeps sending the publish again (same message id),
//! and the publisher would wait forever. Once the oldest forward not yet durable has waited
//! [`PUBLISH_TIMEOUT`], the fabric says it is *unavailable*
//! ([`Fabric::unavailable`](wardgate_core::Fabric::unavailable)); every connection whose output
//! waits for a forward then ends — a v5 client gets DISCONNECT 0x89 *Server busy*, a v3.1.1 client
//! a closed connection — without the acknowledgements it was owed, so its client sends the
//! messages again, to a node that can make them durable. Connections that wait for nothing from
//! the cluster (subscribers, QoS 0 publishers) stay; their local traffic goes on.
//!
//! [`watch`] wakes the waiting connections when the timeout passes (they would otherwise sleep
//! until the acknowledgement they wait for). The unavailability ends by itself when JetStream
//! acknowledges again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use wardgate_core::Ticket;

/// How long a QoS 1/2 forward may wait for JetStream's acknowledgement before the node stops
/// acknowledging: two of JetStream's own publish timeouts (5 s each), so that one leader
/// election (seconds) does not end every publisher's connection, but a lost quorum does.
pub(crate) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`watch`] looks.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The forwards not yet durable, oldest first, with when each was queued.
#[derive(Debug, Default)]
pub(crate) struct Unsettled(Mutex<VecDeque<(Ticket, Instant)>>);

impl Unsettled {
    /// `ticket` was queued now (tickets are queued in increasing order).
    pub(crate) fn queued(&self, ticket: Ticket) {
        self.0.lock().push_back((ticket, Instant::now()));
    }

    /// Every ticket up to `ticket` is durable.
    pub(crate) fn settled(&self, ticket: Ticket) {
        let mut unsettled = self.0.lock();
        while unsettled.front().is_some_and(|(t, _)| *t <= ticket) {
            unsettled.pop_front();
        }
    }

    /// Whether the oldest forward not yet durable was queued at least [`PUBLISH_TIMEOUT`]
    /// before `now`.
    pub(crate) fn stalled(&self, now: Instant) -> bool {
        self.0
            .lock()
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= PUBLISH_TIMEOUT)
    }
}

/// What [`watch`] looks at: the forwards not yet durable, and who waits for them (the outbox).
pub(crate) trait Waiting: Send + Sync {
    /// The forwards not yet durable.
    fn unsettled(&self) -> &Unsettled;
    /// Wakes every connection waiting for a forward.
    fn wake_all(&self);
}

/// Wakes the connections waiting for a forward once the node has become unavailable (they then
/// end), and logs when it becomes unavailable and available again, until `stop`.
pub(crate) async fn watch(outbox: Arc<impl Waiting>, stop: CancellationToken) {
    let mut unavailable = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_EVERY) => {}
            () = stop.cancelled() => return,
        }
        let stalled = outbox.unsettled().stalled(Instant::now());
        if stalled {
            // Connections that began waiting since the last look are woken too.
            outbox.wake_all();
        }
        if stalled != unavailable {
            unavailable = stalled;
            if stalled {
                tracing::warn!(
                    timeout_s = PUBLISH_TIMEOUT.as_secs(),
                    "cluster: JetStream has not acknowledged a publish in time; this node stops acknowledging QoS 1/2 messages"
                );
            } else {
                tracing::info!(
                    "cluster: JetStream acknowledges again; this node acknowledges QoS 1/2 messages again"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_once_the_oldest_unsettled_forward_is_older_than_the_timeout() {
        let unsettled = Unsettled::default();
        let now = Instant::now();
        assert!(!unsettled.stalled(now + PUBLISH_TIMEOUT), "nothing waits");
        unsettled.queued(Ticket(1));
        unsettled.queued(Ticket(2));
        assert!(!unsettled.stalled(Instant::now()));
        assert!(unsettled.stalled(Instant::now() + PUBLISH_TIMEOUT));
        unsettled.settled(Ticket(1));
        assert!(
            unsettled.stalled(Instant::now() + PUBLISH_TIMEOUT),
            "2 still waits"
        );
        unsettled.settled(Ticket(2));
        assert!(!unsettled.stalled(Instant::now() + PUBLISH_TIMEOUT));
    }
}
