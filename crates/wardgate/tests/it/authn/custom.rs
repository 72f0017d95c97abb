//! The example custom authentication server over real HTTPS: its decisions, and a burst of
//! connections through it.

use super::*;

/// `examples/custom-auth-server/server.py` on a free loopback port with `server.crt` of
/// [`certificates`], the users of `users.toml` and `extra` options; killed when dropped.
pub(super) struct AuthServer {
    process: Running,
    pub(super) port: u16,
}

impl AuthServer {
    pub(super) fn start(dir: &Path, extra: &[&str]) -> AuthServer {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(repo_root().join("examples/custom-auth-server/server.py"))
            .args(["--users", "users.toml", "--cert", "server.crt", "--key"])
            .args(["server.key", "--port", "0"])
            .args(extra)
            .current_dir(dir);
        let mut process = Running::spawn(&mut cmd).expect("python3 runs the example server");
        let line = process
            .wait_for_line("the port", WAIT, |l| l.starts_with("listening on "))
            .expect("the custom authentication server starts");
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        AuthServer { process, port }
    }

    /// Stops the server and returns its request log (status codes, never credentials).
    pub(super) fn stop(mut self) -> String {
        self.process.kill().stderr
    }
}

/// The example server's users: alice (password `alice-pw`, attributes via=custom), bob (refused
/// with 138, banned), dave (his credential expires 3 s after each authentication).
pub(super) fn custom_users(dir: &Path) {
    let file = dir.join("users.toml");
    passwd(&file, "alice", "alice-pw", &["via=custom"]);
    passwd(&file, "bob", "bob-pw", &[]);
    passwd(&file, "dave", "dave-pw", &[]);
    let users = std::fs::read_to_string(&file).expect("users");
    let users = users
        .replacen("[bob]\n", "[bob]\ndeny_reason = 138\n", 1)
        .replacen("[dave]\n", "[dave]\nexpiry_seconds = 3\n", 1);
    assert!(
        users.contains("deny_reason") && users.contains("expiry_seconds"),
        "{users}"
    );
    std::fs::write(&file, users).expect("users");
}

/// A `Custom` method for `endpoint`, with the CA of [`certificates`] as `caCertConfigMap`, the
/// broker's client certificate from a Secret and a header.
pub(super) fn custom_method(port: u16) -> String {
    format!(
        "  - method: Custom\n    customSettings:\n      endpoint: https://127.0.0.1:{port}\n      caCertConfigMap: custom-auth-ca\n      headers:\n        x-wardgate-test: \"yes\"\n      auth:\n        x509:\n          secretRef: broker-client-cert\n"
    )
}

#[test]
fn the_custom_authentication_server_decides() {
    let (mut node, dir) = tls_node();
    custom_users(&dir);
    // The server answers its first request with 422, requires the broker's client certificate
    // and the configured header.
    let server = AuthServer::start(
        &dir,
        &[
            "--fail-first-422",
            "--client-ca",
            "broker-client-ca.crt",
            "--require-header",
            "x-wardgate-test=yes",
        ],
    );
    node.write_config(
        "custom.yaml",
        &format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: custom\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n{}",
            custom_method(server.port)
        ),
    );
    node.write_config(
        "listener.yaml",
        &listener(node.port, "custom", None, Some("server-cert")),
    );
    node.start();
    let base = |id: &str| tls_v5(&dir, node.port, id);

    // Passes (after the 422, retried with a supported version): CONNACK 0.
    let out = publish(
        &base("alice"),
        &[
            "-u", "alice", "-P", "alice-pw", "-q", "1", "-t", "c/x", "-m", "hi",
        ],
    );
    assert!(
        out.contains("received CONNACK (0)") && accepted(&out),
        "{out}"
    );
    // Enhanced authentication with the server's own method.
    let out = publish(
        &base("alice-enhanced"),
        &[
            &enhanced("WG-USERPASS", "alice:alice-pw")[..],
            &["-t", "c/x", "-m", "hi"],
        ]
        .concat(),
    );
    assert!(out.contains("received CONNACK (0)"), "{out}");
    // 403 with the server's reason: 134 for a wrong password, 138 (banned) for bob; in MQTT
    // 3.1.1 the return codes 4 and 5.
    for (version, wrong, banned) in [("mqttv5", 134, 138), ("mqttv311", 4, 5)] {
        let alice = tls_args(&dir, node.port, version, "alice-wrong");
        let bob = tls_args(&dir, node.port, version, "bob");
        let out = publish(
            &alice,
            &["-u", "alice", "-P", "nope", "-t", "c/x", "-m", "x"],
        );
        assert!(
            out.contains(&format!("received CONNACK ({wrong})")),
            "{out}"
        );
        let out = publish(&bob, &["-u", "bob", "-P", "bob-pw", "-t", "c/x", "-m", "x"]);
        assert!(
            out.contains(&format!("received CONNACK ({banned})")),
            "{out}"
        );
    }
    // The server's `expiry`: at it, DISCONNECT 0x87 (135), then the close.
    let mut args = base("dave");
    args.extend(["-u", "dave", "-P", "dave-pw", "-t", "c/#", "-W", "30"].map(String::from));
    let mut dave = mosquitto_sub_running(&args.iter().map(String::as_str).collect::<Vec<_>>());
    dave.wait_for_line("the SUBACK", WAIT, |l| l.contains("Subscribed (mid: 1)"))
        .expect("dave connects");
    let started = std::time::Instant::now();
    let disconnect = dave
        .wait_for_line("the DISCONNECT", WAIT, |l| l.contains("DISCONNECT ("))
        .expect("DISCONNECT at expiry");
    assert_eq!(disconnect, "Received DISCONNECT (135)");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let log = server.stop();
    let statuses: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("HTTP/1.1\" ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["422", "200", "200", "403", "403", "403", "403", "200"],
        "the first request got 422 and was retried:\n{log}"
    );
}

/// A burst of clients connecting at once (a broker restart, a fleet coming back online): each
/// CONNECT is one HTTPS request to the custom server, and none may wait past the 5 s timeout
/// (the example server once kept Python's default listen backlog of 5).
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_connections_through_the_custom_server_all_pass() {
    let (mut node, dir) = tls_node();
    custom_users(&dir);
    let server = AuthServer::start(&dir, &["--client-ca", "broker-client-ca.crt"]);
    node.write_config(
        "custom.yaml",
        &format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: custom\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n{}",
            custom_method(server.port)
        ),
    );
    node.write_config("listener.yaml", &listener(node.port, "custom", None, None));
    node.start();
    let addr = node.addr();
    let started = std::time::Instant::now();
    let clients = (0..100).map(|i| {
        tokio::spawn(async move {
            let mut c = connect_packet(ProtocolVersion::V5, &format!("burst-{i}"), true);
            c.username = Some("alice".into());
            c.password = Some(Bytes::from_static(b"alice-pw"));
            RawClient::connect_with(addr, c).await
        })
    });
    let mut refused = Vec::new();
    let mut connected = Vec::new();
    for (i, client) in clients.collect::<Vec<_>>().into_iter().enumerate() {
        let (client, ack) = client.await.expect("the client task");
        if ack.reason != ReasonCode::SUCCESS {
            refused.push((i, ack.reason));
        }
        connected.push(client);
    }
    assert!(
        refused.is_empty(),
        "refused after {:?}: {refused:?}",
        started.elapsed()
    );
    drop(connected);
    drop(server.stop());
}
