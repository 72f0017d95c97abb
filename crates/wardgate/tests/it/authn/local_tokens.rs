//! Service-account tokens on a box without Kubernetes: `wardgate token create` signs them with
//! the data dir's key and the default BrokerAuthentication (ServiceAccountToken, audience
//! `aio-internal`) of `wardgate serve` verifies them. docs/tls.md's first example replayed as
//! written; refusals (audience, expiry, another data dir's key, MQTT 3.1.1); attributes from a
//! ServiceAccount in the config folder used by authorization. Tokens never reach the log.

use std::process::Command;

use wardgate_testkit::process::{free_port, run, wait_for_port};

use super::*;

/// `wardgate token create ARGS` with the data dir `data`: the token.
fn token(data: &Path, args: &[&str]) -> String {
    let data = data.to_string_lossy();
    let out = wardgate(
        &[&["token", "create"], args, &["--data-dir", &data]].concat(),
        Path::new("."),
    );
    let token = out.stdout.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {out}");
    token
}

/// `mosquitto_pub` with K8S-SAT `token` to `port` (MQTT v5, debug output).
fn publish(port: u16, id: &str, token: &str, extra: &[&str]) -> String {
    let port = port.to_string();
    let head = ["-V", "mqttv5", "-d", "-p", &port, "-i", id];
    mosquitto_pub_output(&[&head[..], &enhanced("K8S-SAT", token), extra].concat())
}

/// No log line holds a JWT (every JWT starts with the base64 of `{"`: `eyJ`).
fn assert_no_token_in(log: &str) {
    assert!(
        !log.contains("eyJ"),
        "a token reached the log:\n{}",
        log.lines()
            .filter(|l| l.contains("eyJ"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// docs/tls.md's first example, as written, its port moved to a free one: `wardgate serve` and,
/// from the same folder, mosquitto_pub to the default listener's TLS port with the trust bundle
/// and `$(wardgate token create my-app --audience aio-internal)` (run by `sh`, with this build's
/// `wardgate` first on `PATH`).
#[test]
fn the_first_example_of_docs_tls_md_publishes_to_18883_with_a_token() {
    let section = crate::support::tls_md_quickstart_section();
    let start = section.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let block = section[start..].split("```").next().expect("block end");
    let (serve, publish) = block.split_once('\n').expect("two commands");
    assert_eq!(serve, "wardgate serve", "{block}");
    assert!(
        publish.starts_with(
            "mosquitto_pub -h localhost -p 18883 --cafile wardgate-data/trust-bundle/ca.crt"
        ) && publish.contains("$(wardgate token create my-app --audience aio-internal)"),
        "{block}"
    );

    // The built-in default listener, as SPEC.md §4.1 has it, on a free port.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    std::fs::create_dir(dir.path().join("config")).expect("mkdir");
    std::fs::write(
        dir.path().join("config/listener.yaml"),
        resources::listener(&resources::quickstart_tls_port(port, "Mqtt", ""))
            .replace("    tls:", "    authenticationRef: default\n    tls:"),
    )
    .expect("write");
    // Logs merged into stdout, which `Running` reads.
    let mut broker = Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec \"$0\" {} --config config --admin-addr 127.0.0.1:0 2>&1",
                serve
                    .strip_prefix("wardgate ")
                    .expect("wardgate SUBCOMMAND")
            ))
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .env("NO_COLOR", "1")
            .current_dir(dir.path()),
    )
    .expect("start wardgate");
    wait_for_port(port, WAIT).expect("the TLS port opens");

    let bin = Path::new(env!("CARGO_BIN_EXE_wardgate"))
        .parent()
        .expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg(publish.replace("18883", &port.to_string()))
            .env("PATH", path)
            .current_dir(dir.path()),
        WAIT,
    )
    .expect("sh runs");
    assert!(out.success(), "{publish}: {out}");
    broker
        .wait_for_line("the authenticated client", WAIT, |l| {
            l.contains("authenticated")
                && l.contains("method=ServiceAccountToken")
                && l.contains("username=\"system:serviceaccount:default:my-app\"")
        })
        .expect("the token's service account is the client's username");
    assert!(
        dir.path()
            .join("wardgate-data/pki/token-issuer/key.pem")
            .is_file(),
        "the key is in the data dir"
    );
    assert_no_token_in(&broker.kill().stdout);
}

