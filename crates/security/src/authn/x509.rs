//! The X509 method (SPEC.md §7.2): the TLS handshake verified the client chain; this names the
//! client (username = leaf CN) and maps certificate subjects to authorization attributes by
//! walking the chain from the leaf up, where the first certificate that matches an entry gives
//! that entry's attributes and only those.
//!
//! The old API kept the mapping in a Secret's `x509Attributes.toml` (`[label] subject = "…"`,
//! `[label.attributes] k = "v"`); it is read into the same entries.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use wardgate_config::{Model, X509Settings};
use wardgate_protocol::ReasonCode;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::dn::{DnPattern, SubjectName};
use super::{AuthMethodKind, AuthnError, AuthnOutcome, Identity};

/// The Secret key of the old API's attribute mapping.
pub(crate) const OLD_ATTRIBUTES_KEY: &str = "x509Attributes.toml";

/// One subject → attributes entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The label (map key), e.g. `thermostat`.
    pub(crate) label: String,
    /// The subject to match.
    pub(crate) subject: DnPattern,
    /// The attributes given.
    pub(crate) attributes: BTreeMap<String, String>,
}

/// The X509 method, ready to use.
#[derive(Debug, Clone)]
pub(crate) struct X509Method {
    trusted: String,
    /// The trusted client CAs (every certificate of the `trustedClientCaCert` ConfigMap).
    anchors: Vec<CertificateDer<'static>>,
    entries: Vec<Entry>,
}

/// Where a certificate of the path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The client sent it (its position in the presented list).
    Presented(usize),
    /// A trusted CA from the ConfigMap that the client did not send.
    Anchor,
}

/// One certificate on the path from the leaf to a trusted CA.
#[derive(Debug, Clone)]
pub(crate) struct PathCert {
    /// Its subject (RFC 4514 order).
    pub(crate) subject: String,
    /// Where it came from.
    pub(crate) origin: Origin,
}

/// What the chain yields, for authentication and `explain`.
#[derive(Debug, Clone)]
pub(crate) struct ChainAttributes {
    /// The leaf's CN.
    pub(crate) username: Option<String>,
    /// The leaf's notAfter.
    pub(crate) not_after: Option<SystemTime>,
    /// The leaf's notBefore.
    pub(crate) not_before: Option<SystemTime>,
    /// The issuance path, leaf first, up to a trusted CA when `anchored`.
    pub(crate) path: Vec<PathCert>,
    /// Whether the path ends at a certificate of the trusted client CA ConfigMap.
    pub(crate) anchored: bool,
    /// Subjects of presented certificates that are not on the path (ignored).
    pub(crate) ignored: Vec<String>,
    /// The matching certificate's position on the path and the entry's label.
    pub(crate) matched: Option<(usize, String)>,
    /// The matched entry's attributes.
    pub(crate) attributes: BTreeMap<String, String>,
}

impl X509Method {
    pub(crate) fn new(model: &Model, s: &X509Settings) -> Result<X509Method, AuthnError> {
        let mut entries = Vec::new();
        for (label, a) in &s.authorization_attributes {
            entries.push(Entry {
                label: label.clone(),
                subject: DnPattern::parse(&a.subject)
                    .map_err(|e| AuthnError::Attributes(format!("{label}.subject: {e}")))?,
                attributes: a.attributes.clone(),
            });
        }
        if let Some(secret) = &s.attributes_secret {
            let sec = model
                .secrets
                .get(secret)
                .ok_or_else(|| AuthnError::MissingSecret {
                    method: "X509 attributes.secretName".to_owned(),
                    name: secret.clone(),
                })?;
            let text = sec
                .get(OLD_ATTRIBUTES_KEY)
                .ok_or_else(|| AuthnError::MissingKey {
                    resource: format!("Secret/{secret}"),
                    key: OLD_ATTRIBUTES_KEY.to_owned(),
                })?;
            entries.extend(parse_old_attributes(text).map_err(|e| {
                AuthnError::Attributes(format!("Secret/{secret} {OLD_ATTRIBUTES_KEY}: {e}"))
            })?);
        }
        let name = &s.trusted_client_ca_cert;
        let cm = model
            .config_maps
            .get(name)
            .ok_or_else(|| AuthnError::MissingConfigMap {
                method: "X509 x509Settings.trustedClientCaCert".to_owned(),
                name: name.clone(),
            })?;
        let mut anchors = Vec::new();
        for (key, value) in cm.values() {
            // Keys that hold no certificate are skipped, as the TLS layer does.
            if let Ok(found) = crate::pki::pem::certificates(value, key) {
                anchors.extend(found);
            }
        }
        for (i, a) in entries.iter().enumerate() {
            if let Some(b) = entries[..i].iter().find(|b| b.subject == a.subject) {
                tracing::warn!(
                    first = %b.label,
                    ignored = %a.label,
                    subject = %a.subject,
                    "two X509 authorizationAttributes entries have the same subject; only the first applies"
                );
            }
        }
        Ok(X509Method {
            trusted: s.trusted_client_ca_cert.clone(),
            anchors,
            entries,
        })
    }

