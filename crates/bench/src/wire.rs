//! Raw MQTT connections for the load generator, on the protocol crate: connect, subscribe, a
//! PUBLISH template patched in place for each message, and a PUBLISH fast path for reading.
//!
//! Receiving uses [`wardgate_protocol::peek_size`] for framing and the codec's `decode` for every
//! packet but PUBLISH: decoding a PUBLISH allocates its topic, which the load generator has no use
//! for, so [`parse_publish`] reads just the QoS, packet id and payload.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wardgate_protocol::{
    ConnAck, Connect, ConnectProperties, DecodeLimits, Packet, PacketId, ProtocolVersion, Publish,
    PublishProperties, PublishQos, QoS, Subscribe, SubscriptionOptions, TopicFilter, TopicName,
    decode, encode, encode_publish,
};

use crate::error::{Error, Result};

/// The stamp every benchmark payload starts with: publisher index, sequence number, send time.
pub const STAMP_LEN: usize = 16;

fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Time since the first call, in nanoseconds: the clock of payload timestamps (publishers and
/// subscribers live in this process, so one monotonic clock serves both).
#[inline]
pub fn now_ns() -> u64 {
    clock_base().elapsed().as_nanos() as u64
}

/// The instant of a [`now_ns`] value.
pub fn instant_at(ns: u64) -> Instant {
    clock_base() + Duration::from_nanos(ns)
}

/// A fresh loopback source address every 8,000 connections, so the ephemeral ports of one address
/// (and the TIME_WAIT left by earlier scenarios) never run out. Starts at a per-process offset so
/// runs that follow each other use different addresses.
fn next_source() -> Ipv4Addr {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let slot = n / 8_000 + (std::process::id() % 64) * 4;
    Ipv4Addr::new(127, 1 + (slot / 250 % 250) as u8, 0, 1 + (slot % 250) as u8)
}

/// One raw MQTT connection with its buffers.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    /// The protocol version of CONNECT.
    pub version: ProtocolVersion,
    /// Bytes read and not yet parsed.
    pub rbuf: BytesMut,
    /// Bytes to write.
    pub wbuf: BytesMut,
    /// The server's Receive Maximum (v5 CONNACK), `u16::MAX` when it gave none.
    pub server_receive_maximum: u16,
}

impl Client {
    /// Connects from a fresh loopback source address, sends CONNECT (clean, keep alive 300 s)
    /// and waits for a successful CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        version: ProtocolVersion,
        timeout: Duration,
    ) -> Result<Client> {
        tokio::time::timeout(timeout, Client::connect_inner(addr, client_id, version))
            .await
            .map_err(|_| Error::Timeout(format!("CONNECT of {client_id} to {addr}")))?
    }

    async fn connect_inner(
        addr: SocketAddr,
        client_id: &str,
        version: ProtocolVersion,
    ) -> Result<Client> {
        let mut stream = tcp_connect(addr).await?;
        let mut rbuf = BytesMut::with_capacity(4096);
        let ack = mqtt_connect(&mut stream, &mut rbuf, client_id, version).await?;
        Ok(Client {
            stream,
            version,
            rbuf,
            wbuf: BytesMut::with_capacity(4096),
            server_receive_maximum: ack.properties.receive_maximum.unwrap_or(u16::MAX),
        })
    }

    /// Subscribes to `filter` and waits for a SUBACK granting at least `qos`.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS, timeout: Duration) -> Result<()> {
        let filter_t =
            TopicFilter::new(filter).map_err(|e| Error::Usage(format!("filter {filter}: {e}")))?;
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).expect("1 is a valid packet id"),
            subscription_identifier: None,
            user_properties: Vec::new(),
            filters: vec![(filter_t, SubscriptionOptions::new(qos))],
        };
        encode(&Packet::Subscribe(subscribe), self.version, &mut self.wbuf);
        self.flush().await?;
        let packet = tokio::time::timeout(timeout, self.read_packet())
            .await
            .map_err(|_| Error::Timeout(format!("SUBACK for {filter}")))??;
        match packet {
            Packet::SubAck(ack) => match ack.reasons.first() {
                Some(r) if !r.is_error() && r.0 >= qos.as_u8() => Ok(()),
                r => Err(Error::Protocol(format!(
                    "SUBSCRIBE {filter} at QoS {}: SUBACK {r:?}",
                    qos.as_u8()
                ))),
            },
            other => Err(Error::Protocol(format!(
                "expected SUBACK, got {}",
                other.kind()
            ))),
        }
    }

    /// Writes everything in `wbuf`.
    pub async fn flush(&mut self) -> Result<()> {
        self.stream
            .write_all(&self.wbuf)
            .await
            .map_err(|e| Error::io("write", e))?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads until one whole packet is decoded (used outside the hot loops).
    pub async fn read_packet(&mut self) -> Result<Packet> {
        let limits = DecodeLimits::default();
        loop {
            match decode(&mut self.rbuf, Some(self.version), &limits) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol(format!("decode: {e}"))),
            }
            self.rbuf.reserve(4096);
            let n = self
                .stream
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|e| Error::io("read", e))?;
            if n == 0 {
                return Err(Error::Protocol("connection closed by the broker".into()));
            }
        }
    }

    /// Sends DISCONNECT (best effort) and closes.
    pub async fn disconnect(mut self) {
        self.wbuf.clear();
        let d = wardgate_protocol::Disconnect::new(wardgate_protocol::ReasonCode::SUCCESS);
        encode(&Packet::Disconnect(d), self.version, &mut self.wbuf);
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let _ = self.stream.write_all(&self.wbuf).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

/// Opens a TCP connection to `addr` from a fresh loopback source address, with TCP_NODELAY.
pub async fn tcp_connect(addr: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4().map_err(|e| Error::io("socket", e))?;
    let source = SocketAddr::new(next_source().into(), 0);
    socket
        .bind(source)
        .map_err(|e| Error::io(format!("bind {source}"), e))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| Error::io(format!("connect to {addr}"), e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| Error::io("TCP_NODELAY", e))?;
    Ok(stream)
}

/// Sends CONNECT (clean, keep alive 300 s) on any stream and waits for a successful CONNACK;
/// bytes read past it stay in `rbuf`.
pub async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    client_id: &str,
    version: ProtocolVersion,
) -> Result<ConnAck> {
    let connect = Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 300,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    };
    mqtt_connect_with(stream, rbuf, connect).await
}

