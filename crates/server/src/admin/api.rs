//! The admin routes' handlers: each reads a snapshot of the broker's state and answers JSON (or
//! Prometheus text, or PEM). None of them changes anything.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use wardgate_core::Session;

use std::time::SystemTime;

use wardgate_config::model::{ListenerPort, Model};

use super::{AdminState, ApiError, dto, readiness};
use crate::metrics::{QosLabels, mqtt_version_label};
use crate::ports::PortProtocol;
use crate::registry::ConnectionInfo;

type AppState = State<Arc<AdminState>>;

/// The OpenMetrics text content type Prometheus negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn metrics(State(state): AppState) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response())
}

pub(super) async fn healthz(State(state): AppState) -> Json<dto::Health> {
    Json(dto::Health {
        status: "alive".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: dto::rfc3339(state.started),
    })
}

pub(super) async fn readyz(State(state): AppState) -> Response {
    let verdict = readiness(&state);
    let code = if verdict.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(verdict)).into_response()
}

/// The listener's name from a port label `BrokerListener/<name>:<port>`.
pub(super) fn listener_name(label: &str) -> &str {
    let rest = label.strip_prefix("BrokerListener/").unwrap_or(label);
    match rest.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => rest,
    }
}

pub(super) async fn listeners(State(state): AppState) -> Json<dto::Listeners> {
    Json(listeners_report(&state))
}

/// Every port with its state, security and connections, and the reloads: `GET
/// /api/v1/listeners` and the console's overview.
pub(super) fn listeners_report(state: &AdminState) -> dto::Listeners {
    let per_port = state.registry.per_port();
    let status = state.status.read();
    let ports = status
        .ports
        .iter()
        .map(|(n, p)| {
            let listener = listener_name(&p.spec.name);
            let configured = status
                .model
                .as_deref()
                .and_then(|m| configured_port(m, listener, *n));
            dto::Port {
                listener: listener.to_string(),
                port: *n,
                protocol: match p.spec.protocol {
                    PortProtocol::Mqtt => "Mqtt",
                    PortProtocol::WebSockets => "WebSockets",
                }
                .to_string(),
                state: p.state.name().to_string(),
                reason: p.state.reason().map(str::to_string),
                addresses: p.local_addrs.iter().map(|a| a.to_string()).collect(),
                connections: per_port.get(n).copied().unwrap_or(0),
                tls: configured
                    .and_then(|c| c.tls.as_ref())
                    .map(|t| t.mode().to_string()),
                authentication: configured.and_then(|c| c.authentication_ref.clone()),
                authorization: configured.and_then(|c| c.authorization_ref.clone()),
            }
        })
        .collect();
    dto::Listeners {
        ports,
        reloads: status.reloads.saturating_sub(1),
        reload_failures: status.reload_failures,
        last_reload_error: status.last_reload_error.clone(),
    }
}

/// The configured port of listener `listener` that clients reach on `port` (its port, or its
/// nodePort).
fn configured_port<'m>(model: &'m Model, listener: &str, port: u16) -> Option<&'m ListenerPort> {
    model
        .listeners
        .iter()
        .filter(|l| l.name == listener)
        .flat_map(|l| &l.ports)
        .find(|p| p.port == port || p.node_port == Some(port))
}

fn subscriptions(session: &Session) -> Vec<dto::Subscription> {
    let mut subs: Vec<dto::Subscription> = session
        .subscriptions()
        .into_iter()
        .map(|(filter, entry)| dto::Subscription {
            filter: filter.as_str().to_string(),
            qos: entry.options.qos as u8,
            no_local: entry.options.no_local,
            retain_as_published: entry.options.retain_as_published,
            retain_handling: entry.options.retain_handling as u8,
            subscription_id: entry.id,
        })
        .collect();
    subs.sort_by(|a, b| a.filter.cmp(&b.filter));
    subs
}

pub(super) fn connected_client(c: &ConnectionInfo) -> dto::Client {
    dto::Client {
        client_id: c.client_id().to_string(),
        connected: true,
        username: c.identity.username().map(str::to_owned),
        port: Some(c.port),
        peer: Some(c.peer.to_string()),
        protocol_version: Some(mqtt_version_label(c.protocol).to_string()),
        attributes: c.identity.attributes().clone(),
        connected_since: Some(dto::rfc3339(c.connected_at)),
        subscriptions: subscriptions(&c.session),
        queued: c.session.queued_len(),
        inflight: c.session.inflight_len(),
        dropped: c.session.dropped(),
    }
}

