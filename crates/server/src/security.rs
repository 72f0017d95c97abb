//! A port's authentication and authorization (`authenticationRef`, `authorizationRef`), built
//! from the configuration and swapped as a whole when it changes: new connections authenticate
//! with the current one, every check of a connected client uses the current policy.

use std::fmt;
use std::sync::Arc;

use wardgate_config::model::{ListenerPort, Model};
use wardgate_security::authn::{Authenticator, AuthnError, TokenVerifier};
use wardgate_security::authz::Authorizer;

/// What one port enforces. Without an authenticator every client is anonymous; an authorizer
/// only takes effect together with an authenticator (AIO behaviour).
#[derive(Debug, Default)]
pub struct PortSecurity {
    /// The port's BrokerAuthentication.
    pub authn: Option<Arc<Authenticator>>,
    /// The port's BrokerAuthorization.
    pub authz: Option<Arc<Authorizer>>,
}

/// Why a port's security cannot be built. A Secret or ConfigMap that a method reads and that is
/// not in the configuration yet only makes the port wait (SPEC.md §4.4); anything else fails it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityProblem {
    /// A Secret a method reads is missing; the log line.
    AwaitingSecret(String),
    /// A ConfigMap a method reads is missing; the log line.
    AwaitingConfigMap(String),
    /// The resource is unusable; what is wrong.
    Failed(String),
}

impl fmt::Display for SecurityProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityProblem::AwaitingSecret(m)
            | SecurityProblem::AwaitingConfigMap(m)
            | SecurityProblem::Failed(m) => f.write_str(m),
        }
    }
}

impl PortSecurity {
    /// Builds the port's security from `model`; the error says which resource is unusable, or
    /// which Secret or ConfigMap the port waits for. `tokens` verifies service-account tokens
    /// for methods that name no JWKS of their own.
    pub fn for_port(
        model: &Model,
        port: &ListenerPort,
        tokens: Option<&Arc<dyn TokenVerifier>>,
    ) -> Result<PortSecurity, SecurityProblem> {
        let authn = match &port.authentication_ref {
            None => None,
            Some(name) => Some(Arc::new(Authenticator::new(model, name).map(|mut a| {
                if let Some(tokens) = tokens {
                    a.set_default_token_verifier(tokens.clone());
                }
                a
            }).map_err(|e| {
                let at = format!("BrokerAuthentication/{name}");
                match e {
                    AuthnError::MissingSecret { method, name } => SecurityProblem::AwaitingSecret(
                        format!("{at}: {method}: Secret {name} not found. Awaiting creation of secret."),
                    ),
                    AuthnError::MissingConfigMap { method, name } => {
                        SecurityProblem::AwaitingConfigMap(format!(
                            "{at}: {method}: ConfigMap {name} not found. Awaiting creation of configmap."
                        ))
                    }
                    e => SecurityProblem::Failed(format!("{at}: {e}")),
                }
            })?)),
        };
        let authz = match port.effective_authorization_ref() {
            None => None,
            Some(name) => Some(Arc::new(Authorizer::new(model, name).map_err(|e| {
                SecurityProblem::Failed(format!("BrokerAuthorization/{name}: {e}"))
            })?)),
        };
        Ok(PortSecurity { authn, authz })
    }
}
