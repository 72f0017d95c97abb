//! What happens over time and across restarts: the tick (delayed wills, session expiry, retained
//! expiry, `$SYS`), restoring from the store, wills, and the end of a session.

use super::*;

impl Broker {
    /// Periodic work: fires wills whose delay has passed, ends expired sessions, purges expired
    /// retained messages, and publishes `$SYS` statistics when due. Call about once a second.
    pub fn tick(&self, now: Instant) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            match session.check_expiry(now) {
                SessionEntryCheck::Alive => {}
                SessionEntryCheck::WillDue(will) => {
                    self.publish_will(will, Some(session.id()), now);
                    session.write_record();
                }
                SessionEntryCheck::Expired(will) => {
                    if let Some(will) = will {
                        self.publish_will(will, Some(session.id()), now);
                    }
                    self.end_session(&session);
                }
            }
        }
        let purged = self.retained.write().purge_expired(now);
        if !purged.is_empty() {
            self.stats
                .retained
                .store(self.retained.read().len() as u64, Ordering::Relaxed);
            if let Some(store) = &self.store {
                // Expired data leaves the disk too, not only the index.
                let ops: Vec<Op<'_>> = purged
                    .iter()
                    .filter(|(_, persisted)| *persisted)
                    .map(|(topic, _)| Op::ClearRetained(topic))
                    .collect();
                if !ops.is_empty() {
                    store.write(&ops);
                }
            }
        }
        let due = {
            let mut last = self.last_sys.lock();
            let due =
                last.is_none_or(|t| now.duration_since(t) >= self.settings.load().sys_interval);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let mut topics = self.stats.sys_topics(now.duration_since(self.started));
            let source = self.sys_source.lock().clone();
            if let Some(source) = source {
                topics.extend((source.0)());
            }
            for (topic, payload) in topics {
                if let Ok(topic) = TopicName::new(topic.as_str()) {
                    self.publish(Message {
                        topic,
                        payload: Bytes::from(payload),
                        qos: QoS::AtMostOnce,
                        retain: true,
                        properties: PublishProperties::default(),
                        origin: None,
                        expires_at: None,
                    });
                }
            }
        }
    }

    /// Fills the broker from what its store held at start: sessions (without connections),
    /// their subscriptions, queued and in-flight copies and incoming QoS 2 state, and retained
    /// messages. A session that was connected when the broker stopped lost its connection now:
    /// its will is published (after its delay), and it expires from now. Expired sessions and
    /// retained messages are removed from the store. Call once, before serving.
    pub fn restore(&self, recovered: Recovered, now: Instant) -> Restored {
        let mut report = Restored::default();
        let mut wills = Vec::new();
        let mut max_id = 0;
        let limits = self.settings.load().queue;
        for r in recovered.sessions {
            let record = r.record;
            max_id = max_id.max(record.id.0);
            let was_connected = record.disconnected_at.is_none();
            let since = record.disconnected_at.unwrap_or(now).min(now);
            let session = Arc::new(Session::new(
                record.id,
                record.client_id.clone(),
                record.protocol,
                limits,
                self.stats.clone(),
                self.store.clone(),
            ));
            let messages: Vec<_> = r
                .messages
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
                .collect();
            report.messages += messages.len();
            session.restore(
                &record,
                since,
                &r.subscriptions,
                subscription_cost,
                messages,
                &r.incoming_qos2,
            );
            let expired = record.expiry_interval != u32::MAX
                && now.duration_since(since)
                    >= Duration::from_secs(u64::from(record.expiry_interval));
            // The will of a connection the restart cut, or a delayed will still waiting.
            let mut due = None;
            if let Some(will) = record.will {
                let at = match record.will_due {
                    Some(at) if !was_connected => at,
                    _ => {
                        let delay = will.properties.will_delay_interval.unwrap_or(0);
                        now + Duration::from_secs(u64::from(delay.min(record.expiry_interval)))
                    }
                };
                if expired || at <= now {
                    wills.push((will, session.id()));
                } else {
                    due = Some((at, will));
                }
            }
            if expired {
                report.expired += 1;
                self.drop_stored(&session);
                continue;
            }
            session.state.lock().pending_will = due.map(Box::new);
            for (filter, entry) in &r.subscriptions {
                self.index_insert(&session, filter, *entry);
            }
            session.write_record();
            self.sessions
                .lock()
                .insert(record.client_id.clone(), session);
            report.sessions += 1;
        }
        self.next_session.fetch_max(max_id + 1, Ordering::Relaxed);
        {
            let mut retained = self.retained.write();
            let mut expired = Vec::new();
            for message in recovered.retained {
                if message.is_expired(now) {
                    expired.push(message.topic);
                    continue;
                }
                let message = Arc::new(message);
                retained.apply(&message);
                retained.set_persisted(&message.topic, true);
                report.retained += 1;
            }
            self.stats
                .retained
                .store(retained.len() as u64, Ordering::Relaxed);
            if let Some(store) = &self.store
                && !expired.is_empty()
            {
                let ops: Vec<Op<'_>> = expired.iter().map(Op::ClearRetained).collect();
                store.write(&ops);
            }
        }
        report.wills = wills.len();
        for (will, origin) in wills {
            self.publish_will(will, Some(origin), now);
        }
        report
    }

    pub(super) fn index_insert(
        &self,
        session: &Arc<Session>,
        filter: &TopicFilter,
        entry: SubscriptionEntry,
    ) {
        let sub = Subscriber {
            session: session.clone(),
            options: entry.options,
            id: entry.id,
        };
        let mut index = self.index.write();
        match filter.shared().ok().flatten() {
            Some(s) => index.insert(&s.filter, Some(&s.group), sub),
            None => index.insert(filter, None, sub),
        };
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
    }
}

