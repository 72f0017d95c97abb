//! A session's subscriptions as the session remembers them: added within their cost bound,
//! replaced, removed, and written to the store when the session keeps them. The subscription
//! index holds the routing copies; the broker keeps the two in step.

use wardgate_protocol::SubscriptionFilter;

use super::*;

/// What [`Session::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscribed {
    /// A new subscription, its cost now counted.
    New,
    /// It replaced the session's subscription to the same filter (which costs what it cost).
    Replaced,
    /// Refused: the subscriptions would cost more than the limit. Nothing was changed.
    OverLimit,
}

impl Session {
    /// Adds or replaces the subscription to `filter`, unless a new one would take the
    /// subscriptions' cost ([`TopicFilter::levels`]) past `max_levels`. With
    /// persistence on, it is written before this returns (the SUBACK waits for it).
    pub(crate) fn subscribe(
        &self,
        filter: &SubscriptionFilter,
        entry: SubscriptionEntry,
        max_levels: u64,
    ) -> Subscribed {
        let mut st = self.state.lock();
        if !st.subscriptions.contains_key(filter.as_filter().as_str()) {
            let cost = filter.as_filter().levels();
            if st.subscription_levels.saturating_add(cost) > max_levels {
                return Subscribed::OverLimit;
            }
            st.subscription_levels += cost;
        }
        if st.persist_subs {
            self.write(&[Op::Subscribe {
                session: self.id,
                filter: filter.as_filter(),
                entry,
            }]);
        }
        match st.subscriptions.insert(filter.clone(), entry) {
            Some(_) => Subscribed::Replaced,
            None => Subscribed::New,
        }
    }

    /// Removes the subscription to `filter` (as the client sent it). Returns it, parsed, when
    /// it existed, for the index to remove its routing copy.
    pub(crate) fn unsubscribe(&self, filter: &TopicFilter) -> Option<SubscriptionFilter> {
        let mut st = self.state.lock();
        let (removed, _) = st.subscriptions.remove_entry(filter.as_str())?;
        st.subscription_levels = st.subscription_levels.saturating_sub(filter.levels());
        if st.persist_subs {
            self.write(&[Op::Unsubscribe {
                session: self.id,
                filter,
            }]);
        }
        Some(removed)
    }

    /// Takes every subscription away (the session ends or is replaced); the store's copies go
    /// with the session's record.
    pub(crate) fn take_subscriptions(&self) -> Vec<SubscriptionFilter> {
        let mut st = self.state.lock();
        st.subscription_levels = 0;
        st.subscriptions.drain().map(|(filter, _)| filter).collect()
    }

    /// The filters of every subscription, parsed (for a cluster the node joins).
    pub(crate) fn subscription_filters(&self) -> Vec<SubscriptionFilter> {
        self.state.lock().subscriptions.keys().cloned().collect()
    }
}
