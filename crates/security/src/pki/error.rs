//! The one error type of the `pki` and `tls` modules. Every message names what it is about (the
//! Secret key, the file, the certificate by position and subject) and, where a user can act, how
//! to fix it.

use std::path::PathBuf;

/// A certificate, key or PKI state problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// PEM or DER input holds no certificate, or a block that does not decode.
    #[error("{what}: {message}")]
    BadCertificate {
        /// Where the input came from (`tls.crt`, a file, a ConfigMap key).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A private key is missing, encrypted, malformed or of an unsupported type.
    #[error("{what}: {message}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The private key does not belong to the certificate it is paired with.
    #[error("{0}")]
    KeyMismatch(String),
    /// The chain is not leaf first, then each certificate's issuer.
    #[error("{0}")]
    WrongOrder(String),
    /// A certificate that must act as a CA (an intermediate, an issuer's certificate, a trusted
    /// client CA) lacks `basicConstraints CA:TRUE`.
    #[error("{0}")]
    NotACa(String),
    /// Key generation, signing or building a TLS configuration failed.
    #[error("{0}")]
    Crypto(String),
    /// An argument is not acceptable (a bad SAN, a date in the past, ...).
    #[error("{0}")]
    Invalid(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkiError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn cert(what: &str, message: impl Into<String>) -> Self {
        PkiError::BadCertificate {
            what: what.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn key(what: &str, message: impl Into<String>) -> Self {
        PkiError::BadKey {
            what: what.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn crypto(context: &str, e: impl std::fmt::Display) -> Self {
        PkiError::Crypto(format!("{context}: {e}"))
    }
}
