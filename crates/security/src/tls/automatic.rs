//! `tls.mode: Automatic`: a server certificate issued from the port's issuer (the quickstart
//! CA, a `selfSigned` issuer, or a `ca.secretName` issuer), with every field of
//! `certManagerCertificateSpec` (SPEC.md §6.2). It is stored in the data dir under its
//! `secretName` and reused while it is valid, not due, and still what the spec asks for; this
//! is checked on the certificate itself (names, key algorithm, lifetime, issuer signature), so
//! there is no separate record to drift.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use wardgate_config::model::{
    AutomaticTls, Certificate, Issuer, IssuerSource, Listener, Model, RotationPolicy,
};

use super::{ServerCert, TlsOutcome, TrustAnchor, certified_key};
use crate::pki::cert::{CertificateInfo, SubjectAltName, format_time, issued, parse};
use crate::pki::issue::{BACKDATE, CertRequest, Key, Profile, Signer, check_key_matches};
use crate::pki::store::{self, Layout, QuickstartCa, Stored};
use crate::pki::{ExtendedKeyUsage, chain};

pub(super) struct Ctx<'a> {
    pub(super) layout: &'a Layout,
    pub(super) provider: &'a Arc<CryptoProvider>,
    pub(super) quickstart: &'a QuickstartCa,
    pub(super) host_names: &'a [String],
    pub(super) namespace: &'a str,
}

/// What the certificate must be.
#[derive(Debug)]
struct Want {
    common_name: String,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    spec: AutomaticTls,
}

pub(super) fn resolve(
    ctx: &Ctx<'_>,
    model: &Model,
    listener: &Listener,
    a: &AutomaticTls,
) -> Result<ServerCert, TlsOutcome> {
    let r = &a.issuer_ref;
    let Some(issuer) = model.issuers.get(&(r.kind, r.name.clone())) else {
        return Err(TlsOutcome::AwaitingIssuer {
            kind: r.kind.to_string(),
            name: r.name.clone(),
            message: format!("Issuer {}/{} not found", r.kind, r.name),
        });
    };
    let label = format!("{}/{}", issuer.kind, issuer.name);
    let owned;
    let mut ca_renew_at = None;
    let mut anchors = Vec::new();
    let ca: Option<&Signer> = match &issuer.source {
        IssuerSource::Quickstart => {
            ca_renew_at = Some(ctx.quickstart.rotate_at);
            let source = format!("quickstart CA ({})", ctx.layout.trust_bundle.display());
            anchors.extend(ctx.quickstart.trusted.iter().map(|der| TrustAnchor {
                der: der.clone(),
                source: source.clone(),
            }));
            Some(&ctx.quickstart.signer)
        }
        IssuerSource::SelfSigned => None,
        IssuerSource::Ca { secret_name } => {
            let (signer, renew_at) = ca_from_secret(ctx, model, issuer, secret_name, 0)?;
            owned = signer;
            ca_renew_at = renew_at;
            anchors = ca_anchors(model, secret_name, &owned, &label);
            Some(&owned)
        }
    };
    let failed = |reason: String| TlsOutcome::Failed {
        reason: format!(
            "automatic certificate {} from {label}: {reason}",
            a.secret_name
        ),
    };
    let want = want(ctx, listener, a);
    let now = SystemTime::now();
    let stored = store::load_issued(ctx.layout, &a.secret_name);
    let verdict = match &stored {
        None => Err("no certificate stored yet".to_owned()),
        Some(s) => check_reuse(s, &want, ca, now, ctx.provider),
    };
    let (chain, key) = match (verdict, stored) {
        (Ok(()), Some(s)) => (s.chain, s.key),
        (verdict, stored) => {
            let why = verdict.err().unwrap_or_default();
            let (chain, key) = issue(&want, ca, stored.as_ref(), now).map_err(failed)?;
            let ca_cert = ca.map_or(&chain[0], |s| s.certificate());
            store::save_issued(ctx.layout, &a.secret_name, &chain, key.der(), ca_cert)
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(
                secret = %a.secret_name,
                issuer = %label,
                reason = %why,
                "issued server certificate"
            );
            (chain, key.der().clone_key())
        }
    };
    let mut infos = Vec::with_capacity(chain.len());
    for (i, c) in chain.iter().enumerate() {
        let mut info =
            CertificateInfo::from_der(c, &a.secret_name).map_err(|e| failed(e.to_string()))?;
        info.source = if i == 0 {
            format!("issued by {label}")
        } else {
            format!("CA of {label}")
        };
        infos.push(info);
    }
    let mut renew_at = renewal_time(&infos[0], a.renew_before);
    if let Some(t) = ca_renew_at {
        renew_at = renew_at.min(t);
    }
    let mut warnings =
        chain::validity_warnings(&infos, &format!("certificate {}", a.secret_name), now);
    if let Some(s) = ca {
        let capped = infos[0].not_after >= s.info().not_after;
        if capped {
            warnings.push(format!(
                "certificate {}: it ends on {} with its CA {} of {label}, before its duration; \
                 renew the CA",
                a.secret_name,
                format_time(infos[0].not_after),
                s.info().name()
            ));
        }
    }
    if ca.is_none() {
        // Self-signed: clients trust the certificate itself.
        anchors.push(TrustAnchor {
            der: chain[0].clone(),
            source: format!("self-signed certificate {} of {label}", a.secret_name),
        });
    }
    let key = certified_key(chain, key, ctx.provider).map_err(failed)?;
    Ok(ServerCert {
        key,
        infos,
        warnings,
        renew_at: Some(renew_at),
        anchors,
    })
}

