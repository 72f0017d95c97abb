//! Making keys and certificates with rcgen: the seven key algorithms of the configuration, root
//! and intermediate CAs, server and client leaves, self-signed servers; and [`Signer`], a CA
//! loaded from PEM (a Secret, the quickstart CA, `wardgate cert --ca-cert/--ca-key`) after the
//! checks that make what it signs acceptable to clients.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wardgate_config::KeyAlgorithm;

use super::cert::{CertificateInfo, Validity, format_time, parse};
use super::{PkiError, pem};

/// What a certificate is for; decides basicConstraints, key usage and extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A self-signed root CA: `CA:TRUE`, keyCertSign + cRLSign.
    RootCa,
    /// A CA signed by another: `CA:TRUE` (with a path length if given), keyCertSign + cRLSign.
    IntermediateCa {
        /// `pathlen`; `None` = unconstrained.
        path_len: Option<u8>,
    },
    /// A TLS server: `CA:FALSE`, digitalSignature (+ keyEncipherment for RSA), EKU serverAuth.
    Server,
    /// A TLS client: `CA:FALSE`, digitalSignature (+ keyEncipherment for RSA), EKU clientAuth.
    Client,
}

/// The subject, names and validity of a certificate to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    /// Subject CN.
    pub common_name: String,
    /// Subject O, if any (written before the CN).
    pub organization: Option<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// What it is for.
    pub profile: Profile,
}

impl CertRequest {
    /// A request valid from a minute ago (for clients whose clock is a little behind) for
    /// `lifetime`.
    pub fn new(common_name: &str, profile: Profile, lifetime: Duration) -> CertRequest {
        let now = truncate_to_seconds(SystemTime::now());
        CertRequest {
            common_name: common_name.to_owned(),
            organization: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            not_before: now - BACKDATE,
            not_after: now + lifetime,
            profile,
        }
    }

    /// Sorts each SAN argument into DNS or IP (`--san 192.168.2.196` is an IP SAN).
    pub fn with_sans<S: AsRef<str>>(mut self, sans: &[S]) -> CertRequest {
        for s in sans {
            let s = s.as_ref().trim();
            match s
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => push_unique(&mut self.ip_addresses, ip),
                Err(_) => push_unique(&mut self.dns_names, s.to_owned()),
            }
        }
        self
    }
}

/// How far before "now" issued certificates start: clients with a clock slightly behind must not
/// see a certificate that is not valid yet.
pub const BACKDATE: Duration = Duration::from_secs(60);

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

pub(crate) fn truncate_to_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// A private key able to sign, with its PKCS#8 form for writing out.
#[derive(Debug)]
pub struct Key {
    pair: KeyPair,
    der: PrivateKeyDer<'static>,
}

