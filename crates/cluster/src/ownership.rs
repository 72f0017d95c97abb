//! Which node holds a client ID (docs/cluster.md): the key-value bucket `<PREFIX>_CLIENTS`, key
//! the client ID as a subject token, value the owning node's id. A CONNECT makes its node the
//! owner with a compare-and-set on the key's revision before CONNACK; when another node held
//! the client ID, that node is asked to let the session go ([`crate::takeover`]).

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use wardgate_core::store::RecoveredSession;

use crate::subject::level_token;
use crate::takeover;

/// Compare-and-set attempts before a claim gives up. One fails when another node claims the
/// same client ID at the same moment, or when the read was served by a replica that had not
/// applied the last write yet (JetStream's direct gets): the next attempt waits a little longer.
const ATTEMPTS: u32 = 12;

/// The wait after the first failed attempt; the n-th waits n times this (at most ~0.8 s in all).
const RETRY_PAUSE: Duration = Duration::from_millis(12);

/// This node's part of the ownership of client IDs.
pub(crate) struct Ownership {
    /// The `<PREFIX>_CLIENTS` bucket.
    pub(crate) clients: kv::Store,
    /// The NATS connection, for takeover requests.
    pub(crate) client: async_nats::Client,
    /// This node's id.
    pub(crate) node_id: String,
    /// The subject prefix.
    pub(crate) prefix: String,
    /// How long a node has to answer a takeover request before it is taken for gone.
    pub(crate) takeover_timeout: Duration,
}

impl Ownership {
    /// Makes this node the owner of `client_id`; when another node held it, asks that node to
    /// end its connection and let the session go, and returns the session's state when the
    /// connection resumes it (`resume`: Clean Start 0) and it continues.
    pub(crate) async fn claim(&self, client_id: &str, resume: bool) -> Option<RecoveredSession> {
        let previous = match self.take(client_id).await {
            Ok(previous) => previous?,
            Err(why) => {
                tracing::warn!(client_id, %why, "cluster: cannot record this node as the client's owner");
                return None;
            }
        };
        let owner = (self.prefix.as_str(), previous.as_str());
        takeover::request(
            &self.client,
            owner,
            self.takeover_timeout,
            client_id,
            resume,
        )
        .await
    }

    /// The node that holds `client_id` now, as the bucket says (`None`: no node ever did).
    pub(crate) async fn owner(&self, client_id: &str) -> Result<Option<String>, String> {
        let entry = self
            .clients
            .entry(level_token(client_id).as_str())
            .await
            .map_err(|e| e.to_string())?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// Writes this node as the owner of `client_id`; the node that held it before, if another.
    async fn take(&self, client_id: &str) -> Result<Option<String>, String> {
        let key = level_token(client_id);
        let me = Bytes::from(self.node_id.clone().into_bytes());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RETRY_PAUSE * attempt).await;
            }
            let entry = self
                .clients
                .entry(key.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let held = entry.filter(|e| e.operation == kv::Operation::Put);
            match held {
                Some(e) if e.value == me => return Ok(None),
                Some(e) => {
                    if self
                        .clients
                        .update(&key, me.clone(), e.revision)
                        .await
                        .is_ok()
                    {
                        return Ok(Some(String::from_utf8_lossy(&e.value).into_owned()));
                    }
                }
                None => {
                    if self.clients.create(&key, me.clone()).await.is_ok() {
                        return Ok(None);
                    }
                }
            }
        }
        Err(format!("{ATTEMPTS} compare-and-set attempts conflicted"))
    }
}
