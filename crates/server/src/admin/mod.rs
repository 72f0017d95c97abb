//! The admin HTTP server (axum): `/metrics`, `/healthz`, `/readyz`, the read-only JSON API
//! under `/api/v1/` (`docs/admin-api.md`) and the web console at `/` (`docs/console.md`). It
//! reads the same state the broker runs on (the core broker, the port supervisor's status, the
//! connection registry); the console's one action is disconnecting a client.
//!
//! It listens on loopback unless the operator configures otherwise (`serve --admin-addr`); the
//! caller binds the listener and sets the [`Access`] (a token is required off loopback). Errors
//! never show internals: a failure is logged here and answered with a generic message.
//!
//! # Extension points
//!
//! - **Readiness**: anything that can make the broker unready (the self-check, later the store)
//!   implements [`ReadinessCheck`] and is added with [`AdminState::with_check`].
//! - **Certificates**: the TLS layer implements [`CertificateSource`] and calls
//!   [`AdminState::with_certificates`] (API listing, `wardgate status`, expiry metric).
//! - **More endpoints**: build an `axum::Router` with its own state, routes under
//!   `/api/v1/...`, and add it with [`AdminState::with_routes`]; it is merged into the same
//!   server. Keep such routes read-only and return [`dto::Error`] bodies.
//! - **Metrics**: see [`crate::metrics`].

pub mod access;
mod api;
pub mod certificates;
pub mod client;
pub mod cluster;
mod console;
pub mod dto;
mod explain;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wardgate_core::Broker;

pub use access::{Access, AdminToken, CsrfToken};
pub use certificates::{CertificateReport, CertificateSource, ServedCertificates};

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::supervisor::Status;

/// A readiness condition `/readyz` evaluates at every request.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Its name in the `/readyz` body (`selfCheck`, `store`, ...).
    fn name(&self) -> &str;
    /// Whether it passes now, with a detail (the reason when it does not). Must be cheap and
    /// must not block: it runs on the admin server's request path.
    fn check(&self) -> CheckResult;
}

/// A [`ReadinessCheck`]'s verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Whether it passes.
    pub ready: bool,
    /// The reason when it fails; an optional note when it passes.
    pub detail: Option<String>,
}

/// Everything the admin server reads. Build it with [`AdminState::new`] and the `with_*`
/// methods; the pub fields may also be set directly.
#[derive(Clone)]
pub struct AdminState {
    /// The broker core (sessions, retained store, counters).
    pub broker: Arc<Broker>,
    /// The port supervisor's status (ports, states, reloads).
    pub status: Arc<RwLock<Status>>,
    /// Live connections.
    pub registry: Arc<Registry>,
    /// This broker's metrics (`/metrics` encodes them).
    pub metrics: Arc<Metrics>,
    /// The CA bundle clients should trust (PEM), once one exists.
    pub trust_bundle: Option<PathBuf>,
    /// When the broker started.
    pub started: SystemTime,
    /// Whether a port waiting for a Secret, Issuer or ConfigMap counts as ready. Default false:
    /// the port does not serve yet, so the broker is not ready (it becomes ready by itself when
    /// the resource appears and the port opens).
    pub waiting_ports_are_ready: bool,
    /// Who may use the console and the JSON API (default [`Access::Open`]: loopback).
    pub access: Access,
    /// The console forms' CSRF token (random per state).
    pub csrf: CsrfToken,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    certificates: Option<Arc<dyn CertificateSource>>,
    /// The cluster this broker is a node of ([`cluster::attach`]).
    cluster: Option<Arc<dyn cluster::ClusterView>>,
    routes: Vec<Router>,
}

