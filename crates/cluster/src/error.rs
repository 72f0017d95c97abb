//! Why a node could not join the cluster.

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No NATS server answered.
    #[error("cluster: cannot connect to NATS at {urls}: {reason}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// What the client said.
        reason: String,
    },
    /// JetStream refused to create or open a stream or bucket.
    #[error(
        "cluster: JetStream {what} {name}: {reason} (is JetStream enabled on the NATS servers, with at least `replicas` of them?)"
    )]
    JetStream {
        /// "stream" or "bucket".
        what: &'static str,
        /// Its name.
        name: String,
        /// What JetStream said.
        reason: String,
    },
    /// A subscription could not be made.
    #[error("cluster: subscribing to {subject}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What the client said.
        reason: String,
    },
}
