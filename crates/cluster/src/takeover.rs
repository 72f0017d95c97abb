//! Takeover across nodes (docs/cluster.md): the node a client connected to asks the node that
//! held its client ID (`<prefix>.node.<id>.takeover`, NATS request/reply) to end that client's
//! connection as a local takeover does and let its session go; the answer carries the session
//! in the store's format when it continues, and is empty when it does not.
//!
//! Request: one byte, 1 when the new connection resumes the session (Clean Start 0), then the
//! client ID. A node that does not answer within the timeout is taken for gone (issue 18
//! recovers what it held from JetStream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;
use wardgate_core::store::RecoveredSession;

use crate::error::NodeError;

/// The pause before asking again a node that had no responders.
const NO_RESPONDERS_PAUSE: Duration = Duration::from_millis(50);

/// The subject node `node_id` answers takeover requests on.
pub(crate) fn subject(prefix: &str, node_id: &str) -> String {
    format!("{prefix}.node.{node_id}.takeover")
}

/// Asks node `owner` (under `prefix`, within `timeout`) to let `client_id` go; the session's
/// state when it continues here.
pub(crate) async fn request(
    client: &async_nats::Client,
    (prefix, owner): (&str, &str),
    timeout: Duration,
    client_id: &str,
    resume: bool,
) -> Option<RecoveredSession> {
    let mut payload = BytesMut::with_capacity(1 + client_id.len());
    payload.put_u8(u8::from(resume));
    payload.put_slice(client_id.as_bytes());
    let payload = payload.freeze();
    let subject = subject(prefix, owner);
    let deadline = tokio::time::Instant::now() + timeout;
    // "No responders" also while the owner's subscription is still spreading over the NATS
    // cluster (a node that just started): asked again until the deadline.
    let reply = loop {
        let asked = client.request(subject.clone(), payload.clone());
        match tokio::time::timeout_at(deadline, asked).await {
            Ok(Ok(reply)) => break reply,
            Ok(Err(e))
                if e.kind() == RequestErrorKind::NoResponders
                    && tokio::time::Instant::now() + NO_RESPONDERS_PAUSE < deadline =>
            {
                tokio::time::sleep(NO_RESPONDERS_PAUSE).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(client_id, owner, error = %e, "cluster: the client's previous node did not answer the takeover; taken for gone");
                return None;
            }
            Err(_) => {
                tracing::warn!(
                    client_id,
                    owner,
                    "cluster: the client's previous node did not answer the takeover in time; taken for gone"
                );
                return None;
            }
        }
    };
    if reply.payload.is_empty() {
        return None;
    }
    match wardgate_store::decode_session(reply.payload) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(client_id, owner, error = %e, "cluster: the moved session cannot be read; starting afresh");
            None
        }
    }
}

/// Answers the takeover requests other nodes send this one, until `stop`.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            m = requests.next() => m,
            () = stop.cancelled() => None,
        };
        let Some(message) = message else { return };
        let Some(reply) = message.reply else { continue };
        let Some((&flag, id)) = message.payload.split_first() else {
            continue;
        };
        let Ok(client_id) = std::str::from_utf8(id) else {
            tracing::warn!(
                "cluster: a takeover request with a client ID that is not UTF-8; ignored"
            );
            continue;
        };
        let state = broker.release(client_id, flag == 1, Instant::now());
        let answer = state
            .as_ref()
            .map_or_else(Bytes::new, wardgate_store::encode_session);
        tracing::info!(
            client_id,
            moved = state.is_some(),
            "cluster: client taken over by another node"
        );
        if let Err(e) = client.publish(reply, answer).await {
            tracing::warn!(client_id, error = %e, "cluster: cannot answer a takeover request");
        }
    }
}

/// Subscribes to this node's takeover requests.
pub(crate) async fn listen(
    client: &async_nats::Client,
    prefix: &str,
    node_id: &str,
) -> Result<async_nats::Subscriber, NodeError> {
    let subject = subject(prefix, node_id);
    client
        .subscribe(subject.clone())
        .await
        .map_err(|e| NodeError::Subscribe {
            subject,
            reason: e.to_string(),
        })
}
