//! The broker over real sockets, driven by the raw test client for exact packet-level
//! assertions. Files are split by topic and MQTT version.

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
        },
        ..Default::default()
    };
    wardgate_testkit::broker::TestBroker::with(settings, Default::default()).await
}
