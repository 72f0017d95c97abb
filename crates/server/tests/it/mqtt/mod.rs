//! The broker over real sockets, driven by the raw test client for exact packet-level
//! assertions. Files are split by topic and MQTT version.

mod deep_topics;
mod durable;
mod limits;
mod malformed;
mod takeover;
mod transport;
mod v311;
mod v5;

/// A broker whose subscriber queues hold one message.
async fn tiny_queues() -> wardgate_testkit::broker::TestBroker {
    let settings = wardgate_core::BrokerSettings {
        queue: wardgate_core::QueueLimits {
            max_queued: 1,
            congestion_threshold: 1,
            overflow: wardgate_core::QueueOverflow::DropNew,
            ..Default::default()
        },
        ..Default::default()
    };
    wardgate_testkit::broker::TestBroker::with(settings, Default::default()).await
}

/// The payloads of the PUBLISH packets `c` receives until nothing came for `quiet`.
async fn payloads_until_quiet(
    c: &mut wardgate_testkit::client::RawClient,
    quiet: std::time::Duration,
) -> Vec<bytes::Bytes> {
    let mut payloads = Vec::new();
    while let wardgate_testkit::client::Received::Packet(p) = c.recv_within(quiet).await {
        if let wardgate_protocol::Packet::Publish(p) = p {
            payloads.push(p.payload);
        }
    }
    payloads
}

/// A will on `topic` (QoS 1, payload `0`).
fn will_on(topic: &str) -> wardgate_protocol::Will {
    wardgate_protocol::Will {
        topic: wardgate_protocol::TopicName::new(topic).expect("valid topic"),
        payload: bytes::Bytes::from_static(b"0"),
        qos: wardgate_protocol::QoS::AtLeastOnce,
        retain: true,
        properties: Default::default(),
    }
}