impl Key {
    /// Generates a key of a configuration algorithm. RSA 8192 takes seconds.
    pub fn generate(alg: KeyAlgorithm) -> Result<Key, PkiError> {
        let fail = |e: rcgen::Error| PkiError::crypto(&format!("generating a {alg} key"), e);
        let pair = match alg {
            KeyAlgorithm::Ec256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Ec384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyAlgorithm::Ec521 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
            KeyAlgorithm::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyAlgorithm::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
            KeyAlgorithm::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)
            }
            KeyAlgorithm::Rsa8192 => {
                use aws_lc_rs::encoding::AsDer;
                let k = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa8192)
                    .map_err(|e| PkiError::crypto("generating an RSA 8192 key", e))?;
                let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'static>>::as_der(&k)
                    .map_err(|e| PkiError::crypto("encoding an RSA 8192 key", e))?;
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()),
                    &rcgen::PKCS_RSA_SHA256,
                )
            }
        }
        .map_err(fail)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
        Ok(Key { pair, der })
    }

    /// Loads a PEM private key (PKCS#8, PKCS#1 or SEC1) for signing. `what` names it in errors.
    pub fn from_pem(input: &[u8], what: &str) -> Result<Key, PkiError> {
        let der = pem::private_key(input, what)?;
        Self::from_der(der, what)
    }

    /// Loads a DER private key for signing.
    pub fn from_der(der: PrivateKeyDer<'static>, what: &str) -> Result<Key, PkiError> {
        let pair = KeyPair::try_from(&der).map_err(|_| {
            PkiError::key(
                what,
                "unsupported key type: Wardgate signs with EC P-256/384/521, Ed25519 and RSA keys",
            )
        })?;
        Ok(Key { pair, der })
    }

    /// The key as it was loaded or generated (PKCS#8 when generated).
    pub fn der(&self) -> &PrivateKeyDer<'static> {
        &self.der
    }

    /// The key as PEM (`PRIVATE KEY` when generated).
    pub fn pem(&self) -> String {
        pem::private_key_pem(&self.der)
    }

    /// The key's configuration algorithm, when it is one of the seven.
    pub fn algorithm(&self) -> Option<KeyAlgorithm> {
        let alg = self.pair.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyAlgorithm::Ec256)
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(KeyAlgorithm::Ec384)
        } else if alg == &rcgen::PKCS_ECDSA_P521_SHA512 {
            Some(KeyAlgorithm::Ec521)
        } else if alg == &rcgen::PKCS_ED25519 {
            Some(KeyAlgorithm::Ed25519)
        } else if self.is_rsa() {
            // The modulus length in bytes, from the public key.
            match rsa_modulus_bits(self.pair.der_bytes()) {
                2048 => Some(KeyAlgorithm::Rsa2048),
                4096 => Some(KeyAlgorithm::Rsa4096),
                8192 => Some(KeyAlgorithm::Rsa8192),
                _ => None,
            }
        } else {
            None
        }
    }

    fn is_rsa(&self) -> bool {
        let alg = self.pair.algorithm();
        alg == &rcgen::PKCS_RSA_SHA256
            || alg == &rcgen::PKCS_RSA_SHA384
            || alg == &rcgen::PKCS_RSA_SHA512
    }
}

use rcgen::PublicKeyData as _;

/// The modulus size of a PKCS#1 RSAPublicKey.
fn rsa_modulus_bits(public_key_der: &[u8]) -> usize {
    use x509_parser::der_parser::der::{parse_der_integer, parse_der_sequence_defined_g};
    let parsed = parse_der_sequence_defined_g(|i, _| {
        let (i, n) = parse_der_integer(i)?;
        let (i, _e) = parse_der_integer(i)?;
        Ok((i, n))
    })(public_key_der);
    match parsed {
        Ok((_, n)) => {
            let bytes = n.as_slice().unwrap_or_default();
            let bytes = match bytes.first() {
                Some(0) => &bytes[1..],
                _ => bytes,
            };
            bytes.len() * 8
        }
        Err(_) => 0,
    }
}

