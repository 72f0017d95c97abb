//! The brokers `compare` starts, each on loopback with a configuration equivalent to Wardgate's
//! defaults, and stops again (the guard kills the process when dropped).
//!
//! Equivalent settings: no persistence; 100,000 queued messages per session (Wardgate's
//! `QueueLimits::max_queued`); 1,024 unacknowledged QoS 1/2 messages per connection (Wardgate's
//! server Receive Maximum); no connection limit; logging of errors and warnings only.

pub mod cluster;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::load::{Target, TlsTarget};
use crate::tls::Pki;

/// A broker `compare` knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This project's broker, from a release build.
    Wardgate,
    /// Eclipse Mosquitto (Debian package).
    Mosquitto,
    /// rumqttd 0.20 (crates.io).
    Rumqttd,
    /// Wardgate again, from another build (`--baseline-bin`): the "before" of a change measured
    /// beside its "after" in the same run, on the same configuration.
    Baseline,
    /// Three Wardgate nodes (`--wardgate-bin`) on a three-server NATS JetStream cluster;
    /// publishers on one node, subscribers on another.
    WardgateCluster,
    /// nats-server's own MQTT listener on a three-server JetStream cluster; publishers on
    /// server 0, subscribers on server 1 (MQTT 3.1.1 only).
    NatsMqtt,
}

impl Kind {
    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wardgate => "wardgate",
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
            Kind::Baseline => "wardgate-baseline",
            Kind::WardgateCluster => "wardgate-cluster",
            Kind::NatsMqtt => "nats-mqtt",
        }
    }

    /// The kind for a name.
    pub fn from_name(name: &str) -> Option<Kind> {
        [
            Kind::Wardgate,
            Kind::Mosquitto,
            Kind::Rumqttd,
            Kind::Baseline,
            Kind::WardgateCluster,
            Kind::NatsMqtt,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// Where the broker programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `wardgate`.
    pub wardgate: PathBuf,
    /// `mosquitto`.
    pub mosquitto: PathBuf,
    /// `rumqttd`.
    pub rumqttd: PathBuf,
    /// Another `wardgate` build, for a before/after comparison.
    pub baseline: Option<PathBuf>,
    /// `nats-server` (with JetStream and MQTT), for the cluster brokers.
    pub nats: PathBuf,
}

impl Binaries {
    fn of(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Wardgate | Kind::WardgateCluster => &self.wardgate,
            Kind::NatsMqtt => &self.nats,
            Kind::Mosquitto => &self.mosquitto,
            Kind::Rumqttd => &self.rumqttd,
            // `compare` refuses wardgate-baseline without --baseline-bin.
            Kind::Baseline => self.baseline.as_deref().unwrap_or(&self.wardgate),
        }
    }

    /// A one-line description of each broker's binary and version, for the report.
    pub fn describe(&self, kind: Kind) -> String {
        let bin = self.of(kind);
        let version = match kind {
            Kind::Mosquitto => Command::new(bin).arg("-h").output().ok().and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            }),
            _ => Command::new(bin)
                .arg(if kind == Kind::NatsMqtt {
                    "-v"
                } else {
                    "--version"
                })
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .map(str::to_owned)
                }),
        };
        format!(
            "{} ({})",
            version.unwrap_or_else(|| "version unknown".into()),
            bin.display()
        )
    }
}

/// A running broker (all its processes, for a cluster); killed when dropped.
#[derive(Debug)]
pub struct Running {
    children: Vec<Child>,
    /// What it is.
    pub kind: Kind,
    /// Where clients connect, and its pid.
    pub target: Target,
    dir: tempfile::TempDir,
}

