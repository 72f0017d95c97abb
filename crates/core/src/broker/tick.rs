//! What happens over time: delayed wills that come due, sessions that expire, retained
//! messages that expire, and the `$SYS` statistics; and publishing a will.

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
                    if let Some(fabric) = self.fabric() {
                        fabric.will(session.client_id(), ArmedWill::None);
                    }
                    self.publish_will(will, Some(session.id()), now);
                    session.write_record();
                }
                SessionEntryCheck::Expired(will) => {
                    if let (Some(fabric), Some(_)) = (self.fabric(), &will) {
                        fabric.will(session.client_id(), ArmedWill::None);
                    }
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
            let node = self.fabric.get().map(|f| f.node_id().to_owned());
            for (topic, payload) in topics {
                let payload = Bytes::from(payload);
                if let Some(node) = &node {
                    self.publish_node_sys(node, &topic, payload.clone());
                }
                if let Ok(topic) = TopicName::new(topic.as_str()) {
                    self.publish(sys_message(topic, payload, true));
                }
            }
        }
    }

    /// Publishes the will of a client of another node that died (a cluster: guarantee 9),
    /// through this node as if its session were here.
    pub fn publish_lost_will(&self, will: Will, now: Instant) {
        self.publish_will(will, None, now);
    }

    /// In a cluster, `$SYS/broker/<name>` also goes to every node as
    /// `$SYS/brokers/<node>/<name>` (EMQX's naming), not retained: a subscriber on any node
    /// sees every node's figures within one interval, and a node that left leaves no stale
    /// figures behind.
    fn publish_node_sys(&self, node: &str, topic: &str, payload: Bytes) {
        let Some(name) = topic.strip_prefix("$SYS/broker/") else {
            return;
        };
        if let Ok(topic) = TopicName::new(format!("$SYS/brokers/{node}/{name}")) {
            self.route(sys_message(topic, payload, false), None, Reach::Cluster);
        }
    }

    /// Publishes a will as the message of its session `origin`, its expiry capped.
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
        let will = Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            origin,
            expires_at: Message::expiry_from(now, expiry),
        };
        self.route(will, None, Reach::Cluster);
    }
}

/// A `$SYS` message: QoS 0, from no session.
fn sys_message(topic: TopicName, payload: Bytes, retain: bool) -> Message {
    Message {
        topic,
        payload,
        qos: QoS::AtMostOnce,
        retain,
        properties: PublishProperties::default(),
        origin: None,
        expires_at: None,
    }
}
