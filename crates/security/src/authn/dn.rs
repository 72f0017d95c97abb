//! Distinguished names as users write them in `authorizationAttributes` (`CN = thermostat`,
//! `CN = Contoso Root CA Cert, OU = Engineering, C = US`, `CN=x,O=y`, `/C=US/O=y/CN=x`) and as
//! certificates encode them, and when the two are the same name (SPEC.md §7.2).
//!
//! Matching compares RDN by RDN, in order: the written order may be the certificate's encoded
//! order (`openssl x509 -subject`, most general first) or RFC 4514's reverse order (most specific
//! first, as AIO's examples write it). Attribute types compare case-insensitively and by OID
//! (`CN`, `commonName` and `2.5.4.3` are the same); values compare after trimming and collapsing
//! runs of spaces, case-sensitively. The attributes of a multi-valued RDN (`+`) compare as a set.

use std::fmt;

use x509_parser::x509::X509Name;

/// One attribute: type OID (dotted) and normalized value.
type Attr = (String, String);

/// A subject as written in the configuration, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnPattern {
    written: String,
    rdns: Vec<Vec<Attr>>,
}

/// Known attribute type names and their OIDs.
const TYPES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("COMMONNAME", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SURNAME", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("COUNTRYNAME", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("LOCALITYNAME", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("STATEORPROVINCENAME", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("STREETADDRESS", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("ORGANIZATIONNAME", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("ORGANIZATIONALUNITNAME", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("GN", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("PSEUDONYM", "2.5.4.65"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("DOMAINCOMPONENT", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("USERID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("EMAIL", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

fn type_oid(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let upper = upper.strip_prefix("OID.").unwrap_or(&upper);
    if let Some((_, oid)) = TYPES.iter().find(|(n, _)| *n == upper) {
        return Some((*oid).to_owned());
    }
    let dotted = !upper.is_empty()
        && upper.split('.').count() >= 2
        && upper
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    dotted.then(|| upper.to_owned())
}

/// The short name of an OID for messages (`CN`), or the OID.
fn short_name(oid: &str) -> &str {
    TYPES
        .iter()
        .find(|(_, o)| *o == oid)
        .map_or(oid, |(n, _)| n)
}

/// Trims and collapses runs of whitespace into one space.
fn normalize_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl DnPattern {
    /// Parses a written subject. `Err` says what is wrong.
    pub fn parse(written: &str) -> Result<DnPattern, String> {
        let s = written.trim();
        if s.is_empty() {
            return Err("the subject is empty".to_owned());
        }
        let rdn_texts: Vec<Vec<String>> = if let Some(slashed) = s.strip_prefix('/') {
            // OpenSSL's `/C=US/O=x/CN=y` form: encoded order, `+` joins a multi-valued RDN.
            slashed
                .split('/')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.split('+').map(str::to_owned).collect())
                .collect()
        } else {
            split_rfc4514(s)?
        };
        let mut rdns = Vec::new();
        for rdn in rdn_texts {
            let mut attrs = Vec::new();
            for av in rdn {
                let Some((t, v)) = av.split_once('=') else {
                    return Err(format!(
                        "\"{}\" is not TYPE = value (in subject \"{written}\")",
                        av.trim()
                    ));
                };
                let Some(oid) = type_oid(t) else {
                    return Err(format!(
                        "unknown attribute type \"{}\" (in subject \"{written}\"); use CN, O, \
                         OU, C, ST, L, DC, emailAddress, ... or a dotted OID",
                        t.trim()
                    ));
                };
                attrs.push((oid, normalize_value(v)));
            }
            attrs.sort();
            rdns.push(attrs);
        }
        Ok(DnPattern {
            written: written.to_owned(),
            rdns,
        })
    }

    /// The subject as written.
    pub fn as_written(&self) -> &str {
        &self.written
    }

    /// Whether a certificate subject (RDNs in encoded order) is this name.
    pub(crate) fn matches(&self, subject: &SubjectName) -> bool {
        let ours = &self.rdns;
        let theirs = &subject.rdns;
        ours.len() == theirs.len()
            && (ours.iter().eq(theirs.iter()) || ours.iter().eq(theirs.iter().rev()))
    }
}

impl fmt::Display for DnPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Splits `CN = a, O = b\, c + UID = d` into RDNs of `TYPE=value` texts, honouring `\` escapes
/// and double-quoted values.
fn split_rfc4514(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rdns = Vec::new();
    let mut rdn = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(format!("subject \"{s}\" ends with a lone `\\`")),
            },
            '"' => quoted = !quoted,
            ',' | ';' if !quoted => {
                rdn.push(std::mem::take(&mut cur));
                rdns.push(std::mem::take(&mut rdn));
            }
            '+' if !quoted => rdn.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("subject \"{s}\" has an unclosed `\"`"));
    }
    rdn.push(cur);
    rdns.push(rdn);
    for rdn in &rdns {
        if rdn.iter().any(|a| a.trim().is_empty()) {
            return Err(format!("subject \"{s}\" has an empty component"));
        }
    }
    Ok(rdns)
}

/// A certificate's subject: RDNs in encoded order, each a sorted set of attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubjectName {
    rdns: Vec<Vec<Attr>>,
}

