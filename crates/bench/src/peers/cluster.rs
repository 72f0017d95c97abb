//! The cluster brokers `compare` starts: three NATS servers with JetStream, routed to each other
//! on loopback, and on them either three Wardgate nodes (`wardgate-cluster`, each node on its own
//! NATS server) or nats-server's own MQTT listener on each server (`nats-mqtt`). Publishers
//! connect to the first node, subscribers to the second: every message crosses nodes. All ports
//! are free ones picked at start; every process is killed when the [`Running`] guard drops.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{Binaries, Kind, Running, wardgate_config};
use crate::error::{Error, Result};
use crate::load::Target;

/// Servers (and Wardgate nodes) of a cluster.
pub const NODES: usize = 3;
/// The node publishers connect to.
const PUBLISHERS_NODE: usize = 0;
/// The node subscribers connect to.
const SUBSCRIBERS_NODE: usize = 1;
/// How long the NATS cluster may take to elect a JetStream meta leader.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ports of one NATS server.
#[derive(Debug, Clone, Copy)]
struct NatsPorts {
    client: u16,
    route: u16,
    monitor: u16,
    /// The MQTT listener, for `nats-mqtt`.
    mqtt: Option<u16>,
}

/// Starts `kind` (`wardgate-cluster` or `nats-mqtt`) in `dir` and waits until every node
/// accepts MQTT connections.
pub fn start(kind: Kind, bins: &Binaries, dir: tempfile::TempDir) -> Result<Running> {
    let with_mqtt = kind == Kind::NatsMqtt;
    // Every port is held until all are picked: the kernel never hands out one twice.
    let mut ports = Ports::default();
    let mut servers = Vec::with_capacity(NODES);
    for _ in 0..NODES {
        servers.push(NatsPorts {
            client: ports.pick()?,
            route: ports.pick()?,
            monitor: ports.pick()?,
            mqtt: if with_mqtt { Some(ports.pick()?) } else { None },
        });
    }
    let mqtt_ports: Vec<u16> = if with_mqtt {
        servers.iter().filter_map(|s| s.mqtt).collect()
    } else {
        (0..NODES)
            .map(|_| ports.pick_in_row(3))
            .collect::<Result<Vec<u16>>>()?
    };
    drop(ports);
    let addr = |i: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, mqtt_ports[i]));
    let target = Target {
        v3: addr(SUBSCRIBERS_NODE),
        v5: addr(SUBSCRIBERS_NODE),
        publishers_at: Some(addr(PUBLISHERS_NODE)),
        pids: Vec::new(),
        tls: None,
    };
    let mut running = Running::new(kind, target, dir);
    // The subscribers' server first: its pid is the target's main one (nats-mqtt).
    let order = [SUBSCRIBERS_NODE, PUBLISHERS_NODE, 2];
    for i in order {
        let config = running.dir().join(format!("nats{i}.conf"));
        let store = running.dir().join(format!("nats{i}"));
        write(&config, &nats_config(i, &servers, &store))?;
        let mut cmd = Command::new(&bins.nats);
        cmd.arg("-c").arg(&config);
        running.spawn(cmd)?;
    }
    wait_jetstream(&mut running, &servers)?;
    if kind == Kind::WardgateCluster {
        for i in order {
            let node = running.dir().join(format!("node{i}"));
            std::fs::create_dir_all(&node).map_err(|e| Error::io("node dir", e))?;
            let (config, _) = wardgate_config(&node, mqtt_ports[i])?;
            let mut cmd = Command::new(&bins.wardgate);
            cmd.arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(node.join("data"))
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", servers[i].client))
                .arg("--node-id")
                .arg(format!("w{i}"))
                .env("WARDGATE_LOG", "warn");
            let pid = running.spawn(cmd)?;
            if i == SUBSCRIBERS_NODE {
                // The subscribers' node is the target's main process.
                running.target.pids.retain(|p| *p != pid);
                running.target.pids.insert(0, pid);
            }
            // One node at a time: the first creates the cluster's streams and buckets, and
            // nodes racing to create them time out.
            running.wait_listening(&[addr(i)])?;
        }
    }
    let addrs: Vec<SocketAddr> = (0..NODES).map(addr).collect();
    running.wait_listening(&addrs)?;
    Ok(running)
}

/// The configuration of NATS server `i` of `servers`: client, monitoring and route ports on
/// loopback, JetStream with its store in `store`, routes to every server, and an MQTT listener
/// when the server has an MQTT port.
fn nats_config(i: usize, servers: &[NatsPorts], store: &Path) -> String {
    let s = servers[i];
    let routes: Vec<String> = servers
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{}", p.route))
        .collect();
    let mut config = format!(
        "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
         jetstream {{\n  store_dir: {store:?}\n  max_memory_store: 256MB\n  \
         max_file_store: 4GB\n}}\n\
         cluster {{\n  name: wardgate-bench\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n",
        client = s.client,
        monitor = s.monitor,
        route = s.route,
        routes = routes.join(", "),
    );
    if let Some(mqtt) = s.mqtt {
        config.push_str(&format!("mqtt {{\n  listen: 127.0.0.1:{mqtt}\n}}\n"));
    }
    config
}

/// Waits until every server answers `/healthz` with 200: JetStream is enabled and current, so
/// the cluster has a meta leader.
fn wait_jetstream(running: &mut Running, servers: &[NatsPorts]) -> Result<()> {
    running.wait_until(READY_TIMEOUT, "healthy (JetStream meta leader)", || {
        servers.iter().all(|s| healthz(s.monitor) == Some(200))
    })
}

/// The status code of `GET /healthz` on the monitoring port; `None` when it does not answer.
fn healthz(port: u16) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Ports picked for one cluster, each held (bound) until the picker is dropped, so no two picks
/// are the same port.
#[derive(Default)]
struct Ports(Vec<TcpListener>);

impl Ports {
    /// A port nothing listens on now (the kernel's pick for 127.0.0.1:0).
    fn pick(&mut self) -> Result<u16> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("picking a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("picking a free port", e))?
            .port();
        self.0.push(listener);
        Ok(port)
    }

    /// The first of `n` consecutive free ports (Wardgate's plain and two TLS listeners).
    fn pick_in_row(&mut self, n: u16) -> Result<u16> {
        for _ in 0..100 {
            let first = self.pick()?;
            let rest: Option<Vec<TcpListener>> = (1..n)
                .map(|k| {
                    let port = first.checked_add(k)?;
                    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()
                })
                .collect();
            if let Some(rest) = rest {
                self.0.extend(rest);
                return Ok(first);
            }
        }
        Err(Error::io(
            "picking free ports",
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("no {n} free in a row"),
            ),
        ))
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}
