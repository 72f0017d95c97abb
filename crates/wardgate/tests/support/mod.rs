//! A `wardgate serve` process for the persistence and limits tests: its config folder (listener
//! `default` on a free loopback port, plus a Broker resource), its data dir, and restarts on the
//! same folders after a SIGKILL or a graceful stop. [`tls`]: certificates, Secrets and TLS
//! clients for the TLS tests.

#![allow(dead_code)] // each test binary uses a different part

pub(crate) mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::{Output, Running, free_port, wait_for_port};

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
        let root = tempfile::Builder::new()
            .prefix("wardgate-store-")
            .tempdir()
            .expect("tempdir");
        let port = free_port().expect("free port");
        let config = root.path().join("config");
        std::fs::create_dir(&config).expect("mkdir config");
        std::fs::write(
            config.join("listener.yaml"),
            format!(
                "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: {port}\n    protocol: Mqtt\n"
            ),
        )
        .expect("write listener");
        if !broker_spec.is_empty() {
            std::fs::write(
                config.join("broker.yaml"),
                format!(
                    "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n{broker_spec}"
                ),
            )
            .expect("write broker");
        }
        Node {
            root,
            port,
            running: None,
            past: Vec::new(),
        }
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