impl SubjectName {
    pub(crate) fn from_x509(name: &X509Name<'_>) -> SubjectName {
        let rdns = name
            .iter()
            .map(|rdn| {
                let mut attrs: Vec<Attr> = rdn
                    .iter()
                    .map(|a| {
                        let value = match a.as_str() {
                            Ok(s) => s.to_owned(),
                            Err(_) => bmp_or_lossy(a.attr_value().tag(), a.as_slice()),
                        };
                        (a.attr_type().to_id_string(), normalize_value(&value))
                    })
                    .collect();
                attrs.sort();
                attrs
            })
            .collect();
        SubjectName { rdns }
    }

    /// The first CN, as the username of an X509 client.
    pub(crate) fn common_name(&self) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|(oid, _)| oid == "2.5.4.3")
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Display for SubjectName {
    /// RFC 4514 order (most specific first), `TYPE = value`, as AIO's examples write subjects.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            for (j, (oid, v)) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str(" + ")?;
                }
                write!(f, "{} = {v}", short_name(oid))?;
            }
        }
        Ok(())
    }
}

fn bmp_or_lossy(tag: x509_parser::der_parser::asn1_rs::Tag, data: &[u8]) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    if tag == Tag::BmpString {
        let units: Vec<u16> = data
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(data).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(rdns: &[&[(&str, &str)]]) -> SubjectName {
        SubjectName {
            rdns: rdns
                .iter()
                .map(|rdn| {
                    let mut v: Vec<Attr> = rdn
                        .iter()
                        .map(|(t, v)| (type_oid(t).unwrap(), normalize_value(v)))
                        .collect();
                    v.sort();
                    v
                })
                .collect(),
        }
    }

    #[test]
    fn spacing_and_type_case_do_not_matter() {
        let s = subject(&[&[("CN", "thermostat")]]);
        for w in [
            "CN = thermostat",
            "CN=thermostat",
            "cn=thermostat",
            "  commonName =  thermostat ",
            "2.5.4.3=thermostat",
            "/CN=thermostat",
        ] {
            assert!(DnPattern::parse(w).unwrap().matches(&s), "{w}");
        }
        assert!(!DnPattern::parse("CN = Thermostat").unwrap().matches(&s));
        assert!(!DnPattern::parse("CN = thermostat2").unwrap().matches(&s));
        assert!(!DnPattern::parse("O = thermostat").unwrap().matches(&s));
    }

    #[test]
    fn multi_rdn_subjects_match_in_order_either_direction() {
        // Encoded order: C, OU, CN (as `openssl x509 -subject` prints it).
        let s = subject(&[
            &[("C", "US")],
            &[("OU", "Engineering")],
            &[("CN", "Contoso Root CA Cert")],
        ]);
        for w in [
            "CN = Contoso Root CA Cert, OU = Engineering, C = US",
            "C = US, OU = Engineering, CN = Contoso Root CA Cert",
            "CN=Contoso Root CA Cert,OU=Engineering,C=US",
            "/C=US/OU=Engineering/CN=Contoso Root CA Cert",
            "CN = Contoso  Root CA Cert , OU = Engineering, C = US",
        ] {
            assert!(DnPattern::parse(w).unwrap().matches(&s), "{w}");
        }
        // Same attributes, another order: a different name.
        assert!(
            !DnPattern::parse("OU = Engineering, CN = Contoso Root CA Cert, C = US")
                .unwrap()
                .matches(&s)
        );
        // A subset is not the name.
        assert!(
            !DnPattern::parse("CN = Contoso Root CA Cert")
                .unwrap()
                .matches(&s)
        );
    }

    #[test]
    fn multi_valued_rdns_compare_as_sets() {
        let s = subject(&[&[("O", "Fabrikam")], &[("CN", "lamp"), ("UID", "42")]]);
        assert!(
            DnPattern::parse("UID = 42 + CN = lamp, O = Fabrikam")
                .unwrap()
                .matches(&s)
        );
        assert!(
            DnPattern::parse("O=Fabrikam, CN=lamp+UID=42")
                .unwrap()
                .matches(&s)
        );
        assert!(
            !DnPattern::parse("O=Fabrikam, CN=lamp, UID=42")
                .unwrap()
                .matches(&s)
        );
    }

    #[test]
    fn escapes_and_quotes() {
        let s = subject(&[&[("O", "Contoso, Ltd")], &[("CN", "a+b")]]);
        assert!(
            DnPattern::parse(r"CN = a\+b, O = Contoso\, Ltd")
                .unwrap()
                .matches(&s)
        );
        assert!(
            DnPattern::parse(r#"CN = "a+b", O = "Contoso, Ltd""#)
                .unwrap()
                .matches(&s)
        );
    }

    #[test]
    fn bad_subjects_say_why() {
        assert!(DnPattern::parse("").unwrap_err().contains("empty"));
        assert!(
            DnPattern::parse("thermostat")
                .unwrap_err()
                .contains("TYPE = value")
        );
        assert!(
            DnPattern::parse("XX = y")
                .unwrap_err()
                .contains("unknown attribute type")
        );
        assert!(DnPattern::parse("CN = a,").unwrap_err().contains("empty"));
    }

    #[test]
    fn display_is_rfc4514_order() {
        let s = subject(&[&[("C", "US")], &[("CN", "x")]]);
        assert_eq!(s.to_string(), "CN = x, C = US");
        assert_eq!(s.common_name(), Some("x"));
    }
}
