//! The broker's flows driven in process, without sockets: a connection is a [`Wake`] stub, a
//! store is a recording [`Store`], time is an `Instant` the test moves.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::AtomicUsize;

use wardgate_protocol::WillProperties;

use super::*;
use crate::session::{LinkState, Outgoing};
use crate::store::{PolicyMode, RetainPolicy, Ticket};

/// A connection task: counts its wake-ups.
#[derive(Debug, Default)]
struct Woken(AtomicUsize);

impl Wake for Woken {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A store that keeps a line per op written, durable at once.
#[derive(Debug, Default)]
struct Recording(StdMutex<Vec<String>>);

impl Recording {
    /// The ops written since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

impl Store for Recording {
    fn write(&self, ops: &[Op<'_>]) -> Ticket {
        let mut written = self.0.lock().expect("not poisoned");
        written.extend(ops.iter().map(|op| match op {
            Op::Session(r) => format!("session {}", r.client_id),
            Op::DropSession(id) => format!("drop {}", id.0),
            Op::Subscribe { filter, .. } => format!("subscribe {filter}"),
            Op::Unsubscribe { filter, .. } => format!("unsubscribe {filter}"),
            Op::Retain(m) => format!("retain {}", m.topic),
            Op::ClearRetained(t) => format!("clear {t}"),
            other => format!("{other:?}"),
        }));
        Ticket(written.len() as u64)
    }
    fn durable(&self) -> Ticket {
        Ticket(u64::MAX)
    }
    fn wait_durable(&self, _: Ticket, waker: Arc<dyn Wake>) {
        waker.wake();
    }
    fn is_full(&self) -> bool {
        false
    }
}

fn connect(broker: &Broker, client_id: &str, clean_start: bool, expiry: u32) -> Attached {
    connect_as(broker, client_id, clean_start, expiry, None, None)
}

fn connect_as(
    broker: &Broker,
    client_id: &str,
    clean_start: bool,
    expiry: u32,
    principal: Option<&str>,
    will: Option<Will>,
) -> Attached {
    let params = ConnectParams {
        client_id: client_id.into(),
        clean_start,
        session_expiry: expiry,
        protocol: ProtocolVersion::V5,
        receive_maximum: 100,
        will,
        principal: principal.map(Arc::from),
        waker: Arc::new(Woken::default()),
    };
    broker.connect(params, Instant::now())
}

fn filter(f: &str) -> SubscriptionFilter {
    SubscriptionFilter::new(TopicFilter::new(f).expect("valid")).expect("well-formed")
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions::new(qos)
}

fn subscribe(broker: &Broker, who: &Attached, f: &str, options: SubscriptionOptions) {
    let result = broker.subscribe(&who.session, &filter(f), options, None, Instant::now());
    assert!(!result.quota_exceeded);
}

fn message(topic: &str, payload: &'static str, retain: bool) -> Message {
    Message {
        topic: TopicName::new(topic).expect("valid"),
        payload: Bytes::from_static(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain,
        properties: PublishProperties::default(),
        origin: None,
        expires_at: None,
    }
}

fn will(topic: &str, delay: u32) -> Will {
    Will {
        topic: TopicName::new(topic).expect("valid"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(delay),
            ..WillProperties::default()
        },
    }
}

/// What a session's connection would send now: (payload, RETAIN flag) of each PUBLISH.
fn sent(session: &Session) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    session.drain(Instant::now(), 1_000, |_| true, &mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Outgoing::Publish { delivery, .. } => Some((
                String::from_utf8_lossy(&delivery.message.payload).into_owned(),
                delivery.retain,
            )),
            Outgoing::PubRel(_) => None,
        })
        .collect()
}

fn payloads(session: &Session) -> Vec<String> {
    sent(session).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_second_connection_resumes_or_replaces_the_session() {
    // (first expiry, second's clean start, second's principal, session present)
    let cases = [
        (3600, false, Some("alice"), true),
        (3600, true, Some("alice"), false),
        (0, false, Some("alice"), false),
        (3600, false, Some("mallory"), false),
    ];
    for (expiry, clean_start, principal, present) in cases {
        let case = format!("expiry {expiry}, clean {clean_start}, {principal:?}");
        let broker = Broker::new(BrokerSettings::default());
        let first = connect_as(&broker, "c", false, expiry, Some("alice"), None);
        subscribe(&broker, &first, "t", options(QoS::AtLeastOnce));
        let second = connect_as(&broker, "c", clean_start, expiry, principal, None);

        assert_eq!(second.session_present, present, "{case}");
        assert_eq!(
            Arc::ptr_eq(&first.session, &second.session),
            present,
            "{case}"
        );
        // Either way the first connection is told to go.
        let gone = LinkState::Gone(ReasonCode::SESSION_TAKEN_OVER);
        assert_eq!(first.session.link_state(first.generation), gone, "{case}");
        assert_eq!(
            second.session.link_state(second.generation),
            LinkState::Attached,
            "{case}"
        );
        // A resumed session keeps its subscription; a replaced one's is gone from the index.
        broker.publish(message("t", "m", false));
        let expected: Vec<String> = if present { vec!["m".into()] } else { vec![] };
        assert_eq!(payloads(&second.session), expected, "{case}");
        assert_eq!(broker.session_count(), 1, "{case}");
        assert_eq!(
            broker.stats().subscriptions.load(Ordering::Relaxed),
            u64::from(present),
            "{case}"
        );
    }
}

#[test]
fn a_connection_asked_to_hand_over_reports_it_until_it_leaves() {
    let broker = Broker::new(BrokerSettings::default());
    let first = connect(&broker, "c", false, 3600);
    let waiting = Arc::new(Woken::default());
    assert!(first.session.request_handover(waiting.clone()));
    assert_eq!(
        first.session.link_state(first.generation),
        LinkState::HandoverAsked
    );
    broker.disconnect(
        &first.session,
        first.generation,
        Disconnect::Lost,
        Instant::now(),
    );
    assert_eq!(
        waiting.0.load(Ordering::SeqCst),
        1,
        "the new connection goes on"
    );
    assert!(!first.session.request_handover(waiting));
}

#[test]
fn tick_fires_delayed_wills_and_ends_expired_sessions() {
    // (will delay, session expiry, how it ended, seconds after: will sent?, session still there?)
    type Step = (u64, bool, bool);
    let cases: [(u32, u32, Disconnect, &[Step]); 5] = [
        (
            0,
            60,
            Disconnect::Lost,
            &[(0, true, true), (60, true, false)],
        ),
        (
            5,
            60,
            Disconnect::Lost,
            &[(4, false, true), (5, true, true)],
        ),
        // The will waits for the session's end when that comes first.
        (
            30,
            10,
            Disconnect::Lost,
            &[(9, false, true), (10, true, false)],
        ),
        (
            5,
            60,
            Disconnect::Normal {
                session_expiry: None,
            },
            &[(5, false, true), (60, false, false)],
        ),
        // DISCONNECT's Session Expiry update ends the session with the connection.
        (
            5,
            60,
            Disconnect::WithWill {
                session_expiry: Some(0),
            },
            &[(0, true, false)],
        ),
    ];
    for (delay, expiry, how, steps) in cases {
        let broker = Broker::new(BrokerSettings::default());
        let watcher = connect(&broker, "watcher", true, 0);
        subscribe(&broker, &watcher, "wills/#", options(QoS::AtMostOnce));
        let c = connect_as(
            &broker,
            "c",
            false,
            expiry,
            None,
            Some(will("wills/c", delay)),
        );
        let start = Instant::now();
        broker.disconnect(&c.session, c.generation, how, start);
        let mut sent_so_far = false;
        for &(after, will_sent, alive) in steps {
            broker.tick(start + Duration::from_secs(after));
            sent_so_far |= !payloads(&watcher.session).is_empty();
            let case = format!("delay {delay}, expiry {expiry}, {how:?}, after {after}s");
            assert_eq!(sent_so_far, will_sent, "{case}");
            assert_eq!(broker.session("c").is_some(), alive, "{case}");
        }
    }
}

#[test]
fn a_reconnection_within_the_will_delay_cancels_the_will() {
    let broker = Broker::new(BrokerSettings::default());
    let watcher = connect(&broker, "watcher", true, 0);
    subscribe(&broker, &watcher, "wills/#", options(QoS::AtMostOnce));
    let c = connect_as(&broker, "c", false, 60, None, Some(will("wills/c", 5)));
    let start = Instant::now();
    broker.disconnect(&c.session, c.generation, Disconnect::Lost, start);
    let again = connect(&broker, "c", false, 60);
    assert!(again.session_present);
    broker.tick(start + Duration::from_secs(10));
    assert!(payloads(&watcher.session).is_empty());
}

#[test]
fn a_shared_group_takes_turns_and_unsubscribing_leaves_it() {
    let broker = Broker::new(BrokerSettings::default());
    let a = connect(&broker, "a", true, 0);
    let b = connect(&broker, "b", true, 0);
    let plain = connect(&broker, "plain", true, 0);
    for member in [&a, &b] {
        subscribe(&broker, member, "$share/g/t/+", options(QoS::AtLeastOnce));
    }
    subscribe(&broker, &plain, "t/+", options(QoS::AtLeastOnce));
    assert_eq!(broker.stats().subscriptions.load(Ordering::Relaxed), 3);
    for p in ["1", "2", "3", "4"] {
        assert_eq!(broker.publish(message("t/x", p, false)).delivered, 2);
    }
    let (to_a, to_b) = (payloads(&a.session), payloads(&b.session));
    assert_eq!(
        (to_a.len(), to_b.len()),
        (2, 2),
        "round robin: {to_a:?} {to_b:?}"
    );
    assert_eq!(
        payloads(&plain.session).len(),
        4,
        "plain subscribers get every one"
    );

    // UNSUBSCRIBE names the filter as subscribed, `$share/g/` included.
    let whole = TopicFilter::new("$share/g/t/+").expect("valid");
    assert!(!broker.unsubscribe(&a.session, &TopicFilter::new("t/+").expect("valid")));
    assert!(broker.unsubscribe(&a.session, &whole));
    assert!(!broker.unsubscribe(&a.session, &whole));
    assert!(a.session.subscriptions().is_empty());
    assert_eq!(broker.stats().subscriptions.load(Ordering::Relaxed), 2);
    broker.publish(message("t/x", "5", false));
    broker.publish(message("t/x", "6", false));
    assert!(payloads(&a.session).is_empty());
    assert_eq!(payloads(&b.session), ["5", "6"]);
}

#[test]
fn subscription_options_shape_what_is_sent() {
    // (No Local, Retain As Published, Retain Handling) → (sent at SUBSCRIBE, at a second
    // SUBSCRIBE, then (payload, RETAIN) routed: own message, retained one from another client)
    let cases = [
        (
            false,
            false,
            RetainHandling::SendAtSubscribe,
            1,
            1,
            vec![("own", false), ("other", false)],
        ),
        (
            true,
            false,
            RetainHandling::SendIfNew,
            1,
            0,
            vec![("other", false)],
        ),
        (
            false,
            true,
            RetainHandling::DontSend,
            0,
            0,
            vec![("own", false), ("other", true)],
        ),
    ];
    for (no_local, retain_as_published, retain_handling, at_first, at_second, routed) in cases {
        let case = format!("{no_local} {retain_as_published} {retain_handling:?}");
        let broker = Broker::new(BrokerSettings::default());
        broker.publish(message("r", "kept", true));
        let s = connect(&broker, "s", true, 0);
        let o = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local,
            retain_as_published,
            retain_handling,
        };
        let now = Instant::now();
        let first = broker.subscribe(&s.session, &filter("r"), o, None, now);
        let second = broker.subscribe(&s.session, &filter("r"), o, None, now);
        assert_eq!((first.existed, second.existed), (false, true), "{case}");
        assert_eq!(
            (first.retained_sent, second.retained_sent),
            (at_first, at_second),
            "{case}"
        );
        // Retained messages sent at SUBSCRIBE carry RETAIN whatever the options.
        assert!(sent(&s.session).iter().all(|(_, retain)| *retain), "{case}");

        let own = Message {
            origin: Some(s.session.id()),
            ..message("r", "own", false)
        };
        broker.publish(own);
        broker.publish(message("r", "other", true));
        let expected: Vec<(String, bool)> =
            routed.into_iter().map(|(p, r)| (p.to_owned(), r)).collect();
        assert_eq!(sent(&s.session), expected, "{case}");
    }
}

#[test]
fn a_shared_subscription_gets_no_retained_messages() {
    let broker = Broker::new(BrokerSettings::default());
    broker.publish(message("r", "kept", true));
    let s = connect(&broker, "s", true, 0);
    let result = broker.subscribe(
        &s.session,
        &filter("$share/g/r"),
        options(QoS::AtLeastOnce),
        None,
        Instant::now(),
    );
    assert_eq!(result.retained_sent, 0);
}

#[test]
fn replacing_a_subscription_upgrades_it_and_costs_nothing_more() {
    let settings = BrokerSettings {
        max_subscription_levels: 2,
        ..BrokerSettings::default()
    };
    let broker = Broker::new(settings);
    let s = connect(&broker, "s", true, 0);
    let now = Instant::now();
    let sub = |f: &str, qos| broker.subscribe(&s.session, &filter(f), options(qos), None, now);
    assert!(!sub("a/b", QoS::AtMostOnce).quota_exceeded);
    let upgrade = sub("a/b", QoS::ExactlyOnce);
    assert!(upgrade.existed && !upgrade.quota_exceeded);
    assert!(
        sub("c", QoS::AtMostOnce).quota_exceeded,
        "2 levels are spent"
    );
    assert_eq!(
        broker.stats().subscriptions_refused.load(Ordering::Relaxed),
        1
    );
    assert_eq!(broker.stats().subscriptions.load(Ordering::Relaxed), 1);
    assert_eq!(s.session.subscriptions()[0].1.options.qos, QoS::ExactlyOnce);
    let mut out = Vec::new();
    broker.publish(Message {
        qos: QoS::ExactlyOnce,
        ..message("a/b", "m", false)
    });
    s.session.drain(now, 10, |_| true, &mut out);
    assert!(
        matches!(&out[..], [Outgoing::Publish { delivery, .. }] if delivery.qos == QoS::ExactlyOnce)
    );
    // Unsubscribing gives the levels back.
    assert!(broker.unsubscribe(&s.session, filter("a/b").as_filter()));
    assert!(!sub("c", QoS::AtMostOnce).quota_exceeded);
}

#[test]
fn retained_messages_are_set_cleared_expired_and_followed_on_disk() {
    let store = Arc::new(Recording::default());
    let mut settings = BrokerSettings::default();
    settings.persistence.retained = RetainPolicy {
        mode: PolicyMode::Custom,
        topics: vec![TopicFilter::new("keep/#").expect("valid")],
        ..RetainPolicy::default()
    };
    let broker = Broker::with_store(settings, store.clone());
    let now = Instant::now();
    // The first tick retains the `$SYS` topics (not stored); the next one is 10 s away.
    broker.tick(now);
    let sys = broker.retained_count();
    assert_eq!(store.take(), Vec::<String>::new());
    // (topic, payload) published with RETAIN → (retained count, ops written)
    let steps: [(&str, &'static str, usize, &[&str]); 5] = [
        ("keep/a", "1", 1, &["retain keep/a"]),
        ("temp", "1", 2, &[]),
        ("keep/a", "", 1, &["clear keep/a"]),
        ("temp", "", 0, &[]),
        ("keep/a", "", 0, &[]),
    ];
    for (topic, payload, count, ops) in steps {
        broker.publish(message(topic, payload, true));
        assert_eq!(broker.retained_count(), sys + count, "{topic} {payload:?}");
        assert_eq!(store.take(), ops, "{topic} {payload:?}");
    }
    // An expiring retained message leaves the index and the disk at the tick after it expires.
    broker.publish(Message {
        expires_at: Some(now + Duration::from_secs(5)),
        ..message("keep/b", "1", true)
    });
    assert_eq!(store.take(), ["retain keep/b"]);
    broker.tick(now + Duration::from_secs(4));
    assert_eq!(broker.retained_count(), sys + 1);
    assert_eq!(store.take(), Vec::<String>::new());
    broker.tick(now + Duration::from_secs(6));
    assert_eq!(broker.retained_count(), sys);
    assert_eq!(store.take(), ["clear keep/b"]);
}

#[test]
fn persistent_subscriptions_follow_the_session_on_disk() {
    let store = Arc::new(Recording::default());
    let broker = Broker::with_store(BrokerSettings::default(), store.clone());
    let s = connect(&broker, "s", false, 3600);
    assert_eq!(store.take(), ["session s"]);
    subscribe(&broker, &s, "$share/g/t", options(QoS::AtLeastOnce));
    assert_eq!(store.take(), ["subscribe $share/g/t"]);
    assert!(broker.unsubscribe(&s.session, filter("$share/g/t").as_filter()));
    assert_eq!(store.take(), ["unsubscribe $share/g/t"]);
    // A clean start drops the stored session before the new one is written.
    connect(&broker, "s", true, 0);
    assert_eq!(store.take(), [format!("drop {}", s.session.id().0)]);
}

mod fabric;
mod handoff;

#[test]
fn a_leaving_shared_member_keeps_a_qos2_message_it_was_sent_and_gives_up_a_qos1_one() {
    let broker = Broker::new(BrokerSettings::default());
    let a = connect(&broker, "a", false, 60);
    subscribe(&broker, &a, "$share/g/s/+", options(QoS::ExactlyOnce));
    let mut two = message("s/x", "two", false);
    two.qos = QoS::ExactlyOnce;
    broker.publish(message("s/x", "one", false));
    broker.publish(two);
    // Both sent to A, neither answered.
    assert_eq!(payloads(&a.session), ["one", "two"]);
    let b = connect(&broker, "b", false, 60);
    subscribe(&broker, &b, "$share/g/s/+", options(QoS::ExactlyOnce));
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, Instant::now());
    // The QoS 1 message may go to another member; the QoS 2 one is A's [MQTT-4.8.2-4].
    assert_eq!(payloads(&b.session), ["one"]);
}
