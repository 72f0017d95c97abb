//! A port's authentication and authorization (`authenticationRef`, `authorizationRef`), built
//! from the configuration and swapped as a whole when it changes: new connections authenticate
//! with the current one, every check of a connected client uses the current policy.

use std::sync::Arc;

use wardgate_config::model::{ListenerPort, Model};
use wardgate_security::authn::Authenticator;
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

impl PortSecurity {
    /// Builds the port's security from `model`; the error says which resource is unusable.
    pub fn for_port(model: &Model, port: &ListenerPort) -> Result<PortSecurity, String> {
        let authn = match &port.authentication_ref {
            None => None,
            Some(name) => Some(Arc::new(
                Authenticator::new(model, name)
                    .map_err(|e| format!("BrokerAuthentication/{name}: {e}"))?,
            )),
        };
        let authz = match port.effective_authorization_ref() {
            None => None,
            Some(name) => Some(Arc::new(
                Authorizer::new(model, name)
                    .map_err(|e| format!("BrokerAuthorization/{name}: {e}"))?,
            )),
        };
        Ok(PortSecurity { authn, authz })
    }
}
