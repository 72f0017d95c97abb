//! Automatic TLS (SPEC.md §6.2): the quickstart CA and trust bundle, `selfSigned` and
//! `ca.secretName` issuers, every `certManagerCertificateSpec` field, reuse across restarts,
//! renewal, and the waits for a missing issuer or CA Secret.

use std::time::{Duration, SystemTime};

use wardgate_config::KeyAlgorithm;
use wardgate_config::model::{Issuer, IssuerKind, IssuerSource, Model, RotationPolicy};
use wardgate_security::pki::issue::{CertRequest, Key, Profile, self_signed};
use wardgate_security::pki::store::QUICKSTART_CA_COMMON_NAME;
use wardgate_security::pki::{CertificateInfo, ExtendedKeyUsage, KeyType, SubjectAltName, pem};
use wardgate_security::tls::TlsOutcome;

use super::common::*;

const QUICKSTART: &str = "azure-iot-operations-aio-certificate-issuer";

fn trust_bundle(
    ctx: &wardgate_security::tls::TlsContext,
) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    let bytes = std::fs::read(ctx.trust_bundle_path()).unwrap();
    pem::certificates(&bytes, "ca.crt").unwrap()
}

#[tokio::test]
async fn the_default_listener_serves_a_quickstart_certificate_clients_verify_with_the_trust_bundle()
{
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert_eq!(
        ctx.trust_bundle_path(),
        dir.path().join("trust-bundle/ca.crt")
    );
    // The quickstart CA joins the trust bundle once it signs something.
    assert!(!ctx.trust_bundle_path().exists());
    let model = Model::defaults();
    let listener = model.listener("default").unwrap().clone();
    let port = listener.ports[0].clone();
    let tls = ready(ctx.resolve(&model, &listener, &port));
    let bundle = trust_bundle(&ctx);
    assert_eq!(bundle.len(), 1);
    let ca = CertificateInfo::from_der(&bundle[0], "ca").unwrap();
    assert_eq!(
        ca.subject.to_string(),
        format!("O = Wardgate, CN = {QUICKSTART_CA_COMMON_NAME}")
    );
    assert!(ca.is_ca && ca.self_signed);
    let life = ca.not_after.duration_since(ca.not_before).unwrap();
    assert_eq!(life, Duration::from_secs(365 * 86400 + 60));
    assert!(dir.path().join("pki/quickstart-ca/tls.key").exists());

    let leaf = &tls.certificates[0];
    assert_eq!(
        leaf.subject.to_string(),
        "CN = aio-broker-frontend-server-18883"
    );
    assert_eq!(leaf.issuer, ca.subject);
    assert_eq!(leaf.source, format!("issued by ClusterIssuer/{QUICKSTART}"));
    assert_eq!(leaf.key_type, KeyType::EcP256);
    assert_eq!(leaf.extended_key_usages, vec![ExtendedKeyUsage::ServerAuth]);
    assert!(!leaf.is_ca);
    assert_eq!(
        leaf.not_after.duration_since(leaf.not_before).unwrap(),
        Duration::from_secs(720 * 3600 + 60)
    );
    let sans: Vec<String> = leaf.sans.iter().map(ToString::to_string).collect();
    assert_eq!(
        sans,
        [
            "DNS:aio-broker",
            "DNS:aio-broker.azure-iot-operations",
            "DNS:aio-broker.azure-iot-operations.svc",
            "DNS:aio-broker.azure-iot-operations.svc.cluster.local",
            "DNS:edge-box",
            "DNS:localhost",
            "IP:127.0.0.1",
            "IP:::1",
        ]
    );
    for name in ["localhost", "127.0.0.1", "::1", "aio-broker", "edge-box"] {
        handshake(tls.config.clone(), Client::trusting(&[&bundle[0]], name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let e = handshake(tls.config, Client::trusting(&[&bundle[0]], "10.13.100.11"))
        .await
        .unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    // Renewal is due 240h before the end.
    let due = ctx.next_renewal().unwrap();
    assert_eq!(due, leaf.not_after - Duration::from_secs(240 * 3600));
}

#[test]
fn the_quickstart_ca_and_issued_certificates_are_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::defaults();
    let listener = model.listener("default").unwrap().clone();
    let port = listener.ports[0].clone();
    let (ca_before, serial_before) = {
        let ctx = context(dir.path());
        let tls = ready(ctx.resolve(&model, &listener, &port));
        (trust_bundle(&ctx), tls.certificates[0].serial.clone())
    };
    let ctx = context(dir.path());
    assert_eq!(trust_bundle(&ctx), ca_before);
    let tls = ready(ctx.resolve(&model, &listener, &port));
    assert_eq!(tls.certificates[0].serial, serial_before);
    // A second resolve in the same process reuses too.
    let again = ready(ctx.resolve(&model, &listener, &port));
    assert_eq!(again.certificates[0].serial, serial_before);
}

#[test]
fn a_changed_spec_issues_a_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = Model::defaults();
    let mut a = automatic(IssuerKind::ClusterIssuer, QUICKSTART);
    let port = automatic_port(a.clone());
    let first = ready(ctx.resolve(&model, &listener(port.clone()), &port));
    a.san_ip = vec![ip("10.13.100.11")];
    let port = automatic_port(a.clone());
    let second = ready(ctx.resolve(&model, &listener(port.clone()), &port));
    assert_ne!(first.certificates[0].serial, second.certificates[0].serial);
    assert!(
        second.certificates[0]
            .sans
            .contains(&SubjectAltName::Ip(ip("10.13.100.11")))
    );
    a.private_key.algorithm = KeyAlgorithm::Ec384;
    let port = automatic_port(a);
    let third = ready(ctx.resolve(&model, &listener(port.clone()), &port));
    assert_eq!(third.certificates[0].key_type, KeyType::EcP384);
}

#[tokio::test]
async fn every_key_algorithm_is_issued_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = Model::defaults();
    for (alg, kt) in [
        (KeyAlgorithm::Ec256, KeyType::EcP256),
        (KeyAlgorithm::Ec384, KeyType::EcP384),
        (KeyAlgorithm::Ec521, KeyType::EcP521),
        (KeyAlgorithm::Ed25519, KeyType::Ed25519),
        (KeyAlgorithm::Rsa2048, KeyType::Rsa(2048)),
        (KeyAlgorithm::Rsa4096, KeyType::Rsa(4096)),
        (KeyAlgorithm::Rsa8192, KeyType::Rsa(8192)),
    ] {
        let mut a = automatic(IssuerKind::ClusterIssuer, QUICKSTART);
        a.private_key.algorithm = alg;
        a.secret_name = format!("key-{alg}").to_ascii_lowercase();
        let port = automatic_port(a);
        let tls = ready(ctx.resolve(&model, &listener(port.clone()), &port));
        assert_eq!(tls.certificates[0].key_type, kt);
        let bundle = trust_bundle(&ctx);
        handshake(tls.config, Client::trusting(&[&bundle[0]], "localhost"))
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
    }
}

