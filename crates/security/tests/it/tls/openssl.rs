//! OpenSSL on both sides: chains made with Debian's `openssl` after `seeds/002_…`'s recipe are
//! loaded (and its extension-less intermediate refused with the fix), and `openssl s_client`
//! (the TLS stack of mosquitto) verifies the certificates Wardgate serves: a manual chain, a
//! chain made by Wardgate's own `pki` (what `wardgate cert` writes), and the quickstart
//! certificate with the trust bundle.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wardgate_config::KeyAlgorithm;
use wardgate_config::model::Model;

use super::common::*;

/// The seed's server-side recipe: RSA root, intermediate, leaf with an IP SAN. With
/// `intermediate_ext`, the intermediate is signed with that extensions file (the fix).
fn seed_recipe(dir: &Path, leaf_san: &str, intermediate_ext: Option<&str>) {
    let o = |args: &[&str]| {
        openssl(dir, args);
    };
    o(&["genrsa", "-out", "aio42_root_ca.key", "2048"]);
    o(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        "aio42_root_ca.key",
        "-sha256",
        "-days",
        "3000",
        "-subj",
        "/CN=AIO42 Root CA",
        "-out",
        "aio42_root_ca.crt",
    ]);
    o(&["genrsa", "-out", "aio42_intermediate_ca.key", "2048"]);
    o(&[
        "req",
        "-new",
        "-key",
        "aio42_intermediate_ca.key",
        "-subj",
        "/CN=AIO42 Intermediate CA 1",
        "-out",
        "aio42_intermediate_ca.csr",
    ]);
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        "aio42_intermediate_ca.csr",
        "-CA",
        "aio42_root_ca.crt",
        "-CAkey",
        "aio42_root_ca.key",
        "-CAcreateserial",
        "-out",
        "aio42_intermediate_ca.crt",
        "-days",
        "3000",
        "-sha256",
    ];
    if let Some(ext) = intermediate_ext {
        std::fs::write(dir.join("ca.ext"), ext).unwrap();
        args.extend(["-extfile", "ca.ext"]);
    }
    o(&args);
    o(&["genrsa", "-out", "mqtts-endpoint.key", "2048"]);
    o(&[
        "req",
        "-new",
        "-key",
        "mqtts-endpoint.key",
        "-subj",
        "/CN=mqtts-endpoint",
        "-out",
        "mqtts-endpoint.csr",
    ]);
    std::fs::write(
        dir.join("san.cnf"),
        format!("[ req ]\ndistinguished_name=req\n[ v3_req ]\nsubjectAltName={leaf_san}\n"),
    )
    .unwrap();
    o(&[
        "x509",
        "-req",
        "-in",
        "mqtts-endpoint.csr",
        "-CA",
        "aio42_intermediate_ca.crt",
        "-CAkey",
        "aio42_intermediate_ca.key",
        "-CAcreateserial",
        "-out",
        "mqtts-endpoint.crt",
        "-days",
        "3000",
        "-sha256",
        "-extfile",
        "san.cnf",
        "-extensions",
        "v3_req",
    ]);
}

fn resolve_manual(crt: &str, key: &str) -> wardgate_security::tls::TlsOutcome {
    let data = tempfile::tempdir().unwrap();
    let ctx = context(data.path());
    let mut model = Model::defaults();
    model.secrets.insert(
        "broker-server-cert".into(),
        tls_secret("broker-server-cert", crt, key),
    );
    let port = manual_port("broker-server-cert");
    ctx.resolve(&model, &listener(port.clone()), &port)
}

/// `openssl s_client` against an echo server with `config`; `Ok(output)` when the handshake
/// and verification succeeded (`-verify_return_error`).
async fn s_client(
    config: Arc<ServerConfig>,
    cafile: &Path,
    verify: &[&str],
) -> Result<String, String> {
    s_client_full(config, cafile, verify).await.0
}

