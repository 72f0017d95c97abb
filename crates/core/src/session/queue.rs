//! A session's bounded queue: enqueueing with its overflow policy and byte bound, congestion,
//! and what a slow or re-authorized session gives up.

use super::*;

impl Session {
    /// Offers a delivery. Wakes the attached connection when queued.
    pub fn enqueue(&self, delivery: Delivery) -> Enqueued {
        let mut st = self.state.lock();
        let was_empty = st.queue.is_empty();
        let enqueued = self.enqueue_locked(&mut st, delivery);
        self.wake_if_filled(&st, was_empty);
        enqueued
    }

    /// [`Session::enqueue`] for several deliveries (one publisher's run of messages, in
    /// order) under one lock and with at most one wake-up; `each` gets every outcome in order.
    pub fn enqueue_many(
        &self,
        deliveries: impl IntoIterator<Item = Delivery>,
        mut each: impl FnMut(Enqueued),
    ) {
        let mut st = self.state.lock();
        let was_empty = st.queue.is_empty();
        for delivery in deliveries {
            each(self.enqueue_locked(&mut st, delivery));
        }
        self.wake_if_filled(&st, was_empty);
    }

    /// Wakes the attached connection when the queue, empty before, has messages now.
    pub(super) fn wake_if_filled(&self, st: &SessionState, was_empty: bool) {
        if was_empty
            && !st.queue.is_empty()
            && let Some(link) = &st.link
        {
            link.waker.wake();
        }
    }

    pub(super) fn enqueue_locked(&self, st: &mut SessionState, mut delivery: Delivery) -> Enqueued {
        if st.link.is_none() && delivery.qos == QoS::AtMostOnce {
            st.dropped += 1;
            return Enqueued::DroppedOffline;
        }
        let mut dropped_oldest = 0;
        let bytes = delivery.bytes();
        while st.is_full(bytes) {
            match st.limits.overflow {
                QueueOverflow::DropNew => {
                    st.dropped += 1;
                    if let Some(seq) = delivery.seq {
                        // Written by its publisher already.
                        self.write_background(&[Op::Dequeue {
                            session: self.id,
                            seq: seq.get(),
                        }]);
                    }
                    return Enqueued::DroppedFull;
                }
                QueueOverflow::DropOldest => {
                    let Some(old) = st.queue.pop_front() else {
                        break;
                    };
                    st.held_bytes -= old.bytes();
                    if let Some(seq) = old.seq {
                        self.write_background(&[Op::Dequeue {
                            session: self.id,
                            seq: seq.get(),
                        }]);
                    }
                    st.dropped += 1;
                    dropped_oldest += 1;
                }
            }
        }
        if delivery.seq.is_none() && st.persist_queue && delivery.qos != QoS::AtMostOnce {
            // Queued by the broker itself (retained on subscribe, a shared copy handed over):
            // stored here, under this session's lock.
            let seq = st.take_seq();
            delivery.seq = Some(seq);
            self.write_background(&[Op::Enqueue {
                session: self.id,
                seq,
                delivery: stored(&delivery),
            }]);
        }
        st.held_bytes += bytes;
        st.queue.push_back(delivery);
        let congested =
            st.link.is_some() && st.is_congested() && st.last_drain.elapsed() < STALLED_AFTER;
        Enqueued::Queued {
            congested,
            dropped_oldest,
        }
    }

    /// Registers `waker` to be woken when this session's queue falls below the congestion
    /// threshold (or the session loses its connection). Returns false, registering nothing, if
    /// the queue is already below it.
    pub fn wait_for_space(&self, waker: Arc<dyn Wake>) -> bool {
        let mut st = self.state.lock();
        if st.link.is_none() || !st.is_congested() || st.last_drain.elapsed() >= STALLED_AFTER {
            return false;
        }
        st.space_waiters.push(waker);
        true
    }
}

impl Session {
    /// The bytes this session holds in its queue when it is a slow consumer — connected but
    /// stalled (it took nothing for [`STALLED_AFTER`]), or without a connection — and has
    /// something queued; `None` for a session that is being drained, or has nothing queued.
    pub(crate) fn reclaimable(&self, now: Instant) -> Option<u64> {
        let st = self.state.lock();
        let idle =
            st.link.is_none() || now.saturating_duration_since(st.last_drain) >= STALLED_AFTER;
        (idle && !st.queue.is_empty()).then_some(st.held_bytes)
    }

