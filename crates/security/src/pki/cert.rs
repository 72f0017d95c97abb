//! What a certificate says, read once with x509-parser into owned values: subject and issuer
//! names, SANs, validity, key type, CA flags, key usages, fingerprint. Also whether one
//! certificate's signature verifies under another's key (aws-lc-rs), which the chain checks, the
//! reuse of issued certificates and `wardgate cert inspect` rely on.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{self as oids, Oid};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use super::PkiError;

/// A distinguished name as its attributes, in encoded order (most general first, as
/// `openssl x509 -subject` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DistinguishedName {
    /// `(short name or dotted OID, value)`, e.g. `("CN", "thermostat")`.
    pub attributes: Vec<(String, String)>,
}

impl DistinguishedName {
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Self {
        let attributes = name
            .iter_attributes()
            .map(|a| {
                let oid = a.attr_type();
                let key = short_name(oid);
                let value = match a.as_str() {
                    Ok(s) => s.to_owned(),
                    Err(_) => decode_other_string(a.attr_value().tag(), a.as_slice()),
                };
                (key, value)
            })
            .collect();
        DistinguishedName { attributes }
    }

    /// The first CN, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.get("CN")
    }

    /// The first attribute of a type (short name such as `O`, `OU`, `CN`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this name equals a name written by a user, OpenSSL style (`CN = smart-fan`,
    /// `CN = Contoso Root CA Cert, OU = Engineering, C = US`) or RFC 4514 style (`CN=x,O=y`):
    /// attribute types compare case-insensitively, values after trimming, and the order of the
    /// attributes does not matter.
    pub fn matches_written(&self, written: &str) -> bool {
        let Some(mut theirs) = parse_written(written) else {
            return false;
        };
        let mut ours: Vec<(String, String)> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.trim().to_owned()))
            .collect();
        ours.sort();
        theirs.sort();
        ours == theirs
    }
}

/// Splits `CN = a, O = b` (or `/CN=a/O=b`) into upper-cased types and trimmed values; `\,` escapes
/// a comma.
fn parse_written(s: &str) -> Option<Vec<(String, String)>> {
    let s = s.trim();
    let parts: Vec<String> = if let Some(rest) = s.strip_prefix('/') {
        rest.split('/').map(str::to_owned).collect()
    } else {
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ',' | '+' => parts.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        parts.push(cur);
        parts
    };
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_uppercase(), v.trim().to_owned()))
        })
        .collect()
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attributes.is_empty() {
            return f.write_str("(empty)");
        }
        for (i, (k, v)) in self.attributes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k} = {v}")?;
        }
        Ok(())
    }
}

fn short_name(oid: &Oid<'_>) -> String {
    let known = [
        (oids::OID_X509_COMMON_NAME, "CN"),
        (oids::OID_X509_ORGANIZATION_NAME, "O"),
        (oids::OID_X509_ORGANIZATIONAL_UNIT, "OU"),
        (oids::OID_X509_COUNTRY_NAME, "C"),
        (oids::OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
        (oids::OID_X509_LOCALITY_NAME, "L"),
        (oids::OID_X509_SERIALNUMBER, "serialNumber"),
        (oids::OID_DOMAIN_COMPONENT, "DC"),
        (oids::OID_PKCS9_EMAIL_ADDRESS, "emailAddress"),
        (oids::OID_X509_STREET_ADDRESS, "street"),
        (oids::OID_X509_TITLE, "title"),
        (oids::OID_X509_GIVEN_NAME, "GN"),
        (oids::OID_X509_SURNAME, "SN"),
    ];
    known
        .iter()
        .find(|(o, _)| o == oid)
        .map_or_else(|| oid.to_id_string(), |(_, n)| (*n).to_owned())
}

fn decode_other_string(tag: x509_parser::der_parser::asn1_rs::Tag, data: &[u8]) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    match tag {
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(data).into_owned(),
    }
}

/// A subjectAltName entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectAltName {
    /// A DNS name (possibly a wildcard).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An e-mail address.
    Email(String),
    /// A URI.
    Uri(String),
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectAltName::Dns(d) => write!(f, "DNS:{d}"),
            SubjectAltName::Ip(ip) => write!(f, "IP:{ip}"),
            SubjectAltName::Email(e) => write!(f, "email:{e}"),
            SubjectAltName::Uri(u) => write!(f, "URI:{u}"),
            SubjectAltName::Other(o) => f.write_str(o),
        }
    }
}