#[tokio::test]
async fn a_self_signed_issuer_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut model = Model::defaults();
    model.issuers.insert(
        (IssuerKind::Issuer, "selfsigned".into()),
        Issuer {
            kind: IssuerKind::Issuer,
            name: "selfsigned".into(),
            source: IssuerSource::SelfSigned,
        },
    );
    let mut a = automatic(IssuerKind::Issuer, "selfsigned");
    a.duration = Duration::from_secs(48 * 3600);
    a.renew_before = Duration::from_secs(12 * 3600);
    a.secret_name = "mqtt-tls-secret".into();
    a.private_key.algorithm = KeyAlgorithm::Rsa2048;
    a.private_key.rotation_policy = RotationPolicy::Never;
    a.san_dns = vec!["n013edge.local".into()];
    a.san_ip = vec![ip("10.13.100.11"), ip("100.81.128.71")];
    let port = automatic_port(a.clone());
    let l = listener(port.clone());
    let tls = ready(ctx.resolve(&model, &l, &port));
    assert_eq!(tls.certificates.len(), 1);
    let leaf = &tls.certificates[0];
    assert!(leaf.self_signed && !leaf.is_ca);
    assert_eq!(leaf.subject.to_string(), "CN = mqtt-tls-secret");
    assert_eq!(leaf.key_type, KeyType::Rsa(2048));
    assert_eq!(leaf.extended_key_usages, vec![ExtendedKeyUsage::ServerAuth]);
    assert_eq!(
        leaf.not_after.duration_since(leaf.not_before).unwrap(),
        Duration::from_secs(48 * 3600 + 60)
    );
    for san in [
        SubjectAltName::Dns("loadbalancer-listener-service".into()),
        SubjectAltName::Dns(
            "loadbalancer-listener-service.azure-iot-operations.svc.cluster.local".into(),
        ),
        SubjectAltName::Dns("n013edge.local".into()),
        SubjectAltName::Ip(ip("10.13.100.11")),
        SubjectAltName::Ip(ip("100.81.128.71")),
    ] {
        assert!(
            leaf.sans.contains(&san),
            "{san} missing from {:?}",
            leaf.sans
        );
    }
    assert_eq!(
        ctx.next_renewal().unwrap(),
        leaf.not_after - Duration::from_secs(12 * 3600)
    );
    // Stored under secretName, with ca.crt being the certificate itself.
    let stored = dir.path().join("pki/issued/mqtt-tls-secret");
    assert!(stored.join("tls.key").exists());
    let ca = pem::certificates(&std::fs::read(stored.join("ca.crt")).unwrap(), "ca.crt").unwrap();
    handshake(
        tls.config.clone(),
        Client::trusting(&[&ca[0]], "10.13.100.11"),
    )
    .await
    .unwrap();
    handshake(tls.config, Client::trusting(&[&ca[0]], "n013edge.local"))
        .await
        .unwrap();

    // rotationPolicy Never: a re-issue (here: a new duration) keeps the key.
    let spki = |t: &wardgate_security::tls::PortTls| t.certificates[0].serial.clone();
    let first_serial = spki(&ready(ctx.resolve(&model, &l, &port)));
    let key_before = std::fs::read(stored.join("tls.key")).unwrap();
    a.duration = Duration::from_secs(72 * 3600);
    let port = automatic_port(a.clone());
    let tls = ready(ctx.resolve(&model, &listener(port.clone()), &port));
    assert_ne!(spki(&tls), first_serial);
    assert_eq!(std::fs::read(stored.join("tls.key")).unwrap(), key_before);
    // rotationPolicy Always: a new key.
    a.duration = Duration::from_secs(96 * 3600);
    a.private_key.rotation_policy = RotationPolicy::Always;
    let port = automatic_port(a);
    ready(ctx.resolve(&model, &listener(port.clone()), &port));
    assert_ne!(std::fs::read(stored.join("tls.key")).unwrap(), key_before);
}

