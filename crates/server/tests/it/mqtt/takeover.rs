//! A connection that takes a client ID over while the previous connection of that client ID is
//! still being served: everything the previous one was sent up to its DISCONNECT is processed
//! before the new one is answered. Loops of back-to-back reconnections, each bounded in time.

use std::time::Duration;

use bytes::Bytes;
use wardgate_protocol::{
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, QoS, ReasonCode, TopicName, Will,
};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};

const V: ProtocolVersion = ProtocolVersion::V5;

/// Sends PUBLISH QoS 0 `payload` on `topic` and DISCONNECT 0x00 (with `session_expiry`, if
/// any) in one write, then closes the socket.
async fn publish_and_disconnect(
    mut c: RawClient,
    topic: &str,
    payload: &[u8],
    session_expiry: Option<u32>,
) {
    let mut out = bytes::BytesMut::new();
    let publish = publish_packet(topic, payload, QoS::AtMostOnce, false, 0);
    wardgate_protocol::encode(&Packet::Publish(publish), c.version, &mut out);
    let disconnect = Disconnect {
        reason: ReasonCode::SUCCESS,
        properties: DisconnectProperties {
            session_expiry_interval: session_expiry,
            ..Default::default()
        },
    };
    wardgate_protocol::encode(&Packet::Disconnect(disconnect), c.version, &mut out);
    c.send_bytes(&out).await;
    c.drop_connection().await;
}

/// The next connection of a client: opened first, then `prev` sends PUBLISH QoS 0 `payload` on
/// `loop/m` and DISCONNECT 0x00 (with `session_expiry`) and closes, and at once `next` is sent
/// on the new connection, so that it arrives while `prev`'s last packets may still be unread.
async fn reconnect(
    b: &TestBroker,
    prev: RawClient,
    payload: &[u8],
    session_expiry: Option<u32>,
    next: wardgate_protocol::Connect,
) -> (RawClient, wardgate_protocol::ConnAck) {
    let mut c = RawClient::open(b.tcp, next.protocol).await;
    publish_and_disconnect(prev, "loop/m", payload, session_expiry).await;
    c.send(&Packet::Connect(Box::new(next))).await;
    match c.recv().await {
        Received::Packet(Packet::ConnAck(ack)) => (c, ack),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// What `sub` receives until nothing more comes for 500 ms: (messages on `loop/m`, wills).
async fn tally(sub: &mut RawClient) -> (usize, usize) {
    let (mut messages, mut wills) = (0, 0);
    while let Received::Packet(p) = sub.recv_within(Duration::from_millis(500)).await {
        if let Packet::Publish(p) = p {
            match p.topic.as_ref().map(TopicName::as_str) {
                Some("loop/will") => wills += 1,
                _ => messages += 1,
            }
        }
    }
    (messages, wills)
}

async fn subscriber(b: &TestBroker) -> RawClient {
    let (mut sub, _) = RawClient::connect(b.tcp, V, "loop-sub").await;
    sub.subscribe("loop/#", QoS::AtMostOnce).await;
    sub
}

/// 200 back-to-back cycles of connect / PUBLISH QoS 0 / DISCONNECT / close with one client ID:
/// each new connection came while the previous one's packets could still be unread, which took
/// the session over first and lost the message (57 of 200 lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_reconnections_lose_no_message_sent_before_disconnect() {
    let b = TestBroker::start().await;
    let mut sub = subscriber(&b).await;
    let cycles = 200;
    let started = std::time::Instant::now();
    let (mut c, _) = RawClient::connect(b.tcp, V, "loop-pub").await;
    for i in 1..cycles {
        let next = connect_packet(V, "loop-pub", true);
        c = reconnect(&b, c, format!("{i}").as_bytes(), None, next)
            .await
            .0;
    }
    publish_and_disconnect(c, "loop/m", b"last", None).await;
    let (messages, wills) = tally(&mut sub).await;
    assert_eq!((messages, wills), (cycles, 0), "in {:?}", started.elapsed());
}

/// DISCONNECT 0x00 discards the will [MQTT-3.14.4-3], also when the client reconnects at once:
/// the takeover published the will of a connection whose DISCONNECT it had not read yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_discarded_by_disconnect_is_not_published_by_an_immediate_reconnection() {
    let b = TestBroker::start().await;
    let mut sub = subscriber(&b).await;
    let runs = 30;
    let with_will = || {
        let mut c = connect_packet(V, "loop-will", true);
        c.will = Some(Will {
            topic: TopicName::new("loop/will").expect("valid"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        });
        c
    };
    let (mut c, _) = RawClient::connect_with(b.tcp, with_will()).await;
    for i in 1..runs {
        c = reconnect(&b, c, format!("{i}").as_bytes(), None, with_will())
            .await
            .0;
    }
    publish_and_disconnect(c, "loop/m", b"last", None).await;
    assert_eq!(tally(&mut sub).await, (runs, 0), "(messages, wills)");
}

/// DISCONNECT with Session Expiry 0 ends the session: a reconnection with Clean Start 0 right
/// after it gets Session Present 0 [MQTT-3.2.2-3] (it got 1 in about a third of the runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_disconnect_is_not_present_for_an_immediate_reconnection() {
    let b = TestBroker::start().await;
    let mut sub = subscriber(&b).await;
    let runs = 30;
    let resuming = || {
        let mut c = connect_packet(V, "loop-expiry", false);
        c.properties.session_expiry_interval = Some(60);
        c
    };
    let (mut c, _) = RawClient::connect_with(b.tcp, resuming()).await;
    let mut present = 0;
    for i in 1..runs {
        let (next, ack) = reconnect(&b, c, format!("{i}").as_bytes(), Some(0), resuming()).await;
        present += usize::from(ack.session_present);
        c = next;
    }
    publish_and_disconnect(c, "loop/m", b"last", Some(0)).await;
    assert_eq!(
        present, 0,
        "reconnections of {runs} that got Session Present 1"
    );
    assert_eq!(tally(&mut sub).await, (runs, 0), "(messages, wills)");
}
