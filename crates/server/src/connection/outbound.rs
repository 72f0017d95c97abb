//! Turning a session's outgoing flow into bytes for this client: the session's queue drained
//! through the [`Sink`] the core writes into ([`Conn::pump`]), topic aliases towards the client,
//! remaining message expiry, subscription identifiers, and the client's Maximum Packet Size (a
//! message that would exceed it is dropped, never sent [MQTT-3.1.2-24]).

use std::collections::HashMap;
use std::num::NonZeroU16;
use std::time::Instant;

use bytes::BytesMut;
use wardgate_core::{Delivery, Outgoing, Sink};
use wardgate_protocol::{
    AckProperties, Packet, PacketId, ProtocolVersion, PubAck, PublishParts, PublishProperties,
    PublishQos, ReasonCode, SubAck, TopicName, encode, encode_publish_parts, encoded_len,
};

use super::Conn;
use crate::stats::CategoryStats;

/// Per-connection outbound encoding state.
pub(super) struct Outbound {
    version: ProtocolVersion,
    max_packet_size: Option<u32>,
    alias_max: u16,
    /// The aliases given so far; allocated once the first one is (most clients take none, and
    /// an empty map is 48 bytes in every connection).
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in idle connections instead of 48"
    )]
    aliases: Option<Box<HashMap<TopicName, u16>>>,
}

impl Outbound {
    pub(super) fn new(
        version: ProtocolVersion,
        max_packet_size: Option<u32>,
        alias_max: u16,
    ) -> Self {
        let alias_max = if version.is_v5() { alias_max } else { 0 };
        Self {
            version,
            max_packet_size,
            alias_max,
            aliases: None,
        }
    }

    /// Whether a SUBACK or UNSUBACK (the same layout) with `count` reason codes fits the
    /// client's Maximum Packet Size.
    pub(super) fn ack_fits(&self, packet_id: PacketId, count: usize) -> bool {
        let Some(max) = self.max_packet_size else {
            return true;
        };
        let ack = SubAck {
            packet_id,
            properties: AckProperties::default(),
            reasons: vec![ReasonCode::SUCCESS; count],
        };
        encoded_len(&Packet::SubAck(ack), self.version) <= max as usize
    }

    /// Whether `d` can be sent within the client's Maximum Packet Size.
    pub(super) fn fits(&self, d: &Delivery, now: Instant) -> bool {
        let Some(max) = self.max_packet_size else {
            return true;
        };
        let properties = self.properties(d, now, None);
        // Any id: its value does not change the size.
        let qos = PublishQos::new(d.qos, PacketId::from(NonZeroU16::MIN));
        let parts = parts(d, d.message.topic.as_str(), qos, false, properties.as_ref());
        parts.encoded_len(self.version) <= max as usize
    }

    /// The properties `d` goes out with to this client, when it has any (MQTT 5 only): the
    /// message's own, its remaining expiry, the subscription identifiers and the topic alias.
    fn properties(
        &self,
        d: &Delivery,
        now: Instant,
        alias: Option<u16>,
    ) -> Option<PublishProperties> {
        if !self.version.is_v5() {
            return None;
        }
        let msg = &d.message;
        let expiry = msg.remaining_expiry(now);
        if msg.properties.is_empty()
            && expiry.is_none()
            && d.subscription_ids.is_empty()
            && alias.is_none()
        {
            return None;
        }
        let mut p = msg.properties.clone();
        p.message_expiry_interval = expiry;
        p.subscription_identifiers = d.subscription_ids.clone();
        p.topic_alias = alias;
        Some(p)
    }

    /// Encodes `d` as a PUBLISH for this client: topic alias, remaining expiry, subscription
    /// identifiers, all from the delivery's parts.
    pub(super) fn write_publish(
        &mut self,
        d: &Delivery,
        qos: PublishQos,
        dup: bool,
        now: Instant,
        wbuf: &mut BytesMut,
    ) {
        let name = &d.message.topic;
        let mut topic = name.as_str();
        let mut alias = None;
        if self.alias_max > 0 {
            let aliases = self.aliases.get_or_insert_default();
            if let Some(&known) = aliases.get(name) {
                topic = "";
                alias = Some(known);
            } else if aliases.len() < usize::from(self.alias_max) {
                let new = aliases.len() as u16 + 1;
                aliases.insert(name.clone(), new);
                alias = Some(new);
            }
        }
        let properties = self.properties(d, now, alias);
        let parts = parts(d, topic, qos, dup, properties.as_ref());
        encode_publish_parts(&parts, self.version, wbuf);
    }

    /// Encodes one outgoing packet.
    pub(super) fn write(&mut self, out: Outgoing, now: Instant, wbuf: &mut BytesMut) {
        match out {
            Outgoing::Publish { delivery, qos, dup } => {
                self.write_publish(&delivery, qos, dup, now, wbuf)
            }
            Outgoing::PubRel(packet_id) => {
                let rel = PubAck {
                    packet_id,
                    reason: ReasonCode::SUCCESS,
                    properties: AckProperties::default(),
                };
                encode(&Packet::PubRel(rel), self.version, wbuf);
            }
        }
    }
}

/// The PUBLISH parts of `d`, sent under `topic` (empty when an alias stands for it).
fn parts<'a>(
    d: &'a Delivery,
    topic: &'a str,
    qos: PublishQos,
    dup: bool,
    properties: Option<&'a PublishProperties>,
) -> PublishParts<'a> {
    PublishParts {
        dup,
        qos,
        retain: d.retain,
        topic,
        properties,
        payload: &d.message.payload,
    }
}

impl Conn {
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

    /// Encodes outbound flows handed over whole, not drained from the queue: the unacknowledged
    /// ones resent when the session resumes (PUBLISH with DUP, PUBREL).
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

    fn publish(&mut self, d: &Delivery, qos: PublishQos) {
        self.outbound
            .write_publish(d, qos, false, self.now, self.wbuf);
        self.sent += 1;
    }

    fn has_room(&self) -> bool {
        self.wbuf.len() < self.limit
    }
}
