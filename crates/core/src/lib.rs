//! The broker without I/O: sessions and their QoS state, the subscription index, retained
//! messages, wills, and the router. No sockets, no files, no runtime: the `server` crate drives it.

pub mod broker;
mod budget;
pub mod message;
pub mod retained;
pub mod session;
pub mod stats;
pub mod store;
pub mod subscriptions;

pub use broker::{
    Attached, Broker, BrokerSettings, ConnectParams, DEFAULT_MAX_SUBSCRIPTION_LEVELS, Disconnect,
    RETAINED_VISITS_PER_QUEUED, Refusal, Restored, RouteResult, SubscribeResult,
};
pub use message::{Delivery, Message, SharedRef};
pub use session::{
    Enqueued, InflightState, LinkState, Outgoing, Qos2Receipt, QueueLimits, QueueOverflow, Session,
    SessionId, Sink, SubscriptionEntry, Wake,
};
pub use stats::{Drops, Stats};
pub use store::{Op, PersistenceSettings, Store, Ticket};
