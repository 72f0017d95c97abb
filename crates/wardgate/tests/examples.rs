//! The configurations in `examples/` run as their comments say, with real mosquitto clients.

use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::{Running, mosquitto_pub, mosquitto_sub, repo_root, wait_for_port};

/// Subscribes on `sub_port`, publishes on `pub_port` until the subscriber prints the message.
fn crosses(sub_port: u16, pub_port: u16) {
    let topic = format!("testtopic/{pub_port}-to-{sub_port}");
    let mut sub = Running::spawn(
        Command::new(mosquitto_sub().expect("mosquitto_sub (run scripts/test to install it)"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &sub_port.to_string(),
                "-t",
                "testtopic/#",
                "-v",
                "-C",
                "1",
                "-W",
                "20",
            ]),
    )
    .expect("start mosquitto_sub");
    let message = format!("{topic} hello from {pub_port}");
    let mut seen = false;
    for _ in 0..50 {
        let publ = wardgate_testkit::process::run(
            Command::new(mosquitto_pub().expect("mosquitto_pub")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &pub_port.to_string(),
                "-t",
                &topic,
                "-m",
                &format!("hello from {pub_port}"),
            ]),
            Duration::from_secs(10),
        )
        .expect("mosquitto_pub runs");
        assert!(publ.success(), "{publ}");
        if sub
            .wait_for_line("the message", Duration::from_millis(300), |l| l == message)
            .is_ok()
        {
            seen = true;
            break;
        }
    }
    assert!(
        seen,
        "mosquitto_sub on {sub_port} never received what was published on {pub_port}: {:?}",
        sub.seen()
    );
}

#[test]
fn multi_listener_messages_cross_between_nodeport_and_loadbalancer_ports() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut broker = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--config")
            .arg(repo_root().join("examples/multi-listener"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--bind", "127.0.0.1"]),
    )
    .expect("start wardgate");
    for port in [1883, 31883] {
        wait_for_port(port, Duration::from_secs(20)).expect("the example's ports open");
    }
    crosses(31883, 1883);
    crosses(1883, 31883);
    drop(broker.kill());
}
