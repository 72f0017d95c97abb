//! Durable acknowledgements: with persistence on, a PUBACK, PUBREC, PUBCOMP, SUBACK or CONNACK
//! leaves only once the store reports the write it confirms durable, and in order. The store here
//! becomes durable only when the test says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use wardgate_core::store::{PolicyMode, QueuePolicy};
use wardgate_core::{Broker, BrokerSettings, Op, PersistenceSettings, Store, Ticket, Wake};
use wardgate_protocol::{Packet, PacketId, ProtocolVersion, PubAck, QoS, ReasonCode};
use wardgate_server::ConnectionSettings;
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, connect_packet, publish_packet};

const V: ProtocolVersion = ProtocolVersion::V5;
const QUIET: Duration = Duration::from_millis(300);

/// A store that writes nothing and makes writes durable only in [`ManualStore::release`].
#[derive(Default)]
struct ManualStore {
    state: Mutex<Manual>,
    full: AtomicBool,
}

#[derive(Default)]
struct Manual {
    written: u64,
    durable: u64,
    waiters: Vec<(u64, Arc<dyn Wake>)>,
    /// The sessions queued copies were stored for.
    enqueued_for: Vec<u64>,
}

impl ManualStore {
    fn release(&self) {
        let waiters = {
            let mut st = self.state.lock();
            st.durable = st.written;
            std::mem::take(&mut st.waiters)
        };
        for (_, w) in waiters {
            w.wake();
        }
    }

    fn written(&self) -> u64 {
        self.state.lock().written
    }
}

