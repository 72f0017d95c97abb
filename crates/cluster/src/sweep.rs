//! Sweeping ownership keys of sessions gone (docs/cluster.md, "Client IDs"): a key of
//! `<PREFIX>_CLIENTS` stays when its session ends, so that a later claim asks the node that held
//! it. When a node joins — after it restored what its store held, before any port opens — every
//! key naming it whose client has no session here is a session this node lost (a restart
//! without persistence, or one that expired while the node was down): the node deletes it, on
//! the revision it read, so a claim by another node meanwhile wins. A later connect of that
//! client anywhere then starts afresh at once instead of asking a node that knows nothing of it.
//!
//! Only the owner sweeps, and only before it serves: while it serves, a connect of the client
//! here may be between its claim (which leaves a key naming this node as it is) and its
//! session, and a sweep could delete the key of a connected client.

use async_nats::jetstream::kv::{self, Operation};
use futures_util::StreamExt;
use wardgate_core::Broker;

use crate::subject::token_text;

/// Deletes the keys of `clients` naming `node_id` whose client has no session in `broker`;
/// returns how many it deleted. Reads every key once (one watch from the bucket's current
/// state); failures are logged and end the sweep (the keys stay, as without it).
pub(crate) async fn sweep_lost(broker: &Broker, clients: &kv::Store, node_id: &str) -> usize {
    let stale = match lost_keys(broker, clients, node_id).await {
        Ok(stale) => stale,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot read the ownership bucket to sweep it");
            return 0;
        }
    };
    let mut swept = 0;
    for (key, revision) in stale {
        match clients.delete_expect_revision(&key, Some(revision)).await {
            Ok(()) => swept += 1,
            // Claimed by another node since it was read: its key now.
            Err(e) => tracing::debug!(key, error = %e, "cluster: an ownership key was not swept"),
        }
    }
    if swept > 0 {
        tracing::info!(
            swept,
            "cluster: ownership keys of sessions this node no longer holds deleted"
        );
    }
    swept
}

/// The keys (and revisions) naming `node_id` whose client has no session in `broker`.
async fn lost_keys(
    broker: &Broker,
    clients: &kv::Store,
    node_id: &str,
) -> Result<Vec<(String, u64)>, String> {
    let held = clients.status().await.map_err(|e| e.to_string())?.values();
    let mut stale = Vec::new();
    if held == 0 {
        return Ok(stale);
    }
    let mut watch = clients
        .watch_with_history(">")
        .await
        .map_err(|e| e.to_string())?;
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| e.to_string())?;
        let current = entry.seen_current || entry.delta == 0;
        let lost = entry.operation == Operation::Put
            && entry.value == node_id.as_bytes()
            && token_text(&entry.key).is_some_and(|client_id| broker.session(&client_id).is_none());
        if lost {
            stale.push((entry.key, entry.revision));
        }
        if current {
            break;
        }
    }
    Ok(stale)
}