impl Broker {
    pub(super) fn publish_will(&self, will: Will, origin: Option<SessionId>, now: Instant) {
        let expiry = self.cap_message_expiry(will.properties.message_expiry_interval);
        let properties = PublishProperties {
            payload_format_indicator: will.properties.payload_format_indicator,
            message_expiry_interval: expiry,
            topic_alias: None,
            response_topic: will.properties.response_topic,
            correlation_data: will.properties.correlation_data,
            user_properties: will.properties.user_properties,
            subscription_identifiers: Vec::new(),
            content_type: will.properties.content_type,
        };
        self.stats.wills_sent.fetch_add(1, Ordering::Relaxed);
        self.publish(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            origin,
            expires_at: Message::expiry_from(now, expiry),
        });
    }

    pub(super) fn redistribute_shared(&self, session: &Arc<Session>, _now: Instant) {
        let orphans = session.take_shared_deliveries();
        if orphans.is_empty() {
            return;
        }
        let mut moved = Vec::new();
        {
            let index = self.index.read();
            for delivery in orphans {
                let Some(shared) = &delivery.shared else {
                    continue;
                };
                let pick = index
                    .group(&shared.filter, &shared.group)
                    .and_then(|g| g.pick(Some(session.id())))
                    .filter(|s| s.session.is_connected());
                match pick {
                    Some(sub) => moved.push((sub.session.clone(), delivery)),
                    // No other member is connected: keep it with this (persistent) session.
                    None => moved.push((session.clone(), delivery)),
                }
            }
        }
        // A member whose queue is full drops what it is handed: counted as any drop.
        let mut result = RouteResult::default();
        for (target, delivery) in moved {
            self.count(&mut result, &target, target.enqueue(delivery));
        }
        if result.dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(result.dropped as u64, Ordering::Relaxed);
        }
    }

    pub(super) fn end_session(&self, session: &Arc<Session>) {
        self.drop_stored(session);
        {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(session.client_id())
                .is_some_and(|s| Arc::ptr_eq(s, session))
            {
                sessions.remove(session.client_id());
            }
        }
        self.drop_subscriptions(session);
    }

    pub(super) fn drop_subscriptions(&self, session: &Arc<Session>) {
        let filters: Vec<TopicFilter> = {
            let mut st = session.state.lock();
            st.subscription_levels = 0;
            st.subscriptions.drain().map(|(f, _)| f).collect()
        };
        if filters.is_empty() {
            return;
        }
        let mut index = self.index.write();
        for filter in &filters {
            match filter.shared().ok().flatten() {
                Some(s) => index.remove(&s.filter, Some(&s.group), session.id()),
                None => index.remove(filter, None, session.id()),
            };
        }
        self.stats
            .subscriptions
            .store(index.len() as u64, Ordering::Relaxed);
    }

    pub(super) fn new_session(
        &self,
        client_id: Arc<str>,
        protocol: ProtocolVersion,
    ) -> Arc<Session> {
        let id = SessionId(self.next_session.fetch_add(1, Ordering::Relaxed));
        Arc::new(Session::new(
            id,
            client_id,
            protocol,
            self.settings.load().queue,
            self.stats.clone(),
            self.store.clone(),
        ))
    }

    /// Removes a session's data from the store (it ended or was replaced). Returns the ticket
    /// when something was written.
    pub(super) fn drop_stored(&self, session: &Session) -> Option<Ticket> {
        let store = self.store.as_ref()?;
        let mut st = session.state.lock();
        if !st.stored {
            return None;
        }
        st.stored = false;
        st.persist_subs = false;
        session.set_persist_queue(&mut st, false);
        Some(store.write(&[Op::DropSession(session.id())]))
    }
}