/// What clients trust for certificates of a `ca.secretName` issuer: the root its chain ends
/// with (a bootstrapped CA's chain reaches its root); otherwise the Secret's `ca.crt` (where
/// cert-manager keeps the root); otherwise the top of its chain.
fn ca_anchors(model: &Model, secret_name: &str, signer: &Signer, label: &str) -> Vec<TrustAnchor> {
    let top = signer.chain().last().unwrap_or(signer.certificate());
    let self_signed = CertificateInfo::from_der(top, "CA").is_ok_and(|i| i.self_signed);
    let source = format!("CA of {label}");
    if !self_signed
        && let Some(certs) = model
            .secrets
            .get(secret_name)
            .and_then(|s| s.get("ca.crt"))
            .and_then(|b| crate::pki::pem::certificates(b, "ca.crt").ok())
    {
        return certs
            .into_iter()
            .map(|der| TrustAnchor {
                der,
                source: format!("{source} (Secret/{secret_name} ca.crt)"),
            })
            .collect();
    }
    vec![TrustAnchor {
        der: top.clone(),
        source,
    }]
}

/// The CA of a `ca.secretName` issuer: from its `kubernetes.io/tls` Secret, or, when a
/// cert-manager `Certificate` of the configuration writes that Secret (the bootstrapping of
/// `seeds/000_…`: a `selfSigned` issuer, an `isCA` Certificate, a `ca` issuer), issued here and
/// kept in the data dir like any automatic certificate. Also returns when such a bootstrapped CA
/// is due for renewal.
fn ca_from_secret(
    ctx: &Ctx<'_>,
    model: &Model,
    issuer: &Issuer,
    secret_name: &str,
    depth: usize,
) -> Result<(Signer, Option<SystemTime>), TlsOutcome> {
    match ca_source(model, issuer, secret_name, ctx.provider)? {
        CaSource::Secret(signer) => Ok((*signer, None)),
        CaSource::Certificate(c) => bootstrap_ca(ctx, model, c, depth),
    }
}

/// Where the CA of a `ca.secretName` issuer comes from.
enum CaSource<'m> {
    /// Its Secret, loaded and checked.
    Secret(Box<Signer>),
    /// A cert-manager `Certificate` of the configuration that writes the Secret.
    Certificate(&'m Certificate),
}

/// Finds and loads (with every check) the CA Secret of a `ca.secretName` issuer, or the
/// `Certificate` that will write it; what `serve` and `validate` both report.
fn ca_source<'m>(
    model: &'m Model,
    issuer: &Issuer,
    secret_name: &str,
    provider: &CryptoProvider,
) -> Result<CaSource<'m>, TlsOutcome> {
    let label = format!("{}/{}", issuer.kind, issuer.name);
    let Some(secret) = model.secrets.get(secret_name) else {
        if let Some(c) = model
            .certificates
            .values()
            .find(|c| c.secret_name == secret_name)
        {
            return Ok(CaSource::Certificate(c));
        }
        return Err(TlsOutcome::AwaitingSecret {
            secret: secret_name.to_owned(),
            message: format!(
                "CA certificate {secret_name} of {label} not found. Awaiting creation of secret."
            ),
        });
    };
    let failed = |reason: String| TlsOutcome::Failed {
        reason: format!("{label}: Secret/{secret_name}: {reason}"),
    };
    let (Some(crt), Some(key)) = (secret.get("tls.crt"), secret.get("tls.key")) else {
        return Err(failed(
            "a CA issuer's Secret needs tls.crt (the CA certificate) and tls.key (its key)"
                .to_owned(),
        ));
    };
    let signer = Signer::from_pem(crt, "tls.crt", key, "tls.key", provider)
        .map_err(|e| failed(e.to_string()))?;
    Ok(CaSource::Secret(Box::new(signer)))
}

