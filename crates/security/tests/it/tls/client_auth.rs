//! Client certificates (SPEC.md §6.3): requested, not required; verified against every
//! certificate of the `trustedClientCaCert` ConfigMap (root or intermediate as anchor, several
//! PEMs per key, any key); untrusted, expired, malformed or non-CA-intermediate chains fail the
//! handshake; the verified chain is handed back for authentication.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use wardgate_config::KeyAlgorithm;
use wardgate_config::model::Model;
use wardgate_security::pki::issue::{CertRequest, Key, Profile};
use wardgate_security::tls::{PortTls, TlsOutcome};

use super::common::*;

/// A manual port (server chain from `server_root`) whose authentication trusts `cas`.
fn port_trusting(server_root: &Ca, cas: &[(&str, String)]) -> (Model, TlsOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let (leaf, key) = server_root.server(&["localhost"], KeyAlgorithm::Ec256);
    let mut model = Model::defaults();
    model.secrets.insert(
        "srv".into(),
        tls_secret("srv", &chain_pem(&[&leaf]), &key.pem()),
    );
    let entries: Vec<(&str, &str)> = cas.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if !cas.is_empty() {
        model
            .config_maps
            .insert("fabrikam-ca".into(), config_map("fabrikam-ca", &entries));
    }
    let mut port = manual_port("srv");
    with_x509(&mut model, &mut port, "fabrikam-ca");
    let outcome = ctx.resolve(&model, &listener(port.clone()), &port);
    (model, outcome)
}

struct Pkis {
    contoso: Ca,
    fabrikam: Ca,
    fabrikam_inter: Ca,
}

fn pkis() -> Pkis {
    let contoso = Ca::root("Contoso Root CA", KeyAlgorithm::Ec256);
    let fabrikam = Ca::root("Fabrikam Root CA", KeyAlgorithm::Rsa2048);
    let fabrikam_inter = fabrikam.intermediate("Fabrikam Intermediate CA 1", KeyAlgorithm::Ec256);
    Pkis {
        contoso,
        fabrikam,
        fabrikam_inter,
    }
}

fn tls_of(outcome: TlsOutcome) -> PortTls {
    let tls = ready(outcome);
    assert!(tls.requests_client_certificates());
    tls
}

#[tokio::test]
async fn a_chain_through_an_intermediate_verifies_against_the_root() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("client_ca.pem", p.fabrikam.pem())]);
    let tls = tls_of(outcome);
    assert_eq!(tls.client_cas.len(), 1);
    assert_eq!(tls.client_cas[0].source, "ConfigMap/fabrikam-ca");
    let (leaf, key) = p.fabrikam_inter.client("thermostat", KeyAlgorithm::Ec256);
    for client in [
        Client::trusting(&[&p.contoso.cert], "localhost"),
        Client::trusting(&[&p.contoso.cert], "localhost").tls12(),
    ] {
        let h = handshake(
            tls.config.clone(),
            client.with_identity(vec![leaf.clone(), p.fabrikam_inter.cert.clone()], &key),
        )
        .await
        .unwrap();
        let id = h.peer.expect("the server saw the client chain");
        assert_eq!(id.common_name.as_deref(), Some("thermostat"));
        assert_eq!(id.chain.len(), 2);
        assert_eq!(
            id.chain[1].subject.to_string(),
            "CN = Fabrikam Intermediate CA 1"
        );
        assert_eq!(id.chain[1].issuer.to_string(), "CN = Fabrikam Root CA");
        assert!(id.leaf().subject.matches_written("CN = thermostat"));
        assert!(id.not_after > SystemTime::now() + Duration::from_secs(29 * 86400));
    }
    // Without the intermediate, no chain to the root: the handshake fails.
    let e = handshake(
        tls.config,
        Client::trusting(&[&p.contoso.cert], "localhost").with_identity(vec![leaf], &key),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("UnknownCA"),
        "{e}"
    );
}

#[tokio::test]
async fn an_intermediate_in_the_configmap_is_an_anchor() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("ca.crt", p.fabrikam_inter.pem())]);
    let tls = tls_of(outcome);
    let (leaf, key) = p.fabrikam_inter.client("lightbulb", KeyAlgorithm::Rsa2048);
    let h = handshake(
        tls.config,
        Client::trusting(&[&p.contoso.cert], "localhost").with_identity(vec![leaf], &key),
    )
    .await
    .unwrap();
    assert_eq!(h.peer.unwrap().common_name.as_deref(), Some("lightbulb"));
}

#[tokio::test]
async fn every_pem_under_every_key_is_trusted() {
    let p = pkis();
    let other = Ca::root("Other Root", KeyAlgorithm::Ec384);
    let third = Ca::root("Third Root", KeyAlgorithm::Ed25519);
    let (_, outcome) = port_trusting(
        &p.contoso,
        &[
            (
                "client_ca.pem",
                format!("{}{}", other.pem(), p.fabrikam_inter.pem()),
            ),
            ("zzz-any-key-name", third.pem()),
        ],
    );
    let tls = tls_of(outcome);
    assert_eq!(tls.client_cas.len(), 3);
    for (ca, cn) in [(&other, "a"), (&p.fabrikam_inter, "b"), (&third, "c")] {
        let (leaf, key) = ca.client(cn, KeyAlgorithm::Ec256);
        let h = handshake(
            tls.config.clone(),
            Client::trusting(&[&p.contoso.cert], "localhost").with_identity(vec![leaf], &key),
        )
        .await
        .unwrap_or_else(|e| panic!("{cn}: {e}"));
        assert_eq!(h.peer.unwrap().common_name.as_deref(), Some(cn));
    }
}

