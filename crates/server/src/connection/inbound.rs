//! The packets a client sends after CONNECT, and what the connection does with each.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tracing::debug;
use wardgate_core::{
    Attached, Broker, Delivery, Disconnect, LinkState, Message, Outgoing, Qos2Receipt, Session,
    Sink,
};
use wardgate_protocol::{
    AckProperties, Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck,
    Subscribe, TopicName, UnsubAck, Unsubscribe, encode,
};

use arc_swap::ArcSwap;
use wardgate_protocol::{Auth, AuthProperties};
use wardgate_security::authn::{AuthRequest, AuthnOutcome, Identity};
use wardgate_security::authz::{Authorizer, Decision};

use super::outbound::Outbound;
use super::{ConnectionSettings, Context, End};
use crate::registry::{CategoryStats, ConnectionId, Registry};
use crate::security::PortSecurity;

/// Whether the connection goes on after a packet.
pub(super) enum Flow {
    Continue,
    End(End),
    /// An AUTH packet for re-authentication: the main loop awaits [`Conn::reauthenticate`].
    Reauthenticate(Auth),
}

/// Most PUBLISH packets routed together (`Conn::flush_run`): a publisher adds at most this many
/// messages to a congested queue before it pauses.
const RUN_MAX: usize = 32;

/// How a PUBLISH that is not routed is answered.
enum Refused {
    /// The connection ends.
    End(Flow),
    /// PUBACK/PUBREC (nothing at QoS 0) with this reason.
    Answer(QoS, Option<PacketId>, ReasonCode),
    /// A QoS 2 retransmission of a message already routed: PUBREC again.
    PubRecAgain(PacketId),
}

/// A SUBSCRIBE or UNSUBSCRIBE whose acknowledgement (a reason code per filter) the client could
/// not receive [MQTT-3.1.2-24]: nothing of it is done, and the connection ends with 0x95, since
/// the acknowledgement it waits for may not be sent.
fn ack_too_large(why: &'static str) -> Flow {
    Flow::End(End::Server(ReasonCode::PACKET_TOO_LARGE, why))
}

fn protocol_error(why: &'static str) -> Flow {
    Flow::End(End::Server(ReasonCode::PROTOCOL_ERROR, why))
}

/// The state of an attached connection.
pub(super) struct Conn {
    broker: Arc<Broker>,
    settings: Arc<ConnectionSettings>,
    version: ProtocolVersion,
    session: Arc<Session>,
    generation: u64,
    aliases: Vec<Option<TopicName>>,
    outbound: Outbound,
    connect_expiry_zero: bool,
    congested: Option<Arc<Session>>,
    /// PUBLISH packets to one topic decoded and admitted but not routed yet: routed together
    /// (`Broker::publish_run`) and acknowledged in order by [`Conn::flush_run`].
    run: Vec<(Message, Option<PacketId>)>,
    /// Who the client is; replaced by a successful re-authentication.
    identity: Arc<Identity>,
    security: Arc<ArcSwap<PortSecurity>>,
    client_chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    peer: std::net::SocketAddr,
    port: u16,
    /// The counters of the client's metric category.
    category: Arc<CategoryStats>,
    /// Where authentication and authorization outcomes are counted.
    registry: Arc<Registry>,
}

impl Conn {
    pub(super) fn new(
        ctx: &Context,
        version: ProtocolVersion,
        attached: &Attached,
        outbound: Outbound,
        session_expiry: u32,
        identity: Arc<Identity>,
    ) -> Self {
        Self {
            broker: ctx.broker.clone(),
            settings: ctx.settings.clone(),
            version,
            session: attached.session.clone(),
            generation: attached.generation,
            aliases: Vec::new(),
            outbound,
            connect_expiry_zero: session_expiry == 0,
            congested: None,
            run: Vec::new(),
            identity,
            security: ctx.security.clone(),
            client_chain: ctx.client_chain.clone(),
            peer: ctx.peer,
            port: ctx.port,
            category: Arc::default(),
            registry: ctx.registry.clone(),
        }
    }

