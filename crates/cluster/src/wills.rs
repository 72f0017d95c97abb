//! Wills of a dead node's clients (docs/cluster.md, guarantee 9). Each node records in the
//! key-value bucket `<PREFIX>_WILLS` (key: the client ID as a subject token) the will it would
//! publish if the connection carrying it were lost now, or the delayed will still waiting after
//! a connection went ([`ArmedWill`]), and removes the record when the will is published,
//! discarded or cancelled, or its session leaves. Every node mirrors the bucket; when the node
//! named in a record is no longer up (its `<PREFIX>_NODES` record expired or was deleted) and
//! the will's delay has passed, the surviving nodes race to delete the record on the revision
//! they saw: the one whose compare-and-set wins publishes the will, once.
//!
//! A record: version (1), kind (1: the connection carries it, delay counted from the node's
//! death as this node saw it; 2: pending, delay counted from when it was written), the delay in
//! seconds, the write's wall-clock time in milliseconds, the node's id (length-prefixed), then
//! the will as a v5 CONNECT that carries it (the protocol's own encoding).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::kv::{self, Operation};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wardgate_core::{ArmedWill, Broker};
use wardgate_protocol::{
    Connect, ConnectProperties, DecodeLimits, Packet, ProtocolVersion, Will, decode, encode,
};

use crate::members::{Members, STALE};
use crate::subject::client_key;

const VERSION: u8 = 1;
const CONNECTED: u8 = 1;
const PENDING: u8 = 2;

/// How often the surviving nodes look for wills to publish.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// One change to this node's records, in the order the core made them.
pub(crate) enum Change {
    Put { key: String, value: Bytes },
    Clear { key: String },
}

/// This node's will records: what the core says goes to the writer task, in order.
pub(crate) struct Wills {
    node_id: String,
    /// The clients this node has a record for (only they need a removal).
    armed: Mutex<HashSet<String>>,
    changes: mpsc::UnboundedSender<Change>,
}

impl Wills {
    /// The records of node `node_id`, and the receiver [`write`] applies.
    pub(crate) fn new(node_id: String) -> (Wills, mpsc::UnboundedReceiver<Change>) {
        let (changes, applied) = mpsc::unbounded_channel();
        let wills = Wills {
            node_id,
            armed: Mutex::new(HashSet::new()),
            changes,
        };
        (wills, applied)
    }

    /// `client_id`'s will is now `will` (the core's [`Fabric::will`](wardgate_core::Fabric::will)).
    pub(crate) fn set(&self, client_id: &str, will: ArmedWill<'_>) {
        let key = client_key(client_id);
        let (kind, will, delay) = match will {
            ArmedWill::None => {
                if self.armed.lock().remove(&key) {
                    let _ = self.changes.send(Change::Clear { key });
                }
                return;
            }
            ArmedWill::Connected { will, delay } => (CONNECTED, will, delay),
            ArmedWill::Pending { will, delay } => (PENDING, will, delay),
        };
        let value = encode_record(kind, delay, &self.node_id, will, SystemTime::now());
        self.armed.lock().insert(key.clone());
        let _ = self.changes.send(Change::Put { key, value });
    }
}

/// Applies this node's changes to the bucket in order, until `stop`. A removal deletes the
/// record only while it still names this node (another node may have recorded the client's
/// next connection meanwhile).
pub(crate) async fn write(
    bucket: kv::Store,
    node_id: String,
    mut changes: mpsc::UnboundedReceiver<Change>,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            change = changes.recv() => change,
        };
        let Some(change) = change else { return };
        let result = match change {
            Change::Put { key, value } => bucket
                .put(&key, value)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Change::Clear { key } => clear_own(&bucket, &key, &node_id).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cluster: a will record was not updated");
        }
    }
}