impl Store for ManualStore {
    fn write(&self, ops: &[Op<'_>]) -> Ticket {
        let mut st = self.state.lock();
        for op in ops {
            if let Op::Enqueue { session, .. } = op {
                st.enqueued_for.push(session.0);
            }
        }
        st.written += 1;
        Ticket(st.written)
    }

    fn durable(&self) -> Ticket {
        Ticket(self.state.lock().durable)
    }

    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        let mut st = self.state.lock();
        if st.durable >= ticket.0 {
            drop(st);
            waker.wake();
        } else {
            st.waiters.push((ticket.0, waker));
        }
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

async fn start() -> (TestBroker, Arc<ManualStore>) {
    start_with(QueuePolicy {
        mode: PolicyMode::All,
        ..QueuePolicy::default()
    })
    .await
}

async fn start_with(queues: QueuePolicy) -> (TestBroker, Arc<ManualStore>) {
    let store = Arc::new(ManualStore::default());
    let settings = BrokerSettings {
        persistence: PersistenceSettings {
            queues,
            ..PersistenceSettings::default()
        },
        ..BrokerSettings::default()
    };
    let broker = Arc::new(Broker::with_store(settings, store.clone()));
    let b = TestBroker::with_broker(broker, ConnectionSettings::default()).await;
    (b, store)
}

async fn persistent(b: &TestBroker, store: &ManualStore, client_id: &str) -> RawClient {
    let mut c = connect_packet(V, client_id, false);
    c.properties.session_expiry_interval = Some(600);
    let mut client = RawClient::open(b.tcp, V).await;
    client.send(&Packet::Connect(Box::new(c))).await;
    assert_eq!(
        client.recv_within(QUIET).await,
        Received::Timeout,
        "the CONNACK of a persistent session waits for its record"
    );
    store.release();
    match client.packet().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    client
}

/// The next packet, making every write durable until it comes.
async fn released(client: &mut RawClient, store: &ManualStore) -> Packet {
    for _ in 0..100 {
        store.release();
        if let Received::Packet(p) = client.recv_within(Duration::from_millis(50)).await {
            return p;
        }
    }
    panic!("nothing arrived");
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

#[tokio::test]
async fn puback_and_suback_wait_for_the_store_and_keep_their_order() {
    let (b, store) = start().await;
    let mut sub = persistent(&b, &store, "sub").await;
    sub.send(&Packet::Subscribe(wardgate_protocol::Subscribe {
        packet_id: id(1),
        subscription_identifier: None,
        user_properties: Vec::new(),
        filters: vec![(
            wardgate_protocol::TopicFilter::new("d/#").expect("filter"),
            wardgate_protocol::SubscriptionOptions::new(QoS::AtLeastOnce),
        )],
    }))
    .await;
    assert_eq!(
        sub.recv_within(QUIET).await,
        Received::Timeout,
        "SUBACK held"
    );
    store.release();
    assert!(matches!(sub.packet().await, Packet::SubAck(_)));
    sub.disconnect().await;

    let mut publ = persistent(&b, &store, "pub").await;
    for n in 1..=3 {
        publ.send(&Packet::Publish(publish_packet(
            "d/x",
            b"m",
            QoS::AtLeastOnce,
            false,
            n,
        )))
        .await;
    }
    publ.send(&Packet::PingReq).await;
    assert_eq!(
        publ.recv_within(QUIET).await,
        Received::Timeout,
        "no PUBACK (and nothing after one) before the messages are durable"
    );
    assert!(store.written() > 0);
    store.release();
    for n in 1..=3 {
        match publ.packet().await {
            Packet::PubAck(PubAck {
                packet_id, reason, ..
            }) => {
                assert_eq!((packet_id, reason), (id(n), ReasonCode::SUCCESS));
            }
            other => panic!("expected PUBACK {n}, got {other:?}"),
        }
    }
    assert_eq!(publ.packet().await, Packet::PingResp);
}

#[tokio::test]
async fn pubrec_and_pubcomp_wait_for_the_store() {
    let (b, store) = start().await;
    let mut publ = persistent(&b, &store, "pub2").await;
    publ.send(&Packet::Publish(publish_packet(
        "q2",
        b"once",
        QoS::ExactlyOnce,
        false,
        9,
    )))
    .await;
    assert_eq!(
        publ.recv_within(QUIET).await,
        Received::Timeout,
        "PUBREC held"
    );
    store.release();
    assert!(matches!(publ.packet().await, Packet::PubRec(_)));
    publ.send(&Packet::PubRel(PubAck {
        packet_id: id(9),
        reason: ReasonCode::SUCCESS,
        properties: Default::default(),
    }))
    .await;
    assert_eq!(
        publ.recv_within(QUIET).await,
        Received::Timeout,
        "PUBCOMP held"
    );
    store.release();
    assert!(matches!(publ.packet().await, Packet::PubComp(_)));
}

#[tokio::test]
async fn clean_sessions_are_not_held() {
    let (b, store) = start().await;
    let (mut c, ack) = RawClient::connect(b.tcp, V, "clean").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    c.subscribe("c", QoS::AtLeastOnce).await;
    match c.publish("c", b"x", QoS::AtLeastOnce, false, 1).await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert_eq!(store.written(), 0, "nothing of a clean session is stored");
}

#[tokio::test]
async fn past_max_size_new_qos1_and_qos2_messages_get_0x97() {
    let (b, store) = start().await;
    let (mut c, _) = RawClient::connect(b.tcp, V, "full").await;
    c.subscribe("f", QoS::AtMostOnce).await;
    store.full.store(true, Ordering::Relaxed);
    match c.publish("f", b"x", QoS::AtLeastOnce, false, 1).await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match c.publish("f", b"x", QoS::ExactlyOnce, false, 2).await {
        Some(Packet::PubRec(a)) => assert_eq!(a.reason, ReasonCode::QUOTA_EXCEEDED),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // QoS 0 is not stored: it still flows.
    c.publish("f", b"zero", QoS::AtMostOnce, false, 0).await;
    assert_eq!(&c.publish_received().await.payload[..], b"zero");
    let drops = &b.broker.stats().drops;
    assert_eq!(drops.store_full.load(Ordering::Relaxed), 2);
    store.full.store(false, Ordering::Relaxed);
    match c.publish("f", b"x", QoS::AtLeastOnce, false, 3).await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_v5_client_asks_for_a_persistent_queue_with_aio_persistence_true() {
    let (b, store) = start_with(QueuePolicy {
        mode: PolicyMode::Custom,
        client_ids: vec!["listed-*".into()],
        dynamic: true,
    })
    .await;
    let mut ids = Vec::new();
    for (client_id, ask) in [("asks", true), ("listed-1", false), ("plain", false)] {
        let mut c = connect_packet(V, client_id, true);
        c.properties.session_expiry_interval = Some(600);
        if ask {
            c.properties.user_properties = vec![("aio-persistence".to_owned(), "true".to_owned())];
        }
        let mut client = RawClient::open(b.tcp, V).await;
        client.send(&Packet::Connect(Box::new(c))).await;
        assert!(matches!(
            released(&mut client, &store).await,
            Packet::ConnAck(_)
        ));
        client
            .send(&Packet::Subscribe(wardgate_protocol::Subscribe {
                packet_id: id(1),
                subscription_identifier: None,
                user_properties: Vec::new(),
                filters: vec![(
                    wardgate_protocol::TopicFilter::new("dyn").expect("filter"),
                    wardgate_protocol::SubscriptionOptions::new(QoS::AtLeastOnce),
                )],
            }))
            .await;
        assert!(matches!(
            released(&mut client, &store).await,
            Packet::SubAck(_)
        ));
        ids.push(b.broker.session(client_id).expect("session").id().0);
        client.disconnect().await;
    }
    let (mut publ, _) = RawClient::connect(b.tcp, V, "dyn-pub").await;
    publ.send(&Packet::Publish(publish_packet(
        "dyn",
        b"m",
        QoS::AtLeastOnce,
        false,
        1,
    )))
    .await;
    assert!(matches!(
        released(&mut publ, &store).await,
        Packet::PubAck(_)
    ));
    let mut stored = store.state.lock().enqueued_for.clone();
    stored.sort_unstable();
    assert_eq!(
        stored,
        vec![ids[0], ids[1]],
        "asked for, and listed; not the other"
    );
}
