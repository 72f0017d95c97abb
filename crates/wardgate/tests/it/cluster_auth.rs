//! NATS credentials as a user gives them (docs/cluster.md, "NATS credentials"): a real
//! nats-server that asks for a user and password (or a token), and `wardgate serve` with
//! `spec.cluster.nats.credentialsSecretRef` naming a Secret of the configuration. The right
//! credentials join the cluster and the node serves; wrong, missing or unreadable ones stop
//! `serve` at start, within a bounded time, with an error naming the Secret.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wardgate_testkit::nats::{Authorization, NatsCluster};
use wardgate_testkit::process::{Output, Running, free_port, run, wait_for_port};
use wardgate_testkit::resources::{listener, mqtt_port};

/// How long `serve` may take to give up on refused credentials (the NATS client's connection
/// timeout is 5 s; an authorization error ends the connect at once).
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

/// A configuration folder: a listener on `port`, a `wardgate.io/v1` Broker joining `nats`
/// (one server, `replicas: 1`) with `credentialsSecretRef: nats-auth` when `secret` is given
/// (the Secret's `stringData` lines), and the Secret when `secret` has values.
fn config(dir: &Path, port: u16, nats: &NatsCluster, secret: Option<&[(&str, &str)]>) {
    std::fs::create_dir_all(dir).expect("config dir");
    std::fs::write(dir.join("listener.yaml"), listener(&mqtt_port(port))).expect("write");
    let credentials = if secret.is_some() {
        "\n      credentialsSecretRef: nats-auth"
    } else {
        ""
    };
    let broker = format!(
        "apiVersion: wardgate.io/v1\nkind: Broker\nmetadata:\n  name: default\nspec:\n  cluster:\n    replicas: 1\n    nats:\n      urls: [{}]{credentials}\n",
        nats.url(0)
    );
    std::fs::write(dir.join("broker.yaml"), broker).expect("write");
    if let Some(values) = secret.filter(|v| !v.is_empty()) {
        let data: String = values
            .iter()
            .map(|(k, v)| format!("  {k}: {v:?}\n"))
            .collect();
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: nats-auth\nstringData:\n{data}"
        );
        std::fs::write(dir.join("secret.yaml"), yaml).expect("write");
    }
}

fn serve(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wardgate"));
    command
        .arg("serve")
        .arg("--config")
        .arg(dir.join("config"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{}", free_port().expect("port")))
        .arg("--node-id")
        .arg(format!("n{port}"))
        .env("WARDGATE_LOG", "info");
    command
}

/// `serve` with `secret` against `nats`: must stop at start; its output.
fn refused(nats: &NatsCluster, secret: Option<&[(&str, &str)]>) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    config(&dir.path().join("config"), port, nats, secret);
    let out = run(&mut serve(dir.path(), port), REFUSED_WITHIN).expect("serve ends");
    assert_eq!(out.status.code(), Some(1), "{out}");
    out
}

/// `serve` with `secret` against `nats`: joins and serves MQTT.
fn joins(nats: &NatsCluster, secret: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    config(&dir.path().join("config"), port, nats, Some(secret));
    // The node joins the cluster before it opens any port.
    let mut node = Running::spawn(&mut serve(dir.path(), port)).expect("serve starts");
    if let Err(e) = wait_for_port(port, Duration::from_secs(30)) {
        panic!("the node did not join and serve: {e}\n{}", node.kill());
    }
}

#[test]
fn a_user_and_password_from_the_secret_join_and_wrong_or_missing_ones_are_refused() {
    let nats = NatsCluster::start_authorized(
        1,
        Some(&Authorization::UserPassword {
            user: "wardgate".into(),
            password: "s3cret".into(),
        }),
    )
    .expect("NATS with authorization");
    joins(&nats, &[("username", "wardgate"), ("password", "s3cret")]);

    let wrong = refused(
        &nats,
        Some(&[("username", "wardgate"), ("password", "guess")]),
    );
    let text = wrong.to_string();
    assert!(
        text.contains("cannot join the cluster with the NATS credentials of Secret nats-auth")
            && text.contains("authorization violation"),
        "{text}"
    );
    assert!(
        !text.contains("guess"),
        "the password is never printed: {text}"
    );

    let missing = refused(&nats, None).to_string();
    assert!(
        missing.contains("cannot join the cluster") && missing.contains("authorization violation"),
        "{missing}"
    );

    let absent = refused(&nats, Some(&[])).to_string();
    assert!(
        absent.contains(
            "spec.cluster.nats.credentialsSecretRef: Secret nats-auth is not in the configuration"
        ),
        "{absent}"
    );

    let half = refused(&nats, Some(&[("username", "wardgate")])).to_string();
    assert!(
        half.contains(r#"Secret nats-auth has "username" but no "password""#),
        "{half}"
    );
}

#[test]
fn a_token_from_the_secret_joins() {
    let nats = NatsCluster::start_authorized(1, Some(&Authorization::Token("t0ken-1".into())))
        .expect("NATS with a token");
    joins(&nats, &[("token", "t0ken-1")]);
    let wrong = refused(&nats, Some(&[("token", "t0ken-2")])).to_string();
    assert!(wrong.contains("Secret nats-auth"), "{wrong}");
}
