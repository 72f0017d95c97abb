//! Outbound delivery: draining the queue into the inflight window, and the QoS 1/2
//! acknowledgements that complete it.

use super::*;

impl Session {
    /// Messages to write now: redeliveries first are handled by [`Session::resend_inflight`];
    /// this takes queued messages while the client's Receive Maximum has room, at most `max`
    /// packets. `fits` rejects a delivery the client cannot accept (Maximum Packet Size); such
    /// deliveries and expired ones are dropped and counted. Returns how many were dropped.
    pub fn drain(
        &self,
        now: Instant,
        max: usize,
        fits: impl Fn(&Delivery) -> bool,
        out: &mut Vec<Outgoing>,
    ) -> u64 {
        self.drain_locked(&mut self.state.lock(), now, max, &mut Collect { fits, out })
    }

    /// [`Session::drain`] for connection `generation` only: a connection that has been taken
    /// over must not take messages meant for its successor (they would sit in the inflight
    /// window, unsent). Returns `None` when `generation` is no longer attached.
    pub fn drain_attached(
        &self,
        generation: u64,
        now: Instant,
        max: usize,
        fits: impl Fn(&Delivery) -> bool,
        out: &mut Vec<Outgoing>,
    ) -> Option<u64> {
        self.drain_into(generation, now, max, &mut Collect { fits, out })
    }

    /// [`Session::drain_attached`] into `sink`, which encodes each message while the session's
    /// lock is held, from the entry the session keeps (no copy of the delivery).
    pub fn drain_into(
        &self,
        generation: u64,
        now: Instant,
        max: usize,
        sink: &mut impl Sink,
    ) -> Option<u64> {
        let mut st = self.state.lock();
        if st.link.as_ref().is_none_or(|l| l.generation != generation) {
            return None;
        }
        Some(self.drain_locked(&mut st, now, max, sink))
    }

    /// Whether queued messages remain that the inflight window would allow to send now.
    pub fn has_sendable(&self) -> bool {
        let st = self.state.lock();
        match st.queue.front() {
            None => false,
            Some(d) => d.qos == QoS::AtMostOnce || st.inflight.len() < usize::from(st.send_quota),
        }
    }

    /// Every unacknowledged outbound flow, to resend after the session resumes: PUBLISH with DUP
    /// for those awaiting PUBACK/PUBREC, PUBREL for those awaiting PUBCOMP [MQTT-4.4.0-1].
    pub fn resend_inflight(&self, out: &mut Vec<Outgoing>) {
        let st = self.state.lock();
        for f in &st.inflight {
            out.push(match f.state {
                InflightState::AwaitPubComp => Outgoing::PubRel(f.packet_id),
                _ => Outgoing::Publish {
                    qos: PublishQos::new(f.delivery.qos, f.packet_id),
                    delivery: f.delivery.clone(),
                    dup: true,
                },
            });
        }
    }

    /// Handles PUBACK. Returns false if no QoS 1 flow had that id.
    pub fn puback(&self, packet_id: PacketId) -> bool {
        self.complete(packet_id, InflightState::AwaitPubAck)
    }

    /// Handles PUBCOMP. Returns false if no flow was awaiting it.
    pub fn pubcomp(&self, packet_id: PacketId) -> bool {
        self.complete(packet_id, InflightState::AwaitPubComp)
    }

    /// Handles PUBREC. `accepted` is false when its reason code is an error, which ends the flow
    /// (no PUBREL). Returns whether a PUBREL must be sent.
    pub fn pubrec(&self, packet_id: PacketId, accepted: bool) -> bool {
        if !accepted {
            self.complete(packet_id, InflightState::AwaitPubRec);
            return false;
        }
        let mut st = self.state.lock();
        let found = st.inflight_position(packet_id);
        match found.and_then(|pos| st.inflight.get_mut(pos)) {
            Some(f) if f.state == InflightState::AwaitPubRec => {
                f.state = InflightState::AwaitPubComp;
                if let Some(seq) = f.delivery.seq {
                    // The PUBREL this answers must not leave before this is durable: after a
                    // restart the flow resumes with PUBREL, never with the PUBLISH again.
                    self.write(&[Op::Inflight {
                        session: self.id,
                        seq: seq.get(),
                        packet_id,
                        state: InflightState::AwaitPubComp,
                    }]);
                }
                true
            }
            // A repeated PUBREC for a flow already released: answer with PUBREL again.
            Some(f) => f.state == InflightState::AwaitPubComp,
            None => false,
        }
    }