#[test]
fn wrong_audience_expired_foreign_and_mqtt_3_tokens_are_refused() {
    let mut node = Node::empty();
    node.write_config("listener.yaml", &listener(node.port, "default", None, None));
    node.start();
    let data = node.data_dir();
    let elsewhere = node.root().join("another-data-dir");

    let valid = token(&data, &["sensor", "--audience", "aio-internal"]);
    let out = publish(node.port, "local-ok", &valid, &["-t", "t", "-m", "m"]);
    assert!(out.contains("received CONNACK (0)"), "{out}");

    let short_lived = token(&data, &["sensor", "--duration", "1s"]);
    let cases = [
        ("audience", token(&data, &["sensor", "--audience", "api"])),
        (
            "no key in the local token issuer key",
            token(&elsewhere, &["sensor", "--audience", "aio-internal"]),
        ),
        ("expired", short_lived),
    ];
    std::thread::sleep(Duration::from_millis(2100));
    for (why, token) in &cases {
        let out = publish(node.port, "local-refused", token, &["-t", "t", "-m", "m"]);
        assert!(out.contains("received CONNACK (135)"), "{why}: {out}");
    }
    // MQTT 3.1.1 has no enhanced authentication, so no K8S-SAT: a token as the password is a
    // username/password no method of the port reads (4), no credentials at all is 5.
    let port = node.port.to_string();
    let v3 = |credentials: &[&str]| {
        let head = ["-V", "mqttv311", "-d", "-p", &port, "-i", "local-v3"];
        mosquitto_pub_output(&[&head[..], credentials, &["-t", "t", "-m", "m"]].concat())
    };
    let out = v3(&["-u", "K8S-SAT", "-P", &valid]);
    assert!(out.contains("received CONNACK (4)"), "{out}");
    let out = v3(&[]);
    assert!(out.contains("received CONNACK (5)"), "{out}");

    let log = node.kill().stdout;
    for (why, _) in &cases {
        assert!(
            log.lines()
                .any(|l| l.contains("local-refused") && l.contains(why)),
            "the broker logs why ({why}):\n{log}"
        );
    }
    assert_no_token_in(&log);
}

const SENSOR_ACCOUNT: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: sensor
  namespace: azure-iot-operations
  annotations:
    aio-broker-auth/group: sensors
";

const BY_GROUP: &str = "  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - group: sensors
      brokerResources:
      - method: Connect
      - method: Publish
        topics: [\"sensors/#\"]
      - method: Subscribe
        topics: [\"sensors/#\", \"other/#\"]
";

#[test]
fn service_account_annotations_are_the_attributes_authorization_decides_on() {
    let mut node = Node::empty();
    node.write_config(
        "listener.yaml",
        &listener(node.port, "default", Some("by-group"), None),
    );
    node.write_config("sensor.yaml", SENSOR_ACCOUNT);
    node.write_config(
        "authz.yaml",
        &resources::resource("BrokerAuthorization", "by-group", BY_GROUP),
    );
    node.start();
    let data = node.data_dir();
    let sensor = token(&data, &["sensor", "-n", "azure-iot-operations"]);
    let port = node.port.to_string();

    let mut sub = mosquitto_sub_running(
        &[
            &["-V", "mqttv5", "-d", "-p", &port, "-i", "sensor-sub"][..],
            &enhanced("K8S-SAT", &sensor),
            &["-q", "1", "-t", "sensors/#", "-t", "other/#", "-W", "30"],
        ]
        .concat(),
    );
    sub.wait_for_line("the SUBACK", WAIT, |l| {
        l.contains("Subscribed (mid: 1): 1, 1")
    })
    .expect("the sensor subscribes to both filters");
    let allowed = publish(
        node.port,
        "sensor-pub",
        &sensor,
        &["-q", "1", "-t", "sensors/t", "-m", "allowed"],
    );
    assert!(
        allowed.contains("received PUBACK (Mid: 1, RC:0)"),
        "{allowed}"
    );
    sub.wait_for_line("the allowed message", WAIT, |l| l == "allowed")
        .expect("delivered");
    let denied = publish(
        node.port,
        "sensor-pub",
        &sensor,
        &["-q", "1", "-t", "other/t", "-m", "denied"],
    );
    assert!(
        denied.contains("received PUBACK (Mid: 1, RC:135)"),
        "{denied}"
    );

    // The same account in another namespace is not that ServiceAccount: no attributes.
    let elsewhere = token(&data, &["sensor", "-n", "default"]);
    let out = publish(
        node.port,
        "sensor-elsewhere",
        &elsewhere,
        &["-t", "sensors/t", "-m", "x"],
    );
    assert!(out.contains("received CONNACK (135)"), "{out}");

    drop(sub);
    let log = node.kill().stdout;
    assert!(
        log.lines().any(|l| l.contains("sensor-pub")
            && l.contains("authenticated")
            && l.contains("\"group\": \"sensors\"")),
        "the attributes are logged with the identity:\n{log}"
    );
    assert!(!log.contains("received: denied"), "{log}");
    assert_no_token_in(&log);
}

#[test]
fn token_create_refuses_bad_names_and_durations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_string_lossy();
    for (args, expected) in [
        (vec!["My_App"], "SERVICEACCOUNT"),
        (vec!["app", "-n", "a:b"], "--namespace"),
        (vec!["app", "--duration", "soon"], "is not a duration"),
        (vec!["app", "--duration", "0s"], "at least 1s"),
        (vec!["app", "--audience", ""], "--audience"),
    ] {
        let out = run(
            Command::new(env!("CARGO_BIN_EXE_wardgate"))
                .args(["token", "create"])
                .args(&args)
                .args(["--data-dir", &data]),
            WAIT,
        )
        .expect("wardgate runs");
        assert!(!out.success(), "{args:?}: {out}");
        assert!(out.stderr.contains(expected), "{args:?}: {out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
}
