//! The port supervisor: owns every port's state (SPEC.md §4.4), opens and closes ports as the
//! configuration changes, and applies a new configuration as a difference (SPEC.md §4.5): ports
//! that did not change keep their connections; removed ports close theirs with DISCONNECT 0x8B.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use wardgate_config::model::Model;
use wardgate_core::Broker;
use wardgate_protocol::ReasonCode;
use wardgate_security::authz::{Authorizer, Decision, Recheck};
use wardgate_security::pki::CertificateInfo;
use wardgate_security::tls::{PortTls, TlsContext, TlsOutcome};

use crate::connection::ConnectionSettings;
use crate::plan::{Plan, PlannedPort, PortChange};
use crate::ports::{self, PortSpec};
use crate::registry::Registry;
use crate::security::{PortSecurity, SecurityProblem};
use crate::stats::ConnectionStats;

/// A port's state, as logs, `status` and the admin API show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    /// Accepting connections.
    Listening,
    /// Waiting for a Secret to exist (the port does not accept connections meanwhile).
    AwaitingSecret(String),
    /// Waiting for an Issuer or ClusterIssuer.
    AwaitingIssuer(String),
    /// Waiting for a ConfigMap.
    AwaitingConfigMap(String),
    /// Cannot serve, with the reason.
    Failed(String),
}

impl PortState {
    /// The state's name (`Listening`, `AwaitingSecret`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            PortState::Listening => "Listening",
            PortState::AwaitingSecret(_) => "AwaitingSecret",
            PortState::AwaitingIssuer(_) => "AwaitingIssuer",
            PortState::AwaitingConfigMap(_) => "AwaitingConfigMap",
            PortState::Failed(_) => "Failed",
        }
    }

    /// The reason or message, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            PortState::Listening => None,
            PortState::AwaitingSecret(m)
            | PortState::AwaitingIssuer(m)
            | PortState::AwaitingConfigMap(m)
            | PortState::Failed(m) => Some(m),
        }
    }

    /// Whether the port waits for something that may appear (not a failure).
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            PortState::AwaitingSecret(_)
                | PortState::AwaitingIssuer(_)
                | PortState::AwaitingConfigMap(_)
        )
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            None => f.write_str(self.name()),
            Some(r) => write!(f, "{}: {r}", self.name()),
        }
    }
}

/// One port as the supervisor reports it.
#[derive(Debug, Clone)]
pub struct PortStatus {
    /// What the port is.
    pub spec: PortSpec,
    /// Its state.
    pub state: PortState,
    /// The addresses it listens on (empty unless Listening).
    pub local_addrs: Vec<std::net::SocketAddr>,
    /// Whether the port is configured with TLS.
    pub tls: bool,
    /// The certificate chain it serves, leaf first (TLS ports that are Listening).
    pub certificates: Vec<CertificateInfo>,
    /// The CAs it trusts for client certificates (`trustedClientCaCert`), if it asks for them.
    pub client_cas: Vec<CertificateInfo>,
}

/// What the supervisor shares with status readers.
#[derive(Default)]
pub struct Status {
    /// Every configured port, by port number.
    pub ports: BTreeMap<u16, PortStatus>,
    /// The error of the last reload that was refused, until a later one succeeds.
    pub last_reload_error: Option<String>,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Reloads refused since start (the configuration failed to load or validate).
    pub reload_failures: u64,
    /// The configuration running now (for the admin API's `explain`). It holds Secrets: never
    /// log it (`Debug` leaves it out).
    pub model: Option<Arc<Model>>,
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("ports", &self.ports)
            .field("last_reload_error", &self.last_reload_error)
            .field("reloads", &self.reloads)
            .field("reload_failures", &self.reload_failures)
            .finish_non_exhaustive()
    }
}

struct RunningPort {
    planned: PlannedPort,
    state: PortState,
    /// Cancelled to close the port and its connections.
    token: Option<CancellationToken>,
    local_addrs: Vec<std::net::SocketAddr>,
    /// The TLS configuration new handshakes use; swapped in place on certificate changes.
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    /// The served certificates, for status.
    certificates: Vec<CertificateInfo>,
    /// The trusted client CAs, for status.
    client_cas: Vec<CertificateInfo>,
    /// Authentication and authorization; swapped in place when their resources change.
    security: Option<Arc<ArcSwap<PortSecurity>>>,
}

