//! Transports: MQTT over WebSocket, and one message fabric across ports.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wardgate_protocol::{ConnAck, DecodeLimits, Packet, ProtocolVersion, QoS, decode, encode};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, connect_packet, publish_packet};

/// A WebSocket connection to `/mqtt` offering subprotocol `mqtt`.
async fn ws_connect(
    addr: std::net::SocketAddr,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let mut req = format!("ws://{addr}/mqtt")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade")
}

#[tokio::test]
async fn websocket_publish_reaches_a_tcp_subscriber() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "tcp-sub").await;
    sub.subscribe("x/#", QoS::AtMostOnce).await;

    let (mut ws, resp) = ws_connect(b.ws).await;
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"mqtt"[..])
    );

    let mut out = bytes::BytesMut::new();
    encode(
        &Packet::Connect(Box::new(connect_packet(
            ProtocolVersion::V5,
            "ws-pub",
            true,
        ))),
        ProtocolVersion::V5,
        &mut out,
    );
    ws.send(Message::Binary(out.split().freeze()))
        .await
        .expect("send CONNECT");
    let Some(Ok(Message::Binary(data))) = ws.next().await else {
        panic!("no CONNACK frame")
    };
    let mut buf = bytes::BytesMut::from(&data[..]);
    let ack = decode(
        &mut buf,
        Some(ProtocolVersion::V5),
        &DecodeLimits::default(),
    );
    assert!(matches!(ack, Ok(Some(Packet::ConnAck(ConnAck { .. })))));

    encode(
        &Packet::Publish(publish_packet(
            "x/ws",
            b"over-ws",
            QoS::AtMostOnce,
            false,
            0,
        )),
        ProtocolVersion::V5,
        &mut out,
    );
    ws.send(Message::Binary(out.split().freeze()))
        .await
        .expect("send PUBLISH");
    assert_eq!(&sub.publish_received().await.payload[..], b"over-ws");
}

