//! The packets a client sends after CONNECT, and what the connection does with each.

use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tracing::debug;
use wardgate_core::{Disconnect, Message, Qos2Admission, Qos2Receipt};
use wardgate_protocol::{
    AckProperties, Auth, AuthProperties, Packet, PacketId, PubAck, Publish, PublishQos, QoS,
    ReasonCode, SubAck, Subscribe, SubscriptionFilter, TopicName, UnsubAck, Unsubscribe, encode,
};
use wardgate_security::authn::{AuthRequest, AuthnOutcome};
use wardgate_security::authz::{Authorizer, Decision};

use super::{Conn, End, Stop};
use crate::stats::CategoryStats;

/// Most PUBLISH packets routed together (`Conn::flush_run`): a publisher adds at most this many
/// messages to a congested queue before it pauses.
const RUN_MAX: usize = 32;

/// How a PUBLISH that is not routed is answered: a meaning of its own (an answer to one
/// PUBLISH, decided before the run it would have joined is routed), which [`Conn::on_publish`]
/// turns into the connection's `ControlFlow<Stop>` once the run before it is acknowledged.
enum Refused {
    /// The connection ends.
    End(End),
    /// PUBACK/PUBREC (nothing at QoS 0) with this reason.
    Answer(PublishQos, ReasonCode),
    /// A QoS 2 retransmission of a message already routed: PUBREC again.
    PubRecAgain(PacketId),
}

/// A SUBSCRIBE or UNSUBSCRIBE whose acknowledgement (a reason code per filter) the client could
/// not receive [MQTT-3.1.2-24]: nothing of it is done, and the connection ends with 0x95, since
/// the acknowledgement it waits for may not be sent.
fn ack_too_large(why: &'static str) -> ControlFlow<Stop> {
    Break(Stop::End(End::Server(ReasonCode::PACKET_TOO_LARGE, why)))
}

fn protocol_error(why: &'static str) -> End {
    End::Server(ReasonCode::PROTOCOL_ERROR, why)
}

/// A PUBLISH admitted for routing.
pub(super) struct Admitted {
    message: Message,
    /// Its QoS and packet id, for the acknowledgement.
    qos: PublishQos,
    /// QoS 2: the packet id's admission, which releases the id unless the message is taken.
    qos2: Option<Qos2Admission>,
}

