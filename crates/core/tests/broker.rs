//! The broker core driven directly, without sockets: routing, QoS windows, sessions, wills.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wardgate_core::{
    Broker, BrokerSettings, ConnectParams, Disconnect, Outgoing, QueueLimits, QueueOverflow,
};
use wardgate_protocol::{
    PacketId, ProtocolVersion, PublishQos, QoS, RetainHandling, SubscriptionFilter,
    SubscriptionOptions, TopicFilter, TopicName, Will, WillProperties,
};
use wardgate_testkit::fixtures::{WakeCount, message};

fn params(client_id: &str, clean_start: bool, expiry: u32, will: Option<Will>) -> ConnectParams {
    ConnectParams {
        client_id: client_id.into(),
        clean_start,
        session_expiry: expiry,
        protocol: ProtocolVersion::V5,
        receive_maximum: 2,
        will,
        principal: None,
        waker: Arc::new(WakeCount::default()),
    }
}

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    }
}

fn filter(f: &str) -> SubscriptionFilter {
    SubscriptionFilter::new(TopicFilter::new(f).expect("valid filter")).expect("well-formed")
}

fn drain(session: &wardgate_core::Session) -> Vec<(String, QoS, Option<u16>, bool)> {
    let mut out = Vec::new();
    session.drain(Instant::now(), 1000, |_| true, &mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Outgoing::Publish { delivery, qos, dup } => Some((
                String::from_utf8_lossy(&delivery.message.payload).into_owned(),
                delivery.qos,
                qos.packet_id().map(PacketId::get),
                dup,
            )),
            Outgoing::PubRel(_) => None,
        })
        .collect()
}

#[test]
fn qos_is_downgraded_and_inflight_window_follows_receive_maximum() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let sub = broker.connect(params("sub", true, 0, None), now);
    broker.subscribe(
        &sub.session,
        &filter("t/#"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );
    for (i, p) in ["a", "b", "c"].iter().enumerate() {
        let r = broker.publish(message(&format!("t/{i}"), p, QoS::ExactlyOnce, false));
        assert_eq!(r.delivered, 1);
    }
    broker.publish(message("t/x", "q0", QoS::AtMostOnce, false));
    // Receive Maximum 2: two QoS 1 in flight; the third waits, and so does the QoS 0 behind it.
    let first = drain(&sub.session);
    assert_eq!(
        first,
        vec![
            ("a".into(), QoS::AtLeastOnce, Some(1), false),
            ("b".into(), QoS::AtLeastOnce, Some(2), false)
        ]
    );
    assert!(drain(&sub.session).is_empty());
    assert!(sub.session.puback(PacketId::new(1).expect("non-zero")));
    assert!(
        !sub.session.puback(PacketId::new(1).expect("non-zero")),
        "second PUBACK is unknown"
    );
    assert_eq!(
        drain(&sub.session),
        vec![
            ("c".into(), QoS::AtLeastOnce, Some(3), false),
            ("q0".into(), QoS::AtMostOnce, None, false)
        ]
    );
}

#[test]
fn persistent_session_queues_offline_and_redelivers_inflight_with_dup() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let first = broker.connect(params("p", true, 3600, None), now);
    broker.subscribe(
        &first.session,
        &filter("t"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );
    broker.publish(message("t", "inflight", QoS::AtLeastOnce, false));
    assert_eq!(drain(&first.session).len(), 1);
    broker.disconnect(&first.session, first.generation, Disconnect::Lost, now);
    broker.publish(message("t", "queued", QoS::AtLeastOnce, false));
    broker.publish(message("t", "dropped-qos0", QoS::AtMostOnce, false));

    let second = broker.connect(params("p", false, 3600, None), now);
    assert!(second.session_present);
    let mut resend = Vec::new();
    second.session.resend_inflight(&mut resend);
    assert!(matches!(
        &resend[..],
        [Outgoing::Publish {
            dup: true,
            qos: PublishQos::AtLeastOnce(_) | PublishQos::ExactlyOnce(_),
            ..
        }]
    ));
    let queued = drain(&second.session);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0, "queued");
}

