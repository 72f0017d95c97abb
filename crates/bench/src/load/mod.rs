//! Running one message scenario: connect the subscribers and publishers, publish for a warm-up
//! and a measured window, drain, and count end to end (rates, CPU, latency, losses, duplicates).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wardgate_protocol::{ProtocolVersion, QoS};

use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::procfs;
use crate::scenario::{Case, Shape};
use crate::seq::SeqSet;
use crate::tls::Pki;
use crate::wire::{Client, PublishTemplate, instant_at, now_ns};

mod publisher;
mod schedule;
mod subscriber;

use self::publisher::{PubJob, publisher};
use self::schedule::Schedule;
use self::subscriber::subscriber;

/// A broker's TLS listeners and the PKI their certificates come from.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// The listener with server authentication only.
    pub server_auth: SocketAddr,
    /// The listener that requires a client certificate.
    pub mutual: SocketAddr,
    /// The CA and the client certificate.
    pub pki: Arc<Pki>,
}

/// Where the broker is and how to watch it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The MQTT 3.1.1 port (of the subscribers' node, in a cluster).
    pub v3: SocketAddr,
    /// The MQTT 5 port (the same as `v3` for most brokers).
    pub v5: SocketAddr,
    /// In a cluster, the MQTT port of the node the publishers connect to (another node than the
    /// subscribers'); `None` for one broker, where everyone connects to `v3`/`v5`.
    pub publishers_at: Option<SocketAddr>,
    /// The broker's processes (every node and NATS server of a cluster), for CPU and memory;
    /// empty when unknown.
    pub pids: Vec<u32>,
    /// Its TLS listeners, when it has them.
    pub tls: Option<TlsTarget>,
}

impl Target {
    /// The address for clients of `version`.
    pub fn addr(&self, version: ProtocolVersion) -> SocketAddr {
        if version.is_v5() { self.v5 } else { self.v3 }
    }

    /// The address publishers of `version` connect to.
    pub fn publisher_addr(&self, version: ProtocolVersion) -> SocketAddr {
        self.publishers_at.unwrap_or_else(|| self.addr(version))
    }

    /// CPU seconds of all the broker's processes; `None` when unknown or one is gone.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.sum(procfs::cpu_seconds)
    }

    /// `VmRSS` and `VmHWM` (peak) summed over the broker's processes, in bytes.
    pub fn memory(&self) -> Option<(u64, u64)> {
        let rss = self.sum(|pid| procfs::memory(pid).map(|(rss, _)| rss))?;
        let peak = self.sum(|pid| procfs::memory(pid).map(|(_, hwm)| hwm))?;
        Some((rss, peak))
    }

    /// Resets every process's peak RSS to its current RSS.
    pub fn reset_peaks(&self) {
        for pid in &self.pids {
            procfs::reset_peak(*pid);
        }
    }

    /// The main process (the subscribers' node in a cluster), for per-process limits.
    pub fn main_pid(&self) -> Option<u32> {
        self.pids.first().copied()
    }

    fn sum<T: std::iter::Sum<T>>(&self, of: impl Fn(u32) -> Option<T>) -> Option<T> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|pid| of(*pid)).sum()
    }
}

/// Knobs of a message run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Publishing before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Unacknowledged QoS 1/2 PUBLISH per publisher (capped by the server's Receive Maximum).
    pub inflight: u16,
    /// Total publish rate over all publishers; `None` publishes as fast as the broker takes.
    pub rate: Option<f64>,
    /// How long publishers wait for outstanding acknowledgements, and subscribers for the last
    /// deliveries, after the window.
    pub drain: Duration,
    /// Timeout of each CONNECT and SUBSCRIBE.
    pub connect_timeout: Duration,
    /// A prefix making client ids and topics unique to this run.
    pub nonce: String,
}

/// Which receiver groups must get each message of a publisher.
#[derive(Debug, Clone, Copy)]
enum Expect {
    One(usize),
    All,
}

struct SubSpec {
    client_id: String,
    filter: String,
    group: usize,
}

struct PubSpec {
    client_id: String,
    topic: String,
    expect: Expect,
}

struct Topology {
    subscribers: Vec<SubSpec>,
    publishers: Vec<PubSpec>,
    groups: usize,
}