impl fmt::Debug for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminState")
            .field("trust_bundle", &self.trust_bundle)
            .field("started", &self.started)
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// State for one broker, started now, with no extra checks, certificates or routes.
    pub fn new(
        broker: Arc<Broker>,
        status: Arc<RwLock<Status>>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            broker,
            status,
            registry,
            metrics,
            trust_bundle: None,
            started: SystemTime::now(),
            waiting_ports_are_ready: false,
            access: Access::Open,
            csrf: CsrfToken::generate(),
            checks: Vec::new(),
            certificates: None,
            cluster: None,
            routes: Vec::new(),
        }
    }

    /// The cluster this broker is a node of, if any.
    pub fn cluster(&self) -> Option<&Arc<dyn cluster::ClusterView>> {
        self.cluster.as_ref()
    }

    /// Sets when the broker started.
    pub fn with_started(mut self, started: SystemTime) -> Self {
        self.started = started;
        self
    }

    /// Serves `path` (PEM) at `/api/v1/trust-bundle`.
    pub fn with_trust_bundle(mut self, path: PathBuf) -> Self {
        self.trust_bundle = Some(path);
        self
    }

    /// Sets who may use the console and the JSON API ([`Access::for_address`]).
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// Adds a readiness condition to `/readyz`.
    pub fn with_check(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Lists `source`'s certificates in the API and exports their expiry in `/metrics`. Call it
    /// once per broker: it registers a metrics collector.
    pub fn with_certificates(mut self, source: Arc<dyn CertificateSource>) -> Self {
        self.metrics
            .register_collector(Box::new(certificates::CertificateCollector(source.clone())));
        self.certificates = Some(source);
        self
    }

    /// Merges `routes` (a router whose state is already provided) into the admin server.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes.push(routes);
        self
    }
}

/// The admin application: every route, ready to serve. The probes and `/metrics` are open; the
/// JSON API, the console and the merged routes pass [`access::require`] first.
pub fn router(mut state: AdminState) -> Router {
    let extra = std::mem::take(&mut state.routes);
    let access = Arc::new(state.access.clone());
    let state = Arc::new(state);
    let probes = Router::new()
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .with_state(state.clone());
    let mut guarded = Router::new()
        .route("/api/v1/listeners", get(api::listeners))
        .route("/api/v1/clients", get(api::clients))
        .route("/api/v1/clients/{id}", get(api::client))
        .route("/api/v1/retained", get(api::retained))
        .route("/api/v1/certificates", get(api::certificates))
        .route("/api/v1/trust-bundle", get(api::trust_bundle))
        .route("/api/v1/explain", get(explain::explain_route))
        .route("/api/v1/stats", get(api::stats))
        .merge(console::routes())
        .with_state(state);
    for routes in extra {
        guarded = guarded.merge(routes);
    }
    let guarded = guarded.layer(axum::middleware::from_fn_with_state(
        access,
        access::require,
    ));
    probes.merge(guarded).fallback(api::not_found)
}

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve_admin(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// An admin API error: a status and a message safe to show. Internal details go to the log.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with what is wrong with the request (it names only what the caller sent).
    BadRequest(String),
    /// 404 with what was not found.
    NotFound(&'static str),
    /// 500; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// What the caller is told (never an internal detail).
    pub fn public_message(&self) -> String {
        match self {
            ApiError::BadRequest(why) => why.clone(),
            ApiError::NotFound(what) => what.to_string(),
            ApiError::Internal(_) => "internal error; see the broker's log".to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "admin API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let error = self.public_message();
        (status, axum::Json(dto::Error { error })).into_response()
    }
}

/// The readiness verdict: the ports (every one Listening, or waiting when that counts as ready)
/// and every added check.
pub fn readiness(state: &AdminState) -> dto::Readiness {
    let mut checks = vec![ports_check(state)];
    for c in &state.checks {
        let result = c.check();
        checks.push(dto::Check {
            name: c.name().to_string(),
            ready: result.ready,
            detail: result.detail,
        });
    }
    let reasons = checks
        .iter()
        .filter(|c| !c.ready)
        .map(|c| match &c.detail {
            Some(d) => format!("{}: {d}", c.name),
            None => c.name.clone(),
        })
        .collect();
    dto::Readiness {
        ready: checks.iter().all(|c| c.ready),
        reasons,
        checks,
    }
}

fn ports_check(state: &AdminState) -> dto::Check {
    let status = state.status.read();
    let mut failing = Vec::new();
    let mut waiting = Vec::new();
    let mut listening = 0;
    for p in status.ports.values() {
        let line = format!("{} is {}", p.spec.name, p.state);
        if p.state == crate::PortState::Listening {
            listening += 1;
        } else if p.state.is_waiting() {
            waiting.push(line);
        } else {
            failing.push(line);
        }
    }
    if status.ports.is_empty() {
        failing.push("no port is configured".to_string());
    }
    if !state.waiting_ports_are_ready {
        failing.append(&mut waiting);
    }
    let ready = failing.is_empty();
    let detail = if ready {
        let mut d = format!("{listening} listening");
        if !waiting.is_empty() {
            d.push_str(&format!(", waiting: {}", waiting.join("; ")));
        }
        d
    } else {
        failing.join("; ")
    };
    dto::Check {
        name: "ports".to_string(),
        ready,
        detail: Some(detail),
    }
}