async fn clear_own(bucket: &kv::Store, key: &str, node_id: &str) -> Result<(), String> {
    let entry = bucket.entry(key).await.map_err(|e| e.to_string())?;
    let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
        return Ok(());
    };
    if record_node(&entry.value).as_deref() != Some(node_id) {
        return Ok(());
    }
    bucket
        .delete_expect_revision(key, Some(entry.revision))
        .await
        .map_err(|e| e.to_string())
}

/// A record as read back.
#[derive(Debug)]
struct Record {
    kind: u8,
    delay: Duration,
    written: SystemTime,
    node: String,
    will: Will,
}

fn encode_record(kind: u8, delay: u32, node: &str, will: &Will, now: SystemTime) -> Bytes {
    let written_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let node = &node.as_bytes()[..node.len().min(u8::MAX as usize)];
    let mut out = BytesMut::new();
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u32(delay);
    out.put_u64(written_ms);
    out.put_u8(node.len() as u8);
    out.put_slice(node);
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: String::new(),
        will: Some(will.clone()),
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    encode(
        &Packet::Connect(Box::new(connect)),
        ProtocolVersion::V5,
        &mut out,
    );
    out.freeze()
}

/// The node a record names, without reading the rest.
fn record_node(value: &[u8]) -> Option<String> {
    let header = value.get(..15)?;
    let len = usize::from(header[14]);
    let node = value.get(15..15 + len)?;
    Some(String::from_utf8_lossy(node).into_owned())
}

fn decode_record(mut value: Bytes) -> Option<Record> {
    if value.len() < 15 || value.get_u8() != VERSION {
        return None;
    }
    let kind = value.get_u8();
    let delay = Duration::from_secs(u64::from(value.get_u32()));
    let written = SystemTime::UNIX_EPOCH + Duration::from_millis(value.get_u64());
    let len = usize::from(value.get_u8());
    if value.len() < len {
        return None;
    }
    let node = String::from_utf8(value.split_to(len).to_vec()).ok()?;
    let mut packet = BytesMut::from(&value[..]);
    let Ok(Some(Packet::Connect(connect))) = decode(&mut packet, None, &DecodeLimits::default())
    else {
        return None;
    };
    Some(Record {
        kind,
        delay,
        written,
        node,
        will: connect.will?,
    })
}

