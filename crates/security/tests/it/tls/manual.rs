//! Manual TLS (SPEC.md §6.1): every key type and key encoding, chains, mixed EC/RSA, and each
//! load-time error, with real handshakes.

use std::time::{Duration, SystemTime};

use wardgate_config::KeyAlgorithm;
use wardgate_config::model::Model;
use wardgate_security::pki::issue::{CertRequest, Key, Profile};
use wardgate_security::pki::{KeyType, pem};
use wardgate_security::tls::TlsOutcome;

use super::common::*;

fn resolve_secret(crt: &str, key: &str) -> TlsOutcome {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut model = Model::defaults();
    model.secrets.insert(
        "broker-server-cert".into(),
        tls_secret("broker-server-cert", crt, key),
    );
    let port = manual_port("broker-server-cert");
    ctx.resolve(&model, &listener(port.clone()), &port)
}

#[tokio::test]
async fn every_key_type_serves_over_tls_1_3_and_1_2() {
    let root = Ca::root("Contoso Root CA", KeyAlgorithm::Ec256);
    for (alg, expected) in [
        (KeyAlgorithm::Ec256, KeyType::EcP256),
        (KeyAlgorithm::Ec384, KeyType::EcP384),
        (KeyAlgorithm::Ec521, KeyType::EcP521),
        (KeyAlgorithm::Ed25519, KeyType::Ed25519),
        (KeyAlgorithm::Rsa2048, KeyType::Rsa(2048)),
    ] {
        let (leaf, key) = root.server(&["localhost", "127.0.0.1"], alg);
        let tls = ready(resolve_secret(&chain_pem(&[&leaf]), &key.pem()));
        assert_eq!(tls.certificates[0].key_type, expected);
        assert_eq!(tls.certificates[0].source, "Secret/broker-server-cert");
        assert!(tls.warnings.is_empty(), "{:?}", tls.warnings);
        let h = handshake(
            tls.config.clone(),
            Client::trusting(&[&root.cert], "localhost"),
        )
        .await
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(h.version, rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(h.served, vec![leaf.clone()]);
        let h = handshake(
            tls.config,
            Client::trusting(&[&root.cert], "127.0.0.1").tls12(),
        )
        .await
        .unwrap_or_else(|e| panic!("{alg} over TLS 1.2: {e}"));
        assert_eq!(h.version, rustls::ProtocolVersion::TLSv1_2);
    }
}

#[tokio::test]
async fn pkcs8_pkcs1_and_sec1_keys_all_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("Root", KeyAlgorithm::Rsa2048);
    for (alg, label) in [
        (KeyAlgorithm::Rsa2048, "RSA PRIVATE KEY"),
        (KeyAlgorithm::Ec256, "EC PRIVATE KEY"),
        (KeyAlgorithm::Ec384, "EC PRIVATE KEY"),
    ] {
        let (leaf, key) = root.server(&["localhost"], alg);
        std::fs::write(dir.path().join("k8.pem"), key.pem()).unwrap();
        assert!(key.pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        // OpenSSL's "traditional" form: PKCS#1 for RSA, SEC1 for EC.
        let traditional = openssl(dir.path(), &["pkey", "-in", "k8.pem", "-traditional"]);
        assert!(traditional.contains(label), "{traditional}");
        for key_pem in [key.pem(), traditional] {
            let tls = ready(resolve_secret(&chain_pem(&[&leaf]), &key_pem));
            handshake(tls.config, Client::trusting(&[&root.cert], "localhost"))
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_leaf_and_intermediate_chain_reaches_a_client_that_trusts_only_the_root() {
    let root = Ca::root("Root", KeyAlgorithm::Ec384);
    let inter = root.intermediate("Intermediate CA 1", KeyAlgorithm::Ec256);
    let (leaf, key) = inter.server(&["localhost"], KeyAlgorithm::Ec256);
    let tls = ready(resolve_secret(
        &chain_pem(&[&leaf, &inter.cert]),
        &key.pem(),
    ));
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(
        tls.certificates[1].subject.common_name(),
        Some("Intermediate CA 1")
    );
    let h = handshake(tls.config, Client::trusting(&[&root.cert], "localhost"))
        .await
        .unwrap();
    assert_eq!(h.served, vec![leaf, inter.cert]);
}

#[tokio::test]
async fn a_mixed_ec_and_rsa_chain_works() {
    // RSA root -> EC intermediate -> RSA leaf, and EC root -> RSA intermediate -> EC leaf.
    for (a, b, c) in [
        (
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Rsa2048,
        ),
        (
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Ec384,
        ),
    ] {
        let root = Ca::root("Root", a);
        let inter = root.intermediate("Intermediate", b);
        let (leaf, key) = inter.server(&["localhost"], c);
        let tls = ready(resolve_secret(
            &chain_pem(&[&leaf, &inter.cert]),
            &key.pem(),
        ));
        for client in [
            Client::trusting(&[&root.cert], "localhost"),
            Client::trusting(&[&root.cert], "localhost").tls12(),
        ] {
            handshake(tls.config.clone(), client).await.unwrap();
        }
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let (leaf, _) = root.server(&["localhost"], KeyAlgorithm::Ec256);
    let other = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let reason = failed(resolve_secret(&chain_pem(&[&leaf]), &other.pem()));
    assert_eq!(
        reason,
        "Secret/broker-server-cert: tls.key does not match the first certificate in tls.crt \
         (CN = mqtts-endpoint): the key belongs to another certificate"
    );
}

#[test]
fn a_chain_in_the_wrong_order_says_so() {
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let inter = root.intermediate("Intermediate CA 1", KeyAlgorithm::Ec256);
    let (leaf, key) = inter.server(&["localhost"], KeyAlgorithm::Ec256);
    let reason = failed(resolve_secret(
        &chain_pem(&[&inter.cert, &leaf]),
        &key.pem(),
    ));
    assert!(
        reason.starts_with("Secret/broker-server-cert: tls.crt: the chain is in the wrong order"),
        "{reason}"
    );
    assert!(
        reason.contains("certificate 2 of 2 (CN = mqtts-endpoint)"),
        "{reason}"
    );
    assert!(reason.contains("leaf first"), "{reason}");
}

#[test]
fn garbage_and_missing_parts_are_named() {
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let (leaf, key) = root.server(&["localhost"], KeyAlgorithm::Ec256);
    let reason = failed(resolve_secret("this is not a certificate", &key.pem()));
    assert_eq!(
        reason,
        "Secret/broker-server-cert: tls.crt: is not PEM: no \"-----BEGIN CERTIFICATE-----\" \
         block found"
    );
    let reason = failed(resolve_secret(&chain_pem(&[&leaf]), "garbage"));
    assert!(
        reason.starts_with("Secret/broker-server-cert: tls.key: is not PEM"),
        "{reason}"
    );
    let reason = failed(resolve_secret(&key.pem(), &chain_pem(&[&leaf])));
    assert!(reason.contains("swapped"), "{reason}");
    let truncated: String = chain_pem(&[&leaf])
        .lines()
        .take(5)
        .collect::<Vec<_>>()
        .join("\n");
    let reason = failed(resolve_secret(&truncated, &key.pem()));
    assert!(reason.contains("truncated"), "{reason}");

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut model = Model::defaults();
    let mut s = tls_secret("s", &chain_pem(&[&leaf]), "");
    s.data.remove("tls.key");
    model.secrets.insert("s".into(), s);
    let port = manual_port("s");
    let reason = failed(ctx.resolve(&model, &listener(port.clone()), &port));
    assert!(reason.starts_with("Secret/s: has no tls.key"), "{reason}");
}

#[tokio::test]
async fn an_expired_certificate_is_served_with_a_warning() {
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let key = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let mut req =
        CertRequest::new("old", Profile::Server, Duration::from_secs(60)).with_sans(&["localhost"]);
    req.not_before = SystemTime::now() - 10 * DAY;
    req.not_after = SystemTime::now() - DAY;
    let leaf = root.signer.issue(&req, &key).unwrap();
    let tls = ready(resolve_secret(&pem::certificate_pem(&leaf), &key.pem()));
    assert_eq!(tls.warnings.len(), 1, "{:?}", tls.warnings);
    assert!(
        tls.warnings[0].starts_with(
            "Secret/broker-server-cert: tls.crt: the certificate (CN = old) expired on "
        ),
        "{}",
        tls.warnings[0]
    );
    let e = handshake(tls.config, Client::trusting(&[&root.cert], "localhost"))
        .await
        .unwrap_err();
    assert!(e.contains("xpired"), "{e}");
}

#[test]
fn a_certificate_without_sans_warns() {
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let (leaf, key) = root.server(&[], KeyAlgorithm::Ec256);
    let tls = ready(resolve_secret(&pem::certificate_pem(&leaf), &key.pem()));
    assert!(
        tls.warnings[0].contains("has no subjectAltName"),
        "{:?}",
        tls.warnings
    );
}

#[test]
fn a_missing_secret_awaits_with_the_aio_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let port = manual_port("broker-server-cert");
    match ctx.resolve(&Model::defaults(), &listener(port.clone()), &port) {
        TlsOutcome::AwaitingSecret { secret, message } => {
            assert_eq!(secret, "broker-server-cert");
            assert_eq!(
                message,
                "Server certificate broker-server-cert not found. Awaiting creation of secret."
            );
        }
        other => panic!("{other:?}"),
    }
}
