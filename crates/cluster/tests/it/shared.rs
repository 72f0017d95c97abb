//! Shared groups across nodes with QoS 1/2 (docs/cluster.md, "Shared subscriptions"): a
//! group's members on two nodes each get messages from its JetStream consumer, each message
//! once; a member that leaves with unacknowledged messages has them handed to the member on
//! the other node; a QoS 2 flow the leaving member had answered with PUBREC stays its own.

use std::collections::BTreeSet;
use std::time::Duration;

use wardgate_protocol::{AckProperties, Packet, PacketId, PubAck, PublishQos, QoS, ReasonCode};
use wardgate_testkit::client::{RawClient, Received};
use wardgate_testkit::nats::NatsCluster;

use crate::fabric::{TestNode, client, node};

/// The filter of the group under test.
const GROUP: &str = "$share/g/s/#";

/// A PUBREC, PUBREL or PUBCOMP for `id`.
fn ack(id: PacketId) -> PubAck {
    PubAck {
        packet_id: id,
        reason: ReasonCode::SUCCESS,
        properties: AckProperties::default(),
    }
}

/// Publishes `payload` to `topic` with `qos` and completes the flow.
async fn publish(publisher: &mut RawClient, topic: &str, payload: &str, qos: QoS, id: u16) {
    match publisher
        .publish(topic, payload.as_bytes(), qos, false, id)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS),
        Some(Packet::PubRec(rec)) => {
            assert_eq!(rec.reason, ReasonCode::SUCCESS);
            publisher.send(&Packet::PubRel(ack(rec.packet_id))).await;
            assert!(matches!(publisher.packet().await, Packet::PubComp(_)));
        }
        other => panic!("expected PUBACK or PUBREC, got {other:?}"),
    }
}

/// How a member answers a PUBLISH.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// PUBACK (QoS 1), or PUBREC then PUBCOMP on PUBREL (QoS 2).
    Complete,
    /// Nothing: the message stays unacknowledged.
    Nothing,
}

/// The payloads `member` receives until it has been quiet for `quiet`, answering as `answer`
/// says; a PUBREL is always completed.
async fn drain(member: &mut RawClient, answer: Answer, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        match member.recv_within(quiet).await {
            Received::Packet(Packet::Publish(p)) => {
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
                match (answer, p.qos) {
                    (Answer::Nothing, _) | (_, PublishQos::AtMostOnce) => {}
                    (Answer::Complete, PublishQos::AtLeastOnce(id)) => member.puback(id).await,
                    (Answer::Complete, PublishQos::ExactlyOnce(id)) => {
                        member.send(&Packet::PubRec(ack(id))).await;
                    }
                }
            }
            Received::Packet(Packet::PubRel(rel)) => {
                member.send(&Packet::PubComp(ack(rel.packet_id))).await;
            }
            Received::Packet(other) => panic!("unexpected {other:?}"),
            Received::Timeout => return got,
            Received::Closed => panic!("the member's connection closed"),
        }
    }
}

/// Publishes probes until each member has received one (the group's consumer exists and both
/// nodes pull from it), every probe acknowledged; bounded.
async fn until_both_pull(publisher: &mut RawClient, a: &mut RawClient, b: &mut RawClient) {
    let (mut on_a, mut on_b) = (false, false);
    for i in 0..200u16 {
        publish(publisher, "s/probe", "probe", QoS::AtLeastOnce, i + 1).await;
        let quiet = Duration::from_millis(200);
        on_a |= !drain(a, Answer::Complete, quiet).await.is_empty();
        on_b |= !drain(b, Answer::Complete, quiet).await.is_empty();
        if on_a && on_b {
            return;
        }
    }
    panic!("the group's members did not both receive probes (a: {on_a}, b: {on_b})");
}

/// The messages in `got` that are not probes, as a set, failing on a duplicate.
fn once(got: &[String]) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for payload in got.iter().filter(|p| *p != "probe") {
        assert!(set.insert(payload.clone()), "{payload} received twice");
    }
    set
}

/// Two nodes on a NATS cluster, a member of the group with `qos` on each, both pulling, and a
/// publisher on node `publisher_on` (0: A, 1: B).
struct Group {
    _nats: NatsCluster,
    _nodes: [TestNode; 2],
    on_a: RawClient,
    on_b: RawClient,
    publisher: RawClient,
}

