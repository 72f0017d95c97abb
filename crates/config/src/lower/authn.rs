//! Lowers BrokerAuthentications (current and old API) into [`Authentication`]s, checking that
//! each method carries its own settings object and only that one.

use std::collections::BTreeMap;

use super::Ctx;
use crate::load::RawDocument;
use crate::model::{
    AdditionalValidation, Authentication, AuthnMethod, AuthnMethodKind, CustomSettings,
    SatSettings, UsernamePasswordSettings, X509Attributes, X509Settings,
};
use crate::raw::{Object, RawResource, authn as raw, old};
use crate::units;

/// The default `trustedClientCaCert` ConfigMap.
pub(crate) const DEFAULT_CLIENT_CA: &str = "client-ca";

pub(super) fn lower(
    doc: &RawDocument,
    o: &Object<raw::BrokerAuthenticationSpec>,
    ctx: &mut Ctx,
) -> Option<Authentication> {
    let methods_path = "spec.authenticationMethods";
    if o.spec.authentication_methods.is_empty() {
        ctx.err(doc, methods_path, "must list at least one method");
    }
    let mut methods = Vec::new();
    let mut extension_used = None;
    for (i, m) in o.spec.authentication_methods.iter().enumerate() {
        let path = format!("{methods_path}[{i}]");
        let present = [
            (
                AuthnMethodKind::Custom,
                "customSettings",
                m.custom_settings.is_some(),
            ),
            (
                AuthnMethodKind::ServiceAccountToken,
                "serviceAccountTokenSettings",
                m.service_account_token_settings.is_some(),
            ),
            (
                AuthnMethodKind::X509,
                "x509Settings",
                m.x509_settings.is_some(),
            ),
            (
                AuthnMethodKind::UsernamePassword,
                "usernamePasswordSettings",
                m.username_password_settings.is_some(),
            ),
        ];
        for (kind, field, is_set) in present {
            if is_set && kind != m.method {
                ctx.err(
                    doc,
                    &format!("{path}.{field}"),
                    format!("must not be set when method is {}", m.method),
                );
            }
        }
        let method = match m.method {
            AuthnMethodKind::ServiceAccountToken => {
                let Some(s) = &m.service_account_token_settings else {
                    ctx.err(
                        doc,
                        &format!("{path}.serviceAccountTokenSettings"),
                        "is required when method is ServiceAccountToken",
                    );
                    continue;
                };
                if s.issuer_keys_config_map.is_some() {
                    extension_used = Some(format!(
                        "{path}.serviceAccountTokenSettings.issuerKeysConfigMap"
                    ));
                }
                sat(doc, &format!("{path}.serviceAccountTokenSettings"), s, ctx)
            }
            AuthnMethodKind::X509 => {
                let s = m.x509_settings.as_ref();
                let trusted = s
                    .and_then(|s| s.trusted_client_ca_cert.clone())
                    .unwrap_or_else(|| DEFAULT_CLIENT_CA.to_owned());
                let p = format!("{path}.x509Settings");
                if let Err(e) = units::check_subdomain(&trusted) {
                    ctx.err(doc, &format!("{p}.trustedClientCaCert"), e);
                }
                let mut attrs = BTreeMap::new();
                for (label, a) in s
                    .and_then(|s| s.authorization_attributes.as_ref())
                    .into_iter()
                    .flatten()
                {
                    if a.subject.trim().is_empty() {
                        ctx.err(
                            doc,
                            &format!("{p}.authorizationAttributes.{label}.subject"),
                            "must not be empty",
                        );
                    }
                    attrs.insert(
                        label.clone(),
                        X509Attributes {
                            subject: a.subject.clone(),
                            attributes: a.attributes.clone(),
                        },
                    );
                }
                let additional_validation =
                    s.and_then(|s| s.additional_validation).unwrap_or_default();
                if additional_validation == AdditionalValidation::AzureDeviceRegistry {
                    ctx.err(
                        doc,
                        &format!("{p}.additionalValidation"),
                        "AzureDeviceRegistry needs Azure Device Registry, which is not available outside Azure",
                    );
                }
                AuthnMethod::X509(X509Settings {
                    trusted_client_ca_cert: trusted,
                    authorization_attributes: attrs,
                    additional_validation,
                    attributes_secret: None,
                })
            }
            AuthnMethodKind::Custom => {
                let Some(s) = &m.custom_settings else {
                    ctx.err(
                        doc,
                        &format!("{path}.customSettings"),
                        "is required when method is Custom",
                    );
                    continue;
                };
                custom(
                    doc,
                    &format!("{path}.customSettings"),
                    &s.endpoint,
                    s.ca_cert_config_map.clone(),
                    s.auth.as_ref().map(|a| a.x509.secret_ref.clone()),
                    s.headers.clone(),
                    ctx,
                )
            }
            AuthnMethodKind::UsernamePassword => {
                extension_used = Some(format!("{path}.method"));
                let Some(s) = &m.username_password_settings else {
                    ctx.err(
                        doc,
                        &format!("{path}.usernamePasswordSettings"),
                        "is required when method is UsernamePassword",
                    );
                    continue;
                };
                AuthnMethod::UsernamePassword(UsernamePasswordSettings {
                    secret_ref: s.secret_ref.clone(),
                })
            }
        };
        methods.push(method);
    }
    check_reference_names(doc, &methods, ctx);
    if let Some(path) = extension_used
        && o.api_version != "wardgate.io/v1"
    {
        ctx.warn(
            doc,
            &path,
            format!(
                "is a Wardgate extension: AIO will not accept this manifest under apiVersion {}; use wardgate.io/v1 to make that explicit",
                o.api_version
            ),
        );
    }
    Some(Authentication {
        name: o.metadata.name.clone(),
        methods,
    })
}

