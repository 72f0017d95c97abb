//! The network: one namespace per node (its Wardgate and its NATS server share it and its
//! address), a hub namespace with a bridge they all plug into, and a veth from the root namespace
//! to the hub for the clients. Every name starts with [`PREFIX`]; [`Network::remove_stale`]
//! deletes what a run that died left behind, [`Network::teardown`] what this run made.
//!
//! A partition isolates one node's namespace from the other nodes with an nftables table inside
//! that namespace (dropping every packet to or from the other nodes' addresses): the clients
//! still reach the node, as when a node loses the cluster's network but not its clients'.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The start of every namespace and root-namespace interface name the suite makes.
pub const PREFIX: &str = "wgf-";

/// The namespace holding the bridge.
const HUB: &str = "wgf-hub";
/// The root namespace's end of the clients' veth.
const CLIENT_LINK: &str = "wgf-c";
/// The nftables table a partition adds inside a node's namespace.
const PARTITION_TABLE: &str = "wgf_partition";

/// The address of node `i` (0-based): 10.213.14.(i + 1).
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 213, 14, 1 + i as u8)
}

/// The clients' address in the root namespace.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 213, 14, 254);

/// The namespace of node `i`.
pub fn node_ns(i: usize) -> String {
    format!("{PREFIX}n{i}")
}

/// The namespaces and links of one run.
#[derive(Debug)]
pub struct Network {
    nodes: usize,
}

impl Network {
    /// Removes what an earlier run left (its processes are killed), then makes the hub, one
    /// namespace per node and the clients' link.
    pub fn create(nodes: usize) -> Result<Network> {
        Network::remove_stale()?;
        let network = Network { nodes };
        network.build()?;
        Ok(network)
    }

    fn build(&self) -> Result<()> {
        ip(&["netns", "add", HUB])?;
        ip(&["-n", HUB, "link", "set", "lo", "up"])?;
        ip(&["-n", HUB, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", HUB, "link", "set", "br0", "up"])?;
        for i in 0..self.nodes {
            let ns = node_ns(i);
            let (inner, outer) = (format!("{ns}a"), format!("{ns}b"));
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "netns", HUB])?;
            ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
            let addr = format!("{}/24", node_addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", HUB, "link", "set", &outer, "master", "br0", "up"])?;
        }
        let hub_end = format!("{CLIENT_LINK}b");
        ip(&[
            "link",
            "add",
            CLIENT_LINK,
            "type",
            "veth",
            "peer",
            "name",
            &hub_end,
        ])?;
        ip(&["link", "set", &hub_end, "netns", HUB])?;
        ip(&["-n", HUB, "link", "set", &hub_end, "master", "br0", "up"])?;
        let addr = format!("{CLIENT_ADDR}/24");
        ip(&["addr", "add", &addr, "dev", CLIENT_LINK])?;
        ip(&["link", "set", CLIENT_LINK, "up"])?;
        Ok(())
    }

    /// Cuts node `i` off from the other nodes (not from the clients).
    pub fn partition(&self, i: usize) -> Result<()> {
        let others: Vec<String> = (0..self.nodes)
            .filter(|&j| j != i)
            .map(|j| node_addr(j).to_string())
            .collect();
        let others = others.join(", ");
        let rules = format!(
            "table inet {PARTITION_TABLE} {{\n\
             chain input {{ type filter hook input priority -10; ip saddr {{ {others} }} drop; }}\n\
             chain output {{ type filter hook output priority -10; ip daddr {{ {others} }} drop; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!("{PREFIX}partition-{i}.nft"));
        std::fs::write(&path, rules).map_err(|e| Error::io("writing the nft rules", e))?;
        let path = path.to_string_lossy().into_owned();
        run("ip", &["netns", "exec", &node_ns(i), "nft", "-f", &path])
    }

    /// Heals a partition of node `i`.
    pub fn heal(&self, i: usize) -> Result<()> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &node_ns(i),
                "nft",
                "delete",
                "table",
                "inet",
                PARTITION_TABLE,
            ],
        )
    }

    /// Kills what still runs in the run's namespaces and deletes them and the clients' link.
    pub fn teardown(&self) {
        let _ = Network::remove_stale();
    }

    /// Deletes every namespace named [`PREFIX`]… (killing its processes first) and the
    /// clients' link, if any.
    pub fn remove_stale() -> Result<()> {
        let listed = output("ip", &["netns", "list"])?;
        for ns in listed
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| name.starts_with(PREFIX))
        {
            if let Ok(pids) = output("ip", &["netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run("kill", &["-9", pid]);
                }
            }
            run("ip", &["netns", "del", ns])?;
        }
        if output("ip", &["link", "show", CLIENT_LINK]).is_ok() {
            ip(&["link", "del", CLIENT_LINK])?;
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

/// Runs `program args` and fails with its error output when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    output(program, args).map(drop)
}

/// Runs `program args` and returns its standard output.
fn output(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            why: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command,
            why: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