impl RunningPort {
    fn not_serving(planned: PlannedPort, state: PortState) -> Self {
        log_state(&planned.spec, &state);
        RunningPort {
            planned,
            state,
            token: None,
            local_addrs: Vec::new(),
            tls: None,
            certificates: Vec::new(),
            client_cas: Vec::new(),
            security: None,
        }
    }
}

/// Owns the ports.
pub struct Supervisor {
    broker: Arc<Broker>,
    settings: Arc<ArcSwap<ConnectionSettings>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    ports: BTreeMap<u16, RunningPort>,
    /// The plan running now.
    plan: Option<Plan>,
    status: Arc<RwLock<Status>>,
    registry: Arc<Registry>,
    stats: Arc<ConnectionStats>,
    tls: Option<Arc<TlsContext>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("ports", &self.ports.keys())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor with no ports yet; `shutdown` closes everything.
    /// It also adds the per-port client counts to the broker's `$SYS` topics.
    pub fn new(broker: Arc<Broker>, shutdown: CancellationToken) -> Self {
        let status = Arc::new(RwLock::new(Status::default()));
        let registry = Arc::new(Registry::default());
        let (s, r) = (status.clone(), registry.clone());
        broker.set_sys_source(Arc::new(move || per_port_sys_topics(&s.read(), &r)));
        Self {
            broker,
            settings: Arc::new(ArcSwap::from_pointee(ConnectionSettings::default())),
            shutdown,
            tasks: TaskTracker::new(),
            ports: BTreeMap::new(),
            plan: None,
            status,
            registry,
            stats: Arc::default(),
            tls: None,
        }
    }

    /// Runs the ports' accept loops and connections on `tasks`, which graceful shutdown awaits
    /// ([`crate::shut_down`]).
    pub fn with_tasks(mut self, tasks: TaskTracker) -> Self {
        self.tasks = tasks;
        self
    }

