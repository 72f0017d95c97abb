//! The cluster's processes: on each node's namespace a `nats-server` (JetStream, routes to the
//! other two) and a `wardgate serve --cluster` beside it, each started with `ip netns exec` (which
//! execs the server itself, so the child's pid is the server's), logging to a file of the run's
//! folder. Faults act on them: kill -9, SIGSTOP/SIGCONT, graceful stop and restart.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::netns::{node_addr, node_ns, run};

/// The MQTT port every node listens on (on its own address).
pub const MQTT_PORT: u16 = 1883;
const NATS_PORT: u16 = 4222;
const NATS_ROUTE_PORT: u16 = 6222;
const NATS_MONITOR_PORT: u16 = 8222;
/// How long a server may take to become ready (a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The binaries the cluster runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `wardgate`.
    pub wardgate: PathBuf,
    /// `nats-server`.
    pub nats: PathBuf,
}

/// Which of a node's two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The Wardgate node.
    Wardgate,
    /// Its NATS server.
    Nats,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Wardgate => "wardgate",
            Server::Nats => "nats",
        }
    }
}

/// One node's processes while they run.
#[derive(Debug, Default)]
struct Node {
    wardgate: Option<Child>,
    nats: Option<Child>,
}

/// The processes of a cluster of `nodes` nodes; every one is killed when this drops.
#[derive(Debug)]
pub struct Cluster {
    bins: Binaries,
    dir: PathBuf,
    nodes: Vec<Node>,
    /// Extra environment of every Wardgate process (the checker's self-test switch).
    wardgate_env: Vec<(String, String)>,
}

impl Cluster {
    /// Writes every configuration into `dir`, starts the NATS servers, waits for JetStream,
    /// then starts the Wardgate nodes one at a time (the first creates the streams and buckets).
    pub fn start(
        bins: Binaries,
        dir: &Path,
        nodes: usize,
        wardgate_env: Vec<(String, String)>,
    ) -> Result<Cluster> {
        let mut cluster = Cluster {
            bins,
            dir: dir.to_owned(),
            nodes: (0..nodes).map(|_| Node::default()).collect(),
            wardgate_env,
        };
        for i in 0..nodes {
            cluster.write_configs(i)?;
        }
        for i in 0..nodes {
            cluster.spawn(i, Server::Nats)?;
        }
        for i in 0..nodes {
            cluster.wait_ready(i, Server::Nats)?;
        }
        for i in 0..nodes {
            cluster.spawn(i, Server::Wardgate)?;
            cluster.wait_ready(i, Server::Wardgate)?;
        }
        Ok(cluster)
    }

