//! `/authorization`: every BrokerAuthorization's rules as a table, and the explain form. The
//! form's answer is `GET /api/v1/explain`'s (the same [`explain`](wardgate_security::authz)
//! `wardgate explain` prints): the form's fields become the API's query parameters.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use wardgate_config::model::{Authorization, Model, Rule};

use super::{Page, none_row, render};
use crate::admin::explain::explain_query;
use crate::admin::{AdminState, dto};

/// The explain form's fields, as submitted.
#[derive(Debug, Default)]
struct ExplainForm {
    client_id: String,
    username: String,
    auth_method: String,
    /// `KEY=VALUE`, one per line.
    attributes: String,
    port: String,
    /// `connect`, `publish` or `subscribe`.
    action: String,
    topic: String,
}

impl ExplainForm {
    /// The submitted form, or `None` when the page was opened without one.
    fn parse(raw: Option<&str>) -> Option<Self> {
        let raw = raw.filter(|r| !r.is_empty())?;
        let mut form = Self::default();
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            let value = value.into_owned();
            match &*key {
                "clientId" => form.client_id = value,
                "username" => form.username = value,
                "authMethod" => form.auth_method = value,
                "attributes" => form.attributes = value,
                "port" => form.port = value,
                "action" => form.action = value,
                "topic" => form.topic = value,
                _ => {}
            }
        }
        Some(form)
    }

    /// The `GET /api/v1/explain` query string these fields stand for.
    fn api_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let non_empty = |s: &str| !s.trim().is_empty();
        if non_empty(&self.client_id) {
            q.append_pair("clientId", self.client_id.trim());
        }
        if non_empty(&self.username) {
            q.append_pair("username", self.username.trim());
        }
        if non_empty(&self.auth_method) {
            q.append_pair("authMethod", self.auth_method.trim());
        }
        for line in self.attributes.lines().filter(|l| non_empty(l)) {
            q.append_pair("attr", line.trim());
        }
        if non_empty(&self.port) {
            q.append_pair("port", self.port.trim());
        }
        match self.action.as_str() {
            "publish" | "subscribe" => q.append_pair(&self.action, &self.topic),
            _ => q.append_pair("connect", ""),
        };
        q.finish()
    }
}

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let model = state.status.read().model.clone();
    let ports: Vec<(u16, String)> = state
        .status
        .read()
        .ports
        .iter()
        .map(|(n, p)| (*n, p.spec.name.clone()))
        .collect();
    let form = ExplainForm::parse(raw.as_deref());
    let answer = form
        .as_ref()
        .map(|f| explain_query(&state, Some(&f.api_query())));
    let body = html! {
        h2 { "Explain" }
        (explain_form(form.as_ref().unwrap_or(&ExplainForm::default()), &ports))
        @match &answer {
            Some(Ok(e)) => (explanation(e)),
            Some(Err(e)) => {
                // The API's own error body: the same words `GET /api/v1/explain` answers.
                p.flash.bad #explain-error { (e.public_message()) }
            },
            None => {},
        }
        h2 { "Policies" }
        @match model.as_deref() {
            Some(model) => (policies(model)),
            None => p.none { "No configuration is running yet." },
        }
    };
    render(&state, Page::Authorization, body)
}

fn explain_form(f: &ExplainForm, ports: &[(u16, String)]) -> Markup {
    let action = if f.action.is_empty() {
        "publish"
    } else {
        &f.action
    };
    html! {
        form.explain #explain method="get" action="/authorization" {
            label { "Client ID" input name="clientId" value=(f.client_id) placeholder="client"; }
            label { "User name" input name="username" value=(f.username); }
            label { "Authentication method" input name="authMethod" value=(f.auth_method) placeholder="as the port's authentication says"; }
            label.wide { "Attributes (KEY=VALUE, one per line)" textarea name="attributes" rows="2" { (f.attributes) } }
            label { "Port"
                select name="port" {
                    option value="" { "every port" }
                    @for (n, name) in ports {
                        option value=(n) selected[f.port == n.to_string()] { (n) " — " (name) }
                    }
                }
            }
            label { "Action"
                select name="action" {
                    @for a in ["connect", "publish", "subscribe"] {
                        option value=(a) selected[action == a] { (a) }
                    }
                }
            }
            label { "Topic or filter" input name="topic" value=(f.topic) placeholder="factory/line1/temperature"; }
            button type="submit" { "Explain" }
        }
    }
}

fn explanation(e: &dto::Explanation) -> Markup {
    html! {
        div #explanation class={"verdict " (if e.allowed { "ok" } else { "bad" })} {
            strong { (if e.allowed { "Allowed" } else { "Denied" }) } ": " (e.action)
        }
        pre.explain-text { (e.text) }
    }
}

/// The ports (labels) that use authorization `name`.
fn users_of(model: &Model, name: &str) -> BTreeSet<String> {
    model
        .listeners
        .iter()
        .flat_map(|l| {
            l.ports
                .iter()
                .filter(|p| p.authorization_ref.as_deref() == Some(name))
                .map(move |p| format!("{}:{}", l.name, p.port))
        })
        .collect()
}

fn policies(model: &Model) -> Markup {
    html! {
        @if model.authorizations.is_empty() {
            p.none { "No BrokerAuthorization is configured: ports without one allow every authenticated client everything." }
        }
        @for (name, authz) in &model.authorizations {
            (policy(name, authz, &users_of(model, name)))
        }
    }
}

fn policy(name: &str, authz: &Authorization, users: &BTreeSet<String>) -> Markup {
    html! {
        section.policy {
            h3 { "BrokerAuthorization " (name) }
            p {
                "Cache: " (authz.cache) ". Used by: "
                @if users.is_empty() { "no port" } @else { (users.iter().cloned().collect::<Vec<_>>().join(", ")) }
                "."
            }
            table.rules {
                thead { tr { th { "Rule" } th { "Principals" } th { "MQTT grants" } th { "State store grants" } } }
                tbody {
                    @for (i, rule) in authz.rules.iter().enumerate() { (rule_row(i, rule)) }
                    @if authz.rules.is_empty() { (none_row(4, "No rule: everything is denied.")) }
                }
            }
        }
    }
}

/// Rule `index`, named as `wardgate explain` names it (`rules[0]`).
fn rule_row(index: usize, rule: &Rule) -> Markup {
    let p = &rule.principals;
    html! {
        tr {
            td.mono { "rules[" (index) "]" }
            td {
                @if !p.client_ids.is_empty() { div { "clientIds: " (p.client_ids.join(", ")) } }
                @if !p.usernames.is_empty() { div { "usernames: " (p.usernames.join(", ")) } }
                @for attrs in &p.attributes {
                    div { "attributes: "
                        (attrs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" and "))
                    }
                }
                @if p.client_ids.is_empty() && p.usernames.is_empty() && p.attributes.is_empty() { "anyone" }
            }
            td {
                @for r in &rule.broker_resources {
                    div {
                        strong { (r.method) } " "
                        @if !r.client_ids.is_empty() { "clientIds " (r.client_ids.join(", ")) }
                        (r.topics.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
                    }
                }
            }
            td {
                @for r in &rule.state_store_resources {
                    div { strong { (r.method) } " " (r.keys.len()) " " (r.key_type) " keys" }
                }
            }
        }
    }
}
