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
use tokio_util::task::TaskTracker;
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

/// How long shutdown waits for the server's tasks before it goes on without them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Ends the server: cancels `shutdown`, then waits, at most `grace`, for every task on `tasks`
/// (connections sending DISCONNECT 0x8B, accept loops, the ticker, the self-check, the admin
/// API) to end. Returns whether they all did.
pub async fn shut_down(shutdown: &CancellationToken, tasks: &TaskTracker, grace: Duration) -> bool {
    shutdown.cancel();
    tasks.close();
    tokio::time::timeout(grace, tasks.wait()).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_a_task_to_end() {
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let ended = Arc::new(AtomicBool::new(false));
        {
            let (shutdown, ended) = (shutdown.clone(), ended.clone());
            tasks.spawn(async move {
                shutdown.cancelled().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                ended.store(true, Ordering::SeqCst);
            });
        }
        let mut done = Box::pin(shut_down(&shutdown, &tasks, SHUTDOWN_GRACE));
        assert_eq!(
            (&mut done).now_or_never(),
            None,
            "the task is still running"
        );
        assert!(done.await);
        assert!(
            ended.load(Ordering::SeqCst),
            "shutdown returned before the task ended"
        );
    }

    #[tokio::test]
    async fn shutdown_without_tasks_does_not_wait() {
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        let done = shut_down(&shutdown, &tasks, SHUTDOWN_GRACE).now_or_never();
        assert_eq!(done, Some(true));
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn shutdown_gives_up_on_a_task_after_the_grace() {
        let (shutdown, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(std::future::pending::<()>());
        assert!(!shut_down(&shutdown, &tasks, Duration::from_millis(200)).await);
    }
}
