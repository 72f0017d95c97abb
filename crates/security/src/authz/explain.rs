//! `wardgate explain` (SPEC.md §8.6): for a described client and one action, on each port (or
//! the one asked for), which authentication method would apply and what identity it gives
//! (with the attributes the certificate chain yields), then which rule and topic allow the
//! action, or why nothing does.

use std::collections::BTreeMap;
use std::fmt;

use rustls_pki_types::CertificateDer;
use wardgate_config::Model;

use super::{Authorizer, Decision, principal_matches};
use crate::authn::explain::{Described, fmt_attrs};
use crate::authn::{Authenticator, Identity, anonymous};

/// The action asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainAction {
    /// CONNECT.
    Connect,
    /// PUBLISH on a topic name.
    Publish(String),
    /// SUBSCRIBE to a filter.
    Subscribe(String),
}

impl fmt::Display for ExplainAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainAction::Connect => f.write_str("connect"),
            ExplainAction::Publish(t) => write!(f, "publish on \"{t}\""),
            ExplainAction::Subscribe(t) => write!(f, "subscribe to \"{t}\""),
        }
    }
}

/// A client and an action to explain.
#[derive(Debug, Clone)]
pub struct ExplainQuery {
    /// Client ID.
    pub client_id: String,
    /// CONNECT username (for SAT: the token's `sub`).
    pub username: Option<String>,
    /// CONNECT authentication method (`K8S-SAT` assumes a valid token).
    pub auth_method: Option<String>,
    /// The client's certificate chain, leaf first (`--cert`).
    pub client_chain: Vec<CertificateDer<'static>>,
    /// Attributes to assume (`--attr k=v`), added to what authentication yields.
    pub attributes: BTreeMap<String, String>,
    /// Only this port (matched against `port` and `nodePort`); `None` = every port.
    pub port: Option<u16>,
    /// What the client wants to do.
    pub action: ExplainAction,
}

/// The answer for one port.
#[derive(Debug, Clone)]
pub struct PortExplanation {
    /// The listener.
    pub listener: String,
    /// The port.
    pub port: u16,
    /// How authentication goes, line by line.
    pub authentication: Vec<String>,
    /// The identity authorization decides from; `None` when authentication denies.
    pub identity: Option<Identity>,
    /// How authorization goes, line by line.
    pub authorization: Vec<String>,
    /// The final answer.
    pub allowed: bool,
}

/// The whole answer; `Display` prints it for the CLI.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The action explained.
    pub action: ExplainAction,
    /// One entry per port examined.
    pub ports: Vec<PortExplanation>,
    /// Anything else worth saying (e.g. no such port).
    pub notes: Vec<String>,
}

impl Explanation {
    /// Whether the action is allowed on every port examined (and there was one).
    pub fn allowed(&self) -> bool {
        !self.ports.is_empty() && self.ports.iter().all(|p| p.allowed)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "{n}")?;
        }
        for (i, p) in self.ports.iter().enumerate() {
            if i > 0 || !self.notes.is_empty() {
                writeln!(f)?;
            }
            writeln!(
                f,
                "Port {} (BrokerListener/{}): {} — {}",
                p.port,
                p.listener,
                self.action,
                if p.allowed { "ALLOWED" } else { "DENIED" }
            )?;
            writeln!(f, "  Authentication:")?;
            for l in &p.authentication {
                writeln!(f, "    {l}")?;
            }
            if let Some(id) = &p.identity {
                writeln!(
                    f,
                    "    => {} client ID \"{}\", username {}, attributes {}",
                    id.method(),
                    id.client_id(),
                    id.username()
                        .map_or_else(|| "(none)".to_owned(), |u| format!("\"{u}\"")),
                    fmt_attrs(id.attributes())
                )?;
            }
            if !p.authorization.is_empty() {
                writeln!(f, "  Authorization:")?;
                for l in &p.authorization {
                    writeln!(f, "    {l}")?;
                }
            }
        }
        Ok(())
    }
}

/// Explains whether the client of `query` may do its action, on each port.
pub fn explain(model: &Model, query: &ExplainQuery) -> Explanation {
    let mut out = Explanation {
        action: query.action.clone(),
        ports: Vec::new(),
        notes: Vec::new(),
    };
    for listener in &model.listeners {
        for port in &listener.ports {
            let bound = port.bound_port(listener.service_type);
            if query.port.is_some_and(|q| q != port.port && q != bound) {
                continue;
            }
            out.ports
                .push(explain_port(model, query, &listener.name, port));
        }
    }
    if out.ports.is_empty() {
        out.notes.push(match query.port {
            Some(p) => format!("No listener has port {p}."),
            None => "The configuration has no ports.".to_owned(),
        });
    }
    out
}

