//! The cluster configuration as a user meets it (issue 17): `wardgate validate` prints the
//! file:field error of a bad `spec.cluster`, and `serve` refuses a bad `--cluster` URL or
//! `--node-id` before reading any configuration. The journeys of a running cluster are in
//! `cluster.rs`.

use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::run;

fn wardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
}

/// `wardgate validate` of a folder holding `broker.yaml` with `yaml`.
fn validate(yaml: &str) -> wardgate_testkit::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("broker.yaml"), yaml).expect("write");
    run(
        wardgate().arg("validate").arg("--config").arg(dir.path()),
        Duration::from_secs(20),
    )
    .expect("runs")
}

#[test]
fn validate_prints_the_file_field_errors_of_spec_cluster() {
    let out = validate(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata:\n  name: default\nspec:\n  cluster:\n    nats:\n      urls: [http://nats:4222]\n    replicas: 2\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out}");
    let text = out.to_string();
    for expected in [
        "broker.yaml:7: Broker/default: spec.cluster is a Wardgate extension: AIO does not accept it under apiVersion mqttbroker.iotoperations.azure.com/v1",
        r#"broker.yaml:8: Broker/default: spec.cluster.nats.urls[0] "http://nats:4222" has scheme "http": expected one of nats, tls, ws, wss"#,
        "broker.yaml:9: Broker/default: spec.cluster.replicas 2 is not 1, 3 or 5",
    ] {
        assert!(text.contains(expected), "{expected}\nin:\n{text}");
    }
}

#[test]
fn validate_accepts_a_cluster_under_wardgate_io() {
    let out = validate(
        "apiVersion: wardgate.io/v1\nkind: Broker\nmetadata:\n  name: default\nspec:\n  cluster:\n    nats:\n      urls: [nats://n1:4222, nats://n2:4222]\n    replicas: 3\n    subjectPrefix: wg\n",
    );
    assert!(out.success(), "{out}");
}

#[test]
fn serve_refuses_a_bad_cluster_url_or_node_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            ["--cluster", "nats://n1:4222,http://n2:4222"],
            r#"invalid value 'http://n2:4222' for '--cluster <URL>...': "http://n2:4222" has scheme "http""#,
        ),
        (
            ["--node-id", "node.1"],
            r#"invalid value 'node.1' for '--node-id <ID>': "node.1" is not a node id"#,
        ),
        (["--node-id", ""], "the node id is empty"),
    ];
    for (args, expected) in cases {
        let out = run(
            wardgate()
                .arg("serve")
                .arg("--data-dir")
                .arg(dir.path())
                .args(args),
            Duration::from_secs(20),
        )
        .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{out}");
        assert!(out.to_string().contains(expected), "{expected}\nin:\n{out}");
    }
}