fn params(req: &CertRequest, key: &Key) -> Result<CertificateParams, PkiError> {
    if req.not_after <= req.not_before {
        return Err(PkiError::Invalid(format!(
            "the certificate would end ({}) before it starts ({})",
            format_time(req.not_after),
            format_time(req.not_before)
        )));
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(o) = &req.organization {
        p.distinguished_name
            .push(DnType::OrganizationName, o.as_str());
    }
    p.distinguished_name
        .push(DnType::CommonName, req.common_name.as_str());
    p.not_before = req.not_before.into();
    p.not_after = req.not_after.into();
    p.serial_number = Some(random_serial()?);
    for d in &req.dns_names {
        let name = rcgen::string::Ia5String::try_from(d.as_str()).map_err(|_| {
            PkiError::Invalid(format!(
                "\"{d}\" is not a valid DNS name for a subjectAltName (ASCII only)"
            ))
        })?;
        p.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &req.ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let leaf_usages = |eku| {
        let mut ku = vec![KeyUsagePurpose::DigitalSignature];
        if key.is_rsa() {
            ku.push(KeyUsagePurpose::KeyEncipherment);
        }
        (ku, vec![eku])
    };
    match req.profile {
        Profile::RootCa | Profile::IntermediateCa { .. } => {
            p.is_ca = match req.profile {
                Profile::IntermediateCa { path_len: Some(n) } => {
                    IsCa::Ca(BasicConstraints::Constrained(n))
                }
                _ => IsCa::Ca(BasicConstraints::Unconstrained),
            };
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        }
        Profile::Server => {
            p.is_ca = IsCa::ExplicitNoCa;
            (p.key_usages, p.extended_key_usages) =
                leaf_usages(ExtendedKeyUsagePurpose::ServerAuth);
        }
        Profile::Client => {
            p.is_ca = IsCa::ExplicitNoCa;
            (p.key_usages, p.extended_key_usages) =
                leaf_usages(ExtendedKeyUsagePurpose::ClientAuth);
        }
    }
    Ok(p)
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|e| PkiError::crypto("random serial", e))?;
    // Positive, and 16 bytes long in DER.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A self-signed certificate: a root CA, or a server that is its own trust anchor (cert-manager's
/// `selfSigned` issuer).
pub fn self_signed(req: &CertRequest, key: &Key) -> Result<CertificateDer<'static>, PkiError> {
    let p = params(req, key)?;
    let cert = p
        .self_signed(&key.pair)
        .map_err(|e| PkiError::crypto("signing", e))?;
    Ok(cert.der().clone())
}

/// A CA certificate and its key, checked to be usable for issuing.
#[derive(Debug)]
pub struct Signer {
    chain: Vec<CertificateDer<'static>>,
    info: CertificateInfo,
    key: Key,
}

impl Signer {
    /// Loads a CA from PEM: the first certificate of `cert_pem` is the CA, any others its own
    /// chain (for `--bundle` and for serving). Checks that it is a CA (`basicConstraints CA:TRUE`,
    /// keyCertSign), that the key is its key, and that it is valid now.
    pub fn from_pem(
        cert_pem: &[u8],
        cert_what: &str,
        key_pem: &[u8],
        key_what: &str,
        provider: &CryptoProvider,
    ) -> Result<Signer, PkiError> {
        let chain = pem::certificates(cert_pem, cert_what)?;
        let key = Key::from_pem(key_pem, key_what)?;
        Self::new(chain, cert_what, key, key_what, provider)
    }

    /// As [`Signer::from_pem`], from parsed parts.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        cert_what: &str,
        key: Key,
        key_what: &str,
        provider: &CryptoProvider,
    ) -> Result<Signer, PkiError> {
        let Some(first) = chain.first() else {
            return Err(PkiError::cert(cert_what, "holds no certificate"));
        };
        let info = CertificateInfo::from_der(first, cert_what)?;
        if !info.is_ca {
            return Err(PkiError::NotACa(format!(
                "{cert_what}: {} is not a CA certificate ({}), so certificates it signs are \
                 rejected by every client. {}",
                info.name(),
                why_not_ca(&info),
                CA_FIX
            )));
        }
        if !info.may_sign_certificates {
            return Err(PkiError::NotACa(format!(
                "{cert_what}: {} has a key usage without keyCertSign, so it may not sign \
                 certificates. {}",
                info.name(),
                CA_FIX
            )));
        }
        check_key_matches(first, key.der(), provider).map_err(|e| match e {
            PkiError::KeyMismatch(_) => PkiError::KeyMismatch(format!(
                "{key_what} is not the private key of {cert_what} ({})",
                info.name()
            )),
            other => other,
        })?;
        match info.validity_at(SystemTime::now()) {
            Validity::Valid => {}
            Validity::Expired => {
                return Err(PkiError::Invalid(format!(
                    "{cert_what}: the CA certificate {} expired on {}; certificates it signs \
                     would be rejected",
                    info.name(),
                    format_time(info.not_after)
                )));
            }
            Validity::NotYetValid => {
                return Err(PkiError::Invalid(format!(
                    "{cert_what}: the CA certificate {} is not valid before {}",
                    info.name(),
                    format_time(info.not_before)
                )));
            }
        }
        Ok(Signer { chain, info, key })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The CA certificate followed by the other certificates of its file.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// What the CA certificate says.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// The CA's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Signs a certificate for `subject_key`. Its end is capped at the CA's own notAfter (as
    /// cert-manager does): a certificate cannot outlive its issuer.
    pub fn issue(
        &self,
        req: &CertRequest,
        subject_key: &Key,
    ) -> Result<CertificateDer<'static>, PkiError> {
        let mut req = req.clone();
        if req.not_after > self.info.not_after {
            req.not_after = self.info.not_after;
        }
        let mut p = params(&req, subject_key)?;
        p.use_authority_key_identifier_extension = true;
        let issuer =
            rcgen::Issuer::from_ca_cert_der(self.certificate(), &self.key.pair).map_err(|e| {
                PkiError::crypto(
                    &format!(
                        "reading the CA certificate {} for signing (multi-valued names are not \
                         supported)",
                        self.info.name()
                    ),
                    e,
                )
            })?;
        let cert = p
            .signed_by(&subject_key.pair, &issuer)
            .map_err(|e| PkiError::crypto("signing", e))?;
        let der = cert.der().clone();
        // rcgen re-encodes the issuer's name; clients match it byte for byte.
        let (ca, issued) = (
            parse(self.certificate(), "CA")?,
            parse(&der, "issued certificate")?,
        );
        if issued.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::Invalid(format!(
                "the CA's subject ({}) cannot be reproduced exactly (repeated attributes?); \
                 certificates it signs would not chain",
                self.info.subject
            )));
        }
        Ok(der)
    }
}

