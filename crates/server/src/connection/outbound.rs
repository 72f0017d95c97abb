//! Turning a session's outgoing flow into bytes for this client: topic aliases towards the
//! client, remaining message expiry, subscription identifiers, and the client's Maximum Packet
//! Size (a message that would exceed it is dropped, never sent [MQTT-3.1.2-24]).

use std::collections::HashMap;
use std::time::Instant;

use bytes::BytesMut;
use wardgate_core::{Delivery, Outgoing};
use wardgate_protocol::{
    AckProperties, Packet, PacketId, ProtocolVersion, PubAck, Publish, PublishProperties,
    ReasonCode, TopicName, encode, encode_publish, encoded_len,
};

/// Per-connection outbound encoding state.
pub(super) struct Outbound {
    version: ProtocolVersion,
    max_packet_size: Option<u32>,
    alias_max: u16,
    aliases: HashMap<TopicName, u16>,
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
            aliases: HashMap::new(),
        }
    }

    /// Whether `d` can be sent within the client's Maximum Packet Size.
    pub(super) fn fits(&self, d: &Delivery, now: Instant) -> bool {
        let Some(max) = self.max_packet_size else {
            return true;
        };
        let publish = self.publish(d, None, false, now, false);
        encoded_len(&Packet::Publish(publish), self.version) <= max as usize
    }

    fn publish(
        &self,
        d: &Delivery,
        packet_id: Option<PacketId>,
        dup: bool,
        now: Instant,
        _aliased: bool,
    ) -> Publish {
        let msg = &d.message;
        let properties = if self.version.is_v5() {
            let mut p = msg.properties.clone();
            p.message_expiry_interval = msg.remaining_expiry(now);
            p.subscription_identifiers = d.subscription_ids.clone();
            p
        } else {
            PublishProperties::default()
        };
        Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic: Some(msg.topic.clone()),
            packet_id,
            properties,
            payload: msg.payload.clone(),
        }
    }

    /// Encodes one outgoing packet.
    pub(super) fn write(&mut self, out: Outgoing, now: Instant, wbuf: &mut BytesMut) {
        match out {
            Outgoing::Publish {
                delivery,
                packet_id,
                dup,
            } => {
                let mut publish = self.publish(&delivery, packet_id, dup, now, true);
                if self.alias_max > 0 {
                    let topic = &delivery.message.topic;
                    if let Some(&alias) = self.aliases.get(topic) {
                        publish.topic = None;
                        publish.properties.topic_alias = Some(alias);
                    } else if self.aliases.len() < usize::from(self.alias_max) {
                        let alias = self.aliases.len() as u16 + 1;
                        self.aliases.insert(topic.clone(), alias);
                        publish.properties.topic_alias = Some(alias);
                    }
                }
                encode_publish(&publish, self.version, wbuf);
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