    /// When the client's credential expires (SPEC.md §7.6), as a timer deadline.
    pub(super) fn credential_deadline(&self) -> Option<tokio::time::Instant> {
        let at = self.identity.expires_at()?;
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Some(tokio::time::Instant::now() + left)
    }

    /// Re-authentication with AUTH 0x19 (or its continuation 0x18) using the same method:
    /// success answers AUTH 0x00 and takes the new credential and expiry; a transient failure
    /// answers AUTH 0x18; a failure ends the connection with the reason.
    pub(super) async fn reauthenticate(&mut self, auth: Auth, wbuf: &mut BytesMut) -> Option<End> {
        let Some(authn) = self.security.load().authn.clone() else {
            return Some(End::Server(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without an enhanced authentication method",
            ));
        };
        if auth.reason != ReasonCode::REAUTHENTICATE
            && auth.reason != ReasonCode::CONTINUE_AUTHENTICATION
        {
            return Some(End::Server(
                ReasonCode::PROTOCOL_ERROR,
                "unexpected AUTH reason",
            ));
        }
        let identity = self.identity.clone();
        let request = AuthRequest {
            client_id: identity.client_id(),
            username: identity.username(),
            auth_method: auth
                .properties
                .authentication_method
                .as_deref()
                .unwrap_or(""),
            auth_data: auth.properties.authentication_data.as_deref(),
            reason: auth.reason,
            current: Some(&identity),
            client_chain: &self.client_chain,
            peer: self.peer,
            port: self.port,
        };
        let (reason, method, data) = match authn.auth(&request).await {
            AuthnOutcome::Allowed(new) => {
                self.registry.count_authentication(true);
                let method = new.enhanced_method().map(str::to_string);
                self.identity = Arc::new(new);
                (ReasonCode::SUCCESS, method, None)
            }
            AuthnOutcome::Continue { method, data } => {
                (ReasonCode::CONTINUE_AUTHENTICATION, Some(method), data)
            }
            AuthnOutcome::Denied { reason, why } => {
                self.registry.count_authentication(false);
                tracing::info!(reason = reason.0, %why, "re-authentication failed");
                return Some(End::Server(reason, "re-authentication failed"));
            }
        };
        let properties = AuthProperties {
            authentication_method: method,
            authentication_data: data,
            ..Default::default()
        };
        encode(
            &Packet::Auth(Auth { reason, properties }),
            self.version,
            wbuf,
        );
        None
    }

    /// The port's authorizer, if the port enforces one.
    fn authorizer(&self) -> Option<Arc<Authorizer>> {
        self.security.load().authz.clone()
    }

    fn log_denial(&self, action: &'static str, target: &str, why: &str) {
        let _span = self.span().entered();
        tracing::info!(
            username = self.identity.username().unwrap_or(""),
            action,
            target,
            why,
            "authorization denied"
        );
    }

    /// A resumed session keeps only what the connecting principal may read under the port's
    /// current policy, which may have changed while the session had no connection
    /// (docs/security.md): denied subscriptions are removed, and queued or in-flight messages on
    /// topics it may not read are dropped (counted as `not_authorized`). Call before the
    /// session's queue is drained.
    pub(super) fn reauthorize_resumed(&self) {
        let Some(authz) = self.authorizer() else {
            return;
        };
        for (filter, _) in self.session.subscriptions() {
            if let Decision::Deny { why } = authz.allows_subscribe(&self.identity, filter.as_str())
            {
                self.log_denial("resume subscription", filter.as_str(), &why);
                self.broker.unsubscribe(&self.session, &filter);
            }
        }
        let dropped = self.session.retain_deliveries(|d| {
            authz
                .allows_subscribe(&self.identity, d.message.topic.as_str())
                .is_allowed()
        });
        if dropped > 0 {
            let _span = self.span().entered();
            tracing::info!(
                dropped,
                "resumed session: messages the client may not read were dropped"
            );
        }
    }

