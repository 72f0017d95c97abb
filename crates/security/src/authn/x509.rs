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
    entries: Vec<Entry>,
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
    /// Every certificate's subject, leaf first.
    pub(crate) subjects: Vec<String>,
    /// The matching certificate's position and the entry's label.
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
            entries,
        })
    }

    /// What a chain (leaf first) yields.
    pub(crate) fn chain_attributes(&self, chain: &[CertificateDer<'_>]) -> ChainAttributes {
        let mut out = ChainAttributes {
            username: None,
            not_after: None,
            not_before: None,
            subjects: Vec::new(),
            matched: None,
            attributes: BTreeMap::new(),
        };
        for (i, der) in chain.iter().enumerate() {
            let Ok((_, cert)) = X509Certificate::from_der(der) else {
                out.subjects.push("(unparsable certificate)".to_owned());
                continue;
            };
            let subject = SubjectName::from_x509(cert.subject());
            if i == 0 {
                out.username = subject.common_name().map(str::to_owned);
                out.not_after = Some(to_system_time(cert.validity().not_after.timestamp()));
                out.not_before = Some(to_system_time(cert.validity().not_before.timestamp()));
            }
            out.subjects.push(subject.to_string());
            if out.matched.is_none()
                && let Some(e) = self.entries.iter().find(|e| e.subject.matches(&subject))
            {
                out.matched = Some((i, e.label.clone()));
                out.attributes = e.attributes.clone();
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
                subject = found.subjects.first().map_or("", String::as_str),
                "X509 client certificate has no CN; the client has no username"
            );
        }
        let mut id = Identity::new(client_id, found.username, AuthMethodKind::X509);
        id.attributes = found.attributes;
        id.expires_at = Some(not_after);
        AuthnOutcome::Allowed(id)
    }
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
