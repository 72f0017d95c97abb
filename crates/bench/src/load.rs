//! Running one message scenario: connect the subscribers and publishers, publish for a warm-up
//! and a measured window, drain, and count end to end (rates, CPU, latency, losses, duplicates).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wardgate_protocol::{
    DecodeLimits, Packet, PacketId, ProtocolVersion, PubAck, QoS, decode, encode, peek_size,
};

use crate::error::{Error, Result};
use crate::histogram::Histogram;
use crate::procfs;
use crate::scenario::{Case, ReadMode, Shape};
use crate::seq::SeqSet;
use crate::wire::{Client, PublishTemplate, Stamp, instant_at, now_ns, parse_publish};

/// Where the broker is and how to watch it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The MQTT 3.1.1 port.
    pub v3: SocketAddr,
    /// The MQTT 5 port (the same as `v3` for most brokers).
    pub v5: SocketAddr,
    /// The broker's process, for CPU and memory.
    pub pid: Option<u32>,
}

impl Target {
    /// The address for clients of `version`.
    pub fn addr(&self, version: ProtocolVersion) -> SocketAddr {
        if version.is_v5() { self.v5 } else { self.v3 }
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
        Shape::Connections { .. } => Topology {
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
    if let Some(pid) = target.pid {
        procfs::reset_peak(pid);
    }

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
    let per_publisher_rate = opts.rate.map(|r| r / topo.publishers.len().max(1) as f64);
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
        let pacing = pacing.clone();
        let (case, opts) = (*case, opts.clone());
        pubs.push(tokio::spawn(async move {
            let client = async {
                let _permit = connecting.acquire().await;
                Client::connect(addr, &spec.client_id, case.version, opts.connect_timeout).await
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
                rate: per_publisher_rate,
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

    tokio::time::sleep_until(instant_at(from).into()).await;
    let broker_cpu0 = target.pid.and_then(procfs::cpu_seconds);
    let tool_cpu0 = procfs::self_cpu_seconds();
    let machine0 = procfs::machine_cpu_seconds();
    let wall0 = now_ns();
    tokio::time::sleep_until(instant_at(to).into()).await;
    let broker_cpu1 = target.pid.and_then(procfs::cpu_seconds);
    let tool_cpu1 = procfs::self_cpu_seconds();
    let machine1 = procfs::machine_cpu_seconds();
    let window_s = (now_ns() - wall0) as f64 / 1e9;

    pub_stop.cancel();
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
        broker_peak_rss: target.pid.and_then(procfs::memory).map(|(_, hwm)| hwm),
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

/// Reads deliveries until stopped: records sequence numbers and latency, acknowledges QoS 1/2.
async fn subscriber(
    mut c: Client,
    group: usize,
    read: ReadMode,
    live: Arc<Live>,
    mut window: watch::Receiver<Option<Window>>,
    stop: CancellationToken,
) -> Result<SubReport> {
    let mut report = SubReport {
        group,
        seqs: HashMap::new(),
        duplicates: 0,
        delivered_total: 0,
        delivered_in_window: 0,
        latency: Histogram::default(),
    };
    let w = tokio::select! {
        _ = stop.cancelled() => return Ok(report),
        w = wait_window(&mut window) => w?,
    };
    let limits = DecodeLimits::default();
    let version = c.version;
    let mut last: Option<(u32, SeqSet)> = None;
    loop {
        if c.rbuf.capacity() - c.rbuf.len() < 16 * 1024 {
            c.rbuf.reserve(64 * 1024);
        }
        let n = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = c.stream.read_buf(&mut c.rbuf) => r.map_err(|e| Error::io("subscriber read", e))?,
        };
        if n == 0 {
            return Err(Error::Protocol("the broker closed a subscriber".into()));
        }
        let now = now_ns();
        let in_window = w.contains(now);
        let mut count = 0u64;
        loop {
            let size = match peek_size(&c.rbuf, &limits) {
                Ok(Some(size)) if size <= c.rbuf.len() => size,
                Ok(_) => break,
                Err(e) => return Err(Error::Protocol(format!("subscriber decode: {e}"))),
            };
            if c.rbuf[0] >> 4 == 3 {
                let p = parse_publish(&c.rbuf[..size], version)
                    .ok_or_else(|| Error::Protocol("malformed PUBLISH".into()))?;
                if let Some(stamp) = Stamp::read(p.payload) {
                    count += 1;
                    if in_window {
                        report.latency.record(now.saturating_sub(stamp.sent_ns));
                    }
                    // Consecutive messages mostly come from the same publisher: keep its set at
                    // hand and file it in the map when another publisher shows up.
                    let set = match &mut last {
                        Some((p, set)) if *p == stamp.publisher => set,
                        slot => {
                            if let Some((p, set)) = slot.take() {
                                report.seqs.insert(p, set);
                            }
                            let set = report.seqs.remove(&stamp.publisher).unwrap_or_default();
                            &mut slot.insert((stamp.publisher, set)).1
                        }
                    };
                    if !set.insert(stamp.seq) {
                        report.duplicates += 1;
                    }
                }
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        encode(&Packet::PubAck(PubAck::new(id)), version, &mut c.wbuf)
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        encode(&Packet::PubRec(PubAck::new(id)), version, &mut c.wbuf)
                    }
                    _ => {}
                }
                c.rbuf.advance(size);
            } else {
                match decode(&mut c.rbuf, Some(version), &limits) {
                    Ok(Some(Packet::PubRel(rel))) => encode(
                        &Packet::PubComp(PubAck::new(rel.packet_id)),
                        version,
                        &mut c.wbuf,
                    ),
                    Ok(Some(Packet::Disconnect(d))) => {
                        return Err(Error::Protocol(format!(
                            "the broker disconnected a subscriber: reason 0x{:02X}",
                            d.reason.0
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => return Err(Error::Protocol(format!("subscriber decode: {e}"))),
                }
            }
        }
        if !c.wbuf.is_empty() {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                r = c.stream.write_all(&c.wbuf) => r.map_err(|e| Error::io("subscriber ack", e))?,
            }
            c.wbuf.clear();
        }
        report.delivered_total += count;
        if in_window {
            report.delivered_in_window += count;
        }
        live.delivered.0.fetch_add(count, Ordering::Relaxed);
        if read == ReadMode::Coalesce {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    }
    if let Some((p, set)) = last {
        report.seqs.insert(p, set);
    }
    c.disconnect().await;
    Ok(report)
}

struct PubJob {
    index: u32,
    template: PublishTemplate,
    qos: QoS,
    inflight: u16,
    /// Messages per second of this publisher, or as fast as possible.
    rate: Option<f64>,
    drain: Duration,
    /// QoS 0 at full speed: the end-to-end window.
    pacing: Option<Arc<Pacing>>,
}

/// Most messages one write carries when publishing as fast as possible.
const MAX_BATCH: u64 = 64;
const BATCH_BYTES: usize = 32 * 1024;

impl PubJob {
    /// How many messages may be written now: the rate's backlog or a full batch.
    fn due(&self, start: u64, seq: u32) -> u64 {
        let batch = MAX_BATCH.min((BATCH_BYTES / self.template.len()).max(1) as u64);
        match self.rate {
            None => batch,
            Some(r) => {
                let elapsed = now_ns().saturating_sub(start) as f64 / 1e9;
                ((elapsed * r) as u64)
                    .saturating_sub(u64::from(seq))
                    .min(batch)
            }
        }
    }

    /// When the next message is due at the fixed rate.
    fn next_due(&self, start: u64, seq: u32) -> tokio::time::Instant {
        let r = self.rate.unwrap_or(1.0).max(1e-3);
        let at = start + ((f64::from(seq) + 1.0) / r * 1e9) as u64;
        instant_at(at).into()
    }
}

/// Publishes until stopped; QoS 1/2 keep a window of unacknowledged messages and count only
/// acknowledged ones.
async fn publisher(
    mut c: Client,
    job: PubJob,
    mut window: watch::Receiver<Option<Window>>,
    stop: CancellationToken,
) -> Result<PubReport> {
    let w = tokio::select! {
        _ = stop.cancelled() => return Err(Error::Protocol("stopped before the start".into())),
        w = wait_window(&mut window) => w?,
    };
    tokio::time::sleep_until(instant_at(w.start).into()).await;
    let report = if job.qos == QoS::AtMostOnce {
        publish_qos0(&mut c, &job, w, &stop).await?
    } else {
        publish_acked(&mut c, &job, w, &stop).await?
    };
    c.disconnect().await;
    Ok(report)
}

async fn publish_qos0(
    c: &mut Client,
    job: &PubJob,
    w: Window,
    stop: &CancellationToken,
) -> Result<PubReport> {
    let mut seq: u32 = 0;
    let mut in_window = 0;
    while !stop.is_cancelled() {
        let n = job.due(w.start, seq);
        if n == 0 {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(job.next_due(w.start, seq)) => continue,
            }
        }
        if let Some(p) = &job.pacing {
            p.wait_for_room(stop).await;
        }
        let sent_ns = now_ns();
        for i in 0..n as u32 {
            let stamp = Stamp {
                publisher: job.index,
                seq: seq + i,
                sent_ns,
            };
            job.template.write(&mut c.wbuf, None, stamp);
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = c.stream.write_all(&c.wbuf) => r.map_err(|e| Error::io("publish", e))?,
        }
        c.wbuf.clear();
        seq += n as u32;
        if let Some(p) = &job.pacing {
            p.live.published.0.fetch_add(n, Ordering::Relaxed);
        }
        if w.contains(now_ns()) {
            in_window += n;
        }
    }
    Ok(PubReport {
        index: job.index,
        done: SeqSet::prefix(seq),
        in_window,
        rejected: 0,
        unacknowledged: 0,
    })
}

/// One unacknowledged QoS 1/2 PUBLISH.
struct Pending {
    packet_id: PacketId,
    seq: u32,
    /// QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
    released: bool,
}

async fn publish_acked(
    c: &mut Client,
    job: &PubJob,
    w: Window,
    stop: &CancellationToken,
) -> Result<PubReport> {
    let limits = DecodeLimits::default();
    let version = c.version;
    let window = usize::from(job.inflight.min(c.server_receive_maximum).max(1));
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(window);
    let mut next_id = PacketId::new(1).expect("nonzero");
    let mut seq: u32 = 0;
    let mut report = PubReport {
        index: job.index,
        done: SeqSet::default(),
        in_window: 0,
        rejected: 0,
        unacknowledged: 0,
    };
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        if stopping.is_some() && pending.is_empty() && c.wbuf.is_empty() {
            break;
        }
        let credit = (window - pending.len()) as u64;
        if stopping.is_none() && credit > 0 {
            let n = job.due(w.start, seq).min(credit);
            let sent_ns = now_ns();
            for _ in 0..n {
                let stamp = Stamp {
                    publisher: job.index,
                    seq,
                    sent_ns,
                };
                job.template.write(&mut c.wbuf, Some(next_id), stamp);
                pending.push_back(Pending {
                    packet_id: next_id,
                    seq,
                    released: false,
                });
                next_id = next_id.next();
                seq += 1;
            }
        }
        let waiting_for_rate =
            job.rate.is_some() && stopping.is_none() && c.wbuf.is_empty() && pending.len() < window;
        if c.rbuf.capacity() - c.rbuf.len() < 4096 {
            c.rbuf.reserve(16 * 1024);
        }
        let (mut rd, mut wr) = c.stream.split();
        tokio::select! {
            biased;
            _ = stop.cancelled(), if stopping.is_none() => {
                stopping = Some(tokio::time::Instant::now() + job.drain);
                continue;
            }
            _ = tokio::time::sleep_until(stopping.unwrap_or_else(tokio::time::Instant::now)), if stopping.is_some() => break,
            r = wr.write_buf(&mut c.wbuf), if !c.wbuf.is_empty() => {
                if r.map_err(|e| Error::io("publish", e))? == 0 {
                    return Err(Error::Protocol("the broker closed a publisher".into()));
                }
                continue;
            }
            r = rd.read_buf(&mut c.rbuf) => {
                if r.map_err(|e| Error::io("publisher read", e))? == 0 {
                    return Err(Error::Protocol("the broker closed a publisher".into()));
                }
            }
            _ = tokio::time::sleep_until(job.next_due(w.start, seq)), if waiting_for_rate => continue,
        }
        let in_window = w.contains(now_ns());
        loop {
            let packet = match decode(&mut c.rbuf, Some(version), &limits) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(Error::Protocol(format!("publisher decode: {e}"))),
            };
            let (id, reason, kind) = match &packet {
                Packet::PubAck(a) => (a.packet_id, a.reason, 1),
                Packet::PubRec(a) => (a.packet_id, a.reason, 2),
                Packet::PubComp(a) => (a.packet_id, a.reason, 3),
                Packet::Disconnect(d) => {
                    return Err(Error::Protocol(format!(
                        "the broker disconnected a publisher: reason 0x{:02X}",
                        d.reason.0
                    )));
                }
                _ => continue,
            };
            let Some(pos) = pending.iter().position(|p| p.packet_id == id) else {
                return Err(Error::Protocol(format!(
                    "acknowledgement for unknown packet id {}",
                    id.get()
                )));
            };
            match kind {
                // PUBACK, or PUBREC: the broker has taken the message.
                1 | 2 if !pending[pos].released => {
                    if reason.is_error() {
                        report.rejected += 1;
                        pending.remove(pos);
                        continue;
                    }
                    report.done.insert(pending[pos].seq);
                    if in_window {
                        report.in_window += 1;
                    }
                    if kind == 1 {
                        pending.remove(pos);
                    } else {
                        pending[pos].released = true;
                        encode(&Packet::PubRel(PubAck::new(id)), version, &mut c.wbuf);
                    }
                }
                3 if pending[pos].released => {
                    pending.remove(pos);
                }
                _ => {
                    return Err(Error::Protocol(format!(
                        "unexpected acknowledgement for packet id {}",
                        id.get()
                    )));
                }
            }
        }
    }
    report.unacknowledged = pending.iter().filter(|p| !p.released).count() as u64;
    Ok(report)
}