pub(super) async fn clients(State(state): AppState) -> Json<dto::Clients> {
    Json(clients_report(&state))
}

/// The connected clients: `GET /api/v1/clients` and the console's client list.
pub(super) fn clients_report(state: &AdminState) -> dto::Clients {
    let clients: Vec<dto::Client> = state
        .registry
        .snapshot()
        .iter()
        .map(connected_client)
        .collect();
    dto::Clients {
        count: clients.len(),
        clients,
    }
}

pub(super) async fn client(
    State(state): AppState,
    Path(id): Path<String>,
) -> Result<Json<dto::Client>, ApiError> {
    // The newest connection wins: during a takeover the old one may still be listed.
    let live = state
        .registry
        .snapshot()
        .into_iter()
        .rev()
        .find(|c| **c.client_id() == *id);
    if let Some(c) = live {
        return Ok(Json(connected_client(&c)));
    }
    let session = state.broker.session(&id).ok_or(ApiError::NotFound(
        "no connected client or session with this ID",
    ))?;
    Ok(Json(dto::Client {
        client_id: session.client_id().to_string(),
        connected: false,
        username: None,
        port: None,
        peer: None,
        protocol_version: None,
        attributes: Default::default(),
        connected_since: None,
        subscriptions: subscriptions(&session),
        queued: session.queued_len(),
        inflight: session.inflight_len(),
        dropped: session.dropped(),
    }))
}

pub(super) async fn retained(State(state): AppState) -> Json<dto::Retained> {
    Json(dto::Retained {
        count: state.broker.retained_count(),
    })
}

pub(super) async fn certificates(State(state): AppState) -> Json<dto::Certificates> {
    Json(certificates_report(&state))
}

/// Every certificate served or trusted: `GET /api/v1/certificates` and the console's page.
pub(super) fn certificates_report(state: &AdminState) -> dto::Certificates {
    let certificates = state
        .certificates
        .as_ref()
        .map(|s| {
            s.certificates()
                .iter()
                .map(dto::Certificate::from)
                .collect()
        })
        .unwrap_or_default();
    dto::Certificates { certificates }
}

pub(super) async fn stats(State(state): AppState) -> Json<dto::Stats> {
    Json(stats_report(&state))
}

/// The running totals the console's charts turn into rates: read from the same counters as
/// `/metrics`, nothing counted for it.
fn stats_report(state: &AdminState) -> dto::Stats {
    let stats = state.broker.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let selfcheck = &state.metrics.selfcheck;
    let latency = [0u8, 1]
        .into_iter()
        .filter_map(|qos| {
            let labels = QosLabels { qos };
            (selfcheck.received.get_or_create(&labels).get() > 0).then(|| {
                let seconds = selfcheck.last_latency.get_or_create(&labels).get();
                (qos.to_string(), seconds)
            })
        })
        .collect();
    dto::Stats {
        at: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        connections: state.registry.len(),
        connections_total: load(&stats.clients_total),
        publishes_received: load(&stats.messages_received),
        publishes_sent: load(&stats.messages_sent),
        drops: stats
            .drops
            .by_reason()
            .into_iter()
            .map(|(reason, n)| (reason.to_string(), n))
            .collect(),
        self_check_latency_seconds: latency,
    }
}

pub(super) async fn trust_bundle(State(state): AppState) -> Result<Response, ApiError> {
    const NONE: ApiError = ApiError::NotFound("no trust bundle yet");
    let Some(path) = &state.trust_bundle else {
        return Err(NONE);
    };
    match tokio::fs::read(path).await {
        Ok(pem) => Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NONE),
        Err(e) => Err(ApiError::Internal(format!(
            "reading the trust bundle {}: {e}",
            path.display()
        ))),
    }
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint")
}

#[cfg(test)]
mod tests {
    use super::listener_name;

    #[test]
    fn listener_names_come_from_port_labels() {
        assert_eq!(listener_name("BrokerListener/default:1883"), "default");
        assert_eq!(listener_name("BrokerListener/a:b:8883"), "a:b");
        assert_eq!(listener_name("test/tcp"), "test/tcp");
    }
}
