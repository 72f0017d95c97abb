//! Authentication (SPEC.md §7): one [`Authenticator`] per BrokerAuthentication turns a CONNECT,
//! and later AUTH packets, into an [`Identity`] (client ID, username, attributes, expiry) or a
//! denial with the reason code to send.
//!
//! Methods are tried in the resource's order. A method decides only when it is *relevant*: SAT
//! when the CONNECT authentication method is `K8S-SAT`, X509 when the handshake verified a client
//! certificate, Custom always (an unreachable server is not relevant), UsernamePassword when the
//! CONNECT carries a username. The first relevant method decides; none relevant is a denial.
//! A port without an `authenticationRef` uses [`anonymous`].
//!
//! Secrets never reach logs or `Debug` output: passwords, tokens and authentication data are
//! shown as their length only.

mod custom;
mod dn;
mod error;
pub(crate) mod explain;
pub mod local_issuer;
pub mod password;
pub mod sat;
mod time;
pub(crate) mod x509;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use wardgate_config::{AuthnMethod, Model};
use wardgate_protocol::ReasonCode;

pub use dn::DnPattern;
pub use error::AuthnError;
pub use sat::{TokenError, TokenVerifier, VerifiedToken};

/// The CONNECT / AUTH authentication method name of service-account tokens.
pub const K8S_SAT: &str = "K8S-SAT";

/// How a client was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethodKind {
    /// A port without authentication: accepted as sent.
    Anonymous,
    /// A verified client certificate (SPEC.md §7.2).
    X509,
    /// A Kubernetes service-account token (SPEC.md §7.3).
    ServiceAccountToken,
    /// An external HTTPS authentication server (SPEC.md §7.4).
    Custom,
    /// A password hash in a Secret (SPEC.md §7.5).
    UsernamePassword,
}

impl AuthMethodKind {
    /// The name used in the configuration and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethodKind::Anonymous => "Anonymous",
            AuthMethodKind::X509 => "X509",
            AuthMethodKind::ServiceAccountToken => "ServiceAccountToken",
            AuthMethodKind::Custom => "Custom",
            AuthMethodKind::UsernamePassword => "UsernamePassword",
        }
    }
}

impl fmt::Display for AuthMethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a client is, as authentication established it: what authorization decides from.
///
/// A proof type: the fields are private and only this module makes identities, so an
/// `Identity` always comes from a method that checked it, from [`anonymous`], or from
/// [`Identity::unverified_for_tests`]. Read it through the accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    client_id: String,
    username: Option<String>,
    attributes: BTreeMap<String, String>,
    expires_at: Option<SystemTime>,
    method: AuthMethodKind,
    origin: Origin,
}

/// Where an identity came from: the method's position in the BrokerAuthentication and the
/// enhanced-authentication method used, which re-authentication must repeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Origin {
    index: Option<usize>,
    enhanced_method: Option<String>,
}

impl Identity {
    fn new(client_id: &str, username: Option<String>, method: AuthMethodKind) -> Identity {
        Identity {
            client_id: client_id.to_owned(),
            username,
            attributes: BTreeMap::new(),
            expires_at: None,
            method,
            origin: Origin::default(),
        }
    }

    /// An identity whose attributes are asserted rather than checked: `wardgate explain`'s
    /// `--attr`, never a network client.
    pub(crate) fn assumed(
        client_id: &str,
        username: Option<&str>,
        attributes: BTreeMap<String, String>,
        method: AuthMethodKind,
    ) -> Identity {
        let mut id = Identity::new(client_id, username.map(str::to_owned), method);
        id.attributes = attributes;
        id
    }

    /// An identity no method checked, for tests and benchmarks of authorization: the server
    /// never builds one this way.
    pub fn unverified_for_tests(
        client_id: &str,
        username: Option<&str>,
        attributes: BTreeMap<String, String>,
        method: AuthMethodKind,
    ) -> Identity {
        Identity::assumed(client_id, username, attributes, method)
    }

    /// The MQTT client ID.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The username: the leaf CN (X509), the token's `sub` (SAT), the CONNECT username
    /// (Custom, UsernamePassword, anonymous).
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Authorization attributes.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// When the credential expires (the connection is closed then, SPEC.md §7.6).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The method that authenticated the client.
    pub fn method(&self) -> AuthMethodKind {
        self.method
    }