/// The type and size of a certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on P-256.
    EcP256,
    /// ECDSA on P-384.
    EcP384,
    /// ECDSA on P-521.
    EcP521,
    /// Ed25519.
    Ed25519,
    /// RSA with this modulus size in bits.
    Rsa(usize),
    /// Anything else, described.
    Other(String),
}

impl KeyType {
    /// Whether the key is RSA (for "mixed EC/RSA chain" notes).
    pub fn is_rsa(&self) -> bool {
        matches!(self, KeyType::Rsa(_))
    }

    /// The configuration's algorithm of this key type, if it is one of the seven.
    pub fn algorithm(&self) -> Option<wardgate_config::KeyAlgorithm> {
        use wardgate_config::KeyAlgorithm as A;
        Some(match self {
            KeyType::EcP256 => A::Ec256,
            KeyType::EcP384 => A::Ec384,
            KeyType::EcP521 => A::Ec521,
            KeyType::Ed25519 => A::Ed25519,
            KeyType::Rsa(2048) => A::Rsa2048,
            KeyType::Rsa(4096) => A::Rsa4096,
            KeyType::Rsa(8192) => A::Rsa8192,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::EcP256 => f.write_str("EC P-256"),
            KeyType::EcP384 => f.write_str("EC P-384"),
            KeyType::EcP521 => f.write_str("EC P-521"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Rsa(bits) => write!(f, "RSA {bits}"),
            KeyType::Other(o) => f.write_str(o),
        }
    }
}

/// An extended key usage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtendedKeyUsage {
    /// TLS server (`serverAuth`).
    ServerAuth,
    /// TLS client (`clientAuth`).
    ClientAuth,
    /// Any purpose.
    Any,
    /// Another purpose, by OID.
    Other(String),
}

impl fmt::Display for ExtendedKeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtendedKeyUsage::ServerAuth => f.write_str("serverAuth"),
            ExtendedKeyUsage::ClientAuth => f.write_str("clientAuth"),
            ExtendedKeyUsage::Any => f.write_str("anyExtendedKeyUsage"),
            ExtendedKeyUsage::Other(o) => f.write_str(o),
        }
    }
}

/// Where a certificate is in its validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// Between notBefore and notAfter.
    Valid,
    /// Before notBefore.
    NotYetValid,
    /// After notAfter.
    Expired,
}

/// Everything Wardgate reports about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject.
    pub subject: DistinguishedName,
    /// Issuer.
    pub issuer: DistinguishedName,
    /// Serial number, hex with colons (as OpenSSL prints it).
    pub serial: String,
    /// subjectAltName entries.
    pub sans: Vec<SubjectAltName>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Public key type.
    pub key_type: KeyType,
    /// X.509 version (1, 2 or 3).
    pub version: u32,
    /// `basicConstraints CA:TRUE`.
    pub is_ca: bool,
    /// `basicConstraints pathlen`, if set.
    pub path_len: Option<u32>,
    /// Key usage includes keyCertSign (or there is no key usage extension).
    pub may_sign_certificates: bool,
    /// Extended key usages; empty when the extension is absent (any purpose).
    pub extended_key_usages: Vec<ExtendedKeyUsage>,
    /// Issuer and subject are the same name and the signature verifies under its own key.
    pub self_signed: bool,
    /// SHA-256 of the DER, hex with colons.
    pub sha256: String,
    /// Where it came from: `Secret/x`, `issued by ClusterIssuer/y`, a file name.
    pub source: String,
}

impl CertificateInfo {
    /// Reads a DER certificate. `what` names it in errors.
    pub fn from_der(der: &[u8], what: &str) -> Result<CertificateInfo, PkiError> {
        let cert = parse(der, what)?;
        Ok(Self::from_parsed(&cert, der))
    }

