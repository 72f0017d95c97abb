//! Routing a PUBLISH: its admission against the memory budget and the store, the matching
//! sessions (one member per `$share` group), their copies, and runs of consecutive messages to
//! one topic.

use super::*;

impl Broker {
    /// Decides whether a new client message of `qos` with `bytes` of payload may be routed.
    /// Call it before [`Broker::publish`] for messages from clients (not for retransmissions of
    /// a QoS 2 message already routed); a refusal is counted here.
    pub fn admit(&self, qos: QoS, bytes: usize) -> Result<(), Refusal> {
        let bytes = bytes as u64;
        let drops = &self.stats.drops;
        if qos != QoS::AtMostOnce
            && let Some(store) = &self.store
            && store.is_full()
        {
            drops.store_full.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::StoreFull);
        }
        let (percent, counter) = if qos == QoS::AtMostOnce {
            (100, &drops.memory_budget_qos0)
        } else {
            (75, &drops.memory_budget)
        };
        if self.budget.would_pass(bytes, percent) && !self.reclaim(bytes, percent) {
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::MemoryBudget);
        }
        Ok(())
    }

    /// A slow consumer pays for its own backlog, not the other clients: when the memory budget
    /// is past a threshold, the queues of the sessions that are not being drained (stalled, or
    /// without a connection) are trimmed, each to an equal part of a quarter of the budget, by
    /// their overflow policy, before a new message is refused. In-flight copies are never
    /// dropped. At most once per [`RECLAIM_INTERVAL`] (it visits every session). Returns
    /// whether `bytes` more now stay within `percent`.
    fn reclaim(&self, bytes: u64, percent: u64) -> bool {
        let now = Instant::now();
        {
            let mut last = self.last_reclaim.lock();
            if last.is_some_and(|t| now.saturating_duration_since(t) < RECLAIM_INTERVAL) {
                return false;
            }
            *last = Some(now);
        }
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        let slow: Vec<(u64, Arc<Session>)> = sessions
            .into_iter()
            .filter_map(|s| s.reclaimable(now).map(|held| (held, s)))
            .collect();
        if slow.is_empty() {
            return false;
        }
        let share = self.budget.limit() / 4 / slow.len() as u64;
        let shed: u64 = slow
            .iter()
            .filter(|(held, _)| *held > share)
            .map(|(_, s)| s.shed_to(share))
            .sum();
        if shed > 0 {
            self.stats
                .drops
                .reclaimed
                .fetch_add(shed, Ordering::Relaxed);
            self.stats
                .publish_dropped
                .fetch_add(shed, Ordering::Relaxed);
        }
        !self.budget.would_pass(bytes, percent)
    }

    /// Routes a message: updates the retained store when RETAIN is set, then queues the message
    /// once for every session with a matching subscription (the highest granted QoS and every
    /// subscription identifier when several of its subscriptions match), and for one member of
    /// every matching shared group.
    ///
    /// The message stays on this node (`$SYS`, the self-check): it is not forwarded to a
    /// cluster, and a shared group picks a local member.
    pub fn publish(&self, message: Message) -> RouteResult {
        self.route(message, None, Reach::Node)
    }

    /// Routes a message another node of the cluster forwarded to this one, to the local
    /// subscribers `scope` names. It is not forwarded again, and a retained message does not
    /// change the retained store here: the cluster's retained bucket does
    /// ([`Broker::apply_retained`]).
    pub fn publish_remote(&self, message: Message, scope: RemoteScope<'_>) -> RouteResult {
        self.route(message, None, Reach::Remote(scope))
    }

    /// Sets (or, with an empty payload, clears) the retained message of `message.topic` as
    /// another node published it, without routing it (docs/cluster.md: the retained bucket is
    /// the cluster's one source of retained messages).
    pub fn apply_retained(&self, message: Message) {
        let message = Arc::new(message);
        let change = self.retain(&message);
        if let Some(store) = &self.store {
            match change {
                StoredRetained::Write => {
                    store.write(&[Op::Retain(&message)]);
                }
                StoredRetained::Clear => {
                    store.write(&[Op::ClearRetained(&message.topic)]);
                }
                StoredRetained::Unchanged => {}
            }
        }
    }

    /// [`Broker::publish`] for a message from a client's `session`; `qos2` is the admission of
    /// a QoS 2 PUBLISH ([`Session::receive_qos2`]). With persistence on, the message's stored
    /// copies, its retained update and, for QoS 2, the client's packet id are written as one
    /// batch, and the PUBACK/PUBREC waits for [`Session::ticket`]: after a restart a
    /// retransmission of the same QoS 2 packet is then known, and not routed twice. A QoS 2
    /// message every matching queue dropped ([`RouteResult::refused`]) is not taken: its packet
    /// id is released.
    pub fn publish_from(
        &self,
        session: &Arc<Session>,
        qos2: Option<Qos2Admission>,
        message: Message,
    ) -> RouteResult {
        let packet_id = qos2.as_ref().map(Qos2Admission::packet_id);
        let result = self.route(message, Some((session, packet_id)), Reach::Cluster);
        settle(qos2, &result);
        result
    }

    /// Routes a run of messages from `session`'s client, in order, as [`Broker::publish_from`]
    /// would one by one, and pushes each one's result onto `results`. When the broker keeps no
    /// store and the messages share one topic, none retained, and no shared group matches, the
    /// matching subscriptions are looked up once and each session takes its copies of the whole
    /// run under one lock and with one wake-up: a fan-out's cost per delivery is then mostly
    /// the copy itself, not the session's lock and wake-up moving between cores.
    pub fn publish_run(
        &self,
        session: &Arc<Session>,
        run: impl ExactSizeIterator<Item = (Message, Option<Qos2Admission>)>,
        results: &mut Vec<RouteResult>,
    ) {
        // The admissions of the run's QoS 2 messages with their place in `results`, settled once
        // the run is routed (no allocation without QoS 2).
        let mut admissions = Vec::new();
        let from = results.len();
        let run = run.enumerate().map(|(i, (message, qos2))| {
            let packet_id = qos2.as_ref().map(Qos2Admission::packet_id);
            if let Some(admission) = qos2 {
                admissions.push((from + i, admission));
            }
            (message, packet_id)
        });
        self.route_run(session, run, results);
        for (at, admission) in admissions {
            settle(Some(admission), &results[at]);
        }
    }

    /// [`Broker::publish_run`] once the admissions are set aside.
    fn route_run(
        &self,
        session: &Arc<Session>,
        mut run: impl ExactSizeIterator<Item = (Message, Option<PacketId>)>,
        results: &mut Vec<RouteResult>,
    ) {
        let one = |(m, id): (Message, Option<PacketId>)| {
            self.route(m, Some((session, id)), Reach::Cluster)
        };
        // With a store or a cluster each message is written or forwarded on its own.
        if self.store.is_some() || self.fabric.get().is_some() || run.len() < 2 {
            results.extend(run.map(one));
            return;
        }
        let Some((first, id)) = run.next() else {
            return;
        };
        if first.retain {
            results.push(one((first, id)));
            return self.route_run(session, run, results);
        }
        let (mut targets, overlapping) = self.targets(&first, Reach::Cluster);
        let topic = first.topic.clone();
        let mut messages: Vec<Arc<Message>> = Vec::with_capacity(run.len() + 1);
        messages.push(Arc::new(first));
        if targets.iter().any(|t| t.shared.is_some()) {
            // A shared group's member is picked for each message: the first goes to the members
            // just picked, the others are routed one by one.
            self.deliver_run(&mut messages, &mut targets, overlapping, results);
            results.extend(run.map(one));
            return;
        }
        for (message, id) in run {
            if message.retain || message.topic != topic {
                // Not part of the run: the messages before it go first.
                self.deliver_run(&mut messages, &mut targets, overlapping, results);
                results.push(one((message, id)));
            } else {
                messages.push(Arc::new(message));
            }
        }
        self.deliver_run(&mut messages, &mut targets, overlapping, results);
    }

    pub(super) fn deliver_run(
        &self,
        messages: &mut Vec<Arc<Message>>,
        targets: &mut [Target],
        overlapping: bool,
        results: &mut Vec<RouteResult>,
    ) {
        if messages.is_empty() {
            return;
        }
        self.stats
            .messages_received
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let from = results.len();
        results.extend((0..messages.len()).map(|_| RouteResult::default()));
        let mut held = Vec::new();
        self.deliver(
            messages,
            targets,
            overlapping,
            &mut held,
            &mut results[from..],
        );
        debug_assert!(held.is_empty(), "no store, nothing held");
        let dropped: usize = results[from..].iter().map(|r| r.dropped).sum();
        if dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
        }
        messages.clear();
    }

    pub(super) fn route(
        &self,
        message: Message,
        from: Option<(&Arc<Session>, Option<PacketId>)>,
        reach: Reach<'_>,
    ) -> RouteResult {
        let message = Arc::new(message);
        self.stats.messages_received.fetch_add(1, Ordering::Relaxed);
        let retained_change = if message.retain && !matches!(reach, Reach::Remote(_)) {
            self.retain(&message)
        } else {
            StoredRetained::Unchanged
        };
        let (mut targets, overlapping) = self.targets(&message, reach);
        let mut held = Vec::new();
        let mut results = [RouteResult::default()];
        self.deliver(
            std::slice::from_ref(&message),
            &mut targets,
            overlapping,
            &mut held,
            &mut results,
        );
        let [mut result] = results;
        if let Some(store) = &self.store {
            let incoming = from.and_then(|(session, packet_id)| {
                let id = packet_id?;
                session.persists_incoming().then_some((session.id(), id))
            });
            let mut ops: Vec<Op<'_>> = held
                .iter()
                .map(
                    |(session, seq, delivery): &(Arc<Session>, NonZeroU64, Delivery)| Op::Enqueue {
                        session: session.id(),
                        seq: *seq,
                        delivery: stored(delivery),
                    },
                )
                .collect();
            match retained_change {
                StoredRetained::Write => ops.push(Op::Retain(&message)),
                StoredRetained::Clear => ops.push(Op::ClearRetained(&message.topic)),
                StoredRetained::Unchanged => {}
            }
            if let Some((session, packet_id)) = incoming {
                ops.push(Op::IncomingQos2 { session, packet_id });
            }
            if !ops.is_empty() {
                let ticket = store.write(&ops);
                drop(ops);
                if let Some((session, _)) = from {
                    session.note_ticket(ticket);
                }
            }
            // Only now, with their creation in the store, may the stored copies be taken.
            for (session, _, delivery) in held {
                self.count(&mut result, &session, session.enqueue(delivery));
            }
        }
        // A message this node refused (every matching local queue dropped it: 0x97) is not
        // sent to the others either: its publisher is told it was not taken and may send it
        // again, which must not make a second copy elsewhere.
        if let Reach::Cluster = reach
            && !result.refused()
            && let Some(fabric) = self.fabric.get()
            && let Some(ticket) = fabric.forward(&message)
            && let Some((session, _)) = from
        {
            session.note_fabric_ticket(ticket);
        }
        if result.dropped > 0 {
            self.stats
                .publish_dropped
                .fetch_add(result.dropped as u64, Ordering::Relaxed);
        }
        result
    }

    /// Applies a RETAIN message to the retained store, and says what the store on disk must do
    /// to follow (nothing without persistence).
    fn retain(&self, message: &Arc<Message>) -> StoredRetained {
        let mut retained = self.retained.write();
        retained.apply(message);
        self.stats
            .retained
            .store(retained.len() as u64, Ordering::Relaxed);
        if self.store.is_none() {
            return StoredRetained::Unchanged;
        }
        let keep = !message.payload.is_empty()
            && self.settings.load().persistence.persists_retained(message);
        let was = retained.set_persisted(&message.topic, keep);
        StoredRetained::follow(was, keep)
    }

    /// The subscriptions `message` goes to (one member of each matching shared group), and
    /// whether a session may be named twice (several matching entries: overlapping
    /// subscriptions, merged in `deliver`).
    pub(super) fn targets(&self, message: &Message, reach: Reach<'_>) -> (Vec<Target>, bool) {
        let mut targets: Vec<Target> = Vec::new();
        // Within one filter's entry a session subscribes once; only several matching entries
        // can name a session twice (overlapping subscriptions, merged in `deliver`).
        let mut entries = 0;
        // In a cluster a shared group's member is picked by the fabric, which picks a node.
        let local_groups = match reach {
            Reach::Node => true,
            Reach::Cluster => self.fabric.get().is_none(),
            Reach::Remote(RemoteScope::Subscribers) => false,
            Reach::Remote(RemoteScope::Group { group, filter }) => {
                let index = self.index.read();
                if filter.matches(message.topic.as_str())
                    && let Some(g) = index.group(filter, group)
                    && let Some(sub) = g.pick(None)
                {
                    targets.push(Target::member(sub, g));
                }
                return (targets, false);
            }
        };
        {
            let index = self.index.read();
            let origin = message.origin;
            index.for_each_match(message.topic.as_str(), |entry| {
                entries += usize::from(!entry.subscribers.is_empty());
                for sub in &entry.subscribers {
                    if sub.options.no_local && Some(sub.session.id()) == origin {
                        continue;
                    }
                    targets.push(Target {
                        session: sub.session.clone(),
                        qos: sub.options.qos,
                        retain_as_published: sub.options.retain_as_published,
                        id: sub.id,
                        shared: None,
                    });
                }
                for group in entry.groups.iter().filter(|_| local_groups) {
                    if let Some(sub) = group.pick(None) {
                        targets.push(Target::member(sub, group));
                    }
                }
            });
        }
        (targets, entries > 1)
    }

    /// Queues `messages` (one, or a publisher's run to one topic) for every target, each
    /// session taking its copies of all of them under one lock; `results` has one entry per
    /// message. With persistence on, the QoS 1/2 copies for sessions whose queue is stored get a
    /// sequence number and go to `held` instead, for the caller to write and then queue.
    pub(super) fn deliver(
        &self,
        messages: &[Arc<Message>],
        targets: &mut [Target],
        overlapping: bool,
        held: &mut Vec<(Arc<Session>, NonZeroU64, Delivery)>,
        results: &mut [RouteResult],
    ) {
        if targets.is_empty() {
            return;
        }
        let charges: Vec<Arc<Charge>> = messages
            .iter()
            .map(|m| self.budget.charge(m.weight()))
            .collect();
        if overlapping && targets.len() > 1 {
            // Overlapping subscriptions of one session: one copy, highest QoS, every identifier
            // [MQTT-3.3.4-2, 3.3.4-3]. Shared deliveries stay separate copies.
            targets.sort_by_key(|t| (t.session.id(), t.shared.is_some()));
        }
        let mut i = 0;
        while i < targets.len() {
            let mut j = i + 1;
            let mut qos = targets[i].qos;
            let mut rap = targets[i].retain_as_published;
            let mut ids: Vec<u32> = targets[i].id.into_iter().collect();
            if targets[i].shared.is_none() {
                while j < targets.len()
                    && targets[j].shared.is_none()
                    && targets[j].session.id() == targets[i].session.id()
                {
                    qos = qos.max(targets[j].qos);
                    rap |= targets[j].retain_as_published;
                    ids.extend(targets[j].id);
                    j += 1;
                }
            }
            let t = &targets[i];
            let copies = messages.iter().zip(&charges).map(|(m, c)| Delivery {
                message: m.clone(),
                qos: m.qos.min(qos),
                retain: m.retain && rap,
                subscription_ids: ids.clone(),
                shared: t.shared.clone(),
                charge: Some(c.clone()),
                seq: None,
            });
            if self.store.is_some() && t.session.queue_stored() {
                for (n, mut delivery) in copies.enumerate() {
                    if delivery.qos != QoS::AtMostOnce
                        && let Some(seq) = t.session.reserve_seq()
                    {
                        delivery.seq = Some(seq);
                        held.push((t.session.clone(), seq, delivery));
                    } else {
                        let enqueued = t.session.enqueue(delivery);
                        self.count(&mut results[n], &t.session, enqueued);
                    }
                }
            } else {
                let mut n = 0;
                t.session.enqueue_many(copies, |enqueued| {
                    self.count(&mut results[n], &t.session, enqueued);
                    n += 1;
                });
            }
            i = j;
        }
    }

    /// Accounts for one offered copy.
    pub(super) fn count(
        &self,
        result: &mut RouteResult,
        session: &Arc<Session>,
        enqueued: Enqueued,
    ) {
        let drops = &self.stats.drops;
        match enqueued {
            Enqueued::Queued {
                congested,
                dropped_oldest,
            } => {
                result.delivered += 1;
                if dropped_oldest > 0 {
                    result.dropped += dropped_oldest;
                    drops
                        .queue_oldest
                        .fetch_add(dropped_oldest as u64, Ordering::Relaxed);
                }
                if congested && result.congested.is_none() {
                    result.congested = Some(session.clone());
                }
            }
            Enqueued::DroppedOffline => {
                result.dropped += 1;
                drops.offline_qos0.fetch_add(1, Ordering::Relaxed);
            }
            Enqueued::DroppedFull => {
                result.dropped += 1;
                drops.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the store on disk must do after a RETAIN message changed the retained store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredRetained {
    /// Nothing: the topic was not stored and is not now (or there is no store).
    Unchanged,
    /// Write the message: it is stored for its topic now.
    Write,
    /// Clear the topic: it was stored and is no longer (an empty payload, or a message the
    /// persistence policy does not keep).
    Clear,
}

impl StoredRetained {
    /// From whether the topic's retained message `was` stored and should now be kept.
    fn follow(was: bool, keep: bool) -> StoredRetained {
        match (was, keep) {
            (_, true) => StoredRetained::Write,
            (true, false) => StoredRetained::Clear,
            (false, false) => StoredRetained::Unchanged,
        }
    }
}

/// Settles a QoS 2 admission with its message's routing: a message taken keeps its packet id
/// until PUBREL; one every matching queue dropped releases it (dropping the admission).
fn settle(qos2: Option<Qos2Admission>, result: &RouteResult) {
    if let Some(admission) = qos2
        && !result.refused()
    {
        admission.keep();
    }
}
