//! Record formats: the keys and values of each keyspace.
//!
//! Messages, wills and subscriptions are stored as the MQTT 5 packets that carry them (PUBLISH,
//! CONNECT, SUBSCRIBE), encoded and decoded by the protocol crate: every property survives, and
//! the code that reads them back is the one that already checks untrusted input. Absolute times
//! (message expiry, disconnection, will due) are wall-clock milliseconds, converted to and from
//! `Instant` around "now", since an `Instant` means nothing in another process.
//!
//! Every value starts with a format version byte. Keys:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `sessions` | session (u64 BE) | [`SessionRecord`] |
//! | `subscriptions` | session, filter | SUBSCRIBE with one filter |
//! | `queue` | session, seq (u64 BE) | a queued copy: delivery fields and its PUBLISH |
//! | `inflight` | session, seq | packet id, state (QoS 2 copies sent) |
//! | `incoming` | session, packet id (u16 BE) | empty: an incoming QoS 2 id before PUBREL |
//! | `retained` | topic | the retained PUBLISH |

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use wardgate_core::message::{Message, SharedRef};
use wardgate_core::store::{InflightState, RecoveredDelivery, SessionRecord, StoredDelivery};
use wardgate_core::{SessionId, SubscriptionEntry};
use wardgate_protocol::{
    Connect, ConnectProperties, DecodeLimits, MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion,
    Publish, PublishQos, QoS, Subscribe, TopicFilter, decode, encode,
};

const VERSION: u8 = 1;

/// The packet id the stored PUBLISH and SUBSCRIBE packets carry (they need one; it means nothing).
fn one() -> PacketId {
    PacketId::from(std::num::NonZeroU16::MIN)
}

/// A value that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub(crate) &'static str);

type Result<T> = std::result::Result<T, Corrupt>;

/// "Now" on both clocks, to convert absolute times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Milliseconds since the Unix epoch of `at`; 0 is reserved for "none".
    fn wall_of(self, at: Instant) -> u64 {
        let wall = if at >= self.instant {
            self.wall + (at - self.instant)
        } else {
            self.wall - (self.instant - at)
        };
        let ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        ms.max(1)
    }

    /// The `Instant` of a stored wall-clock time. Times before this process could represent
    /// them (before boot) come back as "now": a session then expires a little late, never early.
    fn instant_of(self, ms: u64) -> Instant {
        let wall = UNIX_EPOCH + Duration::from_millis(ms);
        match wall.duration_since(self.wall) {
            Ok(ahead) => self.instant + ahead,
            Err(e) => self
                .instant
                .checked_sub(e.duration())
                .unwrap_or(self.instant),
        }
    }

    fn put_time(self, out: &mut BytesMut, at: Option<Instant>) {
        out.put_u64(at.map_or(0, |at| self.wall_of(at)));
    }

    fn get_time(self, buf: &mut Bytes) -> Result<Option<Instant>> {
        let ms = get_u64(buf)?;
        Ok((ms != 0).then(|| self.instant_of(ms)))
    }
}

// --- keys ---------------------------------------------------------------------------------

pub(crate) fn session_key(session: SessionId) -> [u8; 8] {
    session.0.to_be_bytes()
}

pub(crate) fn sub_key(session: SessionId, filter: &TopicFilter) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + filter.as_str().len());
    key.extend_from_slice(&session.0.to_be_bytes());
    key.extend_from_slice(filter.as_str().as_bytes());
    key
}

pub(crate) fn seq_key(session: SessionId, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&session.0.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn incoming_key(session: SessionId, packet_id: PacketId) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..8].copy_from_slice(&session.0.to_be_bytes());
    key[8..].copy_from_slice(&packet_id.get().to_be_bytes());
    key
}

/// The session a key of `subscriptions`, `queue`, `inflight` or `incoming` belongs to.
pub(crate) fn key_session(key: &[u8]) -> Result<SessionId> {
    let bytes: [u8; 8] = key
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(Corrupt("key shorter than a session number"))?;
    Ok(SessionId(u64::from_be_bytes(bytes)))
}