impl Conn {
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
                self.stats.count_authentication(true);
                let method = new.enhanced_method().map(str::to_string);
                self.identity = Arc::new(new);
                (ReasonCode::SUCCESS, method, None)
            }
            AuthnOutcome::Continue { method, data } => {
                (ReasonCode::CONTINUE_AUTHENTICATION, Some(method), data)
            }
            AuthnOutcome::Denied { reason, why } => {
                self.stats.count_authentication(false);
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

    /// Handles one packet from the client.
    pub(super) fn handle(&mut self, packet: Packet, wbuf: &mut BytesMut) -> ControlFlow<Stop> {
        if !matches!(packet, Packet::Publish(_))
            && let Some(end) = self.flush_run(wbuf)
        {
            return Break(Stop::End(end));
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
                Continue(())
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
                Continue(())
            }
            Packet::PubRel(rel) => {
                let reason = if self.session.pubrel(rel.packet_id) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.ack(Packet::PubComp, rel.packet_id, reason, wbuf);
                Continue(())
            }
            Packet::PubComp(comp) => {
                self.session.pubcomp(comp.packet_id);
                Continue(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s, wbuf),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u, wbuf),
            Packet::PingReq => {
                encode(&Packet::PingResp, self.version, wbuf);
                Continue(())
            }
            Packet::Disconnect(d) => {
                let update = d.properties.session_expiry_interval;
                if update.is_some_and(|e| e > 0) && self.connect_expiry_zero {
                    // [MQTT-3.14.2-2]
                    return Break(Stop::End(protocol_error(
                        "DISCONNECT set a session expiry after CONNECT set none",
                    )));
                }
                Break(Stop::End(End::Client(if d.reason == ReasonCode::SUCCESS {
                    Disconnect::Normal {
                        session_expiry: update,
                    }
                } else {
                    Disconnect::WithWill {
                        session_expiry: update,
                    }
                })))
            }
            Packet::Auth(auth) if self.security.load().authn.is_some() => {
                Break(Stop::Reauthenticate(auth))
            }
            Packet::Auth(_) => Break(Stop::End(protocol_error(
                "AUTH without an enhanced authentication method",
            ))),
            Packet::Connect(_) => Break(Stop::End(protocol_error("second CONNECT"))),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Break(Stop::End(protocol_error(
                    "a server-to-client packet sent by the client",
                )))
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

    fn resolve_topic(&mut self, p: &Publish) -> Result<TopicName, End> {
        let Some(alias) = p.properties.topic_alias else {
            return p
                .topic
                .clone()
                .ok_or_else(|| protocol_error("PUBLISH without a topic name"));
        };
        if alias == 0 || alias > self.settings.topic_alias_maximum {
            return Err(End::Server(
                ReasonCode::TOPIC_ALIAS_INVALID,
                "topic alias out of range",
            ));
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

    fn on_publish(&mut self, p: Publish, wbuf: &mut BytesMut) -> ControlFlow<Stop> {
        match self.admit_publish(p) {
            Ok(message) => {
                if self
                    .run
                    .first()
                    .is_some_and(|a| a.message.topic != message.message.topic)
                    && let Some(end) = self.flush_run(wbuf)
                {
                    return Break(Stop::End(end));
                }
                self.run.push(message);
                if self.run.len() >= RUN_MAX {
                    return self
                        .flush_run(wbuf)
                        .map_or(Continue(()), |end| Break(Stop::End(end)));
                }
                Continue(())
            }
            Err(refused) => {
                // Acknowledgements leave in the order the PUBLISH packets came.
                if let Some(end) = self.flush_run(wbuf) {
                    return Break(Stop::End(end));
                }
                match refused {
                    Refused::End(end) => Break(Stop::End(end)),
                    Refused::Answer(qos, reason) => {
                        self.acknowledge_publish(qos, reason, wbuf);
                        Continue(())
                    }
                    Refused::PubRecAgain(packet_id) => {
                        self.ack(Packet::PubRec, packet_id, ReasonCode::SUCCESS, wbuf);
                        Continue(())
                    }
                }
            }
        }
    }

    /// Checks a PUBLISH (topic and alias, QoS 2 state, authorization, admission) and makes the
    /// message to route, or says how it is answered instead.
    fn admit_publish(&mut self, p: Publish) -> Result<Admitted, Refused> {
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server sends Subscription Identifiers.
            return Err(Refused::End(protocol_error(
                "PUBLISH from a client carried a Subscription Identifier",
            )));
        }
        let topic = self.resolve_topic(&p).map_err(Refused::End)?;
        // Every refusal below drops `qos2`, which releases the packet id.
        let mut qos2 = None;
        if let PublishQos::ExactlyOnce(packet_id) = p.qos {
            let max = usize::from(self.settings.receive_maximum);
            match self.session.receive_qos2(packet_id, max) {
                Qos2Receipt::Route(admission) => qos2 = Some(admission),
                Qos2Receipt::OverLimit => {
                    return Err(Refused::End(End::Server(
                        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                        "receive maximum exceeded",
                    )));
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
            self.stats
                .count_authorization(matches!(decision, Decision::Allow { .. }));
        }
        if let Some(Decision::Deny { why }) = decision {
            self.log_denial("publish", topic.as_str(), &why);
            let reason = if self.version.is_v5() {
                ReasonCode::NOT_AUTHORIZED
            } else {
                ReasonCode::SUCCESS
            };
            return Err(Refused::Answer(p.qos, reason));
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
            qos: p.qos.level(),
            retain: p.retain,
            properties,
            origin: Some(self.session.id()),
            expires_at,
        };
        // Admission (memory budget, store size; counted by the broker) of the message as the
        // budget charges it, properties included: a refused QoS 0 message is dropped; QoS 1/2
        // gets 0x97 and is not routed. v3.1.1 has no reason codes, so the connection closes
        // unacknowledged and the client resends after reconnecting.
        if let Err(refusal) = self.broker.admit(message.qos, message.weight() as usize) {
            let reason = refusal.reason_code();
            if message.qos != QoS::AtMostOnce && !self.version.is_v5() {
                return Err(Refused::End(End::Server(reason, "quota exceeded")));
            }
            return Err(Refused::Answer(p.qos, reason));
        }
        Ok(Admitted {
            message,
            qos: p.qos,
            qos2,
        })
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
        let acks: Vec<PublishQos> = run.iter().map(|a| a.qos).collect();
        let mut routed = Vec::with_capacity(run.len());
        self.broker.publish_run(
            &self.session,
            run.into_iter().map(|a| (a.message, a.qos2)),
            &mut routed,
        );
        CategoryStats::add(&self.category.publishes_received, routed.len() as u64);
        let clustered = self.broker.fabric().is_some();
        for (qos, routed) in acks.into_iter().zip(routed) {
            let reason = if routed.refused() {
                ReasonCode::QUOTA_EXCEEDED
            } else if routed.delivered > 0 || clustered {
                // In a cluster this node cannot know whether another node's sessions match.
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            };
            if routed.congested.is_some() && self.congested.is_none() {
                self.congested = routed.congested;
            }
            // Every matching queue dropped it: never acknowledge it as delivered. v5 says 0x97;
            // v3.1.1 acknowledgements carry no reason, so the connection closes unacknowledged
            // and the client sends the message again after reconnecting.
            if reason.is_error() && qos != PublishQos::AtMostOnce && !self.version.is_v5() {
                return Some(End::Server(reason, "every subscriber queue is full"));
            }
            self.acknowledge_publish(qos, reason, wbuf);
        }
        None
    }

    /// PUBACK (QoS 1) or PUBREC (QoS 2) with `reason`; nothing for QoS 0. (An error PUBREC ends
    /// the QoS 2 flow: core released its packet id when it refused the message.)
    fn acknowledge_publish(&self, qos: PublishQos, reason: ReasonCode, wbuf: &mut BytesMut) {
        match qos {
            PublishQos::AtMostOnce => {}
            PublishQos::AtLeastOnce(id) => self.ack(Packet::PubAck, id, reason, wbuf),
            PublishQos::ExactlyOnce(id) => self.ack(Packet::PubRec, id, reason, wbuf),
        }
    }

    fn on_subscribe(&mut self, s: Subscribe, wbuf: &mut BytesMut) -> ControlFlow<Stop> {
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
            .map(
                |(filter, options)| match SubscriptionFilter::new(filter.clone()) {
                    Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                    Ok(_)
                        if let Some(Decision::Deny { why }) = authz.as_ref().map(|a| {
                            let decision = a.subscribe(&self.identity, filter.as_str());
                            self.stats
                                .count_authorization(matches!(decision, Decision::Allow { .. }));
                            decision
                        }) =>
                    {
                        // SUBACK 0x87 (v5); the encoder writes 0x80 for v3.1.1.
                        self.log_denial("subscribe", filter.as_str(), &why);
                        ReasonCode::NOT_AUTHORIZED
                    }
                    Ok(parsed) => {
                        let result = self.broker.subscribe_within(
                            &self.session,
                            &parsed,
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
                },
            )
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
        Continue(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, wbuf: &mut BytesMut) -> ControlFlow<Stop> {
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
        Continue(())
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