    /// Drops queued (never in-flight) copies until the session holds at most `share` bytes or
    /// has nothing queued, from the end its overflow policy drops first: the newest under
    /// `DropNew`, the oldest under `DropOldest`. Returns how many were dropped.
    pub(crate) fn shed_to(&self, share: u64) -> u64 {
        let mut gone = Vec::new();
        let shed = {
            let mut st = self.state.lock();
            let mut shed = 0;
            while st.held_bytes > share {
                let old = match st.limits.overflow {
                    QueueOverflow::DropNew => st.queue.pop_back(),
                    QueueOverflow::DropOldest => st.queue.pop_front(),
                };
                let Some(old) = old else { break };
                st.held_bytes -= old.bytes();
                if let Some(seq) = old.seq {
                    let ops = [Op::Dequeue {
                        session: self.id,
                        seq: seq.get(),
                    }];
                    self.write_background(&ops);
                }
                shed += 1;
                // Dropped after the lock is released (the last copy frees its message).
                gone.push(old);
            }
            st.dropped += shed;
            shed
        };
        drop(gone);
        shed
    }

    /// Drops the queued and in-flight deliveries that `keep` refuses (a resumed session's
    /// messages its principal may not read), counting each in `Drops::not_authorized`. A QoS 2
    /// flow past PUBREC keeps its PUBREL: the client has the message already. Returns how many
    /// were dropped.
    pub fn retain_deliveries(&self, mut keep: impl FnMut(&Delivery) -> bool) -> usize {
        let mut gone = Vec::new();
        {
            let mut st = self.state.lock();
            let st = &mut *st;
            let mut freed = 0;
            st.queue.retain(|d| {
                let kept = keep(d);
                if !kept {
                    gone.push(d.seq);
                    freed += d.bytes();
                }
                kept
            });
            let ids = &mut st.inflight_ids;
            st.inflight.retain(|f| {
                if f.state == InflightState::AwaitPubComp || keep(&f.delivery) {
                    return true;
                }
                ids.remove(&f.packet_id.get());
                gone.push(f.delivery.seq);
                freed += f.delivery.bytes();
                false
            });
            st.held_bytes -= freed;
            st.dropped += gone.len() as u64;
            let ops: Vec<Op<'_>> = gone
                .iter()
                .flatten()
                .map(|seq| Op::Dequeue {
                    session: self.id,
                    seq: seq.get(),
                })
                .collect();
            self.write_background(&ops);
        }
        let dropped = gone.len();
        if dropped > 0 {
            let drops = &self.stats.drops.not_authorized;
            drops.fetch_add(dropped as u64, Ordering::Relaxed);
            self.stats
                .publish_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        dropped
    }

    /// Takes every inflight and queued QoS 1/2 delivery that came through a shared subscription,
    /// in that order, so the broker can hand them to another member of the group.
    pub(crate) fn take_shared_deliveries(&self) -> Vec<Delivery> {
        let mut st = self.state.lock();
        let mut taken = Vec::new();
        let st = &mut *st;
        // In flight first, then queued: the order they were routed in.
        let ids = &mut st.inflight_ids;
        st.inflight.retain(|f| {
            // A QoS 2 message once sent belongs to this client: its delivery is completed when
            // the client comes back, never given to another member [MQTT-4.8.2-4], [MQTT-4.8.2-5].
            // A QoS 1 message not acknowledged yet may go to another member (§4.8.2).
            if f.delivery.shared.is_some() && f.state == InflightState::AwaitPubAck {
                ids.remove(&f.packet_id.get());
                taken.push(f.delivery.clone());
                false
            } else {
                true
            }
        });
        st.queue.retain(|d| {
            if d.shared.is_some() && d.qos != QoS::AtMostOnce {
                taken.push(d.clone());
                false
            } else {
                true
            }
        });
        st.held_bytes -= taken.iter().map(Delivery::bytes).sum::<u64>();
        // They leave this session's stored queue; whoever takes them stores them anew.
        let ops: Vec<Op<'_>> = taken
            .iter()
            .filter_map(|d| d.seq)
            .map(|seq| Op::Dequeue {
                session: self.id,
                seq: seq.get(),
            })
            .collect();
        self.write_background(&ops);
        drop(ops);
        for d in &mut taken {
            d.seq = None;
        }
        taken
    }
}
