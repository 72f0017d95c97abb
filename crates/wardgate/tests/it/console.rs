//! The web console against a real `wardgate serve`: a config with a password-protected port under
//! a BrokerAuthorization, a TLS port serving a Secret's certificate, and a TLS port whose Secret
//! does not exist yet; the admin token from a file (`--admin-token-file`); a mosquitto client.
//!
//! - [`the_console_in_a_browser_shows_what_the_broker_has`]: Chromium (playwright-core,
//!   `tests/clients/console_journey.js`) visits every page, disconnects the client, asks the
//!   explain form, and saves a screenshot of each page (`$WARDGATE_CONSOLE_SHOTS`, default
//!   `target/tmp/console-shots`; `docs/console/*.png` are copies).
//! - [`the_console_requires_the_token_and_never_shows_secrets`]: over plain HTTP, every page and
//!   endpoint with and without the token, and no key, password hash or token in any of them;
//!   `wardgate status --admin-token-file`.
//! - [`a_bad_admin_token_file_stops_the_start`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wardgate_server::admin::client::AdminClient;
use wardgate_server::admin::dto;
use wardgate_testkit::pki;
use wardgate_testkit::process::{self, Running, free_port, run, wait_for_port};
use wardgate_testkit::resources;

use crate::real_clients::Journey;
use crate::support::{mosquitto_sub_running, passwd, passwords_secret, tls::create_secret};

const TOKEN: &str = "console-e2e-token-5f2c9a61d04b";
const USER: &str = "alice";
const PASSWORD: &str = "alice-password-7731";
const START: Duration = Duration::from_secs(20);

/// A running broker configured for the console tests.
struct Console {
    root: tempfile::TempDir,
    broker: Running,
    /// The password-protected plain port (authorization `writers`).
    plain: u16,
    /// The TLS port whose Secret does not exist.
    awaiting: u16,
    api: AdminClient,
}

impl Console {
    fn config(&self) -> PathBuf {
        self.root.path().join("config")
    }