/// Adds ClusterIssuer `contoso`, a `ca` issuer on Secret `contoso-ca`.
fn contoso_issuer(model: &mut Model) {
    model.issuers.insert(
        (IssuerKind::ClusterIssuer, "contoso".into()),
        Issuer {
            kind: IssuerKind::ClusterIssuer,
            name: "contoso".into(),
            source: IssuerSource::Ca {
                secret_name: "contoso-ca".into(),
            },
        },
    );
}

#[tokio::test]
async fn a_ca_issuer_with_your_own_intermediate_serves_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let root = Ca::root("Contoso Root CA", KeyAlgorithm::Rsa2048);
    let inter = root.intermediate("Contoso Intermediate CA 1", KeyAlgorithm::Ec384);
    let mut model = Model::defaults();
    contoso_issuer(&mut model);
    let mut a = automatic(IssuerKind::ClusterIssuer, "contoso");
    a.private_key.algorithm = KeyAlgorithm::Ec521;
    a.duration = Duration::from_secs(24 * 3600);
    a.renew_before = Duration::from_secs(3600);
    a.san_dns = vec!["mqtt.contoso.example".into()];
    let port = automatic_port(a);
    let l = listener(port.clone());
    match ctx.resolve(&model, &l, &port) {
        TlsOutcome::AwaitingSecret { secret, message } => {
            assert_eq!(secret, "contoso-ca");
            assert_eq!(
                message,
                "CA certificate contoso-ca of ClusterIssuer/contoso not found. Awaiting creation \
                 of secret."
            );
        }
        other => panic!("{other:?}"),
    }
    model.secrets.insert(
        "contoso-ca".into(),
        tls_secret(
            "contoso-ca",
            &chain_pem(&[&inter.cert, &root.cert]),
            &inter.signer.key().pem(),
        ),
    );
    let tls = ready(ctx.resolve(&model, &l, &port));
    assert_eq!(tls.certificates.len(), 2);
    assert_eq!(tls.certificates[0].key_type, KeyType::EcP521);
    assert_eq!(
        tls.certificates[0].issuer.to_string(),
        "CN = Contoso Intermediate CA 1"
    );
    assert_eq!(tls.certificates[1].source, "CA of ClusterIssuer/contoso");
    let h = handshake(
        tls.config,
        Client::trusting(&[&root.cert], "mqtt.contoso.example"),
    )
    .await
    .unwrap();
    assert_eq!(h.served.len(), 2);

    // A new CA in the Secret re-issues from it.
    let other = Ca::root("Other Root", KeyAlgorithm::Ec256);
    model.secrets.insert(
        "contoso-ca".into(),
        tls_secret("contoso-ca", &other.pem(), &other.signer.key().pem()),
    );
    let tls = ready(ctx.resolve(&model, &l, &port));
    assert_eq!(tls.certificates.len(), 1);
    handshake(tls.config, Client::trusting(&[&other.cert], "localhost"))
        .await
        .unwrap();
}