    /// Ends an outbound flow. The connection that received the acknowledgement drains the
    /// queue next (the window has room now), so nothing is woken; the delivery is dropped after
    /// the lock is released (its message's reference count is shared with every other copy).
    pub(super) fn complete(&self, packet_id: PacketId, expected: InflightState) -> bool {
        let done = {
            let mut st = self.state.lock();
            let Some(pos) = st.inflight_position(packet_id) else {
                return false;
            };
            if st.inflight[pos].state != expected {
                return false;
            }
            let done = st.inflight.remove(pos);
            if let Some(done) = &done {
                st.held_bytes -= done.delivery.bytes();
            }
            if let Some(done) = &done
                && let Some(seq) = done.delivery.seq
            {
                self.write_background(&[Op::Dequeue {
                    session: self.id,
                    seq: seq.get(),
                }]);
            }
            st.inflight_ids.remove(&packet_id.get());
            done
        };
        drop(done);
        true
    }
}

impl Session {
    /// The body of [`Session::drain`], under the session's lock.
    pub(super) fn drain_locked(
        &self,
        st: &mut SessionState,
        now: Instant,
        max: usize,
        sink: &mut impl Sink,
    ) -> u64 {
        let stats = &self.stats;
        let mut dropped = 0;
        let mut taken = 0;
        // Store changes, written once at the end: dropped entries, and QoS 2 packet ids (a
        // QoS 2 PUBLISH must not leave before its packet id is durable, or a restart would
        // send the message again under a new id and the client would take it twice).
        let mut gone: Vec<u64> = Vec::new();
        let mut sent: Vec<(u64, PacketId)> = Vec::new();
        while taken < max && sink.has_room() {
            let Some(front) = st.queue.front() else { break };
            if front.qos != QoS::AtMostOnce && st.inflight.len() >= usize::from(st.send_quota) {
                break;
            }
            let Some(delivery) = st.queue.pop_front() else {
                break;
            };
            let expired = delivery.message.is_expired(now);
            let unsendable = expired || !sink.fits(&delivery);
            if unsendable || delivery.qos == QoS::AtMostOnce {
                // It leaves the session now (a QoS 1/2 copy sent stays held while in flight).
                st.held_bytes -= delivery.bytes();
            }
            if unsendable {
                let counter = if expired {
                    &stats.drops.expired
                } else {
                    &stats.drops.too_large
                };
                counter.fetch_add(1, Ordering::Relaxed);
                dropped += 1;
                if let Some(seq) = delivery.seq {
                    gone.push(seq.get());
                }
                continue;
            }
            taken += 1;
            if delivery.qos == QoS::AtMostOnce {
                sink.publish(&delivery, PublishQos::AtMostOnce);
                continue;
            }
            let packet_id = st.allocate_packet_id();
            let state = if delivery.qos == QoS::AtLeastOnce {
                InflightState::AwaitPubAck
            } else {
                if let Some(seq) = delivery.seq {
                    sent.push((seq.get(), packet_id));
                }
                InflightState::AwaitPubRec
            };
            st.inflight_ids.insert(packet_id.get());
            sink.publish(&delivery, PublishQos::new(delivery.qos, packet_id));
            st.inflight.push_back(Inflight {
                packet_id,
                delivery,
                state,
            });
        }
        if !gone.is_empty() || !sent.is_empty() {
            let ops: Vec<Op<'_>> = gone
                .iter()
                .map(|&seq| Op::Dequeue {
                    session: self.id,
                    seq,
                })
                .chain(sent.iter().map(|&(seq, packet_id)| Op::Inflight {
                    session: self.id,
                    seq,
                    packet_id,
                    state: InflightState::AwaitPubRec,
                }))
                .collect();
            if sent.is_empty() {
                self.write_background(&ops);
            } else {
                self.write(&ops);
            }
        }
        st.dropped += dropped;
        if taken > 0 {
            st.last_drain = now;
        }
        if !st.space_waiters.is_empty() && st.has_drained() {
            for w in st.space_waiters.drain(..) {
                w.wake();
            }
        }
        dropped
    }
}