fn topology(shape: Shape, nonce: &str) -> Topology {
    let sub = |i: usize, filter: String, group: usize| SubSpec {
        client_id: format!("{nonce}-s{i}"),
        filter,
        group,
    };
    let publ = |i: usize, topic: String, expect: Expect| PubSpec {
        client_id: format!("{nonce}-p{i}"),
        topic,
        expect,
    };
    match shape {
        Shape::P2p { pairs } | Shape::Latency { pairs } => Topology {
            subscribers: (0..pairs)
                .map(|i| sub(i, format!("{nonce}/p2p/{i}"), i))
                .collect(),
            publishers: (0..pairs)
                .map(|i| publ(i, format!("{nonce}/p2p/{i}"), Expect::One(i)))
                .collect(),
            groups: pairs,
        },
        Shape::FanOut {
            publishers,
            subscribers,
        } => Topology {
            subscribers: (0..subscribers)
                .map(|i| sub(i, format!("{nonce}/fo"), i))
                .collect(),
            publishers: (0..publishers)
                .map(|i| publ(i, format!("{nonce}/fo"), Expect::All))
                .collect(),
            groups: subscribers,
        },
        Shape::FanIn { publishers } => Topology {
            subscribers: vec![sub(0, format!("{nonce}/fi/+"), 0)],
            publishers: (0..publishers)
                .map(|i| publ(i, format!("{nonce}/fi/{i}"), Expect::One(0)))
                .collect(),
            groups: 1,
        },
        Shape::FanInShared {
            publishers,
            members,
        } => Topology {
            subscribers: (0..members)
                .map(|i| sub(i, format!("$share/wb/{nonce}/fi/+"), 0))
                .collect(),
            publishers: (0..publishers)
                .map(|i| publ(i, format!("{nonce}/fi/{i}"), Expect::One(0)))
                .collect(),
            groups: 1,
        },
        Shape::Connections { .. } | Shape::TlsConnections { .. } => Topology {
            subscribers: Vec::new(),
            publishers: Vec::new(),
            groups: 0,
        },
    }
}

/// What a message run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    /// Publishers and subscribers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// The measured window, seconds.
    pub window_s: f64,
    /// Messages received by subscribers in the window.
    pub delivered_in_window: u64,
    /// Messages acknowledged (QoS 1/2) or written (QoS 0) by publishers in the window.
    pub published_in_window: u64,
    /// Messages acknowledged (QoS 1/2) or written (QoS 0) over the whole run.
    pub published_total: u64,
    /// Messages received over the whole run.
    pub delivered_total: u64,
    /// Acknowledged (QoS 0: written) messages some expected subscriber never received.
    pub lost: u64,
    /// Messages a receiver group got more than once.
    pub duplicated: u64,
    /// QoS 1/2 PUBLISH the broker acknowledged with an error reason code.
    pub rejected: u64,
    /// QoS 1/2 PUBLISH still unacknowledged when the drain ended.
    pub unacknowledged: u64,
    /// Latency of deliveries in the window.
    pub latency: Histogram,
    /// Broker CPU seconds in the window.
    pub broker_cpu_s: Option<f64>,
    /// This process's CPU seconds in the window.
    pub tool_cpu_s: f64,
    /// CPU seconds of other processes in the window.
    pub other_cpu_s: Option<f64>,
    /// CPU seconds in softirq (loopback TCP) in the window.
    pub softirq_cpu_s: Option<f64>,
    /// Broker peak RSS during the run.
    pub broker_peak_rss: Option<u64>,
}

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// Counters every task adds to once per read or write: the coordinator watches deliveries to see
/// the drain end, and QoS 0 publishers pace themselves on them.
#[derive(Default)]
struct Live {
    delivered: Padded,
    published: Padded,
}

/// QoS 0 has no acknowledgements, so a publisher at full speed would only fill socket buffers
/// (hundreds of MB on loopback) and measure buffer bloat. Publishers instead keep at most `cap`
/// messages published and not yet delivered, summed over the scenario, like the QoS 1 window
/// but end to end. A broker that drops messages must not stall them: after 50 ms without room
/// a publisher goes on.
struct Pacing {
    live: Arc<Live>,
    /// Deliveries per published message.
    fanout: u64,
    cap: u64,
}