#[tokio::test]
async fn websocket_wrong_path_is_refused() {
    let b = TestBroker::start().await;
    let req = format!("ws://{}/elsewhere", b.ws)
        .into_client_request()
        .expect("request");
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

/// CONNECT, SUBSCRIBE, PUBLISH (to the topic just subscribed) and PINGREQ in one write, with
/// keep alive 0, as paho-mqtt sends them after `connect(); subscribe(); publish()`: every answer
/// comes at once [MQTT-3.1.4-5], not only the CONNACK (the rest used to wait in the read buffer
/// for bytes that never came).
fn pipelined_with_connect(version: ProtocolVersion) -> bytes::BytesMut {
    let mut connect = connect_packet(version, "pipelined", true);
    connect.keep_alive = 0;
    let subscribe = wardgate_protocol::Subscribe {
        packet_id: wardgate_testkit::client::pid(1),
        subscription_identifier: None,
        user_properties: Vec::new(),
        filters: vec![(
            wardgate_protocol::TopicFilter::new("pipelined/x").expect("filter"),
            wardgate_protocol::SubscriptionOptions::new(QoS::AtMostOnce),
        )],
    };
    let mut out = bytes::BytesMut::new();
    for packet in [
        Packet::Connect(Box::new(connect)),
        Packet::Subscribe(subscribe),
        Packet::Publish(publish_packet(
            "pipelined/x",
            b"same write",
            QoS::AtLeastOnce,
            false,
            2,
        )),
        Packet::PingReq,
    ] {
        encode(&packet, version, &mut out);
    }
    out
}

/// Reads what answers [`pipelined_with_connect`] within a second, whatever the transport.
async fn answers_to_pipelined<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    version: ProtocolVersion,
) -> Vec<&'static str> {
    use tokio::io::AsyncReadExt;
    let mut buf = bytes::BytesMut::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    while seen.len() < 5 {
        match decode(&mut buf, Some(version), &DecodeLimits::default()) {
            Ok(Some(packet)) => {
                seen.push(match packet {
                    Packet::ConnAck(_) => "CONNACK",
                    Packet::SubAck(_) => "SUBACK",
                    Packet::Publish(_) => "PUBLISH",
                    Packet::PubAck(_) => "PUBACK",
                    Packet::PingResp => "PINGRESP",
                    _ => "other",
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => panic!("malformed answer: {e}"),
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    seen.sort_unstable();
    seen
}

const ALL_ANSWERED: [&str; 5] = ["CONNACK", "PINGRESP", "PUBACK", "PUBLISH", "SUBACK"];

#[tokio::test]
async fn packets_in_the_same_write_as_connect_are_answered_at_once() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let mut c = tokio::net::TcpStream::connect(b.tcp)
            .await
            .expect("connect");
        let bytes = pipelined_with_connect(version);
        tokio::io::AsyncWriteExt::write_all(&mut c, &bytes)
            .await
            .expect("write");
        assert_eq!(
            answers_to_pipelined(&mut c, version).await,
            ALL_ANSWERED,
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn packets_in_the_same_websocket_frame_as_connect_are_answered_at_once() {
    let b = TestBroker::start().await;
    let (mut ws, _) = ws_connect(b.ws).await;
    let bytes = pipelined_with_connect(ProtocolVersion::V5);
    ws.send(Message::Binary(bytes.freeze()))
        .await
        .expect("send");
    let mut buf = bytes::BytesMut::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        while let Ok(Some(packet)) = decode(
            &mut buf,
            Some(ProtocolVersion::V5),
            &DecodeLimits::default(),
        ) {
            seen.push(packet);
        }
        if seen.len() >= 5 {
            break;
        }
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => buf.extend_from_slice(&data),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

/// The same over TLS: the connect phase reads the CONNECT and what came with it through
/// rustls, so the rest is in the read buffer, not in the socket.
#[tokio::test]
async fn packets_in_the_same_tls_record_as_connect_are_answered_at_once() {
    use std::sync::Arc;
    use wardgate_security::pki::issue::{CertRequest, Key, Profile, Signer, provider};
    let day = std::time::Duration::from_secs(86_400);
    let ca_key = Key::generate(wardgate_config::KeyAlgorithm::Ec256).expect("key");
    let ca_cert = wardgate_security::pki::issue::self_signed(
        &CertRequest::new("test root", Profile::RootCa, day),
        &ca_key,
    )
    .expect("root");
    let ca = Signer::new(vec![ca_cert.clone()], "root", ca_key, "key", &provider()).expect("ca");
    let key = Key::generate(wardgate_config::KeyAlgorithm::Ec256).expect("key");
    let cert = ca
        .issue(
            &CertRequest::new("localhost", Profile::Server, day).with_sans(&["localhost"]),
            &key,
        )
        .expect("server certificate");
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.der().clone_key())
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

    let broker = Arc::new(wardgate_core::Broker::new(Default::default()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let bound = wardgate_server::bind(wardgate_server::PortSpec {
        name: "test/tls".into(),
        port: 0,
        addrs: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))],
        protocol: wardgate_server::PortProtocol::Mqtt,
    })
    .expect("bind");
    let addr = bound.local_addrs()[0];
    bound.serve(
        broker,
        Default::default(),
        Default::default(),
        Default::default(),
        Some(Arc::new(arc_swap::ArcSwap::from_pointee(server))),
        Default::default(),
        shutdown,
    );

    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let bytes = pipelined_with_connect(ProtocolVersion::V5);
    tokio::io::AsyncWriteExt::write_all(&mut tls, &bytes)
        .await
        .expect("write");
    tokio::io::AsyncWriteExt::flush(&mut tls)
        .await
        .expect("flush");
    assert_eq!(
        answers_to_pipelined(&mut tls, ProtocolVersion::V5).await,
        ALL_ANSWERED
    );
}
