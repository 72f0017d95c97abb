//! The Custom method (SPEC.md §7.4): the AIO custom authentication contract, API version 0.5.0
//! (`reference/aio-broker.md` §5.5).
//!
//! `POST {endpoint}?api-version=0.5.0` over HTTPS with `Content-Type: application/json` and the
//! configured `headers`; the server certificate is verified against `caCertConfigMap` (else the
//! platform's roots); the broker presents the client certificate of `auth.x509.secretRef`.
//! Bodies: `{"type":"connect","username"?,"password"?(base64),"certs"?(PEM chain),
//! "enhancedAuthentication"?:{"method","data"?(base64)}}` and
//! `{"type":"auth","enhancedAuthentication":{"method","data"?}}`.
//!
//! Answers: 200 `{"expiry"?, "attributes"?}` passes; 403 `{"reason", "message"?}` fails with that
//! CONNACK code; 422 `{"supportedVersions":[…]}` is retried once with a version Wardgate speaks.
//! An unreachable server, a 5-second timeout, any other status: the server is *unavailable*,
//! which makes the method not relevant (the next method is tried; a re-authentication answers
//! AUTH 0x18). Redirects are not followed (credentials go to the configured endpoint only).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use wardgate_config::{CustomSettings, Model};
use wardgate_protocol::ReasonCode;

use super::time::parse_rfc3339;
use super::{AuthMethodKind, AuthRequest, AuthnError, AuthnOutcome, ConnectRequest, Identity};

/// The API versions Wardgate speaks, preferred first.
pub(crate) const API_VERSIONS: &[&str] = &["0.5.0"];

/// How long the server has to answer (connect and response together).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// The request body (camelCase, absent fields left out).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enhanced_authentication: Option<Enhanced<'a>>,
}

