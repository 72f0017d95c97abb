//! The suite's errors: a step of the topology, a process or a client that failed.

/// What went wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command the topology runs (`ip`, `nft`, `kill`) failed or could not start.
    #[error("{command}: {why}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output, or why it could not start.
        why: String,
    },
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A server did not become ready in time.
    #[error("{what} not ready after {secs} s; its log: {log}")]
    NotReady {
        /// Which server.
        what: String,
        /// How long it was given.
        secs: u64,
        /// Where its log is.
        log: String,
    },
    /// The command line asks for something impossible.
    #[error("usage: {0}")]
    Usage(String),
    /// An MQTT client failed.
    #[error("client: {0}")]
    Client(#[from] wardgate_bench::error::Error),
    /// A load client's task failed, or the load could not start.
    #[error("load: {0}")]
    Load(String),
    /// The run was interrupted (Ctrl-C or SIGTERM).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// The suite's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
