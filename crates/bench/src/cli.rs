//! The command line: `run` drives one broker that is already running, `compare` starts Wardgate,
//! Mosquitto and rumqttd in turn on the same cases (`--quick` is the smoke subset), `chart` draws
//! the results as PNG charts.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wardgate_protocol::{ProtocolVersion, QoS};

use crate::error::{Error, Result};
use crate::load::{LoadOptions, Target};
use crate::peers::{Binaries, Kind};
use crate::report::{Machine, Report, RunResult, header, line};
use crate::scenario::{Case, Matrix, ReadMode, Shape};
use crate::{chart, conns, load, peers, procfs};

/// Load generator for MQTT brokers, and a side-by-side comparison of Wardgate with Mosquitto and
/// rumqttd.
#[derive(Debug, Parser)]
#[command(name = "wardgate-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a broker that is already running at HOST:PORT.
    Run(RunArgs),
    /// Start each broker in turn (fresh for every case) and compare them.
    Compare(CompareArgs),
    /// Draw PNG charts (throughput, latency, memory per connection) from a comparison's results.
    Chart(ChartArgs),
}

#[derive(Debug, Args)]
struct ChartArgs {
    /// The results of a run (`compare --out DIR` writes `DIR/results.json`).
    #[arg(long, default_value = "target/bench/results.json")]
    results: PathBuf,
    /// Where the PNG files go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port (MQTT 3.1.1, and 5 unless --port-v5).
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// A separate MQTT 5 port (rumqttd has one).
    #[arg(long)]
    port_v5: Option<u16>,
    /// The broker's pid, for CPU and memory; found from the listening port if omitted.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// The name the report gives the broker.
    #[arg(long, default_value = "broker")]
    name: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Brokers to compare: wardgate, mosquitto, rumqttd, wardgate-baseline, wardgate-cluster
    /// (3 nodes on 3 NATS servers), nats-mqtt (nats-server's MQTT on 3 servers); the clusters
    /// take publishers on one node and subscribers on another (Mosquitto runs first in each
    /// case: the latency rate comes from it).
    /// `--quick` defaults to wardgate alone.
    #[arg(long, value_delimiter = ',')]
    brokers: Option<Vec<String>>,
    /// The Wardgate binary (a release build).
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// The Mosquitto binary.
    #[arg(long, default_value = "mosquitto")]
    mosquitto_bin: PathBuf,
    /// The rumqttd binary.
    #[arg(long, default_value = "rumqttd")]
    rumqttd_bin: PathBuf,
    /// Another Wardgate build, run as the broker `wardgate-baseline` beside `wardgate`: the
    /// before and after of a change in one run (e.g. `--brokers wardgate,wardgate-baseline`).
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// The nats-server binary (with JetStream and MQTT) of the brokers wardgate-cluster and
    /// nats-mqtt.
    #[arg(long, default_value = ".venv/bin/nats-server")]
    nats_bin: PathBuf,
    /// First loopback port of the brokers (each broker gets its own).
    #[arg(long, default_value_t = 21883)]
    port: u16,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReadArg {
    Asap,
    Coalesce,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Scenarios (conn, tls-conn, mtls-conn, p2p-100, p2p-1000, fanout-1, fanout-5, fanin-wild,
    /// fanin-share, latency).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// QoS levels.
    #[arg(long, value_delimiter = ',', default_values_t = [0u8, 1, 2])]
    qos: Vec<u8>,
    /// Payload sizes in bytes (at least 16). Giving --payload, --mqtt or --read runs exactly the
    /// product of the lists; otherwise the standard selection adds coalescing and 1 KiB at
    /// QoS 0/1 and MQTT 5 at QoS 1/2 to the 16 B, 3.1.1, read-at-once base.
    #[arg(long, value_delimiter = ',')]
    payload: Option<Vec<usize>>,
    /// MQTT versions: 3 (3.1.1) and/or 5.
    #[arg(long, value_delimiter = ',')]
    mqtt: Option<Vec<u8>>,
    /// Subscriber read modes.
    #[arg(long, value_delimiter = ',', value_enum)]
    read: Option<Vec<ReadArg>>,
    /// Every combination: QoS 0-2 × 16 B and 1 KiB × 3.1.1 and 5 × asap and coalesce.
    #[arg(long)]
    full: bool,
    /// Smoke test: a small subset in well under a minute; exits 1 if anything is lost.
    #[arg(long)]
    quick: bool,
    /// Idle connections of the `conn` scenario (capped by the open-file limits).
    #[arg(long, default_value_t = 20_000)]
    connections: usize,
    /// Connections of the TLS scenarios (each a full ECDSA P-256 handshake).
    #[arg(long, default_value_t = 2_000)]
    tls_connections: usize,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured per case.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Unacknowledged QoS 1/2 messages per publisher.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// Longest wait for acknowledgements and deliveries after the window, seconds.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Total rate of the latency scenario (msg/s). Without it: half of Mosquitto's maximum in
    /// the same p2p case of this run, else half of this broker's own (the p2p case runs first).
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Rounds of each latency case (the brokers take turns in each round): each broker's
    /// reported run is its round with the median p99, as one 2 s window on a shared 2-core
    /// machine can be 2x off either way. Losses count over all rounds.
    #[arg(long, default_value_t = 5)]
    latency_rounds: usize,
    /// Load generator threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Write results.json and results.md here.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl CommonArgs {
    fn cases(&self) -> Result<Vec<Case>> {
        if self.quick {
            return Ok(quick_cases());
        }
        let names = self
            .scenarios
            .clone()
            .unwrap_or_else(|| Shape::NAMES.iter().map(|s| s.to_string()).collect());
        for n in &names {
            if Shape::from_name(n, 0, 0).is_none() {
                return Err(Error::Usage(format!(
                    "unknown scenario {n}; known: {}",
                    Shape::NAMES.join(", ")
                )));
            }
        }
        if self.qos.iter().any(|&q| q > 2) {
            return Err(Error::Usage("QoS is 0, 1 or 2".into()));
        }
        if self.payload.iter().flatten().any(|&p| p < 16) {
            return Err(Error::Usage("payloads are at least 16 bytes".into()));
        }
        let explicit = self.payload.is_some() || self.mqtt.is_some() || self.read.is_some();
        let matrix = Matrix {
            scenarios: names,
            qos: self.qos.clone(),
            payloads: self.payload.clone().unwrap_or(if self.full {
                vec![16, 1024]
            } else {
                vec![16]
            }),
            versions: self
                .mqtt
                .clone()
                .unwrap_or(if self.full { vec![3, 5] } else { vec![3] }),
            reads: self
                .read
                .clone()
                .map(|r| {
                    r.into_iter()
                        .map(|m| match m {
                            ReadArg::Asap => ReadMode::Asap,
                            ReadArg::Coalesce => ReadMode::Coalesce,
                        })
                        .collect()
                })
                .unwrap_or(if self.full {
                    vec![ReadMode::Asap, ReadMode::Coalesce]
                } else {
                    vec![ReadMode::Asap]
                }),
            product_only: explicit || self.full,
            connections: self.connections,
            tls_connections: self.tls_connections,
        };
        Ok(match self.latency_rate {
            Some(_) => matrix.cases(),
            None => with_latency_baselines(matrix.cases()),
        })
    }

    fn load_options(&self, nonce: String) -> LoadOptions {
        let (warmup, duration) = if self.quick {
            (0.3, 1.0)
        } else {
            (self.warmup, self.duration)
        };
        LoadOptions {
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            inflight: self.inflight,
            rate: None,
            drain: Duration::from_secs_f64(self.drain),
            connect_timeout: Duration::from_secs(10),
            nonce,
        }
    }
}

/// The smoke subset: every QoS point to point, shared and wildcard fan-in, fan-out at QoS 2 and
/// MQTT 5, a thousand connections and a short latency run.
fn quick_cases() -> Vec<Case> {
    let base = Case {
        shape: Shape::P2p { pairs: 20 },
        qos: QoS::AtMostOnce,
        payload: 16,
        version: ProtocolVersion::V311,
        read: ReadMode::Asap,
    };
    vec![
        Case {
            shape: Shape::Connections { count: 1000 },
            ..base
        },
        base,
        Case {
            qos: QoS::AtLeastOnce,
            ..base
        },
        Case {
            qos: QoS::ExactlyOnce,
            version: ProtocolVersion::V5,
            ..base
        },
        Case {
            shape: Shape::FanOut {
                publishers: 2,
                subscribers: 50,
            },
            qos: QoS::ExactlyOnce,
            payload: 1024,
            read: ReadMode::Coalesce,
            ..base
        },
        Case {
            shape: Shape::FanIn { publishers: 100 },
            qos: QoS::AtLeastOnce,
            ..base
        },
        Case {
            shape: Shape::FanInShared {
                publishers: 100,
                members: 5,
            },
            qos: QoS::AtLeastOnce,
            version: ProtocolVersion::V5,
            ..base
        },
        Case {
            shape: Shape::Latency { pairs: 20 },
            qos: QoS::AtLeastOnce,
            ..base
        },
    ]
}

/// The latency rate is half the maximum of the same p2p case: make sure that case runs first.
fn with_latency_baselines(cases: Vec<Case>) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for case in cases {
        if let Shape::Latency { pairs } = case.shape {
            let baseline = Case {
                shape: Shape::P2p { pairs },
                ..case
            };
            if !out.iter().any(|c| c.id() == baseline.id()) {
                out.push(baseline);
            }
        }
        out.push(case);
    }
    out
}

/// The throughput case whose maximum sets a latency case's rate.
fn baseline_id(case: &Case) -> Option<String> {
    match case.shape {
        Shape::Latency { pairs } => Some(
            Case {
                shape: Shape::P2p { pairs },
                ..*case
            }
            .id(),
        ),
        _ => None,
    }
}

/// The rate of a latency case: half of Mosquitto's maximum in the same p2p case, else half of
/// this broker's own, else (that case failed) 20,000 msg/s.
fn latency_rate(case: &Case, results: &[RunResult], broker: &str) -> f64 {
    const FALLBACK: f64 = 20_000.0;
    let Some(id) = baseline_id(case) else {
        return FALLBACK;
    };
    let max_of = |b: &str| {
        results
            .iter()
            .find(|r| r.broker == b && r.id == id && r.error.is_none())
            .and_then(|r| r.published_per_s)
            .filter(|&r| r > 0.0)
    };
    max_of("mosquitto")
        .or_else(|| max_of(broker))
        .map_or(FALLBACK, |r| r / 2.0)
}

/// Raises this process's open-file limit to the hard limit and returns it.
fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// Connections the `conn` case can open: both processes need a descriptor per connection.
fn connection_budget(requested: usize, tool_limit: u64, broker_pid: Option<u32>) -> usize {
    let broker_limit = broker_pid
        .and_then(procfs::open_files_limit)
        .unwrap_or(u64::MAX);
    let cap = tool_limit.min(broker_limit).saturating_sub(200) as usize;
    if requested > cap {
        eprintln!(
            "note: {requested} connections asked for, {cap} possible (open-file limits: tool {tool_limit}, broker {broker_limit}); running {cap}"
        );
    }
    requested.min(cap)
}

async fn run_case(
    broker: &str,
    case: &Case,
    target: &Target,
    common: &CommonArgs,
    results: &[RunResult],
    nonce: String,
    tool_nofile: u64,
) -> RunResult {
    match case.shape {
        Shape::Connections { count } => {
            let n = connection_budget(count, tool_nofile, target.main_pid());
            let opts = common.load_options(nonce.clone());
            let transport = conns::Transport::Plain;
            match conns::run(
                n,
                case.version,
                target,
                transport,
                &nonce,
                opts.connect_timeout,
            )
            .await
            {
                Ok(o) => RunResult::from_conns(broker, case, &o),
                Err(e) => RunResult::failed(broker, case, e.to_string()),
            }
        }
        Shape::TlsConnections { count, client_cert } => {
            let Some(tls) = &target.tls else {
                return RunResult::skipped(
                    broker,
                    case,
                    "no TLS listener (rumqttd: not set up by the tool)".into(),
                );
            };
            let n = connection_budget(count, tool_nofile, target.main_pid());
            let opts = common.load_options(nonce.clone());
            let config = match tls.pki.client_config(client_cert) {
                Ok(c) => c,
                Err(e) => return RunResult::failed(broker, case, e.to_string()),
            };
            let addr = if client_cert {
                tls.mutual
            } else {
                tls.server_auth
            };
            let transport = conns::Transport::Tls(addr, config);
            match conns::run(
                n,
                case.version,
                target,
                transport,
                &nonce,
                opts.connect_timeout,
            )
            .await
            {
                Ok(o) => RunResult::from_conns(broker, case, &o),
                Err(e) => RunResult::failed(broker, case, e.to_string()),
            }
        }
        _ => {
            let mut opts = common.load_options(nonce);
            let rate = matches!(case.shape, Shape::Latency { .. }).then(|| {
                common
                    .latency_rate
                    .unwrap_or_else(|| latency_rate(case, results, broker))
            });
            opts.rate = rate;
            match load::run(case, target, &opts).await {
                Ok(o) => RunResult::from_load(broker, case, rate, &o),
                Err(e) => RunResult::failed(broker, case, e.to_string()),
            }
        }
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn finish(report: &Report, out: Option<&PathBuf>, quick: bool) -> Result<bool> {
    println!();
    println!("{}", report.results_table());
    if report.brokers.len() > 1 {
        println!("{}", report.comparison());
    }
    if let Some(dir) = out {
        report.write(dir)?;
        println!("wrote {}/results.json and results.md", dir.display());
    }
    let violations: Vec<String> = report.runs.iter().flat_map(RunResult::violations).collect();
    for v in &violations {
        eprintln!("VIOLATION: {v}");
    }
    // The smoke run fails on any violation; a full run reports them and still writes everything.
    Ok(!quick || violations.is_empty())
}

fn run_one(args: RunArgs) -> Result<bool> {
    let tool_nofile = raise_nofile();
    let cases = args.common.cases()?;
    let resolve = |port: u16| -> Result<SocketAddr> {
        (args.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| Error::io(format!("resolve {}", args.host), e))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| Error::Usage(format!("{} has no IPv4 address", args.host)))
    };
    let v3 = resolve(args.port)?;
    let v5 = resolve(args.port_v5.unwrap_or(args.port))?;
    let pid = args.broker_pid.or_else(|| procfs::find_listener(args.port));
    if pid.is_none() {
        eprintln!("note: broker process not found; CPU and memory will not be reported");
    }
    let target = Target {
        v3,
        v5,
        publishers_at: None,
        pids: pid.into_iter().collect(),
        tls: None,
    };
    let rt = runtime(args.common.threads)?;
    let mut results = Vec::new();
    println!("{}", header());
    for (i, case) in cases.iter().enumerate() {
        let mut rounds = Vec::new();
        for round in 0..rounds_of(case, &args.common) {
            let nonce = format!("wb{}x{i}r{round}", std::process::id());
            let r = rt.block_on(run_case(
                &args.name,
                case,
                &target,
                &args.common,
                &results,
                nonce,
                tool_nofile,
            ));
            println!("{}", line(&r));
            rounds.push(r);
            std::thread::sleep(Duration::from_millis(300));
        }
        results.extend(median_round(rounds));
    }
    let report = Report {
        machine: Machine::probe(),
        command: command_line(),
        brokers: vec![(args.name.clone(), format!("{v3}"))],
        runs: results,
    };
    finish(&report, args.common.out.as_ref(), args.common.quick)
}

fn compare(args: CompareArgs) -> Result<bool> {
    let tool_nofile = raise_nofile();
    let cases = args.common.cases()?;
    let names = args.brokers.clone().unwrap_or_else(|| {
        if args.common.quick {
            vec!["wardgate".into()]
        } else {
            vec!["wardgate".into(), "mosquitto".into(), "rumqttd".into()]
        }
    });
    let mut kinds = Vec::new();
    for n in &names {
        kinds.push(Kind::from_name(n).ok_or_else(|| {
            Error::Usage(format!(
                "unknown broker {n}; known: wardgate, mosquitto, rumqttd, wardgate-baseline, \
                 wardgate-cluster, nats-mqtt"
            ))
        })?);
    }
    if kinds.contains(&Kind::Baseline) != args.baseline_bin.is_some() {
        return Err(Error::Usage(
            "--baseline-bin and the broker wardgate-baseline go together".into(),
        ));
    }
    // Mosquitto first in every case: the latency cases take their rate from its maximum.
    kinds.sort_by_key(|k| *k != Kind::Mosquitto);
    let bins = Binaries {
        wardgate: args.wardgate_bin.clone(),
        mosquitto: args.mosquitto_bin.clone(),
        rumqttd: args.rumqttd_bin.clone(),
        baseline: args.baseline_bin.clone(),
        nats: args.nats_bin.clone(),
    };
    let rt = runtime(args.common.threads)?;
    let bench = Bench {
        rt: &rt,
        bins: &bins,
        common: &args.common,
        tool_nofile,
    };
    let mut results: Vec<RunResult> = Vec::new();
    println!("{}", header());
    for (i, case) in cases.iter().enumerate() {
        let rounds = rounds_of(case, &args.common);
        let mut by_kind: Vec<Vec<RunResult>> = vec![Vec::new(); kinds.len()];
        for round in 0..rounds {
            for (k, kind) in kinds.iter().enumerate() {
                let port = args.port + 4 * k as u16;
                let nonce = format!("wb{}x{i}r{round}", std::process::id());
                let r = bench.run(*kind, port, case, &results, nonce);
                println!("{}", line(&r));
                by_kind[k].push(r);
            }
        }
        results.extend(by_kind.into_iter().filter_map(median_round));
    }
    let report = Report {
        machine: Machine::probe(),
        command: command_line(),
        brokers: kinds
            .iter()
            .map(|k| (k.name().to_owned(), bins.describe(*k)))
            .collect(),
        runs: results,
    };
    finish(&report, args.common.out.as_ref(), args.common.quick)
}

/// How many rounds `case` runs: latency cases [`CommonArgs::latency_rounds`], others one.
fn rounds_of(case: &Case, common: &CommonArgs) -> usize {
    match case.shape {
        Shape::Latency { .. } if !common.quick => common.latency_rounds.max(1),
        _ => 1,
    }
}

/// One broker's record of a case run in several rounds: the round with the median p99, with
/// every round's p99 beside it, and the losses and duplicates of all rounds.
fn median_round(mut rounds: Vec<RunResult>) -> Option<RunResult> {
    if rounds.len() <= 1 {
        return rounds.pop();
    }
    let p99 = |r: &RunResult| r.latency.map(|l| l.p99_us);
    let all: Vec<f64> = rounds.iter().filter_map(p99).map(|us| us / 1e3).collect();
    let (lost, duplicated) = rounds
        .iter()
        .fold((0, 0), |(l, d), r| (l + r.lost, d + r.duplicated));
    let failed = rounds.iter().position(|r| r.error.is_some());
    let mut chosen = match failed {
        Some(i) => rounds.swap_remove(i),
        None => {
            rounds.sort_by(|a, b| {
                p99(a)
                    .partial_cmp(&p99(b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            let mid = rounds.len() / 2;
            rounds.swap_remove(mid)
        }
    };
    chosen.lost = lost;
    chosen.duplicated = duplicated;
    chosen.round_p99_ms = all;
    Some(chosen)
}

/// What every run of a comparison shares.
struct Bench<'a> {
    rt: &'a tokio::runtime::Runtime,
    bins: &'a Binaries,
    common: &'a CommonArgs,
    tool_nofile: u64,
}

impl Bench<'_> {
    /// Starts `kind` fresh on `port` and runs `case` on it.
    fn run(
        &self,
        kind: Kind,
        port: u16,
        case: &Case,
        results: &[RunResult],
        nonce: String,
    ) -> RunResult {
        if kind == Kind::NatsMqtt && case.version.is_v5() {
            let why = "nats-server's MQTT listener speaks MQTT 3.1.1 only".into();
            return RunResult::skipped(kind.name(), case, why);
        }
        let mut broker = match peers::start(kind, self.bins, port) {
            Err(e) => return RunResult::failed(kind.name(), case, e.to_string()),
            Ok(broker) => broker,
        };
        let mut r = self.rt.block_on(run_case(
            kind.name(),
            case,
            &broker.target,
            self.common,
            results,
            nonce,
            self.tool_nofile,
        ));
        if !broker.alive() && r.error.is_none() {
            r.error = Some(format!("the broker exited:\n{}", broker.log()));
        } else if let Some(e) = &mut r.error {
            let log = broker.log();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            if !tail.is_empty() {
                e.push_str(" (broker log: ");
                e.push_str(&tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
                e.push(')');
            }
        }
        r
    }
}

/// Parses the command line and runs it; `Ok(false)` means the run found losses (quick mode).
pub fn main() -> Result<bool> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run_one(args),
        Command::Compare(args) => compare(args),
        Command::Chart(args) => chart(args),
    }
}

/// Draws the charts of a results file and names the files written.
fn chart(args: ChartArgs) -> Result<bool> {
    let results = std::fs::read_to_string(&args.results)
        .map_err(|e| Error::io(format!("read {}", args.results.display()), e))?;
    for path in chart::write(&results, &args.out)? {
        println!("{}", path.display());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Percentiles;

    fn round(p99_ms: f64, lost: u64) -> RunResult {
        let case = quick_cases()
            .into_iter()
            .find(|c| matches!(c.shape, Shape::Latency { .. }))
            .expect("the smoke run has a latency case");
        let mut r = RunResult::failed("wardgate", &case, String::new());
        r.error = None;
        r.lost = lost;
        r.latency = Some(Percentiles {
            p50_us: p99_ms * 100.0,
            p99_us: p99_ms * 1e3,
            p999_us: p99_ms * 2e3,
            max_us: p99_ms * 3e3,
            samples: 1000,
        });
        r
    }

    #[test]
    fn a_case_in_rounds_reports_the_median_round_and_every_loss() {
        let rounds = vec![
            round(2.8, 0),
            round(1.0, 1),
            round(2.3, 0),
            round(1.2, 0),
            round(1.4, 2),
        ];
        let r = median_round(rounds).expect("a record");
        assert_eq!(r.latency.map(|l| l.p99_us), Some(1.4e3));
        assert_eq!(r.lost, 3, "losses of every round count");
        assert_eq!(r.round_p99_ms, vec![2.8, 1.0, 2.3, 1.2, 1.4]);
        // A failed round is what is reported, not hidden behind a good median.
        let mut failed = round(1.0, 0);
        failed.error = Some("broker exited".into());
        let r = median_round(vec![round(2.0, 0), failed, round(3.0, 0)]).expect("a record");
        assert_eq!(r.error.as_deref(), Some("broker exited"));
        // One round is reported as it is.
        let r = median_round(vec![round(2.0, 0)]).expect("a record");
        assert!(r.round_p99_ms.is_empty());
    }
}
