//! The cluster brokers of `wardgate-bench compare` (issue 17 item 10), started for real: three
//! nats-server processes with JetStream and three Wardgate nodes (or nats-server's own MQTT
//! listener), publishers on one node and subscribers on another, a short load run through the
//! bench's own load generator, and every process gone after the guard drops.
//!
//! Needs `target/debug/wardgate` (`cargo build -p wardgate`) and nats-server (`scripts/test`
//! installs it into `.venv/`).

use std::path::PathBuf;
use std::time::Duration;

use wardgate_bench::load::{self, LoadOptions};
use wardgate_bench::peers::{self, Binaries, Kind};
use wardgate_bench::procfs;
use wardgate_bench::scenario::{Case, ReadMode, Shape};
use wardgate_protocol::{ProtocolVersion, QoS};

/// The Wardgate binary beside this test's (`target/debug/deps/cluster-…` → `target/debug`).
fn wardgate_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    let bin = debug.join("wardgate");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p wardgate` first",
        bin.display()
    );
    bin
}

fn binaries() -> Binaries {
    let wardgate = wardgate_bin();
    Binaries {
        mosquitto: "mosquitto".into(),
        rumqttd: "rumqttd".into(),
        baseline: None,
        nats: wardgate_testkit::nats::nats_server().expect("nats-server"),
        wardgate,
    }
}

/// Starts `kind`, checks that publishers and subscribers are on two different processes of it,
/// runs 10 point-to-point pairs at `qos` for half a second, and checks that every process is
/// gone once the broker is dropped.
fn crosses_nodes(kind: Kind, processes: usize, qos: QoS) {
    let broker = peers::start(kind, &binaries(), 0).expect("the cluster starts");
    let target = broker.target.clone();
    assert_eq!(target.pids.len(), processes, "{:?}", target.pids);
    let publishers = target
        .publishers_at
        .expect("publishers have their own node");
    let (pub_pid, sub_pid) = (
        procfs::find_listener(publishers.port()),
        procfs::find_listener(target.v3.port()),
    );
    assert!(pub_pid.is_some() && sub_pid.is_some());
    assert_ne!(pub_pid, sub_pid, "publishers and subscribers share a node");
    assert!(target.pids.contains(&pub_pid.unwrap_or_default()));
    assert_eq!(target.pids.first().copied(), sub_pid, "the main pid");

    let case = Case {
        shape: Shape::P2p { pairs: 10 },
        qos,
        payload: 16,
        version: ProtocolVersion::V311,
        read: ReadMode::Asap,
    };
    let opts = LoadOptions {
        warmup: Duration::from_millis(500),
        duration: Duration::from_millis(500),
        inflight: 10,
        rate: None,
        drain: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        nonce: format!("clt{}", std::process::id()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let out = rt
        .block_on(load::run(&case, &target, &opts))
        .expect("the load run");
    assert!(out.delivered_in_window > 0, "nothing crossed: {out:?}");
    assert_eq!(out.lost, 0, "{out:?}");
    assert_eq!(out.duplicated, 0, "{out:?}");
    assert!(
        out.broker_cpu_s.is_some(),
        "CPU of all processes is counted"
    );

    drop(broker);
    for pid in target.pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still runs after the broker was dropped"
        );
    }
}

#[test]
fn wardgate_cluster_carries_qos1_across_nodes_and_stops_all_six_processes() {
    crosses_nodes(Kind::WardgateCluster, 6, QoS::AtLeastOnce);
}

#[test]
fn wardgate_cluster_carries_qos0_across_nodes() {
    crosses_nodes(Kind::WardgateCluster, 6, QoS::AtMostOnce);
}

#[test]
fn nats_mqtt_carries_qos1_from_server_0_to_server_1() {
    crosses_nodes(Kind::NatsMqtt, 3, QoS::AtLeastOnce);
}
