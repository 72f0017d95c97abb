//! Why an [`Authenticator`](super::Authenticator) could not be built from the configuration.

/// An authentication method's configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The named BrokerAuthentication is not in the configuration.
    #[error("BrokerAuthentication/{0} does not exist")]
    UnknownAuthentication(String),
    /// A Secret a method needs is not in the configuration (the port waits for it).
    #[error("{method}: Secret/{name} does not exist")]
    MissingSecret {
        /// The method and field that name it.
        method: String,
        /// The Secret.
        name: String,
    },
    /// A ConfigMap a method needs is not in the configuration (the port waits for it).
    #[error("{method}: ConfigMap/{name} does not exist")]
    MissingConfigMap {
        /// The method and field that name it.
        method: String,
        /// The ConfigMap.
        name: String,
    },
    /// A Secret or ConfigMap lacks the key a method reads.
    #[error("{resource} has no key `{key}`")]
    MissingKey {
        /// `Secret/x` or `ConfigMap/x`.
        resource: String,
        /// The key.
        key: String,
    },
    /// `passwords.toml` cannot be read; the message names the user and field.
    #[error("{resource}: passwords.toml: {message}")]
    PasswordFile {
        /// `Secret/x`.
        resource: String,
        /// What is wrong (never the password or the hash).
        message: String,
    },
    /// An X509 attribute mapping cannot be used.
    #[error("X509 authorizationAttributes: {0}")]
    Attributes(String),
    /// The JWKS of a ServiceAccountToken method cannot be used.
    #[error("ServiceAccountToken: {0}")]
    Jwks(String),
    /// The HTTPS client of a Custom method cannot be made.
    #[error("Custom {endpoint}: {message}")]
    Custom {
        /// The endpoint.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
}
