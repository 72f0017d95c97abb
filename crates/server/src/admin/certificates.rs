//! Certificates in the admin API and metrics.
//!
//! A [`CertificateSource`] handed to
//! [`AdminState::with_certificates`](super::AdminState::with_certificates) makes
//! `GET /api/v1/certificates` list its certificates, `wardgate status` print them, and
//! `/metrics` export `wardgate_certificate_expiry_timestamp_seconds` and
//! `wardgate_certificate_expired` for each. [`ServedCertificates`] is the broker's: what the
//! TLS ports serve (as the supervisor last resolved them: manual Secrets, automatic
//! certificates), the client CAs they trust, and the quickstart CA of the trust bundle.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::dto;
use crate::metrics::gauge_family;
use crate::supervisor::Status;
use wardgate_security::pki::CertificateInfo;
use wardgate_security::tls::TlsContext;

/// One certificate, as the TLS layer describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateReport {
    /// What uses it: a port label (`BrokerListener/<name>:<port>`), `trust bundle`, ...
    pub used_by: String,
    /// The port it is served on, if any.
    pub port: Option<u16>,
    /// Subject distinguished name, as OpenSSL prints it.
    pub subject: String,
    /// subjectAltName entries (`DNS:example.com`, `IP:127.0.0.1`).
    pub sans: Vec<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex with colons.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Where it comes from: `Secret/<name>`, `Issuer/<name>`, a file path, `quickstart CA`.
    pub source: String,
}

impl CertificateReport {
    /// The report of `info`, used by `used_by` (on `port`).
    pub fn from_info(info: &CertificateInfo, used_by: String, port: Option<u16>) -> Self {
        CertificateReport {
            used_by,
            port,
            subject: info.subject.to_string(),
            sans: info.sans.iter().map(|s| s.to_string()).collect(),
            issuer: info.issuer.to_string(),
            serial: info.serial.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            source: info.source.clone(),
        }
    }

    /// Whether it has expired at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

impl From<&CertificateReport> for dto::Certificate {
    fn from(c: &CertificateReport) -> Self {
        dto::Certificate {
            expired: c.expired_at(SystemTime::now()),
            used_by: c.used_by.clone(),
            port: c.port,
            subject: c.subject.clone(),
            sans: c.sans.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            not_before: dto::rfc3339(c.not_before),
            not_after: dto::rfc3339(c.not_after),
            source: c.source.clone(),
        }
    }
}

/// Whatever knows the certificates in use. Called per request and per scrape: keep it cheap
/// (return what was parsed when the certificate was loaded; do not re-read files).
pub trait CertificateSource: Send + Sync + 'static {
    /// The certificates in use now.
    fn certificates(&self) -> Vec<CertificateReport>;
}

/// The broker's certificates: each TLS port's served chain (leaf first) and trusted client
/// CAs, from the supervisor's status (refreshed whenever it resolves a port: start, reload,
/// renewal), then the trust bundle's certificates. Nothing is re-read per request.
pub struct ServedCertificates {
    status: Arc<RwLock<Status>>,
    tls: Option<Arc<TlsContext>>,
}

impl ServedCertificates {
    /// The certificates of the ports in `status`, and of `tls`'s trust bundle when given.
    pub fn new(status: Arc<RwLock<Status>>, tls: Option<Arc<TlsContext>>) -> Self {
        Self { status, tls }
    }
}

impl fmt::Debug for ServedCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServedCertificates")
    }
}

impl CertificateSource for ServedCertificates {
    fn certificates(&self) -> Vec<CertificateReport> {
        let mut out = Vec::new();
        for (n, p) in &self.status.read().ports {
            for info in &p.certificates {
                out.push(CertificateReport::from_info(
                    info,
                    p.spec.name.clone(),
                    Some(*n),
                ));
            }
            for info in &p.client_cas {
                let used_by = format!("{} client CA", p.spec.name);
                out.push(CertificateReport::from_info(info, used_by, Some(*n)));
            }
        }
        if let Some(tls) = &self.tls {
            for ca in tls.trust_bundle() {
                out.push(CertificateReport::from_info(
                    &ca,
                    "trust bundle".to_string(),
                    None,
                ));
            }
        }
        out
    }
}

/// Exports `wardgate_certificate_expiry_timestamp_seconds` and `wardgate_certificate_expired`
/// (1 past notAfter), each `{used_by, port, subject, serial, source}`.
pub(super) struct CertificateCollector(pub(super) Arc<dyn CertificateSource>);

impl fmt::Debug for CertificateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateCollector")
    }
}

impl Collector for CertificateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let now = SystemTime::now();
        let series: Vec<_> = self
            .0
            .certificates()
            .into_iter()
            .map(|c| {
                let not_after = c
                    .not_after
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let expired = i64::from(c.expired_at(now));
                let labels = [
                    ("used_by", c.used_by),
                    ("port", c.port.map(|p| p.to_string()).unwrap_or_default()),
                    ("subject", c.subject),
                    ("serial", c.serial),
                    ("source", c.source),
                ];
                (labels, not_after, expired)
            })
            .collect();
        let expiry: Vec<_> = series.iter().map(|(l, t, _)| (l.clone(), *t)).collect();
        gauge_family(
            &mut encoder,
            "certificate_expiry_timestamp_seconds",
            "When each certificate in use expires (notAfter), in seconds since the Unix epoch",
            &expiry,
        )?;
        let expired: Vec<_> = series.into_iter().map(|(l, _, x)| (l, x)).collect();
        gauge_family(
            &mut encoder,
            "certificate_expired",
            "1 for a certificate in use past its notAfter, 0 otherwise",
            &expired,
        )?;
        Ok(())
    }
}
