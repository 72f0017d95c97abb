//! Operating a cluster as a user does: three `wardgate serve --cluster` processes on a
//! three-server NATS cluster; `wardgate status` and `GET /api/v1/cluster` on node 0 list the
//! three nodes up, its metrics carry its node label, and a node killed with SIGKILL is down for
//! node 0 within seconds.

use std::process::Command;
use std::time::{Duration, Instant};

use wardgate_server::admin::client::AdminClient;
use wardgate_server::admin::cluster::Cluster;
use wardgate_testkit::nats::NatsCluster;
use wardgate_testkit::process::{run, wait_for_port};

use crate::cluster::{Node, start_node};

/// `wardgate status` against `admin`: its output.
fn status(admin: u16) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("status")
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{admin}")),
        Duration::from_secs(20),
    )
    .expect("wardgate status runs");
    out.stdout.clone()
}

/// Runs `status` on `admin` until its output contains `want`, for at most `within`.
fn status_until(admin: u16, want: &str, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let text = status(admin);
        if text.contains(want) {
            return (text, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "no {want:?} after {within:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn cluster_api(admin: u16) -> Cluster {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let api = AdminClient::new(format!("127.0.0.1:{admin}").parse().expect("addr"));
    let (code, cluster) = rt
        .block_on(api.get_json::<Cluster>("/api/v1/cluster"))
        .expect("GET /api/v1/cluster");
    assert_eq!(code, 200);
    cluster
}

#[test]
fn status_lists_every_node_up_and_a_killed_node_goes_down_within_seconds() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| start_node(&nats, i, &format!("node-{i}")))
        .collect();
    let admin = nodes[0].admin;
    wait_for_port(admin, Duration::from_secs(30)).expect("the admin API serves");
    let (text, _) = status_until(admin, "3 of 3 nodes up", Duration::from_secs(15));
    assert!(
        text.contains("Cluster: node node-0, NATS connected"),
        "{text}"
    );
    for id in ["node-0", "node-1", "node-2"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(id) && l.contains(" up ")),
            "{id} up:\n{text}"
        );
    }
    // A node reports its MQTT port from its first heartbeat after the port opened.
    let start = Instant::now();
    let cluster = loop {
        let cluster = cluster_api(admin);
        if cluster.members.iter().all(|m| m.ports.len() == 1) {
            break cluster;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{cluster:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(cluster.node, "node-0");
    assert_eq!(cluster.nats, "connected");
    let ids: Vec<&str> = cluster.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["node-0", "node-1", "node-2"]);
    assert!(cluster.members.iter().all(|m| m.up), "{cluster:?}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let api = AdminClient::new(format!("127.0.0.1:{admin}").parse().expect("addr"));
    let metrics = rt
        .block_on(api.get("/metrics"))
        .expect("GET /metrics")
        .text();
    // The console's Cluster page shows the same view.
    let page = rt
        .block_on(api.get("/cluster"))
        .expect("GET /cluster")
        .text();
    assert!(page.contains("3 of 3 nodes up"), "{page}");
    // Where a client is: one connected to node 1, asked on node 0.
    let port = nodes[1].port.to_string();
    let mut held = crate::support::mosquitto_sub_running(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "locate-me",
        "-t",
        "x",
        "-d",
        "-W",
        "30",
    ]);
    held.wait_for_line("the SUBACK", Duration::from_secs(10), |l| {
        l.contains("Subscribed (mid: 1)")
    })
    .expect("subscribed");
    let found = rt
        .block_on(api.get("/cluster?client=locate-me"))
        .expect("GET /cluster?client=")
        .text();
    assert!(
        found.contains("Client <strong>locate-me</strong> is held by node <strong>node-1</strong>"),
        "{found}"
    );
    let nobody = rt
        .block_on(api.get("/cluster?client=nobody"))
        .expect("GET /cluster?client=")
        .text();
    assert!(
        nobody.contains("No node holds client <strong>nobody</strong>"),
        "{nobody}"
    );
    drop(held);
    for id in ["node-0", "node-1", "node-2"] {
        assert!(
            page.contains(&format!("<td>{id}</td>")),
            "{id} on the page:\n{page}"
        );
    }
    assert!(
        metrics.contains("wardgate_connections_total{node=\"node-0\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wardgate_cluster_member_up{node=\"node-0\",member=\"node-2\"} 1"),
        "{metrics}"
    );

    nodes[2].process.kill();
    let (text, took) = status_until(admin, "2 of 3 nodes up", Duration::from_secs(8));
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("node-2") && l.contains("DOWN")),
        "{text}"
    );
    eprintln!("node-2 was down for node-0 {took:?} after SIGKILL");
    assert!(!cluster_api(admin).members[2].up);
}
