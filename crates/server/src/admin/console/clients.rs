//! `/clients`: the connected clients, searchable (`?q=`, and as you type), and `POST
//! /clients/disconnect` (form fields `clientId` and `csrf`) to end a client's connection with
//! DISCONNECT 0x98 (Administrative action).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use wardgate_protocol::ReasonCode;

use super::{Page, none_row, render};
use crate::admin::{AdminState, api, dto};

/// `/clients`' query.
#[derive(Debug, Default)]
struct ClientsQuery {
    /// Show only clients whose ID, user name, address or attributes contain this (`q`).
    q: String,
    /// The client just disconnected, after the POST's redirect (`disconnected`).
    disconnected: Option<String>,
    /// The client the POST found no connection for (`notConnected`).
    not_connected: Option<String>,
}

impl ClientsQuery {
    /// The query string's known fields; others are ignored.
    fn parse(raw: Option<&str>) -> Self {
        let mut query = Self::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match &*key {
                "q" => query.q = value.into_owned(),
                "disconnected" => query.disconnected = Some(value.into_owned()),
                "notConnected" => query.not_connected = Some(value.into_owned()),
                _ => {}
            }
        }
        query
    }
}

/// The text a search matches against, lowercased.
fn searchable(c: &dto::Client) -> String {
    let mut text = format!(
        "{} {} {}",
        c.client_id,
        c.username.as_deref().unwrap_or(""),
        c.peer.as_deref().unwrap_or("")
    );
    for (k, v) in &c.attributes {
        text.push_str(&format!(" {k}={v}"));
    }
    text.to_lowercase()
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = ClientsQuery::parse(raw.as_deref());
    let report = api::clients_report(&state);
    let needle = query.q.trim().to_lowercase();
    let shown: Vec<(&dto::Client, String)> = report
        .clients
        .iter()
        .map(|c| (c, searchable(c)))
        .filter(|(_, text)| text.contains(&needle))
        .collect();
    let body = html! {
        @if let Some(id) = &query.disconnected {
            p.flash.ok { "Disconnected " code { (id) } " (DISCONNECT 0x98 Administrative action)." }
        }
        @if let Some(id) = &query.not_connected {
            p.flash.bad { "No connected client " code { (id) } "." }
        }
        form.search method="get" action="/clients" {
            input #search type="search" name="q" value=(query.q) placeholder="Client ID, user, address or attribute" aria-label="Search clients";
            button type="submit" { "Search" }
            span.count { (shown.len()) " of " (report.count) " connected" }
        }
        table #clients {
            thead { tr {
                th { "Client ID" } th { "User" } th { "Attributes" } th { "Port" } th { "MQTT" }
                th { "Address" } th { "Connected since" } th { "Subscriptions" }
                th { "Queued" } th { "In flight" } th { "Dropped" } th {}
            } }
            tbody {
                @for (c, text) in &shown {
                    tr data-search=(text) {
                        td.mono { (c.client_id) }
                        td { (c.username.as_deref().unwrap_or("")) }
                        td { @for (k, v) in &c.attributes { span.tag { (k) "=" (v) } " " } }
                        td { @if let Some(p) = c.port { (p) } }
                        td { (c.protocol_version.as_deref().unwrap_or("")) }
                        td { (c.peer.as_deref().unwrap_or("")) }
                        td { (c.connected_since.as_deref().unwrap_or("")) }
                        td { @for s in &c.subscriptions { span.tag { (s.filter) " q" (s.qos) } " " } }
                        td { (c.queued) }
                        td { (c.inflight) }
                        td { (c.dropped) }
                        td {
                            form.disconnect method="post" action="/clients/disconnect" {
                                input type="hidden" name="clientId" value=(c.client_id);
                                input type="hidden" name="csrf" value=(state.csrf.as_str());
                                button.danger type="submit" { "Disconnect" }
                            }
                        }
                    }
                }
                @if shown.is_empty() {
                    (none_row(12, if report.count == 0 { "No client is connected." } else { "No client matches." }))
                }
            }
        }
    };
    render(&state, Page::Clients, body)
}

/// `POST /clients/disconnect`: refused (403) without the page's CSRF token; otherwise every
/// connection of the client is asked to close, and the browser goes back to the list.
pub(super) async fn disconnect(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let mut client_id = None;
    let mut csrf = None;
    for (key, value) in form_urlencoded::parse(&body) {
        match &*key {
            "clientId" => client_id = Some(value.into_owned()),
            "csrf" => csrf = Some(value.into_owned()),
            _ => {}
        }
    }
    if !csrf.is_some_and(|t| state.csrf.matches(&t)) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(dto::Error {
                error: "the form's CSRF token is missing or wrong: reload the console page and try again"
                    .to_string(),
            }),
        )
            .into_response();
    }
    let Some(client_id) = client_id else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(dto::Error {
                error: "name the client to disconnect in the form field clientId".to_string(),
            }),
        )
            .into_response();
    };
    let mut kicked = 0;
    for c in state.registry.snapshot() {
        if **c.client_id() == *client_id {
            c.control.kick(ReasonCode::ADMINISTRATIVE_ACTION);
            kicked += 1;
        }
    }
    let outcome = if kicked > 0 {
        tracing::info!(client_id, "disconnected from the admin console");
        "disconnected"
    } else {
        "notConnected"
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(outcome, &client_id)
        .finish();
    let location = format!("/clients?{query}");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}
