//! `wardgate serve --kubernetes` against testkit's fake API server, with the real kube-rs client
//! inside the real binary and the real kubectl: every seed manifest applied with
//! `kubectl apply -f` reaches the same port states as the same file given to `--config`; a watch
//! broken mid-stream and a 410 Gone resume without restarting the ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wardgate_protocol::ProtocolVersion;
use wardgate_server::admin::client::AdminClient;
use wardgate_server::admin::dto::{Listeners, Port};
use wardgate_testkit::client::RawClient;
use wardgate_testkit::kube::FakeKube;
use wardgate_testkit::process::{Output, Running, free_port};
use wardgate_testkit::resources;

/// The namespace the seeds write.
pub(crate) const NS: &str = "azure-iot-operations";

/// How long a state may take to appear on a loaded machine.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Runs kubectl against `fake` (in a blocking thread: the fake serves on this runtime) and
/// returns stdout; a failure fails the test.
pub(crate) async fn kubectl(fake: &FakeKube, args: &[&str]) -> String {
    let mut command = fake.kubectl();
    command.args(args);
    let shown = format!("kubectl {}", args.join(" "));
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("kubectl runs (Debian kubernetes-client)");
    assert!(
        out.status.success(),
        "{shown} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fake API server with the seeds' namespace.
pub(crate) async fn fake_cluster() -> FakeKube {
    let fake = FakeKube::start().await;
    kubectl(&fake, &["create", "namespace", NS]).await;
    fake
}

/// Writes `yaml` into `dir` and runs `kubectl apply -f` on it in the seeds' namespace.
pub(crate) async fn apply(fake: &FakeKube, dir: &Path, yaml: &str) -> String {
    let file = dir.join("apply.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    kubectl(
        fake,
        &["apply", "-n", NS, "-f", &file.display().to_string()],
    )
    .await
}

/// A running `wardgate serve` and its admin API.
pub(crate) struct Served {
    pub(crate) process: Running,
    pub(crate) admin: AdminClient,
}

impl Served {
    /// `wardgate serve` with `args`, its data dir in `root`, every port on loopback.
    fn start(root: &Path, args: &[&str], env: &[(&str, PathBuf)]) -> Served {
        let admin: SocketAddr = ([127, 0, 0, 1], free_port().expect("free port")).into();
        let data = root.join(format!("data-{}", admin.port()));
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("exec \"$@\" 2>&1")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .args(args)
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--admin-addr={admin}"))
            .arg("--bind=127.0.0.1")
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)));
        Served {
            process: Running::spawn(&mut command).expect("start wardgate serve"),
            admin: AdminClient::new(admin),
        }
    }

    /// `serve --kubernetes` against `fake`, in the seeds' namespace.
    pub(crate) fn kubernetes(root: &Path, fake: &FakeKube) -> Served {
        Served::start(
            root,
            &["--kubernetes", "--namespace", NS],
            &[("KUBECONFIG", fake.kubeconfig())],
        )
    }

    /// `serve --config file`.
    fn files(root: &Path, file: &Path) -> Served {
        Served::start(root, &[&format!("--config={}", file.display())], &[])
    }

    /// The ports, once the admin API answers; `None` if the process ended first.
    pub(crate) async fn ports(&mut self) -> Option<Listeners> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok((200, listeners)) = self.admin.get_json("/api/v1/listeners").await {
                return Some(listeners);
            }
            if let Err(e @ wardgate_testkit::process::Error::Ended { .. }) =
                self.process.wait_for_line("", Duration::ZERO, |_| false)
            {
                eprintln!("wardgate serve ended: {e}");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the admin API did not answer within {WAIT:?}");
    }

    /// Waits until `ready` holds for the ports; returns them.
    pub(crate) async fn wait_ports(
        &mut self,
        what: &str,
        ready: impl Fn(&Listeners) -> bool,
    ) -> Listeners {
        let deadline = Instant::now() + WAIT;
        loop {
            let listeners = self.ports().await.expect("wardgate serve is running");
            if ready(&listeners) {
                return listeners;
            }
            if Instant::now() > deadline {
                let out = self.process.kill();
                panic!("{what}: not within {WAIT:?}; ports: {listeners:#?}\n{out}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the process, returning what it printed.
    pub(crate) fn stop(mut self) -> Output {
        self.process.kill()
    }
}

/// The state of `port` (`None` if not configured).
pub(crate) fn state(listeners: &Listeners, port: u16) -> Option<String> {
    listeners
        .ports
        .iter()
        .find(|p| p.port == port)
        .map(|p| p.state.clone())
}

/// What must match between the two sources: each port's listener, number, protocol, state,
/// TLS mode, authentication and authorization (the reason names the source: a file, or
/// `kube:`). A NodePort listener's ports are listed without their number: outside Kubernetes
/// one listens on its `nodePort`, in a cluster on its `port` (the Service maps one to the other).
fn comparable(listeners: &Listeners, node_port_listeners: &[String]) -> Vec<String> {
    let mut ports: Vec<String> = listeners
        .ports
        .iter()
        .map(|p: &Port| {
            let number = if node_port_listeners.contains(&p.listener) {
                "(node port)".to_owned()
            } else {
                p.port.to_string()
            };
            format!(
                "{}:{number} {} {} tls={:?} authn={:?} authz={:?}",
                p.listener, p.protocol, p.state, p.tls, p.authentication, p.authorization
            )
        })
        .collect();
    ports.sort();
    ports
}

/// What a file's port states become on a cluster running cert-manager (the fake serves its
/// API group): an automatic port does not issue its own certificate but waits for the Secret
/// cert-manager writes for its `Certificate` (docs/kubernetes.md, "Certificates on the
/// cluster"), whatever the built-in issuer would have done.
fn with_cert_manager(mut listeners: Listeners) -> Listeners {
    for port in &mut listeners.ports {
        if port.tls.as_deref() == Some("Automatic") && port.state != "Failed" {
            port.state = "AwaitingSecret".to_owned();
        }
    }
    listeners
}

/// The listeners with a port on one of `yaml`'s `nodePort`s (from a run with files).
fn node_port_listeners(yaml: &str, listeners: &Listeners) -> Vec<String> {
    let node_ports: Vec<u16> = yaml
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("nodePort:"))
        .filter_map(|n| n.split('#').next()?.trim().parse().ok())
        .collect();
    listeners
        .ports
        .iter()
        .filter(|p| node_ports.contains(&p.port))
        .map(|p| p.listener.clone())
        .collect()
}

/// The seed manifests, extracted from `../shared/seeds/` for the config crate's tests.
fn seed_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the seed fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// `yaml` with every `port:` but the default listener's 18883 moved to a free port, the same
/// way for both runs (tests run in parallel; 18883 is kept so the seeds' collisions with the
/// default listener stay).
fn free_ports(yaml: &str) -> String {
    let mut out = String::new();
    let mut moved = std::collections::BTreeMap::new();
    for line in yaml.lines() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let number = trimmed
            .strip_prefix("port:")
            .map(|rest| rest.split('#').next().unwrap_or("").trim());
        match number.and_then(|n| n.parse::<u16>().ok()) {
            Some(port) if port != 18883 => {
                let new = *moved
                    .entry(port)
                    .or_insert_with(|| free_port().expect("free port"));
                out.push_str(&line.replacen(&port.to_string(), &new.to_string(), 1));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The ports of a started broker (`None` if it refused its configuration), and its output.
async fn run_seed(mut served: Served) -> (Option<Listeners>, Output) {
    let ports = served.ports().await;
    (ports, served.stop())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_seed_applied_through_the_api_reaches_the_port_states_it_reaches_from_a_file() {
    let files = seed_files();
    assert!(files.len() >= 14, "{files:?}");
    let mut compared = Vec::new();
    let mut states = std::collections::BTreeSet::new();
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let root = tempfile::tempdir().expect("tempdir");
        let yaml = free_ports(&std::fs::read_to_string(&file).expect("read seed"));
        let local = root.path().join(&name);
        std::fs::write(&local, &yaml).expect("write seed");

        // The seeds' default listener is 18883 as written; another test's broker may hold it
        // for a moment (Failed: address in use), so such a run is tried again.
        let mut attempts = 0;
        let ((expected, file_out), (actual, api_out)) = loop {
            attempts += 1;
            let from_file = run_seed(Served::files(root.path(), &local)).await;
            let fake = fake_cluster().await;
            apply(&fake, root.path(), &yaml).await;
            let from_api = run_seed(Served::kubernetes(root.path(), &fake)).await;
            let failed = |run: &(Option<Listeners>, Output)| {
                run.0
                    .as_ref()
                    .is_some_and(|l| l.ports.iter().any(|p| p.state == "Failed"))
            };
            if attempts == 3 || !(failed(&from_file) || failed(&from_api)) {
                break (from_file, from_api);
            }
        };
        match (expected, actual) {
            (Some(expected), Some(actual)) => {
                let node_port = node_port_listeners(&yaml, &expected);
                let expected = with_cert_manager(expected);
                if expected
                    .ports
                    .iter()
                    .any(|p| p.tls.as_deref() == Some("Automatic"))
                {
                    assert!(
                        api_out.stdout.contains("cert-manager Certificate applied"),
                        "seed {name}: automatic ports get cert-manager Certificates\n{api_out}"
                    );
                }
                assert_eq!(
                    comparable(&actual, &node_port),
                    comparable(&expected, &node_port),
                    "seed {name}: ports from the API differ from the file's\n{api_out}"
                );
                states.extend(actual.ports.iter().map(|p| p.state.clone()));
                compared.push(name);
            }
            (None, None) => {
                // Refused by both: with the same error, named after the object, not the file.
                let error = |out: &Output| {
                    out.lines()
                        .find(|l| l.contains("BrokerListener/"))
                        .map(|l| l.split_once(": ").map_or(l, |(_, e)| e).to_owned())
                };
                assert!(
                    api_out
                        .stdout
                        .contains(&format!("kube:{NS}/BrokerListener/")),
                    "{api_out}"
                );
                assert_eq!(error(&api_out), error(&file_out), "seed {name}");
                compared.push(format!("{name} (refused)"));
            }
            (expected, actual) => panic!(
                "seed {name}: from a file {expected:?}, from the API {actual:?}\n{file_out}\n{api_out}"
            ),
        }
    }
    assert!(
        compared.iter().any(|c| c.ends_with("(refused)")),
        "the seed that collides with the default listener: {compared:?}"
    );
    assert!(
        states.contains("Listening") && states.contains("AwaitingSecret"),
        "the seeds' ports listen or await their secret: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_broken_mid_stream_or_gone_resumes_without_restarting_the_ports() {
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let listener = |ports: &[u16]| {
        let ports: String = ports.iter().map(|&p| resources::mqtt_port(p)).collect();
        resources::named_listener("default", "ClusterIp", &ports)
    };
    apply(&fake, root.path(), &listener(&[a])).await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served
        .wait_ports("port a listening", |l| {
            state(l, a).as_deref() == Some("Listening")
        })
        .await;
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (mut client, _) = RawClient::connect(addr(a), ProtocolVersion::V5, "stays").await;

    // Mid-stream: every watch ends; the watcher resumes from its resourceVersion.
    fake.break_watches();
    apply(&fake, root.path(), &listener(&[a, b])).await;
    served
        .wait_ports("port b added after a broken watch", |l| {
            state(l, b).as_deref() == Some("Listening")
        })
        .await;

    // 410 Gone: the history is compacted, the resumed watch is refused, the watcher relists.
    fake.compact();
    fake.break_watches();
    apply(&fake, root.path(), &listener(&[a, b, c])).await;
    let listeners = served
        .wait_ports("port c added after 410 Gone", |l| {
            state(l, c).as_deref() == Some("Listening")
        })
        .await;
    assert_eq!(
        listeners.reloads, 2,
        "one reload per change, none for a relist"
    );

    // Port a never restarted: the client connected before both breaks is still served.
    client
        .subscribe("after/#", wardgate_protocol::QoS::AtMostOnce)
        .await;
    let out = served.stop();
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("brokerlisteners") && !r.contains("watch=true"))
            .count()
            >= 2,
        "a relist after 410: {requests:#?}\n{out}"
    );
}

#[test]
fn kubernetes_and_config_are_two_sources_that_do_not_go_together() {
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["serve", "--kubernetes", "--config", "listener.yaml"])
        .output()
        .expect("wardgate runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}