    /// The MQTT address of node `i`.
    pub fn mqtt_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((node_addr(i), MQTT_PORT))
    }

    /// The MQTT addresses of every node, in order.
    pub fn mqtt_addrs(&self) -> Vec<SocketAddr> {
        (0..self.nodes.len()).map(|i| self.mqtt_addr(i)).collect()
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("node{i}"))
    }

    fn log(&self, i: usize, server: Server) -> PathBuf {
        self.dir.join(format!("{}{i}.log", server.name()))
    }

    fn write_configs(&self, i: usize) -> Result<()> {
        let node = self.node_dir(i);
        let config = node.join("config");
        std::fs::create_dir_all(&config).map_err(|e| Error::io("making a node's folder", e))?;
        write(&config.join("listener.yaml"), &listener_yaml())?;
        write(
            &node.join("nats.conf"),
            &nats_config(i, self.nodes.len(), &node),
        )
    }

    /// Starts `server` of node `i` (it must not run).
    pub fn spawn(&mut self, i: usize, server: Server) -> Result<()> {
        let node = self.node_dir(i);
        let log_path = self.log(i, server);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(format!("opening {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::io("cloning a log file", e))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node_ns(i)]);
        match server {
            Server::Nats => {
                cmd.arg(&self.bins.nats)
                    .arg("-c")
                    .arg(node.join("nats.conf"));
            }
            Server::Wardgate => {
                // Its own NATS server only: the client learns the others from the server's
                // INFO (connect_urls) and fails over to them. (Several URLs would be joined
                // with ',' by `cluster::Node::join`, which async-nats does not split.)
                let url = format!("nats://{}:{NATS_PORT}", node_addr(i));
                cmd.arg(&self.bins.wardgate)
                    .arg("serve")
                    .arg("--config")
                    .arg(node.join("config"))
                    .arg("--data-dir")
                    .arg(node.join("data"))
                    .arg("--bind")
                    .arg(node_addr(i).to_string())
                    .arg("--cluster")
                    .arg(url)
                    .arg("--node-id")
                    .arg(format!("w{i}"))
                    .env("WARDGATE_LOG", "warn");
                for (k, v) in &self.wardgate_env {
                    cmd.env(k, v);
                }
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::io(format!("starting {} {i}", server.name()), e))?;
        *self.slot(i, server) = Some(child);
        Ok(())
    }

    fn slot(&mut self, i: usize, server: Server) -> &mut Option<Child> {
        match server {
            Server::Wardgate => &mut self.nodes[i].wardgate,
            Server::Nats => &mut self.nodes[i].nats,
        }
    }

    /// Kills `server` of node `i` with SIGKILL and reaps it.
    pub fn kill(&mut self, i: usize, server: Server) {
        if let Some(mut child) = self.slot(i, server).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops `server` of node `i` with SIGTERM (a graceful shutdown) and waits for it to exit;
    /// SIGKILL after 20 s.
    pub fn stop(&mut self, i: usize, server: Server) -> Result<()> {
        let Some(mut child) = self.slot(i, server).take() else {
            return Ok(());
        };
        run("kill", &["-TERM", &child.id().to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to `server` of node `i`.
    pub fn signal(&mut self, i: usize, server: Server, signal: &str) -> Result<()> {
        match self.slot(i, server) {
            Some(child) => run("kill", &[signal, &child.id().to_string()]),
            None => Err(Error::Usage(format!(
                "{} {i} is not running",
                server.name()
            ))),
        }
    }

    /// Starts `server` of node `i` again (same folder, store and address) and waits until it
    /// serves.
    pub fn restart(&mut self, i: usize, server: Server) -> Result<()> {
        self.kill(i, server);
        self.spawn(i, server)?;
        self.wait_ready(i, server)
    }

    /// Waits until `server` of node `i` serves: NATS answers `/healthz` with 200 (JetStream
    /// current), Wardgate accepts MQTT connections.
    pub fn wait_ready(&mut self, i: usize, server: Server) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.slot(i, server)
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::NotReady {
                    what: format!("{} {i} (exited: {status})", server.name()),
                    secs: 0,
                    log: self.log(i, server).display().to_string(),
                });
            }
            let ready = match server {
                Server::Nats => nats_healthy(i),
                Server::Wardgate => {
                    TcpStream::connect_timeout(&self.mqtt_addr(i), Duration::from_secs(1)).is_ok()
                }
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    what: format!("{} {i}", server.name()),
                    secs: READY_TIMEOUT.as_secs(),
                    log: self.log(i, server).display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every server of every node serves.
    pub fn wait_all_ready(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_ready(i, Server::Nats)?;
            self.wait_ready(i, Server::Wardgate)?;
        }
        Ok(())
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Kills every process (resuming paused ones first, so they die at once).
    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            for server in [Server::Wardgate, Server::Nats] {
                let _ = self.signal(i, server, "-CONT");
                self.kill(i, server);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// An AIO BrokerListener with one plain MQTT port, LoadBalancer (it listens on `serve --bind`'s
/// address: the node's own), no authentication.
fn listener_yaml() -> String {
    format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\n\
         metadata: {{name: default, namespace: azure-iot-operations}}\n\
         spec:\n  brokerRef: default\n  serviceName: faults\n  serviceType: LoadBalancer\n  \
         ports:\n  - port: {MQTT_PORT}\n    protocol: Mqtt\n"
    )
}

/// NATS server `i` of `nodes`: client, route and monitoring ports on the node's address,
/// JetStream in the node's folder, routes to every server. Pings keep nats-server's defaults
/// (every 2 minutes, 2 missed), as users run it: JetStream's own Raft heartbeats notice a peer
/// across a partition within seconds; a shorter ping made a paused Wardgate lose its NATS
/// connection (and what NATS routed to it meanwhile) within a 4 s pause.
fn nats_config(i: usize, nodes: usize, dir: &Path) -> String {
    let addr = node_addr(i);
    let routes: Vec<String> = (0..nodes)
        .map(|j| format!("nats-route://{}:{NATS_ROUTE_PORT}", node_addr(j)))
        .collect();
    format!(
        "server_name: n{i}\nlisten: {addr}:{NATS_PORT}\nhttp: {addr}:{NATS_MONITOR_PORT}\n\
         jetstream {{\n  store_dir: {store:?}\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n\
         cluster {{\n  name: wardgate-faults\n  listen: {addr}:{NATS_ROUTE_PORT}\n  routes: [{routes}]\n}}\n",
        store = dir.join("jetstream"),
        routes = routes.join(", "),
    )
}

/// Whether NATS server `i` answers `GET /healthz` with 200.
fn nats_healthy(i: usize) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from((node_addr(i), NATS_MONITOR_PORT));
    let timeout = Duration::from_secs(2);
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: nats\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1) == Some("200")
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
