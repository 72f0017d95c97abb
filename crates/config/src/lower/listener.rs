//! Lowers BrokerListeners (current and old API) into [`Listener`]s: ports, TLS with its
//! defaults, and the old API's one-port listeners linked to authentication by `listenerRef`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::Ctx;
use crate::defaults;
use crate::load::RawDocument;
use crate::model::{
    AutomaticTls, IssuerRef, KeyAlgorithm, Listener, ListenerPort, ManualTls, PrivateKey,
    ServiceType, Tls, TlsMode,
};
use crate::raw::certmanager::CertManagerKeyAlgorithm;
use crate::raw::{Object, listener as raw, old};
use crate::units;

/// Where a model listener came from, for the cross-resource rules.
#[derive(Debug, Clone)]
pub(crate) struct ListenerSource {
    /// The document; `None` for the built-in default listener.
    pub(crate) doc: Option<RawDocument>,
    /// Written in the old API (one port, `spec.port`).
    pub(crate) old: bool,
    /// Per port: the path of the port object (`spec.ports[1]`, or `spec` for old listeners).
    pub(crate) port_paths: Vec<String>,
}

impl ListenerSource {
    /// The source of a built-in listener with `ports` ports.
    pub(crate) fn builtin(ports: usize) -> Self {
        ListenerSource {
            doc: None,
            old: false,
            port_paths: (0..ports).map(|i| format!("spec.ports[{i}]")).collect(),
        }
    }

    /// The path of a field of port `i` (`port`, `nodePort`, `tls`, `authenticationRef`...).
    pub(crate) fn port_field(&self, i: usize, field: &str) -> String {
        let field = match (self.old, field) {
            (true, "authenticationRef") => "authenticationEnabled",
            (true, "authorizationRef") => "authorizationEnabled",
            _ => field,
        };
        let base = self.port_paths.get(i).map_or("spec", String::as_str);
        format!("{base}.{field}")
    }
}

pub(super) fn lower(
    doc: &RawDocument,
    o: &Object<raw::BrokerListenerSpec>,
    broker: &str,
    ctx: &mut Ctx,
) -> Option<(Listener, ListenerSource)> {
    let spec = &o.spec;
    check_broker_ref(doc, spec.broker_ref.as_deref(), broker, false, ctx);
    let service_type = spec.service_type.unwrap_or_default();
    let service_name = spec
        .service_name
        .clone()
        .unwrap_or_else(|| o.metadata.name.clone());
    if let Err(e) = units::check_service_name(&service_name) {
        ctx.err(doc, "spec.serviceName", e);
    }
    if spec.ports.is_empty() {
        ctx.err(doc, "spec.ports", "must list at least one port");
    }
    let mut ports = Vec::new();
    let mut port_paths = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let port = ctx.range(doc, &format!("{path}.port"), p.port, 0, 65_535);
        let node_port = p
            .node_port
            .and_then(|n| ctx.range(doc, &format!("{path}.nodePort"), n, 30_000, 32_767));
        let tls = p
            .tls
            .as_ref()
            .and_then(|t| tls(doc, &format!("{path}.tls"), t, &service_name, port, ctx));
        for (field, r) in [
            ("authenticationRef", &p.authentication_ref),
            ("authorizationRef", &p.authorization_ref),
        ] {
            if let Some(r) = r
                && let Err(e) = units::check_label(r)
            {
                ctx.err(doc, &format!("{path}.{field}"), e);
            }
        }
        ports.push(ListenerPort {
            port: port.unwrap_or(0),
            node_port,
            protocol: p.protocol.unwrap_or_default(),
            tls,
            authentication_ref: p.authentication_ref.clone(),
            authorization_ref: p.authorization_ref.clone(),
        });
        port_paths.push(path);
    }
    let listener = Listener {
        name: o.metadata.name.clone(),
        service_name,
        service_type,
        ports,
    };
    node_port_rules(doc, &listener, &port_paths, ctx);
    Some((
        listener,
        ListenerSource {
            doc: Some(doc.clone()),
            old: false,
            port_paths,
        },
    ))
}

