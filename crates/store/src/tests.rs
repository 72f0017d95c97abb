//! The store through the broker: what one broker writes, a second one (on the same folder)
//! restores; expired data leaves the disk; a damaged store is moved aside.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wardgate_core::store::{PolicyMode, QueuePolicy, RetainPolicy};
use wardgate_core::{
    Broker, BrokerSettings, ConnectParams, Disconnect, Outgoing, PersistenceSettings, Store,
};
use wardgate_protocol::{
    ProtocolVersion, QoS, SubscriptionFilter, SubscriptionOptions, TopicFilter, TopicName, Will,
    WillProperties,
};
use wardgate_testkit::fixtures::{WakeCount, message};

use super::*;

fn settings() -> BrokerSettings {
    BrokerSettings {
        persistence: PersistenceSettings {
            queues: QueuePolicy {
                mode: PolicyMode::All,
                ..QueuePolicy::default()
            },
            retained: RetainPolicy {
                mode: PolicyMode::All,
                ..RetainPolicy::default()
            },
            ..PersistenceSettings::default()
        },
        ..BrokerSettings::default()
    }
}

const OPTIONS: Options = Options {
    max_size: 1 << 30,
    commit_delay: Duration::ZERO,
};

fn broker(dir: &Path) -> (Broker, Arc<DiskStore>, Recovered, OpenReport) {
    let opened = open(dir, OPTIONS).expect("open store");
    let broker = Broker::with_store(settings(), opened.store.clone());
    (broker, opened.store, opened.recovered, opened.report)
}

fn params(client_id: &str, clean_start: bool, expiry: u32, will: Option<Will>) -> ConnectParams {
    ConnectParams {
        client_id: client_id.into(),
        clean_start,
        session_expiry: expiry,
        protocol: ProtocolVersion::V5,
        receive_maximum: 10,
        will,
        principal: None,
        waker: Arc::new(WakeCount::default()),
    }
}

fn filter(f: &str) -> SubscriptionFilter {
    SubscriptionFilter::new(TopicFilter::new(f).expect("filter")).expect("not a malformed share")
}

