//! What a session writes to the store, and how it is restored from it: its record, queued
//! copies and their sequence numbers, and the tickets its connection waits for.

use super::*;

impl Session {
    /// The ticket of the last store write made on this session's behalf: what its connection
    /// writes after that write must wait until the store says it is durable. `Ticket(0)`
    /// without persistence.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.ticket.load(Ordering::Acquire))
    }

    /// The cluster's ticket for the last message this session's client published (`Ticket(0)`
    /// outside a cluster): what its connection writes after that must wait until the fabric
    /// says it is durable ([`Fabric::durable`](crate::Fabric::durable)).
    pub fn fabric_ticket(&self) -> Ticket {
        Ticket(self.fabric_ticket.load(Ordering::Acquire))
    }

    /// Records that this session's connection must wait for the cluster's `ticket`.
    pub(crate) fn note_fabric_ticket(&self, ticket: Ticket) {
        self.fabric_ticket.fetch_max(ticket.0, Ordering::AcqRel);
    }

    /// The broker's store, when persistence is on.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Writes `ops` that what the connection sends next confirms (CONNACK, SUBACK, PUBCOMP, an
    /// outgoing QoS 2 PUBLISH or PUBREL): the connection holds its output until they are
    /// durable. Call with the session's lock held, so the store sees the session's changes in
    /// the order they happened.
    pub(crate) fn write(&self, ops: &[Op<'_>]) {
        if ops.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            let ticket = store.write(ops);
            self.note_ticket(ticket);
        }
    }

    /// Writes `ops` that confirm nothing to the client (a dequeue after PUBACK, a drop, the
    /// record of a session without a connection): the connection does not wait for them. If
    /// they are lost in a crash, a message is delivered again (QoS 1) or its PUBREL resent.
    pub(crate) fn write_background(&self, ops: &[Op<'_>]) {
        if let Some(store) = &self.store
            && !ops.is_empty()
        {
            store.write(ops);
        }
    }

    /// Whether this session's QoS 1/2 queue is stored (lock-free, for the publish path).
    pub(crate) fn queue_stored(&self) -> bool {
        self.queue_stored.load(Ordering::Relaxed)
    }

    /// Sets the queue persistence flag (with the state's lock held).
    pub(super) fn set_persist_queue(&self, st: &mut SessionState, on: bool) {
        st.persist_queue = on;
        self.queue_stored.store(on, Ordering::Relaxed);
    }

    /// Records that this session's connection must wait for `ticket`.
    pub(crate) fn note_ticket(&self, ticket: Ticket) {
        self.ticket.fetch_max(ticket.0, Ordering::AcqRel);
    }

    /// The session's record as it is now.
    pub(super) fn record(&self, st: &SessionState) -> SessionRecord {
        let (will, will_due) = match (&st.will, &st.pending_will) {
            (Some(w), _) => (Some(Will::clone(w)), None),
            (None, Some(p)) => (Some(p.1.clone()), Some(p.0)),
            (None, None) => (None, None),
        };
        SessionRecord {
            id: self.id,
            client_id: self.client_id.clone(),
            protocol: st.protocol,
            expiry_interval: st.expiry_interval,
            owner: st.owner.clone(),
            persist_queue: st.persist_queue,
            disconnected_at: st.disconnected_at,
            will,
            will_due,
        }
    }

    /// Writes the session's record when it is stored.
    pub(crate) fn write_record(&self) {
        let st = self.state.lock();
        if st.stored {
            let record = self.record(&st);
            self.write_background(&[Op::Session(&record)]);
        }
    }

    /// Fills a session created at start from what the store held. It has no connection:
    /// `disconnected_at` is when it lost it (the restart, for a session that was connected).
    pub(crate) fn restore(
        &self,
        record: &SessionRecord,
        disconnected_at: Instant,
        subscriptions: &[(SubscriptionFilter, SubscriptionEntry)],
        messages: Vec<(Delivery, Option<(PacketId, InflightState)>)>,
        incoming: &[PacketId],
    ) {
        let mut st = self.state.lock();
        st.stored = true;
        st.persist_subs = record.expiry_interval > 0;
        self.set_persist_queue(&mut st, record.persist_queue);
        st.expiry_interval = record.expiry_interval;
        st.owner.clone_from(&record.owner);
        st.protocol = record.protocol;
        st.disconnected_at = Some(disconnected_at);
        // Counted, never refused: a session restored over the bound keeps what it had.
        for (filter, entry) in subscriptions {
            if st.subscriptions.insert(filter.clone(), *entry).is_none() {
                st.subscription_levels += filter.as_filter().levels();
            }
        }
        let mut last_id = 0;
        for (delivery, inflight) in messages {
            if let Some(seq) = delivery.seq {
                st.next_seq = st.next_seq.max(seq.saturating_add(1));
            }
            st.held_bytes += delivery.bytes();
            match inflight {
                Some((packet_id, state)) if st.inflight_ids.insert(packet_id.get()) => {
                    last_id = last_id.max(packet_id.get());
                    st.inflight.push_back(Inflight {
                        packet_id,
                        delivery,
                        state,
                    });
                }
                _ => st.queue.push_back(delivery),
            }
        }
        st.next_packet_id = last_id.wrapping_add(1).max(1);
        for id in incoming {
            st.incoming_qos2.insert(id.get());
        }
    }

    /// Reserves a queue sequence number for a QoS 1/2 copy a publisher is about to write
    /// (`None` when this session's queue is not stored).
    pub(crate) fn reserve_seq(&self) -> Option<NonZeroU64> {
        let mut st = self.state.lock();
        st.persist_queue.then(|| st.take_seq())
    }
}

/// A queued copy as the store sees it.
pub(crate) fn stored(d: &Delivery) -> StoredDelivery<'_> {
    StoredDelivery {
        message: &d.message,
        qos: d.qos,
        retain: d.retain,
        subscription_ids: &d.subscription_ids,
        shared: d.shared.as_ref(),
    }
}