impl Running {
    /// Whether the process is still alive.
    pub fn alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The broker's log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// Writes a Wardgate configuration folder under `dir` with three listeners on 127.0.0.1: plain
/// on `port`, TLS on `port + 1` and TLS with X.509 client authentication on `port + 2` (the
/// certificate is verified against the bench CA), the same three as Mosquitto's.
pub fn wardgate_config(dir: &Path, port: u16) -> Result<(PathBuf, TlsTarget)> {
    let pki = Arc::new(Pki::generate()?);
    let (tls_port, mtls_port) = (port + 1, port + 2);
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    let ns = "namespace: azure-iot-operations";
    let resources = format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\n\
         kind: BrokerListener\n\
         metadata: {{name: default, {ns}}}\n\
         spec:\n  brokerRef: default\n  serviceName: bench\n  serviceType: ClusterIp\n  \
         ports:\n  - port: {port}\n    protocol: Mqtt\n  \
         - port: {tls_port}\n    protocol: Mqtt\n    \
         tls: {{mode: Manual, manual: {{secretRef: bench-server}}}}\n  \
         - port: {mtls_port}\n    protocol: Mqtt\n    authenticationRef: bench-x509\n    \
         tls: {{mode: Manual, manual: {{secretRef: bench-server}}}}\n\
         ---\n\
         apiVersion: mqttbroker.iotoperations.azure.com/v1\n\
         kind: BrokerAuthentication\n\
         metadata: {{name: bench-x509, {ns}}}\n\
         spec:\n  authenticationMethods:\n  - method: X509\n    \
         x509Settings: {{trustedClientCaCert: bench-ca}}\n\
         ---\n\
         apiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\n\
         metadata: {{name: bench-server, {ns}}}\n\
         stringData:\n  tls.crt: |\n    {cert}\n  tls.key: |\n    {key}\n\
         ---\n\
         apiVersion: v1\nkind: ConfigMap\n\
         metadata: {{name: bench-ca, {ns}}}\n\
         data:\n  ca.crt: |\n    {ca}\n",
        cert = indent(&pki.server_cert_pem),
        key = indent(&pki.server_key_pem),
        ca = indent(&pki.ca_pem),
    );
    let config = dir.join("config");
    std::fs::create_dir_all(&config).map_err(|e| Error::io("config dir", e))?;
    write(&config, "listener.yaml", &resources)?;
    let tls = TlsTarget {
        server_auth: SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)),
        mutual: SocketAddr::from((Ipv4Addr::LOCALHOST, mtls_port)),
        pki,
    };
    Ok((config, tls))
}

