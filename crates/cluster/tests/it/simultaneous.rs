//! One client ID connecting on two nodes at the same moment (docs/cluster.md, "Simultaneous
//! connects"): whatever the interleaving of the two claims, afterwards exactly one connection
//! is attached and the ownership bucket names its node; the other was told to go (v5:
//! DISCONNECT 0x8E) or never got in.

use std::time::Duration;

use async_nats::jetstream;
use wardgate_protocol::{Packet, ProtocolVersion, ReasonCode};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{TestNode, node};

/// Rounds of two simultaneous connects.
const ROUNDS: usize = 40;
/// The step by which the second connect of a round starts later than the first.
const STAGGER_MICROS: u64 = 600;
/// How long the cluster may take to settle on one connection.
const SETTLE_WITHIN: Duration = Duration::from_secs(20);

/// Opens a connection to `node` and sends the CONNECT of `id`; the client with what came back.
async fn connect(node: &TestNode, id: &str, persistent: bool) -> (RawClient, Received) {
    let mut connect = connect_packet(ProtocolVersion::V5, id, !persistent);
    if persistent {
        connect.properties.session_expiry_interval = Some(60);
    }
    let mut client = RawClient::open(node.mqtt.tcp, ProtocolVersion::V5).await;
    client.send(&Packet::Connect(Box::new(connect))).await;
    let answer = client.recv_within(Duration::from_secs(30)).await;
    (client, answer)
}

fn connected(node: &TestNode, id: &str) -> bool {
    node.mqtt
        .broker
        .session(id)
        .is_some_and(|s| s.is_connected())
}

/// The loser's connection ends: DISCONNECT 0x8E, or closed (it had not got its CONNACK yet).
async fn ended(client: &mut RawClient) {
    loop {
        match client.recv_within(Duration::from_secs(10)).await {
            Received::Packet(Packet::Disconnect(d)) => {
                assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER);
                return;
            }
            Received::Packet(Packet::ConnAck(_)) => {}
            Received::Closed => return,
            other => panic!("the losing connection should end, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connects_of_one_client_id_at_once_on_two_nodes_leave_exactly_one() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let b = node(&nats, 1, "b").await;
    let bucket = jetstream::new(async_nats::connect(nats.url(2)).await.expect("nats"))
        .get_key_value("WG_CLIENTS")
        .await
        .expect("the ownership bucket");
    for round in 0..ROUNDS {
        let id = format!("twin-{round}");
        let persistent = round % 2 == 1;
        // The second connect starts a little later each round, sweeping the moments at which
        // the two claims can meet.
        let offset = Duration::from_micros(STAGGER_MICROS * (round as u64 / 2));
        let later = async {
            tokio::time::sleep(offset).await;
            connect(&b, &id, persistent).await
        };
        let ((mut on_a, _), (mut on_b, _)) = tokio::join!(connect(&a, &id, persistent), later);
        let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
        let winner = loop {
            let owner = bucket
                .get(&id)
                .await
                .expect("bucket read")
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            let (on_a_now, on_b_now) = (connected(&a, &id), connected(&b, &id));
            match (on_a_now, on_b_now, owner.as_deref()) {
                (true, false, Some("a")) => break "a",
                (false, true, Some("b")) => break "b",
                state => assert!(
                    tokio::time::Instant::now() < deadline,
                    "round {round}: not exactly one connection named by the bucket after {SETTLE_WITHIN:?}: (on a, on b, owner) = {state:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let loser = if winner == "a" { &mut on_b } else { &mut on_a };
        ended(loser).await;
        // And it stays so: the winner is not kicked by a late event.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let node = if winner == "a" { &a } else { &b };
        assert!(
            connected(node, &id),
            "round {round}: the winner on {winner} stays"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_claim_whose_takeover_request_never_came_still_ends_the_connection_here() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let bucket = jetstream::new(async_nats::connect(nats.url(1)).await.expect("nats"))
        .get_key_value("WG_CLIENTS")
        .await
        .expect("the ownership bucket");
    let (mut client, answer) = connect(&a, "solo", true).await;
    assert!(
        matches!(answer, Received::Packet(Packet::ConnAck(ref ack)) if ack.reason == ReasonCode::SUCCESS),
        "{answer:?}"
    );
    // Another node's claim, as when its takeover request was lost or timed out: the bucket
    // names that node at a later revision.
    let revision = bucket
        .entry("solo")
        .await
        .expect("read")
        .expect("claimed")
        .revision;
    bucket
        .update("solo", "elsewhere".into(), revision)
        .await
        .expect("the later claim");
    match client.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER)
        }
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    assert!(
        a.mqtt.broker.session("solo").is_none(),
        "the session ended here"
    );
}
