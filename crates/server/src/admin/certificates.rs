//! Certificates in the admin API and metrics: the plug-point the TLS layer fills.
//!
//! Extension point: the TLS layer implements [`CertificateSource`] over whatever it loaded or
//! issued and hands it to [`AdminState::with_certificates`](super::AdminState::with_certificates).
//! That one call makes `GET /api/v1/certificates` list them, `wardgate status` print them, and
//! `/metrics` export `wardgate_certificate_expiry_timestamp_seconds` for each. Until then the list
//! is empty.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::dto;

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

impl From<&CertificateReport> for dto::Certificate {
    fn from(c: &CertificateReport) -> Self {
        dto::Certificate {
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

/// Exports `wardgate_certificate_expiry_timestamp_seconds{used_by, port, subject, source}`.
pub(super) struct CertificateCollector(pub(super) Arc<dyn CertificateSource>);

impl fmt::Debug for CertificateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateCollector")
    }
}

impl Collector for CertificateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "certificate_expiry_timestamp_seconds",
            "When each certificate in use expires (notAfter), in seconds since the Unix epoch",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for c in self.0.certificates() {
            let not_after = c
                .not_after
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let labels = [
                ("used_by", c.used_by),
                ("port", c.port.map(|p| p.to_string()).unwrap_or_default()),
                ("subject", c.subject),
                ("source", c.source),
            ];
            ConstGauge::new(not_after).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