#[derive(Serialize)]
struct Enhanced<'a> {
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PassBody {
    expiry: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct FailBody {
    reason: Option<serde_json::Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnsupportedBody {
    #[serde(default)]
    supported_versions: Vec<String>,
}

/// What the server said.
pub(crate) enum Answer {
    /// 200.
    Pass {
        attributes: BTreeMap<String, String>,
        expiry: Option<SystemTime>,
    },
    /// 403, or a 200 whose body is not the contract's (fail closed).
    Fail { reason: ReasonCode, why: String },
    /// Unreachable, timed out, or an answer outside the contract.
    Unavailable(String),
}

impl Answer {
    pub(crate) fn into_outcome(
        self,
        client_id: &str,
        username: Option<&str>,
        now: SystemTime,
    ) -> AuthnOutcome {
        match self {
            Answer::Pass { attributes, expiry } => {
                if expiry.is_some_and(|e| e <= now) {
                    return AuthnOutcome::denied(
                        ReasonCode::NOT_AUTHORIZED,
                        "Custom: the server passed the client with an expiry in the past",
                    );
                }
                let mut id = Identity::new(
                    client_id,
                    username.map(str::to_owned),
                    AuthMethodKind::Custom,
                );
                id.attributes = attributes;
                id.expires_at = expiry;
                AuthnOutcome::Allowed(id)
            }
            Answer::Fail { reason, why } => AuthnOutcome::denied(reason, format!("Custom: {why}")),
            Answer::Unavailable(why) => {
                AuthnOutcome::denied(ReasonCode::SERVER_UNAVAILABLE, format!("Custom: {why}"))
            }
        }
    }
}

/// The Custom method, ready to use.
pub(crate) struct CustomMethod {
    endpoint: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    /// The API version in use (a 422 may change it).
    version: Mutex<&'static str>,
}

impl fmt::Debug for CustomMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomMethod")
            .field("endpoint", &self.endpoint.as_str())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CustomMethod {
    pub(crate) fn new(model: &Model, s: &CustomSettings) -> Result<CustomMethod, AuthnError> {
        let err = |message: String| AuthnError::Custom {
            endpoint: s.endpoint.clone(),
            message,
        };
        let endpoint =
            reqwest::Url::parse(&s.endpoint).map_err(|e| err(format!("not a URL: {e}")))?;
        if endpoint.scheme() != "https" {
            return Err(err("the endpoint must be https://".to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("wardgate/", env!("CARGO_PKG_VERSION")));
        if let Some(name) = &s.ca_cert_config_map {
            let cm = model
                .config_maps
                .get(name)
                .ok_or_else(|| AuthnError::MissingConfigMap {
                    method: format!("Custom {} caCertConfigMap", s.endpoint),
                    name: name.clone(),
                })?;
            let mut certs = Vec::new();
            for (key, value) in cm.values() {
                let found =
                    crate::pki::pem::certificates(value, &format!("ConfigMap/{name} {key}"))
                        .map_err(|e| err(e.to_string()))?;
                for c in found {
                    certs.push(
                        reqwest::Certificate::from_der(&c)
                            .map_err(|e| err(format!("ConfigMap/{name} {key}: {e}")))?,
                    );
                }
            }
            if certs.is_empty() {
                return Err(err(format!("ConfigMap/{name} holds no certificate")));
            }
            builder = builder.tls_certs_only(certs);
        }
        if let Some(secret) = &s.client_cert_secret {
            let sec = model
                .secrets
                .get(secret)
                .ok_or_else(|| AuthnError::MissingSecret {
                    method: format!("Custom {} auth.x509.secretRef", s.endpoint),
                    name: secret.clone(),
                })?;
            let (Some(crt), Some(key)) = (sec.get("tls.crt"), sec.get("tls.key")) else {
                return Err(err(format!(
                    "Secret/{secret} must hold tls.crt and tls.key (a kubernetes.io/tls Secret)"
                )));
            };
            let mut pem = crt.to_vec();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| err(format!("Secret/{secret}: {e}")))?;
            builder = builder.identity(identity);
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| err(format!("header name \"{k}\" is not valid")))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| err(format!("the value of header \"{k}\" is not valid")))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let client = builder
            .build()
            .map_err(|e| err(format!("cannot make the HTTPS client: {e}")))?;
        Ok(CustomMethod {
            endpoint,
            client,
            headers,
            version: Mutex::new(API_VERSIONS[0]),
        })
    }

    /// The endpoint, for `explain` and logs.
    pub(crate) fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    pub(crate) async fn connect(&self, req: &ConnectRequest<'_>) -> Answer {
        let body = RequestBody {
            kind: "connect",
            username: req.username,
            password: req.password.map(|p| STANDARD.encode(p)),
            certs: pem_chain(req.client_chain),
            enhanced_authentication: req.auth_method.map(|method| Enhanced {
                method,
                data: req.auth_data.map(|d| STANDARD.encode(d)),
            }),
        };
        self.post(&body).await
    }

    pub(crate) async fn auth(&self, req: &AuthRequest<'_>) -> Answer {
        let body = RequestBody {
            kind: "auth",
            username: None,
            password: None,
            certs: None,
            enhanced_authentication: Some(Enhanced {
                method: req.auth_method,
                data: req.auth_data.map(|d| STANDARD.encode(d)),
            }),
        };
        self.post(&body).await
    }

    async fn post(&self, body: &RequestBody<'_>) -> Answer {
        let Ok(json) = serde_json::to_vec(body) else {
            return Answer::Unavailable("cannot encode the request".to_owned());
        };
        let mut retried = false;
        loop {
            let version = *self.version.lock();
            let mut url = self.endpoint.clone();
            url.query_pairs_mut().append_pair("api-version", version);
            let sent = self
                .client
                .post(url)
                .headers(self.headers.clone())
                .body(json.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    return Answer::Unavailable(format!(
                        "{} did not answer within {} s",
                        self.endpoint,
                        TIMEOUT.as_secs()
                    ));
                }
                Err(e) => {
                    return Answer::Unavailable(format!(
                        "{} is unreachable: {}",
                        self.endpoint,
                        error_chain(&e)
                    ));
                }
            };
            let status = response.status();
            let bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    return Answer::Unavailable(format!(
                        "{}: reading the answer failed: {}",
                        self.endpoint,
                        error_chain(&e)
                    ));
                }
            };
            match status {
                StatusCode::OK => return pass(&bytes),
                StatusCode::FORBIDDEN => return fail(&bytes),
                StatusCode::UNPROCESSABLE_ENTITY if !retried => {
                    let offered = serde_json::from_slice::<UnsupportedBody>(&bytes)
                        .map(|b| b.supported_versions)
                        .unwrap_or_default();
                    let Some(v) = API_VERSIONS
                        .iter()
                        .find(|v| offered.iter().any(|o| o == *v))
                    else {
                        return Answer::Unavailable(format!(
                            "{} supports API versions {:?}; Wardgate speaks {:?}",
                            self.endpoint, offered, API_VERSIONS
                        ));
                    };
                    tracing::info!(endpoint = %self.endpoint, from = version, to = v, "custom authentication server asked for another API version (422); retrying");
                    *self.version.lock() = v;
                    retried = true;
                }
                other => {
                    return Answer::Unavailable(format!(
                        "{} answered {}: {}",
                        self.endpoint,
                        other,
                        snippet(&bytes)
                    ));
                }
            }
        }
    }
}