#[test]
fn a_ca_issuer_whose_secret_is_not_a_ca_fails_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let (leaf, key) = root.server(&["localhost"], KeyAlgorithm::Ec256);
    let mut model = Model::defaults();
    model.issuers.insert(
        (IssuerKind::Issuer, "byo".into()),
        Issuer {
            kind: IssuerKind::Issuer,
            name: "byo".into(),
            source: IssuerSource::Ca {
                secret_name: "byo-ca".into(),
            },
        },
    );
    model.secrets.insert(
        "byo-ca".into(),
        tls_secret("byo-ca", &chain_pem(&[&leaf]), &key.pem()),
    );
    let port = automatic_port(automatic(IssuerKind::Issuer, "byo"));
    let reason = failed(ctx.resolve(&model, &listener(port.clone()), &port));
    assert!(
        reason.starts_with(
            "Issuer/byo: Secret/byo-ca: tls.crt: CN = mqtts-endpoint is not a CA certificate"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("basicConstraints=critical,CA:TRUE"),
        "{reason}"
    );
}

#[test]
fn a_missing_issuer_awaits_with_its_kind_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let port = automatic_port(automatic(IssuerKind::Issuer, "aio-tls-issuer"));
    match ctx.resolve(&Model::defaults(), &listener(port.clone()), &port) {
        TlsOutcome::AwaitingIssuer {
            kind,
            name,
            message,
        } => {
            assert_eq!((kind.as_str(), name.as_str()), ("Issuer", "aio-tls-issuer"));
            assert_eq!(message, "Issuer Issuer/aio-tls-issuer not found");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_certificate_is_renewed_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = Model::defaults();
    let mut a = automatic(IssuerKind::ClusterIssuer, QUICKSTART);
    // Lifetime 62 s (plus the 60 s backdate); due 60 s before the end: in about 2 s.
    a.duration = Duration::from_secs(62);
    a.renew_before = Duration::from_secs(60);
    let port = automatic_port(a);
    let l = listener(port.clone());
    let first = ready(ctx.resolve(&model, &l, &port));
    let due = ctx.next_renewal().unwrap();
    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(wait <= Duration::from_secs(3), "{wait:?}");
    // Before it is due: the same certificate.
    let same = ready(ctx.resolve(&model, &l, &port));
    assert_eq!(same.certificates[0].serial, first.certificates[0].serial);
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    let renewed = ready(ctx.resolve(&model, &l, &port));
    assert_ne!(renewed.certificates[0].serial, first.certificates[0].serial);
    assert!(ctx.next_renewal().unwrap() > due);
    ctx.forget("lb", 8883);
}

/// A renewal that fails (here the issuer has gone from the configuration; the server keeps
/// serving the certificate it has) stays due, so that the server retries it.
#[tokio::test]
async fn a_failed_renewal_stays_due() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let mut model = Model::defaults();
    let mut a = automatic(IssuerKind::ClusterIssuer, QUICKSTART);
    // Due in about 2 s (see a_certificate_is_renewed_when_due).
    a.duration = Duration::from_secs(62);
    a.renew_before = Duration::from_secs(60);
    let port = automatic_port(a);
    let l = listener(port.clone());
    // In the model, or the port's renewal is pruned as gone.
    model.listeners.push(l.clone());
    ready(ctx.resolve(&model, &l, &port));
    let due = ctx.next_renewal().unwrap();
    let issuers = std::mem::take(&mut model.issuers);
    assert!(matches!(
        ctx.resolve(&model, &l, &port),
        TlsOutcome::AwaitingIssuer { .. }
    ));
    assert_eq!(ctx.next_renewal(), Some(due), "still due after failing");
    model.issuers = issuers;
    let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    ready(ctx.resolve(&model, &l, &port));
    assert!(ctx.next_renewal().unwrap() > due, "renewed: due later");
}

