//! `/configuration`: the resources in effect (names, kinds and the settings an operator checks
//! first; never a Secret's values or a webhook's headers) and the reloads, with the exact
//! error of the last refused one.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use wardgate_config::model::{IssuerSource, Model};

use super::{Page, none_row, render};
use crate::admin::{AdminState, api};

pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Response {
    let listeners = api::listeners_report(&state);
    let model = state.status.read().model.clone();
    let body = html! {
        h2 { "Reloads" }
        p #reloads {
            (listeners.reloads) " applied, " (listeners.reload_failures) " refused since start. "
            "Edit the files given to --config (or send SIGHUP) to reload."
        }
        @match &listeners.last_reload_error {
            Some(error) => {
                p.flash.bad { "The last reload was refused; the previous configuration keeps running:" }
                pre.error #reload-error { (error) }
            },
            None => p.flash.ok { "The configuration in effect is the latest one read." },
        }
        @match model.as_deref() {
            Some(model) => (resources(model)),
            None => p.none { "No configuration is running yet." },
        }
    };
    render(&state, Page::Configuration, body)
}

fn resources(model: &Model) -> Markup {
    let b = &model.broker;
    html! {
        h2 { "Broker " (b.name) }
        table.settings {
            tbody {
                tr { th { "Memory profile" } td { (b.memory_profile) } }
                tr { th { "Max session expiry" } td { (b.clients.max_session_expiry_seconds) " s" } }
                tr { th { "Max keep-alive" } td { (b.clients.max_keep_alive_seconds) " s" } }
                tr { th { "Persistence" } td { (if b.persistence.is_some() { "configured" } else { "off" }) } }
                tr { th { "Self-check" } td { (b.diagnostics.self_check.mode) } }
                tr { th { "Log level" } td { (b.diagnostics.log_level) } }
            }
        }
        h2 { "BrokerListeners" }
        table #listeners {
            thead { tr { th { "Name" } th { "Service" } th { "Port" } th { "Protocol" } th { "TLS" } th { "Authentication" } th { "Authorization" } } }
            tbody {
                @for l in &model.listeners {
                    @for p in &l.ports {
                        tr {
                            td { (l.name) }
                            td { (l.service_name) " (" (l.service_type) ")" }
                            td { (p.port) @if let Some(n) = p.node_port { " (nodePort " (n) ")" } }
                            td { (format!("{:?}", p.protocol)) }
                            td { @match &p.tls { Some(t) => (t.mode()), None => "none" } }
                            td { (p.authentication_ref.as_deref().unwrap_or("none")) }
                            td { (p.authorization_ref.as_deref().unwrap_or("none")) }
                        }
                    }
                }
                @if model.listeners.is_empty() { (none_row(7, "No BrokerListener.")) }
            }
        }
        h2 { "BrokerAuthentications" }
        ul {
            @for (name, a) in &model.authentications {
                li { strong { (name) } ": " (a.methods.iter().map(|m| m.kind().to_string()).collect::<Vec<_>>().join(", ")) }
            }
            @if model.authentications.is_empty() { li.none { "None." } }
        }
        h2 { "BrokerAuthorizations" }
        ul {
            @for (name, a) in &model.authorizations {
                li { strong { (name) } ": " (a.rules.len()) " rules (" a href="/authorization" { "see them" } ")" }
            }
            @if model.authorizations.is_empty() { li.none { "None." } }
        }
        h2 { "Secrets and ConfigMaps" }
        p.note { "Keys only: values are never shown." }
        ul #secrets {
            @for s in model.secrets.values() {
                li { "Secret " strong { (s.name) } " (" (s.type_) "): " (s.data.keys().cloned().collect::<Vec<_>>().join(", ")) }
            }
            @for c in model.config_maps.values() {
                li { "ConfigMap " strong { (c.name) } ": " (c.data.keys().chain(c.binary_data.keys()).cloned().collect::<Vec<_>>().join(", ")) }
            }
            @if model.secrets.is_empty() && model.config_maps.is_empty() { li.none { "None." } }
        }
        h2 { "Issuers and Certificates" }
        ul {
            @for i in model.issuers.values() {
                li { (i.kind) " " strong { (i.name) } ": " (issuer_source(&i.source)) }
            }
            @for c in model.certificates.keys() {
                li { "Certificate " strong { (c) } }
            }
            @if model.issuers.is_empty() && model.certificates.is_empty() { li.none { "None." } }
        }
    }
}

fn issuer_source(source: &IssuerSource) -> String {
    match source {
        IssuerSource::Quickstart => "the quickstart CA (built in)".to_string(),
        IssuerSource::SelfSigned => "self-signed".to_string(),
        IssuerSource::Ca { secret_name } => format!("CA from Secret {secret_name}"),
    }
}
