//! `/`: readiness, every port with its state, TLS, authentication and authorization, and the
//! live charts (drawn by `console.js` from `GET /api/v1/stats`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::{Page, none_row, port_state, render};
use crate::admin::{AdminState, api, readiness};

/// The charts: the `data-chart` name `console.js` fills, and the title.
const CHARTS: [(&str, &str); 4] = [
    ("connections", "Connections"),
    ("messages", "Messages per second (in / out)"),
    ("drops", "Dropped per second, by reason"),
    ("latency", "Self-check latency (ms)"),
];

pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Response {
    let verdict = readiness(&state);
    let listeners = api::listeners_report(&state);
    let body = html! {
        section.summary {
            div class={"card " (if verdict.ready { "ok" } else { "bad" })} {
                h2 { (if verdict.ready { "Ready" } else { "Not ready" }) }
                @for reason in &verdict.reasons { p { (reason) } }
            }
            div.card {
                h2 { "Clients" }
                p.big { (state.registry.len()) }
            }
            div.card {
                h2 { "Started" }
                p { (crate::admin::dto::rfc3339(state.started)) }
            }
        }
        h2 { "Ports" }
        table #ports {
            thead { tr {
                th { "Listener" } th { "Port" } th { "Protocol" } th { "State" } th { "TLS" }
                th { "Authentication" } th { "Authorization" } th { "Addresses" } th { "Clients" }
            } }
            tbody {
                @for p in &listeners.ports {
                    tr {
                        td { (p.listener) }
                        td { (p.port) }
                        td { (p.protocol) }
                        td { (port_state(&p.state, p.reason.as_deref())) }
                        td { (p.tls.as_deref().unwrap_or("none")) }
                        td { (p.authentication.as_deref().unwrap_or("none")) }
                        td { (p.authorization.as_deref().unwrap_or("none")) }
                        td { (p.addresses.join(", ")) }
                        td { (p.connections) }
                    }
                }
                @if listeners.ports.is_empty() { (none_row(9, "No port is configured.")) }
            }
        }
        h2 { "Readiness checks" }
        ul.checks {
            @for c in &verdict.checks {
                li class=(if c.ready { "ok" } else { "bad" }) {
                    strong { (c.name) } ": " (if c.ready { "passing" } else { "failing" })
                    @if let Some(detail) = &c.detail { " — " (detail) }
                }
            }
        }
        h2 { "Live" }
        (charts())
    };
    render(&state, Page::Overview, body)
}

fn charts() -> Markup {
    html! {
        section.charts {
            @for (name, title) in CHARTS {
                figure.chart data-chart=(name) {
                    figcaption { (title) " " span.now {} }
                    svg viewBox="0 0 300 100" preserveAspectRatio="none" role="img" aria-label=(title) {}
                    div.legend {}
                }
            }
        }
        p.note { "Sampled every 2 s from /api/v1/stats (the counters /metrics exports); the last two minutes are shown." }
    }
}
