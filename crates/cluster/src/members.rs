//! The cluster's members (docs/cluster.md, "Operations"): every node puts its record (id, start,
//! MQTT ports, version, clients connected) into the key-value bucket `<PREFIX>_NODES` every
//! second, and watches the bucket. A node is up while its record is fresh: written less than
//! [`STALE`] ago, as this node saw it arrive. The bucket's `max_age` removes the records of nodes
//! that stopped; a node that stops gracefully deletes its own at once. Liveness is JetStream's
//! (the bucket is Raft-replicated): there is no failure detector of Wardgate's own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;

/// How often a node writes its record.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A record older than this is a node that is down.
pub const STALE: Duration = Duration::from_secs(3);
/// How long the bucket keeps a record nobody refreshes.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(5);

/// What a node says about itself in `<PREFIX>_NODES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The node's id.
    pub id: String,
    /// When the node joined, in seconds since the Unix epoch.
    pub started: u64,
    /// Its MQTT ports (listening ones).
    pub ports: Vec<u16>,
    /// The Wardgate version it runs.
    pub version: String,
    /// Clients connected to it.
    pub clients: u64,
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The latest record it wrote.
    pub record: MemberRecord,
    /// Whether its record is fresh: it wrote it less than [`STALE`] ago.
    pub up: bool,
    /// How long ago this node received its latest record (or saw it deleted).
    pub last_seen: Duration,
}

/// Where a node's heartbeat reads its MQTT ports (they open, close and change on reloads).
pub(crate) type Ports = Box<dyn Fn() -> Vec<u16> + Send + Sync>;

/// The members this node has seen since it joined, kept by [`follow`].
#[derive(Default)]
pub(crate) struct Members {
    seen: Mutex<BTreeMap<String, Seen>>,
    /// The MQTT ports this node reports, read at each heartbeat.
    ports: Mutex<Option<Ports>>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members").field("seen", &self.seen).finish()
    }
}

#[derive(Debug)]
struct Seen {
    record: MemberRecord,
    at: Instant,
    /// The node deleted its record (it stopped gracefully).
    left: bool,
}

impl Members {
    /// Every member seen since this node joined, by id, with its health now.
    pub(crate) fn list(&self) -> Vec<Member> {
        let now = Instant::now();
        self.seen
            .lock()
            .values()
            .map(|s| {
                let last_seen = now.saturating_duration_since(s.at);
                Member {
                    record: s.record.clone(),
                    up: !s.left && last_seen < STALE,
                    last_seen,
                }
            })
            .collect()
    }

    /// Makes each heartbeat report the MQTT ports `ports` returns then.
    pub(crate) fn report_ports(&self, ports: Ports) {
        *self.ports.lock() = Some(ports);
    }

    fn ports(&self) -> Vec<u16> {
        self.ports
            .lock()
            .as_ref()
            .map(|ports| ports())
            .unwrap_or_default()
    }

    fn apply(&self, entry: kv::Entry) {
        let mut seen = self.seen.lock();
        match entry.operation {
            Operation::Put => match serde_json::from_slice::<MemberRecord>(&entry.value) {
                Ok(record) => {
                    let at = Instant::now();
                    seen.insert(
                        record.id.clone(),
                        Seen {
                            record,
                            at,
                            left: false,
                        },
                    );
                }
                Err(e) => tracing::warn!(
                    key = entry.key,
                    error = %e,
                    "cluster: a member record is not a Wardgate node's; ignored"
                ),
            },
            Operation::Delete | Operation::Purge => {
                if let Some(s) = seen.get_mut(&entry.key) {
                    s.left = true;
                    s.at = Instant::now();
                }
            }
        }
    }
}

/// The bucket's configuration.
pub(crate) fn bucket_config(name: String, replicas: usize) -> kv::Config {
    kv::Config {
        bucket: name,
        history: 1,
        max_age: MAX_AGE,
        num_replicas: replicas,
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    }
}

/// Writes this node's record every [`HEARTBEAT`] until `stop`, then deletes it.
pub(crate) async fn heartbeat(
    bucket: kv::Store,
    broker: Arc<Broker>,
    members: Arc<Members>,
    node_id: String,
    stop: CancellationToken,
) {
    let started = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let record = MemberRecord {
            id: node_id.clone(),
            started,
            ports: members.ports(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            clients: u64::try_from(broker.stats().clients_connected.load(Ordering::Relaxed))
                .unwrap_or(0),
        };
        let value = match serde_json::to_vec(&record) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot encode this node's record");
                continue;
            }
        };
        if let Err(e) = bucket.put(&node_id, value).await {
            tracing::warn!(error = %e, "cluster: cannot write this node's record; retrying");
        }
    }
    if let Err(e) = bucket.delete(&node_id).await {
        tracing::debug!(error = %e, "cluster: cannot delete this node's record on leaving");
    }
}

/// Follows the bucket's records into `members`, until `stop`.
pub(crate) async fn follow(bucket: kv::Store, members: Arc<Members>, stop: CancellationToken) {
    loop {
        let mut watch = match bucket.watch_all().await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot watch the members bucket; retrying");
                tokio::select! {
                    () = tokio::time::sleep(HEARTBEAT) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                () = stop.cancelled() => return,
            };
            match entry {
                Some(Ok(entry)) => members.apply(entry),
                Some(Err(e)) => tracing::warn!(error = %e, "cluster: the members watch failed"),
                None => break,
            }
        }
        tracing::warn!("cluster: the members watch ended; watching again");
    }
}