    fn bearer(&self) -> [(&'static str, String); 1] {
        [("Authorization", format!("Bearer {TOKEN}"))]
    }

    async fn get(&self, path: &str, token: bool) -> (u16, String) {
        let headers: Vec<(&str, String)> = if token {
            self.bearer().to_vec()
        } else {
            Vec::new()
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = self
            .api
            .request("GET", path, &headers, b"")
            .await
            .expect(path);
        (r.status, r.text())
    }

    /// Waits until `client_id` is listed by the API.
    async fn wait_for_client(&self, client_id: &str) {
        let deadline = Instant::now() + START;
        loop {
            let (_, body) = self.get("/api/v1/clients", true).await;
            let clients: dto::Clients = serde_json::from_str(&body).expect("clients JSON");
            if clients.clients.iter().any(|c| c.client_id == client_id) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{client_id} never connected: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn authorization_yaml() -> String {
    resources::resource(
        "BrokerAuthorization",
        "writers",
        "  authorizationPolicies:\n    rules:\n    - principals:\n        attributes:\n        - role: writer\n      brokerResources:\n      - method: Connect\n      - method: Publish\n        topics: [\"plant/#\"]\n      - method: Subscribe\n        topics: [\"plant/#\"]\n",
    )
}

/// Writes the configuration and the token file, starts `wardgate serve --admin-token-file`.
fn start() -> Console {
    let root = tempfile::Builder::new()
        .prefix("wardgate-console-")
        .tempdir()
        .expect("tempdir");
    let (config, certs) = (root.path().join("config"), root.path().join("certs"));
    std::fs::create_dir_all(&config).expect("mkdir config");
    std::fs::create_dir_all(&certs).expect("mkdir certs");
    pki::write_ca_and_server(&certs);
    create_secret("server-cert", &certs, "server", &config);
    let passwords = certs.join("passwords.toml");
    passwd(&passwords, USER, PASSWORD, &["role=writer"]);
    std::fs::write(
        config.join("security.yaml"),
        format!(
            "{}---\n{}---\n{}",
            passwords_secret("passwords", &passwords),
            resources::authentication("users", &resources::password_method("passwords")),
            authorization_yaml()
        ),
    )
    .expect("write security");
    let [plain, tls, awaiting, admin] = [(); 4].map(|_| free_port().expect("port"));
    std::fs::write(
        config.join("listener.yaml"),
        resources::listener(
            &(resources::authenticated_port(plain, "users", Some("writers"))
                + &resources::manual_tls_port(tls, "server-cert")
                + &resources::manual_tls_port(awaiting, "not-created-yet")),
        ),
    )
    .expect("write listener");
    let token_file = root.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    // Logs merged into stdout: the test compares the console's lines with the log's.
    let broker = Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .arg("--admin-token-file")
            .arg(&token_file)
            .env_remove("WARDGATE_LOG")
            .env("NO_COLOR", "1"),
    )
    .expect("start wardgate serve");
    wait_for_port(plain, START).expect("MQTT port");
    wait_for_port(admin, START).expect("admin port");
    Console {
        root,
        broker,
        plain,
        awaiting,
        api: AdminClient::new(([127, 0, 0, 1], admin).into()),
    }
}

/// Where the journey saves its screenshots.
fn shots_dir() -> PathBuf {
    std::env::var_os("WARDGATE_CONSOLE_SHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-shots"))
}

/// mosquitto_pub/sub arguments: MQTT 5 to `port` as [`USER`], client ID `id`.
fn connection_args<'a>(port: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-V",
        "5",
        "-i",
        id,
        "-u",
        USER,
        "-P",
        PASSWORD,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_browser_shows_what_the_broker_has() {
    let mut console = start();
    let port = console.plain.to_string();
    let mut sub_args = connection_args(&port, "console-sub");
    sub_args.extend(["-t", "plant/#", "-d"]);
    let sub = mosquitto_sub_running(&sub_args);
    // Traffic for the charts: 10 messages a second for at most 30 s (ended with the test).
    let mut pub_args = connection_args(&port, "console-pub");
    pub_args.extend(["-t", "plant/line1/temp", "-m", "21.5"]);
    pub_args.extend(["--repeat", "300", "--repeat-delay", "0.1"]);
    let _publisher = Running::spawn(
        Command::new(process::mosquitto_pub().expect("mosquitto_pub")).args(&pub_args),
    )
    .expect("start mosquitto_pub");
    console.wait_for_client("console-sub").await;
    console.wait_for_client("console-pub").await;
    let shots = shots_dir();
    std::fs::create_dir_all(&shots).expect("mkdir shots");

    let mut node = process::node_command().expect("node and tests/clients/node_modules");
    node.arg(process::clients_dir().join("console_journey.js"))
        .args(["--url", &format!("http://{}", console.api.addr())])
        .args(["--token", TOKEN, "--client-id", "console-sub"])
        .args(["--awaiting-port", &console.awaiting.to_string()])
        .args(["--explain-port", &port, "--username", USER])
        .args(["--attr", "role=writer", "--topic", "plant/line1/temp"])
        .arg("--shots")
        .arg(&shots);
    let journey = tokio::task::spawn_blocking(move || Journey::pass(&mut node))
        .await
        .expect("journey");

    // Overview: the awaiting port's state as the logs print it.
    let awaiting = journey.observed("awaitingLine").as_str().expect("text");
    assert!(
        awaiting.starts_with("AwaitingSecret: ") && awaiting.contains("not-created-yet"),
        "{awaiting}"
    );
    let logged = console
        .broker
        .wait_for_line("the awaiting port's log line", START, |l| {
            l.contains("not-created-yet") && l.contains("state=")
        })
        .expect("log line");
    let (state, reason) = awaiting.split_once(": ").expect("state: reason");
    assert!(
        logged.contains(&format!("state=\"{state}\" reason=\"{reason}\"")),
        "the console's line is the log's:\n{awaiting}\n{logged}"
    );
    assert_eq!(journey.observed("connectionsLegend"), "connections: 2");
    let messages = journey.observed("messagesLegend").as_str().expect("text");
    let rate_in: f64 = messages
        .split("in: ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no in: rate in {messages:?}"));
    assert!(
        rate_in > 1.0,
        "the publisher's ~10 messages/s are charted: {messages}"
    );
    // Certificates: the served one (CN=localhost) and the trust bundle link.
    let subjects = journey.observed("certificateSubjects").to_string();
    assert!(subjects.contains("CN = localhost"), "{subjects}");
    assert_eq!(journey.observed("trustBundleLink"), 1);
    // Clients: listed with its user and subscription, searchable, disconnected.
    assert_eq!(journey.observed("clientListed"), true);
    let row = journey.observed("clientRow").as_str().expect("text");
    assert!(
        row.contains(USER) && row.contains("plant/# q0") && row.contains("5.0"),
        "{row}"
    );
    assert_eq!(journey.observed("visibleWhenSearched"), true);
    assert_eq!(journey.observed("hiddenWhenNotMatching"), true);
    assert_eq!(journey.observed("clientGoneAfterDisconnect"), true);
    let out = sub
        .wait(Duration::from_secs(10))
        .expect("mosquitto_sub exits");
    assert!(
        out.stdout.contains("DISCONNECT") || !out.success(),
        "mosquitto_sub was disconnected: {out}"
    );
    // Authorization: the same answer as `wardgate explain`.
    let cli = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("explain")
            .arg("--config")
            .arg(console.config())
            .args(["--username", USER, "--attr", "role=writer", "--port", &port])
            .args(["--publish", "plant/line1/temp"]),
        Duration::from_secs(20),
    )
    .expect("wardgate explain");
    assert_eq!(journey.observed("explainText"), cli.stdout.as_str());
    let verdict = journey.observed("explainVerdict").as_str().expect("text");
    assert!(verdict.starts_with("Allowed"), "{verdict}");
    assert_eq!(
        journey.observed("policies").to_string(),
        r#"["BrokerAuthorization writers"]"#
    );
    let reloads = journey.observed("reloads").as_str().expect("text");
    assert!(reloads.starts_with("0 applied, 0 refused"), "{reloads}");
    let cluster = journey.observed("cluster").as_str().expect("text");
    assert!(cluster.contains("single node"), "{cluster}");
    for page in [
        "overview",
        "certificates",
        "clients",
        "authorization",
        "configuration",
        "cluster",
    ] {
        let png = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "{} is a screenshot ({size} bytes)",
            png.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_requires_the_token_and_never_shows_secrets() {
    let console = start();
    let pages = [
        "/",
        "/certificates",
        "/clients",
        "/authorization",
        "/authorization?username=alice&attributes=role%3Dwriter&action=connect",
        "/configuration",
        "/cluster",
        "/api/v1/listeners",
        "/api/v1/certificates",
        "/api/v1/clients",
        "/api/v1/stats",
    ];
    let key = std::fs::read_to_string(console.root.path().join("certs/server.key")).expect("key");
    let hashes = std::fs::read_to_string(console.root.path().join("certs/passwords.toml"))
        .expect("passwords");
    let secret_lines: Vec<&str> = key
        .lines()
        .chain(hashes.lines())
        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
        .collect();
    assert!(!secret_lines.is_empty());
    for path in pages {
        let (code, body) = console.get(path, false).await;
        assert_eq!(code, 401, "{path} without the token: {body}");
        let (code, body) = console.get(path, true).await;
        assert_eq!(code, 200, "{path}: {body}");
        for forbidden in ["PRIVATE KEY", TOKEN, PASSWORD, "pbkdf2"] {
            assert!(!body.contains(forbidden), "{path} shows {forbidden:?}");
        }
        for line in &secret_lines {
            assert!(
                !body.contains(line.trim()),
                "{path} shows a line of a secret: {line}"
            );
        }
    }
    let (_, configuration) = console.get("/configuration", true).await;
    assert!(
        configuration
            .contains("Secret <strong>server-cert</strong> (kubernetes.io/tls): tls.crt, tls.key"),
        "Secrets are listed by name and keys:\n{configuration}"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (code, _) = console.get(path, false).await;
        assert!(code == 200 || code == 503, "{path} stays open: {code}");
    }
    // `wardgate status` sends the token from the same file.
    let admin = console.api.addr().to_string();
    let token_file = console.root.path().join("admin-token");
    let status = move |with_token: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wardgate"));
        cmd.args(["status", "--admin-addr", &admin]);
        if with_token {
            cmd.arg("--admin-token-file").arg(&token_file);
        }
        run(&mut cmd, Duration::from_secs(20)).expect("wardgate status")
    };
    let (refused, shown) = tokio::task::spawn_blocking(move || (status(false), status(true)))
        .await
        .expect("status");
    assert!(
        refused.stderr.contains("refused the request (401)")
            && refused.stderr.contains("--admin-token-file FILE"),
        "{refused}"
    );
    assert!(shown.stdout.contains("AwaitingSecret"), "{shown}");
    // The disconnect action: a POST, with the page's CSRF token.
    let headers = console.bearer();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = console
        .api
        .request("POST", "/clients/disconnect", &headers, b"clientId=x")
        .await
        .expect("POST");
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn a_bad_admin_token_file_stops_the_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let token = root.path().join("token");
    std::fs::write(&token, "short\n").expect("write");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .args(["--admin-addr", "127.0.0.1:0", "--admin-token-file"])
            .arg(&token),
        Duration::from_secs(20),
    )
    .expect("wardgate serve");
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("must be 16 to 4096 printable ASCII characters")
            && out.stderr.contains("(found 5 characters)"),
        "{out}"
    );
    let missing = root.path().join("absent");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .arg("--admin-token-file")
            .arg(&missing),
        Duration::from_secs(20),
    )
    .expect("wardgate serve");
    assert!(
        !out.success() && out.stderr.contains("cannot read the admin token file"),
        "{out}"
    );
}
