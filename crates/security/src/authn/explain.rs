//! The authentication half of `wardgate explain` (SPEC.md §8.6): which method would decide for
//! a described client, and what identity it would give, without any network call or secret
//! (a Custom server is assumed to pass, a token to verify; passwords are not checked).

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;

use super::x509::Origin;
use super::{AuthMethodKind, Authenticator, Identity, K8S_SAT, Method};

/// A client as `explain` describes it.
#[derive(Debug, Clone)]
pub(crate) struct Described<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) auth_method: Option<&'a str>,
    pub(crate) client_chain: &'a [CertificateDer<'static>],
    pub(crate) attributes: &'a BTreeMap<String, String>,
}

impl Authenticator {
    /// Walks the methods as [`Authenticator::connect`] would. Returns the lines of the story and
    /// the identity, or `Err` with why the client would be denied.
    pub(crate) fn explain(
        &self,
        c: &Described<'_>,
        lines: &mut Vec<String>,
    ) -> Result<Identity, String> {
        if let Some(m) = c.auth_method
            && !self.supports_enhanced(m)
        {
            return Err(format!(
                "authentication method \"{m}\" is not offered (CONNACK 0x8C bad authentication method)"
            ));
        }
        for (i, method) in self.methods.iter().enumerate() {
            let head = format!("methods[{i}] {}", method.kind());
            match method {
                Method::Sat(s) => {
                    if c.auth_method != Some(K8S_SAT) {
                        lines.push(format!(
                            "{head}: not relevant (needs CONNECT authentication method K8S-SAT; \
                             pass --auth-method K8S-SAT to assume a valid token)"
                        ));
                        continue;
                    }
                    let keys = match s.jwks_config_map() {
                        Some(name) => format!("the JWKS in ConfigMap/{name}"),
                        None => "serve's default verifier (outside Kubernetes: the data dir's \
                                 local token issuer, which `wardgate token create` signs with)"
                            .to_owned(),
                    };
                    lines.push(format!(
                        "{head}: relevant; assuming the token verifies with {keys}, audience one \
                         of [{}]; username = the token's sub (given with --username)",
                        s.audiences().join(", ")
                    ));
                    let account = c.username.and_then(|sub| s.service_account(sub));
                    lines.push(match account {
                        Some(sa) => format!(
                            "  attributes from ServiceAccount/{}: {}",
                            sa.name,
                            fmt_attrs(&sa.attributes)
                        ),
                        None => "  no ServiceAccount of the configuration is the token's sub; \
                                 no attributes"
                            .to_owned(),
                    });
                    let attributes = account.map(|sa| sa.attributes.clone()).unwrap_or_default();
                    return Ok(self.assume(c, AuthMethodKind::ServiceAccountToken, attributes));
                }
                Method::X509(x) => {
                    if c.client_chain.is_empty() {
                        lines.push(format!(
                            "{head}: not relevant (no client certificate; pass --cert)"
                        ));
                        continue;
                    }
                    lines.push(format!(
                        "{head}: relevant (a client certificate is presented)"
                    ));
                    let found = x.chain_attributes(c.client_chain);
                    for (n, cert) in found.path.iter().enumerate() {
                        let mark = match &found.matched {
                            Some((m, label)) if *m == n => {
                                format!("  <- matches authorizationAttributes.{label}")
                            }
                            _ => String::new(),
                        };
                        let role = match (n, cert.origin) {
                            (0, _) => "leaf".to_owned(),
                            (_, Origin::Presented(_)) => "chain".to_owned(),
                            (_, Origin::Anchor) => {
                                format!("trusted CA from ConfigMap/{}", x.trusted())
                            }
                        };
                        lines.push(format!(
                            "  certificate {n} ({role}): {}{mark}",
                            cert.subject
                        ));
                    }
                    for ignored in &found.ignored {
                        lines.push(format!(
                            "  ignored (not on the path to a trusted CA): {ignored}"
                        ));
                    }
                    if found.anchored {
                        lines.push(format!(
                            "  the chain leads to a CA in ConfigMap/{} (trustedClientCaCert)",
                            x.trusted()
                        ));
                    } else {
                        lines.push(format!(
                            "  the chain does NOT lead to a CA in ConfigMap/{} (trustedClientCaCert): \
                             the TLS handshake would fail (did the client send its intermediates?)",
                            x.trusted()
                        ));
                        return Err(
                            "the client certificate is not trusted (TLS handshake fails)"
                                .to_owned(),
                        );
                    }
                    match &found.matched {
                        Some(_) => lines.push(format!(
                            "  attributes from the chain: {}",
                            fmt_attrs(&found.attributes)
                        )),
                        None => lines.push(format!(
                            "  no certificate matches an authorizationAttributes subject ({} entries: {}); no attributes",
                            x.entries().len(),
                            x.entries()
                                .iter()
                                .map(|e| format!("{} = \"{}\"", e.label, e.subject))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    }
                    if let Some(na) = found.not_after
                        && na <= std::time::SystemTime::now()
                    {
                        return Err("the client certificate has expired (CONNACK 0x87)".to_owned());
                    }
                    let username = found.username.clone();
                    lines.push(format!(
                        "  username = the leaf CN: {}",
                        username.as_deref().unwrap_or("(none)")
                    ));
                    let mut id = self.assume(c, AuthMethodKind::X509, found.attributes);
                    id.username = username;
                    id.expires_at = found.not_after;
                    return Ok(id);
                }
                Method::Custom(cu) => {
                    lines.push(format!(
                        "{head}: relevant (always); explain does not call {}; assuming it passes \
                         with the attributes given by --attr",
                        cu.endpoint()
                    ));
                    return Ok(self.assume(c, AuthMethodKind::Custom, BTreeMap::new()));
                }
                Method::Password(p) => {
                    let Some(user) = c.username else {
                        lines.push(format!(
                            "{head}: not relevant (no username; pass --username)"
                        ));
                        continue;
                    };
                    match p.user_attributes(user) {
                        None => {
                            lines.push(format!(
                                "{head}: relevant; user \"{user}\" is not in Secret/{} passwords.toml",
                                p.secret()
                            ));
                            return Err("unknown username (CONNACK 0x86 bad username or password)"
                                .to_owned());
                        }
                        Some(attrs) => {
                            lines.push(format!(
                                "{head}: relevant; user \"{user}\" is in Secret/{} (the password is not \
                                 checked by explain); attributes: {}",
                                p.secret(),
                                fmt_attrs(attrs)
                            ));
                            return Ok(self.assume(
                                c,
                                AuthMethodKind::UsernamePassword,
                                attrs.clone(),
                            ));
                        }
                    }
                }
            }
        }
        Err(format!(
            "no method of BrokerAuthentication/{} is relevant (CONNACK 0x87; 0x86 with a username)",
            self.name
        ))
    }

    fn assume(
        &self,
        c: &Described<'_>,
        kind: AuthMethodKind,
        mut attributes: BTreeMap<String, String>,
    ) -> Identity {
        for (k, v) in c.attributes {
            attributes.insert(k.clone(), v.clone());
        }
        Identity::assumed(c.client_id, c.username, attributes, kind)
    }
}

pub(crate) fn fmt_attrs(a: &BTreeMap<String, String>) -> String {
    if a.is_empty() {
        return "(none)".to_owned();
    }
    let v: Vec<String> = a.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.join(", ")
}