#[test]
fn a_quickstart_ca_near_its_end_is_rotated_and_both_stay_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let qs = dir.path().join("pki/quickstart-ca");
    std::fs::create_dir_all(&qs).unwrap();
    let key = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let mut req = CertRequest::new(QUICKSTART_CA_COMMON_NAME, Profile::RootCa, DAY);
    req.organization = Some("Wardgate".into());
    req.not_before = SystemTime::now() - 300 * DAY;
    req.not_after = SystemTime::now() + 60 * DAY;
    let old = self_signed(&req, &key).unwrap();
    std::fs::write(qs.join("tls.crt"), pem::certificate_pem(&old)).unwrap();
    std::fs::write(qs.join("tls.key"), key.pem()).unwrap();

    let ctx = context(dir.path());
    let model = Model::defaults();
    let l = model.listener("default").unwrap().clone();
    let tls = ready(ctx.resolve(&model, &l, &l.ports[0]));
    let bundle = trust_bundle(&ctx);
    assert_eq!(bundle.len(), 2, "the new CA, then the previous one");
    assert_ne!(bundle[0], old);
    assert_eq!(bundle[1], old);
    let new = CertificateInfo::from_der(&bundle[0], "new").unwrap();
    assert!(new.not_after > SystemTime::now() + 364 * DAY);
    assert!(wardgate_security::pki::cert::is_issued_by(
        &rustls_pki_types::CertificateDer::from(
            std::fs::read(
                dir.path()
                    .join("pki/issued/aio-broker-frontend-server-18883/tls.crt")
            )
            .map(|b| pem::certificates(&b, "x").unwrap().remove(0).to_vec())
            .unwrap()
        ),
        &bundle[0]
    ));
    assert_eq!(tls.certificates[0].issuer, new.subject);
}

