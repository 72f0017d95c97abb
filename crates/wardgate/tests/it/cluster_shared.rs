//! A shared subscription across `wardgate serve` nodes with a real client (docs/cluster.md,
//! "Shared subscriptions"): Paho members of one group on two nodes; the one that never
//! acknowledges leaves, and the other receives what it held, each message once.

use std::time::Duration;

use wardgate_testkit::nats::NatsCluster;
use wardgate_testkit::process::{python_command, repo_root, run};

use crate::cluster::start_node;

#[test]
fn a_paho_member_leaving_with_unacknowledged_messages_hands_them_to_the_member_on_another_node() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = start_node(&nats, 0, "node-a");
    let b = start_node(&nats, 1, "node-b");
    let mut cmd = python_command().expect("python with paho");
    cmd.arg(repo_root().join("tests/clients/cluster_shared_paho.py"))
        .arg(a.port.to_string())
        .arg(b.port.to_string())
        .arg(b.port.to_string());
    let out = run(&mut cmd, Duration::from_secs(120)).expect("runs");
    assert!(out.success(), "cluster_shared_paho.py: {out}");
    let text = out.to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("handed=") && l != "handed=0"),
        "A held messages and B got them:\n{text}"
    );
}
