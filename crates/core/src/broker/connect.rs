//! A connection attaches to its session and leaves it: a new session, a resumed one, a clean
//! start or another principal replacing one, the takeover of a live connection, and at the end
//! the will, the session's expiry and the shared-subscription messages it leaves behind.

use super::*;
use crate::session::ConnectTerms;

impl Broker {
    /// Attaches a connection to its session, creating, resuming or replacing it. A connection
    /// already attached to the session is told to go with DISCONNECT 0x8E (session taken over).
    pub fn connect(&self, params: ConnectParams, now: Instant) -> Attached {
        self.connect_with_properties(params, &[], now)
    }

    /// [`Broker::connect`] with the CONNECT's user properties, which may ask for the session's
    /// queue to be persisted (`aio-persistence: true`, the `dynamic` policy). With persistence
    /// on, the session's record (and the removal of a session it replaces) is written before
    /// this returns: the CONNACK waits for [`Session::ticket`].
    pub fn connect_with_properties(
        &self,
        params: ConnectParams,
        user_properties: &[(String, String)],
        now: Instant,
    ) -> Attached {
        let assigned_client_id = params.client_id.is_empty().then(|| self.assign_client_id());
        let client_id: Arc<str> =
            Arc::from(assigned_client_id.as_deref().unwrap_or(&params.client_id));
        let session_expiry = params
            .session_expiry
            .min(self.settings.load().max_session_expiry);

        let mut sessions = self.sessions.lock();
        let existing = sessions.get(&client_id).cloned();
        let (session, session_present) = match existing {
            Some(old) if !params.clean_start && old.resumable_by(params.principal.as_deref()) => {
                (old, true)
            }
            Some(old) => {
                // Clean start replaces the old session, and so does a connection that may not
                // resume it: a session with Session Expiry 0 ends with its network connection
                // [MQTT-3.1.2-6], and one created by another principal is not handed over.
                // Its subscriptions go, its connection is kicked, and its will (if any) fires
                // since that session ends now.
                let will = old.retire();
                let fresh = self.new_session(client_id.clone(), params.protocol);
                sessions.insert(client_id.clone(), fresh.clone());
                drop(sessions);
                if let Some(ticket) = old.drop_from_store() {
                    fresh.note_ticket(ticket);
                }
                self.drop_subscriptions(&old);
                if let Some(will) = will {
                    self.publish_will(will, Some(old.id()), now);
                }
                sessions = self.sessions.lock();
                (fresh, false)
            }
            None => {
                let fresh = self.new_session(client_id.clone(), params.protocol);
                sessions.insert(client_id.clone(), fresh.clone());
                (fresh, false)
            }
        };
        drop(sessions);

        let (generation, old_will) = session.attach(
            params.waker,
            params.receive_maximum,
            ReasonCode::SESSION_TAKEN_OVER,
        );
        // In a cluster, the will is recorded where a surviving node finds it (guarantee 9).
        let armed = self.fabric().and_then(|_| params.will.clone());
        let terms = ConnectTerms {
            principal: params.principal,
            protocol: params.protocol,
            expiry_interval: session_expiry,
            will: params.will,
        };
        session.accept_connection(terms, || {
            let persistence = &self.settings.load().persistence;
            persistence.persists_queue(&client_id, user_properties)
        });
        if let Some(fabric) = self.fabric() {
            let state = match &armed {
                Some(will) => ArmedWill::Connected {
                    will,
                    delay: will_delay(will).min(session_expiry),
                },
                None => ArmedWill::None,
            };
            fabric.will(&client_id, state);
        }
        // Takeover: the old connection's will is sent only if it had no delay [MQTT-3.1.3-9].
        if let Some(will) = old_will
            && will.properties.will_delay_interval.unwrap_or(0) == 0
        {
            self.publish_will(will, Some(session.id()), now);
        }
        self.stats.clients_total.fetch_add(1, Ordering::Relaxed);
        self.stats.connected(1);
        Attached {
            session,
            generation,
            session_present,
            assigned_client_id,
            session_expiry,
        }
    }