pub(crate) fn key_seq(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .ok_or(Corrupt("queue key without a sequence number"))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(crate) fn key_packet_id(key: &[u8]) -> Result<PacketId> {
    let bytes: [u8; 2] = key
        .get(8..10)
        .and_then(|b| b.try_into().ok())
        .ok_or(Corrupt("incoming key without a packet id"))?;
    PacketId::new(u16::from_be_bytes(bytes)).ok_or(Corrupt("packet id 0"))
}

// --- values -------------------------------------------------------------------------------

pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8> {
    if buf.remaining() < 1 {
        return Err(Corrupt("truncated record"));
    }
    Ok(buf.get_u8())
}

pub(crate) fn get_u16(buf: &mut Bytes) -> Result<u16> {
    if buf.remaining() < 2 {
        return Err(Corrupt("truncated record"));
    }
    Ok(buf.get_u16())
}

pub(crate) fn get_u32(buf: &mut Bytes) -> Result<u32> {
    if buf.remaining() < 4 {
        return Err(Corrupt("truncated record"));
    }
    Ok(buf.get_u32())
}

pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64> {
    if buf.remaining() < 8 {
        return Err(Corrupt("truncated record"));
    }
    Ok(buf.get_u64())
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
    out.put_slice(&s.as_bytes()[..s.len().min(usize::from(u16::MAX))]);
}

fn get_str(buf: &mut Bytes) -> Result<String> {
    let len = usize::from(get_u16(buf)?);
    if buf.remaining() < len {
        return Err(Corrupt("truncated string"));
    }
    String::from_utf8(buf.split_to(len).to_vec()).map_err(|_| Corrupt("string is not UTF-8"))
}

fn check_version(buf: &mut Bytes) -> Result<()> {
    match get_u8(buf)? {
        VERSION => Ok(()),
        _ => Err(Corrupt("unknown record format version")),
    }
}

/// Decodes the one MQTT 5 packet that makes up the rest of `buf`.
fn get_packet(buf: Bytes, first: bool) -> Result<Packet> {
    let mut frame = BytesMut::from(&buf[..]);
    let limits = DecodeLimits {
        max_packet_size: MAX_PACKET_SIZE,
    };
    let version = (!first).then_some(ProtocolVersion::V5);
    match decode(&mut frame, version, &limits) {
        Ok(Some(packet)) if frame.is_empty() => Ok(packet),
        Ok(_) => Err(Corrupt("stored packet is incomplete or has trailing bytes")),
        Err(_) => Err(Corrupt("stored packet does not decode")),
    }
}

fn put_message(out: &mut BytesMut, clock: Clock, m: &Message) {
    clock.put_time(out, m.expires_at);
    let publish = Publish {
        dup: false,
        // The id is a placeholder (1), kept so records stay byte for byte what they were.
        qos: PublishQos::new(m.qos, one()),
        retain: m.retain,
        topic: Some(m.topic.clone()),
        properties: m.properties.clone(),
        payload: m.payload.clone(),
    };
    encode(&Packet::Publish(publish), ProtocolVersion::V5, out);
}

fn get_message(buf: &mut Bytes, clock: Clock) -> Result<Message> {
    let expires_at = clock.get_time(buf)?;
    let Packet::Publish(p) = get_packet(std::mem::take(buf), false)? else {
        return Err(Corrupt("stored message is not a PUBLISH"));
    };
    Ok(Message {
        topic: p.topic.ok_or(Corrupt("stored message without a topic"))?,
        payload: p.payload,
        qos: p.qos.level(),
        retain: p.retain,
        properties: p.properties,
        origin: None,
        expires_at,
    })
}

/// A retained message.
pub(crate) fn retained_value(clock: Clock, m: &Message) -> BytesMut {
    let mut out = BytesMut::with_capacity(32 + m.payload.len());
    out.put_u8(VERSION);
    put_message(&mut out, clock, m);
    out
}

pub(crate) fn read_retained(mut buf: Bytes, clock: Clock) -> Result<Message> {
    check_version(&mut buf)?;
    get_message(&mut buf, clock)
}

/// A queued copy.
pub(crate) fn queue_value(clock: Clock, d: &StoredDelivery<'_>) -> BytesMut {
    let mut out = BytesMut::with_capacity(48 + d.message.payload.len());
    out.put_u8(VERSION);
    out.put_u8(d.qos.as_u8());
    out.put_u8(u8::from(d.retain));
    out.put_u16(u16::try_from(d.subscription_ids.len()).unwrap_or(u16::MAX));
    for id in d.subscription_ids.iter().take(usize::from(u16::MAX)) {
        out.put_u32(*id);
    }
    match d.shared {
        Some(s) => {
            out.put_u8(1);
            put_str(&mut out, &s.group);
            put_str(&mut out, s.filter.as_str());
        }
        None => out.put_u8(0),
    }
    put_message(&mut out, clock, d.message);
    out
}

/// A queued copy as read back.
pub(crate) struct QueuedCopy {
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) subscription_ids: Vec<u32>,
    pub(crate) shared: Option<SharedRef>,
    pub(crate) message: Message,
}

impl QueuedCopy {
    /// The copy as recovered, at `seq` in its queue, in flight or not.
    pub(crate) fn recovered(
        self,
        seq: u64,
        inflight: Option<(PacketId, InflightState)>,
    ) -> RecoveredDelivery {
        RecoveredDelivery {
            seq,
            message: self.message,
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids,
            shared: self.shared,
            inflight,
        }
    }
}

