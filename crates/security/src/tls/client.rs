//! Client certificates (SPEC.md §6.3): when a port's authentication has an X509 method, the
//! handshake asks for a certificate (optional) and verifies a presented chain against every
//! certificate of the `trustedClientCaCert` ConfigMap (any key, several PEMs per key, root or
//! intermediate as anchor). A rejection is logged with the subjects and the reason; the
//! verified chain is read back with [`client_identity`] for authentication.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, UnixTime};
use wardgate_config::model::{AuthnMethod, ListenerPort, Model};

use super::TlsOutcome;
use crate::pki::cert::{
    CertificateInfo, DistinguishedName as Dn, Validity, format_time, to_system_time,
};
use crate::pki::chain;
use crate::pki::issue::why_not_ca;

/// The client side of a port's TLS.
pub(super) struct ClientAuth {
    pub(super) verifier: Arc<dyn ClientCertVerifier>,
    pub(super) cas: Vec<CertificateInfo>,
}

/// The verifier for a port, `None` when its authentication has no X509 method.
pub(super) fn verifier(
    model: &Model,
    port: &ListenerPort,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<ClientAuth>, TlsOutcome> {
    let Some(auth) = port
        .authentication_ref
        .as_ref()
        .and_then(|a| model.authentications.get(a))
    else {
        return Ok(None);
    };
    let mut names: Vec<&str> = Vec::new();
    for m in &auth.methods {
        if let AuthnMethod::X509(x) = m
            && !names.contains(&x.trusted_client_ca_cert.as_str())
        {
            names.push(&x.trusted_client_ca_cert);
        }
    }
    if names.is_empty() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut cas = Vec::new();
    for name in &names {
        let Some(cm) = model.config_maps.get(*name) else {
            return Err(TlsOutcome::AwaitingConfigMap {
                name: (*name).to_owned(),
                message: format!(
                    "Trusted client CA certificate {name} not found. Awaiting creation of \
                     configmap."
                ),
            });
        };
        let before = cas.len();
        for (key, value) in cm.values() {
            let what = format!("ConfigMap/{name} key {key}");
            let certs = chain::ca_bundle(value, &what).map_err(|e| TlsOutcome::Failed {
                reason: format!("BrokerAuthentication/{}: {e}", auth.name),
            })?;
            for c in certs {
                let mut info =
                    CertificateInfo::from_der(&c, &what).map_err(|e| TlsOutcome::Failed {
                        reason: e.to_string(),
                    })?;
                roots.add(c).map_err(|e| TlsOutcome::Failed {
                    reason: format!("{what}: {} cannot be a trust anchor ({e})", info.name()),
                })?;
                info.source = format!("ConfigMap/{name}");
                cas.push(info);
            }
        }
        if cas.len() == before {
            return Err(TlsOutcome::Failed {
                reason: format!(
                    "ConfigMap/{name} holds no certificate: put the client CA's PEM under any key \
                     (`wardgate create configmap {name} --from-file=client_ca.pem=ca.crt`)"
                ),
            });
        }
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsOutcome::Failed {
            reason: format!("the trusted client CAs: {e}"),
        })?;
    let trusted = cas
        .iter()
        .map(CertificateInfo::name)
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Some(ClientAuth {
        verifier: Arc::new(ExplainingVerifier {
            inner,
            trusted,
            config_maps: names.join(", "),
        }),
        cas,
    }))
}

/// webpki's verifier, plus a log line that says which certificate was rejected and why.
#[derive(Debug)]
struct ExplainingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trusted: String,
    config_maps: String,
}

