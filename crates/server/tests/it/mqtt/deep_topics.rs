//! Topics and filters as deep as a packet allows: a 10,000-level filter (`+/+/…`, about 20 KB)
//! is subscribed, matched by a PUBLISH, unsubscribed and dropped by a disconnect without
//! overflowing the stack (each used to recurse once per level and abort the process). The
//! broker runs on this test's thread (2 MiB stack, as a runtime worker's), so a recursion per
//! level kills the test binary.

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode, TopicFilter, Unsubscribe};
use wardgate_testkit::broker::TestBroker;
use wardgate_testkit::client::{RawClient, Received, pid};

const LEVELS: usize = 10_000;

/// `+/+/…/+` with `LEVELS` levels.
fn deep_filter() -> String {
    format!("{}+", "+/".repeat(LEVELS - 1))
}

/// `a/a/…/a` with `LEVELS` levels.
fn deep_topic() -> String {
    format!("{}a", "a/".repeat(LEVELS - 1))
}

fn subscriptions(b: &TestBroker) -> u64 {
    b.broker
        .stats()
        .subscriptions
        .load(std::sync::atomic::Ordering::Relaxed)
}

async fn still_serves(b: &TestBroker) {
    let (mut c, ack) = RawClient::connect(b.tcp, ProtocolVersion::V5, "healthy").await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    c.send(&Packet::PingReq).await;
    assert_eq!(c.packet().await, Packet::PingResp);
}

async fn deep_subscriber(b: &TestBroker, version: ProtocolVersion, id: &str) -> RawClient {
    let (mut s, _) = RawClient::connect(b.tcp, version, id).await;
    let ack = s.subscribe(&deep_filter(), QoS::AtLeastOnce).await;
    assert_eq!(ack.reasons, vec![ReasonCode::GRANTED_QOS_1]);
    s
}

#[tokio::test]
async fn a_10000_level_filter_is_matched_by_a_publish() {
    let b = TestBroker::start().await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let mut s = deep_subscriber(&b, version, "deep-sub").await;
        let (mut p, _) = RawClient::connect(b.tcp, version, "deep-pub").await;
        p.publish(&deep_topic(), b"down there", QoS::AtMostOnce, false, 1)
            .await;
        let got = s.publish_received().await;
        assert_eq!(got.topic.as_deref(), Some(deep_topic().as_str()));
        assert_eq!(&got.payload[..], b"down there");
        // One level less or more is not matched.
        p.publish(&deep_topic()[2..], b"short", QoS::AtMostOnce, false, 1)
            .await;
        p.publish(
            &format!("a/{}", deep_topic()),
            b"long",
            QoS::AtMostOnce,
            false,
            1,
        )
        .await;
        p.publish("x", b"end", QoS::AtMostOnce, false, 1).await;
        assert_eq!(
            s.recv_within(std::time::Duration::from_millis(300)).await,
            Received::Timeout
        );
        s.disconnect().await;
        p.disconnect().await;
    }
    still_serves(&b).await;
}

#[tokio::test]
async fn a_10000_level_filter_is_unsubscribed() {
    let b = TestBroker::start().await;
    let mut s = deep_subscriber(&b, ProtocolVersion::V5, "deep-unsub").await;
    let unsub = Unsubscribe {
        packet_id: pid(2),
        user_properties: Vec::new(),
        filters: vec![TopicFilter::new(deep_filter()).expect("valid filter")],
    };
    s.send(&Packet::Unsubscribe(unsub.clone())).await;
    match s.packet().await {
        Packet::UnsubAck(a) => assert_eq!(a.reasons, vec![ReasonCode::SUCCESS]),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    assert_eq!(subscriptions(&b), 0, "removed from the index");
    // Twice: nothing left to remove.
    s.send(&Packet::Unsubscribe(unsub)).await;
    match s.packet().await {
        Packet::UnsubAck(a) => {
            assert_eq!(a.reasons, vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]);
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    still_serves(&b).await;
}

#[tokio::test]
async fn a_10000_level_filter_is_dropped_with_its_session() {
    let b = TestBroker::start().await;
    // A clean session that disconnects, one that loses its connection, and a deep trie left in
    // the broker when it is dropped at the end of the test.
    deep_subscriber(&b, ProtocolVersion::V5, "deep-1")
        .await
        .disconnect()
        .await;
    deep_subscriber(&b, ProtocolVersion::V311, "deep-2")
        .await
        .drop_connection()
        .await;
    let mut kept = deep_subscriber(&b, ProtocolVersion::V5, "deep-3").await;
    kept.send(&Packet::PingReq).await;
    assert_eq!(kept.packet().await, Packet::PingResp);
    // The first two sessions ended and took their subscriptions with them.
    for _ in 0..50 {
        if subscriptions(&b) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(subscriptions(&b), 1);
    still_serves(&b).await;
}
