//! The publish path with and without persistence, no I/O but the store's: `Broker::publish` of a
//! 16 B message to one subscriber with a session expiry, `Session::drain` of it and its PUBACK.
//!
//! - `off`: no store (`Broker::new`): what every broker without `persistence` runs.
//! - `noop`: the core's persistence path (records built, ops handed over) into `NoopStore`.
//! - `fjall`: the same into the fjall store (journal buffer and memtables; the flusher fsyncs on
//!   its own thread, nobody waits for it here).
//!
//! `cargo bench -p wardgate-store --bench publish`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wardgate_core::store::{PolicyMode, QueuePolicy};
use wardgate_core::{
    Broker, BrokerSettings, ConnectParams, Message, Outgoing, PersistenceSettings, Store,
};
use wardgate_protocol::{
    ProtocolVersion, PublishProperties, PublishQos, QoS, SubscriptionFilter, SubscriptionOptions,
    TopicFilter, TopicName,
};
use wardgate_testkit::fixtures::WakeCount;

fn settings() -> BrokerSettings {
    BrokerSettings {
        persistence: PersistenceSettings {
            queues: QueuePolicy {
                mode: PolicyMode::All,
                ..QueuePolicy::default()
            },
            ..PersistenceSettings::default()
        },
        ..BrokerSettings::default()
    }
}

fn run(c: &mut Criterion, name: &str, broker: &Broker, qos: QoS) {
    let now = Instant::now();
    let params = |id: &str| ConnectParams {
        client_id: id.into(),
        clean_start: true,
        session_expiry: 3600,
        protocol: ProtocolVersion::V5,
        receive_maximum: 100,
        will: None,
        principal: None,
        waker: Arc::new(WakeCount::default()),
    };
    let sub = broker.connect(params("sub"), now);
    let publ = broker.connect(params("pub"), now);
    broker.subscribe(
        &sub.session,
        &SubscriptionFilter::new(TopicFilter::new("t/1").expect("filter")).expect("plain"),
        SubscriptionOptions::new(QoS::ExactlyOnce),
        None,
        now,
    );
    let topic = TopicName::new("t/1").expect("topic");
    let payload = Bytes::from_static(b"0123456789abcdef");
    let mut out = Vec::new();
    c.bench_function(name, |b| {
        b.iter(|| {
            broker.publish_from(
                &publ.session,
                None,
                Message {
                    topic: topic.clone(),
                    payload: payload.clone(),
                    qos,
                    retain: false,
                    properties: PublishProperties::default(),
                    origin: None,
                    expires_at: None,
                },
            );
            sub.session.drain(now, 8, |_| true, &mut out);
            for o in out.drain(..) {
                if let Outgoing::Publish { qos: sent, .. } = o {
                    match sent {
                        PublishQos::AtMostOnce => {}
                        PublishQos::AtLeastOnce(id) => {
                            sub.session.puback(id);
                        }
                        PublishQos::ExactlyOnce(id) => {
                            sub.session.pubrec(id, true);
                            sub.session.pubcomp(id);
                        }
                    }
                }
            }
        })
    });
}

fn bench(c: &mut Criterion) {
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let q = qos.as_u8();
        run(
            c,
            &format!("publish_qos{q}/off"),
            &Broker::new(settings()),
            qos,
        );
        let noop: Arc<dyn Store> = Arc::new(wardgate_store::NoopStore::default());
        run(
            c,
            &format!("publish_qos{q}/noop"),
            &Broker::with_store(settings(), noop),
            qos,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let opened = wardgate_store::open(
            dir.path(),
            wardgate_store::Options {
                max_size: u64::MAX,
                commit_delay: Duration::ZERO,
            },
        )
        .expect("store");
        let store: Arc<dyn Store> = opened.store.clone();
        run(
            c,
            &format!("publish_qos{q}/fjall"),
            &Broker::with_store(settings(), store),
            qos,
        );
        opened.store.close();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