/// The issuer of a CA `Certificate` that a `ca` issuer bootstraps from, after the checks made
/// before anything is issued: it is `isCA: true`, no loop, the issuer exists.
fn certificate_issuer<'m>(
    model: &'m Model,
    c: &Certificate,
    depth: usize,
) -> Result<&'m Issuer, TlsOutcome> {
    let failed = |reason: &str| TlsOutcome::Failed {
        reason: format!(
            "Certificate/{} (Secret {}): {reason}",
            c.name, c.secret_name
        ),
    };
    if !c.is_ca {
        return Err(failed(
            "a ca issuer uses this Certificate's Secret, but the Certificate is not `isCA: true`",
        ));
    }
    if depth > 4 {
        return Err(failed(
            "issuers and CA Certificates refer to each other in a loop",
        ));
    }
    let r = &c.issuer_ref;
    model
        .issuers
        .get(&(r.kind, r.name.clone()))
        .ok_or_else(|| TlsOutcome::AwaitingIssuer {
            kind: r.kind.to_string(),
            name: r.name.clone(),
            message: format!("Issuer {}/{} not found", r.kind, r.name),
        })
}

/// What [`resolve`] would find wrong with the issuer of an automatic certificate, without
/// issuing or storing anything (`wardgate validate`): a missing issuer, an unusable CA Secret
/// (not a CA, a key that is not its key), a CA Certificate that is not `isCA`.
pub(super) fn check(
    model: &Model,
    a: &AutomaticTls,
    provider: &CryptoProvider,
) -> Result<(), TlsOutcome> {
    let r = &a.issuer_ref;
    let Some(mut issuer) = model.issuers.get(&(r.kind, r.name.clone())) else {
        return Err(TlsOutcome::AwaitingIssuer {
            kind: r.kind.to_string(),
            name: r.name.clone(),
            message: format!("Issuer {}/{} not found", r.kind, r.name),
        });
    };
    // Iterative, bounded by certificate_issuer's depth check.
    let mut depth = 0;
    loop {
        let IssuerSource::Ca { secret_name } = &issuer.source else {
            return Ok(());
        };
        match ca_source(model, issuer, secret_name, provider)? {
            CaSource::Secret(_) => return Ok(()),
            CaSource::Certificate(c) => {
                issuer = certificate_issuer(model, c, depth)?;
                depth += 1;
            }
        }
    }
}

