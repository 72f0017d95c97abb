//! `wardgate status` against a running `wardgate serve`, the admin port's address rules
//! (`--admin-addr`, else the Broker's prometheusPort on loopback; a busy port is not fatal), and
//! `diagnostics.logs.level`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_protocol::{ProtocolVersion, QoS};
use wardgate_server::admin::client::AdminClient;
use wardgate_testkit::client::RawClient;
use wardgate_testkit::process::{Output, Running, free_port, run, serve_command, wait_for_port};
use wardgate_testkit::resources::{mqtt_port, named_listener, quickstart_tls_port};

const START: Duration = Duration::from_secs(30);

fn wardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
}

/// One BrokerListener named `default` (it replaces the built-in default listener), ClusterIp.
fn write_listener(dir: &Path, port: u16) {
    write_listener_with(dir, port, "");
}

/// [`write_listener`] with more ports (YAML list items, indented by two spaces).
fn write_listener_with(dir: &Path, port: u16, more_ports: &str) {
    let yaml = named_listener("default", "ClusterIp", &(mqtt_port(port) + more_ports));
    std::fs::write(dir.join("listener.yaml"), yaml).expect("write listener");
}

fn serve(config: &Path, data: &Path, admin: Option<u16>) -> Running {
    let exe = Path::new(env!("CARGO_BIN_EXE_wardgate"));
    Running::spawn(&mut serve_command(exe, config, data, admin)).expect("start wardgate serve")
}

fn status(admin: u16) -> Output {
    run(
        wardgate()
            .arg("status")
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{admin}")),
        Duration::from_secs(20),
    )
    .expect("run wardgate status")
}

/// The output with whitespace runs collapsed and the values that change between runs named.
fn normalize(text: &str, replacements: &[(String, &str)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                // RFC 3339 times, e.g. `2026-11-22T10:02:50Z` or `(2026-11-22T10:02:50Z)`; not a
                // path such as the temporary data dir's, whose random name may hold a `T`.
                let stamp = w.trim_start_matches('(');
                let is_time = w.len() >= 20
                    && stamp.starts_with(|c: char| c.is_ascii_digit())
                    && w.contains('T')
                    && w.ends_with(['Z', ')']);
                if is_time {
                    if w.ends_with(')') {
                        "<time>)".to_string()
                    } else {
                        "<time>".to_string()
                    }
                } else {
                    w.to_string()
                }
            })
            .collect();
        let mut line = words.join(" ");
        for (from, to) in replacements {
            line = line.replace(from.as_str(), to);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_ports_and_clients_of_a_running_broker() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    let admin = free_port().expect("port");
    // Ports are listed by number: the MQTT port first.
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    let (mqtt, tls) = (a.min(b), a.max(b));
    write_listener_with(&config, mqtt, &quickstart_tls_port(tls, "Mqtt", ""));
    let data = root.path().join("data");
    let mut broker = serve(&config, &data, Some(admin));
    wait_for_port(mqtt, START).expect("MQTT port");
    wait_for_port(tls, START).expect("TLS port");
    wait_for_port(admin, START).expect("admin port");

    let (mut client, _) = RawClient::connect(
        format!("127.0.0.1:{mqtt}").parse().expect("addr"),
        ProtocolVersion::V5,
        "status-test-client",
    )
    .await;
    client.subscribe("plant/#", QoS::AtLeastOnce).await;

    let out = tokio::task::spawn_blocking(move || status(admin))
        .await
        .expect("join");
    assert!(out.success(), "{out}");
    let peer = out
        .stdout
        .split_whitespace()
        .find(|w| {
            w.parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.port() != mqtt && a.port() != tls)
        })
        .expect("the client's peer address")
        .to_string();
    let text = normalize(
        &out.stdout,
        &[
            (format!(" [::1]:{mqtt}"), ""),
            (format!(" [::1]:{tls}"), ""),
            (peer, "<peer>"),
            (format!("127.0.0.1:{admin}"), "<admin>"),
            (data.display().to_string(), "<data>"),
            (mqtt.to_string(), "<mqtt>"),
            (tls.to_string(), "<tls>"),
            (env!("CARGO_PKG_VERSION").to_string(), "<version>"),
        ],
    );
    let expected = "\
Wardgate <version> at <admin>: ready (started <time>)

