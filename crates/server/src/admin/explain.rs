//! `GET /api/v1/explain`: `wardgate explain` (SPEC.md §8.6) against the running configuration.
//! The query names the client and exactly one action, with the CLI's flags as parameters:
//!
//! `clientId` (default `client`), `username`, `authMethod`, `attr=KEY=VALUE` (may repeat),
//! `port`, `cert` (the client's PEM chain, leaf first, URL-encoded), and one of `connect`,
//! `publish=TOPIC`, `subscribe=FILTER`.
//!
//! The answer is the same [`explain`] the CLI prints, as JSON, with the CLI's text in `text`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use wardgate_security::authz::{ExplainAction, ExplainQuery, Explanation, explain};

use super::{AdminState, ApiError, dto};

/// The query's parameters, checked.
fn parse(raw: Option<&str>) -> Result<ExplainQuery, String> {
    let mut query = ExplainQuery {
        client_id: "client".to_string(),
        username: None,
        auth_method: None,
        client_chain: Vec::new(),
        attributes: BTreeMap::new(),
        port: None,
        action: ExplainAction::Connect,
    };
    let mut actions = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let value = value.into_owned();
        match &*key {
            "clientId" => query.client_id = value,
            "username" => query.username = Some(value),
            "authMethod" => query.auth_method = Some(value),
            "attr" => match value.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    query.attributes.insert(k.to_string(), v.to_string());
                }
                _ => return Err(format!("attr \"{value}\" is not KEY=VALUE")),
            },
            "port" => {
                query.port = Some(
                    value
                        .parse()
                        .map_err(|_| format!("port \"{value}\" is not a port number"))?,
                );
            }
            "cert" => {
                query.client_chain =
                    wardgate_security::pki::pem::certificates(value.as_bytes(), "cert")
                        .map_err(|e| format!("cert: {e}"))?;
            }
            "connect" => actions.push(ExplainAction::Connect),
            "publish" => actions.push(ExplainAction::Publish(value)),
            "subscribe" => actions.push(ExplainAction::Subscribe(value)),
            other => {
                return Err(format!(
                    "unknown parameter \"{other}\" (expected clientId, username, authMethod, attr, port, cert, and one of connect, publish, subscribe)"
                ));
            }
        }
    }
    query.action = match actions.len() {
        1 => actions.remove(0),
        0 => return Err("name one action: connect, publish=TOPIC or subscribe=FILTER".into()),
        _ => return Err("name only one action: connect, publish or subscribe".into()),
    };
    Ok(query)
}

impl From<&Explanation> for dto::Explanation {
    fn from(e: &Explanation) -> Self {
        dto::Explanation {
            action: e.action.to_string(),
            allowed: e.allowed(),
            ports: e
                .ports
                .iter()
                .map(|p| dto::PortExplanation {
                    listener: p.listener.clone(),
                    port: p.port,
                    allowed: p.allowed,
                    authentication: p.authentication.clone(),
                    identity: p.identity.as_ref().map(|id| dto::ExplainedIdentity {
                        method: id.method().to_string(),
                        client_id: id.client_id().to_owned(),
                        username: id.username().map(str::to_owned),
                        attributes: id.attributes().clone(),
                    }),
                    authorization: p.authorization.clone(),
                })
                .collect(),
            notes: e.notes.clone(),
            text: e.to_string(),
        }
    }
}

pub(super) async fn explain_route(
    State(state): State<Arc<AdminState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<dto::Explanation>, ApiError> {
    explain_query(&state, raw.as_deref()).map(Json)
}

/// The answer to an explain query string (the API's parameters) against the running
/// configuration: `GET /api/v1/explain` and the console's explain form.
pub(super) fn explain_query(
    state: &AdminState,
    raw: Option<&str>,
) -> Result<dto::Explanation, ApiError> {
    let query = parse(raw).map_err(ApiError::BadRequest)?;
    let model = state
        .status
        .read()
        .model
        .clone()
        .ok_or(ApiError::NotFound("no configuration is running yet"))?;
    Ok(dto::Explanation::from(&explain(&model, &query)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_one_action_and_well_formed_values() {
        let q = parse(Some(
            "clientId=c1&username=u&attr=a%3D1&attr=b=2&port=1883&publish=t%2Fx",
        ))
        .expect("valid");
        assert_eq!(q.client_id, "c1");
        assert_eq!(q.username.as_deref(), Some("u"));
        assert_eq!(q.attributes.get("a").map(String::as_str), Some("1"));
        assert_eq!(q.attributes.get("b").map(String::as_str), Some("2"));
        assert_eq!(q.port, Some(1883));
        assert_eq!(q.action, ExplainAction::Publish("t/x".into()));
        assert_eq!(
            parse(Some("connect")).expect("valid").action,
            ExplainAction::Connect
        );
        assert!(parse(None).unwrap_err().contains("name one action"));
        assert!(
            parse(Some("connect&subscribe=a"))
                .unwrap_err()
                .contains("only one")
        );
        assert!(
            parse(Some("connect&port=x"))
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            parse(Some("connect&attr=novalue"))
                .unwrap_err()
                .contains("KEY=VALUE")
        );
        assert!(
            parse(Some("connect&cert=junk"))
                .unwrap_err()
                .starts_with("cert:")
        );
        assert!(
            parse(Some("connect&bogus=1"))
                .unwrap_err()
                .contains("unknown parameter")
        );
    }
}