/// Issues (or reuses) the CA certificate of a cert-manager `Certificate` with `isCA: true`.
fn bootstrap_ca(
    ctx: &Ctx<'_>,
    model: &Model,
    c: &Certificate,
    depth: usize,
) -> Result<(Signer, Option<SystemTime>), TlsOutcome> {
    let label = format!("Certificate/{}", c.name);
    let failed = |reason: String| TlsOutcome::Failed {
        reason: format!("{label} (Secret {}): {reason}", c.secret_name),
    };
    let issuer = certificate_issuer(model, c, depth)?;
    let owned;
    let mut parent_renew_at = None;
    let parent: Option<&Signer> = match &issuer.source {
        IssuerSource::Quickstart => {
            parent_renew_at = Some(ctx.quickstart.rotate_at);
            Some(&ctx.quickstart.signer)
        }
        IssuerSource::SelfSigned => None,
        IssuerSource::Ca { secret_name } => {
            let (s, t) = ca_from_secret(ctx, model, issuer, secret_name, depth + 1)?;
            owned = s;
            parent_renew_at = t;
            Some(&owned)
        }
    };
    let cn = c.common_name.clone().unwrap_or_else(|| c.name.clone());
    let now = SystemTime::now();
    let alg = c.private_key.algorithm;
    let stored = store::load_issued(ctx.layout, &c.secret_name);
    let reusable = stored.as_ref().is_some_and(|s| {
        let Some(leaf) = s.chain.first() else {
            return false;
        };
        let Ok(info) = CertificateInfo::from_der(leaf, "stored CA") else {
            return false;
        };
        let issued_right = match parent {
            Some(p) => crate::pki::cert::is_issued_by(leaf, p.certificate()),
            None => info.self_signed,
        };
        check_key_matches(leaf, &s.key, ctx.provider).is_ok()
            && info.is_ca
            && info.subject.common_name() == Some(cn.as_str())
            && info.key_type.algorithm() == Some(alg)
            && issued_right
            && now >= info.not_before
            && now < renewal_time(&info, c.renew_before)
    });
    let (chain, key) = match stored {
        Some(s) if reusable => (
            s.chain,
            Key::from_der(s.key, "stored key").map_err(|e| failed(e.to_string()))?,
        ),
        stored => {
            let kept = match (c.private_key.rotation_policy, stored) {
                (RotationPolicy::Never, Some(s)) => Key::from_der(s.key, "stored key")
                    .ok()
                    .filter(|k| k.algorithm() == Some(alg)),
                _ => None,
            };
            let key = match kept {
                Some(k) => k,
                None => Key::generate(alg).map_err(|e| failed(e.to_string()))?,
            };
            let now = crate::pki::issue::truncate_to_seconds(now);
            let req = CertRequest {
                common_name: cn.clone(),
                organization: c.organizations.first().cloned(),
                dns_names: c.dns_names.clone(),
                ip_addresses: c.ip_addresses.clone(),
                not_before: now - BACKDATE,
                not_after: now + c.duration,
                profile: match parent {
                    Some(_) => Profile::IntermediateCa { path_len: None },
                    None => Profile::RootCa,
                },
            };
            let mut chain = Vec::new();
            match parent {
                Some(p) => {
                    chain.push(p.issue(&req, &key).map_err(|e| failed(e.to_string()))?);
                    chain.extend(p.chain().iter().cloned());
                }
                None => chain.push(
                    crate::pki::issue::self_signed(&req, &key)
                        .map_err(|e| failed(e.to_string()))?,
                ),
            }
            let root = chain.last().cloned().unwrap_or_else(|| chain[0].clone());
            store::save_issued(ctx.layout, &c.secret_name, &chain, key.der(), &root)
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(certificate = %c.name, secret = %c.secret_name, "issued CA certificate");
            (chain, key)
        }
    };
    let info =
        CertificateInfo::from_der(&chain[0], &c.secret_name).map_err(|e| failed(e.to_string()))?;
    let mut renew_at = renewal_time(&info, c.renew_before);
    if let Some(t) = parent_renew_at {
        renew_at = renew_at.min(t);
    }
    let signer = Signer::new(chain, &c.secret_name, key, "tls.key", ctx.provider)
        .map_err(|e| failed(e.to_string()))?;
    Ok((signer, Some(renew_at)))
}