/// Sends `connect` on any stream and waits for a successful CONNACK; bytes read past it stay in
/// `rbuf` (persistent sessions: Clean Start 0 with a Session Expiry Interval).
pub async fn mqtt_connect_with<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    connect: Connect,
) -> Result<ConnAck> {
    let version = connect.protocol;
    let client_id = connect.client_id.clone();
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Box::new(connect)), version, &mut out);
    stream
        .write_all(&out)
        .await
        .map_err(|e| Error::io("write CONNECT", e))?;
    let limits = DecodeLimits::default();
    loop {
        match decode(rbuf, Some(version), &limits) {
            Ok(Some(Packet::ConnAck(ack))) if !ack.reason.is_error() => return Ok(ack),
            Ok(Some(Packet::ConnAck(ack))) => {
                return Err(Error::Protocol(format!(
                    "CONNACK refused {client_id}: reason 0x{:02X}",
                    ack.reason.0
                )));
            }
            Ok(Some(other)) => {
                return Err(Error::Protocol(format!(
                    "expected CONNACK, got {}",
                    other.kind()
                )));
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Protocol(format!("decode: {e}"))),
        }
        rbuf.reserve(256);
        let n = stream
            .read_buf(rbuf)
            .await
            .map_err(|e| Error::io("read CONNACK", e))?;
        if n == 0 {
            return Err(Error::Protocol("connection closed by the broker".into()));
        }
    }
}

/// What a benchmark payload carries in its first [`STAMP_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher in its scenario.
    pub publisher: u32,
    /// Sequence number, from 0 per publisher.
    pub seq: u32,
    /// [`now_ns`] when the message was written.
    pub sent_ns: u64,
}

impl Stamp {
    /// Reads the stamp at the start of a payload.
    #[inline]
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..STAMP_LEN)?;
        Some(Stamp {
            publisher: u32::from_le_bytes(b[0..4].try_into().ok()?),
            seq: u32::from_le_bytes(b[4..8].try_into().ok()?),
            sent_ns: u64::from_le_bytes(b[8..16].try_into().ok()?),
        })
    }

    #[inline]
    fn write(self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.publisher.to_le_bytes());
        out[4..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.sent_ns.to_le_bytes());
    }
}

/// A PUBLISH encoded once by the codec; each message copies it and patches the packet id and the
/// stamp in place.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    frame: Vec<u8>,
    packet_id_at: Option<usize>,
    payload_at: usize,
}