    /// The `conn` span of the connection's log events, made for each (see `live::Task`).
    pub(super) fn span(&self) -> tracing::Span {
        let span = super::conn_span(self.peer, self.port);
        span.record("client_id", &**self.session.client_id());
        span
    }

    pub(super) fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub(super) fn settings(&self) -> &Arc<ConnectionSettings> {
        &self.settings
    }

    pub(super) fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Forgets the connection (registry, authorization's per-client state) and detaches its
    /// session.
    pub(super) fn detach(&self, id: ConnectionId, how: Disconnect) {
        self.registry.remove(id);
        if let Some(authz) = &self.security.load().authz {
            authz.forget(self.session.client_id());
        }
        self.broker
            .disconnect(&self.session, self.generation, how, Instant::now());
    }

    /// Where this connection stands with its session: attached, asked to hand it over to a new
    /// connection of the client ID, or gone.
    pub(super) fn link_state(&self) -> LinkState {
        self.session.link_state(self.generation)
    }

    /// Whether a PUBLISH since the last [`Conn::take_congested`] found a queue congested.
    pub(super) fn is_congested(&self) -> bool {
        self.congested.is_some()
    }

    pub(super) fn take_congested(&mut self) -> Option<Arc<Session>> {
        self.congested.take()
    }

    /// Moves what the session's queue allows into the write buffer, encoding each message from
    /// the session's own entry (no copy). Returns false when this connection no longer owns the
    /// session (taken over).
    pub(super) fn pump(&mut self, wbuf: &mut BytesMut) -> bool {
        let mut sink = Writer {
            outbound: &mut self.outbound,
            now: Instant::now(),
            limit: self.settings.write_soft_limit,
            wbuf,
            sent: 0,
        };
        let drained = self
            .session
            .drain_into(self.generation, sink.now, 256, &mut sink);
        let sent = sink.sent;
        let Some(dropped) = drained else { return false };
        if dropped > 0 {
            self.broker
                .stats()
                .publish_dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        }
        self.count_sent(sent);
        true
    }

    /// Counts the connection's traffic in `category` (its `metriccategory`).
    pub(super) fn with_category(mut self, category: Arc<CategoryStats>) -> Self {
        self.category = category;
        self
    }

    /// The counters of the client's metric category.
    pub(super) fn category(&self) -> &CategoryStats {
        &self.category
    }

    pub(super) fn write_outgoing(&mut self, pending: &mut Vec<Outgoing>, wbuf: &mut BytesMut) {
        if pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut sent = 0;
        for out in pending.drain(..) {
            if matches!(out, Outgoing::Publish { .. }) {
                sent += 1;
            }
            self.outbound.write(out, now, wbuf);
        }
        self.count_sent(sent);
    }

    /// Counts `sent` PUBLISH packets written to the client (broker-wide and in its category).
    fn count_sent(&self, sent: u64) {
        if sent > 0 {
            self.broker
                .stats()
                .messages_sent
                .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
            CategoryStats::add(&self.category.publishes_sent, sent);
        }
    }

    /// Handles one packet from the client.
    pub(super) fn handle(&mut self, packet: Packet, wbuf: &mut BytesMut) -> Flow {
        if !matches!(packet, Packet::Publish(_))
            && let Some(end) = self.flush_run(wbuf)
        {
            return Flow::End(end);
        }
        match packet {
            Packet::Publish(p) => self.on_publish(p, wbuf),
            Packet::PubAck(ack) => {
                if !self.session.puback(ack.packet_id) {
                    let _span = self.span().entered();
                    debug!(
                        packet_id = ack.packet_id.get(),
                        "PUBACK for an unknown packet id"
                    );
                }
                Flow::Continue
            }
            Packet::PubRec(rec) => {
                let accepted = !rec.reason.is_error();
                if self.session.pubrec(rec.packet_id, accepted) {
                    self.ack(Packet::PubRel, rec.packet_id, ReasonCode::SUCCESS, wbuf);
                } else if accepted {
                    self.ack(
                        Packet::PubRel,
                        rec.packet_id,
                        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                        wbuf,
                    );
                }
                Flow::Continue
            }
            Packet::PubRel(rel) => {
                let reason = if self.session.pubrel(rel.packet_id) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.ack(Packet::PubComp, rel.packet_id, reason, wbuf);
                Flow::Continue
            }
            Packet::PubComp(comp) => {
                self.session.pubcomp(comp.packet_id);
                Flow::Continue
            }
            Packet::Subscribe(s) => self.on_subscribe(s, wbuf),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, wbuf),
            Packet::PingReq => {
                encode(&Packet::PingResp, self.version, wbuf);
                Flow::Continue
            }
            Packet::Disconnect(d) => {
                let update = d.properties.session_expiry_interval;
                if update.is_some_and(|e| e > 0) && self.connect_expiry_zero {
                    // [MQTT-3.14.2-2]
                    return protocol_error(
                        "DISCONNECT set a session expiry after CONNECT set none",
                    );
                }
                Flow::End(End::Client(if d.reason == ReasonCode::SUCCESS {
                    Disconnect::Normal {
                        session_expiry: update,
                    }
                } else {
                    Disconnect::WithWill {
                        session_expiry: update,
                    }
                }))
            }
            Packet::Auth(auth) if self.security.load().authn.is_some() => {
                Flow::Reauthenticate(auth)
            }
            Packet::Auth(_) => protocol_error("AUTH without an enhanced authentication method"),
            Packet::Connect(_) => protocol_error("second CONNECT"),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                protocol_error("a server-to-client packet sent by the client")
            }
        }
    }

    fn ack(
        &self,
        kind: fn(PubAck) -> Packet,
        packet_id: PacketId,
        reason: ReasonCode,
        wbuf: &mut BytesMut,
    ) {
        let ack = PubAck {
            packet_id,
            reason,
            properties: AckProperties::default(),
        };
        encode(&kind(ack), self.version, wbuf);
    }

    fn resolve_topic(&mut self, p: &Publish) -> Result<TopicName, Flow> {
        let Some(alias) = p.properties.topic_alias else {
            return p
                .topic
                .clone()
                .ok_or_else(|| protocol_error("PUBLISH without a topic name"));
        };
        if alias == 0 || alias > self.settings.topic_alias_maximum {
            return Err(Flow::End(End::Server(
                ReasonCode::TOPIC_ALIAS_INVALID,
                "topic alias out of range",
            )));
        }
        let slot = usize::from(alias - 1);
        if self.aliases.len() <= slot {
            self.aliases.resize(slot + 1, None);
        }
        match &p.topic {
            Some(topic) => {
                self.aliases[slot] = Some(topic.clone());
                Ok(topic.clone())
            }
            None => self.aliases[slot]
                .clone()
                .ok_or_else(|| protocol_error("unknown topic alias")),
        }
    }

    fn on_publish(&mut self, p: Publish, wbuf: &mut BytesMut) -> Flow {
        match self.admit_publish(p) {
            Ok(message) => {
                if self
                    .run
                    .first()
                    .is_some_and(|(m, _)| m.topic != message.0.topic)
                    && let Some(end) = self.flush_run(wbuf)
                {
                    return Flow::End(end);
                }
                self.run.push(message);
                if self.run.len() >= RUN_MAX {
                    return self.flush_run(wbuf).map_or(Flow::Continue, Flow::End);
                }
                Flow::Continue
            }
            Err(refused) => {
                // Acknowledgements leave in the order the PUBLISH packets came.
                if let Some(end) = self.flush_run(wbuf) {
                    return Flow::End(end);
                }
                match refused {
                    Refused::End(flow) => flow,
                    Refused::Answer(qos, packet_id, reason) => {
                        self.acknowledge_publish(qos, packet_id, reason, wbuf);
                        Flow::Continue
                    }
                    Refused::PubRecAgain(packet_id) => {
                        self.ack(Packet::PubRec, packet_id, ReasonCode::SUCCESS, wbuf);
                        Flow::Continue
                    }
                }
            }
        }
    }

    /// Checks a PUBLISH (topic and alias, QoS 2 state, authorization, admission) and makes the
    /// message to route, or says how it is answered instead.
    fn admit_publish(&mut self, p: Publish) -> Result<(Message, Option<PacketId>), Refused> {
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server sends Subscription Identifiers.
            return Err(Refused::End(protocol_error(
                "PUBLISH from a client carried a Subscription Identifier",
            )));
        }
        let topic = self.resolve_topic(&p).map_err(Refused::End)?;
        if p.qos == QoS::ExactlyOnce
            && let Some(packet_id) = p.packet_id
        {
            let max = usize::from(self.settings.receive_maximum);
            match self.session.receive_qos2(packet_id, max) {
                Qos2Receipt::Route => {}
                Qos2Receipt::OverLimit => {
                    return Err(Refused::End(Flow::End(End::Server(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "receive maximum exceeded",
                    ))));
                }
                // A retransmission of a message already routed: acknowledge it again only.
                Qos2Receipt::Duplicate => return Err(Refused::PubRecAgain(packet_id)),
            }
        }
        // Authorization (SPEC.md §8.4): v5 gets 0x87 on PUBACK/PUBREC; v3.1.1 gets a success
        // acknowledgement (it has no way to say no) and the message is dropped, as AIO and
        // Mosquitto do. `$SYS` is the broker's own (spec 4.7.2), whatever the policy says.
        let decision = if reserved_for_the_broker(topic.as_str()) {
            Some(Decision::Deny {
                why: "`$SYS` topics are published by the broker only".into(),
            })
        } else {
            self.authorizer()
                .map(|authz| authz.publish(&self.identity, topic.as_str()))
        };
        if let Some(decision) = &decision {
            self.registry
                .count_authorization(matches!(decision, Decision::Allow { .. }));
        }
        if let Some(Decision::Deny { why }) = decision {
            self.log_denial("publish", topic.as_str(), &why);
            let reason = if self.version.is_v5() {
                ReasonCode::NOT_AUTHORIZED
            } else {
                ReasonCode::SUCCESS
            };
            return Err(Refused::Answer(p.qos, p.packet_id, reason));
        }
        let now = Instant::now();
        let mut properties = p.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        properties.message_expiry_interval = self
            .broker
            .cap_message_expiry(properties.message_expiry_interval);
        let expires_at = Message::expiry_from(now, properties.message_expiry_interval);
        properties.correlation_data = properties.correlation_data.map(own);
        let message = Message {
            topic,
            payload: own(p.payload),
            qos: p.qos,
            retain: p.retain,
            properties,
            origin: Some(self.session.id()),
            expires_at,
        };
        // Admission (memory budget, store size; counted by the broker) of the message as the
        // budget charges it, properties included: a refused QoS 0 message is dropped; QoS 1/2
        // gets 0x97 and is not routed. v3.1.1 has no reason codes, so the connection closes
        // unacknowledged and the client resends after reconnecting.
        if let Err(refusal) = self.broker.admit(p.qos, message.weight() as usize) {
            let reason = refusal.reason_code();
            if p.qos != QoS::AtMostOnce && !self.version.is_v5() {
                self.release_refused(p.qos, p.packet_id);
                return Err(Refused::End(Flow::End(End::Server(
                    reason,
                    "quota exceeded",
                ))));
            }
            return Err(Refused::Answer(p.qos, p.packet_id, reason));
        }
        Ok((message, p.packet_id))
    }

    /// Routes the PUBLISH packets of the run and acknowledges each: PUBACK/PUBREC success when a
    /// subscriber's queue took it, 0x97 when every matching queue dropped it, 0x10 when nothing
    /// matched. With persistence, the messages and (QoS 2) their packet ids are written first;
    /// the acknowledgements are held until that is durable (connection/durable.rs). `Some` when
    /// the connection ends (v3.1.1: a message every matching queue dropped).
    pub(super) fn flush_run(&mut self, wbuf: &mut BytesMut) -> Option<End> {
        if self.run.is_empty() {
            return None;
        }
        let run = std::mem::take(&mut self.run);
        let acks: Vec<(QoS, Option<PacketId>)> = run.iter().map(|(m, id)| (m.qos, *id)).collect();
        let mut routed = Vec::with_capacity(run.len());
        self.broker
            .publish_run(&self.session, run.into_iter(), &mut routed);
        CategoryStats::add(&self.category.publishes_received, routed.len() as u64);
        for ((qos, packet_id), routed) in acks.into_iter().zip(routed) {
            let reason = if routed.delivered > 0 {
                ReasonCode::SUCCESS
            } else if routed.dropped > 0 {
                ReasonCode::QUOTA_EXCEEDED
            } else {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            };
            if routed.congested.is_some() && self.congested.is_none() {
                self.congested = routed.congested;
            }
            // Every matching queue dropped it: never acknowledge it as delivered. v5 says 0x97;
            // v3.1.1 acknowledgements carry no reason, so the connection closes unacknowledged
            // and the client sends the message again after reconnecting.
            if reason.is_error() && qos != QoS::AtMostOnce && !self.version.is_v5() {
                self.release_refused(qos, packet_id);
                return Some(End::Server(reason, "every subscriber queue is full"));
            }
            self.acknowledge_publish(qos, packet_id, reason, wbuf);
        }
        None
    }

    /// A QoS 2 message refused by closing the connection unacknowledged (v3.1.1 has no reason
    /// codes) was not taken: its packet id is released, so that the client's retransmission
    /// after reconnecting is routed, not answered as a duplicate of a message never delivered.
    fn release_refused(&self, qos: QoS, packet_id: Option<PacketId>) {
        if qos == QoS::ExactlyOnce
            && let Some(id) = packet_id
        {
            self.session.pubrel(id);
        }
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2) with `reason`; nothing for QoS 0. An error PUBREC ends
    /// the QoS 2 flow, so its packet id is released (no PUBREL follows).
    fn acknowledge_publish(
        &self,
        qos: QoS,
        packet_id: Option<PacketId>,
        reason: ReasonCode,
        wbuf: &mut BytesMut,
    ) {
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.ack(Packet::PubAck, id, reason, wbuf),
            (QoS::ExactlyOnce, Some(id)) => {
                if reason.is_error() {
                    self.session.pubrel(id);
                }
                self.ack(Packet::PubRec, id, reason, wbuf);
            }
            _ => {}
        }
    }

    fn on_subscribe(&mut self, s: Subscribe, wbuf: &mut BytesMut) -> Flow {
        if !self.outbound.ack_fits(s.packet_id, s.filters.len()) {
            return ack_too_large("the SUBACK would exceed the client's Maximum Packet Size");
        }
        let now = Instant::now();
        let authz = self.authorizer();
        let mut retained_dropped = 0;
        let (mut refused, mut skipped) = (0, 0);
        // The packet's filters share one budget of retained topics to visit.
        let mut retained_budget = self.broker.retained_budget();
        let reasons = s
            .filters
            .iter()
            .map(|(filter, options)| match filter.shared() {
                Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                Ok(_)
                    if let Some(Decision::Deny { why }) = authz.as_ref().map(|a| {
                        let decision = a.subscribe(&self.identity, filter.as_str());
                        self.registry
                            .count_authorization(matches!(decision, Decision::Allow { .. }));
                        decision
                    }) =>
                {
                    // SUBACK 0x87 (v5); the encoder writes 0x80 for v3.1.1.
                    self.log_denial("subscribe", filter.as_str(), &why);
                    ReasonCode::NOT_AUTHORIZED
                }
                Ok(_) => {
                    let result = self.broker.subscribe_within(
                        &self.session,
                        filter,
                        *options,
                        s.subscription_identifier,
                        now,
                        &mut retained_budget,
                    );
                    retained_dropped += result.retained_dropped;
                    skipped += usize::from(result.retained_skipped);
                    if result.quota_exceeded {
                        // SUBACK 0x97 (v5); the encoder writes 0x80 for v3.1.1.
                        refused += 1;
                        ReasonCode::QUOTA_EXCEEDED
                    } else {
                        ReasonCode(options.qos.as_u8())
                    }
                }
            })
            .collect();
        if retained_dropped > 0 {
            // Counted by reason in the drop metrics; said once per SUBSCRIBE.
            let _span = self.span().entered();
            tracing::warn!(
                dropped = retained_dropped,
                "retained messages for this SUBSCRIBE did not fit the subscriber's queue"
            );
        }
        if refused > 0 {
            // Counted in wardgate_subscriptions_refused_total; said once per SUBSCRIBE.
            let _span = self.span().entered();
            tracing::warn!(
                refused,
                limit = self.broker.settings().max_subscription_levels,
                "SUBSCRIBE filters refused (0x97): the session's subscriptions would exceed \
                 their limit in levels"
            );
        }
        if skipped > 0 {
            // Counted in wardgate_retained_lookups_skipped_total; said once per SUBSCRIBE.
            let _span = self.span().entered();
            tracing::warn!(
                filters = skipped,
                budget = self.broker.retained_budget(),
                "SUBSCRIBE filters got no retained messages: the packet visited its budget of \
                 retained topics"
            );
        }
        let ack = SubAck {
            packet_id: s.packet_id,
            properties: AckProperties::default(),
            reasons,
        };
        encode(&Packet::SubAck(ack), self.version, wbuf);
        Flow::Continue
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, wbuf: &mut BytesMut) -> Flow {
        if !self.outbound.ack_fits(u.packet_id, u.filters.len()) {
            return ack_too_large("the UNSUBACK would exceed the client's Maximum Packet Size");
        }
        let reasons = u
            .filters
            .iter()
            .map(|filter| {
                if self.broker.unsubscribe(&self.session, filter) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        let ack = UnsubAck {
            packet_id: u.packet_id,
            properties: AckProperties::default(),
            reasons,
        };
        encode(&Packet::UnsubAck(ack), self.version, wbuf);
        Flow::Continue
    }
}

/// Whether clients may not publish to `topic` (nor make it their will): `$SYS` and what is under
/// it is the broker's (spec 4.7.2), except `$SYS/broker/connection/<client>/state`, where
/// Mosquitto bridges publish their connection state (and set their will).
pub(super) fn reserved_for_the_broker(topic: &str) -> bool {
    let Some(rest) = topic.strip_prefix("$SYS") else {
        return false;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        // `$SYSTEM/x`: another `$` topic, not `$SYS`.
        return false;
    }
    let bridge_state = rest
        .strip_prefix("/broker/connection/")
        .and_then(|r| r.strip_suffix("/state"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    !bridge_state
}

/// The [`Sink`] the connection drains its session into: encodes each PUBLISH for this client.
struct Writer<'a> {
    outbound: &'a mut Outbound,
    now: Instant,
    /// The write buffer's soft limit: no more messages once it is reached.
    limit: usize,
    wbuf: &'a mut BytesMut,
    sent: u64,
}

impl Sink for Writer<'_> {
    fn fits(&self, d: &Delivery) -> bool {
        self.outbound.fits(d, self.now)
    }

    fn publish(&mut self, d: &Delivery, packet_id: Option<PacketId>) {
        self.outbound
            .write_publish(d, packet_id, false, self.now, self.wbuf);
        self.sent += 1;
    }

    fn has_room(&self) -> bool {
        self.wbuf.len() < self.limit
    }
}

/// The bytes of a message as the broker keeps them. Decoded, a payload or correlation data is a
/// slice of the publisher's read buffer, and keeps that buffer's whole allocation (up to 64 KiB)
/// alive while any copy of the message is queued: a stalled subscriber of 1 KB messages, each
/// read along with 60 KB for others, held 1 GB of read buffers for its 18 MiB of queued
/// messages. Below the read buffer's largest size, a slice is copied into its own allocation;
/// a larger one came in a buffer sized to its packet, and stays where it is.
fn own(bytes: Bytes) -> Bytes {
    if bytes.len() < super::ReadSizer::MAX {
        Bytes::copy_from_slice(&bytes)
    } else {
        bytes
    }
}