    pub(crate) fn from_parsed(cert: &X509Certificate<'_>, der: &[u8]) -> CertificateInfo {
        let (is_ca, path_len) = match cert.basic_constraints() {
            Ok(Some(bc)) => (bc.value.ca, bc.value.path_len_constraint),
            _ => (false, None),
        };
        let may_sign_certificates = match cert.key_usage() {
            Ok(Some(ku)) => ku.value.key_cert_sign(),
            _ => true,
        };
        let mut extended_key_usages = Vec::new();
        if let Ok(Some(eku)) = cert.extended_key_usage() {
            let eku = eku.value;
            if eku.any {
                extended_key_usages.push(ExtendedKeyUsage::Any);
            }
            if eku.server_auth {
                extended_key_usages.push(ExtendedKeyUsage::ServerAuth);
            }
            if eku.client_auth {
                extended_key_usages.push(ExtendedKeyUsage::ClientAuth);
            }
            for o in &eku.other {
                extended_key_usages.push(ExtendedKeyUsage::Other(o.to_id_string()));
            }
        }
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
            && signed_by(cert, cert).unwrap_or(true);
        CertificateInfo {
            subject: DistinguishedName::from_x509(cert.subject()),
            issuer: DistinguishedName::from_x509(cert.issuer()),
            serial: hex_colons(cert.raw_serial()),
            sans: sans(cert),
            not_before: to_system_time(cert.validity().not_before.timestamp()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
            key_type: key_type(cert),
            version: cert.version().0 + 1,
            is_ca,
            path_len,
            may_sign_certificates,
            extended_key_usages,
            self_signed,
            sha256: hex_colons(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
            source: String::new(),
        }
    }

    /// Where `now` falls in the validity period.
    pub fn validity_at(&self, now: SystemTime) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }

    /// The CN, or the whole subject when it has none: how messages name a certificate.
    pub fn name(&self) -> String {
        match self.subject.common_name() {
            Some(cn) => format!("CN = {cn}"),
            None => self.subject.to_string(),
        }
    }

    /// Whether the certificate may be used by a TLS server (no EKU, serverAuth or any).
    pub fn allows_server_auth(&self) -> bool {
        self.extended_key_usages.is_empty()
            || self
                .extended_key_usages
                .iter()
                .any(|e| matches!(e, ExtendedKeyUsage::ServerAuth | ExtendedKeyUsage::Any))
    }

    /// Whether the certificate may be used by a TLS client (no EKU, clientAuth or any).
    pub fn allows_client_auth(&self) -> bool {
        self.extended_key_usages.is_empty()
            || self
                .extended_key_usages
                .iter()
                .any(|e| matches!(e, ExtendedKeyUsage::ClientAuth | ExtendedKeyUsage::Any))
    }
}

/// Parses DER as one X.509 certificate with nothing after it.
pub(crate) fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(PkiError::cert(
            what,
            format!("{} bytes of garbage after the certificate", rest.len()),
        )),
        Err(e) => Err(PkiError::cert(
            what,
            format!("does not parse as an X.509 certificate ({e})"),
        )),
    }
}

/// The certificate's SANs.
fn sans(cert: &X509Certificate<'_>) -> Vec<SubjectAltName> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => SubjectAltName::Dns((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => SubjectAltName::Ip(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                16 => {
                    SubjectAltName::Ip(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()))
                }
                _ => SubjectAltName::Other(format!("IP:<{} bytes>", b.len())),
            },
            GeneralName::RFC822Name(e) => SubjectAltName::Email((*e).to_owned()),
            GeneralName::URI(u) => SubjectAltName::Uri((*u).to_owned()),
            other => SubjectAltName::Other(format!("{other:?}")),
        })
        .collect()
}

fn key_type(cert: &X509Certificate<'_>) -> KeyType {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == oids::OID_EC_P256 => KeyType::EcP256,
            Some(c) if c == oids::OID_NIST_EC_P384 => KeyType::EcP384,
            Some(c) if c == oids::OID_NIST_EC_P521 => KeyType::EcP521,
            Some(c) => KeyType::Other(format!("EC curve {}", c.to_id_string())),
            None => KeyType::Other("EC (no curve)".to_owned()),
        };
    }
    if *alg == oids::OID_SIG_ED25519 {
        return KeyType::Ed25519;
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyType::Rsa(rsa.key_size()),
        _ => KeyType::Other(format!("key algorithm {}", alg.to_id_string())),
    }
}

