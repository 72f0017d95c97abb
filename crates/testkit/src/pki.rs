//! Certificates for tests, made in-process with rcgen: one builder, [`TestCa`], for the roots,
//! intermediates, server and client leaves the tests of every crate need. Keys are ECDSA P-256
//! (rcgen's default, the key type of the openssl recipes in the docs).
//!
//! Material made by openssl is kept only where a test exists to prove that openssl's output works
//! (the users' recipes); those tests make it themselves and say why.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

/// A certificate and its private key, as issued by a [`TestCa`].
pub struct Issued {
    /// The certificate.
    pub cert: rcgen::Certificate,
    /// Its private key.
    pub key: KeyPair,
}

impl Issued {
    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.cert.der()
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Writes `<name>.crt` (the certificate, then `chain` — intermediates — in PEM) and
    /// `<name>.key` into `dir`.
    pub fn write(&self, dir: &Path, name: &str, chain: &[&TestCa]) {
        let crt: String = std::iter::once(self.pem())
            .chain(chain.iter().map(|ca| ca.pem()))
            .collect();
        write(dir, &format!("{name}.crt"), &crt);
        write(dir, &format!("{name}.key"), &self.key_pem());
    }
}

/// A certificate authority for a test: a self-signed root ([`TestCa::new`]) or an intermediate
/// ([`TestCa::intermediate`]). Certificates it issues are valid from 1975 to 4096 (rcgen's
/// defaults) unless the method says otherwise.
pub struct TestCa {
    params: CertificateParams,
    issued: Issued,
}

impl TestCa {
    /// A self-signed root CA with subject `CN = <cn>` and no path length limit.
    pub fn new(cn: &str) -> TestCa {
        TestCa::with_subject(&[(DnType::CommonName, cn)])
    }

    /// A self-signed root CA with this subject, encoded in the order given.
    pub fn with_subject(dn: &[(DnType, &str)]) -> TestCa {
        let params = ca_params(dn, None);
        let key = generated_key();
        let cert = params.self_signed(&key).expect("self-sign a test root");
        TestCa {
            params,
            issued: Issued { cert, key },
        }
    }

    /// An intermediate CA with subject `CN = <cn>` and path length 0, signed by this CA.
    pub fn intermediate(&self, cn: &str) -> TestCa {
        let params = ca_params(&[(DnType::CommonName, cn)], Some(0));
        let issued = self.sign(&params);
        TestCa { params, issued }
    }

    /// A server leaf for `sans` (DNS names or IP addresses), `CN = <first SAN>`, extended key
    /// usage serverAuth.
    pub fn issue_server(&self, sans: &[&str]) -> Issued {
        self.sign(&server_params(sans))
    }

    /// [`TestCa::issue_server`] valid in January 2024 only: expired.
    pub fn issue_expired_server(&self, sans: &[&str]) -> Issued {
        let mut params = server_params(sans);
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2024, 2, 1);
        self.sign(&params)
    }

    /// A client leaf with this subject (encoded in the order given), extended key usage
    /// clientAuth.
    pub fn issue_client(&self, dn: &[(DnType, &str)]) -> Issued {
        let mut params = empty_params();
        params.distinguished_name = subject(dn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&params)
    }

    /// A certificate with exactly these parameters (for the shapes the methods above do not
    /// make), on a fresh key, signed by this CA.
    pub fn sign(&self, params: &CertificateParams) -> Issued {
        let key = generated_key();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&self.params, &self.issued.key))
            .expect("sign a test certificate");
        Issued { cert, key }
    }

    /// The CA's certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        self.issued.der()
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issued.pem()
    }

    /// Writes `<name>.crt` and `<name>.key` (the CA's certificate and key, PEM) into `dir`.
    pub fn write(&self, dir: &Path, name: &str) {
        self.issued.write(dir, name, &[]);
    }
}

/// The SANs of a server certificate for this machine: `localhost` and `127.0.0.1`.
pub const LOCALHOST: [&str; 2] = ["localhost", "127.0.0.1"];

/// A root CA `CN = Test Root CA` and a server certificate for [`LOCALHOST`] signed by it, written
/// into `dir` as `ca.crt`, `ca.key`, `server.crt` and `server.key`; returns the CA.
pub fn write_ca_and_server(dir: &Path) -> TestCa {
    let ca = TestCa::new("Test Root CA");
    ca.write(dir, "ca");
    ca.issue_server(&LOCALHOST).write(dir, "server", &[]);
    ca
}

/// Certificate parameters with no subject (rcgen starts with `CN = rcgen self signed cert`).
pub fn empty_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
}

fn subject(dn: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (t, v) in dn {
        name.push(t.clone(), *v);
    }
    name
}

fn ca_params(dn: &[(DnType, &str)], path_len: Option<u8>) -> CertificateParams {
    let mut params = empty_params();
    params.distinguished_name = subject(dn);
    params.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn server_params(sans: &[&str]) -> CertificateParams {
    let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("valid test SANs");
    params.distinguished_name = subject(&[(DnType::CommonName, sans.first().unwrap_or(&""))]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn generated_key() -> KeyPair {
    KeyPair::generate().expect("generate a P-256 key")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::UnixTime;
    use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

    use super::*;

    fn verify(leaf: &Issued, chain: &[&TestCa], root: &TestCa, usage: KeyUsage) -> bool {
        let anchors = [anchor_from_trusted_cert(root.der()).expect("anchor")];
        let intermediates: Vec<CertificateDer<'_>> =
            chain.iter().map(|ca| ca.der().clone()).collect();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000));
        EndEntityCert::try_from(leaf.der())
            .expect("parse leaf")
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                now,
                usage,
                None,
                None,
            )
            .is_ok()
    }

    #[test]
    fn a_server_leaf_verifies_through_an_intermediate_to_its_root_only() {
        let root = TestCa::new("Test Root");
        let inter = root.intermediate("Test Intermediate");
        let leaf = inter.issue_server(&["localhost", "127.0.0.1"]);
        assert!(verify(&leaf, &[&inter], &root, KeyUsage::server_auth()));
        assert!(!verify(&leaf, &[], &root, KeyUsage::server_auth()));
        assert!(!verify(
            &leaf,
            &[&inter],
            &TestCa::new("Other"),
            KeyUsage::server_auth()
        ));
        assert!(!verify(&leaf, &[&inter], &root, KeyUsage::client_auth()));
    }

    #[test]
    fn a_client_leaf_is_for_client_auth() {
        let root = TestCa::new("Test Root");
        let leaf = root.issue_client(&[(DnType::CommonName, "sensor")]);
        assert!(verify(&leaf, &[], &root, KeyUsage::client_auth()));
        assert!(!verify(&leaf, &[], &root, KeyUsage::server_auth()));
    }

    #[test]
    fn an_expired_server_leaf_does_not_verify() {
        let root = TestCa::new("Test Root");
        let leaf = root.issue_expired_server(&["localhost"]);
        assert!(!verify(&leaf, &[], &root, KeyUsage::server_auth()));
    }

    #[test]
    fn write_puts_the_leaf_then_the_chain_and_the_key_in_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = TestCa::new("Test Root");
        let inter = root.intermediate("Test Intermediate");
        let leaf = inter.issue_server(&["localhost"]);
        leaf.write(dir.path(), "server", &[&inter]);
        let crt = std::fs::read_to_string(dir.path().join("server.crt")).expect("crt");
        assert_eq!(crt, leaf.pem() + &inter.pem());
        let key = std::fs::read_to_string(dir.path().join("server.key")).expect("key");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
}