impl ClientCertVerifier for ExplainingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result {
            let reason = self.explain(end_entity, intermediates, e);
            tracing::warn!(
                error = %e,
                trusted_client_cas = %self.config_maps,
                "client certificate rejected: {reason}"
            );
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl ExplainingVerifier {
    fn explain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        e: &rustls::Error,
    ) -> String {
        let Ok(leaf) = CertificateInfo::from_der(end_entity, "client certificate") else {
            return "the client certificate does not parse as X.509".to_owned();
        };
        let mut parsed = Vec::new();
        for (i, c) in intermediates.iter().enumerate() {
            match CertificateInfo::from_der(c, "intermediate") {
                Ok(info) => parsed.push(info),
                Err(_) => {
                    return format!(
                        "{}: intermediate {} sent by the client does not parse as X.509",
                        leaf.name(),
                        i + 1
                    );
                }
            }
        }
        let who = format!("{} (issued by {})", leaf.name(), leaf.issuer);
        if let Some(v1) = std::iter::once(&leaf)
            .chain(parsed.iter())
            .find(|i| i.version < 3)
        {
            return format!(
                "{who}: {} is an X.509 v{} certificate (what `openssl x509 -req` makes without \
                 -extfile); only v3 certificates are accepted. Re-sign it with `-extfile` (for a \
                 client: `extendedKeyUsage=clientAuth`; for a CA: \
                 `basicConstraints=critical,CA:TRUE`), or make it with `wardgate cert client`",
                v1.name(),
                v1.version
            );
        }
        if let Some(bad) = parsed.iter().find(|i| !i.is_ca && !i.self_signed) {
            return format!(
                "{who}: the intermediate {} it sent is not a CA certificate ({}), so no chain \
                 can be built through it; re-sign that intermediate as a CA \
                 (`basicConstraints=critical,CA:TRUE`, or `wardgate cert intermediate`)",
                bad.name(),
                why_not_ca(bad)
            );
        }
        let now = SystemTime::now();
        for info in std::iter::once(&leaf).chain(parsed.iter()) {
            match info.validity_at(now) {
                Validity::Expired => {
                    return format!(
                        "{who}: {} expired on {}",
                        info.name(),
                        format_time(info.not_after)
                    );
                }
                Validity::NotYetValid => {
                    return format!(
                        "{who}: {} is not valid before {}",
                        info.name(),
                        format_time(info.not_before)
                    );
                }
                Validity::Valid => {}
            }
        }
        match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "{who}: no chain to a trusted client CA (trusted: {}). If it was issued by an \
                 intermediate, the client must send that intermediate after its certificate \
                 (mosquitto: a --cert file holding both, as `wardgate cert client --bundle` \
                 writes it)",
                self.trusted
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            ) => format!(
                "{who}: it does not allow TLS client use (extended key usage without clientAuth)"
            ),
            other => format!("{who}: {other}"),
        }
    }
}

/// One certificate of a client's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCertificate {
    /// Subject.
    pub subject: Dn,
    /// Issuer.
    pub issuer: Dn,
    /// End of validity.
    pub not_after: SystemTime,
}

/// A client's certificate chain as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Leaf first, then the intermediates the client sent. The trust anchor is the issuer of
    /// the last one (`chain.last().issuer`) unless the client sent it too.
    pub chain: Vec<ChainCertificate>,
    /// The leaf's subject CN: the MQTT username of X509 authentication.
    pub common_name: Option<String>,
    /// The earliest notAfter of the chain: when the credential expires.
    pub not_after: SystemTime,
}

impl ClientCertificate {
    /// The leaf.
    pub fn leaf(&self) -> &ChainCertificate {
        &self.chain[0]
    }
}

/// Reads a verified client chain (rustls `ServerConnection::peer_certificates()`), leaf first.
/// `None` when there is no certificate or one does not parse (which verification would have
/// refused).
pub fn client_identity(certs: &[CertificateDer<'_>]) -> Option<ClientCertificate> {
    let mut chain = Vec::with_capacity(certs.len());
    for c in certs {
        let cert = crate::pki::cert::parse(c, "client certificate").ok()?;
        chain.push(ChainCertificate {
            subject: Dn::from_x509(cert.subject()),
            issuer: Dn::from_x509(cert.issuer()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
        });
    }
    let leaf = chain.first()?;
    let common_name = leaf.subject.common_name().map(str::to_owned);
    let not_after = chain.iter().map(|c| c.not_after).min()?;
    Some(ClientCertificate {
        chain,
        common_name,
        not_after,
    })
}
