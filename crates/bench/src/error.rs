//! The load generator's error type.

use std::path::PathBuf;

/// Everything that can stop a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker answered something the MQTT flow does not allow, or refused us.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The broker did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A broker process could not be started or stopped.
    #[error("broker {name}: {why}")]
    Broker {
        /// Which broker.
        name: String,
        /// What went wrong.
        why: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A chart could not be drawn from the results.
    #[error("chart: {0}")]
    Chart(String),
    /// The command line asks for something impossible.
    #[error("usage: {0}")]
    Usage(String),
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

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