fn explain_port(
    model: &Model,
    q: &ExplainQuery,
    listener: &str,
    port: &wardgate_config::ListenerPort,
) -> PortExplanation {
    let mut p = PortExplanation {
        listener: listener.to_owned(),
        port: port.port,
        authentication: Vec::new(),
        identity: None,
        authorization: Vec::new(),
        allowed: false,
    };
    let identity = match &port.authentication_ref {
        None => {
            p.authentication
                .push("no authenticationRef: every client is accepted as anonymous".to_owned());
            if !q.attributes.is_empty() {
                p.authentication
                    .push("(--attr ignored: anonymous clients have no attributes)".to_owned());
            }
            Ok(anonymous(&q.client_id, q.username.as_deref()))
        }
        Some(name) => {
            p.authentication.push(format!(
                "BrokerAuthentication/{name}, methods tried in order:"
            ));
            if port.tls.is_none() && !q.client_chain.is_empty() {
                p.authentication
                    .push("(the port has no TLS, so no client certificate reaches it)".to_owned());
            }
            match Authenticator::new(model, name) {
                Err(e) => Err(format!("cannot be used: {e}")),
                Ok(a) => {
                    let chain: &[CertificateDer<'static>] = if port.tls.is_some() {
                        &q.client_chain
                    } else {
                        &[]
                    };
                    let described = Described {
                        client_id: &q.client_id,
                        username: q.username.as_deref(),
                        auth_method: q.auth_method.as_deref(),
                        client_chain: chain,
                        attributes: &q.attributes,
                    };
                    a.explain(&described, &mut p.authentication)
                }
            }
        }
    };
    let id = match identity {
        Ok(id) => id,
        Err(why) => {
            p.authentication
                .push(format!("=> DENIED at authentication: {why}"));
            return p;
        }
    };
    if !q.attributes.is_empty() && port.authentication_ref.is_some() {
        p.authentication.push(format!(
            "(assumed with --attr: {})",
            fmt_attrs(&q.attributes)
        ));
    }
    p.identity = Some(id.clone());
    let Some(authz_name) = port.effective_authorization_ref() else {
        if port.authorization_ref.is_some() {
            p.authorization.push(format!(
                "BrokerAuthorization/{} is ignored: the port has no authenticationRef (AIO behaviour)",
                port.authorization_ref.as_deref().unwrap_or_default()
            ));
        } else {
            p.authorization.push(
                "no authorizationRef: every authenticated client may do everything".to_owned(),
            );
        }
        p.allowed = true;
        return p;
    };
    let a = match Authorizer::new(model, authz_name) {
        Ok(a) => a,
        Err(e) => {
            p.authorization.push(format!("cannot be used: {e}"));
            return p;
        }
    };
    p.authorization
        .push(format!("BrokerAuthorization/{authz_name}:"));
    let applying: Vec<usize> = a
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| principal_matches(&r.principals, &id))
        .map(|(i, _)| i)
        .collect();
    if applying.is_empty() {
        p.authorization.push(format!(
            "no rule's principals match this client (of {} rule(s))",
            a.rules.len()
        ));
    } else {
        for &i in &applying {
            let r = &a.rules[i];
            let mut grants = Vec::new();
            match &r.connect {
                Some(super::ConnectGrant::Any) => grants.push("Connect".to_owned()),
                Some(super::ConnectGrant::Only(ids)) => {
                    grants.push(format!("Connect (clientIds {})", ids.join(", ")));
                }
                None => {}
            }
            if !r.publish.is_empty() {
                grants.push(format!(
                    "Publish on {}",
                    r.publish
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !r.subscribe.is_empty() {
                grants.push(format!(
                    "Subscribe on {}",
                    r.subscribe
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            p.authorization
                .push(format!("rules[{i}] applies: grants {}", grants.join("; ")));
        }
    }
    let connect = a.connect(&id);
    let decision = match &q.action {
        ExplainAction::Connect => connect.clone(),
        ExplainAction::Publish(t) => {
            if !connect.is_allowed() {
                p.authorization.push(format!("Connect is {connect}"));
            }
            a.publish(&id, t)
        }
        ExplainAction::Subscribe(t) => {
            if !connect.is_allowed() {
                p.authorization.push(format!("Connect is {connect}"));
            }
            a.subscribe(&id, t)
        }
    };
    if let (Decision::Allow { topic: Some(t), .. }, true) = (&decision, t_has_tokens(&decision))
        && let Some(sub) = substituted(&a, &id, &decision)
    {
        p.authorization
            .push(format!("topic \"{t}\" becomes \"{sub}\" for this client"));
    }
    p.authorization.push(format!("=> {decision}"));
    p.allowed = decision.is_allowed() && connect.is_allowed();
    p
}

fn t_has_tokens(d: &Decision) -> bool {
    matches!(d, Decision::Allow { topic: Some(t), .. } if t.contains('{'))
}

fn substituted(a: &Authorizer, id: &Identity, d: &Decision) -> Option<String> {
    let Decision::Allow {
        rule,
        topic: Some(t),
    } = d
    else {
        return None;
    };
    let r = a.rules.get(*rule)?;
    let tpl = r
        .publish
        .iter()
        .chain(&r.subscribe)
        .find(|x| x.as_str() == t)?;
    super::topic::Granted::substitute(tpl, id).map(|g| g.to_filter())
}