#[test]
fn clean_start_discards_the_session_and_expiry_zero_ends_it() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let a = broker.connect(params("c", true, 3600, None), now);
    broker.subscribe(&a.session, &filter("t"), opts(QoS::AtLeastOnce), None, now);
    broker.disconnect(
        &a.session,
        a.generation,
        Disconnect::Normal {
            session_expiry: None,
        },
        now,
    );
    let b = broker.connect(params("c", true, 0, None), now);
    assert!(!b.session_present);
    assert_eq!(
        broker
            .publish(message("t", "x", QoS::AtLeastOnce, false))
            .delivered,
        0
    );
    broker.disconnect(
        &b.session,
        b.generation,
        Disconnect::Normal {
            session_expiry: None,
        },
        now,
    );
    assert_eq!(broker.session_count(), 0);
}

#[test]
fn session_expires_after_its_interval() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let a = broker.connect(params("e", true, 5, None), now);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, now);
    broker.tick(now + Duration::from_secs(4));
    assert_eq!(broker.session_count(), 1);
    broker.tick(now + Duration::from_secs(6));
    assert_eq!(broker.session_count(), 0);
}

#[test]
fn takeover_kicks_the_old_connection_and_keeps_the_session() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let old = broker.connect(params("t", false, 60, None), now);
    assert!(old.session.kicked(old.generation).is_none());
    let new = broker.connect(params("t", false, 60, None), now);
    assert!(Arc::ptr_eq(&old.session, &new.session));
    assert_eq!(
        old.session.kicked(old.generation),
        Some(wardgate_protocol::ReasonCode::SESSION_TAKEN_OVER)
    );
    // The old connection can no longer take the session's messages.
    broker.subscribe(
        &new.session,
        &filter("t"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );
    broker.publish(message("t", "for-new", QoS::AtLeastOnce, false));
    let mut out = Vec::new();
    assert_eq!(
        old.session
            .drain_attached(old.generation, now, 10, |_| true, &mut out),
        None
    );
    assert_eq!(
        new.session
            .drain_attached(new.generation, now, 10, |_| true, &mut out),
        Some(0)
    );
    assert_eq!(out.len(), 1);
    // The old connection ending later does not detach the new one.
    broker.disconnect(&old.session, old.generation, Disconnect::Lost, now);
    assert!(new.session.is_connected());
}

fn will(delay: Option<u32>) -> Will {
    Will {
        topic: TopicName::new("wills/x").expect("valid"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..Default::default()
        },
    }
}

#[test]
fn will_is_sent_on_loss_and_not_on_normal_disconnect() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let watcher = broker.connect(params("w", true, 0, None), now);
    broker.subscribe(
        &watcher.session,
        &filter("wills/#"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );

    let a = broker.connect(params("a", true, 0, Some(will(None))), now);
    broker.disconnect(
        &a.session,
        a.generation,
        Disconnect::Normal {
            session_expiry: None,
        },
        now,
    );
    assert!(drain(&watcher.session).is_empty());

    let b = broker.connect(params("b", true, 0, Some(will(None))), now);
    broker.disconnect(
        &b.session,
        b.generation,
        Disconnect::WithWill {
            session_expiry: None,
        },
        now,
    );
    assert_eq!(drain(&watcher.session).len(), 1);

    let c = broker.connect(params("c", true, 0, Some(will(None))), now);
    broker.disconnect(&c.session, c.generation, Disconnect::Lost, now);
    assert_eq!(drain(&watcher.session).len(), 1);
}

#[test]
fn delayed_will_fires_after_the_delay_unless_the_client_returns() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let watcher = broker.connect(params("w", true, 0, None), now);
    broker.subscribe(
        &watcher.session,
        &filter("wills/#"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );

    let a = broker.connect(params("a", true, 600, Some(will(Some(10)))), now);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, now);
    broker.tick(now + Duration::from_secs(5));
    assert!(drain(&watcher.session).is_empty());
    broker.tick(now + Duration::from_secs(11));
    assert_eq!(drain(&watcher.session).len(), 1);

    let b = broker.connect(params("b", true, 600, Some(will(Some(10)))), now);
    broker.disconnect(&b.session, b.generation, Disconnect::Lost, now);
    let back = broker.connect(params("b", false, 600, None), now + Duration::from_secs(3));
    broker.tick(now + Duration::from_secs(20));
    assert!(
        drain(&watcher.session).is_empty(),
        "reconnecting within the delay cancels the will"
    );
    assert!(back.session_present);
}

#[test]
fn takeover_within_will_delay_does_not_send_the_will() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let watcher = broker.connect(params("w", true, 0, None), now);
    broker.subscribe(
        &watcher.session,
        &filter("wills/#"),
        opts(QoS::AtLeastOnce),
        None,
        now,
    );
    let _old = broker.connect(params("t", false, 600, Some(will(Some(30)))), now);
    let _new = broker.connect(params("t", false, 600, None), now);
    broker.tick(now + Duration::from_secs(60));
    assert!(drain(&watcher.session).is_empty());
}