/// Waits until everything written is durable.
fn settle(store: &DiskStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let written = store.write(&[]);
    while store.durable() < written {
        assert!(Instant::now() < deadline, "the flusher never caught up");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sessions_queues_inflight_incoming_retained_and_wills_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Instant::now();
    {
        let (b, store, recovered, _) = broker(dir.path());
        assert!(recovered.sessions.is_empty());
        let sub = b.connect(params("sub", false, 3600, None), now);
        assert!(
            sub.session.ticket().0 > 0,
            "the CONNACK waits for the session record"
        );
        b.subscribe(
            &sub.session,
            &filter("t/#"),
            SubscriptionOptions::new(QoS::ExactlyOnce),
            Some(7),
            now,
        );
        let publ = b.connect(params("pub", false, 3600, None), now);
        for (i, qos) in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce]
            .into_iter()
            .enumerate()
        {
            let before = publ.session.ticket();
            let id = wardgate_protocol::PacketId::new(i as u16 + 1).expect("id");
            let qos2 = (qos == QoS::ExactlyOnce).then(|| {
                match publ.session.receive_qos2(id, usize::MAX) {
                    wardgate_core::Qos2Receipt::Route(admission) => admission,
                    other => panic!("a new packet id, got {other:?}"),
                }
            });
            b.publish_from(
                &publ.session,
                qos2,
                message("t/a", &format!("m{i}"), qos, false),
            );
            assert!(
                publ.session.ticket() > before,
                "the PUBACK waits for the message"
            );
        }
        b.publish(message("r/x", "kept", QoS::AtMostOnce, true));
        // The subscriber takes the first two into flight; only QoS 2 flows are stored as such.
        let mut out = Vec::new();
        sub.session.drain(now, 2, |_| true, &mut out);
        assert_eq!(out.len(), 2);
        let qos2_id = match &out[1] {
            Outgoing::Publish { qos, .. } => qos.packet_id().expect("QoS 2 has an id"),
            Outgoing::PubRel(_) => unreachable!(),
        };
        // The subscriber goes with a delayed will.
        let will = Will {
            topic: TopicName::new("wills/sub").expect("topic"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties {
                will_delay_interval: Some(5),
                ..WillProperties::default()
            },
        };
        let watcher = b.connect(params("watcher", false, 3600, None), now);
        b.subscribe(
            &watcher.session,
            &filter("wills/#"),
            SubscriptionOptions::new(QoS::AtLeastOnce),
            None,
            now,
        );
        let w = b.connect(params("dies", false, 3600, Some(will)), now);
        b.disconnect(&w.session, w.generation, Disconnect::Lost, now);
        b.disconnect(&sub.session, sub.generation, Disconnect::Lost, now);
        settle(&store);
        // Remember what to expect.
        std::fs::write(dir.path().join("qos2-id"), qos2_id.get().to_string()).expect("note");
    }

    let (b, _store, recovered, report) = broker(dir.path());
    assert!(report.moved_aside.is_none());
    assert_eq!(report.corrupt_records, 0);
    let restored = b.restore(recovered, Instant::now());
    assert_eq!(restored.sessions, 4, "{restored:?}");
    assert_eq!(restored.retained, 1);
    assert_eq!(restored.messages, 3);
    assert_eq!(restored.wills, 0, "the delayed will waits");
    assert_eq!(b.retained_count(), 1);

    let sub = b.session("sub").expect("subscriber session");
    assert_eq!(sub.subscriptions().len(), 1);
    assert_eq!(sub.subscriptions()[0].1.id, Some(7));
    // Resume: the QoS 2 flow comes back with DUP and its packet id; the QoS 1 copy in flight
    // was not stored as such and is sent again as queued, with the third.
    let again = b.connect(params("sub", false, 3600, None), Instant::now());
    assert!(again.session_present);
    let mut out = Vec::new();
    again.session.resend_inflight(&mut out);
    let expected: u16 = std::fs::read_to_string(dir.path().join("qos2-id"))
        .expect("note")
        .parse()
        .expect("number");
    match &out[..] {
        [
            Outgoing::Publish {
                qos,
                dup: true,
                delivery,
            },
        ] => {
            assert_eq!(qos.packet_id().map(|p| p.get()), Some(expected));
            assert_eq!(&delivery.message.payload[..], b"m1");
            assert_eq!(delivery.subscription_ids, vec![7]);
        }
        other => panic!("expected the QoS 2 PUBLISH again, got {other:?}"),
    }
    out.clear();
    again.session.drain(Instant::now(), 10, |_| true, &mut out);
    let payloads: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outgoing::Publish { delivery, .. } => Some(delivery.message.payload.clone()),
            Outgoing::PubRel(_) => None,
        })
        .collect();
    assert_eq!(payloads, [Bytes::from("m0"), Bytes::from("m2")]);

    // The publisher's QoS 2 packet ids are known: a retransmission is not routed again.
    let publ = b.connect(params("pub", false, 3600, None), Instant::now());
    let id2 = wardgate_protocol::PacketId::new(2).expect("id");
    assert!(
        matches!(
            publ.session.receive_qos2(id2, usize::MAX),
            wardgate_core::Qos2Receipt::Duplicate
        ),
        "packet 2 awaits PUBREL"
    );
    assert!(publ.session.pubrel(id2));

    // The delayed will keeps its due time across the restart.
    let watcher = b.session("watcher").expect("watcher");
    b.tick(Instant::now());
    assert_eq!(watcher.queued_len(), 0);
    b.tick(now + Duration::from_millis(5100));
    assert_eq!(watcher.queued_len(), 1, "the will arrived");
}

#[test]
fn expiry_removes_data_from_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Instant::now();
    {
        let (b, store, _, _) = broker(dir.path());
        let s = b.connect(params("short", false, 1, None), now);
        b.subscribe(
            &s.session,
            &filter("x"),
            SubscriptionOptions::new(QoS::AtLeastOnce),
            None,
            now,
        );
        b.disconnect(&s.session, s.generation, Disconnect::Lost, now);
        b.publish(message("x", "queued", QoS::AtLeastOnce, false));
        let mut expiring = message("r", "soon", QoS::AtMostOnce, true);
        expiring.expires_at = Some(now + Duration::from_secs(1));
        b.publish(expiring);
        b.publish(message("r2", "stays", QoS::AtMostOnce, true));
        b.tick(now + Duration::from_secs(2));
        assert!(b.session("short").is_none());
        settle(&store);
    }
    let (_, _, recovered, report) = broker(dir.path());
    assert!(recovered.sessions.is_empty(), "{:?}", recovered.sessions);
    let topics: Vec<_> = recovered
        .retained
        .iter()
        .map(|m| m.topic.as_str().to_owned())
        .collect();
    assert_eq!(topics, ["r2"]);
    assert_eq!(
        report.orphan_records, 0,
        "nothing was left behind: {report:?}"
    );
}