/// `seeds/000_…`'s "bootstrapping a CA issuer": a selfSigned Issuer, an `isCA` Certificate into
/// Secret `test-ca`, a `ca` Issuer on that Secret, and the listener's automatic port, as YAML.
const SEED_000_BOOTSTRAP: &str = r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: selfsigned-ca-issuer
  namespace: azure-iot-operations
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: selfsigned-ca-cert
  namespace: azure-iot-operations
spec:
  isCA: true
  commonName: test-ca
  secretName: test-ca
  issuerRef:
    name: selfsigned-ca-issuer
    kind: Issuer
    group: cert-manager.io
  privateKey:
    rotationPolicy: Always
    algorithm: ECDSA
    size: 256
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: my-issuer
  namespace: azure-iot-operations
spec:
  ca:
    secretName: test-ca
---
apiVersion: mqttbroker.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: loadbalancer-tls
  namespace: azure-iot-operations
spec:
  brokerRef: default
  serviceType: loadBalancer
  serviceName: aio-broker-loadbalancer-tls
  ports:
  - port: 8884
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef:
          name: my-issuer
          kind: Issuer
"#;

#[tokio::test]
async fn the_seed_000_bootstrapped_ca_issuer_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = wardgate_config::load_str("ca.yaml", SEED_000_BOOTSTRAP)
        .unwrap()
        .model;
    let l = model.listener("loadbalancer-tls").unwrap().clone();
    let tls = ready(ctx.resolve(&model, &l, &l.ports[0]));
    let leaf = &tls.certificates[0];
    assert_eq!(leaf.issuer.to_string(), "CN = test-ca");
    assert_eq!(
        leaf.subject.to_string(),
        "CN = aio-broker-loadbalancer-tls-frontend-server-8884"
    );
    // The bootstrapped CA is where `kubectl get secret test-ca` would have put it.
    let ca_file = dir.path().join("pki/issued/test-ca/tls.crt");
    let ca = pem::certificates(&std::fs::read(&ca_file).unwrap(), "test-ca").unwrap();
    let ca_info = CertificateInfo::from_der(&ca[0], "ca").unwrap();
    assert!(ca_info.is_ca && ca_info.self_signed);
    assert_eq!(ca_info.key_type, KeyType::EcP256);
    handshake(
        tls.config,
        Client::trusting(&[&ca[0]], "aio-broker-loadbalancer-tls"),
    )
    .await
    .unwrap();
    // Reused on the next resolve and after a restart: same CA, same leaf.
    let again = ready(context(dir.path()).resolve(&model, &l, &l.ports[0]));
    assert_eq!(again.certificates[0].serial, leaf.serial);
    let ca_again = pem::certificates(&std::fs::read(&ca_file).unwrap(), "test-ca").unwrap();
    assert_eq!(ca_again, ca);
}

#[test]
fn a_removed_port_is_no_longer_due() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    assert_eq!(ctx.next_renewal(), None, "nothing automatic resolved yet");
    let mut model = Model::defaults();
    let l = model.listener("default").unwrap().clone();
    ready(ctx.resolve(&model, &l, &l.ports[0]));
    assert!(ctx.next_renewal().is_some());
    // The default listener becomes a manual port: its automatic certificate is no longer due.
    let root = Ca::root("Root", KeyAlgorithm::Ec256);
    let (leaf, key) = root.server(&["localhost"], KeyAlgorithm::Ec256);
    model.secrets.insert(
        "s".into(),
        tls_secret("s", &chain_pem(&[&leaf]), &key.pem()),
    );
    model.listeners[0].ports[0] = manual_port("s");
    let l = model.listeners[0].clone();
    ready(ctx.resolve(&model, &l, &l.ports[0]));
    assert_eq!(ctx.next_renewal(), None);
}

