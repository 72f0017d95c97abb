//! Diagnostics of a running `wardgate serve` (SPEC.md §11, issue 9), driven by real clients:
//!
//! - a scripted workload of mosquitto_pub/mosquitto_sub (logins good and bad, a denied publish,
//!   metric categories, a retained message, a will, a dropped QoS 0 copy, a refused reload),
//!   then `/metrics` read through Python prometheus_client's parsers and its values asserted;
//! - JSON logs chosen by the Broker resource, with one span per connection (peer, port, client
//!   ID) and connection open/close at info;
//! - `/api/v1/explain` answering what `wardgate explain` prints;
//! - `/readyz` and `wardgate status` while a port waits for its Secret, and after; the
//!   certificates the TLS ports serve (one of them expired) in the API and the metrics, checked
//!   against openssl.
//!
//! The passwords here are in tests/secrets.txt: scripts/check-test-logs fails if a broker log
//! of the suite holds one.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wardgate_server::admin::client::AdminClient;
use wardgate_server::admin::dto;
use wardgate_testkit::pki::{LOCALHOST, TestCa};
use wardgate_testkit::process::{
    Output, Running, free_port, mosquitto_pub, mosquitto_sub, python_command, run, serve_command,
    wait_for_port,
};

const START: Duration = Duration::from_secs(30);
const GOOD: &str = "diag-good-password-4711";
const WRONG: &str = "diag-wrong-password-0815";
const USER: &str = "diag-user";
const WILL: &str = "diag-sub went away";

fn wardgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
}

fn must(cmd: &mut Command) -> Output {
    let out = run(cmd, Duration::from_secs(60)).expect("runs");
    assert!(out.success(), "{out}");
    out
}

/// The configuration: users by password (role=writer), a policy that lets writers connect
/// and use `plant/#` only, listener `default` (ClusterIp) with one MQTT port using both, and a
/// Broker whose logs are JSON.
fn write_config(dir: &Path, port: u16) {
    let passwords = dir.parent().expect("parent").join("passwords.toml");
    must(
        Command::new("sh")
            .arg("-c")
            .arg("printf '%s\\n' \"$1\" | \"$0\" passwd \"$2\" --password-stdin --iterations 1000 --attr role=writer --file \"$3\"")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(GOOD)
            .arg(USER)
            .arg(&passwords),
    );
    let toml = std::fs::read_to_string(&passwords).expect("passwords.toml");
    let indented: String = toml.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: diag-passwords
stringData:
  passwords.toml: |
{indented}---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: users
  namespace: azure-iot-operations
spec:
  authenticationMethods:
  - method: UsernamePassword
    usernamePasswordSettings:
      secretRef: diag-passwords
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: writers
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - role: writer
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["plant/#"]
      - method: Subscribe
        topics: ["plant/#"]
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: default
  namespace: azure-iot-operations
spec:
  brokerRef: default
  serviceName: aio-broker
  serviceType: ClusterIp
  ports:
  - port: {port}
    protocol: Mqtt
    authenticationRef: users
    authorizationRef: writers
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: default
  namespace: azure-iot-operations
spec:
  diagnostics:
    logs:
      level: info
      format: Json
"#
    );
    std::fs::write(dir.join("broker.yaml"), yaml).expect("write config");
}

fn serve(config: &Path, data: &Path, admin: u16) -> Running {
    let exe = Path::new(env!("CARGO_BIN_EXE_wardgate"));
    Running::spawn(&mut serve_command(exe, config, data, Some(admin)))
        .expect("start wardgate serve")
}

/// mosquitto_pub as `USER` with `password`, MQTT 5, in metric category `category`.
fn publish(port: u16, id: &str, password: &str, category: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(mosquitto_pub().expect("mosquitto_pub"));
    cmd.args([
        "-h",
        "127.0.0.1",
        "-V",
        "5",
        "-i",
        id,
        "-u",
        USER,
        "-P",
        password,
    ])
    .args(["-p", &port.to_string()])
    .args(["-D", "connect", "user-property", "metriccategory", category])
    .args(args);
    run(&mut cmd, Duration::from_secs(30)).expect("mosquitto_pub runs")
}

