//! The runtime: ports over TCP and WebSocket, one task per connection, the periodic broker tick,
//! and graceful shutdown. Everything here drives the I/O-free `wardgate-core`.

pub mod admin;
pub mod connection;
pub mod metrics;
pub mod plan;
pub mod ports;
pub mod registry;
pub mod security;
pub mod selfcheck;
pub mod stats;
pub mod supervisor;
pub mod wake;
mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;

pub use connection::ConnectionSettings;
pub use ports::{BoundPort, PortProtocol, PortSpec, bind};
pub use supervisor::{PortState, PortStatus, Status, Supervisor};

/// Errors starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A port could not be bound.
    #[error("port {port} ({name}): cannot listen on {addr}: {source}")]
    Bind {
        /// The listener/port name.
        name: String,
        /// The port number.
        port: u16,
        /// The address that failed.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs the broker's periodic work (wills, session expiry, `$SYS`) until `shutdown`.
pub async fn run_ticker(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => broker.tick(Instant::now()),
        }
    }
}