    /// What a presented chain (leaf first) yields. Only the issuance path counts: from the
    /// leaf, each next certificate is the one (presented, or a trusted CA) whose key signed the
    /// previous, until a trusted CA. Presented certificates off that path are ignored, so a
    /// client cannot borrow a subject by appending a certificate it made.
    pub(crate) fn chain_attributes(&self, chain: &[CertificateDer<'_>]) -> ChainAttributes {
        let mut out = ChainAttributes {
            username: None,
            not_after: None,
            not_before: None,
            path: Vec::new(),
            anchored: false,
            ignored: Vec::new(),
            matched: None,
            attributes: BTreeMap::new(),
        };
        let presented: Vec<Option<X509Certificate<'_>>> = chain
            .iter()
            .map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        let anchors: Vec<Option<X509Certificate<'_>>> = self
            .anchors
            .iter()
            .map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        let Some(Some(leaf)) = presented.first() else {
            return out;
        };
        out.username = SubjectName::from_x509(leaf.subject())
            .common_name()
            .map(str::to_owned);
        out.not_after = Some(to_system_time(leaf.validity().not_after.timestamp()));
        out.not_before = Some(to_system_time(leaf.validity().not_before.timestamp()));

        let mut used = vec![false; presented.len()];
        used[0] = true;
        let mut path: Vec<(&X509Certificate<'_>, Origin)> = vec![(leaf, Origin::Presented(0))];
        while path.len() <= MAX_PATH {
            let (current, origin) = path[path.len() - 1];
            let current_der = match origin {
                Origin::Presented(i) => chain[i].as_ref(),
                Origin::Anchor => &[],
            };
            if origin == Origin::Anchor || self.anchors.iter().any(|a| a.as_ref() == current_der) {
                out.anchored = true;
                break;
            }
            let next = presented.iter().enumerate().find_map(|(i, c)| match c {
                Some(c) if !used[i] && issued_by(current, c) => Some((i, c)),
                _ => None,
            });
            if let Some((i, c)) = next {
                used[i] = true;
                path.push((c, Origin::Presented(i)));
                continue;
            }
            match anchors.iter().flatten().find(|a| issued_by(current, a)) {
                Some(a) => path.push((a, Origin::Anchor)),
                None => break,
            }
        }
        for (pos, (cert, origin)) in path.iter().enumerate() {
            let subject = SubjectName::from_x509(cert.subject());
            if out.matched.is_none()
                && let Some(e) = self.entries.iter().find(|e| e.subject.matches(&subject))
            {
                out.matched = Some((pos, e.label.clone()));
                out.attributes = e.attributes.clone();
            }
            out.path.push(PathCert {
                subject: subject.to_string(),
                origin: *origin,
            });
        }
        for (i, c) in presented.iter().enumerate() {
            if !used[i] {
                out.ignored.push(match c {
                    Some(c) => SubjectName::from_x509(c.subject()).to_string(),
                    None => "(unparsable certificate)".to_owned(),
                });
            }
        }
        out
    }

    /// The trusted client CA ConfigMap, for `explain`.
    pub(crate) fn trusted(&self) -> &str {
        &self.trusted
    }

    /// The entries, for `explain`.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        chain: &[CertificateDer<'_>],
        now: SystemTime,
    ) -> AuthnOutcome {
        let found = self.chain_attributes(chain);
        let Some(not_after) = found.not_after else {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                "X509: the client certificate cannot be read",
            );
        };
        if !found.anchored {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                format!(
                    "X509: the client certificate does not chain to a CA in ConfigMap/{}",
                    self.trusted
                ),
            );
        }
        if not_after <= now {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                "X509: the client certificate has expired",
            );
        }
        if found.not_before.is_some_and(|nb| nb > now) {
            return AuthnOutcome::denied(
                ReasonCode::NOT_AUTHORIZED,
                "X509: the client certificate is not valid yet",
            );
        }
        if found.username.is_none() {
            tracing::warn!(
                client_id,
                subject = found.path.first().map_or("", |p| p.subject.as_str()),
                "X509 client certificate has no CN; the client has no username"
            );
        }
        let mut id = Identity::new(client_id, found.username, AuthMethodKind::X509);
        id.attributes = found.attributes;
        id.expires_at = Some(not_after);
        AuthnOutcome::Allowed(id)
    }
}

