//! TLS ports of a running `wardgate serve` with real clients and real certificates: a manual
//! Secret made by openssl and `wardgate create secret tls`, automatic certificates from the
//! quickstart CA (trust bundle in the data dir) and from cert-manager issuers of the
//! configuration (`seeds/004_…`'s bring-your-own CA, `selfSigned`), MQTT.js over wss, the
//! "awaiting secret" flow, a name outside the SANs, and an expired certificate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::tls::{
    create_secret, file_serial, key_and_request, log_line, make_ca, make_ca_and_server,
    make_server, publish, seed_002_chain, serve, sign, tls_round_trip, write_listener,
};
use wardgate_testkit::pki::{self, TestCa};
use wardgate_testkit::process::{self, free_port, run, wait_for_port};
use wardgate_testkit::resources::{automatic_tls_port, manual_tls_port, quickstart_tls_port};

#[test]
fn manual_secret_made_with_openssl_serves_mosquitto_over_tls() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    make_ca_and_server(root.path());
    create_secret("server-cert", root.path(), "server", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_tls_port(port, "server-cert"));
    let _broker = serve(&config, &root.path().join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    tls_round_trip(port, &root.path().join("ca.crt"), "localhost");
    // TLS 1.2 and 1.3 are both served.
    for version in ["tlsv1.2", "tlsv1.3"] {
        let out = publish(
            port,
            &root.path().join("ca.crt"),
            "localhost",
            &["--tls-version", version, "-d", "-t", "x", "-m", "y"],
        );
        assert!(
            out.success() && out.stdout.contains("received CONNACK (0)"),
            "{version}: {out}"
        );
    }
    // A client that does not trust the CA is refused by its own TLS check, as it should be.
    let untrusted = publish(
        port,
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
        "localhost",
        &["-t", "x", "-m", "y"],
    );
    assert!(
        !untrusted.success(),
        "a client with the wrong CA must fail: {untrusted}"
    );
}

#[test]
fn automatic_certificate_from_the_quickstart_ca_and_the_trust_bundle() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    let port = free_port().expect("port");
    write_listener(&config, &quickstart_tls_port(port, "Mqtt", ""));
    let data = root.path().join("data");
    let mut broker = serve(&config, &data);
    let bundle = data.join("trust-bundle").join("ca.crt");
    // The banner shows the TLS scheme, and how to try it with the trust bundle.
    broker
        .wait_for_line("the port in the banner", Duration::from_secs(60), |l| {
            l.contains(&format!("mqtts://127.0.0.1:{port}"))
        })
        .expect("the port is shown as mqtts://");
    broker
        .wait_for_line("the Try it line", Duration::from_secs(10), |l| {
            l.contains(&format!(
                "mosquitto_pub -h localhost -p {port} --cafile {}",
                bundle.display()
            ))
        })
        .expect("Try it names the trust bundle");
    broker
        .wait_for_line(
            "the banner with the trust bundle",
            Duration::from_secs(60),
            |l| l.contains("Trust bundle") && l.contains("ca.crt"),
        )
        .expect("the trust bundle path is printed");
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    assert!(bundle.is_file(), "the trust bundle is written");
    tls_round_trip(port, &bundle, "localhost");
    tls_round_trip(port, &bundle, "127.0.0.1");
}

#[test]
fn a_port_awaiting_its_secret_starts_when_the_secret_appears() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    pki::write_ca_and_server(root.path());
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(
        &config,
        &format!(
            "  - port: {plain}\n    protocol: Mqtt\n{}",
            manual_tls_port(tls, "late-cert")
        ),
    );
    let mut broker = serve(&config, &root.path().join("data"));
    broker
        .wait_for_line("the awaiting message", Duration::from_secs(30), |l| {
            l.contains("Server certificate late-cert not found. Awaiting creation of secret.")
        })
        .expect("the AIO wording is logged");
    wait_for_port(plain, Duration::from_secs(10)).expect("the plain port serves meanwhile");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_err(),
        "the waiting port does not accept"
    );
    let started = std::time::Instant::now();
    create_secret("late-cert", root.path(), "server", &config);
    if let Err(e) = wait_for_port(tls, Duration::from_secs(20)) {
        panic!(
            "the port did not start once the secret existed: {e}\n{}",
            broker.kill()
        );
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "started within 5 s, took {took:?}:\n{}",
        broker.kill()
    );
    tls_round_trip(tls, &root.path().join("ca.crt"), "localhost");
}