#[test]
fn retained_messages_follow_retain_handling() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    broker.publish(message("r/1", "one", QoS::AtLeastOnce, true));
    let s = broker.connect(params("s", true, 0, None), now);
    let mut o = opts(QoS::AtLeastOnce);
    let first = broker.subscribe(&s.session, &filter("r/#"), o, None, now);
    assert_eq!((first.existed, first.retained_sent), (false, 1));
    o.retain_handling = RetainHandling::SendIfNew;
    assert_eq!(
        broker
            .subscribe(&s.session, &filter("r/#"), o, None, now)
            .retained_sent,
        0
    );
    o.retain_handling = RetainHandling::DontSend;
    assert_eq!(
        broker
            .subscribe(&s.session, &filter("r/+"), o, None, now)
            .retained_sent,
        0
    );
    // Cleared by an empty retained publish.
    broker.publish(message("r/1", "", QoS::AtMostOnce, true));
    assert_eq!(broker.retained_count(), 0);
}

#[test]
fn overlapping_subscriptions_deliver_once_with_every_identifier() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let s = broker.connect(params("s", true, 0, None), now);
    broker.subscribe(
        &s.session,
        &filter("a/#"),
        opts(QoS::AtMostOnce),
        Some(1),
        now,
    );
    broker.subscribe(
        &s.session,
        &filter("a/b"),
        opts(QoS::ExactlyOnce),
        Some(2),
        now,
    );
    broker.publish(message("a/b", "x", QoS::ExactlyOnce, false));
    let mut out = Vec::new();
    s.session.drain(now, 10, |_| true, &mut out);
    match &out[..] {
        [Outgoing::Publish { delivery, .. }] => {
            assert_eq!(delivery.qos, QoS::ExactlyOnce);
            let mut ids = delivery.subscription_ids.clone();
            ids.sort_unstable();
            assert_eq!(ids, vec![1, 2]);
        }
        other => panic!("expected one PUBLISH, got {other:?}"),
    }
}

#[test]
fn no_local_skips_the_publisher() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let s = broker.connect(params("s", true, 0, None), now);
    let mut o = opts(QoS::AtMostOnce);
    o.no_local = true;
    broker.subscribe(&s.session, &filter("t"), o, None, now);
    let mut m = message("t", "x", QoS::AtMostOnce, false);
    m.origin = Some(s.session.id());
    assert_eq!(broker.publish(m).delivered, 0);
    assert_eq!(
        broker
            .publish(message("t", "y", QoS::AtMostOnce, false))
            .delivered,
        1
    );
}

#[test]
fn shared_subscription_round_robins_and_hands_over_unacked_messages() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let a = broker.connect(params("a", true, 0, None), now);
    let b = broker.connect(params("b", true, 0, None), now);
    for s in [&a, &b] {
        broker.subscribe(
            &s.session,
            &filter("$share/g/jobs/+"),
            opts(QoS::AtLeastOnce),
            None,
            now,
        );
    }
    for i in 0..4 {
        broker.publish(message(&format!("jobs/{i}"), "j", QoS::AtLeastOnce, false));
    }
    assert_eq!(a.session.queued_len(), 2);
    assert_eq!(b.session.queued_len(), 2);
    // a takes one into flight, then goes away: both its messages move to b.
    let mut out = Vec::new();
    a.session.drain(now, 1, |_| true, &mut out);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, now);
    assert_eq!(b.session.queued_len(), 4);
}

#[test]
fn queue_limit_drops_new_or_oldest_and_counts() {
    for (overflow, expect_first) in [
        (QueueOverflow::DropNew, "0"),
        (QueueOverflow::DropOldest, "1"),
    ] {
        let settings = BrokerSettings {
            queue: QueueLimits {
                max_queued: 2,
                congestion_threshold: 1,
                overflow,
                ..QueueLimits::default()
            },
            ..BrokerSettings::default()
        };
        let broker = Broker::new(settings);
        let now = Instant::now();
        let mut p = params("s", true, 0, None);
        p.receive_maximum = 100;
        let s = broker.connect(p, now);
        broker.subscribe(&s.session, &filter("t"), opts(QoS::AtLeastOnce), None, now);
        let payloads = ["0", "1", "2"];
        for payload in payloads {
            broker.publish(message("t", payload, QoS::AtLeastOnce, false));
        }
        assert_eq!(s.session.dropped(), 1);
        assert_eq!(drain(&s.session)[0].0, expect_first);
    }
}