/// As [`s_client`], with the server's side: the client certificate's CN it saw, or its error.
async fn s_client_full(
    config: Arc<ServerConfig>,
    cafile: &Path,
    args: &[&str],
) -> (Result<String, String>, Result<Option<String>, String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(wardgate_security::tls::client_identity)
            .and_then(|c| c.common_name);
        let mut buf = [0u8; 5];
        // TLS 1.3 client certificates are checked when the client's Finished arrives, which
        // this first read processes.
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let _ = tls.write_all(&buf).await;
        let _ = tls.shutdown().await;
        Ok::<_, String>(peer)
    });
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(cafile)
        .args(["-verify_return_error", "-brief"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("openssl is installed");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"ping\n").await;
    // Keep stdin open until the echo comes back, then close it so s_client exits.
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        drop(stdin);
        child.wait_with_output().await.unwrap()
    })
    .await
    .expect("s_client finished");
    let server = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .map_err(|_| "server timed out".to_owned())
        .and_then(|r| r.unwrap());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let client = if out.status.success() && text.contains("Verification: OK") {
        Ok(text)
    } else {
        Err(text)
    };
    (client, server)
}

#[test]
fn the_seed_recipe_as_written_makes_an_intermediate_every_client_rejects_and_loading_says_why() {
    let dir = tempfile::tempdir().unwrap();
    seed_recipe(dir.path(), "IP:192.168.2.196", None);
    // OpenSSL itself refuses the chain.
    let out = run(std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-CAfile",
            "aio42_root_ca.crt",
            "-untrusted",
            "aio42_intermediate_ca.crt",
            "mqtts-endpoint.crt",
        ]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid CA certificate")
            || String::from_utf8_lossy(&out.stdout).contains("invalid CA certificate")
    );
    let crt =
        read(dir.path(), "mqtts-endpoint.crt") + &read(dir.path(), "aio42_intermediate_ca.crt");
    let reason = failed(resolve_manual(
        &crt,
        &read(dir.path(), "mqtts-endpoint.key"),
    ));
    assert!(
        reason.starts_with(
            "Secret/broker-server-cert: tls.crt: certificate 2 of 2 (CN = AIO42 Intermediate CA 1) \
             is not a CA certificate"
        ),
        "{reason}"
    );
    assert!(reason.contains("invalid CA certificate"), "{reason}");
    assert!(reason.contains("-extfile"), "{reason}");
    assert!(
        reason.contains("basicConstraints=critical,CA:TRUE"),
        "{reason}"
    );
    assert!(reason.contains("wardgate cert intermediate"), "{reason}");

    // The same intermediate in a client CA bundle is refused too.
    let dir2 = tempfile::tempdir().unwrap();
    let ctx = context(dir2.path());
    let mut model = Model::defaults();
    let root = Ca::root("Contoso", KeyAlgorithm::Ec256);
    let (leaf, key) = root.server(&["localhost"], KeyAlgorithm::Ec256);
    model.secrets.insert(
        "srv".into(),
        tls_secret("srv", &chain_pem(&[&leaf]), &key.pem()),
    );
    model.config_maps.insert(
        "clients42-ca".into(),
        config_map(
            "clients42-ca",
            &[(
                "client_ca.pem",
                &read(dir.path(), "aio42_intermediate_ca.crt"),
            )],
        ),
    );
    let mut port = manual_port("srv");
    with_x509(&mut model, &mut port, "clients42-ca");
    let reason = failed(ctx.resolve(&model, &listener(port.clone()), &port));
    assert!(
        reason.contains("CN = AIO42 Intermediate CA 1) is not a CA certificate"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_seed_recipe_with_a_ca_intermediate_serves_to_openssl_and_the_san_decides() {
    let dir = tempfile::tempdir().unwrap();
    seed_recipe(
        dir.path(),
        "IP:192.168.2.196,IP:127.0.0.1",
        Some("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"),
    );
    let crt =
        read(dir.path(), "mqtts-endpoint.crt") + &read(dir.path(), "aio42_intermediate_ca.crt");
    let tls = ready(resolve_manual(
        &crt,
        &read(dir.path(), "mqtts-endpoint.key"),
    ));
    assert_eq!(tls.certificates.len(), 2);
    let cafile = dir.path().join("aio42_root_ca.crt");
    s_client(
        tls.config.clone(),
        &cafile,
        &["-verify_ip", "192.168.2.196"],
    )
    .await
    .unwrap();
    s_client(tls.config.clone(), &cafile, &["-verify_ip", "127.0.0.1"])
        .await
        .unwrap();
    // The SAN mistake: dialling an address the certificate does not name.
    let e = s_client(tls.config.clone(), &cafile, &["-verify_ip", "10.13.100.11"])
        .await
        .unwrap_err();
    assert!(e.contains("IP address mismatch"), "{e}");
    // Our rustls client agrees.
    let root = wardgate_security::pki::pem::certificates(&std::fs::read(&cafile).unwrap(), "root")
        .unwrap()
        .remove(0);
    handshake(tls.config, Client::trusting(&[&root], "192.168.2.196"))
        .await
        .unwrap();
}

#[tokio::test]
async fn wardgate_made_chains_are_accepted_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    for (root_alg, inter_alg, leaf_alg) in [
        (
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Ec256,
        ),
        (
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Ec384,
            KeyAlgorithm::Rsa2048,
        ),
        (
            KeyAlgorithm::Ec521,
            KeyAlgorithm::Ec256,
            KeyAlgorithm::Ed25519,
        ),
    ] {
        let root = Ca::root("AIO42 Root CA", root_alg);
        let inter = root.intermediate("AIO42 Intermediate CA 1", inter_alg);
        let (leaf, key) = inter.server(&["localhost", "127.0.0.1"], leaf_alg);
        std::fs::write(dir.path().join("root.crt"), root.pem()).unwrap();
        std::fs::write(
            dir.path().join("chain.crt"),
            chain_pem(&[&leaf, &inter.cert]),
        )
        .unwrap();
        std::fs::write(dir.path().join("inter.crt"), inter.pem()).unwrap();
        std::fs::write(dir.path().join("leaf.crt"), chain_pem(&[&leaf])).unwrap();
        openssl(
            dir.path(),
            &[
                "verify",
                "-CAfile",
                "root.crt",
                "-untrusted",
                "inter.crt",
                "-purpose",
                "sslserver",
                "-verify_hostname",
                "localhost",
                "leaf.crt",
            ],
        );
        let tls = ready(resolve_manual(
            &chain_pem(&[&leaf, &inter.cert]),
            &key.pem(),
        ));
        s_client(
            tls.config,
            &dir.path().join("root.crt"),
            &["-verify_hostname", "localhost"],
        )
        .await
        .unwrap_or_else(|e| panic!("{root_alg}/{inter_alg}/{leaf_alg}: {e}"));
    }
}

#[tokio::test]
async fn the_quickstart_certificate_verifies_with_the_trust_bundle_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let model = Model::defaults();
    let l = model.listener("default").unwrap().clone();
    let tls = ready(ctx.resolve(&model, &l, &l.ports[0]));
    for verify in [
        ["-verify_hostname", "localhost"],
        ["-verify_hostname", "aio-broker"],
        ["-verify_ip", "127.0.0.1"],
    ] {
        s_client(tls.config.clone(), &ctx.trust_bundle_path(), &verify)
            .await
            .unwrap_or_else(|e| panic!("{verify:?}: {e}"));
    }
    let e = s_client(
        tls.config,
        &ctx.trust_bundle_path(),
        &["-verify_hostname", "n013edge.local"],
    )
    .await
    .unwrap_err();
    assert!(e.contains("mismatch"), "{e}");
}