    /// The authentication method name a v5 client must use to re-authenticate, if any.
    pub fn enhanced_method(&self) -> Option<&str> {
        self.origin.enhanced_method.as_deref()
    }

    /// Whether the credential has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Who the client is, for the session it creates, which only this principal resumes
    /// (docs/security.md): the method and the authenticated name (`UsernamePassword:alice`,
    /// `X509:device1`, the leaf's CN). Clients of a port without authentication are one
    /// principal, `Anonymous`: their usernames are not checked.
    pub fn principal(&self) -> String {
        match (self.method, &self.username) {
            (AuthMethodKind::Anonymous, _) => AuthMethodKind::Anonymous.as_str().to_owned(),
            (method, username) => {
                format!("{}:{}", method.as_str(), username.as_deref().unwrap_or(""))
            }
        }
    }
}

/// The identity of a client on a port without `authenticationRef`: client ID and username as
/// sent, no attributes, no expiry.
pub fn anonymous(client_id: &str, username: Option<&str>) -> Identity {
    Identity::new(
        client_id,
        username.map(str::to_owned),
        AuthMethodKind::Anonymous,
    )
}

/// Whether BrokerAuthentication `name`, or a Secret or ConfigMap its methods read, differs
/// between two configurations: the server then builds a new [`Authenticator`] for new
/// connections (open connections keep theirs, SPEC.md §4.5).
pub fn authentication_changed(old: &Model, new: &Model, name: &str) -> bool {
    let (a, b) = (old.authentications.get(name), new.authentications.get(name));
    if a != b {
        return true;
    }
    let Some(auth) = a else {
        return false;
    };
    let reads_service_accounts = auth
        .methods
        .iter()
        .any(|m| matches!(m, AuthnMethod::ServiceAccountToken(_)));
    if reads_service_accounts && old.service_accounts != new.service_accounts {
        return true;
    }
    let mut secrets = Vec::new();
    let mut config_maps = Vec::new();
    for m in &auth.methods {
        match m {
            AuthnMethod::ServiceAccountToken(s) => config_maps.extend(&s.issuer_keys_config_map),
            AuthnMethod::X509(x) => {
                config_maps.push(&x.trusted_client_ca_cert);
                secrets.extend(&x.attributes_secret);
            }
            AuthnMethod::Custom(c) => {
                config_maps.extend(&c.ca_cert_config_map);
                secrets.extend(&c.client_cert_secret);
            }
            AuthnMethod::UsernamePassword(u) => secrets.push(&u.secret_ref),
        }
    }
    secrets
        .iter()
        .any(|s| old.secrets.get(*s) != new.secrets.get(*s))
        || config_maps
            .iter()
            .any(|c| old.config_maps.get(*c) != new.config_maps.get(*c))
}

/// What a CONNECT offers for authentication.
pub struct ConnectRequest<'a> {
    /// The client ID (as assigned when the client sent an empty one).
    pub client_id: &'a str,
    /// CONNECT username.
    pub username: Option<&'a str>,
    /// CONNECT password.
    pub password: Option<&'a [u8]>,
    /// v5 Authentication Method.
    pub auth_method: Option<&'a str>,
    /// v5 Authentication Data.
    pub auth_data: Option<&'a [u8]>,
    /// The verified TLS client chain, leaf first (empty without TLS or certificate).
    pub client_chain: &'a [CertificateDer<'a>],
    /// The peer address.
    pub peer: SocketAddr,
    /// The port the client connected to.
    pub port: u16,
    /// MQTT 5 (else 3.1.1).
    pub protocol_v5: bool,
}

impl fmt::Debug for ConnectRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.map(Redacted))
            .field("auth_method", &self.auth_method)
            .field("auth_data", &self.auth_data.map(Redacted))
            .field("client_chain", &self.client_chain.len())
            .field("peer", &self.peer)
            .field("port", &self.port)
            .field("protocol_v5", &self.protocol_v5)
            .finish()
    }
}