/// NodePort listeners need a nodePort outside Kubernetes; others ignore it.
fn node_port_rules(doc: &RawDocument, l: &Listener, paths: &[String], ctx: &mut Ctx) {
    for (p, path) in l.ports.iter().zip(paths) {
        match (l.service_type, p.node_port) {
            (ServiceType::NodePort, None) => {
                // A range error was already reported when the value was present.
                if !ctx
                    .errors
                    .iter()
                    .any(|d| d.path.as_deref() == Some(&format!("{path}.nodePort")))
                {
                    ctx.err(
                        doc,
                        &format!("{path}.nodePort"),
                        "is required on a NodePort listener outside Kubernetes (30000–32767)",
                    );
                }
            }
            (ServiceType::NodePort, Some(_)) | (_, None) => {}
            (t, Some(_)) => ctx.warn(
                doc,
                &format!("{path}.nodePort"),
                format!("is ignored: serviceType is {t}, not NodePort"),
            ),
        }
    }
}

fn check_broker_ref(doc: &RawDocument, r: Option<&str>, broker: &str, old: bool, ctx: &mut Ctx) {
    let Some(r) = r else { return };
    let ok = r == broker || (old && (r == "broker" || r == defaults::DEFAULT_BROKER));
    if !ok {
        ctx.err(
            doc,
            "spec.brokerRef",
            format!("\"{r}\" names no Broker (the Broker is \"{broker}\")"),
        );
    }
}

