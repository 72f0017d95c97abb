//! SUBSCRIBE and UNSUBSCRIBE: a session's subscriptions, their cost bound, the index, and the
//! retained messages a new subscription is sent.

use super::*;

impl Broker {
    /// Subscribes `session` to `filter` (plain or shared), then queues the retained messages its
    /// Retain Handling asks for (never for shared subscriptions).
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &SubscriptionFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
        now: Instant,
    ) -> SubscribeResult {
        let mut unbounded = usize::MAX;
        self.subscribe_within(session, filter, options, id, now, &mut unbounded)
    }

    /// The retained topics one SUBSCRIBE may visit ([`RETAINED_VISITS_PER_QUEUED`]), for
    /// [`Broker::subscribe_within`].
    pub fn retained_budget(&self) -> usize {
        self.settings
            .load()
            .queue
            .max_queued
            .saturating_mul(RETAINED_VISITS_PER_QUEUED)
    }

    /// [`Broker::subscribe`] for one filter of a SUBSCRIBE whose retained lookups share
    /// `retained_budget` ([`Broker::retained_budget`]): when it is spent, the subscription is
    /// made but its retained messages are not looked up (`retained_skipped`).
    pub fn subscribe_within(
        &self,
        session: &Arc<Session>,
        filter: &SubscriptionFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
        now: Instant,
        retained_budget: &mut usize,
    ) -> SubscribeResult {
        let entry = SubscriptionEntry { options, id };
        let limit = self.settings.load().max_subscription_levels;
        let existed = match session.subscribe(filter, entry, limit) {
            Subscribed::New => false,
            Subscribed::Replaced => true,
            Subscribed::OverLimit => {
                self.stats
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                return SubscribeResult {
                    quota_exceeded: true,
                    existed: false,
                    retained_skipped: false,
                    retained_sent: 0,
                    retained_dropped: 0,
                };
            }
        };
        self.index_insert(session, filter, entry);
        let send_retained = !filter.is_shared()
            && match options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DontSend => false,
            };
        // Through the session's bounded queue like any message: what does not fit is dropped by
        // the queue's strategy and counted (never silently).
        let mut result = RouteResult::default();
        let mut retained_skipped = false;
        let messages = if send_retained {
            let found =
                self.retained
                    .read()
                    .matching_within(filter.as_filter(), now, retained_budget);
            if found.is_none() {
                retained_skipped = true;
                self.stats
                    .retained_lookups_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
            found
        } else {
            None
        };
        if let Some(messages) = messages {
            let copies = messages.into_iter().map(|message| Delivery {
                qos: message.qos.min(options.qos),
                message,
                retain: true,
                subscription_ids: id.into_iter().collect(),
                shared: None,
                charge: None,
                seq: None,
            });
            session.enqueue_many(copies, |enqueued| {
                self.count(&mut result, session, enqueued);
            });
            if result.dropped > 0 {
                self.stats
                    .publish_dropped
                    .fetch_add(result.dropped as u64, Ordering::Relaxed);
            }
        }
        SubscribeResult {
            quota_exceeded: false,
            existed,
            retained_skipped,
            retained_sent: result.delivered,
            retained_dropped: result.dropped,
        }
    }

    /// Removes `session`'s subscription to `filter` (as the client sent it, `$share/<group>/`
    /// included). Returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &TopicFilter) -> bool {
        match session.unsubscribe(filter) {
            Some(removed) => {
                self.index_remove(session, std::slice::from_ref(&removed));
                true
            }
            None => false,
        }
    }

    /// Takes all of `session`'s subscriptions away, from the session and the index.
    pub(super) fn drop_subscriptions(&self, session: &Arc<Session>) {
        let filters = session.take_subscriptions();
        if !filters.is_empty() {
            self.index_remove(session, &filters);
        }
    }

    /// Files `session`'s subscription to `filter` in the index (replacing one to the same
    /// filter).
    pub(super) fn index_insert(
        &self,
        session: &Arc<Session>,
        filter: &SubscriptionFilter,
        entry: SubscriptionEntry,
    ) {
        let sub = Subscriber {
            session: session.clone(),
            options: entry.options,
            id: entry.id,
        };
        let mut index = self.index.write();
        let replaced = index.subscribe(filter, sub);
        if !replaced && let Some(fabric) = self.fabric.get() {
            fabric.interest(filter, true);
        }
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
    }

    /// Removes `session`'s subscriptions to `filters` from the index.
    fn index_remove(&self, session: &Session, filters: &[SubscriptionFilter]) {
        let mut index = self.index.write();
        let fabric = self.fabric.get();
        for filter in filters {
            if index.unsubscribe(filter, session.id())
                && let Some(fabric) = fabric
            {
                fabric.interest(filter, false);
            }
        }
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
    }
}
