//! Automatic TLS on a cluster: with cert-manager the port serves the Secret cert-manager writes
//! (and waits for it as AIO does); without it, the built-in issuer's certificate survives a pod
//! restart through its Secret (`TlsContext::issued_files` / `restore_issued`).

use wardgate_config::KeyAlgorithm;
use wardgate_config::model::{IssuerKind, Model};
use wardgate_security::pki::{CertificateInfo, pem};
use wardgate_security::tls::{AutomaticIssuance, TlsOutcome};

use super::common::*;

/// The Secret cert-manager writes for a CA issuer: the leaf, its key and the CA in `ca.crt`.
fn cert_manager_secret(name: &str, ca: &Ca) -> (wardgate_config::model::Secret, String) {
    let (leaf, key) = ca.server(&["localhost"], KeyAlgorithm::Ec256);
    let mut secret = tls_secret(
        name,
        &pem::certificate_pem(&leaf),
        &pem::private_key_pem(key.der()),
    );
    secret.data.insert("ca.crt".into(), ca.pem().into_bytes());
    (secret, fingerprint(&leaf))
}

fn fingerprint(der: &[u8]) -> String {
    CertificateInfo::from_der(der, "leaf").unwrap().sha256
}

#[tokio::test]
async fn with_cert_manager_the_port_waits_for_its_secret_then_serves_it_and_follows_its_renewal() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context_issued_by(dir.path(), AutomaticIssuance::CertManager);
    // An issuer Wardgate does not know: cert-manager does, so the port does not wait for it.
    let a = automatic(IssuerKind::ClusterIssuer, "contoso-issuer");
    let listener = listener(automatic_port(a));
    let port = listener.ports[0].clone();
    let mut model = Model::defaults();
    model.listeners = vec![listener.clone()];

    match ctx.resolve(&model, &listener, &port) {
        TlsOutcome::AwaitingSecret { secret, message } => {
            assert_eq!(secret, "aio-broker-frontend-server-8883");
            assert_eq!(
                message,
                "Server certificate aio-broker-frontend-server-8883 not found. Awaiting creation of secret."
            );
        }
        other => panic!("expected AwaitingSecret, got {other:?}"),
    }
    assert!(
        !dir.path().join("pki/issued").exists(),
        "nothing is issued here: cert-manager issues"
    );

    let ca = Ca::root("Contoso Root CA", KeyAlgorithm::Ec256);
    let (secret, first) = cert_manager_secret("aio-broker-frontend-server-8883", &ca);
    model.secrets.insert(secret.name.clone(), secret);
    let tls = ready(ctx.resolve(&model, &listener, &port));
    assert_eq!(tls.certificates[0].sha256, first);
    assert_eq!(
        tls.certificates[0].source,
        "Secret/aio-broker-frontend-server-8883 (cert-manager, ClusterIssuer/contoso-issuer)"
    );
    assert_eq!(
        ctx.next_renewal(),
        None,
        "cert-manager renews, not Wardgate"
    );
    let shook = handshake(
        tls.config.clone(),
        Client::trusting(&[&ca.cert], "localhost"),
    )
    .await
    .unwrap();
    assert_eq!(fingerprint(&shook.served[0]), first);
    // The trust bundle holds the Secret's ca.crt.
    let bundle = pem::certificates(&std::fs::read(ctx.trust_bundle_path()).unwrap(), "b").unwrap();
    assert_eq!(bundle, vec![ca.cert.clone()]);
    let subjects: Vec<String> = ctx
        .trust_bundle()
        .iter()
        .map(|c| c.source.clone())
        .collect();
    assert_eq!(
        subjects,
        [
            "ca.crt of Secret/aio-broker-frontend-server-8883 (cert-manager, ClusterIssuer/contoso-issuer)"
        ]
    );

    // cert-manager renews: the Secret holds a new certificate, which the next resolve serves.
    let (renewed, second) = cert_manager_secret("aio-broker-frontend-server-8883", &ca);
    model.secrets.insert(renewed.name.clone(), renewed);
    let tls = ready(ctx.resolve(&model, &listener, &port));
    assert_ne!(first, second);
    assert_eq!(tls.certificates[0].sha256, second);
}

#[tokio::test]
async fn a_certificate_restored_from_its_secret_is_reused_after_a_restart_with_an_empty_data_dir() {
    let model = Model::defaults();
    let listener = model.listener("default").unwrap().clone();
    let port = listener.ports[0].clone();
    let name = "aio-broker-frontend-server-18883";

    let first_pod = tempfile::tempdir().unwrap();
    let ctx = context(first_pod.path());
    assert_eq!(ctx.issued_files(name), None, "nothing issued yet");
    let issued = ready(ctx.resolve(&model, &listener, &port));
    let files = ctx
        .issued_files(name)
        .expect("the issued certificate's files");
    let leaf = pem::certificates(&files.tls_crt, "tls.crt").unwrap();
    assert_eq!(fingerprint(&leaf[0]), issued.certificates[0].sha256);
    assert!(!files.tls_key.is_empty() && !files.ca_crt.is_empty());

    // A new pod: an empty data dir, but the same quickstart CA (its files are kept too) and
    // the Secret the first pod wrote.
    let second_pod = tempfile::tempdir().unwrap();
    let from = first_pod.path().join("pki/quickstart-ca");
    let to = second_pod.path().join("pki/quickstart-ca");
    std::fs::create_dir_all(&to).unwrap();
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    let again = context(second_pod.path());
    assert!(again.restore_issued(name, &files).unwrap());
    assert!(
        !again.restore_issued(name, &files).unwrap(),
        "a stored certificate is not overwritten"
    );
    let reused = ready(again.resolve(&model, &listener, &port));
    assert_eq!(
        reused.certificates[0].sha256, issued.certificates[0].sha256,
        "the restored certificate is served, not a new one"
    );
    let info: &CertificateInfo = &reused.certificates[0];
    assert!(info.subject.to_string().contains(name));

    // A Secret that holds no certificate is refused, and nothing is written.
    let third_pod = tempfile::tempdir().unwrap();
    let broken = wardgate_security::tls::IssuedFiles {
        tls_crt: b"not a certificate".to_vec(),
        ..files
    };
    assert!(
        context(third_pod.path())
            .restore_issued(name, &broken)
            .is_err()
    );
    assert!(!third_pod.path().join("pki/issued").exists());
}
