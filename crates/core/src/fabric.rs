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

use wardgate_protocol::{SubscriptionFilter, Will};

use crate::message::{Message, SharedRef};
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

    /// Wakes `waker` once `ticket` is durable (at once if it already is), or once the fabric
    /// has become [`unavailable`](Fabric::unavailable).
    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>);

    /// Whether the cluster cannot make forwards durable now (no JetStream quorum, NATS out of
    /// reach, for longer than the cluster's publish timeout): a connection whose output waits
    /// for a ticket not yet durable then ends without it (v5: DISCONNECT 0x89 *Server busy*),
    /// so its client sends again elsewhere, instead of waiting forever (docs/cluster.md,
    /// guarantee 10).
    fn unavailable(&self) -> bool;

    /// This node's id in the cluster (a plain token: it names the node in
    /// `$SYS/brokers/<node-id>/...`).
    fn node_id(&self) -> &str;

    /// This node's subscription index gained (`held`) or lost (`!held`) one subscription to
    /// `filter` (plain or shared): the fabric subscribes to what some local session needs.
    fn interest(&self, filter: &SubscriptionFilter, held: bool);

    /// A member of the shared group `group` left (its connection ended) with `message`
    /// unacknowledged — queued, or in flight and not past PUBREC — and no other member of the
    /// group is connected on this node: the copy has left the member's session, and the fabric
    /// hands it to the group elsewhere (a connected member on another node, or back to a
    /// persistent member when the group has no connected one). Called once per copy.
    fn hand_over(&self, group: &SharedRef, message: &Message);

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

    /// The will the cluster must publish for `client_id`'s session should this node die
    /// (docs/cluster.md, guarantee 9), as it is now. Called when a connection attaches, when it
    /// ends, and when a will is published or a session ends or leaves this node.
    fn will(&self, client_id: &str, will: ArmedWill<'_>);
}

/// What becomes of a session's will if its node dies now.
#[derive(Debug, Clone, Copy)]
pub enum ArmedWill<'a> {
    /// Nothing: no will, or it was published, discarded, cancelled, or left with its session.
    None,
    /// The session's connection carries `will`: its loss would publish it after `delay`
    /// seconds (the Will Delay, capped by the session's expiry).
    Connected {
        /// The will.
        will: &'a Will,
        /// Seconds after the loss.
        delay: u32,
    },
    /// The connection went; `will` is due `delay` seconds from now.
    Pending {
        /// The will.
        will: &'a Will,
        /// Seconds from now.
        delay: u32,
    },
}

impl std::fmt::Debug for dyn Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fabric")
    }
}
