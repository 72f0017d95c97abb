//! A node that does not keep up: every QoS 1/2 message another node acknowledged still reaches
//! its subscribers (QoS 1 at least once, QoS 2 exactly once), in order per publisher.
//!
//! Node B runs on a runtime of its own with one worker, which the test blocks: B reads nothing
//! from NATS (nor from its MQTT clients) while node A's client publishes 20 MB of QoS 1 and 2
//! messages, and for longer than nats-server's write deadline (10 s) after that. A node that
//! took these messages on core NATS subscriptions is then a slow consumer: the server closes its
//! connection and drops what it had not written (docs/cluster.md, "Receiving").

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use wardgate_protocol::{Packet, ProtocolVersion, PubAck, QoS};
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{client, node, node_with, options, settle};

/// Messages published while B is blocked, and the size of each (enough to fill the loopback
/// socket buffers between nats-server and B, so the server's writes block).
const MESSAGES: u32 = 2_000;
const PAYLOAD: usize = 10 * 1024;

/// How long B stays blocked after the last acknowledgement: past nats-server's default write
/// deadline (10 s), after which a client whose socket takes nothing is a slow consumer.
const BLOCKED_AFTER_ACKS: Duration = Duration::from_secs(13);

fn payload(i: u32) -> Vec<u8> {
    let mut payload = i.to_be_bytes().to_vec();
    payload.resize(PAYLOAD, b'x');
    payload
}

fn index(payload: &[u8]) -> u32 {
    let head: [u8; 4] = payload[..4].try_into().expect("an index");
    u32::from_be_bytes(head)
}

/// Even messages are QoS 1, odd ones QoS 2.
fn qos(i: u32) -> QoS {
    if i.is_multiple_of(2) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

/// Publishes every message and returns the indices acknowledged (PUBACK, PUBREC).
async fn publish_all(publisher: &mut RawClient) -> HashSet<u32> {
    for i in 0..MESSAGES {
        let id = u16::try_from(i + 1).expect("fits");
        let publish = publish_packet("load/x", &payload(i), qos(i), false, id);
        publisher.send(&Packet::Publish(publish)).await;
    }
    let mut acknowledged = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.len() < MESSAGES as usize && Instant::now() < deadline {
        match publisher.recv_within(Duration::from_secs(30)).await {
            Received::Packet(Packet::PubAck(ack)) => {
                acknowledged.insert(u32::from(ack.packet_id.get()) - 1);
            }
            Received::Packet(Packet::PubRec(rec)) => {
                acknowledged.insert(u32::from(rec.packet_id.get()) - 1);
                publisher
                    .send(&Packet::PubRel(PubAck::new(rec.packet_id)))
                    .await;
            }
            Received::Packet(Packet::PubComp(_)) => {}
            other => panic!("expected acknowledgements, got {other:?}"),
        }
    }
    acknowledged
}

/// What the subscriber got: per message index, how many times; and whether each QoS level's
/// messages came in publishing order.
#[derive(Default)]
struct Tally {
    times: BTreeMap<u32, usize>,
    last: [Option<u32>; 2],
    out_of_order: usize,
}

/// Receives (and acknowledges) until every acknowledged message is in, or nothing came for 20 s.
async fn receive_all(subscriber: &mut RawClient, acknowledged: &HashSet<u32>) -> Tally {
    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !acknowledged.iter().all(|i| tally.times.contains_key(i)) && Instant::now() < deadline {
        let publish = match subscriber.recv_within(Duration::from_secs(20)).await {
            Received::Packet(Packet::Publish(p)) => p,
            Received::Packet(Packet::PubRel(rel)) => {
                subscriber
                    .send(&Packet::PubComp(PubAck::new(rel.packet_id)))
                    .await;
                continue;
            }
            Received::Timeout => break,
            other => panic!("expected messages, got {other:?}"),
        };
        let i = index(&publish.payload);
        *tally.times.entry(i).or_default() += 1;
        let class = (i % 2) as usize;
        if tally.last[class].is_some_and(|last| last >= i) {
            tally.out_of_order += 1;
        }
        tally.last[class] = Some(i);
        match publish.qos.packet_id() {
            Some(id) if publish.qos.level() == QoS::AtLeastOnce => subscriber.puback(id).await,
            Some(id) => {
                subscriber.send(&Packet::PubRec(PubAck::new(id))).await;
            }
            None => {}
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stalls_still_delivers_every_acknowledged_message() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let stalled = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for node B");
    let b = stalled
        .spawn(node_with(options(&nats, 1, "b")))
        .await
        .expect("node B starts");
    let (mut subscriber, _) =
        RawClient::connect_with(b.mqtt.tcp, connect_packet(ProtocolVersion::V5, "sub", true)).await;
    subscriber.subscribe("load/#", QoS::ExactlyOnce).await;
    settle().await;
    let mut publisher = client(&a, "pub").await;

    // B's one worker is blocked until told: B reads nothing.
    let (unblock, blocked) = std::sync::mpsc::channel::<()>();
    stalled.spawn(async move {
        let _ = blocked.recv();
    });
    let acknowledged = publish_all(&mut publisher).await;
    assert_eq!(acknowledged.len(), MESSAGES as usize, "A acknowledged all");
    tokio::time::sleep(BLOCKED_AFTER_ACKS).await;
    unblock.send(()).expect("B's worker waits");

    let tally = receive_all(&mut subscriber, &acknowledged).await;
    let lost: Vec<u32> = (0..MESSAGES)
        .filter(|i| !tally.times.contains_key(i))
        .collect();
    let qos2_twice: Vec<u32> = tally
        .times
        .iter()
        .filter(|&(&i, &n)| qos(i) == QoS::ExactlyOnce && n > 1)
        .map(|(&i, _)| i)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {MESSAGES} acknowledged messages lost (first: {:?})",
        lost.len(),
        lost.first()
    );
    assert!(
        qos2_twice.is_empty(),
        "QoS 2 delivered twice: {qos2_twice:?}"
    );
    assert_eq!(tally.out_of_order, 0, "per-publisher order kept");
    drop(b);
    stalled.shutdown_background();
}
