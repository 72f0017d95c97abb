//! The `wardgate` binary as a user runs it: the quickstart, `--config` folders, invalid
//! configuration, ports that cannot open, and graceful shutdown on SIGTERM.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, ReasonCode};
use wardgate_testkit::client::{RawClient, Received};
use wardgate_testkit::process::{Running, free_port, wait_for_port};
use wardgate_testkit::resources::named_listener;

use wardgate_testkit::pki::TestCa;

fn wardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
}

fn sigterm(process: &Running) {
    let status = Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn serve(config: &Path, data: &Path) -> Running {
    Running::spawn(
        wardgate()
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .env("WARDGATE_LOG", "info"),
    )
    .expect("start wardgate")
}

#[tokio::test(flavor = "multi_thread")]
async fn config_folder_ports_serve_and_sigterm_disconnects_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, ws) = (free_port().expect("port"), free_port().expect("port"));
    let ports =
        format!("  - port: {tcp}\n    protocol: Mqtt\n  - port: {ws}\n    protocol: WebSockets\n");
    std::fs::write(
        dir.path().join("listener.yaml"),
        named_listener("default", "ClusterIp", &ports),
    )
    .expect("write config");
    let mut broker = serve(dir.path(), &dir.path().join("data"));
    let banner = broker
        .wait_for_line("the banner naming the port", Duration::from_secs(20), |l| {
            l.contains(&format!("mqtt://127.0.0.1:{tcp}"))
        })
        .expect("banner");
    assert!(banner.contains("BrokerListener/default"), "{banner}");
    wait_for_port(ws, Duration::from_secs(5)).expect("WebSocket port open");
    assert!(dir.path().join("data").is_dir(), "--data-dir is created");

    let (mut client, ack) =
        RawClient::connect(([127, 0, 0, 1], tcp).into(), ProtocolVersion::V5, "cli").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    sigterm(&broker);
    match client.recv().await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SERVER_SHUTTING_DOWN)
        }
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    let out = broker
        .wait(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(out.success(), "exit status: {out}");
}

#[test]
fn invalid_configuration_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        named_listener("lan", "ClusterIp", "  - port: 99999\n    protocol: Mqtt\n"),
    )
    .expect("write");
    let out = serve(&file, &dir.path().join("data"))
        .wait(Duration::from_secs(20))
        .expect("exits");
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.to_string().contains("broken.yaml"),
        "the error names the file: {out}"
    );
}

#[test]
fn a_port_that_cannot_open_is_reported_and_the_others_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (plain, tls) = (free_port().expect("port"), free_port().expect("port"));
    let ports = format!(
        "  - port: {plain}\n    protocol: Mqtt\n  - port: {tls}\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: server-cert\n"
    );
    std::fs::write(
        dir.path().join("l.yaml"),
        named_listener("default", "ClusterIp", &ports),
    )
    .expect("write");
    let mut broker = serve(dir.path(), &dir.path().join("data"));
    broker
        .wait_for_line("the banner", Duration::from_secs(20), |l| {
            l.contains(&format!(":{plain}"))
        })
        .expect("the plain port opens");
    wait_for_port(plain, Duration::from_secs(5)).expect("plain port accepts");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", tls)).is_err(),
        "the TLS port is not opened"
    );
    let out = broker.kill();
    assert!(
        out.to_string().contains("not opened"),
        "the reason is logged: {out}"
    );
}

#[test]
fn validate_prints_every_error_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = "  - port: 1883\n    protocol: Mqtt\n  - port: 1883\n    protocol: Carrier-Pigeon\n";
    std::fs::write(
        dir.path().join("bad.yaml"),
        named_listener("default", "ClusterIp", bad),
    )
    .expect("write");
    let out = wardgate_testkit::process::run(
        wardgate().arg("validate").arg("--config").arg(dir.path()),
        Duration::from_secs(20),
    )
    .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{out}");
    let text = out.to_string();
    assert!(text.contains("bad.yaml:"), "errors name the file: {text}");
    assert!(
        text.contains("Carrier-Pigeon"),
        "the bad enum value is reported: {text}"
    );
}

#[test]
fn validate_accepts_a_good_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ok.yaml"),
        named_listener(
            "default",
            "ClusterIp",
            "  - port: 1883\n    protocol: Mqtt\n",
        ),
    )
    .expect("write");
    let out = wardgate_testkit::process::run(
        wardgate().arg("validate").arg("--config").arg(dir.path()),
        Duration::from_secs(20),
    )
    .expect("runs");
    assert!(out.success(), "{out}");
    assert!(
        out.to_string().contains("valid: 1 listener(s), 1 port(s)"),
        "{out}"
    );
}

