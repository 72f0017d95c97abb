//! `tls.mode: Automatic` on a cluster with cert-manager ([`super::AutomaticIssuance::CertManager`]):
//! the in-cluster mode creates a cert-manager `Certificate` for the port, cert-manager writes the
//! `kubernetes.io/tls` Secret `secretName`, and the port serves that Secret with the checks of a
//! manual one (SPEC.md §6.1). While the Secret does not exist the port waits, as AIO's does, with
//! `Server certificate <secretName> not found. Awaiting creation of secret.`

use rustls::crypto::CryptoProvider;
use wardgate_config::model::{AutomaticTls, ManualTls, Model};

use super::{ServerCert, TlsOutcome, TrustAnchor, manual};
use crate::pki::pem;

pub(super) fn resolve(
    model: &Model,
    a: &AutomaticTls,
    provider: &CryptoProvider,
) -> Result<ServerCert, TlsOutcome> {
    let name = &a.secret_name;
    let manual = ManualTls {
        secret_ref: name.clone(),
    };
    let mut cert = manual::resolve(model, &manual, provider)?;
    let source = format!(
        "Secret/{name} (cert-manager, {}/{})",
        a.issuer_ref.kind, a.issuer_ref.name
    );
    for info in &mut cert.infos {
        info.source.clone_from(&source);
    }
    // cert-manager writes the issuing CA (the root, for a CA issuer) to `ca.crt`: that is what
    // clients trust. Without it, the chain's own root, as for a manual Secret.
    let ca = model
        .secrets
        .get(name)
        .and_then(|s| s.get("ca.crt"))
        .and_then(|b| pem::certificates(b, "ca.crt").ok())
        .filter(|certs| !certs.is_empty());
    if let Some(certs) = ca {
        cert.anchors = certs
            .into_iter()
            .map(|der| TrustAnchor {
                der,
                source: format!("ca.crt of {source}"),
            })
            .collect();
    }
    Ok(cert)
}
