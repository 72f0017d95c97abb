//! The load-time checks of SPEC.md §6.1 and §6.3: a server chain is leaf first, each
//! intermediate a real CA, the key the leaf's; a trusted client CA bundle holds CAs. Errors say
//! which certificate, what is wrong and how to fix it; problems clients survive become warnings.

use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::cert::{CertificateInfo, Validity, format_time, issued, parse};
use super::issue::{CA_FIX, check_key_matches, why_not_ca};
use super::{PkiError, pem};

/// A server chain and key that passed the checks.
#[derive(Debug)]
pub struct ServerChain {
    /// Leaf first, then intermediates.
    pub certs: Vec<CertificateDer<'static>>,
    /// The key of the leaf.
    pub key: PrivateKeyDer<'static>,
    /// What each certificate says, in the same order.
    pub infos: Vec<CertificateInfo>,
    /// Problems clients may survive (expired, not yet valid, no SAN, ...).
    pub warnings: Vec<String>,
}

/// Reads and checks a server certificate chain and its key, as a `kubernetes.io/tls` Secret
/// holds them. `crt_what`/`key_what` name the two inputs in messages.
pub fn server_chain(
    crt: &[u8],
    crt_what: &str,
    key: &[u8],
    key_what: &str,
    provider: &CryptoProvider,
) -> Result<ServerChain, PkiError> {
    let certs = pem::certificates(crt, crt_what)?;
    let key = pem::private_key(key, key_what)?;
    let mut infos = Vec::with_capacity(certs.len());
    for (i, c) in certs.iter().enumerate() {
        infos.push(CertificateInfo::from_der(
            c,
            &format!("{crt_what}: certificate {}", i + 1),
        )?);
    }
    let n = certs.len();
    let label = |i: usize| {
        if n == 1 {
            format!("the certificate ({})", infos[i].name())
        } else {
            format!("certificate {} of {n} ({})", i + 1, infos[i].name())
        }
    };

    // The key belongs to the leaf; if it belongs to another certificate, the order is wrong.
    match check_key_matches(&certs[0], &key, provider) {
        Ok(()) => {}
        Err(PkiError::KeyMismatch(_)) => {
            let other = (1..n).find(|&i| check_key_matches(&certs[i], &key, provider).is_ok());
            return Err(match other {
                Some(i) => PkiError::WrongOrder(format!(
                    "{crt_what}: the chain is in the wrong order: {key_what} is the key of {}, \
                     not of the first certificate ({}). Put the server certificate first, then \
                     its issuer, then that one's issuer (leaf first).",
                    label(i),
                    infos[0].name()
                )),
                None => PkiError::KeyMismatch(format!(
                    "{key_what} does not match the first certificate in {crt_what} ({}): the key \
                     belongs to another certificate",
                    infos[0].name()
                )),
            });
        }
        Err(PkiError::BadKey { message, .. }) => return Err(PkiError::key(key_what, message)),
        Err(e) => return Err(e),
    }

    let mut warnings = Vec::new();
    // A CA first: a chain in the wrong order, unless it is a lone self-signed certificate.
    if infos[0].is_ca {
        if n > 1 {
            let leaf = (1..n).find(|&i| !infos[i].is_ca);
            return Err(PkiError::WrongOrder(match leaf {
                Some(i) => format!(
                    "{crt_what}: the chain is in the wrong order: the first certificate ({}) is \
                     a CA certificate and {} is the server certificate. Put the server \
                     certificate first, then its issuer, then that one's issuer (leaf first).",
                    infos[0].name(),
                    label(i)
                ),
                None => format!(
                    "{crt_what}: the first certificate ({}) is a CA certificate, not a server \
                     certificate: the chain is in the wrong order or lacks the server \
                     certificate. {crt_what} must start with the server (leaf) certificate.",
                    infos[0].name()
                ),
            }));
        }
        warnings.push(format!(
            "{crt_what}: {} is a CA certificate used as the server certificate: OpenSSL-based \
             clients (mosquitto) accept it with --cafile, but rustls, Go and browser clients \
             reject a CA as a server certificate; make a server leaf (`wardgate cert server`)",
            label(0)
        ));
    }

    // Every later certificate that issued something must be a CA: the X.509 v1 intermediate
    // that `openssl x509 -req` makes without -extfile is rejected by every client.
    let parsed: Vec<_> = certs
        .iter()
        .map(|c| parse(c, crt_what))
        .collect::<Result<_, _>>()?;
    if let Some(i) = (1..n).find(|&i| !infos[i].is_ca && !infos[i].self_signed) {
        return Err(PkiError::NotACa(format!(
            "{crt_what}: {} is not a CA certificate ({}), so TLS clients reject the chain \
             (\"invalid CA certificate\"). {CA_FIX}",
            label(i),
            why_not_ca(&infos[i])
        )));
    }
    // Each certificate should be followed by its issuer; clients cope with extra or misplaced
    // intermediates, so this is a warning.
    for i in 0..n.saturating_sub(1) {
        if !issued(&parsed[i], &parsed[i + 1]) {
            let issuer_at = (0..n).find(|&j| j != i && issued(&parsed[i], &parsed[j]));
            warnings.push(match issuer_at {
                Some(j) => format!(
                    "{crt_what}: the intermediates are out of order: the issuer of {} is {}, \
                     not the next certificate; most clients cope, but order them leaf first, \
                     each followed by its issuer",
                    label(i),
                    label(j)
                ),
                None => format!(
                    "{crt_what}: {} was not issued by the next certificate, {} (its issuer is \
                     {}); the chain has an unrelated certificate or a gap",
                    label(i),
                    label(i + 1),
                    infos[i].issuer
                ),
            });
        }
    }
    let leaf = &infos[0];
    if leaf.version < 3 {
        warnings.push(format!(
            "{crt_what}: {} is an X.509 v{} certificate (what `openssl x509 -req` makes without \
             -extfile): OpenSSL-based clients accept it, but rustls and other strict clients \
             reject it; re-issue it with extensions (`wardgate cert server`)",
            label(0),
            leaf.version
        ));
    }
    if leaf.sans.is_empty() {
        warnings.push(format!(
            "{crt_what}: {} has no subjectAltName: clients ignore the CN and reject it for every \
             host name; re-issue it with the names and IPs clients dial (`wardgate cert server \
             --san ...`)",
            label(0)
        ));
    }
    if !leaf.allows_server_auth() {
        warnings.push(format!(
            "{crt_what}: {} does not allow TLS server use (extended key usage {}); clients will \
             reject it",
            label(0),
            leaf.extended_key_usages
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    warnings.extend(validity_warnings(&infos, crt_what, SystemTime::now()));
    Ok(ServerChain {
        certs,
        key,
        infos,
        warnings,
    })
}

/// "expired" / "not yet valid" warnings for the certificates of a served chain.
pub(crate) fn validity_warnings(
    infos: &[CertificateInfo],
    what: &str,
    now: SystemTime,
) -> Vec<String> {
    let n = infos.len();
    infos
        .iter()
        .enumerate()
        .filter_map(|(i, info)| {
            let which = if n == 1 {
                format!("the certificate ({})", info.name())
            } else {
                format!("certificate {} of {n} ({})", i + 1, info.name())
            };
            match info.validity_at(now) {
                Validity::Valid => None,
                Validity::Expired => Some(format!(
                    "{what}: {which} expired on {}; it is served, but clients will reject it",
                    format_time(info.not_after)
                )),
                Validity::NotYetValid => Some(format!(
                    "{what}: {which} is not valid before {}; it is served, but clients will \
                     reject it until then (check the clocks)",
                    format_time(info.not_before)
                )),
            }
        })
        .collect()
}

/// The certificates of a trusted-CA bundle (a ConfigMap value, a `--cafile`), each checked to be
/// usable as a trust anchor: a CA, or a self-signed certificate. A non-CA that is not
/// self-signed (the X.509 v1 intermediate) would make a chain no client builds.
pub fn ca_bundle(input: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = pem::certificates(input, what)?;
    let n = certs.len();
    for (i, c) in certs.iter().enumerate() {
        let info = CertificateInfo::from_der(c, what)?;
        if !info.is_ca && !info.self_signed {
            let which = if n == 1 {
                format!("the certificate ({})", info.name())
            } else {
                format!("certificate {} of {n} ({})", i + 1, info.name())
            };
            return Err(PkiError::NotACa(format!(
                "{what}: {which} is not a CA certificate ({}), so client certificates it issued \
                 cannot be verified. {CA_FIX}",
                why_not_ca(&info)
            )));
        }
    }
    Ok(certs)
}
