//! TLS ports of a running `wardgate serve` with real clients and real certificates: a manual
//! Secret made by openssl and `wardgate create secret tls`, automatic certificates from the
//! quickstart CA (trust bundle in the data dir), and the "awaiting secret" flow.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::{
    Running, free_port, mosquitto_pub, mosquitto_sub, run, wait_for_port,
};

mod support;
use support::openssl;

const LISTENER_HEAD: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n";

/// A CA and a server certificate for localhost/127.0.0.1 signed by it, as the seeds' openssl
/// recipes make them.
fn make_ca_and_server(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Test Root CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
        dir,
    );
}

/// `wardgate create secret tls NAME` from `dir`'s server.crt/server.key into `config`.
fn create_secret(name: &str, dir: &Path, config: &Path) {
    let created = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(["create", "secret", "tls", name, "--cert"])
            .arg(dir.join("server.crt"))
            .arg("--key")
            .arg(dir.join("server.key"))
            .arg("-o")
            .arg(config),
        Duration::from_secs(20),
    )
    .expect("create runs");
    assert!(created.success(), "{created}");
}

fn serve(config: &Path, data: &Path) -> Running {
    Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" serve --config \"$1\" --data-dir \"$2\" 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(config)
            .arg(data),
    )
    .expect("start wardgate")
}

/// mosquitto_sub over TLS on `port` receives what mosquitto_pub publishes over TLS.
fn tls_round_trip(port: u16, cafile: &Path, host: &str) {
    let p = port.to_string();
    let mut sub = Running::spawn(Command::new(mosquitto_sub().expect("mosquitto_sub")).args([
        "-h",
        host,
        "-p",
        &p,
        "--cafile",
        cafile.to_str().expect("utf-8"),
        "-t",
        "secure/#",
        "-C",
        "1",
        "-W",
        "20",
    ]))
    .expect("start mosquitto_sub");
    for _ in 0..50 {
        let publ = run(
            Command::new(mosquitto_pub().expect("mosquitto_pub")).args([
                "-h",
                host,
                "-p",
                &p,
                "--cafile",
                cafile.to_str().expect("utf-8"),
                "-t",
                "secure/x",
                "-m",
                "over-tls",
            ]),
            Duration::from_secs(10),
        )
        .expect("mosquitto_pub runs");
        assert!(publ.success(), "mosquitto_pub over TLS failed: {publ}");
        if sub
            .wait_for_line("the message", Duration::from_millis(300), |l| {
                l == "over-tls"
            })
            .is_ok()
        {
            return;
        }
    }
    panic!("no message over TLS; subscriber saw {:?}", sub.seen());
}

#[test]
fn manual_secret_made_with_openssl_serves_mosquitto_over_tls() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    make_ca_and_server(root.path());
    create_secret("server-cert", root.path(), &config);
    let port = free_port().expect("port");
    std::fs::write(
        config.join("listener.yaml"),
        format!("{LISTENER_HEAD}  - port: {port}\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: server-cert\n"),
    )
    .expect("write listener");
    let _broker = serve(&config, &root.path().join("data"));
    wait_for_port(port, Duration::from_secs(30)).expect("the TLS port opens");
    tls_round_trip(port, &root.path().join("ca.crt"), "localhost");
    // A client that does not trust the CA is refused by its own TLS check, as it should be.
    let untrusted = run(
        Command::new(mosquitto_pub().expect("mosquitto_pub")).args([
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "--cafile",
            "/etc/ssl/certs/ca-certificates.crt",
            "-t",
            "x",
            "-m",
            "y",
        ]),
        Duration::from_secs(10),
    )
    .expect("runs");
    assert!(
        !untrusted.success(),
        "a client with the wrong CA must fail: {untrusted}"
    );
}

#[test]
fn automatic_certificate_from_the_quickstart_ca_and_the_trust_bundle() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    let port = free_port().expect("port");
    std::fs::write(
        config.join("listener.yaml"),
        format!("{LISTENER_HEAD}  - port: {port}\n    protocol: Mqtt\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef:\n          group: cert-manager.io\n          kind: ClusterIssuer\n          name: azure-iot-operations-aio-certificate-issuer\n"),
    )
    .expect("write listener");
    let data = root.path().join("data");
    let mut broker = serve(&config, &data);
    let bundle = data.join("trust-bundle").join("ca.crt");
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
    std::fs::create_dir(&config).expect("mkdir");
    make_ca_and_server(root.path());
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    std::fs::write(
        config.join("listener.yaml"),
        format!("{LISTENER_HEAD}  - port: {plain}\n    protocol: Mqtt\n  - port: {tls}\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: late-cert\n"),
    )
    .expect("write listener");
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
    create_secret("late-cert", root.path(), &config);
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