pub(crate) fn read_queue(mut buf: Bytes, clock: Clock) -> Result<QueuedCopy> {
    check_version(&mut buf)?;
    let qos = QoS::from_u8(get_u8(&mut buf)?).ok_or(Corrupt("bad QoS"))?;
    let retain = get_u8(&mut buf)? != 0;
    let n = get_u16(&mut buf)?;
    let mut subscription_ids = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        subscription_ids.push(get_u32(&mut buf)?);
    }
    let shared = match get_u8(&mut buf)? {
        0 => None,
        _ => {
            let group = get_str(&mut buf)?;
            let filter = TopicFilter::new(get_str(&mut buf)?.as_str())
                .map_err(|_| Corrupt("bad shared filter"))?;
            Some(SharedRef {
                group: Arc::from(group),
                filter,
            })
        }
    };
    let message = get_message(&mut buf, clock)?;
    Ok(QueuedCopy {
        qos,
        retain,
        subscription_ids,
        shared,
        message,
    })
}

/// An in-flight QoS 2 copy's packet id and state.
pub(crate) fn inflight_value(packet_id: PacketId, state: InflightState) -> [u8; 4] {
    let [hi, lo] = packet_id.get().to_be_bytes();
    let state = match state {
        InflightState::AwaitPubAck => 0,
        InflightState::AwaitPubRec => 1,
        InflightState::AwaitPubComp => 2,
    };
    [VERSION, hi, lo, state]
}

pub(crate) fn read_inflight(mut buf: Bytes) -> Result<(PacketId, InflightState)> {
    check_version(&mut buf)?;
    let id = PacketId::new(get_u16(&mut buf)?).ok_or(Corrupt("packet id 0"))?;
    let state = match get_u8(&mut buf)? {
        0 => InflightState::AwaitPubAck,
        1 => InflightState::AwaitPubRec,
        2 => InflightState::AwaitPubComp,
        _ => return Err(Corrupt("bad in-flight state")),
    };
    Ok((id, state))
}

/// A subscription.
pub(crate) fn subscription_value(filter: &TopicFilter, entry: SubscriptionEntry) -> BytesMut {
    let mut out = BytesMut::with_capacity(16 + filter.as_str().len());
    out.put_u8(VERSION);
    let sub = Subscribe {
        packet_id: one(),
        subscription_identifier: entry.id,
        user_properties: Vec::new(),
        filters: vec![(filter.clone(), entry.options)],
    };
    encode(&Packet::Subscribe(sub), ProtocolVersion::V5, &mut out);
    out
}

pub(crate) fn read_subscription(mut buf: Bytes) -> Result<(TopicFilter, SubscriptionEntry)> {
    check_version(&mut buf)?;
    let Packet::Subscribe(s) = get_packet(buf, false)? else {
        return Err(Corrupt("stored subscription is not a SUBSCRIBE"));
    };
    let (filter, options) = s
        .filters
        .into_iter()
        .next()
        .ok_or(Corrupt("stored SUBSCRIBE without a filter"))?;
    Ok((
        filter,
        SubscriptionEntry {
            options,
            id: s.subscription_identifier,
        },
    ))
}

const PERSIST_QUEUE: u8 = 1;
const CONNECTED: u8 = 2;

/// A session's record.
pub(crate) fn session_value(clock: Clock, r: &SessionRecord) -> BytesMut {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(VERSION);
    out.put_u8(r.protocol.level());
    let mut flags = 0;
    if r.persist_queue {
        flags |= PERSIST_QUEUE;
    }
    if r.disconnected_at.is_none() {
        flags |= CONNECTED;
    }
    out.put_u8(flags);
    out.put_u32(r.expiry_interval);
    clock.put_time(&mut out, r.disconnected_at);
    clock.put_time(&mut out, r.will_due);
    // The client id, the will and the owner (as the username) travel in a CONNECT, which
    // knows how to carry them.
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: false,
        keep_alive: 0,
        client_id: r.client_id.to_string(),
        will: r.will.clone(),
        username: r.owner.as_deref().map(str::to_owned),
        password: None,
        properties: ConnectProperties::default(),
    };
    encode(
        &Packet::Connect(Box::new(connect)),
        ProtocolVersion::V5,
        &mut out,
    );
    out
}