/// Starts `kind` listening on 127.0.0.1:`port` (rumqttd: MQTT 5 on `port + 1`; Mosquitto and
/// Wardgate: TLS on `port + 1` and TLS with client certificates on `port + 2`; the clusters on
/// free ports of their own) and waits until it accepts connections.
pub fn start(kind: Kind, bins: &Binaries, port: u16) -> Result<Running> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let d = dir.path();
    let v3 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut v5 = v3;
    let mut tls = None;
    let mut cmd = Command::new(bins.of(kind));
    match kind {
        Kind::WardgateCluster | Kind::NatsMqtt => return cluster::start(kind, bins, dir),
        Kind::Wardgate | Kind::Baseline => {
            let (config, listeners) = wardgate_config(d, port)?;
            tls = Some(listeners);
            cmd.arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(d.join("data"))
                .env("WARDGATE_LOG", "warn");
        }
        Kind::Mosquitto => {
            // The broker may drop root privileges before reading its certificates.
            set_mode(d, 0o755)?;
            let pki = Arc::new(Pki::generate()?);
            let ca = write(d, "ca.pem", &pki.ca_pem)?;
            let cert = write(d, "server.pem", &pki.server_cert_pem)?;
            let key = write(d, "server.key", &pki.server_key_pem)?;
            for f in [&ca, &cert, &key] {
                set_mode(f, 0o644)?;
            }
            let (ca, cert, key) = (ca.display(), cert.display(), key.display());
            let (tls_port, mtls_port) = (port + 1, port + 2);
            let conf = format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 persistence false\n\
                 max_connections -1\n\
                 max_queued_messages 100000\n\
                 max_inflight_messages 1024\n\
                 set_tcp_nodelay true\n\
                 log_dest stderr\n\
                 log_type error\n\
                 log_type warning\n\
                 connection_messages false\n\
                 listener {tls_port} 127.0.0.1\n\
                 cafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 listener {mtls_port} 127.0.0.1\n\
                 cafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 require_certificate true\n"
            );
            let path = write(d, "mosquitto.conf", &conf)?;
            cmd.arg("-c").arg(path);
            tls = Some(TlsTarget {
                server_auth: SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)),
                mutual: SocketAddr::from((Ipv4Addr::LOCALHOST, mtls_port)),
                pki,
            });
        }
        Kind::Rumqttd => {
            v5 = SocketAddr::from((Ipv4Addr::LOCALHOST, port + 1));
            let conf = format!(
                "id = 0\n\n[router]\nid = 0\nmax_connections = 65000\n\
                 max_outgoing_packet_count = 200\nmax_segment_size = 104857600\n\
                 max_segment_count = 10\n\n\
                 [v4.1]\nname = \"v4-1\"\nlisten = \"{v3}\"\nnext_connection_delay_ms = 0\n\
                 [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 1048576\n\
                 max_inflight_count = 1024\ndynamic_filters = true\n\n\
                 [v5.1]\nname = \"v5-1\"\nlisten = \"{v5}\"\nnext_connection_delay_ms = 0\n\
                 [v5.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 1048576\n\
                 max_inflight_count = 1024\n"
            );
            let path = write(d, "rumqttd.toml", &conf)?;
            cmd.arg("-q").arg("-c").arg(path);
        }
    }
    let target = Target {
        v3,
        v5,
        publishers_at: None,
        pids: Vec::new(),
        tls,
    };
    let mut running = Running::new(kind, target, dir);
    running.spawn(cmd)?;
    let mut addrs = vec![v3, v5];
    if let Some(t) = &running.target.tls {
        addrs.extend([t.server_auth, t.mutual]);
    }
    running.wait_listening(&addrs)?;
    Ok(running)
}

impl Running {
    /// A broker whose processes are still to be spawned, in the temporary folder `dir`.
    pub(crate) fn new(kind: Kind, target: Target, dir: tempfile::TempDir) -> Running {
        Running {
            children: Vec::new(),
            kind,
            target,
            dir,
        }
    }

    /// The broker's temporary folder.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Spawns one of the broker's processes, its output appended to the broker's log, and
    /// records its pid in the target.
    pub(crate) fn spawn(&mut self, mut cmd: Command) -> Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .map_err(|e| Error::io("log file", e))?;
        let log2 = log.try_clone().map_err(|e| Error::io("log file", e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd.spawn().map_err(|e| {
            self.error(format!(
                "cannot start {}: {e}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
        let pid = child.id();
        self.children.push(child);
        self.target.pids.push(pid);
        Ok(pid)
    }

    /// An error about this broker.
    pub(crate) fn error(&self, why: String) -> Error {
        Error::Broker {
            name: self.kind.name().into(),
            why,
        }
    }

    /// Waits (at most 20 s) until every one of `addrs` accepts connections; an error if a
    /// process exits meanwhile.
    pub(crate) fn wait_listening(&mut self, addrs: &[SocketAddr]) -> Result<()> {
        self.wait_until(
            Duration::from_secs(20),
            &format!("listening on {addrs:?}"),
            || {
                addrs
                    .iter()
                    .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            },
        )
    }

    /// Polls `ready` until it holds, at most `timeout`; an error naming `what` (and the log) if
    /// it does not, or if a process exits meanwhile.
    pub(crate) fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.alive() {
                return Err(self.error(format!("exited at start:\n{}", self.log())));
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.error(format!("not {what} after {timeout:?}:\n{}", self.log())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