/// `seeds/004_…`'s bring-your-own issuer: a CA made with openssl in a `kubernetes.io/tls`
/// Secret behind a cert-manager `Issuer` and a `ClusterIssuer` (`ca.secretName`), and a
/// `selfSigned: {}` Issuer; mosquitto trusts only that CA (or the self-signed certificate).
#[test]
fn bring_your_own_ca_issuers_and_a_self_signed_issuer_serve_mosquitto() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    make_ca(dir);
    // An intermediate CA signed by the root, with the extensions a CA needs.
    std::fs::write(
        dir.join("inter.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .expect("write ext");
    key_and_request(dir, "inter", "/CN=Contoso Intermediate CA 1");
    sign(dir, "inter");
    create_secret("contoso-root-ca", dir, "ca", &config);
    create_secret("contoso-intermediate-ca", dir, "inter", &config);
    std::fs::write(
        config.join("issuers.yaml"),
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: contoso-issuer\n  namespace: azure-iot-operations\nspec:\n  ca:\n    secretName: contoso-root-ca\n---\napiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: contoso-cluster-issuer\nspec:\n  ca:\n    secretName: contoso-intermediate-ca\n---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: selfsigned\n  namespace: azure-iot-operations\nspec:\n  selfSigned: {}\n",
    )
    .expect("write issuers");
    let (by_issuer, by_cluster_issuer, self_signed) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    write_listener(
        &config,
        &format!(
            "{}{}{}",
            automatic_tls_port(by_issuer, "Mqtt", "Issuer", "contoso-issuer", ""),
            automatic_tls_port(
                by_cluster_issuer,
                "Mqtt",
                "ClusterIssuer",
                "contoso-cluster-issuer",
                ""
            ),
            automatic_tls_port(
                self_signed,
                "Mqtt",
                "Issuer",
                "selfsigned",
                "        secretName: selfsigned-cert\n"
            ),
        ),
    );
    let data = dir.join("data");
    let _broker = serve(&config, &data);
    for port in [by_issuer, by_cluster_issuer, self_signed] {
        wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    }
    // Clients hold only the root: the intermediate is served after the leaf.
    for host in ["localhost", "127.0.0.1"] {
        tls_round_trip(by_issuer, &dir.join("ca.crt"), host);
        tls_round_trip(by_cluster_issuer, &dir.join("ca.crt"), host);
    }
    // The self-signed certificate is its own CA, as cert-manager writes it into ca.crt.
    let own = data.join("pki/issued/selfsigned-cert/ca.crt");
    tls_round_trip(self_signed, &own, "localhost");
    assert_eq!(
        crate::support::tls::served_serial(self_signed),
        file_serial(&own),
        "the served certificate is the stored self-signed one"
    );
    // And the CAs are not interchangeable: the self-signed certificate does not chain to the
    // root, nor the root's certificates to the quickstart CA.
    let wrong = publish(
        self_signed,
        &dir.join("ca.crt"),
        "localhost",
        &["-t", "x", "-m", "y"],
    );
    assert!(!wrong.success(), "{wrong}");
    let wrong = publish(
        by_issuer,
        &data.join("pki/quickstart-ca/tls.crt"),
        "localhost",
        &["-t", "x", "-m", "y"],
    );
    assert!(!wrong.success(), "{wrong}");
    // The trust bundle holds what signs the served certificates: the root and the self-signed
    // certificate (not the quickstart CA, which signs nothing here).
    let bundle = data.join("trust-bundle/ca.crt");
    for port in [by_issuer, by_cluster_issuer, self_signed] {
        tls_round_trip(port, &bundle, "localhost");
    }
}

/// MQTT.js over `wss://` (a `protocol: WebSockets` port with automatic TLS) trusting only the
/// quickstart CA's trust bundle; without it, MQTT.js refuses the certificate.
#[test]
fn mqttjs_over_wss_with_the_quickstart_trust_bundle() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    let port = free_port().expect("port");
    write_listener(&config, &quickstart_tls_port(port, "WebSockets", ""));
    let data = root.path().join("data");
    let _broker = serve(&config, &data);
    wait_for_port(port, Duration::from_secs(30)).expect("the wss port opens");
    let bundle = data.join("trust-bundle/ca.crt");
    let url = format!("wss://localhost:{port}/mqtt");
    let journey = |extra: &[&str]| {
        let mut cmd = process::node_command().unwrap_or_else(|e| panic!("{e}"));
        cmd.arg(process::clients_dir().join("mqttjs_journeys.js"))
            .args(["pubsub", "--url", &url, "--qos", "0,1,2", "--count", "3"])
            .args(extra)
            .env("JOURNEY_TIMEOUT", "30");
        run(&mut cmd, Duration::from_secs(45)).expect("the journey runs")
    };
    for version in ["5", "4"] {
        let out = journey(&[
            "--ca",
            bundle.to_str().expect("utf-8"),
            "--protocol-version",
            version,
        ]);
        let closing = out.lines().last().unwrap_or_default().to_owned();
        assert!(
            out.success() && closing.contains("\"ok\":true") && closing.contains("\"received\":9"),
            "MQTT.js over wss, MQTT {version}:\n{out}"
        );
    }
    let untrusted = journey(&[]);
    assert!(
        !untrusted.success() && untrusted.stdout.contains("certificate"),
        "without the trust bundle MQTT.js must refuse the certificate:\n{untrusted}"
    );
}

