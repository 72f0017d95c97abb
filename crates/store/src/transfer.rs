//! A whole session as one value, to move it to another process (a cluster node taking a client
//! over, docs/cluster.md): the store's own record formats ([`codec`]) for its record,
//! subscriptions, queued and in-flight copies, in queue order, and its incoming QoS 2 packet ids.
//! Absolute times travel as wall-clock milliseconds, as on disk.
//!
//! Layout: version byte; the session record (u32 length, value); subscriptions (u32 count, each
//! u32 length and value); copies (u32 count, each: u64 seq, u8 in flight, the in-flight value
//! when set, u32 length and queue value); incoming QoS 2 ids (u32 count, u16 each).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use wardgate_core::store::{RecoveredSession, StoredDelivery};
use wardgate_protocol::PacketId;

use crate::codec::{self, Clock, Corrupt, get_u8, get_u16, get_u32, get_u64};

const VERSION: u8 = 1;

/// A moved session's value that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("a moved session cannot be read: {0}")]
pub struct TransferError(&'static str);

impl From<Corrupt> for TransferError {
    fn from(c: Corrupt) -> Self {
        TransferError(c.0)
    }
}

/// `session` as one value.
pub fn encode_session(session: &RecoveredSession) -> Bytes {
    let clock = Clock::now();
    let mut out = BytesMut::with_capacity(256);
    out.put_u8(VERSION);
    put_part(&mut out, &codec::session_value(clock, &session.record));
    out.put_u32(count(session.subscriptions.len()));
    for (filter, entry) in &session.subscriptions {
        put_part(&mut out, &codec::subscription_value(filter, *entry));
    }
    out.put_u32(count(session.messages.len()));
    for m in &session.messages {
        out.put_u64(m.seq);
        match m.inflight {
            Some((packet_id, state)) => {
                out.put_u8(1);
                out.put_slice(&codec::inflight_value(packet_id, state));
            }
            None => out.put_u8(0),
        }
        let stored = StoredDelivery {
            message: &m.message,
            qos: m.qos,
            retain: m.retain,
            subscription_ids: &m.subscription_ids,
            shared: m.shared.as_ref(),
        };
        put_part(&mut out, &codec::queue_value(clock, &stored));
    }
    out.put_u32(count(session.incoming_qos2.len()));
    for id in &session.incoming_qos2 {
        out.put_u16(id.get());
    }
    out.freeze()
}

/// The session [`encode_session`] made.
pub fn decode_session(mut buf: Bytes) -> Result<RecoveredSession, TransferError> {
    let clock = Clock::now();
    if get_u8(&mut buf)? != VERSION {
        return Err(TransferError("unknown format version"));
    }
    // The session's number is the receiver's to give; the record's is a placeholder.
    let record = codec::read_session(wardgate_core::SessionId(0), get_part(&mut buf)?, clock)?;
    let n = get_u32(&mut buf)?;
    let mut subscriptions = Vec::new();
    for _ in 0..n {
        subscriptions.push(codec::read_subscription(get_part(&mut buf)?)?);
    }
    let n = get_u32(&mut buf)?;
    let mut messages = Vec::new();
    for _ in 0..n {
        let seq = get_u64(&mut buf)?;
        let inflight = match get_u8(&mut buf)? {
            0 => None,
            _ => {
                if buf.remaining() < 4 {
                    return Err(TransferError("truncated in-flight state"));
                }
                Some(codec::read_inflight(buf.split_to(4))?)
            }
        };
        let copy = codec::read_queue(get_part(&mut buf)?, clock)?;
        messages.push(copy.recovered(seq, inflight));
    }
    let n = get_u32(&mut buf)?;
    let mut incoming_qos2 = Vec::new();
    for _ in 0..n {
        let id = PacketId::new(get_u16(&mut buf)?).ok_or(TransferError("packet id 0"))?;
        incoming_qos2.push(id);
    }
    Ok(RecoveredSession {
        record,
        subscriptions,
        messages,
        incoming_qos2,
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_part(out: &mut BytesMut, part: &[u8]) {
    out.put_u32(count(part.len()));
    out.put_slice(part);
}

fn get_part(buf: &mut Bytes) -> Result<Bytes, TransferError> {
    let len = get_u32(buf)? as usize;
    if buf.remaining() < len {
        return Err(TransferError("truncated part"));
    }
    Ok(buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use wardgate_core::store::{InflightState, RecoveredDelivery, SessionRecord};
    use wardgate_core::{Message, SessionId, SubscriptionEntry};
    use wardgate_protocol::{
        ProtocolVersion, PublishProperties, QoS, SubscriptionOptions, TopicFilter, TopicName,
    };

    use super::*;

    fn copy(
        seq: u64,
        payload: &'static [u8],
        inflight: Option<InflightState>,
    ) -> RecoveredDelivery {
        RecoveredDelivery {
            seq,
            message: Message {
                topic: TopicName::new("a/b").expect("topic"),
                payload: Bytes::from_static(payload),
                qos: QoS::ExactlyOnce,
                retain: false,
                properties: PublishProperties::default(),
                origin: None,
                expires_at: None,
            },
            qos: QoS::ExactlyOnce,
            retain: false,
            subscription_ids: vec![4],
            shared: None,
            inflight: inflight.map(|s| (PacketId::new(seq as u16).expect("non-zero"), s)),
        }
    }

    fn session() -> RecoveredSession {
        RecoveredSession {
            record: SessionRecord {
                id: SessionId(3),
                client_id: Arc::from("dev.1"),
                protocol: ProtocolVersion::V5,
                expiry_interval: 300,
                owner: Some(Arc::from("alice")),
                persist_queue: true,
                disconnected_at: Some(Instant::now()),
                will: None,
                will_due: None,
            },
            subscriptions: vec![(
                TopicFilter::new("a/#").expect("filter"),
                SubscriptionEntry {
                    options: SubscriptionOptions::new(QoS::ExactlyOnce),
                    id: Some(4),
                },
            )],
            messages: vec![
                copy(1, b"one", Some(InflightState::AwaitPubComp)),
                copy(2, b"two", None),
            ],
            incoming_qos2: vec![PacketId::new(9).expect("non-zero")],
        }
    }

    #[test]
    fn a_session_round_trips_whole() {
        let sent = session();
        let back = decode_session(encode_session(&sent)).expect("decodes");
        assert_eq!(back.record.client_id, sent.record.client_id);
        assert_eq!(back.record.owner, sent.record.owner);
        assert_eq!(back.record.expiry_interval, 300);
        assert!(back.record.persist_queue);
        assert_eq!(back.subscriptions, sent.subscriptions);
        let copies: Vec<_> = back
            .messages
            .iter()
            .map(|m| {
                (
                    m.seq,
                    &m.message.payload[..],
                    m.inflight,
                    m.subscription_ids.clone(),
                )
            })
            .collect();
        assert_eq!(
            copies,
            [
                (1, &b"one"[..], sent.messages[0].inflight, vec![4]),
                (2, &b"two"[..], None, vec![4]),
            ]
        );
        assert_eq!(back.incoming_qos2, sent.incoming_qos2);
    }

    #[test]
    fn a_truncated_or_foreign_value_is_an_error() {
        let whole = encode_session(&session());
        for len in 0..whole.len() {
            assert!(decode_session(whole.slice(..len)).is_err(), "cut at {len}");
        }
        assert!(decode_session(Bytes::from_static(b"\x07junk")).is_err());
    }
}
