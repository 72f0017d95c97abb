//! Restoring the broker from its store at start: sessions without connections, their
//! subscriptions, queues and QoS 2 state, retained messages, and the wills the restart made due.

use super::*;

impl Broker {
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
            let messages = self.recovered_deliveries(r.messages);
            report.messages += messages.len();
            let subscriptions = super::handoff::recovered_subscriptions(r.subscriptions);
            session.restore(&record, since, &subscriptions, messages, &r.incoming_qos2);
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
                session.drop_from_store();
                continue;
            }
            if let Some((at, will)) = due {
                session.delay_will(at, will);
            }
            for (filter, entry) in &subscriptions {
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
}
