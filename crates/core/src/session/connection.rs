//! What a connection sets on its session when it attaches (owner, protocol, expiry, will,
//! persistence) and when it leaves (the expiry update, the will to publish or delay), and the
//! session's removal from the store when it ends.

use super::*;

/// What a CONNECT sets on the session it attaches to.
#[derive(Debug)]
pub(crate) struct ConnectTerms {
    /// The principal of the connection: the session's owner when it has none yet.
    pub(crate) principal: Option<Arc<str>>,
    /// The connection's protocol version.
    pub(crate) protocol: ProtocolVersion,
    /// The Session Expiry Interval granted.
    pub(crate) expiry_interval: u32,
    /// The connection's will.
    pub(crate) will: Option<Will>,
}

impl Session {
    /// Takes the terms of the connection that just attached. A reconnection within the will
    /// delay cancels the delayed will [MQTT-3.1.3-9]. With persistence on, the session's record
    /// is written (or removed, when it no longer outlives its connection) before this returns,
    /// with its subscriptions when it starts keeping them; `persist_queue_asked` says whether
    /// the persistence policy wants its queue stored.
    pub(crate) fn accept_connection(
        &self,
        terms: ConnectTerms,
        persist_queue_asked: impl FnOnce() -> bool,
    ) {
        let mut st = self.state.lock();
        if st.owner.is_none() {
            // A new session, or one stored before sessions remembered their principal.
            st.owner = terms.principal;
        }
        st.protocol = terms.protocol;
        st.expiry_interval = terms.expiry_interval;
        st.will = terms.will.map(Box::new);
        let cancelled_will = st.pending_will.take();
        if self.store.is_some() {
            let expiry = terms.expiry_interval;
            let was_stored = st.stored;
            let had_subs = st.persist_subs;
            st.stored = expiry > 0 || st.will.is_some();
            st.persist_subs = expiry > 0;
            // Switching a queue's persistence off takes a clean start (AIO).
            let persist_queue = expiry > 0 && (st.persist_queue || persist_queue_asked());
            self.set_persist_queue(&mut st, persist_queue);
            if st.stored {
                let record = self.record(&st);
                let mut ops = vec![Op::Session(&record)];
                if st.persist_subs && !had_subs {
                    // A live session taken over with a session expiry now.
                    ops.extend(
                        st.subscriptions
                            .iter()
                            .map(|(filter, entry)| Op::Subscribe {
                                session: self.id,
                                filter: filter.as_filter(),
                                entry: *entry,
                            }),
                    );
                }
                self.write(&ops);
            } else if was_stored {
                self.write(&[Op::DropSession(self.id)]);
            }
        }
        drop(st);
        drop(cancelled_will);
    }

    /// The connection left: applies its Session Expiry update (capped at `max_expiry`) and
    /// takes its will unless `discard_will` (DISCONNECT 0x00). Returns the session's expiry
    /// interval and the will to publish or delay.
    pub(crate) fn end_connection(
        &self,
        expiry_update: Option<u32>,
        max_expiry: u32,
        discard_will: bool,
    ) -> (u32, Option<Will>) {
        let mut st = self.state.lock();
        if let Some(expiry) = expiry_update {
            st.expiry_interval = expiry.min(max_expiry);
        }
        let will = st.will.take().map(|w| *w);
        (st.expiry_interval, will.filter(|_| !discard_will))
    }

    /// Holds `will` until `at` (its delay, or the session's end), for the tick to publish.
    pub(crate) fn delay_will(&self, at: Instant, will: Will) {
        self.state.lock().pending_will = Some(Box::new((at, will)));
    }

    /// Removes the session's data from the store (it ended or was replaced) and stops writing
    /// it. Returns the ticket when something was written.
    pub(crate) fn drop_from_store(&self) -> Option<Ticket> {
        let store = self.store.as_ref()?;
        let mut st = self.state.lock();
        if !st.stored {
            return None;
        }
        st.stored = false;
        st.persist_subs = false;
        self.set_persist_queue(&mut st, false);
        Some(store.write(&[Op::DropSession(self.id)]))
    }
}