pub(crate) fn read_session(id: SessionId, mut buf: Bytes, clock: Clock) -> Result<SessionRecord> {
    check_version(&mut buf)?;
    let protocol = match get_u8(&mut buf)? {
        3 => ProtocolVersion::V31,
        4 => ProtocolVersion::V311,
        5 => ProtocolVersion::V5,
        _ => return Err(Corrupt("bad protocol version")),
    };
    let flags = get_u8(&mut buf)?;
    let expiry_interval = get_u32(&mut buf)?;
    let disconnected_at = clock.get_time(&mut buf)?;
    let will_due = clock.get_time(&mut buf)?;
    let Packet::Connect(c) = get_packet(buf, true)? else {
        return Err(Corrupt("stored session is not a CONNECT"));
    };
    Ok(SessionRecord {
        id,
        client_id: Arc::from(c.client_id),
        protocol,
        expiry_interval,
        owner: c.username.map(Arc::from),
        persist_queue: flags & PERSIST_QUEUE != 0,
        disconnected_at: if flags & CONNECTED != 0 {
            None
        } else {
            Some(disconnected_at.unwrap_or(clock.instant))
        },
        will: c.will,
        will_due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wardgate_protocol::{
        PublishProperties, RetainHandling, SubscriptionOptions, TopicName, Will, WillProperties,
    };

    fn message(clock: Clock) -> Message {
        Message {
            topic: TopicName::new("a/b").expect("topic"),
            payload: Bytes::from_static(b"payload"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: PublishProperties {
                user_properties: vec![("k".into(), "v".into())],
                correlation_data: Some(Bytes::from_static(b"c")),
                content_type: Some("text/plain".into()),
                message_expiry_interval: Some(60),
                ..PublishProperties::default()
            },
            origin: None,
            expires_at: Some(clock.instant + Duration::from_secs(60)),
        }
    }

    fn close(a: Option<Instant>, b: Option<Instant>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => {
                let d = if a > b { a - b } else { b - a };
                d < Duration::from_millis(2)
            }
            (a, b) => a == b,
        }
    }

    #[test]
    fn queued_copies_round_trip() {
        let clock = Clock::now();
        let m = message(clock);
        let shared = SharedRef {
            group: Arc::from("g"),
            filter: TopicFilter::new("a/+").expect("filter"),
        };
        let ids = [3, 7];
        let d = StoredDelivery {
            message: &m,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: &ids,
            shared: Some(&shared),
        };
        let back = read_queue(queue_value(clock, &d).freeze(), clock).expect("decodes");
        assert_eq!(back.qos, QoS::AtLeastOnce);
        assert_eq!(back.subscription_ids, ids);
        assert_eq!(back.shared, Some(shared));
        assert_eq!(back.message.topic, m.topic);
        assert_eq!(back.message.payload, m.payload);
        assert_eq!(back.message.properties, m.properties);
        assert!(close(back.message.expires_at, m.expires_at));
    }

    #[test]
    fn sessions_and_subscriptions_round_trip() {
        let clock = Clock::now();
        let record = SessionRecord {
            id: SessionId(9),
            client_id: Arc::from("client"),
            protocol: ProtocolVersion::V311,
            expiry_interval: 3600,
            owner: Some(Arc::from("X509:device1")),
            persist_queue: true,
            disconnected_at: Some(clock.instant),
            will: Some(Will {
                topic: TopicName::new("w").expect("topic"),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: WillProperties {
                    will_delay_interval: Some(5),
                    ..WillProperties::default()
                },
            }),
            will_due: Some(clock.instant + Duration::from_secs(5)),
        };
        let back = read_session(SessionId(9), session_value(clock, &record).freeze(), clock)
            .expect("decodes");
        assert_eq!(back.client_id, record.client_id);
        assert_eq!(back.protocol, record.protocol);
        assert_eq!(back.expiry_interval, 3600);
        assert_eq!(back.owner, record.owner, "only its principal resumes it");
        assert!(back.persist_queue);
        assert_eq!(back.will, record.will);
        assert!(close(back.disconnected_at, record.disconnected_at));
        assert!(close(back.will_due, record.will_due));

        let connected = SessionRecord {
            disconnected_at: None,
            will: None,
            will_due: None,
            ..record
        };
        let back = read_session(
            SessionId(9),
            session_value(clock, &connected).freeze(),
            clock,
        )
        .expect("decodes");
        assert_eq!(back.disconnected_at, None);

        let filter = TopicFilter::new("x/+/#").expect("filter");
        let entry = SubscriptionEntry {
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DontSend,
            },
            id: Some(42),
        };
        let (f, e) = read_subscription(subscription_value(&filter, entry).freeze()).expect("ok");
        assert_eq!((f, e), (filter, entry));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let clock = Clock::now();
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x02abc",
            b"\x01\x05\x00",
            &[1u8; 40][..],
        ] {
            let b = Bytes::copy_from_slice(bytes);
            assert!(read_queue(b.clone(), clock).is_err());
            assert!(read_session(SessionId(1), b.clone(), clock).is_err());
            assert!(read_subscription(b.clone()).is_err());
            assert!(read_retained(b.clone(), clock).is_err());
        }
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x02\x00\x01\x01",
            b"\x01\x00\x00\x01",
            b"\x01\x00\x01\x09",
        ] {
            assert!(
                read_inflight(Bytes::copy_from_slice(bytes)).is_err(),
                "{bytes:?}"
            );
        }
    }
}
