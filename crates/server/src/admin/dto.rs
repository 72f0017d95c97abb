//! The admin API's JSON bodies (`docs/admin-api.md`, `docs/admin-api.openapi.yaml`). Field names
//! are camelCase, times are RFC 3339 in UTC. The types deserialize too, for `wardgate status` and
//! tests; they are the API's contract, so change them together with the OpenAPI file.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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

/// `t` as RFC 3339 in UTC with second precision (`2026-07-01T12:34:56Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses what [`rfc3339`] writes (UTC, `Z`, second precision; fractions are ignored).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, m, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':');
    let (hh, mm, ss): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss;
    let magnitude = std::time::Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
