//! A `wardgate serve` process for the end-to-end tests: its config folder (listener `default`
//! on a free loopback port, plus a Broker resource, or files the test writes), its data dir, and
//! restarts on the same folders after a SIGKILL or a graceful stop. Also the command-line tools
//! the tests prepare with (`wardgate cert`/`create`/`passwd`, openssl) and mosquitto clients.
//! [`tls`]: certificates, Secrets and TLS clients for the TLS tests.

pub(crate) mod tls;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wardgate_testkit::process::{
    Output, Running, free_port, mosquitto_pub, mosquitto_sub, run, wait_for_port,
};
use wardgate_testkit::resources;

/// How long a start may take (a restart replays the store first).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A broker's folders and port; the process itself comes and goes.
pub(crate) struct Node {
    root: tempfile::TempDir,
    /// The MQTT port (listener `default`, ClusterIp: loopback only).
    pub(crate) port: u16,
    running: Option<Running>,
    /// Output of the processes that ended, oldest first.
    pub(crate) past: Vec<Output>,
}

impl Node {
    /// Writes the configuration: the Broker `spec` body (indented by two spaces; empty for
    /// none) and listener `default` on a free port.
    pub(crate) fn new(broker_spec: &str) -> Node {
        let node = Node::empty();
        let (port, config) = (node.port, node.config_dir());
        std::fs::write(
            config.join("listener.yaml"),
            resources::listener(&resources::mqtt_port(port)),
        )
        .expect("write listener");
        if !broker_spec.is_empty() {
            std::fs::write(config.join("broker.yaml"), resources::broker(broker_spec))
                .expect("write broker");
        }
        node
    }

    /// An empty config folder and a free port for the test to write its own listener with
    /// (name it `default` with serviceType ClusterIp: loopback only).
    pub(crate) fn empty() -> Node {
        let root = tempfile::Builder::new()
            .prefix("wardgate-e2e-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(root.path().join("config")).expect("mkdir config");
        Node {
            root,
            port: free_port().expect("free port"),
            running: None,
            past: Vec::new(),
        }
    }

    /// The folder given to `--config`.
    pub(crate) fn config_dir(&self) -> PathBuf {
        self.root.path().join("config")
    }

    /// Writes `text` to `name` in the config folder.
    pub(crate) fn write_config(&self, name: &str, text: &str) {
        std::fs::write(self.config_dir().join(name), text).expect("write config file");
    }

    /// The data dir given to `--data-dir`.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The root folder (config and data dir).
    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// The MQTT address.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts `wardgate serve` (logs merged into stdout) and waits for the port.
    pub(crate) fn start(&mut self) {
        self.start_with(&[]);
    }

    /// [`Node::start`] with extra environment variables.
    pub(crate) fn start_with(&mut self, env: &[(&str, &str)]) {
        assert!(self.running.is_none(), "already running");
        let running = Running::spawn(
            Command::new("sh")
                .envs(env.iter().copied())
                .arg("-c")
                .arg("exec \"$0\" serve --config \"$1\" --data-dir \"$2\" --admin-addr 127.0.0.1:0 2>&1")
                .arg(env!("CARGO_BIN_EXE_wardgate"))
                .arg(self.root.path().join("config"))
                .arg(self.data_dir())
                .env("NO_COLOR", "1"),
        )
        .expect("start wardgate");
        self.running = Some(running);
        if let Err(e) = wait_for_port(self.port, START_TIMEOUT) {
            let out = self.kill();
            panic!("wardgate did not open port {}: {e}\n{out}", self.port);
        }
    }

    /// The running process.
    pub(crate) fn process(&mut self) -> &mut Running {
        self.running.as_mut().expect("running")
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.running.as_ref().expect("running").pid()
    }

    /// SIGKILL: no flush, no goodbye.
    pub(crate) fn kill(&mut self) -> Output {
        let mut running = self.running.take().expect("running");
        let out = running.kill();
        self.past.push(out.clone());
        out
    }

    /// SIGTERM and wait for the graceful exit.
    pub(crate) fn stop(&mut self) -> Output {
        let running = self.running.take().expect("running");
        let pid = running.pid().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let out = running
            .wait(Duration::from_secs(10))
            .expect("graceful exit");
        self.past.push(out.clone());
        out
    }

    /// Everything every process printed so far, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let mut all = String::new();
        for out in &self.past {
            all.push_str(&out.stdout);
        }
        if let Some(r) = &self.running {
            all.push_str(&r.seen().join("\n"));
        }
        all
    }

    /// The broker's resident set size in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// docs/tls.md from its section `## The quickstart CA and the trust bundle` on, whose examples
/// the tests replay.
pub(crate) fn tls_md_quickstart_section() -> String {
    let doc = std::fs::read_to_string(wardgate_testkit::process::repo_root().join("docs/tls.md"))
        .expect("docs/tls.md");
    doc.split("## The quickstart CA and the trust bundle")
        .nth(1)
        .expect("the quickstart section")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Tools

/// Runs `wardgate ARGS` in `dir`; the test fails if it fails.
pub(crate) fn wardgate(args: &[&str], dir: &Path) -> Output {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(args)
            .current_dir(dir),
        Duration::from_secs(60),
    )
    .expect("wardgate runs");
    assert!(out.success(), "wardgate {args:?}: {out}");
    out
}

/// Runs `openssl ARGS` in `dir`; the test fails if it fails.
pub(crate) fn openssl(args: &[&str], dir: &Path) -> Output {
    let out = run(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(30),
    )
    .expect("openssl runs");
    assert!(out.success(), "{out}");
    out
}

/// Adds `user` to the passwords file `file` with `wardgate passwd` (1,000 iterations: fast
/// tests), with attributes `k=v`.
pub(crate) fn passwd(file: &Path, user: &str, password: &str, attrs: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wardgate"));
    cmd.args(["passwd", user, "--password-stdin", "--iterations", "1000"]);
    for a in attrs {
        cmd.args(["--attr", a]);
    }
    let mut child = cmd
        .arg("--file")
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("wardgate passwd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    assert!(
        child.wait().expect("wait").success(),
        "wardgate passwd {user}"
    );
}

/// An Opaque Secret `name` whose key `passwords.toml` holds the file `file` (for
/// `usernamePasswordSettings.secretRef`).
pub(crate) fn passwords_secret(name: &str, file: &Path) -> String {
    let toml = std::fs::read_to_string(file).expect("passwords file");
    let indented: String = toml.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  passwords.toml: |\n{indented}"
    )
}

/// Runs `mosquitto_pub ARGS` (20 s at most) and returns everything it printed, both streams:
/// with `-d` the packets it received, and the connection error if any.
pub(crate) fn mosquitto_pub_output(args: &[&str]) -> String {
    let out = run(
        Command::new(mosquitto_pub().expect("mosquitto_pub")).args(args),
        Duration::from_secs(20),
    )
    .expect("mosquitto_pub runs");
    format!("{out}")
}

/// Starts `mosquitto_sub ARGS`, line-buffered so each line arrives while it runs.
pub(crate) fn mosquitto_sub_running(args: &[&str]) -> Running {
    Running::spawn(
        Command::new("stdbuf")
            .arg("-oL")
            .arg(mosquitto_sub().expect("mosquitto_sub"))
            .args(args),
    )
    .expect("start mosquitto_sub")
}