/// The advice for a certificate that must be a CA and is not.
pub(crate) const CA_FIX: &str = "Make it a CA: with OpenSSL, sign it with `-extfile ca.ext` where \
     ca.ext holds `basicConstraints=critical,CA:TRUE` and `keyUsage=critical,keyCertSign,cRLSign`; \
     or make it with `wardgate cert ca` / `wardgate cert intermediate`.";

pub(crate) fn why_not_ca(info: &CertificateInfo) -> String {
    if info.version < 3 {
        format!(
            "X.509 v{}, so it has no basicConstraints CA:TRUE; `openssl verify` reports \
             \"invalid CA certificate\"",
            info.version
        )
    } else {
        "no basicConstraints CA:TRUE".to_owned()
    }
}

/// Checks that `key` is the private key of `cert` (their public keys are equal).
pub fn check_key_matches(
    cert: &CertificateDer<'_>,
    key: &PrivateKeyDer<'_>,
    provider: &CryptoProvider,
) -> Result<(), PkiError> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| PkiError::key("private key", format!("not usable for TLS ({e})")))?;
    let Some(spki) = signing.public_key() else {
        return Ok(());
    };
    let parsed = parse(cert, "certificate")?;
    if parsed.public_key().raw == spki.as_ref() {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch(
            "the private key does not match the certificate".to_owned(),
        ))
    }
}

