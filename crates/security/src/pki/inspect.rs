//! What `wardgate cert inspect FILE [--host NAME|IP]` reports: each certificate's subject, issuer,
//! SANs, validity and key type; how the certificates chain; and whether a client dialling a name
//! or IP would accept the leaf for it, with webpki's rules (SANs only, no CN fallback), which
//! are also Go's, browsers' and, for names with a SAN, OpenSSL's.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use rustls_pki_types::{CertificateDer, ServerName};

use super::cert::{CertificateInfo, SubjectAltName, Validity, format_time, issued, parse};
use super::issue::{Key, why_not_ca};
use super::{PkiError, pem};

/// The answer to `--host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCheck {
    /// The name or IP asked about.
    pub host: String,
    /// Whether a client dialling it accepts the leaf's names.
    pub accepted: bool,
    /// Why, and what to do when it is not accepted.
    pub explanation: String,
}

/// What a PEM file holds.
#[derive(Debug, Clone)]
pub struct Report {
    /// The certificates, in file order.
    pub certificates: Vec<CertificateInfo>,
    /// How consecutive certificates relate.
    pub chain: Vec<String>,
    /// For a key file: the key's type.
    pub key: Option<String>,
    /// The `--host` answer.
    pub host: Option<HostCheck>,
    /// The time the validity was judged at.
    pub now: SystemTime,
}

/// Reads a PEM file of certificates (or a private key) and describes it.
pub fn inspect(input: &[u8], what: &str, host: Option<&str>) -> Result<Report, PkiError> {
    let now = SystemTime::now();
    let certs = match pem::certificates(input, what) {
        Ok(c) => c,
        Err(e) => {
            if let Ok(key) = Key::from_pem(input, what) {
                let key_type = key
                    .algorithm()
                    .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                return Ok(Report {
                    certificates: Vec::new(),
                    chain: Vec::new(),
                    key: Some(key_type),
                    host: None,
                    now,
                });
            }
            return Err(e);
        }
    };
    let mut infos = Vec::new();
    for (i, c) in certs.iter().enumerate() {
        let mut info = CertificateInfo::from_der(c, &format!("{what}: certificate {}", i + 1))?;
        info.source = what.to_owned();
        infos.push(info);
    }
    let parsed: Vec<_> = certs
        .iter()
        .map(|c| parse(c, what))
        .collect::<Result<_, _>>()?;
    let mut chain = Vec::new();
    for i in 0..certs.len().saturating_sub(1) {
        if issued(&parsed[i], &parsed[i + 1]) {
            chain.push(format!(
                "certificate {} issued certificate {} (signature verified)",
                i + 2,
                i + 1
            ));
        } else {
            chain.push(format!(
                "certificate {} did NOT issue certificate {} (whose issuer is {})",
                i + 2,
                i + 1,
                infos[i].issuer
            ));
        }
        if !infos[i + 1].is_ca && !infos[i + 1].self_signed {
            chain.push(format!(
                "certificate {} is not a CA certificate ({}): clients reject a chain through it",
                i + 2,
                why_not_ca(&infos[i + 1])
            ));
        }
    }
    if let Some(last) = infos.last()
        && last.self_signed
    {
        chain.push(format!(
            "certificate {} is self-signed (a root: clients must have it in their --cafile)",
            infos.len()
        ));
    }
    let host = host.map(|h| check_host(&certs[0], &infos[0], h));
    Ok(Report {
        certificates: infos,
        chain,
        key: None,
        host,
        now,
    })
}

/// Whether a client dialling `host` accepts `leaf` for that name.
pub fn check_host(leaf: &CertificateDer<'_>, info: &CertificateInfo, host: &str) -> HostCheck {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let listed = if info.sans.is_empty() {
        "none".to_owned()
    } else {
        info.sans
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let verdict = match ServerName::try_from(host) {
        Err(_) => Err(format!(
            "\"{host}\" is neither a DNS name nor an IP address"
        )),
        Ok(name) => match webpki::EndEntityCert::try_from(leaf) {
            Err(e) => Err(format!(
                "clients cannot read the certificate as a server certificate ({e:?})"
            )),
            Ok(ee) => ee
                .verify_is_valid_for_subject_name(&name)
                .map_err(|_| String::new()),
        },
    };
    let accepted = verdict.is_ok();
    let explanation = match verdict {
        Ok(()) => {
            let matched = info
                .sans
                .iter()
                .find(|s| san_matches(s, host))
                .map_or_else(|| "a SAN".to_owned(), ToString::to_string);
            let mut s = format!("yes: a client dialling {host} accepts it (matches {matched})");
            match info.validity_at(SystemTime::now()) {
                Validity::Valid => {}
                Validity::Expired => s.push_str(&format!(
                    ", but the certificate expired on {}",
                    format_time(info.not_after)
                )),
                Validity::NotYetValid => s.push_str(&format!(
                    ", but the certificate is not valid before {}",
                    format_time(info.not_before)
                )),
            }
            s
        }
        Err(reason) if !reason.is_empty() => format!("no: {reason}"),
        Err(_) => {
            let ip = host.parse::<IpAddr>().ok();
            let mut s = format!(
                "no: a client dialling {host} rejects it (hostname mismatch): {host} is not among \
                 its SANs ({listed})"
            );
            if ip.is_some()
                && info
                    .sans
                    .iter()
                    .any(|n| matches!(n, SubjectAltName::Dns(d) if d == host))
            {
                s.push_str(&format!(
                    ". {host} is listed as a DNS name, but clients dialling an IP need an IP SAN \
                     (IP:{host})"
                ));
            } else if info.subject.common_name() == Some(host) {
                s.push_str(&format!(
                    ". The subject CN is {host}, but clients ignore the CN when checking names"
                ));
            }
            let fix = if ip.is_some() {
                format!("san.ip: [\"{host}\"]")
            } else {
                format!("san.dns: [\"{host}\"]")
            };
            s.push_str(&format!(
                ". Re-issue it with the name: `wardgate cert server --san {host} ...`, or for \
                 automatic TLS add {fix} to certManagerCertificateSpec"
            ));
            s
        }
    };
    HostCheck {
        host: host.to_owned(),
        accepted,
        explanation,
    }
}

