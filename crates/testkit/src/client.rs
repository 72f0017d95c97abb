//! A raw MQTT client on the protocol crate, for exact packet-level assertions: it sends exactly
//! the packets (or bytes) a test gives it and returns exactly what the broker sent back.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wardgate_protocol::{
    AckProperties, ConnAck, Connect, ConnectProperties, DecodeLimits, Packet, PacketId,
    ProtocolVersion, PubAck, Publish, PublishProperties, PublishQos, QoS, SubAck, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName, decode, encode,
};

/// How long `recv` waits before a test fails.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A raw client connection.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// The version packets are encoded and decoded with.
    pub version: ProtocolVersion,
}

/// What `recv` saw.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // test-only; boxing would make every assertion noisier
pub enum Received {
    /// A packet.
    Packet(Packet),
    /// The broker closed the connection.
    Closed,
    /// Nothing arrived in time.
    Timeout,
}

impl RawClient {
    /// Opens a TCP connection (no MQTT yet).
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        RawClient::try_open(addr, version)
            .await
            .expect("connect to the broker")
    }

    /// [`RawClient::open`] for a broker that may be down (restarting, killed): the error instead
    /// of a panic.
    pub async fn try_open(
        addr: SocketAddr,
        version: ProtocolVersion,
    ) -> std::io::Result<RawClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            buf: BytesMut::new(),
            version,
        })
    }

    /// Opens a connection and completes CONNECT/CONNACK with a clean session.
    pub async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
    ) -> (RawClient, ConnAck) {
        RawClient::connect_with(addr, connect_packet(version, client_id, true)).await
    }

    /// Opens a connection and sends `connect`, returning the CONNACK.
    pub async fn connect_with(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
        let mut c = RawClient::open(addr, connect.protocol).await;
        c.send(&Packet::Connect(Box::new(connect))).await;
        match c.recv().await {
            Received::Packet(Packet::ConnAck(ack)) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(packet, self.version, &mut out);
        self.send_bytes(&out).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        // A broker that already closed may reset; tests then see it in `recv`.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Waits for the next packet, the close, or `RECV_TIMEOUT`.
    pub async fn recv(&mut self) -> Received {
        self.recv_within(RECV_TIMEOUT).await
    }

    /// Waits for the next packet, the close, or `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Received {
        let limits = DecodeLimits::default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match decode(&mut self.buf, Some(self.version), &limits) {
                Ok(Some(packet)) => return Received::Packet(packet),
                Ok(None) => {}
                Err(e) => panic!("the broker sent a malformed packet: {e}"),
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Received::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Received::Closed,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Waits for a packet, failing the test on a close or timeout.
    pub async fn packet(&mut self) -> Packet {
        match self.recv().await {
            Received::Packet(p) => p,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// Waits for a PUBLISH, failing the test on anything else.
    pub async fn publish_received(&mut self) -> Publish {
        match self.packet().await {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Subscribes to one filter and returns the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(filter, SubscriptionOptions::new(qos), None)
            .await
    }

    /// Subscribes with explicit options and identifier.
    pub async fn subscribe_with(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> SubAck {
        let sub = Subscribe {
            packet_id: pid(1),
            subscription_identifier: id,
            user_properties: Vec::new(),
            filters: vec![(TopicFilter::new(filter).expect("valid filter"), options)],
        };
        self.send(&Packet::Subscribe(sub)).await;
        match self.packet().await {
            Packet::SubAck(ack) => ack,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes; for QoS 1/2 uses packet id `id` and returns the first acknowledgement.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        id: u16,
    ) -> Option<Packet> {
        let publish = publish_packet(topic, payload, qos, retain, id);
        self.send(&Packet::Publish(publish)).await;
        if qos == QoS::AtMostOnce {
            None
        } else {
            Some(self.packet().await)
        }
    }

    /// Sends PUBACK for `id`.
    pub async fn puback(&mut self, id: PacketId) {
        let ack = PubAck {
            packet_id: id,
            reason: wardgate_protocol::ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        };
        self.send(&Packet::PubAck(ack)).await;
    }

    /// Sends DISCONNECT 0x00 and closes.
    pub async fn disconnect(mut self) {
        let d = wardgate_protocol::Disconnect::new(wardgate_protocol::ReasonCode::SUCCESS);
        self.send(&Packet::Disconnect(d)).await;
        let _ = self.stream.shutdown().await;
    }

    /// Closes the socket without DISCONNECT (the will fires).
    pub async fn drop_connection(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// A packet id for tests.
pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("test packet ids are non-zero")
}

/// A CONNECT with keep alive 60 and no will.
pub fn connect_packet(version: ProtocolVersion, client_id: &str, clean_start: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A PUBLISH; `id` is used for QoS 1/2.
pub fn publish_packet(topic: &str, payload: &[u8], qos: QoS, retain: bool, id: u16) -> Publish {
    Publish {
        dup: false,
        qos: match qos {
            QoS::AtMostOnce => PublishQos::AtMostOnce,
            level => PublishQos::new(level, pid(id)),
        },
        retain,
        topic: Some(TopicName::new(topic).expect("valid topic")),
        properties: PublishProperties::default(),
        payload: Bytes::copy_from_slice(payload),
    }
}
