//! A session moving between the nodes of a cluster (docs/cluster.md): the node that held it
//! lets it go ([`Broker::release`]) and the node its client connected to takes it in
//! ([`Broker::adopt`]) before the connection attaches, which then resumes it as any session.

use super::*;
use crate::store::{InflightState, RecoveredDelivery, RecoveredSession};

impl Broker {
    /// Lets the session of `client_id` go to another node, where its client connected with
    /// Clean Start 0 (`resume`) or 1, as `principal`. Its connection here, if any, ends as by
    /// a local takeover (v5: DISCONNECT 0x8E), the will rules of a takeover apply here, and the
    /// session leaves this node. Returns its state when it continues there; `None` when this
    /// node holds no such session or it does not continue: a clean start, or a session that
    /// `principal` may not resume ([`Broker::connect`]'s rule: one with Session Expiry 0, or
    /// created by another principal).
    pub fn release(
        &self,
        client_id: &str,
        (resume, principal): (bool, Option<&str>),
        now: Instant,
    ) -> Option<RecoveredSession> {
        let session = self.session(client_id)?;
        if let Some(fabric) = self.fabric() {
            // The new node records the will of the connection it takes.
            fabric.will(client_id, ArmedWill::None);
        }
        let resume = resume && session.resumable_by(principal);
        let handed = session.hand_off(resume, ReasonCode::SESSION_TAKEN_OVER);
        if let Some(will) = handed.will {
            self.publish_will(will, Some(session.id()), now);
        }
        self.end_session(&session);
        handed.state
    }

    /// Takes in a session another node released for a connection of its client here: it
    /// replaces any session of that client ID this node still had, and waits for the
    /// connection, which resumes it (Session Present 1) and resends its in-flight messages.
    pub fn adopt(&self, state: RecoveredSession, now: Instant) {
        let client_id = state.record.client_id.clone();
        if let Some(stale) = self.session(&client_id) {
            // Left over from before the client's last move: the moved state replaces it.
            stale.hand_off(false, ReasonCode::SESSION_TAKEN_OVER);
            self.end_session(&stale);
        }
        let session = self.new_session(client_id.clone(), state.record.protocol);
        let mut record = state.record;
        record.id = session.id();
        let messages = self.recovered_deliveries(state.messages);
        let subscriptions = recovered_subscriptions(state.subscriptions);
        session.restore(&record, now, &subscriptions, messages, &state.incoming_qos2);
        for (filter, entry) in &subscriptions {
            self.index_insert(&session, filter, *entry);
        }
        session.store_moved();
        self.sessions.lock().insert(client_id, session);
    }

    /// Copies as the store (or another node) gave them, charged to the memory budget.
    pub(super) fn recovered_deliveries(
        &self,
        copies: Vec<RecoveredDelivery>,
    ) -> Vec<(Delivery, Option<(PacketId, InflightState)>)> {
        copies
            .into_iter()
            .map(|m| {
                let charge = self.budget.charge(m.message.weight());
                let delivery = Delivery {
                    message: Arc::new(m.message),
                    qos: m.qos,
                    retain: m.retain,
                    subscription_ids: m.subscription_ids,
                    shared: m.shared,
                    charge: Some(charge),
                    seq: NonZeroU64::new(m.seq),
                };
                (delivery, m.inflight)
            })
            .collect()
    }
}

/// Subscriptions as the store (or another node) gave them, parsed: SUBSCRIBE refused malformed
/// shares, so none is stored (one that is anyway is left out, never indexed).
pub(super) fn recovered_subscriptions(
    subscriptions: Vec<(TopicFilter, SubscriptionEntry)>,
) -> Vec<(SubscriptionFilter, SubscriptionEntry)> {
    subscriptions
        .into_iter()
        .filter_map(|(filter, entry)| Some((SubscriptionFilter::new(filter).ok()?, entry)))
        .collect()
}