/// A session's queued and in-flight copies are bounded in bytes too: past `max_queued_bytes`
/// its overflow policy drops the new message or as many of the oldest as it takes (each
/// counted), in-flight copies count until acknowledged, and an empty queue takes one message
/// however large.
#[test]
fn queue_bytes_limit_drops_new_or_oldest_and_counts_in_flight() {
    // Each message is its 100-byte payload and its 1-byte topic.
    let payload: &'static str = Box::leak("x".repeat(100).into_boxed_str());
    for overflow in [QueueOverflow::DropNew, QueueOverflow::DropOldest] {
        let settings = BrokerSettings {
            queue: QueueLimits {
                max_queued_bytes: 350,
                overflow,
                ..QueueLimits::default()
            },
            ..BrokerSettings::default()
        };
        let broker = Broker::new(settings);
        let now = Instant::now();
        let mut p = params("s", true, 0, None);
        p.receive_maximum = 1;
        let s = broker.connect(p, now);
        broker.subscribe(&s.session, &filter("t"), opts(QoS::AtLeastOnce), None, now);
        for _ in 0..5 {
            broker.publish(message("t", payload, QoS::AtLeastOnce, false));
        }
        // 3 x 101 bytes fit in 350.
        assert_eq!((s.session.queued_len(), s.session.dropped()), (3, 2));
        // One goes in flight: it still counts, so the queue takes no more.
        assert_eq!(drain(&s.session).len(), 1);
        broker.publish(message("t", payload, QoS::AtLeastOnce, false));
        assert_eq!(s.session.queued_len() + s.session.inflight_len(), 3);
        assert_eq!(s.session.dropped(), 3);
        // Acknowledged, it makes room for one.
        assert!(s.session.puback(PacketId::new(1).expect("id")));
        broker.publish(message("t", payload, QoS::AtLeastOnce, false));
        assert_eq!(s.session.queued_len(), 3);
        let drops = &broker.stats().drops;
        let counted = match overflow {
            QueueOverflow::DropNew => drops.queue_full.load(Ordering::Relaxed),
            QueueOverflow::DropOldest => drops.queue_oldest.load(Ordering::Relaxed),
        };
        assert_eq!(counted, 3, "{overflow:?}");
    }
    // An empty queue takes a message larger than the bound.
    let broker = Broker::new(BrokerSettings {
        queue: QueueLimits {
            max_queued_bytes: 10,
            ..QueueLimits::default()
        },
        ..BrokerSettings::default()
    });
    let now = Instant::now();
    let s = broker.connect(params("big", true, 0, None), now);
    broker.subscribe(&s.session, &filter("t"), opts(QoS::AtMostOnce), None, now);
    broker.publish(message("t", payload, QoS::AtMostOnce, false));
    broker.publish(message("t", payload, QoS::AtMostOnce, false));
    assert_eq!((s.session.queued_len(), s.session.dropped()), (1, 1));
}

/// Every drop is counted: shared-subscription messages a disconnecting member hands to a
/// member whose queue is full are dropped there, and counted as the publish-time drops are.
#[test]
fn shared_messages_handed_to_a_full_member_are_counted_as_dropped() {
    let broker = Broker::new(BrokerSettings {
        queue: QueueLimits {
            max_queued: 1,
            ..QueueLimits::default()
        },
        ..BrokerSettings::default()
    });
    let now = Instant::now();
    let mut pa = params("a", true, 0, None);
    pa.receive_maximum = 10;
    let a = broker.connect(pa, now);
    let b = broker.connect(params("b", true, 0, None), now);
    for s in [&a, &b] {
        broker.subscribe(
            &s.session,
            &filter("$share/g/t"),
            opts(QoS::AtLeastOnce),
            None,
            now,
        );
    }
    for payload in ["1", "2", "3", "4"] {
        broker.publish(message("t", payload, QoS::AtLeastOnce, false));
        // `a` takes its messages in flight; `b` reads nothing.
        drain(&a.session);
    }
    assert_eq!(a.session.inflight_len(), 2);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, now);
    // `b` holds one message and dropped the others: the one at publish time and the two from `a`.
    assert_eq!((b.session.queued_len(), b.session.dropped()), (1, 3));
    let drops = &broker.stats().drops;
    assert_eq!(drops.queue_full.load(Ordering::Relaxed), 3);
    assert_eq!(broker.stats().publish_dropped.load(Ordering::Relaxed), 3);
}

