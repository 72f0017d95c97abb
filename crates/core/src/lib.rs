//! The broker without I/O: sessions and their QoS state, the subscription index, retained
//! messages, wills, and the router. No sockets, no files, no runtime: the `server` crate drives it.

pub mod broker;
mod budget;
pub mod fabric;
mod ids;
pub mod message;
pub mod retained;
pub mod session;
pub mod stats;
pub mod store;
pub mod subscriptions;
mod wake;

pub use broker::{
    Attached, Broker, BrokerSettings, ConnectParams, DEFAULT_MAX_SUBSCRIPTION_LEVELS, Disconnect,
    RETAINED_VISITS_PER_QUEUED, Refusal, RemoteScope, Restored, RouteResult, SubscribeResult,
};
pub use fabric::{ArmedWill, Fabric};
pub use ids::SessionId;
pub use message::{Delivery, Message, SharedRef};
pub use session::{
    Enqueued, LinkState, Outgoing, Qos2Admission, Qos2Receipt, QueueLimits, QueueOverflow, Session,
    Sink,
};
pub use stats::{Drops, Stats};
pub use store::{InflightState, Op, PersistenceSettings, Store, SubscriptionEntry, Ticket};
pub use wake::Wake;
