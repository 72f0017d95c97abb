//! Transports: MQTT over WebSocket, and one message fabric across ports.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wardgate_protocol::{ConnAck, DecodeLimits, Packet, ProtocolVersion, QoS, decode, encode};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, connect_packet, publish_packet};

#[tokio::test]
async fn websocket_publish_reaches_a_tcp_subscriber() {
    let b = TestBroker::start().await;
    let (mut sub, _) = RawClient::connect(b.tcp, ProtocolVersion::V5, "tcp-sub").await;
    sub.subscribe("x/#", QoS::AtMostOnce).await;

    let mut req = format!("ws://{}/mqtt", b.ws)
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
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