impl PublishTemplate {
    /// The PUBLISH of `payload_len` bytes (at least [`STAMP_LEN`]) to `topic` at `qos`.
    pub fn new(
        topic: &str,
        qos: QoS,
        payload_len: usize,
        version: ProtocolVersion,
    ) -> Result<PublishTemplate> {
        if payload_len < STAMP_LEN {
            return Err(Error::Usage(format!(
                "payloads must be at least {STAMP_LEN} bytes"
            )));
        }
        let topic = TopicName::new(topic).map_err(|e| Error::Usage(format!("topic: {e}")))?;
        let publish = Publish {
            dup: false,
            qos: PublishQos::new(qos, PacketId::from(NonZeroU16::MIN)),
            retain: false,
            topic: Some(topic),
            properties: PublishProperties::default(),
            payload: Bytes::from(vec![0u8; payload_len]),
        };
        let mut out = BytesMut::new();
        encode_publish(&publish, version, &mut out);
        let payload_at = out.len() - payload_len;
        // Packet id, then (v5) an empty property length byte, then the payload.
        let props = usize::from(version.is_v5());
        let packet_id_at = publish.qos.packet_id().map(|_| payload_at - props - 2);
        let template = PublishTemplate {
            frame: out.to_vec(),
            packet_id_at,
            payload_at,
        };
        template.check(&publish, version)?;
        Ok(template)
    }

    /// Decodes a patched copy with the codec: the offsets must be right.
    fn check(&self, publish: &Publish, version: ProtocolVersion) -> Result<()> {
        let stamp = Stamp {
            publisher: 7,
            seq: 0xABCD,
            sent_ns: 42,
        };
        let mut buf = BytesMut::new();
        self.write(&mut buf, PacketId::new(0x1234), stamp);
        let decoded = decode(&mut buf, Some(version), &DecodeLimits::default());
        match decoded {
            Ok(Some(Packet::Publish(p)))
                if p.topic == publish.topic
                    && p.qos.packet_id()
                        == publish
                            .qos
                            .packet_id()
                            .map(|_| PacketId::new(0x1234).expect("nonzero"))
                    && Stamp::read(&p.payload) == Some(stamp) =>
            {
                Ok(())
            }
            other => Err(Error::Protocol(format!(
                "PUBLISH template does not round-trip: {other:?}"
            ))),
        }
    }

    /// Encoded size of one message.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Whether the template is empty (never).
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Appends one message with `packet_id` (QoS 1/2) and `stamp`.
    #[inline]
    pub fn write(&self, out: &mut BytesMut, packet_id: Option<PacketId>, stamp: Stamp) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        let frame = &mut out[start..];
        if let (Some(at), Some(id)) = (self.packet_id_at, packet_id) {
            frame[at..at + 2].copy_from_slice(&id.get().to_be_bytes());
        }
        stamp.write(&mut frame[self.payload_at..self.payload_at + STAMP_LEN]);
    }
}

/// The parts of an incoming PUBLISH the load generator needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingPublish<'a> {
    /// Its QoS.
    pub qos: QoS,
    /// Its packet id (QoS 1/2).
    pub packet_id: Option<PacketId>,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Reads a whole PUBLISH frame (as framed by `peek_size`) without allocating; `None` if malformed.
#[inline]
pub fn parse_publish(frame: &[u8], version: ProtocolVersion) -> Option<IncomingPublish<'_>> {
    let first = *frame.first()?;
    let qos = QoS::from_u8((first >> 1) & 0b11)?;
    let mut at = 1;
    while frame.get(at)? & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let topic_len = usize::from(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    at += 2 + topic_len;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        let id = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
        at += 2;
        Some(PacketId::new(id)?)
    };
    if version.is_v5() {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let b = *frame.get(at)?;
            at += 1;
            len |= usize::from(b & 0x7F) << shift;
            shift += 7;
            if b & 0x80 == 0 || shift > 21 {
                break;
            }
        }
        at += len;
    }
    Some(IncomingPublish {
        qos,
        packet_id,
        payload: frame.get(at..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_protocol::peek_size;

    #[test]
    fn templates_round_trip_through_the_codec_and_the_fast_parser() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                for len in [16, 1024, 200_000] {
                    let t =
                        PublishTemplate::new("bench/p2p/17", qos, len, version).expect("template");
                    let mut buf = BytesMut::new();
                    let stamp = Stamp {
                        publisher: 3,
                        seq: 99,
                        sent_ns: 123_456,
                    };
                    t.write(&mut buf, PacketId::new(500), stamp);
                    let size = peek_size(&buf, &DecodeLimits::default())
                        .expect("size")
                        .expect("whole");
                    assert_eq!(size, buf.len());
                    let p = parse_publish(&buf, version).expect("parses");
                    assert_eq!(p.qos, qos);
                    assert_eq!(p.payload.len(), len);
                    assert_eq!(Stamp::read(p.payload), Some(stamp));
                    let expected_id =
                        (qos != QoS::AtMostOnce).then(|| PacketId::new(500).expect("id"));
                    assert_eq!(p.packet_id, expected_id);
                }
            }
        }
    }

    #[test]
    fn instants_and_nanoseconds_agree() {
        let ns = now_ns();
        let at = instant_at(ns);
        let back = at.elapsed().as_nanos() as u64;
        assert!(back < 50_000_000, "{back}");
    }
}
