//! Patience with JetStream: its API answers "not ready" while a cluster elects its leaders or a
//! machine is busy, and a joining node asks again rather than fail.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a joining node waits for JetStream (a cluster electing its leaders, a busy machine)
/// before it gives up.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

/// Runs a JetStream request again after a failure (a timeout, no leader yet) until it succeeds
/// or [`JOIN_PATIENCE`] has passed; the last error is returned.
pub(crate) async fn patiently<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    mut request: impl FnMut() -> F,
) -> Result<T, String> {
    let deadline = Instant::now() + JOIN_PATIENCE;
    loop {
        match request().await {
            Ok(done) => return Ok(done),
            Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
            Err(e) => {
                tracing::info!(error = %e, "cluster: JetStream is not ready; asking again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