/// An AUTH packet from the client: the continuation of a CONNECT's enhanced authentication
/// (reason 0x18, `current` = `None`) or a re-authentication (reason 0x19, `current` = the
/// connection's identity).
pub struct AuthRequest<'a> {
    /// The client ID.
    pub client_id: &'a str,
    /// The CONNECT username.
    pub username: Option<&'a str>,
    /// Authentication Method of the AUTH packet.
    pub auth_method: &'a str,
    /// Authentication Data of the AUTH packet.
    pub auth_data: Option<&'a [u8]>,
    /// 0x18 Continue authentication or 0x19 Re-authenticate.
    pub reason: ReasonCode,
    /// The identity of the connection being re-authenticated; `None` during CONNECT.
    pub current: Option<&'a Identity>,
    /// The verified TLS client chain, leaf first.
    pub client_chain: &'a [CertificateDer<'a>],
    /// The peer address.
    pub peer: SocketAddr,
    /// The port.
    pub port: u16,
}

impl fmt::Debug for AuthRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("auth_method", &self.auth_method)
            .field("auth_data", &self.auth_data.map(Redacted))
            .field("reason", &self.reason)
            .field("current", &self.current.map(|i| i.method))
            .field("peer", &self.peer)
            .field("port", &self.port)
            .finish()
    }
}

/// Shows a secret as its length.
struct Redacted<'a>(&'a [u8]);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

/// What authentication decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthnOutcome {
    /// Authenticated (CONNACK 0x00, or AUTH 0x00 after re-authentication).
    Allowed(Identity),
    /// Send AUTH 0x18 with this method and data. During CONNECT it asks the client for its
    /// authentication data; during re-authentication it reports a transient failure (the
    /// credential stays as it was; the client may try again).
    Continue {
        /// Authentication Method to send.
        method: String,
        /// Authentication Data to send.
        data: Option<Bytes>,
    },
    /// Denied: CONNACK with `reason` (v3.1.1: `reason.to_v311_connack()`), or DISCONNECT with
    /// `reason` after a failed re-authentication.
    Denied {
        /// The v5 reason code.
        reason: ReasonCode,
        /// Why, for logs and `explain` (never contains a secret).
        why: String,
    },
}

impl AuthnOutcome {
    fn denied(reason: ReasonCode, why: impl Into<String>) -> AuthnOutcome {
        AuthnOutcome::Denied {
            reason,
            why: why.into(),
        }
    }
}

/// Counts of authentication outcomes since the authenticator was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthnStats {
    /// Clients authenticated (CONNECT and AUTH).
    pub allowed: u64,
    /// Clients denied.
    pub denied: u64,
    /// AUTH 0x18 answers (challenges and transient re-authentication failures).
    pub continued: u64,
    /// Times a Custom server could not be reached and the next method was tried.
    pub custom_unavailable: u64,
}

#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    denied: AtomicU64,
    continued: AtomicU64,
    custom_unavailable: AtomicU64,
}

/// One configured method, ready to use.
enum Method {
    Sat(sat::SatMethod),
    X509(x509::X509Method),
    Custom(custom::CustomMethod),
    Password(password::PasswordMethod),
}

impl Method {
    fn kind(&self) -> AuthMethodKind {
        match self {
            Method::Sat(_) => AuthMethodKind::ServiceAccountToken,
            Method::X509(_) => AuthMethodKind::X509,
            Method::Custom(_) => AuthMethodKind::Custom,
            Method::Password(_) => AuthMethodKind::UsernamePassword,
        }
    }
}

