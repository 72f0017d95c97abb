//! A session leaving this node for another one (docs/cluster.md, a takeover across nodes): its
//! connection is told to go as by a local takeover, and its state is copied out in the store's
//! recovered form, which the receiving node restores.

use super::*;
use crate::message::Message;
use crate::store::{RecoveredDelivery, RecoveredSession};

/// What a session leaving this node leaves behind.
#[derive(Debug)]
pub(crate) struct HandedOff {
    /// The will to publish here: the connection's will when the session does not continue, or
    /// continues and the will has no delay [MQTT-3.1.3-9]; a delayed will waiting after a
    /// connection that went is cancelled when the session continues.
    pub(crate) will: Option<Will>,
    /// The session's state, when it continues on the other node.
    pub(crate) state: Option<RecoveredSession>,
}

impl Session {
    /// Ends this session here for a connection of its client on another node: the attached
    /// connection, if any, is told to go with `kick_reason` (it then sees itself taken over). With
    /// `resume` (Clean Start 0) and a session that may be resumed (a session expiry), its state
    /// is returned, without its will.
    pub(crate) fn hand_off(
        &self,
        resume: bool,
        kick_reason: wardgate_protocol::ReasonCode,
    ) -> HandedOff {
        let mut st = self.state.lock();
        if let Some(mut link) = st.link.take() {
            link.kick = Some(kick_reason);
            link.waker.wake();
        }
        self.connected.store(false, Ordering::Release);
        let will = st.will.take().map(|w| *w);
        let pending = st.pending_will.take().map(|p| p.1);
        if !resume || st.expiry_interval == 0 {
            return HandedOff {
                will: will.or(pending),
                state: None,
            };
        }
        let will = will.filter(|w| w.properties.will_delay_interval.unwrap_or(0) == 0);
        let mut record = self.record(&st);
        record.will = None;
        record.will_due = None;
        let inflight = st
            .inflight
            .iter()
            .map(|i| recovered(&i.delivery, Some((i.packet_id, i.state))));
        let queued = st.queue.iter().map(|d| recovered(d, None));
        let messages = inflight.chain(queued).collect();
        let state = RecoveredSession {
            record,
            subscriptions: st
                .subscriptions
                .iter()
                .map(|(f, e)| (f.as_filter().clone(), *e))
                .collect(),
            messages,
            incoming_qos2: st
                .incoming_qos2
                .iter()
                .filter_map(|id| PacketId::new(*id))
                .collect(),
        };
        HandedOff {
            will,
            state: Some(state),
        }
    }

    /// Writes the whole of a session that moved here to this node's store, when there is one:
    /// its record, subscriptions, incoming QoS 2 ids and (when its queue is stored) its queued
    /// and in-flight copies. The CONNACK that resumes it waits for the write.
    pub(crate) fn store_moved(&self) {
        if self.store.is_none() {
            return;
        }
        let st = self.state.lock();
        let record = self.record(&st);
        let session = self.id;
        let mut ops = vec![Op::Session(&record)];
        if st.persist_subs {
            for (filter, entry) in &st.subscriptions {
                let filter = filter.as_filter();
                ops.push(Op::Subscribe {
                    session,
                    filter,
                    entry: *entry,
                });
            }
            for id in st.incoming_qos2.iter().filter_map(|id| PacketId::new(*id)) {
                ops.push(Op::IncomingQos2 {
                    session,
                    packet_id: id,
                });
            }
        }
        if st.persist_queue {
            let inflight = st.inflight.iter().map(|i| (&i.delivery, Some(i)));
            let queued = st.queue.iter().map(|d| (d, None));
            for (delivery, inflight) in inflight.chain(queued) {
                let Some(seq) = delivery.seq else { continue };
                ops.push(Op::Enqueue {
                    session,
                    seq,
                    delivery: stored(delivery),
                });
                if let Some(i) = inflight.filter(|i| i.state != InflightState::AwaitPubAck) {
                    ops.push(Op::Inflight {
                        session,
                        seq: seq.get(),
                        packet_id: i.packet_id,
                        state: i.state,
                    });
                }
            }
        }
        self.write(&ops);
    }
}

/// A queued or in-flight copy in the store's recovered form.
fn recovered(d: &Delivery, inflight: Option<(PacketId, InflightState)>) -> RecoveredDelivery {
    let m = &d.message;
    RecoveredDelivery {
        seq: d.seq.map_or(0, NonZeroU64::get),
        message: Message {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: m.qos,
            retain: m.retain,
            properties: m.properties.clone(),
            origin: m.origin,
            expires_at: m.expires_at,
        },
        qos: d.qos,
        retain: d.retain,
        subscription_ids: d.subscription_ids.clone(),
        shared: d.shared.clone(),
        inflight,
    }
}
