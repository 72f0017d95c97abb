//! Lowers the Kubernetes and cert-manager resources: Secrets (base64 decoded), ConfigMaps,
//! Issuers, ClusterIssuers and Certificates.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;

use super::Ctx;
use super::listener::map_key_algorithm;
use crate::load::RawDocument;
use crate::model::{
    Certificate, ConfigMap, Issuer, IssuerKind, IssuerRef, IssuerSource, PrivateKey, Secret,
};
use crate::raw::certmanager::{CertManagerKeyAlgorithm, IssuerSpec};
use crate::raw::{Object, RawResource};
use crate::units;

type Lowered = (
    BTreeMap<String, Secret>,
    BTreeMap<String, ConfigMap>,
    BTreeMap<(IssuerKind, String), Issuer>,
    BTreeMap<String, Certificate>,
);

pub(super) fn lower(docs: &[&RawDocument], ctx: &mut Ctx) -> Lowered {
    let mut secrets = BTreeMap::new();
    let mut config_maps = BTreeMap::new();
    let mut issuers = BTreeMap::new();
    let mut certificates = BTreeMap::new();
    for doc in docs {
        match &doc.resource {
            RawResource::Secret(s) => {
                let mut data = BTreeMap::new();
                for (k, v) in s.data.iter().flatten() {
                    let path = format!("data[\"{k}\"]");
                    if let Err(e) = units::check_data_key(k) {
                        ctx.err(doc, "data", e);
                    }
                    match decode(v) {
                        Some(bytes) => {
                            data.insert(k.clone(), bytes);
                        }
                        None => ctx.err(
                            doc,
                            &path,
                            "is not valid base64 (data values are base64; use stringData for plain text)",
                        ),
                    }
                }
                for (k, v) in s.string_data.iter().flatten() {
                    if let Err(e) = units::check_data_key(k) {
                        ctx.err(doc, "stringData", e);
                    }
                    data.insert(k.clone(), v.clone().into_bytes());
                }
                let type_ = s.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
                if type_ == Secret::TLS_TYPE {
                    let written = |key: &str| {
                        s.data.as_ref().is_some_and(|d| d.contains_key(key))
                            || s.string_data.as_ref().is_some_and(|d| d.contains_key(key))
                    };
                    for key in ["tls.crt", "tls.key"] {
                        if !written(key) {
                            ctx.err(
                                doc,
                                "data",
                                format!("must have the key {key} (type kubernetes.io/tls)"),
                            );
                        }
                    }
                }
                secrets.insert(
                    s.metadata.name.clone(),
                    Secret {
                        name: s.metadata.name.clone(),
                        type_,
                        data,
                    },
                );
            }
            RawResource::ConfigMap(c) => {
                let data = c.data.clone().unwrap_or_default();
                for k in data.keys() {
                    if let Err(e) = units::check_data_key(k) {
                        ctx.err(doc, "data", e);
                    }
                }
                let mut binary_data = BTreeMap::new();
                for (k, v) in c.binary_data.iter().flatten() {
                    if let Err(e) = units::check_data_key(k) {
                        ctx.err(doc, "binaryData", e);
                    }
                    if data.contains_key(k) {
                        ctx.err(
                            doc,
                            &format!("binaryData[\"{k}\"]"),
                            "duplicates a key of data",
                        );
                    }
                    match decode(v) {
                        Some(bytes) => {
                            binary_data.insert(k.clone(), bytes);
                        }
                        None => {
                            ctx.err(doc, &format!("binaryData[\"{k}\"]"), "is not valid base64")
                        }
                    }
                }
                config_maps.insert(
                    c.metadata.name.clone(),
                    ConfigMap {
                        name: c.metadata.name.clone(),
                        data,
                        binary_data,
                    },
                );
            }
            RawResource::Issuer(o) => {
                if let Some(i) = issuer(doc, IssuerKind::Issuer, o, ctx) {
                    issuers.insert((IssuerKind::Issuer, i.name.clone()), i);
                }
            }
            RawResource::ClusterIssuer(o) => {
                if let Some(i) = issuer(doc, IssuerKind::ClusterIssuer, o, ctx) {
                    issuers.insert((IssuerKind::ClusterIssuer, i.name.clone()), i);
                }
            }
            RawResource::Certificate(o) => {
                if let Some(c) = certificate(doc, o, ctx) {
                    certificates.insert(c.name.clone(), c);
                }
            }
            _ => {}
        }
    }
    (secrets, config_maps, issuers, certificates)
}