/// Polls `f` every 50 ms until it returns `Some`, for at most 20 s.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every sample of the exposition, `name{k="v",...}` (labels sorted) to value, as Python
/// prometheus_client reads it: its OpenMetrics parser (strict: types, `_total`, `# EOF`) and its
/// Prometheus text parser must both accept the text, and agree.
fn parse_metrics(text: &str, dir: &Path) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus

def samples(families):
    out = {}
    for family in families:
        for s in family.samples:
            labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
            out[s.name + ("{%s}" % labels if labels else "")] = s.value
    return out

text = open(sys.argv[1], encoding="utf-8").read()
strict = samples(openmetrics(text))
classic = samples(prometheus(text))
if strict != classic:
    sys.exit("the parsers disagree: %r" % sorted(set(strict.items()) ^ set(classic.items())))
print(json.dumps(strict))
"#;
    let file = dir.join("metrics.txt");
    std::fs::write(&file, text).expect("write metrics");
    let mut cmd = python_command().expect("the venv's python (scripts/test installs it)");
    let out = run(
        cmd.arg("-c").arg(SCRIPT).arg(&file),
        Duration::from_secs(60),
    )
    .expect("python");
    assert!(
        out.success(),
        "prometheus_client refused the exposition: {out}\n{text}"
    );
    serde_json::from_str(out.stdout.trim()).expect("JSON from the parser")
}

/// A sample's value; panics with the whole set when it is missing.
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    match samples.get(series) {
        Some(v) => *v,
        None => panic!("no sample {series} in {samples:#?}"),
    }
}

