//! A client ID reused by another principal on another node (docs/cluster.md, "Client IDs,
//! takeover and sessions moving"): as on one node, a session is resumed only by the principal
//! that created it. Another principal connecting with Clean Start 0 on another node takes the
//! client ID over (the old connection gets 0x8E) but not the session: Session Present 0, none
//! of the old subscriptions, and the old session's will is published at once, delay or not,
//! since that session ends.

use std::time::Duration;

use bytes::Bytes;
use wardgate_protocol::{
    Packet, ProtocolVersion, QoS, ReasonCode, TopicName, Will, WillProperties,
};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::nats::NatsCluster;
use wardgate_testkit::resources::{authenticated_port, authentication, listener, password_method};

use crate::cluster::{Node, start_node_with};
use crate::support::{passwd, passwords_secret};

/// A node authenticating alice and mallory (password `<user>-pw`).
fn start(nats: &NatsCluster, server: usize, id: &str) -> Node {
    start_node_with(nats, server, id, |dir, port| {
        let passwords = dir.join("passwords.toml");
        for user in ["alice", "mallory"] {
            passwd(&passwords, user, &format!("{user}-pw"), &[]);
        }
        format!(
            "{}---\n{}---\n{}",
            passwords_secret("passwords", &passwords),
            authentication("users", &password_method("passwords")),
            listener(&authenticated_port(port, "users", None))
        )
    })
}

async fn connect(node: &Node, user: &str, id: &str, will: Option<Will>) -> (RawClient, bool) {
    let mut connect = connect_packet(ProtocolVersion::V5, id, false);
    connect.properties.session_expiry_interval = Some(300);
    connect.username = Some(user.to_owned());
    connect.password = Some(Bytes::from(format!("{user}-pw")));
    connect.will = will;
    let addr = ([127, 0, 0, 1], node.port).into();
    let (client, ack) = RawClient::connect_with(addr, connect).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS, "{user} connects");
    (client, ack.session_present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principal_takes_the_client_id_on_another_node_but_not_the_session() {
    let nats = NatsCluster::start().expect("NATS cluster");
    let a = start(&nats, 0, "a");
    let b = start(&nats, 1, "b");
    let (mut watcher, _) = connect(&b, "alice", "watcher", None).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let will = Will {
        topic: TopicName::new("wills/dev").expect("valid"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: Some(120),
            ..WillProperties::default()
        },
    };
    let (mut alice, _) = connect(&a, "alice", "dev", Some(will)).await;
    alice.subscribe("q/#", QoS::AtLeastOnce).await;

    let (mut mallory, present) = connect(&b, "mallory", "dev", None).await;
    assert!(
        !present,
        "another principal does not resume alice's session"
    );
    match alice.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER)
        }
        other => panic!("alice's connection should be taken over, got {other:?}"),
    }
    // Alice's session ended: its will goes out now, not after its 120 s delay.
    match watcher.recv_within(Duration::from_secs(15)).await {
        Received::Packet(Packet::Publish(p)) => {
            assert_eq!(p.topic.as_ref().map(TopicName::as_str), Some("wills/dev"));
            assert_eq!(&p.payload[..], b"gone");
        }
        other => panic!("expected alice's will at once, got {other:?}"),
    }
    // And alice's subscription did not come along.
    let (mut publisher, _) = connect(&a, "alice", "pub", None).await;
    publisher
        .publish("q/1", b"for alice only", QoS::AtMostOnce, false, 0)
        .await;
    assert_eq!(
        mallory.recv_within(Duration::from_secs(2)).await,
        Received::Timeout,
        "mallory got nothing of alice's session"
    );
}
