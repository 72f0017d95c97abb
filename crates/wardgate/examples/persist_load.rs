//! A load loop with persistent sessions, for the cost of persistence (docs/benchmarks.md): the
//! bench tool (`wardgate-bench`) connects with clean sessions, for which the store writes nothing.
//!
//! Publishers (MQTT 5, Session Expiry 3600) publish QoS 1 or 2 on `load/<n>` with a window of
//! unacknowledged messages; subscribers (the same sessions) take `load/#` at QoS 2 and acknowledge
//! everything. Prints acknowledged and delivered messages per second and the acknowledgement
//! latency (PUBLISH to PUBACK/PUBREC) after a warm-up.
//!
//! ```sh
//! cargo run --release -p wardgate --example persist_load -- --port 1883 --qos 1 --publishers 4
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use wardgate_protocol::{
    AckProperties, Packet, PacketId, ProtocolVersion, PubAck, Publish, PublishProperties,
    PublishQos, QoS, ReasonCode, TopicName,
};
use wardgate_testkit::client::{RawClient, Received, connect_packet};

struct Args {
    port: u16,
    qos: QoS,
    publishers: usize,
    subscribers: usize,
    seconds: f64,
    window: usize,
    payload: usize,
    expiry: u32,
    pid: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        port: 1883,
        qos: QoS::AtLeastOnce,
        publishers: 4,
        subscribers: 1,
        seconds: 5.0,
        window: 16,
        payload: 64,
        expiry: 3600,
        pid: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let [key, value] = pair else {
            panic!("arguments come in --key value pairs")
        };
        let n = || value.parse::<u64>().expect("a number");
        match key.as_str() {
            "--port" => a.port = n() as u16,
            "--qos" => a.qos = QoS::from_u8(n() as u8).expect("QoS 0-2"),
            "--publishers" => a.publishers = n() as usize,
            "--subscribers" => a.subscribers = n() as usize,
            "--seconds" => a.seconds = value.parse().expect("seconds"),
            "--window" => a.window = n() as usize,
            "--payload" => a.payload = n() as usize,
            "--expiry" => a.expiry = n() as u32,
            "--pid" => a.pid = Some(n() as u32),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn ack(packet_id: PacketId) -> PubAck {
    PubAck {
        packet_id,
        reason: ReasonCode::SUCCESS,
        properties: AckProperties::default(),
    }
}

async fn connect(addr: SocketAddr, id: &str, expiry: u32) -> RawClient {
    let mut c = connect_packet(ProtocolVersion::V5, id, true);
    c.properties.session_expiry_interval = (expiry > 0).then_some(expiry);
    let (client, ack) = RawClient::connect_with(addr, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS, "CONNACK");
    client
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    /// Acknowledgements with an error reason (0x97 past a limit, 0x10 without subscribers).
    refused: AtomicU64,
    delivered: AtomicU64,
    latencies: Mutex<Vec<u32>>,
    measuring: AtomicBool,
}

async fn subscriber(mut c: RawClient, counters: Arc<Counters>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let packet = match c.recv_within(Duration::from_millis(200)).await {
            Received::Packet(p) => p,
            Received::Timeout => continue,
            Received::Closed => return,
        };
        match packet {
            Packet::Publish(p) => {
                if counters.measuring.load(Ordering::Relaxed) {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
                let reply = match p.qos {
                    PublishQos::AtMostOnce => None,
                    PublishQos::AtLeastOnce(id) => Some(Packet::PubAck(ack(id))),
                    PublishQos::ExactlyOnce(id) => Some(Packet::PubRec(ack(id))),
                };
                if let Some(reply) = reply {
                    c.send(&reply).await;
                }
            }
            Packet::PubRel(r) => c.send(&Packet::PubComp(ack(r.packet_id))).await,
            _ => {}
        }
    }
}

async fn publisher(
    mut c: RawClient,
    n: usize,
    a: Arc<Args>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let topic = TopicName::new(format!("load/{n}").as_str()).expect("topic");
    let payload = Bytes::from(vec![b'x'; a.payload]);
    let mut sent: Vec<Option<Instant>> = vec![None; 65_536];
    let mut open = 0usize;
    let mut next = 1u16;
    loop {
        while !stop.load(Ordering::Relaxed) && open < a.window {
            let id = PacketId::new(next).expect("non-zero");
            next = if next == u16::MAX { 1 } else { next + 1 };
            sent[usize::from(id.get())] = Some(Instant::now());
            open += 1;
            c.send(&Packet::Publish(Publish {
                dup: false,
                qos: PublishQos::new(a.qos, id),
                retain: false,
                topic: Some(topic.clone()),
                properties: PublishProperties::default(),
                payload: payload.clone(),
            }))
            .await;
        }
        if stop.load(Ordering::Relaxed) && open == 0 {
            return;
        }
        let packet = match c.recv_within(Duration::from_secs(10)).await {
            Received::Packet(p) => p,
            _ => return,
        };
        let mut acked = |id: PacketId| {
            if let Some(at) = sent[usize::from(id.get())].take()
                && counters.measuring.load(Ordering::Relaxed)
            {
                counters.acked.fetch_add(1, Ordering::Relaxed);
                let us = u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX);
                counters.latencies.lock().push(us);
            }
        };
        match packet {
            Packet::PubAck(p) => {
                if p.reason != ReasonCode::SUCCESS {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                acked(p.packet_id);
                open -= 1;
            }
            Packet::PubRec(p) => {
                if p.reason != ReasonCode::SUCCESS {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                }
                acked(p.packet_id);
                c.send(&Packet::PubRel(ack(p.packet_id))).await;
            }
            Packet::PubComp(_) => open -= 1,
            _ => {}
        }
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = Arc::new(args());
    let addr = SocketAddr::from(([127, 0, 0, 1], a.port));
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let nonce = std::process::id();
    let mut tasks = Vec::new();
    for n in 0..a.subscribers {
        let mut c = connect(addr, &format!("load-sub-{nonce}-{n}"), a.expiry).await;
        c.subscribe("load/#", QoS::ExactlyOnce).await;
        tasks.push(tokio::spawn(subscriber(c, counters.clone(), stop.clone())));
    }
    let mut pubs = Vec::new();
    for n in 0..a.publishers {
        let c = connect(addr, &format!("load-pub-{nonce}-{n}"), a.expiry).await;
        pubs.push(tokio::spawn(publisher(
            c,
            n,
            a.clone(),
            counters.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = a.pid.and_then(cpu_ticks);
    counters.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.seconds)).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = a.pid.and_then(cpu_ticks);
    stop.store(true, Ordering::Relaxed);
    for t in pubs {
        let _ = t.await;
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = std::mem::take(&mut *counters.latencies.lock());
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => format!(
            "{:.0}%",
            (a - b) as f64 / 100.0 / elapsed * 100.0 // 100 ticks per second
        ),
        _ => "-".into(),
    };
    println!(
        "qos {} expiry {} pubs {} subs {} window {} payload {}: acked {:.0}/s delivered {:.0}/s ack latency p50 {:.2} ms p99 {:.2} ms broker cpu {cpu} (refused acks: {})",
        a.qos.as_u8(),
        a.expiry,
        a.publishers,
        a.subscribers,
        a.window,
        a.payload,
        counters.acked.load(Ordering::Relaxed) as f64 / elapsed,
        counters.delivered.load(Ordering::Relaxed) as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        counters.refused.load(Ordering::Relaxed),
    );
}
