//! A QoS 1 or 2 publisher with a persistent session: one message in flight at a time, each
//! carrying (publisher, sequence number); a message is *acknowledged* when its PUBACK, or a
//! successful PUBREC, arrives. When its node fails (closed, or no acknowledgement within
//! [`ACK_TIMEOUT`]) it connects to the next node and resends the message in flight, as a client
//! with several broker URLs does: the PUBLISH again with DUP, or the PUBREL when its PUBREC had
//! come and the session is still there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wardgate_bench::wire::{Client, PublishTemplate, STAMP_LEN, Stamp, now_ns};
use wardgate_protocol::{Packet, PacketId, ProtocolVersion, PubAck, QoS, encode};

use super::journal::{ClientRef, Journal};
use super::session::{End, Failover};
use crate::error::Result;

/// How long a publisher waits for an acknowledgement before it tries another node.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A publisher of a round.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Its index: the first field of every message.
    pub index: u32,
    /// QoS 1 or 2.
    pub qos: QoS,
    /// The node it connects to first.
    pub home: usize,
    /// Its client ID.
    pub client_id: String,
    /// Where it publishes.
    pub topic: String,
    /// The time between two messages.
    pub pace: Duration,
}

/// The message in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u32,
    id: PacketId,
    /// QoS 2: the PUBREC came; the PUBREL is sent, the PUBCOMP awaited.
    released: bool,
}

/// Publishes until `stop`, then until its message in flight is complete or `abort`.
pub async fn run(
    p: Publisher,
    nodes: Arc<[SocketAddr]>,
    journal: Arc<Journal>,
    stop: CancellationToken,
    abort: CancellationToken,
) -> Result<()> {
    let template = PublishTemplate::new(&p.topic, p.qos, STAMP_LEN, ProtocolVersion::V5)?;
    let me = ClientRef::Publisher(p.index);
    let mut state = State {
        next_seq: 0,
        next_id: PacketId::from(std::num::NonZeroU16::MIN),
        in_flight: None,
        next_at: Instant::now(),
    };
    let mut failover = Failover::new(nodes, p.home, &p.client_id, me, journal.clone());
    while let Some((mut client, present)) = failover.connect(&abort).await {
        let end = tokio::select! {
            end = publish(&p, &template, &mut client, present, &mut state, &journal, &stop) => end,
            () = abort.cancelled() => End::Done,
        };
        match end {
            End::Done => {
                client.disconnect().await;
                break;
            }
            End::Lost => failover.lost(),
        }
    }
    Ok(())
}

/// A publisher's progress, kept across connections.
struct State {
    next_seq: u32,
    next_id: PacketId,
    in_flight: Option<InFlight>,
    next_at: Instant,
}

impl State {
    fn packet_id(&mut self) -> PacketId {
        let id = self.next_id;
        self.next_id = id.next();
        id
    }

    /// The message in flight is done with: the next one gets the next sequence number.
    fn complete(&mut self) {
        self.in_flight = None;
        self.next_seq += 1;
    }
}

/// One connection's work: resume what was in flight, then publish until `stop`.
async fn publish(
    p: &Publisher,
    template: &PublishTemplate,
    client: &mut Client,
    session_present: bool,
    state: &mut State,
    journal: &Journal,
    stop: &CancellationToken,
) -> End {
    if let Some(f) = state.in_flight {
        if f.released && session_present {
            encode(
                &Packet::PubRel(PubAck::new(f.id)),
                client.version,
                &mut client.wbuf,
            );
        } else if f.released {
            // The session, and the QoS 2 flow with it, is gone; the message was acknowledged.
            state.complete();
        } else {
            write_publish(p, template, client, f, true);
        }
    }
    loop {
        if state.in_flight.is_none() {
            if stop.is_cancelled() {
                return End::Done;
            }
            tokio::time::sleep_until(state.next_at).await;
            state.next_at = Instant::now() + p.pace;
            let f = InFlight {
                seq: state.next_seq,
                id: state.packet_id(),
                released: false,
            };
            state.in_flight = Some(f);
            write_publish(p, template, client, f, false);
        }
        if client.flush().await.is_err() {
            return End::Lost;
        }
        let packet = match tokio::time::timeout(ACK_TIMEOUT, client.read_packet()).await {
            Ok(Ok(packet)) => packet,
            Ok(Err(_)) | Err(_) => return End::Lost,
        };
        let Some(f) = state.in_flight else {
            continue;
        };
        match packet {
            Packet::PubAck(ack) if p.qos == QoS::AtLeastOnce && ack.packet_id == f.id => {
                if !ack.reason.is_error() {
                    journal.acked(p.index, f.seq);
                }
                state.complete();
            }
            Packet::PubRec(ack) if !f.released && ack.packet_id == f.id => {
                if ack.reason.is_error() {
                    state.complete();
                } else {
                    journal.acked(p.index, f.seq);
                    state.in_flight = Some(InFlight {
                        released: true,
                        ..f
                    });
                    encode(
                        &Packet::PubRel(PubAck::new(f.id)),
                        client.version,
                        &mut client.wbuf,
                    );
                }
            }
            Packet::PubComp(ack) if f.released && ack.packet_id == f.id => state.complete(),
            Packet::Disconnect(_) => return End::Lost,
            _ => {}
        }
    }
}

/// Appends the PUBLISH of `f` (with DUP when it is a resend).
fn write_publish(
    p: &Publisher,
    template: &PublishTemplate,
    client: &mut Client,
    f: InFlight,
    dup: bool,
) {
    let start = client.wbuf.len();
    let stamp = Stamp {
        publisher: p.index,
        seq: f.seq,
        sent_ns: now_ns(),
    };
    template.write(&mut client.wbuf, Some(f.id), stamp);
    if dup {
        // The DUP flag: bit 3 of the fixed header's first byte.
        client.wbuf[start] |= 0x08;
    }
}