fn want(ctx: &Ctx<'_>, listener: &Listener, a: &AutomaticTls) -> Want {
    let svc = listener.service_name.to_ascii_lowercase();
    let ns = ctx.namespace;
    let mut dns = vec![
        svc.clone(),
        format!("{svc}.{ns}"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}.svc.cluster.local"),
    ];
    dns.extend(ctx.host_names.iter().map(|h| h.to_ascii_lowercase()));
    dns.push("localhost".to_owned());
    dns.extend(a.san_dns.iter().map(|d| d.trim().to_ascii_lowercase()));
    let mut seen = std::collections::HashSet::new();
    dns.retain(|d| !d.is_empty() && seen.insert(d.clone()));
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for ip in &a.san_ip {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    // A CN is at most 64 characters (RFC 5280 ub-common-name).
    let common_name: String = a.secret_name.chars().take(64).collect();
    Want {
        common_name,
        dns,
        ips,
        spec: a.clone(),
    }
}

/// `Ok` when the stored certificate can be served as it is; otherwise why not.
fn check_reuse(
    stored: &Stored,
    want: &Want,
    ca: Option<&Signer>,
    now: SystemTime,
    provider: &CryptoProvider,
) -> Result<(), String> {
    let leaf_der = stored.chain.first().ok_or("the stored chain is empty")?;
    check_key_matches(leaf_der, &stored.key, provider)
        .map_err(|_| "the stored key does not match".to_owned())?;
    let leaf = parse(leaf_der, "stored").map_err(|e| e.to_string())?;
    let info = CertificateInfo::from_parsed(&leaf, leaf_der);
    if info.subject.common_name() != Some(want.common_name.as_str()) {
        return Err("the subject changed".to_owned());
    }
    let mut have: Vec<SubjectAltName> = info.sans.clone();
    let mut need: Vec<SubjectAltName> = want
        .dns
        .iter()
        .map(|d| SubjectAltName::Dns(d.clone()))
        .chain(want.ips.iter().map(|ip| SubjectAltName::Ip(*ip)))
        .collect();
    for v in [&mut have, &mut need] {
        for s in v.iter_mut() {
            if let SubjectAltName::Dns(d) = s {
                *d = d.to_ascii_lowercase();
            }
        }
        v.sort();
        v.dedup();
    }
    if have != need {
        return Err("the SANs changed".to_owned());
    }
    if !info
        .extended_key_usages
        .contains(&ExtendedKeyUsage::ServerAuth)
    {
        return Err("it lacks EKU serverAuth".to_owned());
    }
    if info.key_type.algorithm() != Some(want.spec.private_key.algorithm) {
        return Err(format!(
            "the key algorithm changed to {}",
            want.spec.private_key.algorithm
        ));
    }
    // The lifetime asked for, capped by the CA as issuing does.
    let mut expected_end = info.not_before + BACKDATE + want.spec.duration;
    if let Some(s) = ca
        && s.info().not_after < expected_end
    {
        expected_end = s.info().not_after;
    }
    let diff = match info.not_after.duration_since(expected_end) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if diff > Duration::from_secs(2) {
        return Err("the duration changed".to_owned());
    }
    match ca {
        Some(s) => {
            let ca_cert = parse(s.certificate(), "CA").map_err(|e| e.to_string())?;
            if !issued(&leaf, &ca_cert) {
                return Err("it was issued by another CA".to_owned());
            }
        }
        None => {
            if !info.self_signed {
                return Err("the issuer is now selfSigned".to_owned());
            }
        }
    }
    if now < info.not_before {
        return Err("it is not valid yet (has the clock moved back?)".to_owned());
    }
    if now >= renewal_time(&info, want.spec.renew_before) {
        return Err("it is due for renewal".to_owned());
    }
    Ok(())
}

/// `renewBefore` ahead of the end; when that is not after the start (a `renewBefore` as long as
/// the certificate, or a lifetime cut short by the CA), two thirds into its life.
fn renewal_time(leaf: &CertificateInfo, renew_before: Duration) -> SystemTime {
    let life = leaf
        .not_after
        .duration_since(leaf.not_before)
        .unwrap_or_default();
    match leaf.not_after.checked_sub(renew_before) {
        Some(t) if t > leaf.not_before + BACKDATE => t,
        _ => leaf.not_before + life / 3 * 2,
    }
}

/// Issues the certificate: with the stored key when `rotationPolicy: Never` and it is of the
/// right algorithm, else a new key.
fn issue(
    want: &Want,
    ca: Option<&Signer>,
    stored: Option<&Stored>,
    now: SystemTime,
) -> Result<(Vec<rustls_pki_types::CertificateDer<'static>>, Key), String> {
    let alg = want.spec.private_key.algorithm;
    let kept = match (want.spec.private_key.rotation_policy, stored) {
        (RotationPolicy::Never, Some(s)) => Key::from_der(s.key.clone_key(), "stored key")
            .ok()
            .filter(|k| k.algorithm() == Some(alg)),
        _ => None,
    };
    let key = match kept {
        Some(k) => k,
        None => Key::generate(alg).map_err(|e| e.to_string())?,
    };
    let now = crate::pki::issue::truncate_to_seconds(now);
    let req = CertRequest {
        common_name: want.common_name.clone(),
        organization: None,
        dns_names: want.dns.clone(),
        ip_addresses: want.ips.clone(),
        not_before: now - BACKDATE,
        not_after: now + want.spec.duration,
        profile: Profile::Server,
    };
    let mut chain = Vec::new();
    match ca {
        Some(s) => {
            chain.push(s.issue(&req, &key).map_err(|e| e.to_string())?);
            // Serve the CA too when it is an intermediate (and its own intermediates), so clients
            // that trust only the root can build the chain.
            for c in s.chain() {
                let self_signed = CertificateInfo::from_der(c, "CA").is_ok_and(|i| i.self_signed);
                if !self_signed {
                    chain.push(c.clone());
                }
            }
        }
        None => chain.push(crate::pki::issue::self_signed(&req, &key).map_err(|e| e.to_string())?),
    }
    Ok((chain, key))
}
