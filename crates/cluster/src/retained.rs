//! The cluster's retained messages (docs/cluster.md): one bucket, the single source of truth.
//! The node where a retained message is published writes it (through the outbox); every node
//! watches the bucket from its start — first every current key, then each change in revision
//! order — and applies it to its own retained store, where subscribe-time lookups stay local.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use async_nats::jetstream::kv::{self, Entry, Operation, Watch};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use wardgate_core::{Broker, Message};
use wardgate_protocol::{PublishProperties, QoS};

use crate::error::NodeError;
use crate::frame;
use crate::subject::subject_topic;

/// Opens the watch and applies every retained message the bucket holds now, so the node serves
/// them from its first connection; returns the watch for [`follow`].
pub(crate) async fn load(
    broker: &Broker,
    bucket: &kv::Store,
    key_prefix: &str,
) -> Result<Watch, NodeError> {
    let failed = |reason: String| NodeError::JetStream {
        what: "bucket",
        name: bucket.name.clone(),
        reason,
    };
    let held = bucket
        .status()
        .await
        .map_err(|e| failed(e.to_string()))?
        .values();
    let mut watch = bucket
        .watch_with_history(">")
        .await
        .map_err(|e| failed(e.to_string()))?;
    if held == 0 {
        return Ok(watch);
    }
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| failed(e.to_string()))?;
        let current = entry.seen_current || entry.delta == 0;
        apply(broker, key_prefix, entry);
        if current {
            break;
        }
    }
    Ok(watch)
}

/// Applies the bucket's changes as they come, until `stop`.
pub(crate) async fn follow(
    broker: Arc<Broker>,
    mut watch: Watch,
    key_prefix: String,
    stop: CancellationToken,
) {
    loop {
        let entry = tokio::select! {
            entry = watch.next() => entry,
            () = stop.cancelled() => return,
        };
        match entry {
            Some(Ok(entry)) => apply(&broker, &key_prefix, entry),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cluster: the retained bucket's watch failed")
            }
            None => {
                tracing::warn!("cluster: the retained bucket's watch ended");
                return;
            }
        }
    }
}

/// Applies one change of the bucket to the local retained store.
fn apply(broker: &Broker, key_prefix: &str, entry: Entry) {
    let message = match entry.operation {
        // The frame holds the topic (a hashed key does not).
        Operation::Put => match frame::decode(entry.value, Instant::now(), SystemTime::now()) {
            Ok(read) => read.message,
            Err(e) => {
                tracing::warn!(error = %e, key = entry.key, "cluster: a retained value is not a Wardgate frame; ignored");
                return;
            }
        },
        // A cleared topic: an empty retained message clears it here too.
        Operation::Delete | Operation::Purge => {
            let Some(topic) = subject_topic(key_prefix, &entry.key) else {
                tracing::warn!(
                    key = entry.key,
                    "cluster: a retained key is not a topic; ignored"
                );
                return;
            };
            Message {
                topic,
                payload: Bytes::new(),
                qos: QoS::AtMostOnce,
                retain: true,
                properties: PublishProperties::default(),
                origin: None,
                expires_at: None,
            }
        }
    };
    broker.apply_retained(message);
}