/// The trust bundle follows the issuers of the served certificates and the trust settings
/// (`seeds/004_…`, bring your own issuer): it held the quickstart CA, which signed nothing,
/// whatever issued the served certificates. Now: the root of the `ca` issuer's chain, not the
/// quickstart CA; plus the CAs of the trust settings' ConfigMap key; a port that goes takes its
/// CA with it; the quickstart CA joins once a port uses it.
#[tokio::test]
async fn the_trust_bundle_holds_the_cas_that_sign_served_certificates_and_the_trust_settings() {
    use wardgate_security::tls::{TlsContext, TlsOptions, TrustSettings};
    let dir = tempfile::tempdir().unwrap();
    let ctx = TlsContext::open_with(
        dir.path(),
        TlsOptions {
            host_names: vec!["edge-box".into()],
            namespace: "azure-iot-operations".into(),
            trust_settings: Some(TrustSettings {
                config_map: "user-trust".into(),
                key: Some("ca.pem".into()),
            }),
            issuance: Default::default(),
        },
    )
    .unwrap();
    let root = Ca::root("Contoso Root CA", KeyAlgorithm::Ec256);
    let inter = root.intermediate("Contoso Intermediate CA 1", KeyAlgorithm::Ec256);
    let mut model = Model::defaults();
    contoso_issuer(&mut model);
    model.secrets.insert(
        "contoso-ca".into(),
        tls_secret(
            "contoso-ca",
            &chain_pem(&[&inter.cert, &root.cert]),
            &inter.signer.key().pem(),
        ),
    );
    let port = automatic_port(automatic(IssuerKind::ClusterIssuer, "contoso"));
    let l = listener(port.clone());
    model.listeners.push(l.clone());
    let tls = ready(ctx.resolve(&model, &l, &port));
    assert_eq!(
        trust_bundle(&ctx),
        vec![root.cert.clone()],
        "only the root that signs"
    );
    let bundle = trust_bundle(&ctx);
    handshake(tls.config, Client::trusting(&[&bundle[0]], "localhost"))
        .await
        .unwrap();

    // The trust settings' ConfigMap key joins (another key of it does not).
    let enterprise = Ca::root("Enterprise Root CA", KeyAlgorithm::Ec256);
    let unrelated = Ca::root("Unrelated Root CA", KeyAlgorithm::Ec256);
    model.config_maps.insert(
        "user-trust".into(),
        config_map(
            "user-trust",
            &[
                ("ca.pem", &enterprise.pem()),
                ("other.pem", &unrelated.pem()),
            ],
        ),
    );
    ctx.refresh_trust_bundle(&model);
    assert_eq!(
        trust_bundle(&ctx),
        vec![root.cert.clone(), enterprise.cert.clone()]
    );
    let sources: Vec<String> = ctx.trust_bundle().into_iter().map(|i| i.source).collect();
    assert_eq!(
        sources,
        [
            "CA of ClusterIssuer/contoso",
            "ConfigMap/user-trust key ca.pem"
        ]
    );

    // The port goes: its CA leaves the bundle.
    model.listeners.retain(|x| x.name != "lb");
    ctx.refresh_trust_bundle(&model);
    assert_eq!(trust_bundle(&ctx), vec![enterprise.cert.clone()]);

    // The default listener's quickstart certificate: now the quickstart CA signs something.
    let default = model.listener("default").unwrap().clone();
    ready(ctx.resolve(&model, &default, &default.ports[0]));
    let bundle = trust_bundle(&ctx);
    let subjects: Vec<String> = bundle
        .iter()
        .map(|c| {
            CertificateInfo::from_der(c, "x")
                .unwrap()
                .subject
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        [
            format!("O = Wardgate, CN = {QUICKSTART_CA_COMMON_NAME}"),
            "CN = Enterprise Root CA".to_owned()
        ]
    );
}