/// The seeds' SAN mistake: a certificate for `localhost` only. A client dialling 127.0.0.1
/// rejects it, one dialling localhost accepts it, and `wardgate cert inspect --host` says so
/// beforehand (exit 1 and why, exit 0).
#[test]
fn a_name_not_in_the_sans_is_rejected_and_cert_inspect_predicts_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    make_ca(dir);
    make_server(dir, "named", "DNS:localhost");
    let inspect = |host: &str| {
        run(
            Command::new(env!("CARGO_BIN_EXE_wardgate"))
                .args(["cert", "inspect", "named.crt", "--host", host])
                .current_dir(dir),
            Duration::from_secs(20),
        )
        .expect("inspect runs")
    };
    let no = inspect("127.0.0.1");
    assert_eq!(no.status.code(), Some(1), "{no}");
    let text = no.to_string();
    assert!(
        text.contains("Host 127.0.0.1: no:")
            && text.contains("is not among its SANs (DNS:localhost)")
            && text.contains("--san 127.0.0.1"),
        "inspect names the mismatch and the fix: {text}"
    );
    let yes = inspect("localhost");
    assert!(yes.success(), "{yes}");
    assert!(yes.to_string().contains("Host localhost: yes"), "{yes}");

    create_secret("named-cert", dir, "named", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_tls_port(port, "named-cert"));
    let mut broker = serve(&config, &dir.join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let rejected = publish(
        port,
        &dir.join("ca.crt"),
        "127.0.0.1",
        &["-t", "x", "-m", "y"],
    );
    assert!(
        !rejected.success(),
        "dialling 127.0.0.1 must fail: {rejected}"
    );
    // The client closes the handshake; the broker's log says what to check.
    broker
        .wait_for_line("the refused handshake", Duration::from_secs(20), |l| {
            l.contains("TLS handshake failed: the client ended the handshake")
                && l.contains("rejects the server certificate")
                && l.contains("SANs")
        })
        .expect("the broker logs the refused handshake");
    tls_round_trip(port, &dir.join("ca.crt"), "localhost");
    // mosquitto sends the IP as the TLS server name; rustls' warning about it is not logged.
    let out = broker.kill();
    assert!(!out.stdout.contains("Illegal SNI"), "{out}");
}

/// An expired leaf in a manual Secret is served (clients decide), with a warning that says so.
#[test]
fn an_expired_manual_certificate_is_served_with_a_warning() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    let ca = TestCa::new("Test Root CA");
    ca.write(dir, "ca");
    ca.issue_expired_server(&pki::LOCALHOST)
        .write(dir, "expired", &[]);
    create_secret("expired-cert", dir, "expired", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_tls_port(port, "expired-cert"));
    let mut broker = serve(&config, &dir.join("data"));
    let warning = broker
        .wait_for_line("the expiry warning", Duration::from_secs(30), |l| {
            l.contains("WARN") && l.contains("Secret/expired-cert")
        })
        .expect("a warning names the Secret");
    assert!(
        warning.contains("expired on 2024-02-01")
            && warning.contains("it is served, but clients will reject it"),
        "{warning}"
    );
    wait_for_port(port, Duration::from_secs(30)).expect("the port serves anyway");
    assert_eq!(
        crate::support::tls::served_serial(port),
        file_serial(&dir.join("expired.crt"))
    );
    let verify = run(
        Command::new("sh")
            .arg("-c")
            .arg("openssl s_client -connect \"127.0.0.1:$0\" -CAfile \"$1\" </dev/null 2>&1")
            .arg(port.to_string())
            .arg(dir.join("ca.crt")),
        Duration::from_secs(20),
    )
    .expect("s_client runs");
    assert!(
        verify.stdout.contains("certificate has expired"),
        "the client sees the expired certificate: {verify}"
    );
    // mosquitto refuses it, and the broker's log says why.
    let refused = publish(
        port,
        &dir.join("ca.crt"),
        "localhost",
        &["-t", "x", "-m", "y"],
    );
    assert!(!refused.success(), "{refused}");
    broker
        .wait_for_line("the refused handshake", Duration::from_secs(20), |l| {
            l.contains("the client rejected the server certificate as expired")
        })
        .expect("the broker logs why the client left");
}