/// The crypto provider of every TLS configuration and key check: aws-lc-rs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A `--not-after` (or any "until when"): a Go-style duration from `now` (`72000h`, `1h30m`,
/// `45s`; also `d` for days), or a UTC date (`2030-01-31`) or date-time
/// (`2030-01-31T12:00:00Z`).
pub fn parse_not_after(s: &str, now: SystemTime) -> Result<SystemTime, PkiError> {
    let s = s.trim();
    let bad = || {
        PkiError::Invalid(format!(
            "\"{s}\" is neither a duration (8760h, 1h30m, 90d) nor a date (2030-01-31, \
             2030-01-31T12:00:00Z)"
        ))
    };
    if s.contains('-') {
        let (date, clock) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
        let d: Vec<&str> = date.split('-').collect();
        let t: Vec<&str> = clock.trim_end_matches('Z').split(':').collect();
        if d.len() != 3 || t.len() > 3 {
            return Err(bad());
        }
        let num = |v: Option<&&str>| v.unwrap_or(&"0").parse::<u16>().map_err(|_| bad());
        let year = i32::from(num(d.first())?);
        let month = time::Month::try_from(u8::try_from(num(d.get(1))?).map_err(|_| bad())?)
            .map_err(|_| bad())?;
        let byte = |v| u8::try_from(v).map_err(|_| bad());
        let date = time::Date::from_calendar_date(year, month, byte(num(d.get(2))?)?)
            .map_err(|_| bad())?;
        let clock = time::Time::from_hms(
            byte(num(t.first())?)?,
            byte(num(t.get(1))?)?,
            byte(num(t.get(2))?)?,
        )
        .map_err(|_| bad())?;
        return Ok(SystemTime::from(
            time::PrimitiveDateTime::new(date, clock).assume_utc(),
        ));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        let unit = match c {
            'd' => 86400.0,
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(n * unit).map_err(|_| bad())?;
        number.clear();
    }
    if !number.is_empty() || total.is_zero() {
        return Err(bad());
    }
    Ok(now + total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_and_reports_itself() {
        for alg in [
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Ec384,
            KeyAlgorithm::Ec521,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let k = Key::generate(alg).unwrap();
            assert_eq!(k.algorithm(), Some(alg));
            let again = Key::from_pem(k.pem().as_bytes(), "k").unwrap();
            assert_eq!(again.algorithm(), Some(alg));
        }
    }

    #[test]
    fn not_after_takes_durations_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = |s| {
            parse_not_after(s, now)
                .unwrap()
                .duration_since(now)
                .unwrap()
        };
        assert_eq!(h("72000h"), Duration::from_secs(72000 * 3600));
        assert_eq!(h("1h30m"), Duration::from_secs(5400));
        assert_eq!(h("90d"), Duration::from_secs(90 * 86400));
        assert_eq!(
            parse_not_after("2030-01-31", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_896_048_000)
        );
        assert_eq!(
            parse_not_after("2030-01-31T12:00:00Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_896_048_000 + 43200)
        );
        for bad in ["", "10", "10y", "2030-13-01", "abc", "2030-01"] {
            assert!(parse_not_after(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn sans_are_sorted_into_dns_and_ip() {
        let r = CertRequest::new("x", Profile::Server, Duration::from_secs(60)).with_sans(&[
            "192.168.2.196",
            "localhost",
            "::1",
            "[fe80::1]",
            "localhost",
        ]);
        assert_eq!(r.dns_names, vec!["localhost".to_owned()]);
        assert_eq!(r.ip_addresses.len(), 3);
    }

    #[test]
    fn a_signer_refuses_a_leaf() {
        let p = provider();
        let k = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let leaf = self_signed(
            &CertRequest::new("leaf", Profile::Server, Duration::from_secs(3600)),
            &k,
        )
        .unwrap();
        let e = Signer::new(vec![leaf], "leaf.crt", k, "leaf.key", &p).unwrap_err();
        assert!(matches!(e, PkiError::NotACa(_)), "{e}");
        assert!(e.to_string().contains("basicConstraints=critical,CA:TRUE"));
    }

    #[test]
    fn a_signer_refuses_a_key_of_another_ca() {
        let p = provider();
        let k1 = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let k2 = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let ca = self_signed(
            &CertRequest::new("ca", Profile::RootCa, Duration::from_secs(3600)),
            &k1,
        )
        .unwrap();
        let e = Signer::new(vec![ca], "ca.crt", k2, "ca.key", &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ca.key is not the private key of ca.crt (CN = ca)"
        );
    }

    #[test]
    fn issued_certificates_chain_and_are_capped_by_the_ca() {
        let p = provider();
        let k = Key::generate(KeyAlgorithm::Ec384).unwrap();
        let ca_req = CertRequest::new("Root", Profile::RootCa, Duration::from_secs(3600));
        let ca = self_signed(&ca_req, &k).unwrap();
        let signer = Signer::new(vec![ca.clone()], "ca", k, "ca.key", &p).unwrap();
        let leaf_key = Key::generate(KeyAlgorithm::Rsa2048).unwrap();
        let req = CertRequest::new("srv", Profile::Server, Duration::from_secs(86400))
            .with_sans(&["localhost", "127.0.0.1"]);
        let leaf = signer.issue(&req, &leaf_key).unwrap();
        assert!(super::super::cert::is_issued_by(&leaf, &ca));
        let info = CertificateInfo::from_der(&leaf, "leaf").unwrap();
        assert_eq!(info.not_after, ca_req.not_after);
        assert!(!info.is_ca);
        assert_eq!(info.key_type, super::super::cert::KeyType::Rsa(2048));
        assert!(info.allows_server_auth() && !info.allows_client_auth());
        assert_eq!(info.version, 3);
    }
}