/// Decodes base64 as Kubernetes writes it (standard alphabet, padded; whitespace tolerated).
fn decode(v: &str) -> Option<Vec<u8>> {
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

fn issuer(
    doc: &RawDocument,
    kind: IssuerKind,
    o: &Object<IssuerSpec>,
    ctx: &mut Ctx,
) -> Option<Issuer> {
    let s = &o.spec;
    for (field, set) in [
        ("acme", s.acme.is_some()),
        ("vault", s.vault.is_some()),
        ("venafi", s.venafi.is_some()),
    ] {
        if set {
            ctx.err(
                doc,
                &format!("spec.{field}"),
                "is not supported outside Kubernetes: use selfSigned or ca",
            );
            return None;
        }
    }
    let source = match (&s.self_signed, &s.ca) {
        (Some(_), None) => IssuerSource::SelfSigned,
        (None, Some(ca)) => {
            if let Err(e) = units::check_subdomain(&ca.secret_name) {
                ctx.err(doc, "spec.ca.secretName", e);
            }
            IssuerSource::Ca {
                secret_name: ca.secret_name.clone(),
            }
        }
        _ => {
            ctx.err(doc, "spec", "must set exactly one of selfSigned or ca");
            return None;
        }
    };
    Some(Issuer {
        kind,
        name: o.metadata.name.clone(),
        source,
    })
}

fn certificate(
    doc: &RawDocument,
    o: &Object<crate::raw::certmanager::CertificateSpec>,
    ctx: &mut Ctx,
) -> Option<Certificate> {
    let s = &o.spec;
    if let Err(e) = units::check_subdomain(&s.secret_name) {
        ctx.err(doc, "spec.secretName", e);
    }
    let mut ip_addresses = Vec::new();
    for (i, ip) in s.ip_addresses.iter().flatten().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(a) => ip_addresses.push(a),
            Err(_) => ctx.err(
                doc,
                &format!("spec.ipAddresses[{i}]"),
                format!("\"{ip}\" is not an IP address"),
            ),
        }
    }
    if s.common_name.is_none()
        && s.dns_names.as_ref().is_none_or(Vec::is_empty)
        && ip_addresses.is_empty()
        && s.literal_subject.is_none()
    {
        ctx.err(
            doc,
            "spec",
            "must set at least one of commonName, dnsNames or ipAddresses",
        );
    }
    // cert-manager's defaults: 90 days, renew a third before the end, RSA 2048.
    let duration = ctx.duration(
        doc,
        "spec.duration",
        s.duration.as_deref(),
        Duration::from_secs(2160 * 3600),
    );
    let renew_before = ctx.duration(
        doc,
        "spec.renewBefore",
        s.renew_before.as_deref(),
        duration / 3,
    );
    if renew_before >= duration {
        ctx.err(doc, "spec.renewBefore", "must be shorter than duration");
    }
    let (algorithm, size, rotation) = match &s.private_key {
        Some(k) => (k.algorithm, k.size, k.rotation_policy.unwrap_or_default()),
        None => (None, None, Default::default()),
    };
    let algorithm = map_key_algorithm(
        doc,
        "spec.privateKey",
        algorithm,
        size,
        CertManagerKeyAlgorithm::Rsa,
        ctx,
    );
    Some(Certificate {
        name: o.metadata.name.clone(),
        secret_name: s.secret_name.clone(),
        issuer_ref: IssuerRef {
            name: s.issuer_ref.name.clone(),
            kind: s.issuer_ref.kind,
            group: s
                .issuer_ref
                .group
                .clone()
                .unwrap_or_else(|| crate::defaults::CERT_MANAGER_GROUP.to_owned()),
        },
        is_ca: s.is_ca.unwrap_or(false),
        common_name: s.common_name.clone(),
        organizations: s
            .subject
            .as_ref()
            .and_then(|s| s.organizations.clone())
            .unwrap_or_default(),
        dns_names: s.dns_names.clone().unwrap_or_default(),
        ip_addresses,
        duration,
        renew_before,
        private_key: PrivateKey {
            algorithm,
            rotation_policy: rotation,
        },
        usages: s.usages.clone().unwrap_or_default(),
    })
}
