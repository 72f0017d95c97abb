//! A Wardgate cluster as a user runs it (docs/cluster.md): three NATS servers with JetStream,
//! three `wardgate serve --cluster ... --node-id ...` processes, each on its own NATS server,
//! and real clients — mosquitto_pub/sub, Paho and MQTT.js — publishing on one node and
//! subscribing on another.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_testkit::nats::NatsCluster;
use wardgate_testkit::process::{
    Running, free_port, mosquitto_pub, node_command, python_command, run, wait_for_port,
};
use wardgate_testkit::resources::{listener, mqtt_port};

/// A running node: its process, MQTT and admin ports, and folder.
pub(crate) struct Node {
    pub(crate) port: u16,
    pub(crate) admin: u16,
    pub(crate) process: Running,
    _dir: tempfile::TempDir,
}

/// Starts `wardgate serve` as node `id` of the cluster on NATS server `server`; returns once its
/// MQTT port serves.
pub(crate) fn start_node(nats: &NatsCluster, server: usize, id: &str) -> Node {
    start_node_with(nats, server, id, |_, port| listener(&mqtt_port(port)))
}

/// [`start_node`] with the configuration `resources` writes (given the node's folder and its
/// MQTT port), written as `config/listener.yaml`.
pub(crate) fn start_node_with(
    nats: &NatsCluster,
    server: usize,
    id: &str,
    resources: impl FnOnce(&Path, u16) -> String,
) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    let admin = free_port().expect("port");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let text = resources(dir.path(), port);
    std::fs::write(config.join("listener.yaml"), text).expect("write");
    let process = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--cluster")
            .arg(nats.url(server))
            .arg("--node-id")
            .arg(id)
            .env("WARDGATE_LOG", "info"),
    )
    .expect("start wardgate");
    wait_for_port(port, Duration::from_secs(30)).expect("the node serves");
    Node {
        port,
        admin,
        process,
        _dir: dir,
    }
}

/// Three nodes on a three-server NATS cluster.
fn cluster() -> (NatsCluster, Vec<Node>) {
    let nats = NatsCluster::start().expect("NATS cluster");
    let nodes = (0..3)
        .map(|i| start_node(&nats, i, &format!("node-{i}")))
        .collect();
    (nats, nodes)
}

/// Starts `mosquitto_sub` for `count` messages on `port`, printing `topic qos payload` per
/// message (and the user properties with v5), and waits until it has subscribed.
fn mosquitto_subscriber(port: u16, version: &str, filter: &str, count: usize) -> Running {
    let format = if version == "mqttv5" {
        "%t %q %p %P"
    } else {
        "%t %q %p"
    };
    let count = count.to_string();
    let port = port.to_string();
    let mut process = crate::support::mosquitto_sub_running(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-V",
        version,
        "-t",
        filter,
        "-q",
        "2",
        "-C",
        &count,
        "-W",
        "30",
        "-F",
        format,
        "-d",
    ]);
    process
        .wait_for_line("SUBACK", Duration::from_secs(10), |l| {
            l.contains("Subscribed (mid: 1)")
        })
        .expect("subscribed");
    // The subscribing node's interest reaches the other NATS servers.
    std::thread::sleep(Duration::from_millis(300));
    process
}