/// The longest issuance path followed (leaf, intermediates, trusted CA).
const MAX_PATH: usize = 10;

/// Whether `parent` issued `child`: names chain and the signature verifies (strictly: an
/// algorithm that cannot be checked does not count).
fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw()
        && crate::pki::cert::signed_by(child, parent) == Some(true)
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// Reads the old API's `x509Attributes.toml`: `[label] subject = "…"` with `[label.attributes]`.
pub(crate) fn parse_old_attributes(text: &[u8]) -> Result<Vec<Entry>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "is not UTF-8".to_owned())?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("is not valid TOML: {}", e.message()))?;
    let mut out = Vec::new();
    for (label, v) in &table {
        let toml::Value::Table(t) = v else {
            return Err(format!("`{label}` must be a table ([{label}])"));
        };
        for k in t.keys() {
            if k != "subject" && k != "attributes" {
                return Err(format!("[{label}]: unknown field `{k}`"));
            }
        }
        let Some(toml::Value::String(subject)) = t.get("subject") else {
            return Err(format!("[{label}]: `subject` must be a string"));
        };
        let subject = DnPattern::parse(subject).map_err(|e| format!("[{label}]: {e}"))?;
        let mut attributes = BTreeMap::new();
        match t.get("attributes") {
            None => {}
            Some(toml::Value::Table(a)) => {
                for (k, v) in a {
                    let toml::Value::String(v) = v else {
                        return Err(format!("[{label}.attributes]: `{k}` must be a string"));
                    };
                    attributes.insert(k.clone(), v.clone());
                }
            }
            Some(_) => return Err(format!("[{label}]: `attributes` must be a table")),
        }
        out.push(Entry {
            label: label.clone(),
            subject,
            attributes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_toml_reads() {
        let e = parse_old_attributes(
            br#"
[root]
subject = "CN = Contoso Root CA Cert, OU = Engineering, C = US"
[root.attributes]
organization = "contoso"

[smart-fan]
subject = "CN = smart-fan"
[smart-fan.attributes]
building = "17"
"#,
        )
        .unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].label, "root");
        assert_eq!(e[0].attributes["organization"], "contoso");
        assert_eq!(e[1].subject.as_written(), "CN = smart-fan");
    }

    #[test]
    fn old_toml_errors_name_the_label() {
        assert!(
            parse_old_attributes(b"[a]\nsubject = 3\n")
                .unwrap_err()
                .contains("[a]")
        );
        assert!(
            parse_old_attributes(b"[a]\nsubject = \"CN=x\"\n[a.attributes]\nk = 1\n")
                .unwrap_err()
                .contains("`k`")
        );
        assert!(
            parse_old_attributes(b"[a]\nsubjet = \"CN=x\"\n")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(parse_old_attributes(b"[a\n").unwrap_err().contains("TOML"));
    }
}
