//! The packets a client sends after CONNECT, and what the connection does with each.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wardgate_core::{Attached, Broker, Disconnect, Message, Outgoing, Session};
use wardgate_protocol::{
    AckProperties, Packet, PacketId, ProtocolVersion, PubAck, Publish, QoS, ReasonCode, SubAck,
    Subscribe, TopicName, UnsubAck, Unsubscribe, encode,
};

use super::outbound::Outbound;
use super::{ConnectionSettings, Context, End};

/// Whether the connection goes on after a packet.
pub(super) enum Flow {
    Continue,
    End(End),
}

fn protocol_error(why: &'static str) -> Flow {
    Flow::End(End::Server(ReasonCode::PROTOCOL_ERROR, why))
}

/// The state of an attached connection.
pub(super) struct Conn {
    broker: Arc<Broker>,
    settings: Arc<ConnectionSettings>,
    shutdown: CancellationToken,
    version: ProtocolVersion,
    session: Arc<Session>,
    generation: u64,
    aliases: Vec<Option<TopicName>>,
    outbound: Outbound,
    connect_expiry_zero: bool,
    congested: Option<Arc<Session>>,
}

impl Conn {
    pub(super) fn new(
        ctx: &Context,
        version: ProtocolVersion,
        attached: &Attached,
        outbound: Outbound,
        session_expiry: u32,
    ) -> Self {
        Self {
            broker: ctx.broker.clone(),
            settings: ctx.settings.clone(),
            shutdown: ctx.shutdown.clone(),
            version,
            session: attached.session.clone(),
            generation: attached.generation,
            aliases: Vec::new(),
            outbound,
            connect_expiry_zero: session_expiry == 0,
            congested: None,
        }
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

    pub(super) fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub(super) fn kicked(&self) -> bool {
        self.session.kicked(self.generation).is_some()
    }

    pub(super) fn take_congested(&mut self) -> Option<Arc<Session>> {
        self.congested.take()
    }

    /// Moves what the session's queue allows into the write buffer. Returns false when this
    /// connection no longer owns the session (taken over).
    pub(super) fn pump(&mut self, pending: &mut Vec<Outgoing>, wbuf: &mut BytesMut) -> bool {
        let now = Instant::now();
        let outbound = &self.outbound;
        let drained = self.session.drain_attached(
            self.generation,
            now,
            256,
            |d| outbound.fits(d, now),
            pending,
        );
        let Some(dropped) = drained else { return false };
        if dropped > 0 {
            self.broker
                .stats()
                .publish_dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        }
        self.write_outgoing(pending, wbuf);
        true
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
        self.broker
            .stats()
            .messages_sent
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Handles one packet from the client.
    pub(super) fn handle(&mut self, packet: Packet, wbuf: &mut BytesMut) -> Flow {
        match packet {
            Packet::Publish(p) => self.on_publish(p, wbuf),
            Packet::PubAck(ack) => {
                if !self.session.puback(ack.packet_id) {
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
        if !p.properties.subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server sends Subscription Identifiers.
            return protocol_error("PUBLISH from a client carried a Subscription Identifier");
        }
        let topic = match self.resolve_topic(&p) {
            Ok(t) => t,
            Err(flow) => return flow,
        };
        if p.qos == QoS::ExactlyOnce
            && let Some(packet_id) = p.packet_id
        {
            let open = self.session.incoming_qos2_len();
            let first = self.session.incoming_qos2(packet_id);
            if first && open >= usize::from(self.settings.receive_maximum) {
                return Flow::End(End::Server(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "receive maximum exceeded",
                ));
            }
            if !first {
                // A retransmission of a message already routed: acknowledge it again only.
                self.ack(Packet::PubRec, packet_id, ReasonCode::SUCCESS, wbuf);
                return Flow::Continue;
            }
        }
        // Admission (memory budget, store size; counted by the broker): a refused QoS 0
        // message is dropped; QoS 1/2 gets 0x97 and is not routed. v3.1.1 has no reason codes,
        // so the connection closes unacknowledged and the client resends after reconnecting.
        if let Err(refusal) = self.broker.admit(p.qos, p.payload.len()) {
            let reason = refusal.reason_code();
            match (p.qos, p.packet_id) {
                (QoS::AtMostOnce, _) | (_, None) => {}
                _ if !self.version.is_v5() => {
                    return Flow::End(End::Server(reason, "quota exceeded"));
                }
                (QoS::AtLeastOnce, Some(id)) => self.ack(Packet::PubAck, id, reason, wbuf),
                (QoS::ExactlyOnce, Some(id)) => {
                    // An error PUBREC ends the flow: no PUBREL follows for this packet id.
                    self.session.pubrel(id);
                    self.ack(Packet::PubRec, id, reason, wbuf);
                }
            }
            return Flow::Continue;
        }
        let now = Instant::now();
        let mut properties = p.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        properties.message_expiry_interval = self
            .broker
            .cap_message_expiry(properties.message_expiry_interval);
        let expires_at = Message::expiry_from(now, properties.message_expiry_interval);
        let message = Message {
            topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties,
            origin: Some(self.session.id()),
            expires_at,
        };
        // With persistence, the message and (QoS 2) its packet id are written in one batch; the
        // PUBACK/PUBREC below is held until that batch is durable (connection/durable.rs).
        let routed = self
            .broker
            .publish_from(&self.session, p.packet_id, message);
        let reason = if routed.delivered > 0 {
            ReasonCode::SUCCESS
        } else if routed.dropped > 0 {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode::NO_MATCHING_SUBSCRIBERS
        };
        if routed.congested.is_some() {
            self.congested = routed.congested;
        }
        match (p.qos, p.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.ack(Packet::PubAck, id, reason, wbuf),
            (QoS::ExactlyOnce, Some(id)) => {
                // A PUBREC error ends the flow; the client must not send PUBREL for it.
                let reason = if reason.is_error() {
                    ReasonCode::SUCCESS
                } else {
                    reason
                };
                self.ack(Packet::PubRec, id, reason, wbuf);
            }
            _ => {}
        }
        Flow::Continue
    }

    fn on_subscribe(&mut self, s: Subscribe, wbuf: &mut BytesMut) -> Flow {
        let now = Instant::now();
        let reasons = s
            .filters
            .iter()
            .map(|(filter, options)| match filter.shared() {
                Err(_) => ReasonCode::TOPIC_FILTER_INVALID,
                Ok(_) => {
                    self.broker.subscribe(
                        &self.session,
                        filter,
                        *options,
                        s.subscription_identifier,
                        now,
                    );
                    ReasonCode(options.qos.as_u8())
                }
            })
            .collect();
        let ack = SubAck {
            packet_id: s.packet_id,
            properties: AckProperties::default(),
            reasons,
        };
        encode(&Packet::SubAck(ack), self.version, wbuf);
        Flow::Continue
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe, wbuf: &mut BytesMut) -> Flow {
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