/// The JSON log lines (stderr) as values.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The first event whose message is `message` and whose connection span has `client_id`.
fn event<'a>(
    lines: &'a [serde_json::Value],
    message: &str,
    client_id: &str,
) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["fields"]["message"] == message && l["span"]["client_id"] == client_id)
        .unwrap_or_else(|| panic!("no \"{message}\" for {client_id} in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_of_real_clients_shows_in_metrics_logs_and_explain() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = root.path().join("config");
    std::fs::create_dir(&config).expect("mkdir");
    let (port, admin) = (free_port().expect("port"), free_port().expect("port"));
    write_config(&config, port);
    let mut broker = serve(&config, &root.path().join("data"), admin);
    wait_for_port(port, START).expect("MQTT port");
    wait_for_port(admin, START).expect("admin port");
    let api = AdminClient::new(([127, 0, 0, 1], admin).into());
    // The `$SYS` topics are retained from the first tick on: count them once they exist.
    let retained_before = eventually("the first $SYS update", || async {
        let (_, r) = api
            .get_json::<dto::Retained>("/api/v1/retained")
            .await
            .ok()?;
        (r.count > 0).then_some(r)
    })
    .await;

    // A persistent session subscribed at QoS 0, then gone: QoS 0 copies for it are dropped.
    let mut away = Command::new(mosquitto_sub().expect("mosquitto_sub"));
    away.args([
        "-h",
        "127.0.0.1",
        "-V",
        "5",
        "-c",
        "-x",
        "600",
        "-i",
        "diag-away",
    ])
    .args(["-u", USER, "-P", GOOD, "-q", "0", "-t", "plant/#", "-E"])
    .args(["-p", &port.to_string()]);
    let out = run(&mut away, Duration::from_secs(30)).expect("mosquitto_sub -E");
    assert!(out.success(), "{out}");

    // A subscriber in category "dashboard", with a will, that stays connected.
    let mut sub = Command::new("stdbuf");
    sub.arg("-oL")
        .arg(mosquitto_sub().expect("mosquitto_sub"))
        .args([
            "-h",
            "127.0.0.1",
            "-V",
            "5",
            "-i",
            "diag-sub",
            "-u",
            USER,
            "-P",
            GOOD,
        ])
        .args(["-p", &port.to_string(), "-q", "1", "-t", "plant/#", "-v"])
        .args([
            "-D",
            "connect",
            "user-property",
            "metriccategory",
            "dashboard",
        ])
        .args(["--will-topic", "plant/offline", "--will-payload", WILL]);
    let mut sub = Running::spawn(&mut sub).expect("mosquitto_sub");
    eventually("diag-sub to subscribe", || async {
        let (code, c) = api
            .get_json::<serde_json::Value>("/api/v1/clients/diag-sub")
            .await
            .ok()?;
        (code == 200 && c["subscriptions"].as_array()?.len() == 1).then_some(())
    })
    .await;

    // Category "plant": three QoS 1 messages, a retained one, one at QoS 0.
    let big = "r".repeat(1000);
    for (id, args) in [
        (
            "diag-pub",
            vec![
                "-t",
                "plant/line1",
                "-m",
                "hello",
                "-q",
                "1",
                "--repeat",
                "3",
            ],
        ),
        (
            "diag-retain",
            vec!["-t", "plant/state", "-m", &big, "-q", "1", "-r"],
        ),
        ("diag-tick", vec!["-t", "plant/tick", "-m", "t"]),
    ] {
        let out = publish(port, id, GOOD, "plant", &args);
        assert!(out.success(), "{out}");
    }
    // A wrong password, and a topic the policy does not grant (v5: PUBACK 0x87).
    let refused = publish(
        port,
        "diag-intruder",
        WRONG,
        "plant",
        &["-t", "plant/x", "-m", "x"],
    );
    assert!(
        !refused.success(),
        "a wrong password must be refused: {refused}"
    );
    let denied = publish(
        port,
        "diag-denied",
        GOOD,
        "plant",
        &["-t", "secret/x", "-m", "no", "-q", "1"],
    );
    assert!(
        format!("{denied}").contains("Not authorized"),
        "mosquitto_pub reports the denial: {denied}"
    );
    for i in 0..5 {
        sub.wait_for_line("a delivery", Duration::from_secs(20), |l| {
            l.starts_with("plant/")
        })
        .unwrap_or_else(|e| panic!("delivery {i}: {e}"));
    }

    // A configuration that does not load is refused and counted; putting it right clears it.
    std::fs::write(config.join("zz-broken.yaml"), "kind: [unclosed\n").expect("write");
    let text = eventually("the refused reload", || async {
        let text = api.get("/metrics").await.ok()?.text();
        text.contains("wardgate_config_reload_failing 1\n")
            .then_some(text)
    })
    .await;
    let m = parse_metrics(&text, root.path());
    assert_eq!(value(&m, "wardgate_config_reload_failures_total"), 1.0);
    assert_eq!(value(&m, "wardgate_config_reload_failing"), 1.0);
    assert_eq!(value(&m, "wardgate_config_reloads_total"), 0.0);

    // The counters' values, as prometheus_client reads them.
    let plant = |family: &str| {
        value(
            &m,
            &format!("wardgate_category_{family}{{category=\"plant\"}}"),
        )
    };
    let dashboard = |family: &str| {
        value(
            &m,
            &format!("wardgate_category_{family}{{category=\"dashboard\"}}"),
        )
    };
    assert_eq!(plant("publishes_received_total"), 5.0);
    assert_eq!(plant("publishes_sent_total"), 0.0);
    assert!(plant("bytes_received_total") >= 1000.0);
    assert_eq!(dashboard("publishes_received_total"), 0.0);
    assert_eq!(dashboard("publishes_sent_total"), 5.0);
    assert!(dashboard("bytes_sent_total") >= 1000.0);
    assert_eq!(dashboard("connected_sessions"), 1.0);
    assert_eq!(plant("connected_sessions"), 0.0);
    // diag-away, diag-sub, diag-pub, diag-retain, diag-tick, diag-denied.
    assert_eq!(value(&m, "wardgate_authentication_successes_total"), 6.0);
    assert_eq!(value(&m, "wardgate_authentication_failures_total"), 1.0);
    assert_eq!(value(&m, "wardgate_authorization_deny_total"), 1.0);
    assert!(value(&m, "wardgate_authorization_allow_total") >= 6.0);
    // diag-away subscribed at QoS 0: each of the five messages is a QoS 0 copy for an offline
    // session.
    assert_eq!(
        value(&m, "wardgate_drops_total{reason=\"offline_qos0\"}"),
        5.0
    );
    assert_eq!(value(&m, "wardgate_store_will_messages"), 1.0);
    assert_eq!(value(&m, "wardgate_store_will_bytes"), WILL.len() as f64);
    assert_eq!(
        value(&m, "wardgate_store_retained_messages"),
        (retained_before.count + 1) as f64
    );
    assert!(value(&m, "wardgate_store_retained_bytes") >= 1000.0);
    assert_eq!(
        value(&m, "wardgate_connected_sessions{mqtt_version=\"5.0\"}"),
        1.0
    );
    assert_eq!(value(&m, "wardgate_offline_sessions"), 1.0);

    std::fs::remove_file(config.join("zz-broken.yaml")).expect("remove");
    eventually("the refusal to clear", || async {
        let text = api.get("/metrics").await.ok()?.text();
        text.contains("wardgate_config_reload_failing 0\n")
            .then_some(())
    })
    .await;

    // explain in the admin API says what the CLI says, against the running configuration.
    for (query, args, allowed) in [
        (
            format!("username={USER}&attr=role%3Dwriter&port={port}&publish=plant%2Fx"),
            vec!["--publish", "plant/x"],
            true,
        ),
        (
            format!("username={USER}&attr=role%3Dwriter&port={port}&subscribe=secret%2F%23"),
            vec!["--subscribe", "secret/#"],
            false,
        ),
    ] {
        let (code, answer) = api
            .get_json::<dto::Explanation>(&format!("/api/v1/explain?{query}"))
            .await
            .expect("explain");
        assert_eq!(code, 200, "{answer:?}");
        assert_eq!(answer.allowed, allowed, "{answer:?}");
        let cli = must(
            wardgate()
                .arg("explain")
                .arg("--config")
                .arg(&config)
                .args(["--username", USER, "--attr", "role=writer"])
                .args(["--port", &port.to_string()])
                .args(&args),
        );
        assert_eq!(answer.text, cli.stdout);
    }
    let (code, error) = api
        .get_json::<dto::Error>("/api/v1/explain?publish=a&subscribe=b")
        .await
        .expect("explain");
    assert_eq!(
        (code, error.error.as_str()),
        (400, "name only one action: connect, publish or subscribe")
    );

    drop(sub); // kills mosquitto_sub: a lost connection
    eventually("diag-sub to go", || async {
        let (code, _) = api
            .get_json::<dto::Error>("/api/v1/clients/diag-sub")
            .await
            .ok()?;
        (code == 404).then_some(())
    })
    .await;
    let log = broker.kill();

    // JSON logs (the Broker's diagnostics.logs.format): one span per connection with peer,
    // port and client ID; open and close at info, with the reason.
    let lines = json_lines(&log.stderr);
    let connected = event(&lines, "client connected", "diag-sub");
    assert_eq!(connected["level"], "INFO");
    assert_eq!(connected["span"]["name"], "conn");
    assert_eq!(connected["span"]["port"], port);
    let peer = connected["span"]["peer"].as_str().expect("peer");
    assert!(peer.starts_with("127.0.0.1:"), "{connected}");
    let lost = event(&lines, "connection lost", "diag-sub");
    assert_eq!(lost["level"], "INFO");
    assert_eq!(lost["span"]["peer"], peer);
    let away = event(&lines, "client disconnected", "diag-away");
    assert!(away["fields"]["how"].is_string(), "{away}");
    let failed = event(&lines, "authentication failed", "diag-intruder");
    assert_eq!(failed["level"], "INFO");
    assert_eq!(failed["fields"]["username"], USER);
    let denial = lines
        .iter()
        .find(|l| l["span"]["client_id"] == "diag-denied" && l["fields"]["action"] == "publish")
        .unwrap_or_else(|| panic!("no publish denial logged in {lines:#?}"));
    assert_eq!(denial["level"], "INFO");
    assert!(!log.stderr.contains(GOOD) && !log.stderr.contains(WRONG));
}

/// `wardgate cert` makes a CA and a server certificate for localhost; `wardgate create secret
/// tls` writes them as Secret `name` into `config`.
fn make_secret(name: &str, dir: &Path, config: &Path) {
    let p = |f: &str| dir.join(f);
    must(
        wardgate()
            .args(["cert", "ca", "--out-cert"])
            .arg(p("ca.crt"))
            .arg("--out-key")
            .arg(p("ca.key")),
    );
    must(
        wardgate()
            .args([
                "cert",
                "server",
                "--san",
                "localhost",
                "--san",
                "127.0.0.1",
                "--ca-cert",
            ])
            .arg(p("ca.crt"))
            .arg("--ca-key")
            .arg(p("ca.key"))
            .arg("--out-cert")
            .arg(p("server.crt"))
            .arg("--out-key")
            .arg(p("server.key")),
    );
    create_secret(name, &p("server.crt"), &p("server.key"), config);
}

fn create_secret(name: &str, cert: &Path, key: &Path, config: &Path) {
    must(
        wardgate()
            .args(["create", "secret", "tls", name, "--cert"])
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("-o")
            .arg(config),
    );
}

fn status(admin: u16) -> Output {
    run(
        wardgate().args(["status", "--admin-addr", &format!("127.0.0.1:{admin}")]),
        Duration::from_secs(20),
    )
    .expect("wardgate status")
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_a_secret_and_the_served_certificates_are_reported() {
    let root = tempfile::tempdir().expect("tempdir");
    let (config, pki) = (root.path().join("config"), root.path().join("pki"));
    std::fs::create_dir(&config).expect("mkdir");
    std::fs::create_dir(&pki).expect("mkdir");
    let [plain, late, old, admin] = [(); 4].map(|_| free_port().expect("port"));
    make_secret("late-cert", &pki, &pki); // written to pki/ for now: the port waits
    TestCa::new("Test Root CA")
        .issue_expired_server(&LOCALHOST)
        .write(&pki, "old", &[]);
    create_secret(
        "old-cert",
        &pki.join("old.crt"),
        &pki.join("old.key"),
        &config,
    );
    std::fs::write(
        config.join("listener.yaml"),
        format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: {plain}\n    protocol: Mqtt\n  - port: {late}\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: late-cert\n  - port: {old}\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: old-cert\n"
        ),
    )
    .expect("write listener");
    // The Broker asks for JSON logs; `--log-format text` wins (asserted on the logs below).
    std::fs::write(
        config.join("broker.yaml"),
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  diagnostics:\n    logs:\n      format: Json\n",
    )
    .expect("write broker");
    let exe = Path::new(env!("CARGO_BIN_EXE_wardgate"));
    let mut cmd = serve_command(exe, &config, &root.path().join("data"), Some(admin));
    let mut broker =
        Running::spawn(cmd.args(["--log-format", "text"])).expect("start wardgate serve");
    wait_for_port(admin, START).expect("admin port");
    wait_for_port(old, START).expect("the expired certificate is served anyway");
    let api = AdminClient::new(([127, 0, 0, 1], admin).into());

    // Waiting for the Secret: not ready, and why; `wardgate status` says so and exits 1.
    let (code, ready) = api
        .get_json::<dto::Readiness>("/readyz")
        .await
        .expect("readyz");
    assert_eq!(code, 503, "{ready:?}");
    assert!(
        ready
            .reasons
            .iter()
            .any(|r| r.contains(&format!(":{late} is AwaitingSecret"))),
        "{ready:?}"
    );
    let out = tokio::task::spawn_blocking(move || status(admin))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1), "{out}");
    assert!(
        out.stdout.contains("NOT READY") && out.stdout.contains("AwaitingSecret"),
        "{out}"
    );

    // The Secret appears: the port opens and the broker is ready again, by itself.
    for f in ["server.crt", "server.key", "ca.crt", "ca.key"] {
        assert!(pki.join(f).is_file());
    }
    let secret = std::fs::read_dir(&pki)
        .expect("pki")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains("late-cert"))
        .expect("the late-cert Secret YAML");
    std::fs::rename(secret.path(), config.join(secret.file_name())).expect("move the Secret in");
    eventually("/readyz to turn ready", || async {
        let (code, _) = api.get_json::<dto::Readiness>("/readyz").await.ok()?;
        (code == 200).then_some(())
    })
    .await;
    wait_for_port(late, START).expect("the port opened");

    // The certificates: what each port serves, and the quickstart CA of the trust bundle.
    let (_, certs) = api
        .get_json::<dto::Certificates>("/api/v1/certificates")
        .await
        .expect("certificates");
    let find = |port: u16| {
        certs
            .certificates
            .iter()
            .find(|c| c.port == Some(port) && !c.used_by.ends_with("client CA"))
            .unwrap_or_else(|| panic!("no certificate for port {port} in {certs:#?}"))
    };
    let served = find(late);
    assert_eq!(served.used_by, format!("BrokerListener/default:{late}"));
    assert_eq!(served.source, "Secret/late-cert");
    assert_eq!(served.sans, ["DNS:localhost", "IP:127.0.0.1"]);
    assert!(!served.expired);
    // openssl reads the same certificate file the same way.
    let x509 = |field: &str, file: &str| {
        let out = must(
            Command::new("openssl")
                .args(["x509", "-noout", field, "-in", file])
                .current_dir(&pki),
        );
        out.stdout
            .trim()
            .split_once('=')
            .map(|(_, v)| v.trim().to_string())
            .expect("field=value")
    };
    assert_eq!(
        served.serial.replace(':', ""),
        x509("-serial", "server.crt")
    );
    assert!(x509("-issuer", "server.crt").contains("Wardgate Root CA"));
    assert!(
        served.issuer.contains("CN = Wardgate Root CA"),
        "{served:?}"
    );
    let expired = find(old);
    assert_eq!(expired.subject, "CN = localhost");
    assert_eq!(expired.not_after, "2024-02-01T00:00:00Z");
    assert_eq!(x509("-enddate", "old.crt"), "Feb  1 00:00:00 2024 GMT");
    assert!(expired.expired);
    // Both ports serve manual leaves without their root: no certificate here comes from a CA
    // the broker knows, so the trust bundle is empty; the quickstart CA, which signs nothing
    // here, is not in it.
    assert!(
        !certs
            .certificates
            .iter()
            .any(|c| c.used_by == "trust bundle"),
        "{certs:#?}"
    );

    // The same in the metrics, through prometheus_client.
    let text = api.get("/metrics").await.expect("metrics").text();
    let m = parse_metrics(&text, root.path());
    let series = |name: &str, c: &dto::Certificate| {
        format!(
            "{name}{{port=\"{}\",serial=\"{}\",source=\"{}\",subject=\"{}\",used_by=\"{}\"}}",
            c.port.map(|p| p.to_string()).unwrap_or_default(),
            c.serial,
            c.source,
            c.subject,
            c.used_by
        )
    };
    assert_eq!(
        value(&m, &series("wardgate_certificate_expired", expired)),
        1.0
    );
    assert_eq!(
        value(&m, &series("wardgate_certificate_expired", served)),
        0.0
    );
    assert_eq!(
        value(
            &m,
            &series("wardgate_certificate_expiry_timestamp_seconds", expired)
        ),
        1_706_745_600.0
    );

    let out = tokio::task::spawn_blocking(move || status(admin))
        .await
        .expect("join");
    assert!(out.success(), "{out}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("BrokerListener/default:{old}")))
        .unwrap_or_else(|| panic!("no row for the expired certificate: {out}"));
    assert!(
        row.contains("CN = localhost") && row.contains("EXPIRED"),
        "{row}"
    );

    // Text logs (`--log-format text` over the Broker's Json): the connection span names peer,
    // port and client ID; open and close are at info.
    let mut plain_pub = Command::new(mosquitto_pub().expect("mosquitto_pub"));
    plain_pub.args([
        "-h",
        "127.0.0.1",
        "-p",
        &plain.to_string(),
        "-i",
        "diag-text",
        "-t",
        "t",
        "-m",
        "x",
    ]);
    must(&mut plain_pub);
    eventually("diag-text to go", || async {
        let (code, _) = api
            .get_json::<dto::Error>("/api/v1/clients/diag-text")
            .await
            .ok()?;
        (code == 404).then_some(())
    })
    .await;
    let log = broker.kill();
    let span = format!(" port={plain} client_id=\"diag-text\"}}: ");
    for event in ["client connected", "client disconnected"] {
        let line = log
            .stderr
            .lines()
            .find(|l| l.contains(&span) && l.contains(event))
            .unwrap_or_else(|| panic!("no \"{event}\" line in the conn span: {log}"));
        assert!(line.contains(" INFO conn{peer=127.0.0.1:"), "{line}");
    }
}