#[test]
fn expired_messages_are_not_delivered() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let s = broker.connect(params("s", true, 0, None), now);
    broker.subscribe(&s.session, &filter("t"), opts(QoS::AtLeastOnce), None, now);
    let mut m = message("t", "x", QoS::AtLeastOnce, false);
    m.expires_at = Some(now + Duration::from_secs(1));
    broker.publish(m);
    let mut out = Vec::new();
    let dropped = s
        .session
        .drain(now + Duration::from_secs(2), 10, |_| true, &mut out);
    assert_eq!((dropped, out.len()), (1, 0));
}

#[test]
fn sys_topics_are_published_retained() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    broker.tick(now);
    let s = broker.connect(params("s", true, 0, None), now);
    let r = broker.subscribe(
        &s.session,
        &filter("$SYS/broker/uptime"),
        opts(QoS::AtMostOnce),
        None,
        now,
    );
    assert_eq!(r.retained_sent, 1);
    let hash = broker.subscribe(&s.session, &filter("#"), opts(QoS::AtMostOnce), None, now);
    assert_eq!(hash.retained_sent, 0, "# does not see $SYS");
}

/// A clean session `sub` with Receive Maximum `window`, subscribed to `t` at `qos`.
fn subscriber_of_t(
    broker: &Broker,
    window: u16,
    qos: QoS,
    now: Instant,
) -> wardgate_core::Attached {
    let mut p = params("sub", true, 0, None);
    p.receive_maximum = window;
    let sub = broker.connect(p, now);
    broker.subscribe(&sub.session, &filter("t"), opts(qos), None, now);
    sub
}

/// Outbound QoS 2 flows are found by packet id whatever order the acknowledgements come in,
/// also across the wrap from 65,535 to 1 (0 is never used) and with ids skipped while in use.
#[test]
fn acknowledgements_find_their_flow_across_the_packet_id_wrap_and_out_of_order() {
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let sub = subscriber_of_t(&broker, 8, QoS::ExactlyOnce, now);
    let id = |n: u16| PacketId::new(n).expect("non-zero");
    // Id 65,533 stays in flight the whole time, so the allocator must skip it after the wrap.
    for n in 1..=65_533u16 {
        broker.publish(message("t", "x", QoS::ExactlyOnce, false));
        assert_eq!(drain(&sub.session)[0].2, Some(n));
        if n != 65_533 {
            assert!(sub.session.pubrec(id(n), true));
            assert!(sub.session.pubcomp(id(n)));
        }
    }
    for _ in 0..5 {
        broker.publish(message("t", "y", QoS::ExactlyOnce, false));
    }
    let ids: Vec<Option<u16>> = drain(&sub.session).iter().map(|d| d.2).collect();
    assert_eq!(ids, [Some(65_534), Some(65_535), Some(1), Some(2), Some(3)]);
    for n in [2, 65_535, 1, 3, 65_534, 65_533] {
        assert!(sub.session.pubrec(id(n), true), "PUBREC {n}");
    }
    assert!(!sub.session.pubcomp(id(4)), "no flow has id 4");
    for n in [65_533, 1, 3, 65_535, 2, 65_534] {
        assert!(sub.session.pubcomp(id(n)), "PUBCOMP {n}");
        assert!(!sub.session.pubcomp(id(n)), "PUBCOMP {n} twice");
    }
    assert_eq!(sub.session.inflight_len(), 0);
    // Allocation goes on in sequence: 4 follows 3.
    broker.publish(message("t", "z", QoS::ExactlyOnce, false));
    assert_eq!(drain(&sub.session)[0].2, Some(4));
}

