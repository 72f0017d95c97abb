//! A client ID this node lost to a newer claim (docs/cluster.md, "Simultaneous connects"):
//! every claim is a compare-and-set write in `<PREFIX>_CLIENTS`, so the claims of one client ID
//! are totally ordered by the key's revision, and the newest one is the owner. Each node
//! remembers the revision of its own claims ([`Held`]) and watches the bucket: an update
//! naming another node at a higher revision than this node's claim means a later connect on
//! that node won, and the connection here ends as by a takeover (v5: DISCONNECT 0x8E; the
//! session here ends and its will is published, as when a Clean Start connection takes over).
//! The other node's takeover request normally does all this first (and moves the session when
//! it continues): the watch acts only once that request had its time (the takeover timeout
//! and [`MARGIN`]), on a connection still attached here — one whose claim was just made and
//! that attached after the request found nothing to end, or one whose node the request never
//! reached. It waits for a connection still attaching, at most [`ATTACH_WITHIN`] after its
//! claim.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;

use crate::subject::client_key;

/// How long after its claim a connection may still be attaching (the local hand-over waits up
/// to 3 s for an older connection of the client): a lost claim younger than this is watched
/// until its connection attaches, then ended.
const ATTACH_WITHIN: Duration = Duration::from_secs(10);

/// What the takeover request of the winning node gets beyond its own timeout before the watch
/// acts (the request leaves just after the winner's write, the watch sees the write about
/// then).
const MARGIN: Duration = Duration::from_millis(500);

/// How often a lost claim's connection is looked for while it attaches.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// How often claims of clients that no longer have a session here are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One claim this node made.
#[derive(Debug, Clone)]
struct Claim {
    client_id: String,
    revision: u64,
    at: Instant,
}

/// The client IDs this node claimed, by bucket key, with the revision each claim wrote.
#[derive(Debug, Default)]
pub(crate) struct Held(Mutex<HashMap<String, Claim>>);

impl Held {
    /// Records that this node's claim of `client_id` wrote `revision`.
    pub(crate) fn claimed(&self, client_id: &str, revision: u64) {
        let claim = Claim {
            client_id: client_id.to_owned(),
            revision,
            at: Instant::now(),
        };
        self.0.lock().insert(client_key(client_id), claim);
    }

    /// The claim of `key` that a write at `revision` by another node supersedes, taken out.
    fn superseded(&self, key: &str, revision: u64) -> Option<Claim> {
        let mut held = self.0.lock();
        let claim = held.get(key).filter(|c| c.revision < revision)?.clone();
        held.remove(key);
        Some(claim)
    }

    /// Whether `key` was claimed again by this node since `claim`.
    fn claimed_again(&self, key: &str, claim: &Claim) -> bool {
        self.0
            .lock()
            .get(key)
            .is_some_and(|c| c.revision != claim.revision)
    }

    /// Forgets the claims older than [`ATTACH_WITHIN`] of clients without a session here.
    fn prune(&self, broker: &Broker) {
        self.0.lock().retain(|_, c| {
            c.at.elapsed() < ATTACH_WITHIN || broker.session(&c.client_id).is_some()
        });
    }
}

/// Watches `clients` for claims by other nodes of client IDs this node holds and ends their
/// connections here, until `stop`.
pub(crate) async fn follow(
    mut watch: kv::Watch,
    held: Arc<Held>,
    broker: Arc<Broker>,
    (node_id, takeover_timeout): (String, Duration),
    stop: CancellationToken,
) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        let entry = tokio::select! {
            entry = watch.next() => entry,
            _ = prune.tick() => {
                held.prune(&broker);
                continue;
            }
            () = stop.cancelled() => return,
        };
        let entry = match entry {
            Some(Ok(entry)) => entry,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cluster: the client ownership watch failed");
                continue;
            }
            None => {
                tracing::warn!("cluster: the client ownership watch ended");
                return;
            }
        };
        if entry.operation != kv::Operation::Put || entry.value == node_id.as_bytes() {
            continue;
        }
        let Some(claim) = held.superseded(&entry.key, entry.revision) else {
            continue;
        };
        let winner = String::from_utf8_lossy(&entry.value).into_owned();
        let after = Instant::now() + takeover_timeout + MARGIN;
        let lost = Lost {
            key: entry.key,
            claim,
            winner,
        };
        tokio::spawn(end(broker.clone(), held.clone(), lost, after));
    }
}

/// A claim of this node that a later one of another node superseded.
struct Lost {
    key: String,
    claim: Claim,
    winner: String,
}

/// Ends the connection of a `lost` claim still attached here `after` the winner's takeover
/// request had its time (waiting for one still attaching), unless this node claims the client
/// ID again meanwhile.
async fn end(broker: Arc<Broker>, held: Arc<Held>, lost: Lost, after: Instant) {
    tokio::time::sleep_until(after.into()).await;
    let Lost { key, claim, winner } = lost;
    let deadline = (claim.at + ATTACH_WITHIN).max(after);
    loop {
        if held.claimed_again(&key, &claim) {
            return;
        }
        if broker
            .session(&claim.client_id)
            .is_some_and(|s| s.is_connected())
        {
            broker.release(&claim.client_id, (false, None), Instant::now());
            tracing::info!(
                client_id = claim.client_id,
                winner,
                "cluster: a later connect of this client on another node won; its connection here ended"
            );
            return;
        }
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_later_revision_supersedes_a_claim() {
        let held = Held::default();
        held.claimed("dev.1", 7);
        let key = client_key("dev.1");
        assert!(held.superseded(&key, 7).is_none(), "this node's own write");
        assert!(
            held.superseded(&key, 6).is_none(),
            "an older claim seen late"
        );
        let lost = held.superseded(&key, 8).expect("a later claim");
        assert_eq!((lost.client_id.as_str(), lost.revision), ("dev.1", 7));
        assert!(held.superseded(&key, 9).is_none(), "taken out once");
        held.claimed("dev.1", 10);
        assert!(held.claimed_again(&key, &lost));
    }
}