#[test]
fn create_secret_tls_writes_yaml_that_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A self-signed certificate and its key.
    TestCa::new("Test Root CA").write(dir.path(), "ca");
    let (cert, key) = (dir.path().join("ca.crt"), dir.path().join("ca.key"));
    let config = dir.path().join("config");
    let out = wardgate_testkit::process::run(
        wardgate()
            .args(["create", "secret", "tls", "server-cert", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("-o")
            .arg(&config),
        Duration::from_secs(20),
    )
    .expect("runs");
    assert!(out.success(), "{out}");
    let written =
        std::fs::read_to_string(config.join("secret-server-cert.yaml")).expect("file written");
    assert!(written.contains("type: kubernetes.io/tls"), "{written}");
    let validate = wardgate_testkit::process::run(
        wardgate().arg("validate").arg("--config").arg(&config),
        Duration::from_secs(20),
    )
    .expect("runs");
    assert!(validate.success(), "{validate}");
}

/// `wardgate serve` with logs merged into stdout, the admin API on `admin`.
fn serve_merged(config: &Path, data: &Path, admin: u16) -> Running {
    Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" serve --config \"$1\" --data-dir \"$2\" --admin-addr \"127.0.0.1:$3\" 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(config)
            .arg(data)
            .arg(admin.to_string())
            .env("NO_COLOR", "1"),
    )
    .expect("start wardgate")
}

/// A second broker on one machine whose port and admin address the first one holds: it said
/// only `port not opened` at WARN and went on, and `wardgate status` then described the other
/// broker. It says loudly (ERROR, the banner) which port and address are taken and that status
/// there describes the other broker; with no port at all to serve it exits 1.
#[test]
fn a_second_broker_says_loudly_that_its_port_and_admin_address_are_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [shared, own, admin] = [(); 3].map(|_| free_port().expect("port"));
    let folder = |name: &str, ports: &[u16]| {
        let config = dir.path().join(name);
        std::fs::create_dir_all(&config).expect("mkdir");
        let items: String = ports
            .iter()
            .map(|p| format!("  - port: {p}\n    protocol: Mqtt\n"))
            .collect();
        std::fs::write(
            config.join("l.yaml"),
            named_listener("default", "ClusterIp", &items),
        )
        .expect("write");
        config
    };
    let first_config = folder("first", &[shared]);
    let _first = serve_merged(&first_config, &dir.path().join("first-data"), admin);
    wait_for_port(shared, Duration::from_secs(20)).expect("the first broker serves");
    wait_for_port(admin, Duration::from_secs(20)).expect("the first broker's admin API");

    let second_config = folder("second", &[shared, own]);
    let mut second = serve_merged(&second_config, &dir.path().join("second-data"), admin);
    wait_for_port(own, Duration::from_secs(20)).expect("the second broker serves its own port");
    let port_line = second
        .wait_for_line("the port error", Duration::from_secs(20), |l| {
            l.contains("ERROR") && l.contains(&format!("127.0.0.1:{shared} is already in use"))
        })
        .expect("the taken port is an error naming the address");
    assert!(
        port_line.contains(&format!("port {shared} cannot be opened")),
        "{port_line}"
    );
    let admin_line = second
        .wait_for_line("the admin error", Duration::from_secs(20), |l| {
            l.contains("ERROR") && l.contains("admin API and metrics cannot be opened")
        })
        .expect("the taken admin address is an error");
    assert!(
        admin_line.contains(&format!("127.0.0.1:{admin} is already in use"))
            && admin_line.contains("describe that one, not this one"),
        "{admin_line}"
    );
    let out = second.kill();
    assert!(out.stdout.contains("NOT SERVED"), "{out}");

    // Nothing at all to serve: exit 1, saying so.
    let third_config = folder("third", &[shared]);
    let third = Running::spawn(
        wardgate()
            .args(["serve", "--config"])
            .arg(&third_config)
            .arg("--data-dir")
            .arg(dir.path().join("third-data"))
            .args(["--admin-addr", "127.0.0.1:0"]),
    )
    .expect("start wardgate")
    .wait(Duration::from_secs(30))
    .expect("exits");
    assert_eq!(third.status.code(), Some(1), "{third}");
    assert!(third.stderr.contains("no port could be opened"), "{third}");
    assert!(third.stderr.contains("already in use"), "{third}");
}
