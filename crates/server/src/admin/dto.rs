//! The admin API's JSON bodies (`docs/admin-api.md`, `docs/admin-api.openapi.yaml`). Field names
//! are camelCase, times are RFC 3339 in UTC. The types deserialize too, for `wardgate status` and
//! tests; they are the API's contract, so change them together with the OpenAPI file.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `alive`.
    pub status: String,
    /// The broker's version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
}

/// `GET /readyz` (200 when `ready`, 503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// Whether every check passes.
    pub ready: bool,
    /// One line per failing check: why the broker is not ready.
    pub reasons: Vec<String>,
    /// Every check, passing or not.
    pub checks: Vec<Check>,
}

/// One readiness check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// `ports`, `selfCheck`, ...
    pub name: String,
    /// Whether it passes.
    pub ready: bool,
    /// What it saw (a reason when failing; a note, if any, when passing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `GET /api/v1/listeners`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// Every configured port, by port number.
    pub ports: Vec<Port>,
    /// Configuration reloads applied since start (the initial load not counted).
    pub reloads: u64,
    /// Configuration reloads refused since start.
    #[serde(default)]
    pub reload_failures: u64,
    /// Why the latest reload was refused, while the previous configuration keeps running.
    #[serde(default)]
    pub last_reload_error: Option<String>,
}

/// One port of a listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// The BrokerListener's name.
    pub listener: String,
    /// The port number clients use.
    pub port: u16,
    /// `Mqtt` or `WebSockets`.
    pub protocol: String,
    /// `Listening`, `AwaitingSecret`, `AwaitingIssuer`, `AwaitingConfigMap` or `Failed`.
    pub state: String,
    /// Why the port is not listening.
    #[serde(default)]
    pub reason: Option<String>,
    /// The addresses it listens on (empty unless Listening).
    pub addresses: Vec<String>,
    /// Client connections on it now.
    pub connections: usize,
    /// TLS mode (`Automatic` or `Manual`); absent for plain TCP.
    #[serde(default)]
    pub tls: Option<String>,
    /// The BrokerAuthentication attached, if any.
    #[serde(default)]
    pub authentication: Option<String>,
    /// The BrokerAuthorization attached, if any.
    #[serde(default)]
    pub authorization: Option<String>,
}

/// `GET /api/v1/clients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clients {
    /// Number of connected clients.
    pub count: usize,
    /// The connected clients, in connection order.
    pub clients: Vec<Client>,
}

/// One client: a live connection, or (from `GET /api/v1/clients/{id}` only) a session kept for a
/// client that is not connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The MQTT client identifier.
    pub client_id: String,
    /// Whether a connection is attached.
    pub connected: bool,
    /// The user name it is known by.
    #[serde(default)]
    pub username: Option<String>,
    /// The port it connected to.
    #[serde(default)]
    pub port: Option<u16>,
    /// The client's address.
    #[serde(default)]
    pub peer: Option<String>,
    /// `3.1`, `3.1.1` or `5.0`.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// Authorization attributes from authentication.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When CONNACK was sent (RFC 3339).
    #[serde(default)]
    pub connected_since: Option<String>,
    /// The session's subscriptions, sorted by filter.
    pub subscriptions: Vec<Subscription>,
    /// Messages queued for it, not yet sent.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// Messages its session dropped.
    pub dropped: u64,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The topic filter (with `$share/<group>/` if shared).
    pub filter: String,
    /// Granted QoS.
    pub qos: u8,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
    /// Subscription Identifier.
    #[serde(default)]
    pub subscription_id: Option<u32>,
}

/// `GET /api/v1/stats`: the broker's running totals, read from the counters `/metrics` exports.
/// Rates are the difference between two samples over the time between them (`at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// When the sample was taken, in milliseconds since the Unix epoch.
    pub at: u64,
    /// Client connections now.
    pub connections: usize,
    /// Connections accepted (CONNACK sent) since start.
    pub connections_total: u64,
    /// PUBLISH packets received and routed since start.
    pub publishes_received: u64,
    /// PUBLISH packets sent to clients since start.
    pub publishes_sent: u64,
    /// Message copies dropped and new messages refused since start, by reason.
    pub drops: BTreeMap<String, u64>,
    /// The latest self-check round's publish-to-delivery latency in seconds, by QoS (`0`, `1`);
    /// absent when the self-check is off or has not completed a round.
    #[serde(default)]
    pub self_check_latency_seconds: BTreeMap<String, f64>,
}

/// `GET /api/v1/retained`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retained {
    /// Retained topics held.
    pub count: usize,
}

/// `GET /api/v1/certificates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    /// Every certificate the broker serves or trusts, as the TLS layer reports them.
    pub certificates: Vec<Certificate>,
}

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// What uses it (a listener port label, `trust bundle`, ...).
    pub used_by: String,
    /// The port it is served on, if any.
    #[serde(default)]
    pub port: Option<u16>,
    /// Subject distinguished name.
    pub subject: String,
    /// subjectAltName entries (`DNS:...`, `IP:...`).
    pub sans: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number.
    pub serial: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Where it comes from (`Secret/<name>`, `Issuer/<name>`, a file, ...).
    pub source: String,
    /// Whether it is past its notAfter now.
    #[serde(default)]
    pub expired: bool,
}

/// `GET /api/v1/explain`: what `wardgate explain` answers, against the running configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The action explained (`connect`, `publish on "t"`, `subscribe to "f"`).
    pub action: String,
    /// Whether it is allowed on every port examined (and there was one).
    pub allowed: bool,
    /// One entry per port examined.
    pub ports: Vec<PortExplanation>,
    /// Anything else worth saying (e.g. no such port).
    pub notes: Vec<String>,
    /// The whole answer as `wardgate explain` prints it.
    pub text: String,
}

/// The explanation for one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortExplanation {
    /// The BrokerListener.
    pub listener: String,
    /// The port.
    pub port: u16,
    /// Whether the action is allowed on this port.
    pub allowed: bool,
    /// How authentication goes, line by line.
    pub authentication: Vec<String>,
    /// The identity authorization decides from; absent when authentication denies.
    #[serde(default)]
    pub identity: Option<ExplainedIdentity>,
    /// How authorization goes, line by line.
    pub authorization: Vec<String>,
}

/// Who authentication says the client is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedIdentity {
    /// The method (`X509`, `UsernamePassword`, ...).
    pub method: String,
    /// The client ID.
    pub client_id: String,
    /// The username, if any.
    #[serde(default)]
    pub username: Option<String>,
    /// Authorization attributes.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Error {
    /// What went wrong, without internals.
    pub error: String,
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds: the times RFC 3339 can write.
const RFC3339_SECONDS: RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// `t` as RFC 3339 in UTC with second precision (`2026-07-01T12:34:56Z`); a time outside the
/// years 0000 to 9999 is written as the nearest end.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    let secs = secs.clamp(*RFC3339_SECONDS.start(), *RFC3339_SECONDS.end());
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .expect("a time in the years 0000 to 9999 is valid and has an RFC 3339 form")
}

/// Parses an RFC 3339 date-time, such as [`rfc3339`] writes.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let at = |s| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(at(253_402_300_800), "9999-12-31T23:59:59Z", "clamped");
        let before = |s| rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(s));
        assert_eq!(before(1), "1969-12-31T23:59:59Z");
        assert_eq!(before(62_167_219_200), "0000-01-01T00:00:00Z");
        assert_eq!(before(62_167_219_201), "0000-01-01T00:00:00Z", "clamped");
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
