//! Which node holds a client ID (docs/cluster.md): the key-value bucket `<PREFIX>_CLIENTS`, key
//! the client ID as a subject token, value the owning node's id. A CONNECT makes its node the
//! owner with a compare-and-set on the key's revision before CONNACK; when another node held
//! the client ID, that node is asked to let the session go ([`crate::takeover`]). Every node
//! also watches the bucket ([`Ownership::follow`]): a later claim by another node of a client
//! ID this node holds ends the connection here, so that of two connects at the same moment on
//! two nodes only the newest claim's connection stays ([`crate::lost`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;
use wardgate_core::store::RecoveredSession;

use crate::error::NodeError;
use crate::lost::{self, Held};
use crate::subject::client_key;
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
    /// The client IDs this node claimed, with the revision of each claim.
    pub(crate) held: Arc<Held>,
}

impl Ownership {
    /// Makes this node the owner of `client_id`; when another node held it, asks that node to
    /// end its connection and let the session go, and returns the session's state when the
    /// connection resumes it (`resume`: Clean Start 0), `principal` may, and it continues.
    pub(crate) async fn claim(
        &self,
        client_id: &str,
        resume: bool,
        principal: Option<&str>,
    ) -> Option<RecoveredSession> {
        let (previous, revision) = match self.take(client_id).await {
            Ok(taken) => taken,
            Err(why) => {
                tracing::warn!(client_id, %why, "cluster: cannot record this node as the client's owner");
                return None;
            }
        };
        self.held.claimed(client_id, revision);
        let previous = previous?;
        let owner = (self.prefix.as_str(), previous.as_str());
        let request = takeover::Request {
            client_id,
            resume,
            principal,
        };
        takeover::request(&self.client, owner, self.takeover_timeout, &request).await
    }

    /// Starts watching the bucket for claims by other nodes of the client IDs this node holds
    /// ([`crate::lost`]); the task to run until `stop`.
    pub(crate) async fn follow(
        &self,
        broker: Arc<Broker>,
        stop: CancellationToken,
    ) -> Result<impl Future<Output = ()> + Send + 'static, NodeError> {
        let watch = self
            .clients
            .watch_all()
            .await
            .map_err(|e| NodeError::Subscribe {
                subject: format!("the watch of bucket {}", self.clients.name),
                reason: e.to_string(),
            })?;
        Ok(lost::follow(
            watch,
            self.held.clone(),
            broker,
            (self.node_id.clone(), self.takeover_timeout),
            stop,
        ))
    }

    /// The node that holds `client_id` now, as the bucket says (`None`: no node ever did).
    pub(crate) async fn owner(&self, client_id: &str) -> Result<Option<String>, String> {
        let entry = self
            .clients
            .entry(client_key(client_id).as_str())
            .await
            .map_err(|e| e.to_string())?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    /// Writes this node as the owner of `client_id` with a compare-and-set on the revision read
    /// (also when the key already names this node: the read may come from a replica that had
    /// not applied a later claim, and a successful write is the only proof that this claim is
    /// the newest); the node that held it before, if another, and the revision written.
    async fn take(&self, client_id: &str) -> Result<(Option<String>, u64), String> {
        let key = client_key(client_id);
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
            let written = match entry {
                Some(e) => {
                    let previous = (e.operation == kv::Operation::Put && e.value != me)
                        .then(|| String::from_utf8_lossy(&e.value).into_owned());
                    let written = self.clients.update(&key, me.clone(), e.revision).await;
                    written.ok().map(|revision| (previous, revision))
                }
                None => {
                    let written = self.clients.create(&key, me.clone()).await;
                    written.ok().map(|revision| (None, revision))
                }
            };
            if let Some(written) = written {
                return Ok(written);
            }
        }
        Err(format!("{ATTEMPTS} compare-and-set attempts conflicted"))
    }
}