/// A connection drains into a `Sink` that encodes from the session's own entries; the sink says
/// when its write buffer is full, and draining stops there (the rest stays queued, in order).
#[test]
fn draining_stops_when_the_sink_is_full() {
    struct Buffer {
        got: Vec<(String, Option<u16>)>,
        room: usize,
    }
    impl wardgate_core::Sink for Buffer {
        fn fits(&self, _: &wardgate_core::Delivery) -> bool {
            true
        }
        fn publish(&mut self, d: &wardgate_core::Delivery, qos: PublishQos) {
            let payload = String::from_utf8_lossy(&d.message.payload).into_owned();
            self.got.push((payload, qos.packet_id().map(PacketId::get)));
        }
        fn has_room(&self) -> bool {
            self.got.len() < self.room
        }
    }
    let broker = Broker::new(BrokerSettings::default());
    let now = Instant::now();
    let sub = subscriber_of_t(&broker, 100, QoS::AtLeastOnce, now);
    for payload in ["a", "b", "c", "d", "e"] {
        broker.publish(message("t", payload, QoS::AtLeastOnce, false));
    }
    let mut sink = Buffer {
        got: Vec::new(),
        room: 3,
    };
    let dropped = sub.session.drain_into(sub.generation, now, 256, &mut sink);
    assert_eq!(dropped, Some(0));
    let first: Vec<(String, Option<u16>)> = ["a", "b", "c"]
        .iter()
        .zip(1..)
        .map(|(p, id)| (p.to_string(), Some(id)))
        .collect();
    assert_eq!(sink.got, first);
    assert_eq!(sub.session.queued_len(), 2);
    assert_eq!(sub.session.inflight_len(), 3);
    sink.room = 10;
    sub.session.drain_into(sub.generation, now, 256, &mut sink);
    assert_eq!(sink.got.len(), 5);
    assert_eq!(sink.got[4], ("e".to_string(), Some(5)));
}

/// `publish_run` as the connection uses it: in order, per-message results, and the same
/// outcome as routing the messages one by one (overlaps merged, queue limits, retained and
/// other-topic messages in the middle, shared groups still round-robin per message).
#[test]
fn a_run_of_messages_is_routed_as_one_by_one() {
    let settings = BrokerSettings {
        queue: QueueLimits {
            max_queued: 4,
            congestion_threshold: 100,
            overflow: QueueOverflow::DropNew,
            ..QueueLimits::default()
        },
        ..BrokerSettings::default()
    };
    let broker = Broker::new(settings);
    let now = Instant::now();
    let connect = |id: &str| {
        let mut p = params(id, true, 0, None);
        p.receive_maximum = 100;
        broker.connect(p, now)
    };
    let (publisher, a, b) = (connect("pub"), connect("a"), connect("b"));
    broker.subscribe(&a.session, &filter("t"), opts(QoS::AtLeastOnce), None, now);
    // b subscribes twice (overlapping): one copy of each message, at the higher QoS.
    broker.subscribe(&b.session, &filter("t"), opts(QoS::AtMostOnce), None, now);
    broker.subscribe(&b.session, &filter("#"), opts(QoS::AtLeastOnce), None, now);
    let run = [
        message("t", "0", QoS::AtLeastOnce, false),
        message("t", "1", QoS::AtLeastOnce, false),
        message("t", "2", QoS::AtLeastOnce, true),
        message("u", "3", QoS::AtLeastOnce, false),
        message("t", "4", QoS::AtLeastOnce, false),
        message("t", "5", QoS::AtLeastOnce, false),
    ];
    let mut results = Vec::new();
    broker.publish_run(
        &publisher.session,
        run.into_iter().map(|m| (m, None)),
        &mut results,
    );
    let delivered: Vec<(usize, usize)> = results.iter().map(|r| (r.delivered, r.dropped)).collect();
    // Four fit each queue: "5" finds both full ("3" went to b only, so b is full at "4").
    assert_eq!(delivered, [(2, 0), (2, 0), (2, 0), (1, 0), (1, 1), (0, 2)]);
    let payloads = |s: &wardgate_core::Session| -> Vec<(String, QoS)> {
        drain(s).into_iter().map(|(p, q, _, _)| (p, q)).collect()
    };
    let q1 = |p: &str| (p.to_string(), QoS::AtLeastOnce);
    assert_eq!(payloads(&a.session), [q1("0"), q1("1"), q1("2"), q1("4")]);
    assert_eq!(payloads(&b.session), [q1("0"), q1("1"), q1("2"), q1("3")]);
    assert_eq!(
        broker.retained_count(),
        1,
        "the retained message in the run"
    );

    // Shared groups pick a member per message, in a run as one by one.
    let (m, n) = (connect("m"), connect("n"));
    for s in [&m, &n] {
        broker.subscribe(
            &s.session,
            &filter("$share/g/jobs"),
            opts(QoS::AtLeastOnce),
            None,
            now,
        );
    }
    results.clear();
    broker.publish_run(
        &publisher.session,
        (0..4).map(|_| (message("jobs", "j", QoS::AtLeastOnce, false), None)),
        &mut results,
    );
    assert_eq!(results.len(), 4);
    assert_eq!((m.session.queued_len(), n.session.queued_len()), (2, 2));
}
