//! Limits that need a whole process to observe: a subscriber that stops reading neither grows
//! the broker's memory without bound nor slows the other subscribers of the same topic; at the
//! file-descriptor limit, new clients are shed, not left hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wardgate_protocol::{Packet, ProtocolVersion, QoS};
use wardgate_testkit::client::{RawClient, Received, publish_packet};

use crate::support::Node;

const V: ProtocolVersion = ProtocolVersion::V5;
const FAST: usize = 10;
const PAYLOAD: usize = 2048;
const PHASE: usize = 10_000;
/// Phases measured after the first two.
const MEASURED_PHASES: usize = 3;

/// Publishes `count` messages, pacing on the fast subscribers: every 250 messages it waits until
/// all of them have everything so far (their queues stay short; the slow one's does not).
async fn phase(publ: &mut RawClient, received: &[Arc<AtomicUsize>], from: usize, count: usize) {
    let payload = vec![b'x'; PAYLOAD];
    for i in from..from + count {
        publ.send(&Packet::Publish(publish_packet(
            "load/t",
            &payload,
            QoS::AtMostOnce,
            false,
            0,
        )))
        .await;
        if (i + 1) % 250 == 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while received.iter().any(|r| r.load(Ordering::Relaxed) < i + 1) {
                assert!(
                    Instant::now() < deadline,
                    "fast subscribers fell behind at {i}: {:?}",
                    received
                        .iter()
                        .map(|r| r.load(Ordering::Relaxed))
                        .collect::<Vec<_>>()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_neither_grows_memory_nor_slows_the_others() {
    let mut node = Node::new(
        "  advanced:\n    clients:\n      subscriberQueueLimit:\n        length: 5000\n        strategy: DropOldest\n",
    );
    node.start();
    let addr = node.addr();

    // The slow subscriber subscribes, then never reads again.
    let (mut slow, _) = RawClient::connect(addr, V, "slow").await;
    slow.subscribe("load/#", QoS::AtMostOnce).await;

    let mut received = Vec::new();
    for n in 0..FAST {
        let (mut c, _) = RawClient::connect(addr, V, &format!("fast-{n}")).await;
        c.subscribe("load/#", QoS::AtMostOnce).await;
        let count = Arc::new(AtomicUsize::new(0));
        received.push(count.clone());
        tokio::spawn(async move {
            loop {
                match c.recv_within(Duration::from_secs(30)).await {
                    Received::Packet(Packet::Publish(_)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Received::Packet(_) => {}
                    Received::Closed | Received::Timeout => return,
                }
            }
        });
    }
    let (mut publ, _) = RawClient::connect(addr, V, "publisher").await;

    let started = Instant::now();
    phase(&mut publ, &received, 0, PHASE).await;
    let first = started.elapsed();
    // A second phase lets the allocator reach its steady state (it keeps freed pages for reuse,
    // and grows in steps); the next three are measured together, so one allocator step cannot
    // pass for growth while an unbounded queue would show as ~60 MB.
    phase(&mut publ, &received, PHASE, PHASE).await;
    let rss_after_second = node.rss_kib();
    for n in 2..MEASURED_PHASES + 2 {
        phase(&mut publ, &received, n * PHASE, PHASE).await;
    }
    let rss_after_third = node.rss_kib();
    let total = started.elapsed();
    let phases = MEASURED_PHASES + 2;

    for r in &received {
        assert_eq!(
            r.load(Ordering::Relaxed),
            phases * PHASE,
            "a fast subscriber missed messages"
        );
    }
    // The measured phases published 60 MB more; the slow subscriber's queue is capped at 5000
    // messages (10 MB) and full since the first phase, so the broker must not have grown by
    // anything like that.
    let grown = rss_after_third.saturating_sub(rss_after_second);
    assert!(
        grown < 24 * 1024,
        "RSS grew by {grown} KiB during the measured phases ({rss_after_second} -> {rss_after_third} KiB)"
    );
    // The stalled subscriber costs the others at most one congestion wait (about a second).
    assert!(
        total < first * phases as u32 + Duration::from_secs(3),
        "the later phases took {:?} after a first of {first:?}",
        total - first
    );
    eprintln!(
        "slow consumer: {} messages x {FAST} fast subscribers in {total:?}; RSS {rss_after_second} -> {rss_after_third} KiB",
        phases * PHASE
    );
    drop(slow);
    node.stop();
}

/// At the file-descriptor limit (`ulimit -n 64`), clients past it are closed at once, not left
/// hanging in the listen backlog; the accept failures are logged a bounded number of times (not
/// ~20 lines a second), and once connections close, new clients connect again.
#[tokio::test]
async fn at_the_file_descriptor_limit_clients_are_shed_and_the_broker_recovers() {
    use std::process::Command;
    use wardgate_protocol::Packet;
    use wardgate_testkit::client::connect_packet;
    use wardgate_testkit::process::{Running, wait_for_port};

    let node = Node::new("");
    let mut broker = Running::spawn(
        Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 64 && exec \"$0\" serve --config \"$1\" --data-dir \"$2\" --admin-addr 127.0.0.1:0 2>&1")
            .arg(env!("CARGO_BIN_EXE_wardgate"))
            .arg(node.config_dir())
            .arg(node.data_dir())
            .env("NO_COLOR", "1"),
    )
    .expect("start wardgate");
    wait_for_port(node.port, crate::support::START_TIMEOUT).expect("the port opens");
    let addr = node.addr();

    let (mut held, mut shed) = (Vec::new(), 0);
    let started = Instant::now();
    for i in 0..120 {
        let mut c = RawClient::open(addr, V).await;
        let connect = connect_packet(V, &format!("fd-{i}"), true);
        c.send(&Packet::Connect(Box::new(connect))).await;
        match c.recv_within(Duration::from_secs(3)).await {
            Received::Packet(Packet::ConnAck(_)) => held.push(c),
            Received::Closed => shed += 1,
            other => panic!("client {i} (after {} connected): {other:?}", held.len()),
        }
    }
    let spent = started.elapsed();
    assert!(
        shed > 0 && held.len() < 64,
        "{} connected, {shed} shed",
        held.len()
    );

    // Connections close: new clients connect again.
    for c in held.drain(..10) {
        c.disconnect().await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = RawClient::open(addr, V).await;
        c.send(&Packet::Connect(Box::new(connect_packet(V, "after", true))))
            .await;
        match c.recv_within(Duration::from_secs(3)).await {
            Received::Packet(Packet::ConnAck(ack)) if !ack.reason.is_error() => break,
            other => assert!(Instant::now() < deadline, "no recovery: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker
        .wait_for_line("the recovery line", Duration::from_secs(5), |l| {
            l.contains("accepting connections again")
        })
        .expect("recovery logged");
    drop(held);
    let out = broker.kill();
    let failures = out.lines().filter(|l| l.contains("accept failed")).count();
    // One line when it starts, then at most one per 10 s.
    let bound = 2 + spent.as_secs() as usize / 10;
    assert!(
        (1..=bound).contains(&failures),
        "{failures} 'accept failed' lines in {spent:?} ({shed} shed):\n{out}"
    );
}

/// A v3.1.1 client whose keep alive is above `maxKeepAliveSeconds` is refused with return code
/// 2 (v3.1.1 cannot be told a shorter keep alive); the log line said only `reason=133`, which
/// reads as a client ID problem. It says why.
#[test]
fn a_v311_keep_alive_above_the_maximum_is_refused_and_the_log_says_why() {
    let mut node = Node::new("  advanced:\n    clients:\n      maxKeepAliveSeconds: 60\n");
    node.start();
    let port = node.port.to_string();
    let args = |id: &'static str, keep_alive: &'static str| {
        let mut a = vec!["-p", "", "-V", "mqttv311", "-i", id, "-k", keep_alive];
        a.extend(["-t", "ka/t", "-m", "m"]);
        a
    };
    let mut refused = args("ka-long", "120");
    refused[1] = &port;
    let out = crate::support::mosquitto_pub_output(&refused);
    assert!(out.contains("identifier rejected"), "{out}");
    let mut accepted = args("ka-ok", "30");
    accepted[1] = &port;
    let out = crate::support::mosquitto_pub_output(&accepted);
    assert!(!out.contains("rejected"), "{out}");
    let log = node.kill().stdout;
    let line = log
        .lines()
        .find(|l| l.contains("connection refused") && l.contains("ka-long"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(
        line.contains("keep alive 120 s exceeds maxKeepAliveSeconds 60"),
        "{line}"
    );
    assert!(line.contains("reason=133"), "{line}");
}