/// Mirrors the bucket and publishes, through `broker`, the wills of nodes that are gone once
/// their delay has passed, when this node's compare-and-set wins; until `stop`.
pub(crate) async fn publish_orphans(
    broker: Arc<Broker>,
    bucket: kv::Store,
    members: Arc<Members>,
    node_id: String,
    stop: CancellationToken,
) {
    let mut watch = match bucket.watch_with_history(">").await {
        Ok(watch) => watch,
        Err(e) => {
            tracing::warn!(error = %e, "cluster: cannot watch the wills bucket; wills of dead nodes are not published by this node");
            return;
        }
    };
    let joined = Instant::now();
    let started = SystemTime::now();
    let mut records: HashMap<String, (u64, Record)> = HashMap::new();
    let mut down_since: HashMap<String, SystemTime> = HashMap::new();
    let mut look = tokio::time::interval(LOOK_EVERY);
    loop {
        tokio::select! {
            entry = watch.next() => match entry {
                Some(Ok(entry)) if entry.operation == Operation::Put => {
                    match decode_record(entry.value) {
                        Some(record) => { records.insert(entry.key, (entry.revision, record)); }
                        None => tracing::warn!(key = entry.key, "cluster: a will record cannot be read; ignored"),
                    }
                }
                Some(Ok(entry)) => { records.remove(&entry.key); }
                Some(Err(e)) => tracing::warn!(error = %e, "cluster: the wills bucket's watch failed"),
                None => return,
            },
            _ = look.tick() => {
                // Until every member's record has had time to arrive, a live node looks gone.
                if joined.elapsed() > STALE {
                    let me = (node_id.as_str(), started);
                    publish_due(&broker, &bucket, &members, me, &mut records, &mut down_since).await;
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Publishes the wills of gone nodes whose delay has passed and whose record this node takes.
/// `me`: this node's id and when it started; its own records written before it started are
/// those of its previous run, whose connections died with it (a restart quicker than `STALE`
/// never looks gone to the others): it takes them as any survivor would, counting from its start.
async fn publish_due(
    broker: &Broker,
    bucket: &kv::Store,
    members: &Members,
    (node_id, started): (&str, SystemTime),
    records: &mut HashMap<String, (u64, Record)>,
    down_since: &mut HashMap<String, SystemTime>,
) {
    let up: HashSet<String> = members
        .list()
        .into_iter()
        .filter(|m| m.up)
        .map(|m| m.record.id)
        .collect();
    let now = SystemTime::now();
    down_since.retain(|node, _| !up.contains(node));
    let mut due = Vec::new();
    for (key, (revision, record)) in records.iter() {
        let since = if record.node == node_id {
            if record.written >= started {
                continue;
            }
            started
        } else if up.contains(&record.node) {
            continue;
        } else {
            *down_since.entry(record.node.clone()).or_insert(now)
        };
        let from = if record.kind == PENDING {
            record.written
        } else {
            since
        };
        if from + record.delay <= now {
            due.push((key.clone(), *revision));
        }
    }
    for (key, revision) in due {
        // The compare-and-set: one surviving node deletes the record, and publishes.
        if bucket
            .delete_expect_revision(&key, Some(revision))
            .await
            .is_ok()
            && let Some((_, record)) = records.remove(&key)
        {
            tracing::info!(
                node = record.node,
                "cluster: publishing the will of a client of a node that is gone"
            );
            broker.publish_lost_will(record.will, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use wardgate_core::BrokerSettings;
    use wardgate_protocol::{QoS, TopicName, WillProperties};
    use wardgate_testkit::nats::NatsCluster;

    fn will() -> Will {
        Will {
            topic: TopicName::new("w/x").expect("valid"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                ..WillProperties::default()
            },
        }
    }

    /// Two nodes that saw the same record of a gone node both find it due at once: the
    /// compare-and-set lets one publish it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_survivors_that_see_a_will_due_together_one_publishes_it() {
        let nats = NatsCluster::start_with(1).expect("NATS");
        let client = async_nats::connect(nats.url(0)).await.expect("connects");
        let jetstream = async_nats::jetstream::new(client);
        let bucket = jetstream
            .create_key_value(kv::Config {
                bucket: "T_WILLS".into(),
                ..Default::default()
            })
            .await
            .expect("bucket");
        let value = encode_record(CONNECTED, 0, "gone", &will(), SystemTime::now());
        let revision = bucket.put("c1", value.clone()).await.expect("put");
        let members = Members::default();
        let mut published = 0;
        for survivor in ["b", "c"] {
            let broker = Broker::new(BrokerSettings::default());
            let record = decode_record(value.clone()).expect("reads");
            let mut records = HashMap::from([("c1".to_owned(), (revision, record))]);
            let mut down = HashMap::new();
            publish_due(
                &broker,
                &bucket,
                &members,
                (survivor, SystemTime::now()),
                &mut records,
                &mut down,
            )
            .await;
            published += broker.stats().wills_sent.load(Ordering::Relaxed);
        }
        assert_eq!(published, 1);
    }

    #[test]
    fn a_record_reads_back_and_a_broken_one_is_refused() {
        let will = will();
        let value = encode_record(PENDING, 5, "node-1", &will, SystemTime::now());
        assert_eq!(record_node(&value).as_deref(), Some("node-1"));
        let record = decode_record(value.clone()).expect("reads back");
        assert_eq!(
            (record.kind, record.delay, record.node.as_str()),
            (PENDING, Duration::from_secs(5), "node-1")
        );
        assert_eq!(record.will, will);
        for cut in 0..value.len() {
            assert!(decode_record(value.slice(..cut)).is_none(), "cut at {cut}");
        }
    }
}