#[test]
fn clean_sessions_without_a_will_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (b, store, _, _) = broker(dir.path());
    let before = store.stats().writes.load(Ordering::Relaxed);
    let s = b.connect(params("clean", true, 0, None), Instant::now());
    b.subscribe(
        &s.session,
        &filter("c"),
        SubscriptionOptions::new(QoS::AtLeastOnce),
        None,
        Instant::now(),
    );
    b.publish(message("c", "x", QoS::AtLeastOnce, false));
    assert_eq!(store.stats().writes.load(Ordering::Relaxed), before);
    assert_eq!(s.session.ticket().0, 0);
}

#[test]
fn wait_durable_wakes_once_the_flusher_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, store, _, _) = broker(dir.path());
    let ticket = store.write(&[]);
    let count = Arc::new(WakeCount::default());
    store.wait_durable(ticket, count.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while count.get() == 0 {
        assert!(Instant::now() < deadline, "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(store.durable() >= ticket);
    assert!(store.stats().syncs.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_scribbled_store_is_moved_aside_and_a_fresh_one_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (b, store, _, _) = broker(dir.path());
        for i in 0..50 {
            b.publish(message(
                &format!("r/{i}"),
                "retained",
                QoS::AtMostOnce,
                true,
            ));
        }
        settle(&store);
    }
    // Scribble over every file of the store.
    for entry in walk(&dir.path().join("store")) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            std::fs::write(&entry, vec![0xA5u8; len as usize]).expect("scribble");
        }
    }
    let (_, _, recovered, report) = broker(dir.path());
    let (aside, reason) = report.moved_aside.expect("moved aside");
    assert!(aside.exists(), "{aside:?}");
    assert!(
        aside
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("store.damaged-")),
        "{aside:?}"
    );
    assert!(!reason.is_empty());
    assert!(recovered.sessions.is_empty() && recovered.retained.is_empty());
}

#[test]
fn a_truncated_journal_loses_at_most_its_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (b, store, _, _) = broker(dir.path());
        for i in 0..50 {
            b.publish(message(
                &format!("r/{i}"),
                "retained",
                QoS::AtMostOnce,
                true,
            ));
        }
        settle(&store);
    }
    for entry in walk(&dir.path().join("store")) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        if len > 100 {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&entry)
                .expect("open");
            f.set_len(len - 37).expect("truncate");
        }
    }
    let (b, _, recovered, report) = broker(dir.path());
    // Either the engine tolerated the torn tail, or the store was moved aside: never a panic,
    // and the broker starts.
    let restored = b.restore(recovered, Instant::now());
    if report.moved_aside.is_none() {
        assert!(restored.retained <= 50);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn utc_stamps() {
    assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
    assert_eq!(
        utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
        "20240229T123456Z"
    );
}

/// Restored subscriptions count against the session's limit in levels, and are never dropped
/// for it: a session restored over the limit (here lowered while the broker was down) keeps
/// what it had, and its new filters are refused until it is under the limit again.
#[test]
fn restored_subscriptions_count_against_the_session_limit_and_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Instant::now();
    {
        let (b, store, recovered, _) = broker(dir.path());
        b.restore(recovered, now);
        let s = b.connect(params("deep", false, 3600, None), now);
        for f in ["a/b/c/d", "x"] {
            let r = b.subscribe(
                &s.session,
                &filter(f),
                SubscriptionOptions::new(QoS::AtMostOnce),
                None,
                now,
            );
            assert!(!r.quota_exceeded);
        }
        b.disconnect(&s.session, s.generation, Disconnect::Lost, now);
        settle(&store);
    }
    let (b, _store, recovered, _) = broker(dir.path());
    b.update_settings(BrokerSettings {
        max_subscription_levels: 3,
        ..(*b.settings()).clone()
    });
    b.restore(recovered, now);
    let s = b.connect(params("deep", false, 3600, None), now);
    assert!(s.session_present);
    assert_eq!(
        s.session.subscriptions().len(),
        2,
        "kept over the limit (5 levels of 3)"
    );
    let opts = SubscriptionOptions::new(QoS::AtMostOnce);
    assert!(
        b.subscribe(&s.session, &filter("y"), opts, None, now)
            .quota_exceeded
    );
    // Replacing one it holds is not a new cost.
    assert!(
        !b.subscribe(&s.session, &filter("x"), opts, None, now)
            .quota_exceeded
    );
    assert!(b.unsubscribe(&s.session, filter("a/b/c/d").as_filter()));
    assert!(
        !b.subscribe(&s.session, &filter("y/z"), opts, None, now)
            .quota_exceeded
    );
    assert_eq!(b.stats().subscriptions_refused.load(Ordering::Relaxed), 1);
}