    /// Whether a CONNECT's will may be held: a will becomes a message its session queues, so it
    /// may take at most what a session may hold ([`QueueLimits::max_queued_bytes`]; payload,
    /// topic and properties, [`will_weight`]). A refusal (CONNACK 0x97) is counted here.
    pub fn admit_will(&self, will: &Will) -> bool {
        let fits = will_weight(will) <= self.settings.load().queue.max_queued_bytes;
        if !fits {
            self.stats
                .drops
                .will_too_large
                .fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    /// Detaches a connection that ended. Publishes or schedules its will, ends the session if
    /// its expiry is zero, and hands shared-subscription messages it had not acknowledged to
    /// other members of their groups.
    pub fn disconnect(
        &self,
        session: &Arc<Session>,
        generation: u64,
        how: Disconnect,
        now: Instant,
    ) {
        if !session.detach(generation, now) {
            // Taken over: the new connection owns the session; the takeover handled the will.
            self.stats.connected(-1);
            return;
        }
        self.stats.connected(-1);
        let (update, discard_will) = match how {
            Disconnect::Normal { session_expiry } => (session_expiry, true),
            Disconnect::WithWill { session_expiry } => (session_expiry, false),
            Disconnect::Lost => (None, false),
        };
        let max_expiry = self.settings.load().max_session_expiry;
        let (expiry, will) = session.end_connection(update, max_expiry, discard_will);
        if let Some(fabric) = self.fabric() {
            let state = match &will {
                Some(will) if will_delay(will) > 0 && expiry > 0 => ArmedWill::Pending {
                    will,
                    delay: will_delay(will).min(expiry),
                },
                _ => ArmedWill::None,
            };
            fabric.will(session.client_id(), state);
        }
        if let Some(will) = will {
            let delay = will_delay(&will);
            if delay == 0 || expiry == 0 {
                self.publish_will(will, Some(session.id()), now);
            } else {
                let at = now + Duration::from_secs(u64::from(delay.min(expiry)));
                session.delay_will(at, will);
            }
        }
        self.redistribute_shared(session, now);
        if expiry == 0 {
            self.end_session(session);
        } else {
            session.write_record();
        }
    }

    /// A fresh client identifier for a client that sent none (MQTT 5 Assigned Client
    /// Identifier).
    pub fn assign_client_id(&self) -> String {
        let n = self.next_session.load(Ordering::Relaxed);
        let nanos = self.started.elapsed().as_nanos() as u64;
        format!(
            "wardgate-{:016x}",
            n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos
        )
    }

    /// Hands the shared-subscription messages a leaving session had not acknowledged to a
    /// connected member of their groups on this node; when there is none, to the cluster's
    /// fabric ([`Fabric::hand_over`]: a member on another node), or, on a single node, keeps
    /// them with this (persistent) session.
    pub(super) fn redistribute_shared(&self, session: &Arc<Session>, _now: Instant) {
        let orphans = session.take_shared_deliveries();
        if orphans.is_empty() {
            return;
        }
        let mut moved = Vec::new();
        {
            let index = self.index.read();
            let fabric = self.fabric.get();
            for delivery in orphans {
                let Some(shared) = &delivery.shared else {
                    continue;
                };
                let pick = index
                    .group(&shared.filter, &shared.group)
                    .and_then(|g| g.pick(Some(session.id())))
                    .filter(|s| s.session.is_connected());
                match (pick, fabric) {
                    (Some(sub), _) => moved.push((sub.session.clone(), delivery)),
                    // No other member is connected here: the cluster finds one elsewhere.
                    (None, Some(fabric)) => fabric.hand_over(shared, &delivery.message),
                    // No other member is connected: keep it with this (persistent) session.
                    (None, None) => moved.push((session.clone(), delivery)),
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

    /// Ends a session: it leaves the store, the registry and the index.
    pub(super) fn end_session(&self, session: &Arc<Session>) {
        session.drop_from_store();
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

    /// A new session without a connection, numbered.
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
}

/// A will's Will Delay Interval in seconds (0 when it has none).
fn will_delay(will: &Will) -> u32 {
    will.properties.will_delay_interval.unwrap_or(0)
}
