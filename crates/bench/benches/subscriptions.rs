//! The subscription index with 100,000 subscriptions, 10% of them wildcards: how long matching a
//! topic takes, and the core's routing of one PUBLISH to its subscriber and out of its queue.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use wardgate_core::subscriptions::{Subscriber, SubscriptionIndex};
use wardgate_core::{Broker, BrokerSettings, ConnectParams, Message, Session};
use wardgate_protocol::{
    ProtocolVersion, PublishProperties, QoS, SubscriptionFilter, SubscriptionOptions, TopicFilter,
    TopicName,
};
use wardgate_testkit::fixtures::WakeCount;

const SUBSCRIPTIONS: usize = 100_000;

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn session(broker: &Broker, i: usize) -> Arc<Session> {
    broker
        .connect(
            ConnectParams {
                client_id: format!("c{i}"),
                clean_start: true,
                session_expiry: 0,
                protocol: ProtocolVersion::V311,
                receive_maximum: u16::MAX,
                will: None,
                principal: None,
                waker: Arc::new(WakeCount::default()),
            },
            Instant::now(),
        )
        .session
}

/// Exact filters `fleet/<site>/<line>/<device>/temp` (90%, all different), and wildcards over
/// the same tree: `+` at one of the three levels, or `#` under a site or a line (10%).
fn filter(i: usize, rng: &mut Lcg) -> String {
    if !i.is_multiple_of(10) {
        let k = i - i / 10 - 1;
        return format!("fleet/{}/{}/{}/temp", k % 30, k / 30 % 30, k / 900);
    }
    let (s, l, d) = (rng.below(30), rng.below(30), rng.below(100));
    match rng.below(5) {
        0 => format!("fleet/+/{l}/{d}/temp"),
        1 => format!("fleet/{s}/+/{d}/temp"),
        2 => format!("fleet/{s}/{l}/+/temp"),
        3 => format!("fleet/{s}/#"),
        _ => format!("fleet/{s}/{l}/#"),
    }
}

fn build_index() -> (SubscriptionIndex, Vec<String>) {
    let broker = Broker::new(BrokerSettings::default());
    let mut index = SubscriptionIndex::default();
    let mut rng = Lcg(7);
    let mut exact = Vec::new();
    for i in 0..SUBSCRIPTIONS {
        let f = filter(i, &mut rng);
        let tf = TopicFilter::new(&f).expect("valid filter");
        if !tf.has_wildcards() {
            exact.push(f.clone());
        }
        let sub = Subscriber {
            session: session(&broker, i),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
            id: None,
        };
        index.insert(&tf, None, sub);
    }
    (index, exact)
}

fn match_topics(c: &mut Criterion) {
    let (index, exact) = build_index();
    let mut group = c.benchmark_group("subscription_index_100k");
    let count = |topic: &str| {
        let mut n = 0usize;
        index.for_each_match(topic, |e| n += e.subscribers.len() + e.groups.len());
        n
    };
    let mut i = 0;
    group.bench_function("match_subscribed_topic", |b| {
        b.iter(|| {
            i = (i + 7919) % exact.len();
            black_box(count(black_box(&exact[i])))
        })
    });
    group.bench_function("match_unsubscribed_topic", |b| {
        b.iter(|| black_box(count(black_box("fleet/3/4/not-a-device/pressure"))))
    });
    group.bench_function("match_other_tree", |b| {
        b.iter(|| black_box(count(black_box("factory/3/4/5/temp"))))
    });
    group.finish();
}

fn route_one(c: &mut Criterion) {
    let broker = Broker::new(BrokerSettings::default());
    let subscriber = session(&broker, 0);
    let topic = TopicName::new("bench/p2p/0").expect("topic");
    broker.subscribe(
        &subscriber,
        &SubscriptionFilter::new(TopicFilter::new("bench/p2p/0").expect("filter")).expect("plain"),
        SubscriptionOptions::new(QoS::AtMostOnce),
        None,
        Instant::now(),
    );
    let payload = Bytes::from(vec![0u8; 16]);
    let mut out = Vec::new();
    c.bench_function("core_route_and_drain_qos0_p2p", |b| {
        b.iter(|| {
            let result = broker.publish(Message {
                topic: topic.clone(),
                payload: payload.clone(),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: PublishProperties::default(),
                origin: None,
                expires_at: None,
            });
            out.clear();
            subscriber.drain(Instant::now(), 64, |_| true, &mut out);
            black_box((result.delivered, out.len()))
        })
    });
}

criterion_group!(benches, match_topics, route_one);
criterion_main!(benches);