#[tokio::test]
async fn no_client_certificate_is_fine() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("client_ca.pem", p.fabrikam.pem())]);
    let tls = tls_of(outcome);
    let h = handshake(
        tls.config,
        Client::trusting(&[&p.contoso.cert], "localhost"),
    )
    .await
    .unwrap();
    assert!(h.peer.is_none());
}

#[tokio::test]
async fn untrusted_and_expired_client_certificates_fail_the_handshake() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("client_ca.pem", p.fabrikam.pem())]);
    let tls = tls_of(outcome);
    // Issued by the server's CA, not a client CA.
    let (leaf, key) = p.contoso.client("intruder", KeyAlgorithm::Ec256);
    let e = handshake(
        tls.config.clone(),
        Client::trusting(&[&p.contoso.cert], "localhost").with_identity(vec![leaf], &key),
    )
    .await
    .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // Expired.
    let key = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let mut req = CertRequest::new("old-device", Profile::Client, Duration::from_secs(60));
    req.not_before = SystemTime::now() - 10 * DAY;
    req.not_after = SystemTime::now() - DAY;
    let old = p.fabrikam.signer.issue(&req, &key).unwrap();
    let e = handshake(
        tls.config,
        Client::trusting(&[&p.contoso.cert], "localhost").with_identity(vec![old], &key),
    )
    .await
    .unwrap_err();
    assert!(e.to_ascii_lowercase().contains("expired"), "{e}");
}

/// Sends whatever chain it is given, unchecked.
#[derive(Debug)]
struct RawClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for RawClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_garbage_client_certificate_fails_the_handshake() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("client_ca.pem", p.fabrikam.pem())]);
    let tls = tls_of(outcome);
    let key = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let signing = provider()
        .key_provider
        .load_private_key(key.der().clone_key())
        .unwrap();
    let garbage = CertificateDer::from(b"\x30\x03\x02\x01\x00 not a certificate".to_vec());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.contoso.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(RawClientCert(Arc::new(CertifiedKey::new(
            vec![garbage],
            signing,
        )))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor
            .accept(tcp)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let client = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    // TLS 1.3: the client finishes first and learns of the rejection on its next read.
    if let Ok(mut s) = client {
        let _ = s.write_all(b"ping").await;
        let _ = s.flush().await;
    }
    let e = server.await.unwrap().unwrap_err();
    assert!(
        e.contains("BadEncoding") || e.contains("invalid peer certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn a_client_intermediate_that_is_not_a_ca_fails_the_handshake() {
    let p = pkis();
    let (_, outcome) = port_trusting(&p.contoso, &[("client_ca.pem", p.fabrikam.pem())]);
    let tls = tls_of(outcome);
    // An "intermediate" without CA:TRUE (what `openssl x509 -req` makes without -extfile),
    // issuing a client leaf.
    let (fake_inter, fake_key) = p
        .fabrikam
        .client("Fabrikam Intermediate CA 1", KeyAlgorithm::Ec256);
    let rc_key = rcgen::KeyPair::try_from(fake_key.der()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_der(&fake_inter, &rc_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["device".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "device");
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap().der().clone();
    let leaf_key = Key::from_pem(leaf_key.serialize_pem().as_bytes(), "leaf key").unwrap();
    let e = handshake(
        tls.config,
        Client::trusting(&[&p.contoso.cert], "localhost")
            .with_identity(vec![leaf, fake_inter], &leaf_key),
    )
    .await
    .unwrap_err();
    assert!(e.contains("invalid peer certificate"), "{e}");
}

#[test]
fn a_missing_configmap_waits_and_bad_ones_fail_with_the_reason() {
    let p = pkis();
    match port_trusting(&p.contoso, &[]).1 {
        TlsOutcome::AwaitingConfigMap { name, message } => {
            assert_eq!(name, "fabrikam-ca");
            assert_eq!(
                message,
                "Trusted client CA certificate fabrikam-ca not found. Awaiting creation of \
                 configmap."
            );
        }
        other => panic!("{other:?}"),
    }
    let reason = failed(port_trusting(&p.contoso, &[("client_ca.pem", "garbage".into())]).1);
    assert_eq!(
        reason,
        "BrokerAuthentication/x509: ConfigMap/fabrikam-ca key client_ca.pem: is not PEM: no \
         \"-----BEGIN CERTIFICATE-----\" block found"
    );
    let (leaf, _) = p.fabrikam_inter.client("thermostat", KeyAlgorithm::Ec256);
    let reason = failed(port_trusting(&p.contoso, &[("client_ca.pem", chain_pem(&[&leaf]))]).1);
    assert!(
        reason.contains("the certificate (CN = thermostat) is not a CA certificate"),
        "{reason}"
    );
    assert!(
        reason.contains("basicConstraints=critical,CA:TRUE"),
        "{reason}"
    );
}

#[test]
fn a_port_without_x509_does_not_ask_for_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = Model::defaults();
    let l = model.listener("default").unwrap().clone();
    // The default listener's authentication is ServiceAccountToken only.
    let tls = ready(ctx.resolve(&model, &l, &l.ports[0]));
    assert!(!tls.requests_client_certificates());
}