/// `seeds/002_…`'s openssl recipe as written signs the intermediate CA without extensions (an
/// X.509 v1 certificate that no client accepts as a CA): the port is not opened, and the log
/// names the certificate, says why clients reject it and gives the fix.
#[test]
fn the_seed_002_recipe_as_written_is_refused_with_the_fix() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    make_ca(dir);
    // As the seed does: `openssl x509 -req` with no -extfile.
    seed_002_chain(dir, "chain");
    create_secret("broker-server-cert", dir, "chain", &config);
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(
        &config,
        &format!(
            "  - port: {plain}\n    protocol: Mqtt\n{}",
            manual_tls_port(tls, "broker-server-cert")
        ),
    );
    let mut broker = serve(&config, &dir.join("data"));
    let line = broker
        .wait_for_line("the refusal", Duration::from_secs(30), |l| {
            l.contains("port not opened") && l.contains(&format!("port={tls}"))
        })
        .expect("the TLS port is not opened");
    for needed in [
        "Secret/broker-server-cert: tls.crt: certificate 2 of 2 (CN = AIO42 Intermediate CA 1) is not a CA certificate",
        "invalid CA certificate",
        "basicConstraints=critical,CA:TRUE",
        "wardgate cert intermediate",
    ] {
        assert!(line.contains(needed), "{needed:?} missing from: {line}");
    }
    wait_for_port(plain, Duration::from_secs(10)).expect("the plain port serves");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_err(),
        "the TLS port is not opened"
    );
}

/// `wardgate validate` loads the certificate material and reports what `serve` then fails the
/// port with, word for word: `seeds/002_…`'s X.509 v1 intermediate, a chain in the wrong order
/// (intermediate first), and a key that is not the leaf's. It used to say "valid".
#[test]
fn validate_reports_exactly_what_serve_refuses_in_the_certificate_material() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let config = dir.join("config");
    make_ca(dir);
    // The seed's recipe: the intermediate signed with no -extfile (v1), the leaf signed by it.
    seed_002_chain(dir, "v1");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("read");
    // A good server certificate, then the same chain in the wrong order, and with another key.
    make_server(dir, "server", "DNS:localhost,IP:127.0.0.1");
    std::fs::write(dir.join("order.crt"), read("ca.crt") + &read("server.crt")).expect("write");
    std::fs::write(dir.join("order.key"), read("server.key")).expect("write");
    std::fs::write(dir.join("other.crt"), read("server.crt")).expect("write");
    std::fs::write(dir.join("other.key"), read("v1.key")).expect("write");
    for name in ["v1", "order", "other"] {
        create_secret(&format!("{name}-cert"), dir, name, &config);
    }
    let ports = [(); 3].map(|_| free_port().expect("port"));
    let plain = free_port().expect("port");
    write_listener(
        &config,
        &format!(
            "  - port: {plain}\n    protocol: Mqtt\n{}{}{}",
            manual_tls_port(ports[0], "v1-cert"),
            manual_tls_port(ports[1], "order-cert"),
            manual_tls_port(ports[2], "other-cert"),
        ),
    );

    let out = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("validate")
            .arg("--config")
            .arg(&config),
        Duration::from_secs(30),
    )
    .expect("validate runs");
    assert_eq!(out.status.code(), Some(1), "{out}");
    let reason = |port: u16| -> String {
        let prefix = format!("BrokerListener/default port {port}: ");
        out.stderr
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no error for port {port}: {out}"))
            .to_owned()
    };
    let expected = [
        (
            ports[0],
            "certificate 2 of 2 (CN = AIO42 Intermediate CA 1) is not a CA certificate",
        ),
        (ports[1], "the chain is in the wrong order"),
        (
            ports[2],
            "tls.key does not match the first certificate in tls.crt",
        ),
    ];
    for (port, needed) in expected {
        assert!(reason(port).contains(needed), "{needed:?} missing: {out}");
    }
    assert!(reason(ports[0]).contains("X.509 v1"), "{out}");
    assert!(!out.stdout.contains("valid:"), "{out}");

    // serve fails each of those ports with the very same reason.
    let mut broker = serve(&config, &dir.join("data"));
    for port in ports {
        let line = log_line(&mut broker, "the refusal", Duration::from_secs(30), |l| {
            l.contains("port not opened") && l.contains(&format!("port={port} "))
        });
        let logged = format!("reason={:?}", reason(port));
        assert!(
            line.contains(&logged),
            "validate said {logged}, serve: {line}"
        );
    }
    wait_for_port(plain, Duration::from_secs(10)).expect("the plain port serves");
}

