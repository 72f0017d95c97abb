//! Takeover across nodes (docs/cluster.md): the node a client connected to asks the node that
//! held its client ID (`<prefix>.node.<id>.takeover`, NATS request/reply) to end that client's
//! connection as a local takeover does and let its session go; the answer carries the session
//! in the store's format when it continues, and is empty when it does not.
//!
//! Request ([`Request`]): a flags byte (bit 0: the new connection resumes the session, Clean
//! Start 0; bit 1: a principal follows), the principal as a 2-byte big-endian length and its
//! bytes when given, then the client ID. A node that does not answer within the timeout is
//! taken for gone (issue 18 recovers what it held from JetStream).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;
use wardgate_core::store::RecoveredSession;

use crate::error::NodeError;

/// Bit 0 of a request's flags: the new connection resumes the session (Clean Start 0).
const RESUME: u8 = 1;
/// Bit 1 of a request's flags: the new connection's principal follows.
const PRINCIPAL: u8 = 2;

/// What a node asks the node that held a client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    /// The client ID.
    pub(crate) client_id: &'a str,
    /// The new connection resumes the session (Clean Start 0).
    pub(crate) resume: bool,
    /// Who the new connection is: only the principal that created a session resumes it.
    pub(crate) principal: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn encode(&self) -> Bytes {
        let principal = self.principal.filter(|p| u16::try_from(p.len()).is_ok());
        let mut flags = if self.resume { RESUME } else { 0 };
        let mut payload = BytesMut::with_capacity(3 + self.client_id.len());
        if principal.is_some() {
            flags |= PRINCIPAL;
        }
        payload.put_u8(flags);
        if let Some(p) = principal {
            // Checked above: at most u16::MAX bytes.
            payload.put_u16(p.len() as u16);
            payload.put_slice(p.as_bytes());
        }
        payload.put_slice(self.client_id.as_bytes());
        payload.freeze()
    }

    /// Reads a request; `None` when it is not one.
    fn decode(payload: &'a [u8]) -> Option<Request<'a>> {
        let (&flags, mut rest) = payload.split_first()?;
        let principal = if flags & PRINCIPAL != 0 {
            let (len, after) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            let (principal, after) = after.split_at_checked(len)?;
            rest = after;
            Some(std::str::from_utf8(principal).ok()?)
        } else {
            None
        };
        Some(Request {
            client_id: std::str::from_utf8(rest).ok()?,
            resume: flags & RESUME != 0,
            principal,
        })
    }
}

/// The pause before asking again a node that had no responders.
const NO_RESPONDERS_PAUSE: Duration = Duration::from_millis(50);

/// The subject node `node_id` answers takeover requests on.
pub(crate) fn subject(prefix: &str, node_id: &str) -> String {
    format!("{prefix}.node.{node_id}.takeover")
}

/// Asks node `owner` (under `prefix`, within `timeout`) to let the client of `request` go; the
/// session's state when it continues here.
pub(crate) async fn request(
    client: &async_nats::Client,
    (prefix, owner): (&str, &str),
    timeout: Duration,
    request: &Request<'_>,
) -> Option<RecoveredSession> {
    let client_id = request.client_id;
    let payload = request.encode();
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
        let Some(request) = Request::decode(&message.payload) else {
            tracing::warn!("cluster: a takeover request that cannot be read; ignored");
            continue;
        };
        let client_id = request.client_id;
        let terms = (request.resume, request.principal);
        let state = broker.release(client_id, terms, Instant::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_and_a_malformed_one_is_refused() {
        for request in [
            Request {
                client_id: "dev.1",
                resume: true,
                principal: Some("UsernamePassword:alice"),
            },
            Request {
                client_id: "",
                resume: false,
                principal: Some(""),
            },
            Request {
                client_id: "dev",
                resume: true,
                principal: None,
            },
        ] {
            let bytes = request.encode();
            assert_eq!(Request::decode(&bytes), Some(request));
        }
        // The format before principals: flags 0 or 1, then the client ID.
        assert_eq!(
            Request::decode(b"\x01dev"),
            Some(Request {
                client_id: "dev",
                resume: true,
                principal: None
            })
        );
        for bad in [&b""[..], b"\x02", b"\x02\x00\x05ab", b"\x00\xff"] {
            assert_eq!(Request::decode(bad), None, "{bad:?}");
        }
    }
}