fn mosquitto_publish(port: u16, version: &str, topic: &str, qos: u8, payload: &str) {
    let mut cmd = Command::new(mosquitto_pub().expect("mosquitto_pub"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-V", version])
        .args(["-t", topic, "-q", &qos.to_string(), "-m", payload]);
    if version == "mqttv5" {
        cmd.args(["-D", "publish", "user-property", "site", "plant-7"]);
    }
    let out = run(&mut cmd, Duration::from_secs(20)).expect("runs");
    assert!(out.success(), "mosquitto_pub: {out}");
}

fn received_lines(process: Running) -> Vec<String> {
    let out = process
        .wait(Duration::from_secs(40))
        .expect("mosquitto_sub ends");
    assert!(out.success(), "mosquitto_sub: {out}");
    out.lines()
        .filter(|l| l.starts_with("plant/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn mosquitto_publishes_on_one_node_and_subscribers_on_the_others_receive_qos_0_1_2() {
    let (_nats, nodes) = cluster();
    for (version, from, to) in [("mqttv5", 0, 1), ("mqttv311", 1, 2)] {
        let subscriber = mosquitto_subscriber(nodes[to].port, version, "plant/#", 3);
        for qos in 0..3u8 {
            let payload = format!("{version}-q{qos}");
            mosquitto_publish(nodes[from].port, version, "plant/line-1", qos, &payload);
        }
        let lines = received_lines(subscriber);
        let expected: Vec<String> = (0..3u8)
            .map(|qos| {
                let line = format!("plant/line-1 {qos} {version}-q{qos}");
                if version == "mqttv5" {
                    format!("{line} site:plant-7")
                } else {
                    line
                }
            })
            .collect();
        assert_eq!(lines, expected, "{version}: node {from} → node {to}");
    }
}

/// A Paho subscriber on one node, and an MQTT.js publisher on another; then the other way.
#[test]
fn paho_and_mqttjs_talk_across_nodes() {
    let (_nats, nodes) = cluster();
    let root = wardgate_testkit::process::repo_root();
    let paho = root.join("tests/clients/cluster_paho.py");
    let mqttjs = root.join("tests/clients/cluster_mqttjs.js");
    for (script, sub_port, pub_port) in [
        (&paho, nodes[2].port, nodes[0].port),
        (&mqttjs, nodes[0].port, nodes[1].port),
    ] {
        let out = run_client(script, sub_port, pub_port);
        assert!(out.success(), "{}: {out}", script.display());
        let text = out.to_string();
        for qos in 0..3 {
            assert!(
                text.contains(&format!("received cross/node {qos} q{qos} a=1")),
                "{} missed QoS {qos}:\n{text}",
                script.display()
            );
        }
    }
}

fn run_client(script: &Path, sub_port: u16, pub_port: u16) -> wardgate_testkit::process::Output {
    let mut cmd = if script.extension().is_some_and(|e| e == "py") {
        python_command().expect("python with paho")
    } else {
        node_command().expect("node with mqtt")
    };
    cmd.arg(script)
        .arg(sub_port.to_string())
        .arg(pub_port.to_string());
    run(&mut cmd, Duration::from_secs(60)).expect("runs")
}

/// A persistent mosquitto_sub session on node 0, killed; messages published (on node 1) while
/// it is away; the same client ID connecting to node 1 takes its session over from node 0 and
/// receives them, in order.
#[test]
fn a_persistent_session_moves_to_the_node_its_client_reconnects_to() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let nodes: Vec<Node> = (0..2)
        .map(|i| start_node(&nats, i, &format!("node-{i}")))
        .collect();
    let persistent = |port: u16, count: &str| {
        let port = port.to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv311",
            "-c",
            "-i",
            "mover",
            "-t",
            "moving/#",
            "-q",
            "1",
            "-C",
            count,
            "-W",
            "30",
            "-F",
            "%t %p",
            "-d",
        ];
        crate::support::mosquitto_sub_running(&args)
    };
    let mut first = persistent(nodes[0].port, "1");
    first
        .wait_for_line("SUBACK", Duration::from_secs(10), |l| {
            l.contains("Subscribed (mid: 1)")
        })
        .expect("subscribed");
    first.kill();
    // The session's interest reaches the other NATS servers.
    std::thread::sleep(Duration::from_millis(300));
    for i in 1..=3 {
        mosquitto_publish(nodes[1].port, "mqttv311", "moving/on", 1, &format!("m{i}"));
    }
    let second = persistent(nodes[1].port, "3");
    let out = second
        .wait(Duration::from_secs(40))
        .expect("mosquitto_sub ends");
    assert!(out.success(), "mosquitto_sub: {out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("moving/")).collect();
    assert_eq!(lines, ["moving/on m1", "moving/on m2", "moving/on m3"]);
}