/// `wardgate serve` on `config` with the admin API on `admin` and `extra` arguments (logs
/// merged into stdout).
fn serve_with(config: &Path, data: &Path, admin: u16, extra: &[&str]) -> process::Running {
    process::Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("c=\"$1\" d=\"$2\" a=\"$3\"; shift 3; exec \"$0\" serve --config \"$c\" --data-dir \"$d\" --admin-addr \"127.0.0.1:$a\" \"$@\" 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(config)
            .arg(data)
            .arg(admin.to_string())
            .args(extra)
            .env("NO_COLOR", "1"),
    )
    .expect("start wardgate")
}

/// The certificates of a PEM file, as `openssl x509 -serial` names them, in order.
fn serials(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read PEM");
    let dir = tempfile::tempdir().expect("tempdir");
    text.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .enumerate()
        .map(|(i, block)| {
            let f = dir.path().join(format!("{i}.crt"));
            std::fs::write(&f, block).expect("write");
            file_serial(&f)
        })
        .collect()
}

/// An Issuer `byo` on the CA `ca.crt`/`ca.key` of `dir` (Secret `byo-ca`) in `config`.
fn byo_issuer(dir: &Path, config: &Path) {
    make_ca(dir);
    create_secret("byo-ca", dir, "ca", config);
    std::fs::write(
        config.join("issuer.yaml"),
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata:\n  name: byo\n  namespace: azure-iot-operations\nspec:\n  ca:\n    secretName: byo-ca\n",
    )
    .expect("write issuer");
}

/// `seeds/004_…`, bring your own issuer: the served certificate comes from the user's CA, so
/// the trust bundle (file, `/api/v1/trust-bundle`, banner) is that CA; it was the quickstart
/// root, which signs nothing here.
#[tokio::test(flavor = "multi_thread")]
async fn the_trust_bundle_is_the_ca_of_your_issuer_not_the_quickstart_ca() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, config, data) = (
        root.path(),
        root.path().join("config"),
        root.path().join("data"),
    );
    std::fs::create_dir_all(&config).expect("mkdir");
    byo_issuer(dir, &config);
    let (port, admin) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(
        &config,
        &automatic_tls_port(port, "Mqtt", "Issuer", "byo", ""),
    );
    let mut broker = serve_with(&config, &data, admin, &[]);
    let bundle = data.join("trust-bundle/ca.crt");
    log_line(
        &mut broker,
        "the Try it line",
        Duration::from_secs(60),
        |l| l.contains(&format!("-p {port} --cafile {}", bundle.display())),
    );
    log_line(
        &mut broker,
        "the bundle in the banner",
        Duration::from_secs(10),
        |l| l.contains("CN = Test Root CA") && l.contains("CA of Issuer/byo"),
    );
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    assert_eq!(serials(&bundle), vec![file_serial(&dir.join("ca.crt"))]);
    let api = wardgate_server::admin::client::AdminClient::new(([127, 0, 0, 1], admin).into());
    wait_for_port(admin, Duration::from_secs(10)).expect("admin API");
    let served = api.get("/api/v1/trust-bundle").await.expect("trust bundle");
    assert_eq!(served.status, 200);
    assert_eq!(
        served.text(),
        std::fs::read_to_string(&bundle).expect("read")
    );
    assert!(
        !broker
            .seen()
            .iter()
            .any(|l| l.contains("Quickstart Root CA")),
        "{:?}",
        broker.seen()
    );
    tls_round_trip(port, &bundle, "localhost");
}

