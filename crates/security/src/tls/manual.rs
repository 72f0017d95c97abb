//! `tls.manual.secretRef`: the server chain and key from a `kubernetes.io/tls` Secret, with the
//! checks of SPEC.md §6.1 (`pki::chain::server_chain`).

use rustls::crypto::CryptoProvider;
use wardgate_config::model::{ManualTls, Model};

use super::{ServerCert, TlsOutcome, TrustAnchor, certified_key};
use crate::pki::chain;

pub(super) fn resolve(
    model: &Model,
    m: &ManualTls,
    provider: &CryptoProvider,
) -> Result<ServerCert, TlsOutcome> {
    let name = &m.secret_ref;
    let Some(secret) = model.secrets.get(name) else {
        return Err(TlsOutcome::AwaitingSecret {
            secret: name.clone(),
            message: format!("Server certificate {name} not found. Awaiting creation of secret."),
        });
    };
    let failed = |reason: String| TlsOutcome::Failed {
        reason: format!("Secret/{name}: {reason}"),
    };
    let (Some(crt), Some(key)) = (secret.get("tls.crt"), secret.get("tls.key")) else {
        let missing: Vec<&str> = ["tls.crt", "tls.key"]
            .into_iter()
            .filter(|k| secret.get(k).is_none())
            .collect();
        return Err(failed(format!(
            "has no {} (a server certificate Secret is `kubernetes.io/tls` with tls.crt and \
             tls.key: `wardgate create secret tls {name} --cert FILE --key FILE`)",
            missing.join(" or ")
        )));
    };
    let checked = chain::server_chain(crt, "tls.crt", key, "tls.key", provider)
        .map_err(|e| failed(e.to_string()))?;
    let mut infos = checked.infos;
    for i in &mut infos {
        i.source = format!("Secret/{name}");
    }
    // The trust bundle gets the chain's root when the chain ends with it; a chain that stops
    // below its root names no CA clients could trust from here.
    let anchors = match (checked.certs.last(), infos.last()) {
        (Some(der), Some(info)) if info.self_signed => vec![TrustAnchor {
            der: der.clone(),
            source: format!("root of Secret/{name}"),
        }],
        _ => Vec::new(),
    };
    let key = certified_key(checked.certs, checked.key, provider).map_err(failed)?;
    Ok(ServerCert {
        key,
        infos,
        warnings: checked
            .warnings
            .into_iter()
            .map(|w| format!("Secret/{name}: {w}"))
            .collect(),
        renew_at: None,
        anchors,
    })
}