impl Group {
    async fn start(qos: QoS, publisher_on: usize) -> Group {
        let nats = NatsCluster::start().expect("NATS cluster");
        let nodes = [node(&nats, 0, "a").await, node(&nats, 1, "b").await];
        let mut on_a = client(&nodes[0], "member-a").await;
        let mut on_b = client(&nodes[1], "member-b").await;
        on_a.subscribe(GROUP, qos).await;
        on_b.subscribe(GROUP, qos).await;
        let mut publisher = client(&nodes[publisher_on], "pub").await;
        until_both_pull(&mut publisher, &mut on_a, &mut on_b).await;
        Group {
            _nats: nats,
            _nodes: nodes,
            on_a,
            on_b,
            publisher,
        }
    }
}

/// Both members join the group with `qos`, `N` messages are published with `qos`: each reaches
/// one member; member A answers none of its own, then leaves (its session ends). QoS 1: B gets
/// exactly A's, once. QoS 2: a message once sent belongs to its client, so B gets none of A's
/// ([MQTT-4.8.2-4], [MQTT-4.8.2-5]). Nothing is delivered twice.
async fn leave_and_hand_over(qos: QoS) {
    let mut group = Group::start(qos, 0).await;

    const N: usize = 60;
    for i in 0..N {
        publish(
            &mut group.publisher,
            "s/x",
            &format!("m{i}"),
            qos,
            1_000 + i as u16,
        )
        .await;
    }
    let quiet = Duration::from_secs(2);
    let to_a = once(&drain(&mut group.on_a, Answer::Nothing, quiet).await);
    let mut to_b = once(&drain(&mut group.on_b, Answer::Complete, quiet).await);
    let all: BTreeSet<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert!(to_a.is_disjoint(&to_b), "a message reached both members");
    assert_eq!(
        &to_a | &to_b,
        all,
        "each message reaches one member of the group"
    );
    assert!(
        !to_a.is_empty(),
        "member A took part, with unacknowledged messages"
    );

    group.on_a.drop_connection().await;
    // QoS 1: what A held arrives at B, once; QoS 2: none of it. Nothing else comes again.
    let expected = match qos {
        QoS::ExactlyOnce => BTreeSet::new(),
        _ => to_a.clone(),
    };
    let mut handed = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while handed.len() < expected.len() && tokio::time::Instant::now() < deadline {
        for payload in drain(&mut group.on_b, Answer::Complete, Duration::from_secs(1)).await {
            if payload == "probe" {
                continue;
            }
            assert!(!to_b.contains(&payload), "{payload} reached B twice");
            assert!(
                handed.insert(payload.clone()),
                "{payload} handed over twice"
            );
        }
    }
    assert_eq!(handed, expected, "B gets what A may give up, and only that");
    to_b.extend(handed);
    to_b.extend(to_a.difference(&expected).cloned());
    assert_eq!(to_b, all);
    // Long enough for a hand-over (pulled within a second) to show up if one were made.
    let late = drain(&mut group.on_b, Answer::Complete, Duration::from_secs(5)).await;
    assert!(
        late.iter().all(|p| p == "probe"),
        "nothing is delivered twice: {late:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_members_unacknowledged_qos1_messages_go_to_the_member_on_another_node() {
    leave_and_hand_over(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_members_qos2_messages_sent_to_it_are_never_given_to_another_member() {
    leave_and_hand_over(QoS::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_message_the_leaving_member_answered_with_pubrec_is_not_handed_over() {
    let mut group = Group::start(QoS::ExactlyOnce, 1).await;

    // Until A has one: A answers it with PUBREC (it has the message now) and leaves before
    // PUBCOMP; the other messages are completed by whoever got them.
    let mut to_b = BTreeSet::new();
    let mut taken = None;
    for i in 0..100u16 {
        let payload = format!("m{i}");
        publish(
            &mut group.publisher,
            "s/y",
            &payload,
            QoS::ExactlyOnce,
            500 + i,
        )
        .await;
        to_b.extend(once(
            &drain(
                &mut group.on_b,
                Answer::Complete,
                Duration::from_millis(300),
            )
            .await,
        ));
        if let Received::Packet(Packet::Publish(p)) =
            group.on_a.recv_within(Duration::from_millis(300)).await
        {
            let PublishQos::ExactlyOnce(id) = p.qos else {
                panic!("expected QoS 2, got {:?}", p.qos)
            };
            group.on_a.send(&Packet::PubRec(ack(id))).await;
            assert!(matches!(group.on_a.packet().await, Packet::PubRel(_)));
            taken = Some(String::from_utf8_lossy(&p.payload).into_owned());
            break;
        }
    }
    let taken = taken.expect("member A received a message");
    group.on_a.drop_connection().await;
    let late = once(&drain(&mut group.on_b, Answer::Complete, Duration::from_secs(12)).await);
    assert!(
        !late.contains(&taken) && !to_b.contains(&taken),
        "{taken}, past PUBREC on A, reached B too"
    );
}
