//! A run: the network and the cluster are made once; each planned fault is a round with its own
//! clients and topics — the load starts, the fault is injected at its planned time and healed
//! after its down time, the cluster is waited for, the load goes on a little, stops, drains, and
//! the checker and the report read the round's journal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::checker::check;
use crate::error::{Error, Result};
use crate::fault::{FaultKind, Planned, Timing, plan};
use crate::load::{Load, LoadShape};
use crate::netns::Network;
use crate::procs::{Binaries, Cluster, Server};
use crate::report::{RoundReport, RunReport, round_report};

/// The environment variable that makes a Wardgate node acknowledge QoS 1/2 PUBLISH before
/// JetStream stored them (the checker's self-test; `crates/cluster/src/outbox.rs` reads the same name).
pub const ACK_BEFORE_DURABLE_ENV: &str = "WARDGATE_TEST_ACK_BEFORE_DURABLE";

/// Nodes (each a Wardgate and a NATS server).
pub const NODES: usize = 3;

/// What a run does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The binaries.
    pub bins: Binaries,
    /// Where configurations, stores, logs and the report go.
    pub dir: PathBuf,
    /// The faults, each injected `rounds` times.
    pub kinds: Vec<FaultKind>,
    /// How many times each fault is injected.
    pub rounds: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Each round's load.
    pub shape: LoadShape,
    /// When faults are injected and how long they last.
    pub timing: Timing,
    /// How long the load goes on after the cluster is whole again.
    pub settle: Duration,
    /// How long the subscribers may take to receive what is missing once publishing stopped.
    pub drain: Duration,
    /// The node every fault hits; `None`: drawn from the seed.
    pub fault_node: Option<usize>,
    /// Run the nodes with [`ACK_BEFORE_DURABLE_ENV`].
    pub ack_before_durable: bool,
}

/// How long publishers may take to complete their message in flight once told to stop.
const PUBLISH_GRACE: Duration = Duration::from_secs(30);

/// Runs every planned round; `on_round` sees each round's report as it is made.
pub async fn run(opts: &RunOptions, mut on_round: impl FnMut(&RoundReport)) -> Result<RunReport> {
    let mut planned = plan(&opts.kinds, opts.rounds, NODES, opts.seed, opts.timing);
    if let Some(node) = opts.fault_node {
        if node >= NODES {
            return Err(Error::Usage(format!(
                "--fault-node {node}: the nodes are 0..{NODES}"
            )));
        }
        planned.iter_mut().for_each(|p| p.node = node);
    }
    let network = Network::create(NODES)?;
    let env = if opts.ack_before_durable {
        vec![(ACK_BEFORE_DURABLE_ENV.to_owned(), "1".to_owned())]
    } else {
        Vec::new()
    };
    let mut cluster = Cluster::start(opts.bins.clone(), &opts.dir, NODES, env)?;
    let mut rounds = Vec::with_capacity(planned.len());
    for (round, fault) in planned.into_iter().enumerate() {
        let report = one_round(opts, &network, &mut cluster, round, fault).await?;
        on_round(&report);
        rounds.push(report);
    }
    drop(cluster);
    drop(network);
    Ok(RunReport {
        seed: opts.seed,
        ack_before_durable: opts.ack_before_durable,
        rounds,
    })
}

async fn one_round(
    opts: &RunOptions,
    network: &Network,
    cluster: &mut Cluster,
    round: usize,
    fault: Planned,
) -> Result<RoundReport> {
    let load = Load::start(round, opts.shape, &cluster.mqtt_addrs(), fault.node).await?;
    let journal = load.journal.clone();
    let qos = load.qos.clone();
    tokio::time::sleep(fault.after).await;
    let fault_at = Instant::now();
    inject(network, cluster, fault).await?;
    cluster.wait_all_ready()?;
    tokio::time::sleep(opts.settle).await;
    load.finish(PUBLISH_GRACE, opts.drain).await?;
    let snapshot = journal.snapshot();
    let verdict = check(&snapshot, &qos);
    Ok(round_report(round, fault, verdict, &snapshot, fault_at))
}

/// Injects `fault` and heals it after its down time.
async fn inject(network: &Network, cluster: &mut Cluster, fault: Planned) -> Result<()> {
    let i = fault.node;
    match fault.kind {
        FaultKind::None => {}
        FaultKind::KillNode => {
            cluster.kill(i, Server::Wardgate);
            tokio::time::sleep(fault.down).await;
            cluster.restart(i, Server::Wardgate)?;
        }
        FaultKind::KillNats => {
            cluster.kill(i, Server::Nats);
            tokio::time::sleep(fault.down).await;
            cluster.restart(i, Server::Nats)?;
        }
        FaultKind::PauseNode => {
            cluster.signal(i, Server::Wardgate, "-STOP")?;
            tokio::time::sleep(fault.down).await;
            cluster.signal(i, Server::Wardgate, "-CONT")?;
        }
        FaultKind::Partition => {
            network.partition(i)?;
            tokio::time::sleep(fault.down).await;
            network.heal(i)?;
        }
        FaultKind::PartitionKill => {
            network.partition(i)?;
            tokio::time::sleep(fault.down).await;
            cluster.kill(i, Server::Wardgate);
            network.heal(i)?;
            cluster.restart(i, Server::Wardgate)?;
        }
        FaultKind::RollingRestart => {
            for k in 0..cluster.len() {
                let j = (i + k) % cluster.len();
                cluster.stop(j, Server::Wardgate)?;
                cluster.spawn(j, Server::Wardgate)?;
                cluster.wait_ready(j, Server::Wardgate)?;
            }
        }
    }
    Ok(())
}
