//! Several Wardgate nodes acting as one broker on NATS JetStream (docs/cluster.md): the
//! reversible topic → subject mapping ([`subject`]), the frame a message travels in between
//! nodes ([`frame`]), and the node's part of the fabric ([`Node`]): forwarding its clients'
//! messages, receiving what its sessions subscribed to from the others, and the cluster's
//! retained messages, and its members and their health ([`Member`]).

mod auth;
mod consumer;
mod error;
pub mod frame;
mod lost;
mod members;
mod node;
mod outbox;
mod ownership;
mod partition;
mod patience;
mod recent;
mod retained;
mod shared;
pub mod subject;
mod sweep;
mod takeover;
mod wills;

pub use auth::NatsAuth;
pub use error::NodeError;
pub use members::{HEARTBEAT, Member, MemberRecord, STALE};
pub use node::{Node, NodeOptions};
pub use subject::{filter_subjects, level_token, subject_topic, token_text, topic_subject};