/// Whether `child`'s signature verifies under `parent`'s public key. `None` when the signature
/// algorithm is one Wardgate does not check (RSA-PSS, DSA, ...).
pub(crate) fn signed_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> Option<bool> {
    let sig_alg = &child.signature_algorithm.algorithm;
    let parent_key = parent.public_key();
    let curve = parent_key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let is = |o: &Oid<'_>| sig_alg == o;
    let curve_is = |o: &Oid<'_>| curve.as_ref() == Some(o);
    let alg: &'static dyn VerificationAlgorithm =
        if parent_key.algorithm.algorithm == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let (p256, p384, p521) = (
                curve_is(&oids::OID_EC_P256),
                curve_is(&oids::OID_NIST_EC_P384),
                curve_is(&oids::OID_NIST_EC_P521),
            );
            if is(&oids::OID_SIG_ECDSA_WITH_SHA256) {
                match (p256, p384, p521) {
                    (true, _, _) => &signature::ECDSA_P256_SHA256_ASN1,
                    (_, true, _) => &signature::ECDSA_P384_SHA256_ASN1,
                    (_, _, true) => &signature::ECDSA_P521_SHA256_ASN1,
                    _ => return None,
                }
            } else if is(&oids::OID_SIG_ECDSA_WITH_SHA384) {
                match (p256, p384, p521) {
                    (true, _, _) => &signature::ECDSA_P256_SHA384_ASN1,
                    (_, true, _) => &signature::ECDSA_P384_SHA384_ASN1,
                    (_, _, true) => &signature::ECDSA_P521_SHA384_ASN1,
                    _ => return None,
                }
            } else if is(&oids::OID_SIG_ECDSA_WITH_SHA512) && p521 {
                &signature::ECDSA_P521_SHA512_ASN1
            } else {
                return Some(false);
            }
        } else if parent_key.algorithm.algorithm == oids::OID_PKCS1_RSAENCRYPTION {
            if is(&oids::OID_PKCS1_SHA256WITHRSA) {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            } else if is(&oids::OID_PKCS1_SHA384WITHRSA) {
                &signature::RSA_PKCS1_2048_8192_SHA384
            } else if is(&oids::OID_PKCS1_SHA512WITHRSA) {
                &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY
            } else if is(&oids::OID_PKCS1_SHA1WITHRSA) {
                &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
            } else if is(&oids::OID_PKCS1_RSASSAPSS) {
                return None;
            } else {
                return Some(false);
            }
        } else if parent_key.algorithm.algorithm == oids::OID_SIG_ED25519 {
            if is(&oids::OID_SIG_ED25519) {
                &signature::ED25519
            } else {
                return Some(false);
            }
        } else {
            return None;
        };
    let key = UnparsedPublicKey::new(alg, parent_key.subject_public_key.data.as_ref());
    Some(
        key.verify(
            child.tbs_certificate.as_ref(),
            child.signature_value.data.as_ref(),
        )
        .is_ok(),
    )
}

/// Whether `child` names `parent` as issuer and its signature verifies under `parent`'s key
/// (names alone when the algorithm is not one Wardgate checks).
pub(crate) fn issued(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw() && signed_by(child, parent).unwrap_or(true)
}

/// Whether the DER certificate `child` was issued by the DER certificate `parent`.
pub fn is_issued_by(child: &CertificateDer<'_>, parent: &CertificateDer<'_>) -> bool {
    match (parse(child, "certificate"), parse(parent, "certificate")) {
        (Ok(c), Ok(p)) => issued(&c, &p),
        _ => false,
    }
}

pub(crate) fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

pub(crate) fn hex_colons(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// A UTC timestamp as `2025-01-31 12:00:00 UTC`.
pub fn format_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => format!("{secs} (UNIX)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_names_match_in_any_order_and_spacing() {
        let dn = DistinguishedName {
            attributes: vec![
                ("C".into(), "US".into()),
                ("OU".into(), "Engineering".into()),
                ("CN".into(), "Contoso Root CA Cert".into()),
            ],
        };
        assert!(dn.matches_written("CN = Contoso Root CA Cert, OU = Engineering, C = US"));
        assert!(dn.matches_written("C=US,OU=Engineering,CN=Contoso Root CA Cert"));
        assert!(dn.matches_written("/C=US/OU=Engineering/CN=Contoso Root CA Cert"));
        assert!(!dn.matches_written("CN = Contoso Root CA Cert"));
        assert!(!dn.matches_written("garbage"));
        assert_eq!(
            dn.to_string(),
            "C = US, OU = Engineering, CN = Contoso Root CA Cert"
        );
    }

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14 22:13:20 UTC"
        );
    }

    #[test]
    fn hex_is_upper_case_with_colons() {
        assert_eq!(hex_colons(&[0x0a, 0xff, 0x00]), "0A:FF:00");
    }
}
