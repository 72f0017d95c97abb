//! A node cut off from JetStream stops acknowledging (docs/cluster.md, guarantee 10): a QoS 1/2
//! PUBLISH JetStream cannot store is never acknowledged; once the publish timeout has passed,
//! its publisher's connection ends (v5: DISCONNECT 0x89, v3.1.1: closed) so the client sends it
//! again elsewhere, while the node's local subscribers and QoS 0 traffic keep working. Real NATS
//! servers, paused (no quorum) or killed (NATS out of reach).

use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{client, node, received};

/// Longer than the node's publish timeout (10 s) plus a loaded machine's delays.
const ENDS_WITHIN: Duration = Duration::from_secs(40);

/// What comes on `client` until it closes: the packets, in order. Panics if it does not close
/// within [`ENDS_WITHIN`].
async fn until_closed(client: &mut RawClient) -> Vec<Packet> {
    let mut packets = Vec::new();
    loop {
        match client.recv_within(ENDS_WITHIN).await {
            Received::Packet(p) => packets.push(p),
            Received::Closed => return packets,
            Received::Timeout => panic!("the connection did not end; it got {packets:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_jetstream_quorum_a_v5_publisher_gets_0x89_and_no_puback_while_local_traffic_goes_on()
 {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let mut subscriber = client(&a, "sub").await;
    subscriber.subscribe("cut/#", QoS::AtLeastOnce).await;
    let mut publisher = client(&a, "pub").await;
    let mut quiet = client(&a, "qos0").await;

    // Two of three servers hung: JetStream has no quorum.
    nats.pause(1).expect("pause");
    nats.pause(2).expect("pause");
    let publish = publish_packet("cut/1", b"m1", QoS::AtLeastOnce, false, 1);
    publisher.send(&Packet::Publish(publish)).await;
    // The local subscriber gets it at once (local copies are routed before JetStream's ack).
    let got = received(&mut subscriber).await;
    assert_eq!(&got.payload[..], b"m1");
    if let Some(id) = got.qos.packet_id() {
        subscriber.puback(id).await;
    }

    let packets = until_closed(&mut publisher).await;
    assert!(
        !packets.iter().any(|p| matches!(p, Packet::PubAck(_))),
        "nothing JetStream did not store is acknowledged: {packets:?}"
    );
    match packets.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::SERVER_BUSY),
        other => panic!("expected DISCONNECT 0x89, got {other:?}"),
    }

    // The subscriber stayed, and QoS 0 between local clients goes on.
    quiet
        .publish("cut/q0", b"still here", QoS::AtMostOnce, false, 0)
        .await;
    let got = received(&mut subscriber).await;
    assert_eq!(&got.payload[..], b"still here");

    // The quorum back, the node acknowledges again: a client that was sent away (0x89) while
    // the first message was still waiting for its acknowledgement sends again, as real ones do.
    nats.resume(1).expect("resume");
    nats.resume(2).expect("resume");
    let deadline = tokio::time::Instant::now() + ENDS_WITHIN;
    for attempt in 1u16.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never acknowledged again"
        );
        let mut again = RawClient::open(a.mqtt.tcp, ProtocolVersion::V5).await;
        let connect = connect_packet(ProtocolVersion::V5, "pub2", true);
        again.send(&Packet::Connect(Box::new(connect))).await;
        // The client ID's claim waits for the ownership bucket's new leaders.
        match again.recv_within(ENDS_WITHIN).await {
            Received::Packet(Packet::ConnAck(ack)) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        let publish = publish_packet("cut/2", b"m2", QoS::AtLeastOnce, false, attempt);
        again.send(&Packet::Publish(publish)).await;
        match again.recv_within(ENDS_WITHIN).await {
            Received::Packet(Packet::PubAck(ack)) => {
                assert_eq!(ack.reason, ReasonCode::SUCCESS);
                break;
            }
            Received::Packet(Packet::Disconnect(d)) => {
                assert_eq!(d.reason, ReasonCode::SERVER_BUSY);
            }
            other => panic!("expected a PUBACK or DISCONNECT 0x89, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_out_of_reach_of_nats_closes_a_v311_qos2_publisher_without_pubrec() {
    let mut nats = NatsCluster::start().expect("NATS cluster");
    let a = node(&nats, 0, "a").await;
    let (mut publisher, ack) = RawClient::connect_with(
        a.mqtt.tcp,
        connect_packet(ProtocolVersion::V311, "pub311", true),
    )
    .await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    let mut subscriber = client(&a, "sub").await;
    subscriber.subscribe("gone/#", QoS::AtMostOnce).await;

    // Every NATS server is gone (the node would reconnect to any one left: the client learns
    // the cluster's servers).
    for server in 0..nats.len() {
        nats.kill(server);
    }
    let publish = publish_packet("gone/1", b"m1", QoS::ExactlyOnce, false, 1);
    publisher.send(&Packet::Publish(publish)).await;
    let got = received(&mut subscriber).await;
    assert_eq!(&got.payload[..], b"m1");

    let packets = until_closed(&mut publisher).await;
    assert!(
        packets.is_empty(),
        "a v3.1.1 client gets no PUBREC and no DISCONNECT, only a closed connection: {packets:?}"
    );
}