Ports (2):
PORT LISTENER PROTOCOL STATE CLIENTS ADDRESSES / REASON
<mqtt> default Mqtt Listening 1 127.0.0.1:<mqtt>
<tls> default Mqtt Listening 0 127.0.0.1:<tls>

Certificates (2):
USED BY SUBJECT NOT AFTER EXPIRES SOURCE
BrokerListener/default:<tls> CN = default-frontend-server-<tls> <time> in 29 days issued by ClusterIssuer/azure-iot-operations-aio-certificate-issuer
trust bundle O = Wardgate, CN = Wardgate Quickstart Root CA - Not for Production <time> in 364 days quickstart CA (<data>/trust-bundle/ca.crt)

Clients: 1 connected
CLIENT ID USERNAME PORT VERSION PEER CONNECTED SINCE SUBS QUEUED
status-test-client - <mqtt> 5.0 <peer> <time> 1 0
";
    assert_eq!(text, expected, "raw output:\n{}", out.stdout);

    // The metrics agree, and the self-check (on by default) has run.
    let api = AdminClient::new(format!("127.0.0.1:{admin}").parse().expect("addr"));
    let metrics = api.get("/metrics").await.expect("/metrics").text();
    assert!(
        metrics.contains(&format!(
            "wardgate_port_connections{{port=\"{mqtt}\",listener=\"BrokerListener/default:{mqtt}\"}} 1\n"
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains("wardgate_selfcheck_rounds_passed_total 0\n"),
        "{metrics}"
    );

    client.disconnect().await;
    let log = broker.kill();
    assert!(
        log.stderr.contains(&format!(
            "admin API listening: http://127.0.0.1:{admin}/metrics"
        )),
        "{log}"
    );

    let out = tokio::task::spawn_blocking(move || status(admin))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stderr
            .contains(&format!("cannot reach the admin API at 127.0.0.1:{admin}")),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_admin_port_does_not_stop_mqtt() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    let (mqtt, admin) = (free_port().expect("port"), free_port().expect("port"));
    let _taken = std::net::TcpListener::bind(("127.0.0.1", admin)).expect("take the admin port");
    write_listener(&config, mqtt);
    let mut broker = serve(&config, &root.path().join("data"), Some(admin));
    wait_for_port(mqtt, START).expect("MQTT is served");
    let (client, _) = RawClient::connect(
        format!("127.0.0.1:{mqtt}").parse().expect("addr"),
        ProtocolVersion::V311,
        "still-served",
    )
    .await;
    client.disconnect().await;
    let log = broker.kill();
    // Loudly, with the address: whatever holds it answers `wardgate status` there.
    assert!(
        log.stderr.contains("ERROR")
            && log.stderr.contains(&format!(
                "the admin API and metrics cannot be opened: 127.0.0.1:{admin} is already in use"
            )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_broker_resource_sets_the_admin_port_and_the_log_level() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    let (mqtt, admin) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(&config, mqtt);
    std::fs::write(
        config.join("broker.yaml"),
        format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  diagnostics:\n    logs: {{level: warn}}\n    metrics: {{prometheusPort: {admin}}}\n"
        ),
    )
    .expect("write broker");
    let mut broker = serve(&config, &root.path().join("data"), None);
    wait_for_port(mqtt, START).expect("MQTT port");
    // prometheusPort, on loopback, without --admin-addr.
    wait_for_port(admin, START).expect("admin on prometheusPort");
    let out = tokio::task::spawn_blocking(move || status(admin))
        .await
        .expect("join");
    assert!(out.success(), "{out}");
    let log = broker.kill();
    // `warn`: no info lines (port listening, admin API listening) once the configuration is read.
    assert!(!log.stderr.contains("INFO"), "{log}");
}