/// The authentication of one BrokerAuthentication resource. Cheap to share behind an `Arc`; a
/// reload builds a new one for new connections (open connections keep theirs).
pub struct Authenticator {
    name: String,
    methods: Vec<Method>,
    counters: Counters,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("name", &self.name)
            .field(
                "methods",
                &self.methods.iter().map(Method::kind).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What a method said about a client.
enum Verdict {
    /// Not relevant to this client; try the next method. The text says why (for the final
    /// denial message).
    NotRelevant(String),
    /// The method decided.
    Decided(AuthnOutcome),
}

impl Authenticator {
    /// Builds the authenticator of BrokerAuthentication `authentication_name`, reading the
    /// Secrets and ConfigMaps its methods name from `model`.
    pub fn new(model: &Model, authentication_name: &str) -> Result<Authenticator, AuthnError> {
        let auth = model
            .authentications
            .get(authentication_name)
            .ok_or_else(|| AuthnError::UnknownAuthentication(authentication_name.to_owned()))?;
        let mut methods = Vec::with_capacity(auth.methods.len());
        for m in &auth.methods {
            methods.push(match m {
                AuthnMethod::ServiceAccountToken(s) => Method::Sat(sat::SatMethod::new(model, s)?),
                AuthnMethod::X509(s) => Method::X509(x509::X509Method::new(model, s)?),
                AuthnMethod::Custom(s) => Method::Custom(custom::CustomMethod::new(model, s)?),
                AuthnMethod::UsernamePassword(s) => {
                    Method::Password(password::PasswordMethod::new(model, s)?)
                }
            });
        }
        Ok(Authenticator {
            name: authentication_name.to_owned(),
            methods,
            counters: Counters::default(),
        })
    }

    /// The BrokerAuthentication's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The methods, in order.
    pub fn methods(&self) -> Vec<AuthMethodKind> {
        self.methods.iter().map(Method::kind).collect()
    }

    /// How ServiceAccountToken methods that name no `issuerKeysConfigMap` verify tokens: outside
    /// Kubernetes, the local token issuer's key ([`local_issuer::LocalIssuer::verifier`]).
    pub fn set_default_token_verifier(&mut self, verifier: Arc<dyn TokenVerifier>) {
        for m in &mut self.methods {
            if let Method::Sat(s) = m {
                s.set_default_verifier(verifier.clone());
            }
        }
    }

    /// Replaces how service-account tokens are verified (the Kubernetes mode's TokenReview
    /// instead of the JWKS in a ConfigMap) for every ServiceAccountToken method.
    pub fn set_token_verifier(&mut self, verifier: Arc<dyn TokenVerifier>) {
        for m in &mut self.methods {
            if let Method::Sat(s) = m {
                s.set_verifier(verifier.clone());
            }
        }
    }

    /// Outcome counts so far.
    pub fn stats(&self) -> AuthnStats {
        AuthnStats {
            allowed: self.counters.allowed.load(Ordering::Relaxed),
            denied: self.counters.denied.load(Ordering::Relaxed),
            continued: self.counters.continued.load(Ordering::Relaxed),
            custom_unavailable: self.counters.custom_unavailable.load(Ordering::Relaxed),
        }
    }

    /// Authenticates a CONNECT (SPEC.md §7.1 order and relevance). `client_chain` is the
    /// verified TLS client chain, leaf first (empty without TLS or certificate).
    pub async fn connect(&self, request: &ConnectRequest<'_>) -> AuthnOutcome {
        let outcome = self.connect_inner(request).await;
        self.record(
            "CONNECT",
            request.client_id,
            request.port,
            request.peer,
            &outcome,
        );
        outcome
    }

    /// Handles an AUTH packet: the continuation of a CONNECT's enhanced authentication, or a
    /// re-authentication (reason 0x19) with the method the connection authenticated with.
    pub async fn auth(&self, request: &AuthRequest<'_>) -> AuthnOutcome {
        let outcome = match request.current {
            Some(current) => self.reauthenticate(request, current).await,
            None => self.continue_connect(request).await,
        };
        self.record(
            "AUTH",
            request.client_id,
            request.port,
            request.peer,
            &outcome,
        );
        outcome
    }

    fn supports_enhanced(&self, method: &str) -> bool {
        self.methods.iter().any(|m| match m {
            Method::Sat(_) => method == K8S_SAT,
            Method::Custom(_) => true,
            _ => false,
        })
    }

    fn offered_enhanced(&self) -> String {
        let mut offered = Vec::new();
        for m in &self.methods {
            match m {
                Method::Sat(_) => offered.push(K8S_SAT),
                Method::Custom(_) => offered.push("any method (Custom)"),
                _ => {}
            }
        }
        if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(", ")
        }
    }

    async fn connect_inner(&self, req: &ConnectRequest<'_>) -> AuthnOutcome {
        if let Some(m) = req.auth_method
            && !self.supports_enhanced(m)
        {
            return AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "authentication method \"{}\" is not supported by BrokerAuthentication/{} \
                     (enhanced methods offered: {})",
                    m.escape_debug(),
                    self.name,
                    self.offered_enhanced()
                ),
            );
        }
        let now = SystemTime::now();
        let mut skipped = Vec::new();
        for (index, method) in self.methods.iter().enumerate() {
            let verdict = match method {
                Method::Sat(s) => match req.auth_method {
                    Some(K8S_SAT) => match req.auth_data {
                        None => Verdict::Decided(AuthnOutcome::Continue {
                            method: K8S_SAT.to_owned(),
                            data: None,
                        }),
                        Some(token) => Verdict::Decided(s.authenticate(req.client_id, token).await),
                    },
                    _ => Verdict::NotRelevant(
                        "ServiceAccountToken: no CONNECT authentication method K8S-SAT".to_owned(),
                    ),
                },
                Method::X509(x) => {
                    if req.client_chain.is_empty() {
                        Verdict::NotRelevant("X509: no client certificate".to_owned())
                    } else {
                        Verdict::Decided(x.authenticate(req.client_id, req.client_chain, now))
                    }
                }
                Method::Custom(c) => match c.connect(req).await {
                    custom::Answer::Unavailable(why) => {
                        self.counters
                            .custom_unavailable
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            authentication = %self.name,
                            client_id = req.client_id,
                            port = req.port,
                            error = %why,
                            "custom authentication server unavailable; trying the next method"
                        );
                        Verdict::NotRelevant(format!("Custom: {why}"))
                    }
                    answer => {
                        Verdict::Decided(answer.into_outcome(req.client_id, req.username, now))
                    }
                },
                Method::Password(p) => match req.username {
                    None => Verdict::NotRelevant("UsernamePassword: no username".to_owned()),
                    Some(user) => {
                        Verdict::Decided(p.authenticate(req.client_id, user, req.password).await)
                    }
                },
            };
            match verdict {
                Verdict::NotRelevant(why) => skipped.push(why),
                Verdict::Decided(mut outcome) => {
                    if let AuthnOutcome::Allowed(id) = &mut outcome {
                        id.origin = Origin {
                            index: Some(index),
                            enhanced_method: req.auth_method.map(str::to_owned),
                        };
                    }
                    return outcome;
                }
            }
        }
        let reason = if req.auth_method.is_some() {
            ReasonCode::NOT_AUTHORIZED
        } else if req.username.is_some() || req.password.is_some() {
            ReasonCode::BAD_USERNAME_OR_PASSWORD
        } else {
            ReasonCode::NOT_AUTHORIZED
        };
        AuthnOutcome::denied(
            reason,
            format!(
                "no authentication method of BrokerAuthentication/{} applies ({})",
                self.name,
                skipped.join("; ")
            ),
        )
    }

    async fn continue_connect(&self, req: &AuthRequest<'_>) -> AuthnOutcome {
        let now = SystemTime::now();
        let mut skipped = Vec::new();
        for (index, method) in self.methods.iter().enumerate() {
            let outcome = match method {
                Method::Sat(s) if req.auth_method == K8S_SAT => match req.auth_data {
                    None => AuthnOutcome::Continue {
                        method: K8S_SAT.to_owned(),
                        data: None,
                    },
                    Some(token) => s.authenticate(req.client_id, token).await,
                },
                Method::Custom(c) => match c.auth(req).await {
                    custom::Answer::Unavailable(why) => {
                        self.counters
                            .custom_unavailable
                            .fetch_add(1, Ordering::Relaxed);
                        skipped.push(format!("Custom: {why}"));
                        continue;
                    }
                    answer => answer.into_outcome(req.client_id, req.username, now),
                },
                _ => continue,
            };
            let mut outcome = outcome;
            if let AuthnOutcome::Allowed(id) = &mut outcome {
                id.origin = Origin {
                    index: Some(index),
                    enhanced_method: Some(req.auth_method.to_owned()),
                };
            }
            return outcome;
        }
        if skipped.is_empty() {
            AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "authentication method \"{}\" is not supported by BrokerAuthentication/{} \
                     (enhanced methods offered: {})",
                    req.auth_method.escape_debug(),
                    self.name,
                    self.offered_enhanced()
                ),
            )
        } else {
            AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                format!(
                    "no authentication method of BrokerAuthentication/{} applies ({})",
                    self.name,
                    skipped.join("; ")
                ),
            )
        }
    }

    async fn reauthenticate(&self, req: &AuthRequest<'_>, current: &Identity) -> AuthnOutcome {
        let now = SystemTime::now();
        let Some(expected) = current.enhanced_method() else {
            return AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "a client authenticated with {} cannot re-authenticate; reconnect instead",
                    current.method
                ),
            );
        };
        if req.auth_method != expected {
            return AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "re-authentication must use the CONNECT's method \"{}\", not \"{}\"",
                    expected.escape_debug(),
                    req.auth_method.escape_debug()
                ),
            );
        }
        // The method that authenticated the connection; after a reload, the first of its kind.
        let index = current
            .origin
            .index
            .filter(|&i| {
                self.methods
                    .get(i)
                    .is_some_and(|m| m.kind() == current.method)
            })
            .or_else(|| self.methods.iter().position(|m| m.kind() == current.method));
        let Some(index) = index else {
            return AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "BrokerAuthentication/{} no longer has a {} method",
                    self.name, current.method
                ),
            );
        };
        let outcome = match &self.methods[index] {
            Method::Sat(s) => match req.auth_data {
                None => AuthnOutcome::denied(
                    ReasonCode::NOT_AUTHORIZED,
                    "re-authentication with K8S-SAT carries no token",
                ),
                Some(token) => match s.authenticate(req.client_id, token).await {
                    // A verifier that cannot decide now is a transient failure: AUTH 0x18.
                    AuthnOutcome::Denied { reason, .. }
                        if reason == ReasonCode::SERVER_UNAVAILABLE =>
                    {
                        return AuthnOutcome::Continue {
                            method: req.auth_method.to_owned(),
                            data: None,
                        };
                    }
                    other => other,
                },
            },
            Method::Custom(c) => match c.auth(req).await {
                custom::Answer::Unavailable(why) => {
                    self.counters
                        .custom_unavailable
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        authentication = %self.name,
                        client_id = req.client_id,
                        error = %why,
                        "custom authentication server unavailable during re-authentication"
                    );
                    return AuthnOutcome::Continue {
                        method: req.auth_method.to_owned(),
                        data: None,
                    };
                }
                answer => answer.into_outcome(req.client_id, current.username.as_deref(), now),
            },
            _ => AuthnOutcome::denied(
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                format!(
                    "a client authenticated with {} cannot re-authenticate; reconnect instead",
                    current.method
                ),
            ),
        };
        match outcome {
            AuthnOutcome::Allowed(mut id) => {
                if id.username != current.username || id.attributes != current.attributes {
                    return AuthnOutcome::denied(
                        ReasonCode::NOT_AUTHORIZED,
                        "re-authentication must not change the username or attributes; \
                         reconnect instead",
                    );
                }
                id.origin = current.origin.clone();
                id.origin.index = Some(index);
                AuthnOutcome::Allowed(id)
            }
            other => other,
        }
    }

    fn record(
        &self,
        packet: &'static str,
        client_id: &str,
        port: u16,
        peer: SocketAddr,
        outcome: &AuthnOutcome,
    ) {
        match outcome {
            AuthnOutcome::Allowed(id) => {
                self.counters.allowed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    authentication = %self.name,
                    packet,
                    client_id,
                    port,
                    %peer,
                    method = %id.method,
                    username = id.username.as_deref().unwrap_or(""),
                    attributes = ?id.attributes,
                    "authenticated"
                );
            }
            AuthnOutcome::Continue { method, .. } => {
                self.counters.continued.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    authentication = %self.name,
                    packet,
                    client_id,
                    port,
                    %peer,
                    method = %method,
                    "authentication continues (AUTH 0x18)"
                );
            }
            // Logged once, by the connection ("authentication failed", with its peer, port
            // and client ID), not here as well.
            AuthnOutcome::Denied { .. } => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