fn pass(bytes: &[u8]) -> Answer {
    let body: PassBody = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => {
            return Answer::Fail {
                reason: ReasonCode::NOT_AUTHORIZED,
                why: format!("the server answered 200 with a body outside the contract ({e})"),
            };
        }
    };
    let expiry = match body.expiry.as_deref() {
        None => None,
        Some(s) => match parse_rfc3339(s) {
            Some(t) => Some(t),
            None => {
                return Answer::Fail {
                    reason: ReasonCode::NOT_AUTHORIZED,
                    why: format!(
                        "the server's expiry \"{}\" is not RFC 3339",
                        s.escape_debug()
                    ),
                };
            }
        },
    };
    let mut attributes = BTreeMap::new();
    for (k, v) in body.attributes {
        let v = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Answer::Fail {
                    reason: ReasonCode::NOT_AUTHORIZED,
                    why: format!("the server's attribute \"{k}\" is not a string"),
                };
            }
        };
        attributes.insert(k, v);
    }
    Answer::Pass { attributes, expiry }
}

fn fail(bytes: &[u8]) -> Answer {
    let body: Option<FailBody> = serde_json::from_slice(bytes).ok();
    let reason = body
        .as_ref()
        .and_then(|b| b.reason.as_ref())
        .and_then(serde_json::Value::as_u64)
        .and_then(|r| u8::try_from(r).ok())
        .map(ReasonCode)
        .filter(|r| r.is_error())
        .unwrap_or(ReasonCode::NOT_AUTHORIZED);
    let message = body.and_then(|b| b.message).unwrap_or_default();
    Answer::Fail {
        reason,
        why: if message.is_empty() {
            format!("the server refused the client (reason {:#04x})", reason.0)
        } else {
            format!(
                "the server refused the client (reason {:#04x}): {}",
                reason.0,
                message.chars().take(200).collect::<String>()
            )
        },
    }
}

fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        .trim()
        .to_owned()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// The client's chain as concatenated PEM, leaf first.
fn pem_chain(chain: &[CertificateDer<'_>]) -> Option<String> {
    if chain.is_empty() {
        return None;
    }
    Some(
        chain
            .iter()
            .map(|c| crate::pki::pem::certificate_pem(c))
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_body_is_camel_case_without_absent_fields() {
        let body = RequestBody {
            kind: "connect",
            username: Some("alice"),
            password: Some(STANDARD.encode(b"pw")),
            certs: None,
            enhanced_authentication: Some(Enhanced {
                method: "K8S-SAT",
                data: None,
            }),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"type":"connect","username":"alice","password":"cHc=","enhancedAuthentication":{"method":"K8S-SAT"}}"#
        );
        let auth = RequestBody {
            kind: "auth",
            username: None,
            password: None,
            certs: None,
            enhanced_authentication: Some(Enhanced {
                method: "m",
                data: Some(STANDARD.encode(b"d")),
            }),
        };
        assert_eq!(
            serde_json::to_string(&auth).unwrap(),
            r#"{"type":"auth","enhancedAuthentication":{"method":"m","data":"ZA=="}}"#
        );
    }

    #[test]
    fn answers_follow_the_contract() {
        match pass(br#"{"expiry":"2099-01-01T00:00:00Z","attributes":{"floor":"1","n":2}}"#) {
            Answer::Pass { attributes, expiry } => {
                assert_eq!(attributes["floor"], "1");
                assert_eq!(attributes["n"], "2");
                assert!(expiry.is_some());
            }
            _ => panic!("expected pass"),
        }
        assert!(matches!(pass(b"{}"), Answer::Pass { .. }));
        assert!(matches!(pass(b""), Answer::Fail { .. }), "fails closed");
        assert!(matches!(
            pass(br#"{"expiry":"tomorrow"}"#),
            Answer::Fail { .. }
        ));
        match fail(br#"{"reason":134,"message":"bad password"}"#) {
            Answer::Fail { reason, why } => {
                assert_eq!(reason, ReasonCode::BAD_USERNAME_OR_PASSWORD);
                assert!(why.contains("bad password"));
            }
            _ => panic!("expected fail"),
        }
        // A success code or garbage is not a denial reason: 0x87.
        for b in [&br#"{"reason":0}"#[..], b"nope", br#"{"reason":999}"#] {
            match fail(b) {
                Answer::Fail { reason, .. } => assert_eq!(reason, ReasonCode::NOT_AUTHORIZED),
                _ => panic!("expected fail"),
            }
        }
    }
}
