//! TLS ports of a running `wardgate serve` with real clients and real certificates: a manual
//! Secret made by openssl and `wardgate create secret tls`, automatic certificates from the
//! quickstart CA (trust bundle in the data dir) and from cert-manager issuers of the
//! configuration (`seeds/004_…`'s bring-your-own CA, `selfSigned`), MQTT.js over wss, the
//! "awaiting secret" flow, a name outside the SANs, and an expired certificate.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::tls::{
    automatic_port, create_secret, file_serial, key_and_request, make_ca, make_ca_and_server,
    make_expired_server, make_server, manual_port, publish, quickstart_port, serve, sign, sign_by,
    tls_round_trip, write_listener,
};
use wardgate_testkit::process::{self, free_port, run, wait_for_port};

#[test]
fn manual_secret_made_with_openssl_serves_mosquitto_over_tls() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    make_ca_and_server(root.path());
    create_secret("server-cert", root.path(), "server", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_port(port, "server-cert"));
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
    write_listener(&config, &quickstart_port(port, "Mqtt", ""));
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
    make_ca_and_server(root.path());
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(
        &config,
        &format!(
            "  - port: {plain}\n    protocol: Mqtt\n{}",
            manual_port(tls, "late-cert")
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
            automatic_port(by_issuer, "Mqtt", "Issuer", "contoso-issuer", ""),
            automatic_port(
                by_cluster_issuer,
                "Mqtt",
                "ClusterIssuer",
                "contoso-cluster-issuer",
                ""
            ),
            automatic_port(
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
        support::tls::served_serial(self_signed),
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
        &data.join("trust-bundle/ca.crt"),
        "localhost",
        &["-t", "x", "-m", "y"],
    );
    assert!(!wrong.success(), "{wrong}");
}

/// MQTT.js over `wss://` (a `protocol: WebSockets` port with automatic TLS) trusting only the
/// quickstart CA's trust bundle; without it, MQTT.js refuses the certificate.
#[test]
fn mqttjs_over_wss_with_the_quickstart_trust_bundle() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    let port = free_port().expect("port");
    write_listener(&config, &quickstart_port(port, "WebSockets", ""));
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
    write_listener(&config, &manual_port(port, "named-cert"));
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
    make_ca(dir);
    make_expired_server(dir, "expired");
    create_secret("expired-cert", dir, "expired", &config);
    let port = free_port().expect("port");
    write_listener(&config, &manual_port(port, "expired-cert"));
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
        support::tls::served_serial(port),
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
    key_and_request(dir, "inter", "/CN=AIO42 Intermediate CA 1");
    // As the seed does: `openssl x509 -req` with no -extfile.
    sign_by(dir, "inter", "ca", false);
    key_and_request(dir, "chain", "/CN=mqtts-endpoint");
    std::fs::write(dir.join("chain.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write ext");
    sign_by(dir, "chain", "inter", true);
    let chain = std::fs::read_to_string(dir.join("chain.crt")).expect("leaf")
        + &std::fs::read_to_string(dir.join("inter.crt")).expect("intermediate");
    std::fs::write(dir.join("chain.crt"), chain).expect("write chain");
    create_secret("broker-server-cert", dir, "chain", &config);
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(
        &config,
        &format!(
            "  - port: {plain}\n    protocol: Mqtt\n{}",
            manual_port(tls, "broker-server-cert")
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