/// The Secret and ConfigMap names a method refers to must be valid names.
fn check_reference_names(doc: &RawDocument, methods: &[AuthnMethod], ctx: &mut Ctx) {
    for (i, m) in methods.iter().enumerate() {
        let path = format!("spec.authenticationMethods[{i}]");
        let refs: Vec<(String, &str)> = match m {
            AuthnMethod::ServiceAccountToken(s) => s
                .issuer_keys_config_map
                .iter()
                .map(|c| {
                    (
                        format!("{path}.serviceAccountTokenSettings.issuerKeysConfigMap"),
                        c.as_str(),
                    )
                })
                .collect(),
            AuthnMethod::Custom(c) => c
                .ca_cert_config_map
                .iter()
                .map(|n| (format!("{path}.customSettings.caCertConfigMap"), n.as_str()))
                .chain(c.client_cert_secret.iter().map(|n| {
                    (
                        format!("{path}.customSettings.auth.x509.secretRef"),
                        n.as_str(),
                    )
                }))
                .collect(),
            AuthnMethod::UsernamePassword(u) => vec![(
                format!("{path}.usernamePasswordSettings.secretRef"),
                u.secret_ref.as_str(),
            )],
            AuthnMethod::X509(_) => Vec::new(),
        };
        for (p, name) in refs {
            if let Err(e) = units::check_subdomain(name) {
                ctx.err(doc, &p, e);
            }
        }
    }
}

fn sat(doc: &RawDocument, path: &str, s: &raw::SatSettings, ctx: &mut Ctx) -> AuthnMethod {
    if s.audiences.is_empty() {
        ctx.err(
            doc,
            &format!("{path}.audiences"),
            "must list at least one audience",
        );
    }
    for (i, a) in s.audiences.iter().enumerate() {
        if a.trim().is_empty() {
            ctx.err(doc, &format!("{path}.audiences[{i}]"), "must not be empty");
        }
    }
    AuthnMethod::ServiceAccountToken(SatSettings {
        audiences: s.audiences.clone(),
        issuer_keys_config_map: s.issuer_keys_config_map.clone(),
    })
}

