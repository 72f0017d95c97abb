//! SUBSCRIBE and UNSUBSCRIBE: a session's subscriptions, their cost bound, the index, and the
//! retained messages a new subscription is sent.

use super::*;

impl Broker {
    /// Subscribes `session` to `filter` (which may be `$share/<group>/<filter>`), then queues the
    /// retained messages its Retain Handling asks for (never for shared subscriptions).
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &TopicFilter,
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
        filter: &TopicFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
        now: Instant,
        retained_budget: &mut usize,
    ) -> SubscribeResult {
        let shared = filter.shared().ok().flatten();
        let entry = SubscriptionEntry { options, id };
        let existed = {
            let mut st = session.state.lock();
            if !st.subscriptions.contains_key(filter) {
                // A replaced subscription (same filter) costs what it already cost.
                let cost = subscription_cost(filter);
                let limit = self.settings.load().max_subscription_levels;
                if st.subscription_levels.saturating_add(cost) > limit {
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
                st.subscription_levels += cost;
            }
            if st.persist_subs {
                // SUBACK waits for this.
                session.write(&[Op::Subscribe {
                    session: session.id(),
                    filter,
                    entry,
                }]);
            }
            st.subscriptions.insert(filter.clone(), entry).is_some()
        };
        let sub = Subscriber {
            session: session.clone(),
            options,
            id,
        };
        {
            let mut index = self.index.write();
            match &shared {
                Some(s) => index.insert(&s.filter, Some(&s.group), sub),
                None => index.insert(filter, None, sub),
            };
            self.stats
                .subscriptions
                .store(index.len() as u64, Ordering::Relaxed);
        }
        let send_retained = shared.is_none()
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
            let found = self
                .retained
                .read()
                .matching_within(filter, now, retained_budget);
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

    /// Removes `session`'s subscription to `filter`. Returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &TopicFilter) -> bool {
        let existed = {
            let mut st = session.state.lock();
            let existed = st.subscriptions.remove(filter).is_some();
            if existed {
                st.subscription_levels = st
                    .subscription_levels
                    .saturating_sub(subscription_cost(filter));
            }
            if existed && st.persist_subs {
                session.write(&[Op::Unsubscribe {
                    session: session.id(),
                    filter,
                }]);
            }
            existed
        };
        if existed {
            let mut index = self.index.write();
            match filter.shared().ok().flatten() {
                Some(s) => index.remove(&s.filter, Some(&s.group), session.id()),
                None => index.remove(filter, None, session.id()),
            };
            self.stats
                .subscriptions
                .store(index.len() as u64, Ordering::Relaxed);
        }
        existed
    }
}
