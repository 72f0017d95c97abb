//! Bad input: each class of malformed packet gets the right reason code (v5) or a close (v3.1.1),
//! and the broker goes on serving everyone else.

use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received};

/// Sends `bytes` after a successful v5 CONNECT and returns the DISCONNECT reason.
async fn v5_disconnect_reason(b: &TestBroker, bytes: &[u8]) -> ReasonCode {
    let (mut c, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "bad").await;
    c.send_bytes(bytes).await;
    match c.recv().await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(c.recv().await, Received::Closed, "closed after DISCONNECT");
            d.reason
        }
        other => panic!("expected DISCONNECT for {bytes:02x?}, got {other:?}"),
    }
}

async fn still_serves(b: &TestBroker) {
    let (mut c, ack) = RawClient::connect(b.tcp, ProtocolVersion::V5, "healthy").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    c.send(&Packet::PingReq).await;
    assert_eq!(c.packet().await, Packet::PingResp);
}

#[tokio::test]
async fn each_malformed_class_gets_its_reason_code() {
    let b = TestBroker::start().await;
    let cases: &[(&str, &[u8], ReasonCode)] = &[
        (
            "QoS 3 publish",
            &[0x36, 0x04, 0x00, 0x01, b't', 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "reserved flags on SUBSCRIBE",
            &[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b't'],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "packet id 0 on QoS 1",
            &[0x32, 0x06, 0x00, 0x01, b't', 0x00, 0x00, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
        (
            "wildcard in topic name",
            &[0x30, 0x04, 0x00, 0x01, b'#', 0x00],
            ReasonCode::TOPIC_NAME_INVALID,
        ),
        (
            "remaining length of 5 bytes",
            &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "second CONNECT",
            &[
                0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00,
                0x00,
            ],
            ReasonCode::PROTOCOL_ERROR,
        ),
        (
            "invalid UTF-8 topic",
            &[0x30, 0x05, 0x00, 0x02, 0xc3, 0x28, 0x00],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "duplicate property",
            &[
                0x30, 0x0a, 0x00, 0x01, b't', 0x04, 0x01, 0x00, 0x01, 0x01, b'x', b'y',
            ],
            ReasonCode::PROTOCOL_ERROR,
        ),
        (
            "PUBREL with bad flags",
            &[0x60, 0x02, 0x00, 0x01],
            ReasonCode::MALFORMED_PACKET,
        ),
        (
            "empty SUBSCRIBE",
            &[0x82, 0x03, 0x00, 0x01, 0x00],
            ReasonCode::PROTOCOL_ERROR,
        ),
    ];
    for (name, bytes, _) in cases {
        let got = v5_disconnect_reason(&b, bytes).await;
        let expected = cases.iter().find(|c| c.0 == *name).map(|c| c.2);
        assert!(got.is_error(), "{name}: got {got:?}");
        assert_eq!(Some(got), expected, "{name}");
    }
    still_serves(&b).await;
}

#[tokio::test]
async fn v311_malformed_packet_closes_the_connection() {
    let b = TestBroker::start().await;
    let (mut c, _) = RawClient::connect(b.tcp, ProtocolVersion::V311, "bad").await;
    c.send_bytes(&[0x36, 0x04, 0x00, 0x01, b't', 0x00]).await;
    assert_eq!(c.recv().await, Received::Closed);
    still_serves(&b).await;
}

/// A broker that accepts packets of at most 1 KiB.
async fn small_packets() -> TestBroker {
    TestBroker::with(
        Default::default(),
        wardgate_server::ConnectionSettings {
            max_packet_size: 1024,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn oversized_packet_is_refused_before_it_is_read() {
    let b = small_packets().await;
    // Announces 100 MB and sends nothing more: the broker must not wait for or allocate it.
    let reason = v5_disconnect_reason(&b, &[0x30, 0x80, 0x80, 0x80, 0x30]).await;
    assert_eq!(reason, ReasonCode::PACKET_TOO_LARGE);
    still_serves(&b).await;
}

#[tokio::test]
async fn first_packet_not_connect_is_closed() {
    let b = TestBroker::start().await;
    let mut c = RawClient::open(b.tcp, ProtocolVersion::V5).await;
    c.send(&Packet::PingReq).await;
    assert_eq!(c.recv().await, Received::Closed);
}

#[tokio::test]
async fn unsupported_protocol_version_gets_connack_rc_1() {
    let b = TestBroker::start().await;
    let mut c = RawClient::open(b.tcp, ProtocolVersion::V311).await;
    c.send_bytes(&[
        0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00,
    ])
    .await;
    match c.recv().await {
        Received::Packet(Packet::ConnAck(a)) => assert_eq!(a.reason.to_v311_connack(), 1),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(c.recv().await, Received::Closed);
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_connect_timeout() {
    let b = TestBroker::with(
        Default::default(),
        wardgate_server::ConnectionSettings {
            connect_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let mut silent = RawClient::open(b.tcp, ProtocolVersion::V5).await;
    assert_eq!(
        silent.recv_within(Duration::from_secs(3)).await,
        Received::Closed
    );
}

#[tokio::test]
async fn half_written_packet_does_not_block_others() {
    let b = TestBroker::start().await;
    let mut stuck = RawClient::open(b.tcp, ProtocolVersion::V5).await;
    stuck.send_bytes(&[0x10, 0x20, 0x00, 0x04, b'M']).await;
    let (mut sub, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "sub").await;
    sub.subscribe("ok", QoS::AtMostOnce).await;
    let (mut publ, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "pub").await;
    publ.publish("ok", b"fine", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&sub.publish_received().await.payload[..], b"fine");
    let (mut stuck_mid, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "mid").await;
    stuck_mid.send_bytes(&[0x30, 0x10, 0x00]).await;
    publ.publish("ok", b"still", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(&sub.publish_received().await.payload[..], b"still");
}

/// What a client that goes on writing after the broker ended the connection sees: it writes
/// `first`, then `more` every 10 ms for 200 ms, then reads to the end. Returns the error of the
/// first write that failed, the packets read, and how reading ended (`None`: a clean close).
async fn keep_writing_then_read(
    addr: std::net::SocketAddr,
    first: &[u8],
    more: &[u8],
) -> (Option<std::io::Error>, Vec<Packet>, Option<std::io::Error>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.write_all(first).await.expect("first write");
    let mut write_error = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Err(e) = c.write_all(more).await {
            write_error = Some(e);
            break;
        }
    }
    let mut buf = bytes::BytesMut::new();
    let read_error = loop {
        buf.reserve(4096);
        match tokio::time::timeout(Duration::from_secs(5), c.read_buf(&mut buf)).await {
            Err(_) => panic!("the broker never closed"),
            Ok(Ok(0)) => break None,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Some(e),
        }
    };
    let mut packets = Vec::new();
    let limits = wardgate_protocol::DecodeLimits::default();
    while let Ok(Some(p)) = wardgate_protocol::decode(&mut buf, Some(ProtocolVersion::V5), &limits)
    {
        packets.push(p);
    }
    (write_error, packets, read_error)
}

fn v5_connect_bytes(connect: wardgate_protocol::Connect) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    wardgate_protocol::encode(
        &Packet::Connect(Box::new(connect)),
        ProtocolVersion::V5,
        &mut out,
    );
    out
}

/// After DISCONNECT 0x95 the broker shuts its side and reads on for a while instead of closing
/// with the client's data unread, which resets the connection: a client still writing the
/// oversized packet's body gets no write error and reads the reason code, then a clean close.
#[tokio::test]
async fn a_client_still_writing_after_disconnect_reads_the_reason_not_a_reset() {
    let b = small_packets().await;
    let mut first = v5_connect_bytes(wardgate_testkit::client::connect_packet(
        ProtocolVersion::V5,
        "writer",
        true,
    ));
    // A PUBLISH announcing 64 KiB, and its body in 4 KiB pieces after.
    first.extend_from_slice(&[0x30, 0x80, 0x80, 0x04, 0x00, 0x01, b't']);
    first.extend_from_slice(&[0u8; 4096]);
    let (write_error, packets, read_error) =
        keep_writing_then_read(b.tcp, &first, &[0u8; 4096]).await;
    assert!(write_error.is_none(), "write failed: {write_error:?}");
    assert!(read_error.is_none(), "read failed: {read_error:?}");
    assert!(
        matches!(packets.first(), Some(Packet::ConnAck(_))),
        "{packets:?}"
    );
    assert!(
        matches!(packets.get(1), Some(Packet::Disconnect(d)) if d.reason == ReasonCode::PACKET_TOO_LARGE),
        "{packets:?}"
    );
}

/// The same for a CONNACK that refuses the CONNECT (0x8C: no enhanced authentication on this
/// port) while the client pipelines PUBLISH packets behind it.
#[tokio::test]
async fn a_client_still_writing_after_a_refusing_connack_reads_it_not_a_reset() {
    let b = TestBroker::start().await;
    let mut connect = wardgate_testkit::client::connect_packet(ProtocolVersion::V5, "sat", true);
    connect.properties.authentication_method = Some("K8S-SAT".into());
    let mut publish = bytes::BytesMut::new();
    let p = wardgate_testkit::client::publish_packet("t", &[0u8; 1000], QoS::AtMostOnce, false, 0);
    for _ in 0..4 {
        wardgate_protocol::encode(
            &Packet::Publish(p.clone()),
            ProtocolVersion::V5,
            &mut publish,
        );
    }
    let mut first = v5_connect_bytes(connect);
    first.extend_from_slice(&publish);
    let (write_error, packets, read_error) = keep_writing_then_read(b.tcp, &first, &publish).await;
    assert!(write_error.is_none(), "write failed: {write_error:?}");
    assert!(read_error.is_none(), "read failed: {read_error:?}");
    assert!(
        matches!(packets.as_slice(), [Packet::ConnAck(a)] if a.reason == ReasonCode::BAD_AUTHENTICATION_METHOD),
        "{packets:?}"
    );
}