    /// Serves TLS ports with certificates from `tls` (without it, TLS ports fail).
    pub fn with_tls(mut self, tls: Arc<TlsContext>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// When an automatic certificate is next due for renewal; call [`Supervisor::refresh`] then.
    pub fn next_renewal(&self) -> Option<std::time::SystemTime> {
        self.tls.as_ref().and_then(|t| t.next_renewal())
    }

    /// Re-resolves every TLS port of the current plan (renewals, rotations): new handshakes use
    /// the new certificate, open connections stay.
    pub fn refresh(&mut self) {
        if let Some(plan) = self.plan.clone() {
            self.apply(plan);
        }
    }

    /// The live connections of every port.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// What the connections of every port count.
    pub fn stats(&self) -> Arc<ConnectionStats> {
        self.stats.clone()
    }

    /// The shared status, for `status` and the admin API.
    pub fn status(&self) -> Arc<RwLock<Status>> {
        self.status.clone()
    }

    /// The plan currently applied.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Whether any port waits for a resource (the caller then re-applies soon).
    pub fn has_waiting_ports(&self) -> bool {
        self.ports.values().any(|p| p.state.is_waiting())
    }

    /// Records a refused reload (the running configuration stays).
    pub fn reload_refused(&self, error: String) {
        let mut status = self.status.write();
        status.last_reload_error = Some(error);
        status.reload_failures += 1;
    }

    /// Records a reload whose configuration loaded and equals the running one (a refused
    /// change was undone): the previous refusal no longer stands.
    pub fn reload_unchanged(&self) {
        self.status.write().last_reload_error = None;
    }

    /// Applies `plan` as a difference from the running one ([`Plan::diff`]): Broker settings for
    /// new sessions and connections, then the ports.
    pub fn apply(&mut self, plan: Plan) {
        let diff = Plan::diff(self.plan.as_ref(), &plan);
        if diff.settings_changed {
            self.broker.update_settings(plan.broker.clone());
            self.settings.store(Arc::new(plan.connection.clone()));
        }
        for (n, _) in diff.ports.iter().filter(|(_, change)| change.closes()) {
            if let Some(running) = self.ports.remove(n) {
                if let Some(token) = running.token {
                    token.cancel();
                }
                info!(port = n, listener = %running.planned.spec.name, "port closed");
            }
        }
        let mut rechecks = Vec::new();
        for (n, planned) in &plan.ports {
            let change = diff.ports.get(n).copied().unwrap_or(PortChange::Added);
            if let PortChange::Kept {
                authentication,
                authorization,
            } = change
                && let Some(running) = self.ports.get_mut(n)
                && running.state == PortState::Listening
            {
                // Authentication changes apply to new connections; authorization changes also
                // re-check the connected clients (below).
                if (authentication || authorization)
                    && let Some(swap) = &running.security
                {
                    match plan.security(planned) {
                        Ok(security) => {
                            let security = Arc::new(security);
                            swap.store(security.clone());
                            if authorization && let Some(authz) = &security.authz {
                                rechecks.push((*n, authz.clone()));
                            }
                        }
                        Err(problem) => warn!(
                            port = n,
                            listener = %planned.spec.name,
                            %problem,
                            "security settings not applied; the port keeps its current ones"
                        ),
                    }
                }
                // Same port: only its certificate may have changed; swap it for new handshakes.
                if let Some(swap) = running.tls.clone() {
                    match resolve_tls(self.tls.as_deref(), &plan, planned) {
                        Ok(Some(port_tls)) => {
                            swap.store(port_tls.config.clone());
                            running.certificates = port_tls.certificates;
                            running.client_cas = port_tls.client_cas;
                        }
                        Ok(None) => {}
                        Err(state) => warn!(
                            port = n,
                            listener = %planned.spec.name,
                            problem = %state,
                            "certificate not renewed; the port keeps serving its current one"
                        ),
                    }
                }
                continue;
            }
            // New, changed, or still waiting/failed: (re)start it.
            if let Some(running) = self.ports.remove(n)
                && let Some(token) = running.token
            {
                token.cancel();
            }
            let running = self.start(&plan, planned.clone());
            self.ports.insert(*n, running);
        }
        // The trust bundle follows the issuers of the ports and the trust settings' ConfigMap.
        if let Some(tls) = &self.tls {
            tokio::task::block_in_place(|| tls.refresh_trust_bundle(plan.model()));
        }
        self.plan = Some(plan);
        for (port, authz) in rechecks {
            self.recheck(port, &authz);
        }
        self.publish_status();
    }

    /// Re-checks every client connected to `port` against a changed policy: only those that lost
    /// the right to connect, one of their subscriptions or their will topic are disconnected
    /// (v5: 0x87); a will whose topic is no longer authorized is discarded first, never sent.
    fn recheck(&self, port: u16, authz: &Authorizer) {
        for conn in self
            .registry
            .snapshot()
            .into_iter()
            .filter(|c| c.port == port)
        {
            let filters: Vec<_> = conn
                .session
                .subscriptions()
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            let will_denied = conn.session.will_topic().and_then(|topic| {
                match authz.allows_publish(&conn.identity, topic.as_str()) {
                    Decision::Deny { why } => Some(format!("will topic {topic}: {why}")),
                    Decision::Allow { .. } => None,
                }
            });
            if let Some(why) = will_denied {
                conn.session.discard_will();
                info!(port, client_id = %conn.client_id(), %why, "authorization changed: will discarded, disconnecting");
                conn.control.kick(ReasonCode::NOT_AUTHORIZED);
            } else if let Recheck::Disconnect { why } =
                authz.recheck(&conn.identity, filters.iter().map(|f| f.as_str()))
            {
                info!(port, client_id = %conn.client_id(), %why, "authorization changed: disconnecting");
                conn.control.kick(ReasonCode::NOT_AUTHORIZED);
            } else {
                authz.forget(conn.client_id());
            }
        }
    }

    fn start(&self, plan: &Plan, planned: PlannedPort) -> RunningPort {
        let spec = planned.spec.clone();
        let security = match plan.security(&planned) {
            Ok(s) => Arc::new(ArcSwap::from_pointee(s)),
            Err(problem) => {
                let state = match problem {
                    SecurityProblem::AwaitingSecret(m) => PortState::AwaitingSecret(m),
                    SecurityProblem::AwaitingConfigMap(m) => PortState::AwaitingConfigMap(m),
                    SecurityProblem::Failed(m) => PortState::Failed(m),
                };
                return RunningPort::not_serving(planned, state);
            }
        };
        let port_tls = match resolve_tls(self.tls.as_deref(), plan, &planned) {
            Ok(t) => t,
            Err(state) => return RunningPort::not_serving(planned, state),
        };
        match ports::bind(spec.clone()) {
            Ok(bound) => {
                let token = self.shutdown.child_token();
                let local_addrs = bound.local_addrs();
                let (tls, certificates, client_cas) = match port_tls {
                    Some(t) => (
                        Some(Arc::new(ArcSwap::new(t.config))),
                        t.certificates,
                        t.client_cas,
                    ),
                    None => (None, Vec::new(), Vec::new()),
                };
                bound.with_tasks(self.tasks.clone()).serve(
                    self.broker.clone(),
                    self.settings.clone(),
                    self.registry.clone(),
                    self.stats.clone(),
                    tls.clone(),
                    security.clone(),
                    token.clone(),
                );
                let state = PortState::Listening;
                info!(port = spec.port, addrs = ?local_addrs, listener = %spec.name, tls = tls.is_some(), state = state.name(), "port listening");
                RunningPort {
                    planned,
                    state,
                    token: Some(token),
                    local_addrs,
                    tls,
                    certificates,
                    client_cas,
                    security: Some(security),
                }
            }
            Err(e) => {
                let in_use = matches!(&e, crate::ServerError::Bind { source, .. }
                    if source.kind() == std::io::ErrorKind::AddrInUse);
                if in_use && let crate::ServerError::Bind { addr, .. } = &e {
                    // Loudly: another broker (or anything) holds the port, and this one does not
                    // serve it; clients that dial it reach the other process.
                    error!(
                        port = spec.port,
                        %addr,
                        listener = %spec.name,
                        "port {} cannot be opened: {addr} is already in use by another process \
                         (another wardgate? `ss -ltnp 'sport = :{}'` names it); clients that dial \
                         it reach that process, not this broker",
                        spec.port,
                        spec.port
                    );
                    let reason = format!(
                        "{e}: {addr} is already in use by another process (another broker?)"
                    );
                    return RunningPort::not_serving(planned, PortState::Failed(reason));
                }
                RunningPort::not_serving(planned, PortState::Failed(e.to_string()))
            }
        }
    }

    fn publish_status(&self) {
        let mut status = self.status.write();
        status.ports = self
            .ports
            .iter()
            .map(|(n, r)| {
                let s = PortStatus {
                    spec: r.planned.spec.clone(),
                    state: r.state.clone(),
                    local_addrs: r.local_addrs.clone(),
                    tls: r.planned.config.tls.is_some(),
                    certificates: r.certificates.clone(),
                    client_cas: r.client_cas.clone(),
                };
                (*n, s)
            })
            .collect();
        status.model = self.plan.as_ref().map(|p| p.model().clone());
        status.last_reload_error = None;
        status.reloads += 1;
    }
}

/// `$SYS/broker/clients/port/<port>/connected`: the clients connected to each configured port
/// (0 for a port that does not listen).
pub fn per_port_sys_topics(status: &Status, registry: &Registry) -> Vec<(String, String)> {
    let connected = registry.per_port();
    status
        .ports
        .keys()
        .map(|port| {
            (
                format!("$SYS/broker/clients/port/{port}/connected"),
                connected.get(port).copied().unwrap_or(0).to_string(),
            )
        })
        .collect()
}

fn log_state(spec: &PortSpec, state: &PortState) {
    warn!(port = spec.port, listener = %spec.name, state = state.name(), reason = state.reason().unwrap_or(""), "port not opened");
}

/// Resolves a port's TLS: `Ok(None)` for a plain port, `Ok(Some(..))` when it can serve, and the
/// waiting or failed state otherwise. Issuing a certificate may take seconds (RSA 8192), so it
/// runs off the async workers.
fn resolve_tls(
    tls: Option<&TlsContext>,
    plan: &Plan,
    planned: &PlannedPort,
) -> Result<Option<PortTls>, PortState> {
    let model = plan.model();
    if planned.config.tls.is_none() {
        return Ok(None);
    }
    let Some(tls) = tls else {
        return Err(PortState::Failed(
            "TLS is not configured for this broker".into(),
        ));
    };
    let Some(listener) = model.listener(&planned.listener) else {
        return Err(PortState::Failed(format!(
            "BrokerListener/{} is gone",
            planned.listener
        )));
    };
    let outcome = tokio::task::block_in_place(|| tls.resolve(model, listener, &planned.config));
    match outcome {
        TlsOutcome::Ready(port_tls) => {
            for warning in &port_tls.warnings {
                warn!(port = planned.spec.port, listener = %planned.spec.name, "{warning}");
            }
            Ok(Some(port_tls))
        }
        TlsOutcome::AwaitingSecret { message, .. } => Err(PortState::AwaitingSecret(message)),
        TlsOutcome::AwaitingIssuer { message, .. } => Err(PortState::AwaitingIssuer(message)),
        TlsOutcome::AwaitingConfigMap { message, .. } => Err(PortState::AwaitingConfigMap(message)),
        TlsOutcome::Failed { reason } => Err(PortState::Failed(reason)),
    }
}