fn san_matches(san: &SubjectAltName, host: &str) -> bool {
    match san {
        SubjectAltName::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        SubjectAltName::Dns(d) => {
            let d = d.to_ascii_lowercase();
            let h = host.to_ascii_lowercase();
            d == h
                || d.strip_prefix("*.").is_some_and(|rest| {
                    h.split_once('.')
                        .is_some_and(|(first, tail)| !first.is_empty() && tail == rest)
                })
        }
        _ => false,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = &self.key {
            return writeln!(f, "Private key: {k}");
        }
        let n = self.certificates.len();
        for (i, c) in self.certificates.iter().enumerate() {
            let role = if c.is_ca {
                if c.self_signed {
                    "root CA"
                } else {
                    "intermediate CA"
                }
            } else if c.self_signed {
                "self-signed"
            } else {
                "leaf"
            };
            writeln!(f, "Certificate {} of {n} ({role})", i + 1)?;
            writeln!(f, "  Subject:     {}", c.subject)?;
            writeln!(f, "  Issuer:      {}", c.issuer)?;
            let sans = if c.sans.is_empty() {
                "(none)".to_owned()
            } else {
                c.sans
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(f, "  SANs:        {sans}")?;
            let state = match c.validity_at(self.now) {
                Validity::Valid => {
                    let left = c
                        .not_after
                        .duration_since(self.now)
                        .unwrap_or_default()
                        .as_secs();
                    format!("valid, {} days left", left / 86400)
                }
                Validity::Expired => "EXPIRED".to_owned(),
                Validity::NotYetValid => "NOT YET VALID".to_owned(),
            };
            writeln!(
                f,
                "  Validity:    {} to {} ({state})",
                format_time(c.not_before),
                format_time(c.not_after)
            )?;
            writeln!(f, "  Key:         {}", c.key_type)?;
            let ca = match (c.is_ca, c.path_len) {
                (true, Some(p)) => format!("CA:TRUE, pathlen {p}"),
                (true, None) => "CA:TRUE".to_owned(),
                (false, _) if c.version < 3 => format!("no (X.509 v{})", c.version),
                (false, _) => "CA:FALSE".to_owned(),
            };
            writeln!(f, "  CA:          {ca}")?;
            if !c.extended_key_usages.is_empty() {
                writeln!(
                    f,
                    "  Usage:       {}",
                    c.extended_key_usages
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            writeln!(f, "  Serial:      {}", c.serial)?;
            writeln!(f, "  SHA-256:     {}", c.sha256)?;
        }
        for line in &self.chain {
            writeln!(f, "Chain: {line}")?;
        }
        if let Some(h) = &self.host {
            writeln!(f, "Host {}: {}", h.host, h.explanation)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::issue::{CertRequest, Profile, self_signed};
    use std::time::Duration;
    use wardgate_config::KeyAlgorithm;

    fn server(sans: &[&str]) -> (CertificateDer<'static>, CertificateInfo) {
        let k = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let req = CertRequest::new("mqtts-endpoint", Profile::Server, Duration::from_secs(3600))
            .with_sans(sans);
        let c = self_signed(&req, &k).unwrap();
        let info = CertificateInfo::from_der(&c, "c").unwrap();
        (c, info)
    }

    #[test]
    fn the_san_mistake_is_predicted() {
        let (c, info) = server(&["192.168.2.196", "localhost"]);
        assert!(check_host(&c, &info, "192.168.2.196").accepted);
        assert!(check_host(&c, &info, "localhost").accepted);
        let no = check_host(&c, &info, "10.13.100.11");
        assert!(!no.accepted);
        assert!(no.explanation.contains("san.ip"), "{}", no.explanation);
        assert!(no.explanation.contains("--san 10.13.100.11"));
        let no = check_host(&c, &info, "mqtts-endpoint");
        assert!(
            no.explanation.contains("clients ignore the CN"),
            "{}",
            no.explanation
        );
    }

    #[test]
    fn an_ip_written_as_a_dns_name_is_explained() {
        let k = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let mut req = CertRequest::new("x", Profile::Server, Duration::from_secs(3600));
        req.dns_names.push("10.0.0.5".into());
        let c = self_signed(&req, &k);
        // rcgen refuses nothing here; the DNS SAN holds the IP text.
        let c = c.unwrap();
        let info = CertificateInfo::from_der(&c, "c").unwrap();
        let no = check_host(&c, &info, "10.0.0.5");
        assert!(!no.accepted);
        assert!(
            no.explanation.contains("listed as a DNS name"),
            "{}",
            no.explanation
        );
    }

    #[test]
    fn wildcards_match_one_label() {
        let (c, info) = server(&["*.example.com"]);
        assert!(check_host(&c, &info, "mqtt.example.com").accepted);
        assert!(!check_host(&c, &info, "a.b.example.com").accepted);
        assert!(!check_host(&c, &info, "example.com").accepted);
    }
}
