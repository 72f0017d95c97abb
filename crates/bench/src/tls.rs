//! TLS for the connection scenarios: a throwaway ECDSA P-256 PKI (CA, server, client) and rustls
//! client configurations without session resumption, so every connection is a full handshake.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
    SanType,
};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};

/// A CA with one server certificate (for `localhost` and 127.0.0.1) and one client certificate,
/// all ECDSA P-256.
#[derive(Debug)]
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub server_cert_pem: String,
    /// The server's private key, PKCS#8 PEM.
    pub server_key_pem: String,
    ca_der: CertificateDer<'static>,
    client_cert_der: CertificateDer<'static>,
    client_key_der: Vec<u8>,
}

fn pki_err(e: rcgen::Error) -> Error {
    Error::Usage(format!("generating the benchmark certificates: {e}"))
}

impl Pki {
    /// Generates the CA and the two leaf certificates.
    pub fn generate() -> Result<Pki> {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "wardgate-bench CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(pki_err)?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_err)?;
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).map_err(pki_err)?;
        server
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = server.signed_by(&server_key, &issuer).map_err(pki_err)?;

        let client_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_err)?;
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
        client
            .distinguished_name
            .push(DnType::CommonName, "wardgate-bench client");
        let client_cert = client.signed_by(&client_key, &issuer).map_err(pki_err)?;

        Ok(Pki {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
            client_cert_der: client_cert.der().clone(),
            client_key_der: client_key.serialize_der(),
        })
    }

    /// A client configuration trusting the CA, with the client certificate if `client_cert`; no
    /// session resumption (every handshake is a full one), key exchange X25519 then P-256.
    pub fn client_config(&self, client_cert: bool) -> Result<Arc<ClientConfig>> {
        let tls_err = |e: rustls::Error| Error::Usage(format!("TLS client configuration: {e}"));
        let mut provider = aws_lc_rs::default_provider();
        // Offer only groups every peer has, so no HelloRetryRequest adds a round trip.
        provider.kx_groups = vec![aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).map_err(tls_err)?;
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots);
        let mut config = if client_cert {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client_key_der.clone()));
            builder
                .with_client_auth_cert(vec![self.client_cert_der.clone()], key)
                .map_err(tls_err)?
        } else {
            builder.with_no_client_auth()
        };
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_pki_and_both_client_configurations() {
        let pki = Pki::generate().expect("pki");
        assert!(pki.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(pki.server_key_pem.contains("PRIVATE KEY"));
        pki.client_config(false).expect("server-auth config");
        pki.client_config(true).expect("mutual-auth config");
    }
}
