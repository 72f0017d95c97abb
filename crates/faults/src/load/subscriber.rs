//! A persistent subscriber (Clean Start 0, a Session Expiry Interval, one QoS 2 subscription to
//! every publisher of the round). It acknowledges as a client library does: PUBACK for QoS 1;
//! for QoS 2 a PUBREC, and a PUBLISH whose packet id already waits for its PUBREL is the same
//! message again, not a new delivery ("method B" of MQTT 5 §4.3.3). When its node fails (closed,
//! or silent for [`SILENCE`] despite PINGREQs) it connects to the next node; Session Present 0
//! means its subscription and queue are gone, so it subscribes again.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wardgate_bench::wire::{Client, Stamp};
use wardgate_protocol::{
    Packet, PacketId, PubAck, PublishQos, QoS, Subscribe, SubscriptionOptions, TopicFilter, encode,
};

use super::journal::{ClientRef, Journal};
use super::session::{End, Failover};
use crate::error::{Error, Result};

/// A connection silent this long (PINGREQs unanswered) is taken for dead.
pub const SILENCE: Duration = Duration::from_secs(5);
/// How often an idle subscriber pings.
const PING_EVERY: Duration = Duration::from_secs(1);

/// A subscriber of a round.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// Its index.
    pub index: u32,
    /// The node it connects to first.
    pub home: usize,
    /// Its client ID.
    pub client_id: String,
    /// Its filter (every publisher's topic of the round).
    pub filter: String,
}

/// Receives until `stop`.
pub async fn run(
    s: Subscriber,
    nodes: Arc<[SocketAddr]>,
    journal: Arc<Journal>,
    stop: CancellationToken,
) -> Result<()> {
    let filter = TopicFilter::new(&s.filter).map_err(|e| Error::Usage(format!("filter: {e}")))?;
    let me = ClientRef::Subscriber(s.index);
    let mut failover = Failover::new(nodes, s.home, &s.client_id, me, journal.clone());
    // QoS 2 packet ids received and not yet released, kept while the session lasts.
    let mut unreleased: HashSet<PacketId> = HashSet::new();
    while let Some((mut client, present)) = failover.connect(&stop).await {
        if present {
            journal.subscribed(s.index);
        } else {
            unreleased.clear();
            let subscribe = Subscribe {
                packet_id: PacketId::from(std::num::NonZeroU16::MIN),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: vec![(filter.clone(), SubscriptionOptions::new(QoS::ExactlyOnce))],
            };
            encode(
                &Packet::Subscribe(subscribe),
                client.version,
                &mut client.wbuf,
            );
        }
        match receive(&s, &mut client, &mut unreleased, &journal, &stop).await {
            End::Done => {
                client.disconnect().await;
                break;
            }
            End::Lost => failover.lost(),
        }
    }
    Ok(())
}

/// One connection's work: acknowledge and record every message until `stop` or a failure.
async fn receive(
    s: &Subscriber,
    client: &mut Client,
    unreleased: &mut HashSet<PacketId>,
    journal: &Journal,
    stop: &CancellationToken,
) -> End {
    let mut heard = Instant::now();
    loop {
        if client.flush().await.is_err() {
            return End::Lost;
        }
        let read = tokio::select! {
            read = tokio::time::timeout(PING_EVERY, client.read_packet()) => read,
            () = stop.cancelled() => return End::Done,
        };
        let packet = match read {
            Ok(Ok(packet)) => packet,
            Ok(Err(_)) => return End::Lost,
            Err(_) if heard.elapsed() >= SILENCE => return End::Lost,
            Err(_) => {
                encode(&Packet::PingReq, client.version, &mut client.wbuf);
                continue;
            }
        };
        heard = Instant::now();
        match packet {
            Packet::Publish(publish) => {
                let stamp = Stamp::read(&publish.payload);
                let new = match publish.qos {
                    PublishQos::ExactlyOnce(id) => {
                        encode(
                            &Packet::PubRec(PubAck::new(id)),
                            client.version,
                            &mut client.wbuf,
                        );
                        unreleased.insert(id)
                    }
                    PublishQos::AtLeastOnce(id) => {
                        encode(
                            &Packet::PubAck(PubAck::new(id)),
                            client.version,
                            &mut client.wbuf,
                        );
                        true
                    }
                    PublishQos::AtMostOnce => true,
                };
                if let (true, Some(stamp)) = (new, stamp) {
                    journal.received(s.index, stamp.publisher, stamp.seq);
                }
            }
            Packet::PubRel(rel) => {
                unreleased.remove(&rel.packet_id);
                encode(
                    &Packet::PubComp(PubAck::new(rel.packet_id)),
                    client.version,
                    &mut client.wbuf,
                );
            }
            Packet::SubAck(ack) if ack.reasons.iter().all(|r| !r.is_error()) => {
                journal.subscribed(s.index);
            }
            Packet::Disconnect(_) => return End::Lost,
            _ => {}
        }
    }
}
