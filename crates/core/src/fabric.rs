//! What the core asks of a cluster (docs/cluster.md): a fabric that carries the messages
//! published on this node to the other nodes, says when they are durable there, and learns
//! which filters this node's sessions hold. The core opens no socket: the `cluster` crate
//! implements [`Fabric`] on NATS JetStream and feeds what other nodes publish back in with
//! [`Broker::publish_remote`](crate::Broker::publish_remote).
//!
//! A message's acknowledgement to its publisher (PUBACK, PUBREC) waits for the ticket
//! [`Fabric::forward`] returns, through the same gate as the store's tickets: nothing is
//! acknowledged before the cluster has made it durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wardgate_protocol::SubscriptionFilter;

use crate::message::Message;
use crate::store::{RecoveredSession, Ticket};
use crate::wake::Wake;

/// The cluster, as the core sees it. Every method is called on the publish or subscribe path,
/// some with the subscription index's lock held: none may block.
pub trait Fabric: Send + Sync {
    /// Sends `message`, published on this node (by a client, or a will), to the other nodes.
    /// Returns the ticket that becomes durable once the cluster has stored it (QoS 1/2), or
    /// `None` when nothing waits for it (QoS 0).
    fn forward(&self, message: &Message) -> Option<Ticket>;

    /// Every forward up to this ticket is durable in the cluster.
    fn durable(&self) -> Ticket;

    /// Wakes `waker` once `ticket` is durable (at once if it already is).
    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>);

    /// This node's id in the cluster (a plain token: it names the node in
    /// `$SYS/brokers/<node-id>/...`).
    fn node_id(&self) -> &str;

    /// This node's subscription index gained (`held`) or lost (`!held`) one subscription to
    /// `filter` (plain or shared): the fabric subscribes to what some local session needs.
    fn interest(&self, filter: &SubscriptionFilter, held: bool);

    /// Makes this node the owner of `client_id` before a connection of it attaches here: the
    /// node that held it ends its connection (a takeover) and lets the session go; the future
    /// gives the session's state when the connection resumes it (`resume`: Clean Start 0) and
    /// it continues, to take in with [`Broker::adopt`](crate::Broker::adopt). `principal` is who
    /// the new connection is: a session another principal created is not handed over (as on
    /// one node), so it ends where it was, its will published.
    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        resume: bool,
        principal: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Option<RecoveredSession>> + Send + 'a>>;
}

impl std::fmt::Debug for dyn Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fabric")
    }
}
