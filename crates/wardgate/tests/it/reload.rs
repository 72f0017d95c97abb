//! Live reload (SPEC.md §4.5) of a running `wardgate serve`: ports added and removed as the
//! `--config` folder changes, clients of untouched ports staying connected, an invalid change
//! refused while the running configuration stays, and SIGHUP.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_testkit::client::{RawClient, Received};
use wardgate_testkit::process::{Running, free_port, wait_for_port};
use wardgate_testkit::resources;

fn write_listener(dir: &Path, ports: &[u16]) {
    let yaml = resources::listener(
        &ports
            .iter()
            .map(|&p| resources::mqtt_port(p))
            .collect::<String>(),
    );
    // Write then rename, as editors and Kubernetes do, so a poll never reads half a file.
    let tmp = dir.join(".listener.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write config");
    std::fs::rename(&tmp, dir.join("listener.yaml")).expect("rename config");
}

/// Starts the broker with its logs (stderr) merged into stdout, so tests can wait for a log line.
fn start(dir: &Path) -> Running {
    Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" serve --config \"$1\" --data-dir \"$2\" 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(dir)
            .arg(dir.join("..").join("data")),
    )
    .expect("start wardgate")
}

fn closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

async fn wait_closed(port: u16) {
    for _ in 0..100 {
        if closed(port) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("port {port} still open after 10 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn ports_follow_the_config_folder_and_invalid_changes_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).expect("mkdir");
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(&dir, &[a]);
    let mut broker = start(&dir);
    wait_for_port(a, Duration::from_secs(20)).expect("port a opens");

    let (mut stay, _) =
        RawClient::connect(([127, 0, 0, 1], a).into(), ProtocolVersion::V5, "stays").await;
    stay.subscribe("r/#", QoS::AtMostOnce).await;

    // Add port b: a's client is untouched, b serves the same fabric.
    write_listener(&dir, &[a, b]);
    wait_for_port(b, Duration::from_secs(10)).expect("port b opens after the change");
    let (mut on_b, _) =
        RawClient::connect(([127, 0, 0, 1], b).into(), ProtocolVersion::V5, "on-b").await;
    on_b.publish("r/1", b"from-b", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(&stay.publish_received().await.payload[..], b"from-b");

    // An invalid change is refused: both ports keep serving, and the error is logged.
    std::fs::write(dir.join("broken.yaml"), "kind: BrokerListener\nspec: [").expect("write");
    broker
        .wait_for_line("the refusal", Duration::from_secs(10), |l| {
            l.contains("reload refused")
        })
        .expect("the refusal is logged");
    assert!(!closed(a) && !closed(b));

    // Fix it and remove port a: its clients get DISCONNECT 0x8B, b's stay.
    std::fs::remove_file(dir.join("broken.yaml")).expect("rm");
    write_listener(&dir, &[b]);
    match stay.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SERVER_SHUTTING_DOWN)
        }
        other => panic!("expected DISCONNECT 0x8B on the removed port, got {other:?}"),
    }
    wait_closed(a).await;
    on_b.send(&Packet::PingReq).await;
    assert_eq!(
        on_b.packet().await,
        Packet::PingResp,
        "the client of port b is still connected"
    );
    drop(broker.kill());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).expect("mkdir");
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    write_listener(&dir, &[a]);
    let mut broker = start(&dir);
    wait_for_port(a, Duration::from_secs(20)).expect("port a opens");
    write_listener(&dir, &[a, b]);
    let hup = Command::new("kill")
        .args(["-HUP", &broker.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    wait_for_port(b, Duration::from_secs(10)).expect("port b opens");
    assert!(!closed(a));
    drop(broker.kill());
}

/// A Kubernetes ConfigMap/Secret volume: files are symlinks through `..data`, which the kubelet
/// swaps atomically to a new timestamped folder. The change must be picked up.
#[tokio::test(flavor = "multi_thread")]
async fn a_kubernetes_style_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).expect("mkdir");
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    let version = |name: &str, ports: &[u16]| {
        let folder = dir.join(name);
        std::fs::create_dir(&folder).expect("mkdir version");
        write_listener(&folder, ports);
    };
    version("..2026_11_22_01", &[a]);
    symlink("..2026_11_22_01", dir.join("..data")).expect("..data");
    symlink("..data/listener.yaml", dir.join("listener.yaml")).expect("file link");
    let mut broker = start(&dir);
    wait_for_port(a, Duration::from_secs(20)).expect("port a opens");

    version("..2026_11_22_02", &[a, b]);
    symlink("..2026_11_22_02", dir.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("atomic swap");
    wait_for_port(b, Duration::from_secs(10)).expect("port b opens after the swap");
    assert!(!closed(a));
    drop(broker.kill());
}