/// `az iot ops create --trust-settings configMapName=… configMapKey=… issuerKind=…
/// issuerName=…` as `wardgate serve --trust-settings`: what the quickstart issuer would sign,
/// the given issuer signs, and the ConfigMap's CA joins the trust bundle.
#[test]
fn trust_settings_add_the_config_map_and_replace_the_quickstart_issuer() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, config, data) = (
        root.path(),
        root.path().join("config"),
        root.path().join("data"),
    );
    std::fs::create_dir_all(&config).expect("mkdir");
    byo_issuer(dir, &config);
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    TestCa::new("Test Root CA").write(&other, "ca");
    let created = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(["create", "configmap", "user-trust", "--from-file"])
            .arg(format!("enterprise.pem={}", other.join("ca.crt").display()))
            .arg("-o")
            .arg(&config),
        Duration::from_secs(20),
    )
    .expect("create configmap runs");
    assert!(created.success(), "{created}");
    let (port, admin) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(&config, &quickstart_tls_port(port, "Mqtt", ""));
    let _broker = serve_with(
        &config,
        &data,
        admin,
        &[
            "--trust-settings",
            "configMapName=user-trust",
            "configMapKey=enterprise.pem",
            "issuerKind=Issuer",
            "issuerName=byo",
        ],
    );
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let bundle = data.join("trust-bundle/ca.crt");
    assert_eq!(
        serials(&bundle),
        vec![
            file_serial(&dir.join("ca.crt")),
            file_serial(&other.join("ca.crt"))
        ]
    );
    // The port's certificate is from the Issuer byo: the user's CA verifies it.
    tls_round_trip(port, &dir.join("ca.crt"), "localhost");
}

/// A client that offers only TLS 1.1: the handshake fails and the log line names the version
/// it offered (it said "no TLS version or cipher suite in common").
#[test]
fn a_client_offering_only_tls_1_1_is_logged_with_the_version_it_offered() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    pki::write_ca_and_server(root.path());
    create_secret("server-cert", root.path(), "server", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_tls_port(port, "server-cert"));
    let mut broker = serve(&config, &root.path().join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let out = run(
        Command::new("sh").arg("-c").arg(
            "openssl s_client -connect \"127.0.0.1:$0\" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null",
        )
        .arg(port.to_string()),
        Duration::from_secs(20),
    )
    .expect("openssl runs");
    assert!(!out.success(), "TLS 1.1 must not be served: {out}");
    let line = log_line(&mut broker, "the refusal", Duration::from_secs(20), |l| {
        l.contains("TLS handshake failed")
    });
    assert!(line.contains("the client offers only TLS 1.1"), "{line}");
    assert!(line.contains("TLS 1.2 and 1.3"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
}

/// Seed 000's "all supported properties" block under `certManagerCertificateSpec`, as written
/// but for the issuer and a P-384 key: it was refused with 4 errors. The certificate is issued
/// with that key and stored under the `secret` name.
#[test]
fn seed_000_server_certificate_parameters_are_honoured() {
    let root = tempfile::tempdir().expect("tempdir");
    let (config, data) = (root.path().join("config"), root.path().join("data"));
    let port = free_port().expect("port");
    let block = "        namespace: az\n        secret: my-issuer-8884\n        privateKey:\n          rotationPolicy: Always\n          algorithm: ECDSA\n          size: 384\n        duration: 720h\n        renewBefore: 240h\n        san:\n          dns:\n          - iotmq.example.com\n          ip:\n          - 192.168.1.1\n";
    write_listener(&config, &quickstart_tls_port(port, "Mqtt", block));
    let _broker = serve(&config, &data);
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    let stored = data.join("pki/issued/my-issuer-8884/tls.crt");
    let text = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&stored),
        Duration::from_secs(20),
    )
    .expect("openssl runs");
    assert!(text.success(), "{text}");
    assert!(text.stdout.contains("NIST CURVE: P-384"), "{text}");
    assert!(text.stdout.contains("DNS:iotmq.example.com"), "{text}");
    assert!(text.stdout.contains("IP Address:192.168.1.1"), "{text}");
    tls_round_trip(port, &data.join("trust-bundle/ca.crt"), "localhost");
}