/// Lowers `ports[].tls`, checking that the sub-object matches the mode.
fn tls(
    doc: &RawDocument,
    path: &str,
    t: &raw::TlsCertMethod,
    service_name: &str,
    port: Option<u16>,
    ctx: &mut Ctx,
) -> Option<Tls> {
    match t.mode {
        TlsMode::Automatic => {
            if t.manual.is_some() {
                ctx.err(
                    doc,
                    &format!("{path}.manual"),
                    "must not be set when mode is Automatic (use certManagerCertificateSpec)",
                );
            }
            let Some(spec) = &t.cert_manager_certificate_spec else {
                ctx.err(
                    doc,
                    &format!("{path}.certManagerCertificateSpec"),
                    "is required when mode is Automatic",
                );
                return None;
            };
            let p = format!("{path}.certManagerCertificateSpec");
            let issuer_ref = issuer_ref(doc, &format!("{p}.issuerRef"), &spec.issuer_ref, ctx);
            // `secret` (seed 000's spelling) means `secretName`; both must agree.
            let (secret_field, given) = match (&spec.secret_name, &spec.secret) {
                (Some(a), Some(b)) if a != b => {
                    ctx.err(
                        doc,
                        &format!("{p}.secret"),
                        format!("\"{b}\" differs from secretName \"{a}\": give one of them"),
                    );
                    ("secretName", Some(a))
                }
                (Some(a), _) => ("secretName", Some(a)),
                (None, Some(b)) => ("secret", Some(b)),
                (None, None) => ("secretName", None),
            };
            let secret_name = given.cloned().unwrap_or_else(|| {
                defaults::automatic_secret_name(service_name, port.unwrap_or(0))
            });
            if let Err(e) = units::check_subdomain(&secret_name) {
                ctx.err(doc, &format!("{p}.{secret_field}"), e);
            }
            let private_key = match &spec.private_key {
                None => PrivateKey::default(),
                Some(k) => PrivateKey {
                    algorithm: listener_key_algorithm(doc, &format!("{p}.privateKey"), k, ctx),
                    rotation_policy: k.rotation_policy.unwrap_or_default(),
                },
            };
            let (san_dns, san_ip) = sans(doc, &format!("{p}.san"), spec.san.as_ref(), ctx);
            Some(Tls::Automatic(automatic(
                doc,
                &p,
                issuer_ref,
                spec.duration.as_deref(),
                spec.renew_before.as_deref(),
                secret_name,
                private_key,
                san_dns,
                san_ip,
                ctx,
            )))
        }
        TlsMode::Manual => {
            if t.cert_manager_certificate_spec.is_some() {
                ctx.err(
                    doc,
                    &format!("{path}.certManagerCertificateSpec"),
                    "must not be set when mode is Manual (use manual.secretRef)",
                );
            }
            let Some(m) = &t.manual else {
                ctx.err(
                    doc,
                    &format!("{path}.manual"),
                    "is required when mode is Manual",
                );
                return None;
            };
            if let Err(e) = units::check_subdomain(&m.secret_ref) {
                ctx.err(doc, &format!("{path}.manual.secretRef"), e);
            }
            Some(Tls::Manual(ManualTls {
                secret_ref: m.secret_ref.clone(),
            }))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn automatic(
    doc: &RawDocument,
    p: &str,
    issuer_ref: IssuerRef,
    duration: Option<&str>,
    renew_before: Option<&str>,
    secret_name: String,
    private_key: PrivateKey,
    san_dns: Vec<String>,
    san_ip: Vec<IpAddr>,
    ctx: &mut Ctx,
) -> AutomaticTls {
    let duration = ctx.duration(
        doc,
        &format!("{p}.duration"),
        duration,
        defaults::CERT_DURATION,
    );
    let renew_before = ctx.duration(
        doc,
        &format!("{p}.renewBefore"),
        renew_before,
        defaults::CERT_RENEW_BEFORE,
    );
    if renew_before >= duration && duration > Duration::ZERO {
        ctx.err(
            doc,
            &format!("{p}.renewBefore"),
            format!(
                "({}) must be shorter than duration ({})",
                human(renew_before),
                human(duration)
            ),
        );
    }
    AutomaticTls {
        issuer_ref,
        duration,
        renew_before,
        secret_name,
        private_key,
        san_dns,
        san_ip,
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

fn issuer_ref(doc: &RawDocument, path: &str, r: &raw::IssuerRef, ctx: &mut Ctx) -> IssuerRef {
    if let Err(e) = units::check_subdomain(&r.name) {
        ctx.err(doc, &format!("{path}.name"), e);
    }
    let group = r
        .group
        .clone()
        .unwrap_or_else(|| defaults::CERT_MANAGER_GROUP.to_owned());
    if group != defaults::CERT_MANAGER_GROUP {
        ctx.err(
            doc,
            &format!("{path}.group"),
            format!(
                "\"{group}\" is not supported outside Kubernetes: only cert-manager.io issuers (selfSigned, ca) can issue here"
            ),
        );
    }
    IssuerRef {
        name: r.name.clone(),
        kind: r.kind,
        group,
    }
}

fn sans(
    doc: &RawDocument,
    path: &str,
    san: Option<&raw::SanForCert>,
    ctx: &mut Ctx,
) -> (Vec<String>, Vec<IpAddr>) {
    let Some(san) = san else {
        return (Vec::new(), Vec::new());
    };
    let dns = san.dns.clone().unwrap_or_default();
    for (i, d) in dns.iter().enumerate() {
        let valid = !d.is_empty()
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            });
        if !valid {
            ctx.err(
                doc,
                &format!("{path}.dns[{i}]"),
                format!("\"{d}\" is not a DNS name"),
            );
        }
    }
    let mut ips = Vec::new();
    for (i, ip) in san.ip.iter().flatten().enumerate() {
        match ip.trim().parse::<IpAddr>() {
            Ok(a) => ips.push(a),
            Err(_) => ctx.err(
                doc,
                &format!("{path}.ip[{i}]"),
                format!("\"{ip}\" is not an IP address"),
            ),
        }
    }
    (dns, ips)
}

/// The default serviceName of old-API listeners.
pub(crate) const OLD_DEFAULT_SERVICE_NAME: &str = "aio-mq-dmqtt-frontend";

/// Converts an old one-port listener. Authentication and authorization come from the old
/// resources whose `listenerRef` names this listener.
pub(super) fn lower_old(
    doc: &RawDocument,
    o: &Object<old::BrokerListenerSpec>,
    broker: &str,
    authn_links: &BTreeMap<String, String>,
    authz_links: &BTreeMap<String, String>,
    ctx: &mut Ctx,
) -> Option<(Listener, ListenerSource)> {
    let spec = &o.spec;
    let name = &o.metadata.name;
    check_broker_ref(doc, spec.broker_ref.as_deref(), broker, true, ctx);
    let service_type = spec.service_type.unwrap_or_default();
    let service_name = spec
        .service_name
        .clone()
        .unwrap_or_else(|| OLD_DEFAULT_SERVICE_NAME.to_owned());
    if let Err(e) = units::check_service_name(&service_name) {
        ctx.err(doc, "spec.serviceName", e);
    }
    let port = ctx.range(doc, "spec.port", spec.port, 0, 65_535);
    let node_port = spec
        .node_port
        .and_then(|n| ctx.range(doc, "spec.nodePort", n, 30_000, 32_767));

    let authentication_ref = match (
        spec.authentication_enabled.unwrap_or(false),
        authn_links.get(name),
    ) {
        (true, Some(a)) => Some(a.clone()),
        (true, None) => {
            ctx.warn(
                doc,
                "spec.authenticationEnabled",
                format!(
                    "is true and no BrokerAuthentication lists this listener in spec.listenerRef; using BrokerAuthentication/{}",
                    defaults::DEFAULT_AUTHENTICATION
                ),
            );
            Some(defaults::DEFAULT_AUTHENTICATION.to_owned())
        }
        (false, Some(a)) => {
            ctx.warn(
                doc,
                "spec.authenticationEnabled",
                format!(
                    "is false, so BrokerAuthentication/{a}, which lists this listener, has no effect"
                ),
            );
            None
        }
        (false, None) => None,
    };
    let authorization_ref = match (
        spec.authorization_enabled.unwrap_or(false),
        authz_links.get(name),
    ) {
        (true, Some(a)) => Some(a.clone()),
        (true, None) => {
            ctx.err(
                doc,
                "spec.authorizationEnabled",
                "is true but no BrokerAuthorization lists this listener in spec.listenerRef",
            );
            None
        }
        (false, Some(a)) => {
            ctx.warn(
                doc,
                "spec.authorizationEnabled",
                format!(
                    "is false, so BrokerAuthorization/{a}, which lists this listener, has no effect"
                ),
            );
            None
        }
        (false, None) => None,
    };

    let tls = spec.tls.as_ref().and_then(|t| old_tls(doc, t, port, ctx));
    let listener = Listener {
        name: name.clone(),
        service_name,
        service_type,
        ports: vec![ListenerPort {
            port: port.unwrap_or(0),
            node_port,
            protocol: spec.protocol.unwrap_or_default(),
            tls,
            authentication_ref,
            authorization_ref,
        }],
    };
    let port_paths = vec!["spec".to_owned()];
    node_port_rules(doc, &listener, &port_paths, ctx);
    Some((
        listener,
        ListenerSource {
            doc: Some(doc.clone()),
            old: true,
            port_paths,
        },
    ))
}

fn old_tls(doc: &RawDocument, t: &old::Tls, port: Option<u16>, ctx: &mut Ctx) -> Option<Tls> {
    let set = [
        t.automatic.is_some(),
        t.manual.is_some(),
        t.key_vault.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        ctx.err(
            doc,
            "spec.tls",
            "must set exactly one of automatic, manual or keyVault",
        );
        return None;
    }
    if t.key_vault.is_some() {
        ctx.err(
            doc,
            "spec.tls.keyVault",
            "is not supported outside Azure: use automatic or manual",
        );
        return None;
    }
    if let Some(m) = &t.manual {
        return Some(Tls::Manual(ManualTls {
            secret_ref: m.secret_name.clone(),
        }));
    }
    let a = t.automatic.as_ref()?;
    let p = "spec.tls.automatic";
    let issuer_ref = issuer_ref(doc, &format!("{p}.issuerRef"), &a.issuer_ref, ctx);
    // The old default secret was `{issuer}-{port}`.
    let secret_name = a
        .secret
        .clone()
        .unwrap_or_else(|| format!("{}-{}", a.issuer_ref.name, port.unwrap_or(0)));
    let private_key = match &a.private_key {
        None => PrivateKey::default(),
        Some(k) => PrivateKey {
            algorithm: old_key_algorithm(doc, &format!("{p}.privateKey"), k, ctx),
            rotation_policy: k.rotation_policy.unwrap_or_default(),
        },
    };
    let (san_dns, san_ip) = sans(doc, &format!("{p}.san"), a.san.as_ref(), ctx);
    Some(Tls::Automatic(automatic(
        doc,
        p,
        issuer_ref,
        a.duration.as_deref(),
        a.renew_before.as_deref(),
        secret_name,
        private_key,
        san_dns,
        san_ip,
        ctx,
    )))
}

/// Maps cert-manager's `{algorithm, size}` to the current API's key algorithm.
pub(crate) fn old_key_algorithm(
    doc: &RawDocument,
    path: &str,
    k: &old::PrivateKey,
    ctx: &mut Ctx,
) -> KeyAlgorithm {
    map_key_algorithm(
        doc,
        path,
        k.algorithm,
        k.size,
        CertManagerKeyAlgorithm::Ecdsa,
        ctx,
    )
}

/// A listener's `privateKey`: the CRD's names (`Ec256`, `Rsa2048`, ...; a `size` must agree) or
/// cert-manager's `{algorithm: ECDSA|RSA|Ed25519, size}` (default ECDSA 256).
fn listener_key_algorithm(
    doc: &RawDocument,
    path: &str,
    k: &raw::ListenerPrivateKey,
    ctx: &mut Ctx,
) -> KeyAlgorithm {
    use raw::ListenerKeyAlgorithm as A;
    let (cert_manager, named) = match k.algorithm {
        None | Some(A::Ecdsa) => (CertManagerKeyAlgorithm::Ecdsa, None),
        Some(A::Rsa) => (CertManagerKeyAlgorithm::Rsa, None),
        Some(A::Ed25519) => (CertManagerKeyAlgorithm::Ed25519, None),
        Some(A::Ec256) => (CertManagerKeyAlgorithm::Ecdsa, Some(KeyAlgorithm::Ec256)),
        Some(A::Ec384) => (CertManagerKeyAlgorithm::Ecdsa, Some(KeyAlgorithm::Ec384)),
        Some(A::Ec521) => (CertManagerKeyAlgorithm::Ecdsa, Some(KeyAlgorithm::Ec521)),
        Some(A::Rsa2048) => (CertManagerKeyAlgorithm::Rsa, Some(KeyAlgorithm::Rsa2048)),
        Some(A::Rsa4096) => (CertManagerKeyAlgorithm::Rsa, Some(KeyAlgorithm::Rsa4096)),
        Some(A::Rsa8192) => (CertManagerKeyAlgorithm::Rsa, Some(KeyAlgorithm::Rsa8192)),
    };
    let Some(named) = named else {
        return map_key_algorithm(doc, path, Some(cert_manager), k.size, cert_manager, ctx);
    };
    if let Some(size) = k.size {
        let sized = map_key_algorithm(doc, path, Some(cert_manager), Some(size), cert_manager, ctx);
        if sized != named {
            ctx.err(
                doc,
                &format!("{path}.size"),
                format!("{size} contradicts algorithm {named}: give size only with ECDSA or RSA"),
            );
        }
    }
    named
}

/// `{algorithm, size}` → [`KeyAlgorithm`]; `default_algorithm` when absent.
pub(crate) fn map_key_algorithm(
    doc: &RawDocument,
    path: &str,
    algorithm: Option<CertManagerKeyAlgorithm>,
    size: Option<i64>,
    default_algorithm: CertManagerKeyAlgorithm,
    ctx: &mut Ctx,
) -> KeyAlgorithm {
    let algorithm = algorithm.unwrap_or(default_algorithm);
    match (algorithm, size) {
        (CertManagerKeyAlgorithm::Ecdsa, None | Some(256)) => KeyAlgorithm::Ec256,
        (CertManagerKeyAlgorithm::Ecdsa, Some(384)) => KeyAlgorithm::Ec384,
        (CertManagerKeyAlgorithm::Ecdsa, Some(521)) => KeyAlgorithm::Ec521,
        (CertManagerKeyAlgorithm::Rsa, None | Some(2048)) => KeyAlgorithm::Rsa2048,
        (CertManagerKeyAlgorithm::Rsa, Some(4096)) => KeyAlgorithm::Rsa4096,
        (CertManagerKeyAlgorithm::Rsa, Some(8192)) => KeyAlgorithm::Rsa8192,
        (CertManagerKeyAlgorithm::Ed25519, _) => KeyAlgorithm::Ed25519,
        (alg, Some(size)) => {
            let allowed = if alg == CertManagerKeyAlgorithm::Ecdsa {
                "256, 384 or 521"
            } else {
                "2048, 4096 or 8192"
            };
            ctx.err(
                doc,
                &format!("{path}.size"),
                format!("{size} is not a supported key size (expected {allowed})"),
            );
            KeyAlgorithm::default()
        }
    }
}