impl Pacing {
    async fn wait_for_room(&self, stop: &CancellationToken) {
        for _ in 0..50 {
            let published = self.live.published.0.load(Ordering::Relaxed);
            let delivered = self.live.delivered.0.load(Ordering::Relaxed) / self.fanout;
            if published.saturating_sub(delivered) <= self.cap {
                return;
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    }
}

/// When the measured window is, in [`now_ns`] time.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    from: u64,
    to: u64,
}

impl Window {
    #[inline]
    fn contains(&self, ns: u64) -> bool {
        (self.from..self.to).contains(&ns)
    }
}

struct SubReport {
    group: usize,
    seqs: HashMap<u32, SeqSet>,
    duplicates: u64,
    delivered_total: u64,
    delivered_in_window: u64,
    latency: Histogram,
}

struct PubReport {
    index: u32,
    done: SeqSet,
    in_window: u64,
    rejected: u64,
    unacknowledged: u64,
}

/// Runs one message case against `target`.
pub async fn run(case: &Case, target: &Target, opts: &LoadOptions) -> Result<LoadOutcome> {
    let topo = topology(case.shape, &opts.nonce);
    let live = Arc::new(Live::default());
    let sub_stop = CancellationToken::new();
    let pub_stop = CancellationToken::new();
    let (window_tx, window_rx) = watch::channel(None::<Window>);
    let connecting = Arc::new(Semaphore::new(64));
    let addr = target.addr(case.version);
    let pub_addr = target.publisher_addr(case.version);
    target.reset_peaks();

    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<()>>(64);
    let mut subs: Vec<JoinHandle<Result<SubReport>>> = Vec::new();
    for spec in topo.subscribers {
        let ready = ready_tx.clone();
        let (live, stop, window, connecting) = (
            live.clone(),
            sub_stop.clone(),
            window_rx.clone(),
            connecting.clone(),
        );
        let (case, timeout) = (*case, opts.connect_timeout);
        subs.push(tokio::spawn(async move {
            let client = async {
                let _permit = connecting.acquire().await;
                let mut c = Client::connect(addr, &spec.client_id, case.version, timeout).await?;
                c.subscribe(&spec.filter, case.qos, timeout).await?;
                Ok(c)
            }
            .await;
            let client = match client {
                Ok(c) => {
                    let _ = ready.send(Ok(())).await;
                    c
                }
                Err(e) => {
                    let _ = ready.send(Err(Error::Protocol(format!("{e}")))).await;
                    return Err(e);
                }
            };
            subscriber(client, spec.group, case.read, live, window, stop).await
        }));
    }
    wait_ready(&mut ready_rx, subs.len(), "subscribers").await?;

    let mut pubs: Vec<JoinHandle<Result<PubReport>>> = Vec::new();
    let expects: Vec<Expect> = topo.publishers.iter().map(|p| p.expect).collect();
    let schedule = opts
        .rate
        .map(|r| Arc::new(Schedule::new(r, topo.publishers.len())));
    let fanout_of = |e: Expect| match e {
        Expect::One(_) => 1,
        Expect::All => topo.groups as u64,
    };
    let pacing = (case.qos == QoS::AtMostOnce && opts.rate.is_none()).then(|| {
        Arc::new(Pacing {
            live: live.clone(),
            fanout: expects.first().map_or(1, |e| fanout_of(*e)),
            cap: u64::from(opts.inflight) * expects.len() as u64,
        })
    });
    for (index, spec) in topo.publishers.into_iter().enumerate() {
        let ready = ready_tx.clone();
        let (stop, window, connecting) = (pub_stop.clone(), window_rx.clone(), connecting.clone());
        let (pacing, schedule) = (pacing.clone(), schedule.clone());
        let (case, opts) = (*case, opts.clone());
        pubs.push(tokio::spawn(async move {
            let client = async {
                let _permit = connecting.acquire().await;
                let (id, version) = (&spec.client_id, case.version);
                Client::connect(pub_addr, id, version, opts.connect_timeout).await
            }
            .await;
            let client = match client {
                Ok(c) => {
                    let _ = ready.send(Ok(())).await;
                    c
                }
                Err(e) => {
                    let _ = ready.send(Err(Error::Protocol(format!("{e}")))).await;
                    return Err(e);
                }
            };
            let template = PublishTemplate::new(&spec.topic, case.qos, case.payload, case.version)?;
            let job = PubJob {
                index: index as u32,
                template,
                qos: case.qos,
                inflight: opts.inflight,
                schedule,
                drain: opts.drain,
                pacing,
            };
            publisher(client, job, window, stop).await
        }));
    }
    drop(ready_tx);
    wait_ready(&mut ready_rx, pubs.len(), "publishers").await?;

    // Everyone is connected and subscribed: publish from a common start.
    let start = now_ns() + 50_000_000;
    let from = start + opts.warmup.as_nanos() as u64;
    let to = from + opts.duration.as_nanos() as u64;
    let window = Window { start, from, to };
    let _ = window_tx.send(Some(window));
    let pacer = schedule.map(|s| s.start(start, pub_stop.clone()));

    tokio::time::sleep_until(instant_at(from).into()).await;
    let broker_cpu0 = target.cpu_seconds();
    let tool_cpu0 = procfs::self_cpu_seconds();
    let machine0 = procfs::machine_cpu_seconds();
    let wall0 = now_ns();
    tokio::time::sleep_until(instant_at(to).into()).await;
    let broker_cpu1 = target.cpu_seconds();
    let tool_cpu1 = procfs::self_cpu_seconds();
    let machine1 = procfs::machine_cpu_seconds();
    let window_s = (now_ns() - wall0) as f64 / 1e9;

    pub_stop.cancel();
    if let Some(pacer) = pacer {
        let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    }
    let mut pub_reports = Vec::with_capacity(pubs.len());
    let mut first_error = None;
    for p in pubs {
        match p.await {
            Ok(Ok(r)) => pub_reports.push(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::Protocol(format!("publisher task: {e}")));
            }
        }
    }
    // Wait for the deliveries still on their way: all of them (QoS 1/2), or until quiet.
    let expected: u64 = pub_reports
        .iter()
        .map(|r| r.done.len() * fanout_of(expects[r.index as usize]))
        .sum();
    let deadline = tokio::time::Instant::now() + opts.drain;
    let mut last = u64::MAX;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let now_delivered = live.delivered.0.load(Ordering::Relaxed);
        let now = tokio::time::Instant::now();
        if case.qos != QoS::AtMostOnce && now_delivered >= expected {
            break;
        }
        if now_delivered != last {
            last = now_delivered;
            quiet_since = now;
        }
        let quiet_for = if case.qos == QoS::AtMostOnce {
            Duration::from_millis(300)
        } else {
            Duration::from_millis(1500)
        };
        if now - quiet_since >= quiet_for || now >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sub_stop.cancel();
    let mut sub_reports = Vec::with_capacity(subs.len());
    for s in subs {
        match s.await {
            Ok(Ok(r)) => sub_reports.push(r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::Protocol(format!("subscriber task: {e}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }

    let mut out = LoadOutcome {
        publishers: pub_reports.len(),
        subscribers: sub_reports.len(),
        window_s,
        broker_cpu_s: broker_cpu0.zip(broker_cpu1).map(|(a, b)| b - a),
        tool_cpu_s: tool_cpu1 - tool_cpu0,
        other_cpu_s: machine0.zip(machine1).map(|(a, b)| {
            let broker = broker_cpu0.zip(broker_cpu1).map_or(0.0, |(a, b)| b - a);
            (b.0 - a.0 - broker - (tool_cpu1 - tool_cpu0)).max(0.0)
        }),
        softirq_cpu_s: machine0.zip(machine1).map(|(a, b)| b.1 - a.1),
        broker_peak_rss: target.memory().map(|(_, hwm)| hwm),
        ..LoadOutcome::default()
    };
    let mut groups: Vec<HashMap<u32, SeqSet>> = vec![HashMap::new(); topo.groups];
    for s in &sub_reports {
        out.duplicated += s.duplicates;
        out.delivered_total += s.delivered_total;
        out.delivered_in_window += s.delivered_in_window;
        out.latency.merge(&s.latency);
        for (publisher, set) in &s.seqs {
            out.duplicated += groups[s.group]
                .entry(*publisher)
                .or_default()
                .union_with(set);
        }
    }
    let empty = SeqSet::default();
    for p in &pub_reports {
        out.published_total += p.done.len();
        out.published_in_window += p.in_window;
        out.rejected += p.rejected;
        out.unacknowledged += p.unacknowledged;
        let targets = match expects[p.index as usize] {
            Expect::One(g) => g..g + 1,
            Expect::All => 0..topo.groups,
        };
        for g in targets {
            let got = groups[g].get(&p.index).unwrap_or(&empty);
            out.lost += p.done.missing_from(got);
        }
    }
    Ok(out)
}

async fn wait_ready(rx: &mut mpsc::Receiver<Result<()>>, n: usize, what: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for _ in 0..n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(Error::Protocol(format!("connecting {what}: {e}"))),
            Ok(None) => return Err(Error::Protocol(format!("connecting {what}: task ended"))),
            Err(_) => return Err(Error::Timeout(format!("connecting {n} {what}"))),
        }
    }
    Ok(())
}

async fn wait_window(rx: &mut watch::Receiver<Option<Window>>) -> Result<Window> {
    let w = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| Error::Protocol("the run was abandoned".into()))?;
    Ok(w.expect("waited for Some"))
}