fn custom(
    doc: &RawDocument,
    path: &str,
    endpoint: &str,
    ca_cert_config_map: Option<String>,
    client_cert_secret: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    ctx: &mut Ctx,
) -> AuthnMethod {
    let valid = endpoint
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !valid {
        ctx.err(
            doc,
            &format!("{path}.endpoint"),
            format!("\"{endpoint}\" must be an https:// URL"),
        );
    }
    AuthnMethod::Custom(CustomSettings {
        endpoint: endpoint.to_owned(),
        ca_cert_config_map,
        client_cert_secret,
        headers: headers.unwrap_or_default(),
    })
}

/// Old BrokerAuthentications link to listeners by `listenerRef`: listener name → authentication
/// name. A listener linked twice is an error.
pub(super) fn old_links(docs: &[&RawDocument], ctx: &mut Ctx) -> BTreeMap<String, String> {
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let old_listeners: Vec<&str> = docs
        .iter()
        .filter_map(|d| match &d.resource {
            RawResource::OldBrokerListener(o) => Some(o.metadata.name.as_str()),
            _ => None,
        })
        .collect();
    for doc in docs {
        let RawResource::OldBrokerAuthentication(o) = &doc.resource else {
            continue;
        };
        for (i, l) in o.spec.listener_ref.iter().enumerate() {
            let path = format!("spec.listenerRef[{i}]");
            if !old_listeners.contains(&l.as_str()) {
                ctx.warn(
                    doc,
                    &path,
                    format!("\"{l}\" names no BrokerListener of the old API; it has no effect"),
                );
            }
            if let Some(other) = links.get(l) {
                ctx.err(
                    doc,
                    &path,
                    format!(
                        "\"{l}\" is already linked to BrokerAuthentication/{other}; a listener uses one BrokerAuthentication"
                    ),
                );
            } else {
                links.insert(l.clone(), o.metadata.name.clone());
            }
        }
    }
    links
}

/// Converts an old BrokerAuthentication: each method entry sets exactly one of `sat`, `x509`,
/// `custom` or `usernamePassword`.
pub(super) fn lower_old(
    doc: &RawDocument,
    o: &Object<old::BrokerAuthenticationSpec>,
    ctx: &mut Ctx,
) -> Option<Authentication> {
    let mut methods = Vec::new();
    if o.spec.authentication_methods.is_empty() {
        ctx.err(
            doc,
            "spec.authenticationMethods",
            "must list at least one method",
        );
    }
    for (i, m) in o.spec.authentication_methods.iter().enumerate() {
        let path = format!("spec.authenticationMethods[{i}]");
        let count = [
            m.sat.is_some(),
            m.x509.is_some(),
            m.custom.is_some(),
            m.username_password.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count != 1 {
            ctx.err(
                doc,
                &path,
                "must set exactly one of sat, x509, custom or usernamePassword",
            );
            continue;
        }
        let method = if let Some(s) = &m.sat {
            sat(
                doc,
                &format!("{path}.sat"),
                &raw::SatSettings {
                    audiences: s.audiences.clone(),
                    issuer_keys_config_map: None,
                },
                ctx,
            )
        } else if let Some(x) = &m.x509 {
            AuthnMethod::X509(X509Settings {
                trusted_client_ca_cert: x
                    .trusted_client_ca_cert
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CLIENT_CA.to_owned()),
                authorization_attributes: BTreeMap::new(),
                additional_validation: AdditionalValidation::None,
                attributes_secret: x.attributes.as_ref().map(|a| a.secret_name.clone()),
            })
        } else if let Some(c) = &m.custom {
            custom(
                doc,
                &format!("{path}.custom"),
                &c.endpoint,
                c.ca_cert.clone(),
                c.auth.as_ref().map(|a| a.x509.secret_name.clone()),
                c.headers.clone(),
                ctx,
            )
        } else if let Some(u) = &m.username_password {
            AuthnMethod::UsernamePassword(UsernamePasswordSettings {
                secret_ref: u.secret_name.clone(),
            })
        } else {
            continue;
        };
        methods.push(method);
    }
    Some(Authentication {
        name: o.metadata.name.clone(),
        methods,
    })
}