#[tokio::test]
async fn openssl_client_certificates_are_verified_and_v1_leaves_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Clients42 root -> intermediate (a CA this time) -> client42a (v3) and client42b (v1, the
    // seed's recipe as written), all by openssl.
    let o = |args: &[&str]| {
        openssl(dir.path(), args);
    };
    o(&["genrsa", "-out", "root.key", "2048"]);
    o(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        "root.key",
        "-sha256",
        "-days",
        "30",
        "-subj",
        "/CN=Clients42 Root CA",
        "-out",
        "root.crt",
    ]);
    o(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "inter.key",
    ]);
    o(&[
        "req",
        "-new",
        "-key",
        "inter.key",
        "-subj",
        "/CN=Clients42 Intermediate CA 1",
        "-out",
        "inter.csr",
    ]);
    std::fs::write(
        dir.path().join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("client.ext"),
        "extendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    o(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "inter.crt",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        "ca.ext",
    ]);
    for (name, ext) in [("client42a", Some("client.ext")), ("client42b", None)] {
        o(&["genrsa", "-out", &format!("{name}.key"), "2048"]);
        o(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={name}"),
            "-out",
            "c.csr",
        ]);
        let out = format!("{name}.crt");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            "c.csr",
            "-CA",
            "inter.crt",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-out",
            &out,
            "-days",
            "30",
            "-sha256",
        ];
        if let Some(e) = ext {
            args.extend(["-extfile", e]);
        }
        o(&args);
        let bundle = read(dir.path(), &out) + &read(dir.path(), "inter.crt");
        std::fs::write(dir.path().join(format!("{name}-bundle.crt")), bundle).unwrap();
    }
    let server_root = Ca::root("AIO42 Root CA", KeyAlgorithm::Ec256);
    std::fs::write(dir.path().join("server-root.crt"), server_root.pem()).unwrap();
    let (leaf, key) = server_root.server(&["localhost"], KeyAlgorithm::Ec256);
    let data = tempfile::tempdir().unwrap();
    let ctx = context(data.path());
    let mut model = Model::defaults();
    model.secrets.insert(
        "srv".into(),
        tls_secret("srv", &chain_pem(&[&leaf]), &key.pem()),
    );
    model.config_maps.insert(
        "clients42-ca".into(),
        config_map(
            "clients42-ca",
            &[("client_ca.pem", &read(dir.path(), "root.crt"))],
        ),
    );
    let mut port = manual_port("srv");
    with_x509(&mut model, &mut port, "clients42-ca");
    let tls = ready(ctx.resolve(&model, &listener(port.clone()), &port));

    // rustls client with the v3 leaf and its intermediate.
    let chain = wardgate_security::pki::pem::certificates(
        read(dir.path(), "client42a-bundle.crt").as_bytes(),
        "client",
    )
    .unwrap();
    let client_key = wardgate_security::pki::issue::Key::from_pem(
        read(dir.path(), "client42a.key").as_bytes(),
        "client42a.key",
    )
    .unwrap();
    let h = handshake(
        tls.config.clone(),
        Client::trusting(&[&server_root.cert], "localhost").with_identity(chain, &client_key),
    )
    .await
    .unwrap();
    assert_eq!(h.peer.unwrap().common_name.as_deref(), Some("client42a"));

    // openssl s_client (mosquitto's TLS stack) with each.
    let cafile = dir.path().join("server-root.crt");
    let with_cert = |name: &str| {
        vec![
            "-verify_hostname".to_owned(),
            "localhost".to_owned(),
            "-cert".to_owned(),
            dir.path()
                .join(format!("{name}-bundle.crt"))
                .display()
                .to_string(),
            "-key".to_owned(),
            dir.path().join(format!("{name}.key")).display().to_string(),
            // s_client sends only the first certificate of -cert; mosquitto sends the whole
            // --cert file.
            "-cert_chain".to_owned(),
            dir.path().join("inter.crt").display().to_string(),
        ]
    };
    let args = with_cert("client42a");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (client, server) = s_client_full(tls.config.clone(), &cafile, &args).await;
    client.unwrap();
    assert_eq!(server.unwrap().as_deref(), Some("client42a"));
    let args = with_cert("client42b");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, server) = s_client_full(tls.config, &cafile, &args).await;
    let e = server.unwrap_err();
    assert!(e.contains("UnsupportedCertVersion"), "{e}");
}
