//! Authorization through `wardgate serve` (SPEC.md §8), users authenticated by username and
//! password (hashes made by `wardgate passwd`).
//!
//! A live authorization change (SPEC.md §4.5): a policy edited while the users are connected;
//! only the client that lost a subscription is disconnected with 0x87, the others stay connected
//! and keep receiving. Denials on the wire (SPEC.md §8.4) with mosquitto clients in MQTT 3.1.1 and
//! 5: CONNECT and the will topic, PUBLISH at QoS 0, 1 and 2, SUBSCRIBE; a denied message is never
//! delivered.

use std::process::Command;
use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::process::{Running, free_port, wait_for_port};
use wardgate_testkit::resources::{authenticated_port, authentication, listener, password_method};

use crate::support::{Node, mosquitto_pub_output, mosquitto_sub_running, passwd, passwords_secret};

const V: ProtocolVersion = ProtocolVersion::V5;

/// The BrokerAuthentication `users` (passwords from the Secret `passwords`) and listener
/// `default` on `port` using it and the BrokerAuthorization `authz`.
fn users_listener(port: u16, authz: &str) -> String {
    format!(
        "{}---\n{}",
        authentication("users", &password_method("passwords")),
        listener(&authenticated_port(port, "users", Some(authz)))
    )
}

fn policy(subscribe_for_heaters: &str) -> String {
    format!(
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: policy
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    cache: Enabled
    rules:
    - principals:
        attributes:
        - role: heater
      brokerResources:
      - method: Connect
      - method: Subscribe
        topics: [{subscribe_for_heaters}]
    - principals:
        attributes:
        - role: sensor
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["telemetry/#"]
      - method: Subscribe
        topics: ["telemetry/#"]
"#
    )
}

fn connect(user: &str, password: &str) -> wardgate_protocol::Connect {
    let mut c = connect_packet(V, user, true);
    c.username = Some(user.into());
    c.password = Some(bytes::Bytes::copy_from_slice(password.as_bytes()));
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_edit_disconnects_only_the_clients_that_lost_access() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("config");
    std::fs::create_dir(&dir).expect("mkdir");
    let passwords = root.path().join("passwords.toml");
    passwd(&passwords, "heater1", "h1-secret", &["role=heater"]);
    passwd(&passwords, "heater2", "h2-secret", &["role=heater"]);
    passwd(&passwords, "sensor", "s-secret", &["role=sensor"]);
    let port = free_port().expect("port");
    std::fs::write(
        dir.join("auth.yaml"),
        format!(
            "{}---\n{}",
            passwords_secret("passwords", &passwords),
            users_listener(port, "policy")
        ),
    )
    .expect("write auth");
    std::fs::write(
        dir.join("policy.yaml"),
        policy(r#""telemetry/temperature", "alerts/#""#),
    )
    .expect("policy");
    let mut broker = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("serve")
            .arg("--config")
            .arg(&dir)
            .arg("--data-dir")
            .arg(root.path().join("data")),
    )
    .expect("start wardgate");
    if let Err(e) = wait_for_port(port, Duration::from_secs(30)) {
        panic!("port did not open: {e}\n{}", broker.kill());
    }
    let addr = ([127, 0, 0, 1], port).into();

    // A wrong password: CONNACK 0x86.
    let (_, ack) = RawClient::connect_with(addr, connect("heater1", "wrong")).await;
    assert_eq!(ack.reason, ReasonCode::BAD_USERNAME_OR_PASSWORD);

    let (mut heater1, ack) = RawClient::connect_with(addr, connect("heater1", "h1-secret")).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    let (mut heater2, _) = RawClient::connect_with(addr, connect("heater2", "h2-secret")).await;
    let (mut sensor, _) = RawClient::connect_with(addr, connect("sensor", "s-secret")).await;
    assert_eq!(
        heater1
            .subscribe("alerts/#", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        heater2
            .subscribe("telemetry/temperature", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    // Denials on the wire: SUBACK 0x87, PUBACK 0x87, PUBREC 0x87.
    assert_eq!(
        heater2
            .subscribe("telemetry/#", QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    match sensor
        .publish("alerts/fire", b"x", QoS::AtLeastOnce, false, 1)
        .await
    {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    match sensor
        .publish("alerts/fire", b"x", QoS::ExactlyOnce, false, 2)
        .await
    {
        Some(Packet::PubRec(a)) => assert_eq!(a.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBREC 0x87, got {other:?}"),
    }

    // Heaters lose alerts/#: heater1 (subscribed to it) goes, heater2 stays and keeps receiving.
    std::fs::write(
        dir.join("policy.yaml"),
        policy(r#""telemetry/temperature""#),
    )
    .expect("edit policy");
    match heater1.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 for heater1, got {other:?}"),
    }
    sensor
        .publish("telemetry/temperature", b"21.5", QoS::AtLeastOnce, false, 3)
        .await;
    assert_eq!(
        &heater2.publish_received().await.payload[..],
        b"21.5",
        "heater2 stayed connected"
    );
    sensor.send(&Packet::PingReq).await;
    assert_eq!(
        sensor.packet().await,
        Packet::PingResp,
        "the sensor stayed connected"
    );
    drop(broker.kill());
}

/// Writers may publish and subscribe under `allowed/`; the watcher may subscribe to everything;
/// the outsider has a password but no Connect grant.
const DENIALS_POLICY: &str = r##"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: denials
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    cache: Enabled
    rules:
    - principals: {attributes: [{role: writer}]}
      brokerResources:
      - method: Connect
      - {method: Publish, topics: ["allowed/#"]}
      - {method: Subscribe, topics: ["allowed/#"]}
    - principals: {usernames: [watcher]}
      brokerResources:
      - method: Connect
      - {method: Subscribe, topics: ["#"]}
"##;

/// mosquitto_pub `-V version -d` on `port` as `user`, then `more`; everything it printed.
fn as_user(port: &str, version: &str, user: &str, password: &str, more: &[&str]) -> String {
    let id = format!("{user}-{version}");
    let mut args = vec![
        "-V", version, "-d", "-p", port, "-i", &id, "-u", user, "-P", password,
    ];
    args.extend(more);
    mosquitto_pub_output(&args)
}

#[test]
fn denials_on_the_wire_for_each_packet_and_protocol_version() {
    let mut node = Node::empty();
    let passwords = node.root().join("passwords.toml");
    passwd(&passwords, "writer", "w-secret", &["role=writer"]);
    passwd(&passwords, "watcher", "v-secret", &["role=watcher"]);
    passwd(&passwords, "outsider", "o-secret", &["role=outsider"]);
    node.write_config("passwords.yaml", &passwords_secret("passwords", &passwords));
    node.write_config("policy.yaml", DENIALS_POLICY);
    node.write_config("auth.yaml", &users_listener(node.port, "denials"));
    node.start();
    let port = node.port.to_string();
    let wait = Duration::from_secs(20);

    // The watcher sees every message the broker routes.
    let mut watcher = mosquitto_sub_running(&[
        "-V", "mqttv5", "-p", &port, "-i", "watcher", "-u", "watcher", "-P", "v-secret", "-q", "2",
        "-v", "-t", "#", "-W", "60",
    ]);
    // MQTT 3.1.1 acknowledges a denied publish as a success; MQTT 5 says 0x87 (135).
    for (version, refused, denied_ack, denied_sub) in
        [("mqttv311", 5, 0, 128), ("mqttv5", 135, 135, 135)]
    {
        let outsider = |more: &[&str]| as_user(&port, version, "outsider", "o-secret", more);
        let out = outsider(&["-t", "allowed/x", "-m", "x"]);
        assert!(
            out.contains(&format!("received CONNACK ({refused})")),
            "{out}"
        );

        let writer = |more: &[&str]| as_user(&port, version, "writer", "w-secret", more);
        // The will topic is checked at CONNECT, as a publish.
        let will = [
            "--will-topic",
            "denied/will",
            "--will-payload",
            "denied-will",
        ];
        let out = writer(&[&will[..], &["-t", "allowed/x", "-m", "x"]].concat());
        assert!(
            out.contains(&format!("received CONNACK ({refused})")),
            "{out}"
        );

        let out = writer(&[
            "-q",
            "0",
            "-t",
            "denied/q0",
            "-m",
            &format!("denied-{version}-q0"),
        ]);
        assert!(out.contains("received CONNACK (0)"), "{out}");
        let out = writer(&[
            "-q",
            "1",
            "-t",
            "denied/q1",
            "-m",
            &format!("denied-{version}-q1"),
        ]);
        assert!(
            out.contains(&format!("received PUBACK (Mid: 1, RC:{denied_ack})")),
            "{out}"
        );
        let out = writer(&[
            "-q",
            "2",
            "-t",
            "denied/q2",
            "-m",
            &format!("denied-{version}-q2"),
        ]);
        // mosquitto prints no reason code with PUBREC; in MQTT 5 it reports 0x87 by name and
        // ends the flow there (no PUBREL after a failure code).
        assert!(out.contains("received PUBREC (Mid: 1)"), "{out}");
        if denied_ack == 0 {
            assert!(
                out.contains("received PUBCOMP"),
                "the flow completes: {out}"
            );
            assert!(!out.contains("failed"), "{out}");
        } else {
            assert!(out.contains("Publish 1 failed: Not authorized"), "{out}");
            assert!(!out.contains("sending PUBREL"), "{out}");
        }

        // One SUBSCRIBE, two filters: the allowed one granted (QoS 1), the other refused.
        let mut sub = mosquitto_sub_running(&[
            "-V",
            version,
            "-d",
            "-p",
            &port,
            "-i",
            "writer-sub",
            "-u",
            "writer",
            "-P",
            "w-secret",
            "-q",
            "1",
            "-t",
            "allowed/sub",
            "-t",
            "denied/#",
            "-W",
            "30",
        ]);
        let suback = sub
            .wait_for_line("the SUBACK", wait, |l| l.contains("Subscribed (mid: 1):"))
            .expect("SUBACK");
        assert!(
            suback.ends_with(&format!("Subscribed (mid: 1): 1, {denied_sub}")),
            "{suback}"
        );
        drop(sub);

        let out = writer(&[
            "-q",
            "1",
            "-t",
            "allowed/marker",
            "-m",
            &format!("marker-{version}"),
        ]);
        assert!(out.contains("received PUBACK (Mid: 1, RC:0)"), "{out}");
        watcher
            .wait_for_line("the allowed message", wait, |l| {
                l == format!("allowed/marker marker-{version}")
            })
            .expect("the watcher receives what is allowed");
    }
    // Published before the markers, the denied messages would have arrived before them.
    assert!(
        !watcher.seen().iter().any(|l| l.contains("denied")),
        "a denied message was delivered: {:?}",
        watcher.seen()
    );
    drop(watcher);
    let log = node.kill().stdout;
    assert!(
        log.contains("denied/q1") && log.contains("denied/will"),
        "denials are logged with the topic:\n{log}"
    );
}

/// Alice may publish and subscribe under `a/alice/#` only.
const PREFIX_POLICY: &str = r##"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: prefix
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    cache: Enabled
    rules:
    - principals: {usernames: [alice]}
      brokerResources:
      - method: Connect
      - {method: Publish, topics: ["a/alice/#"]}
      - {method: Subscribe, topics: ["a/alice/#"]}
"##;

/// A filter of 10,000 levels under a granted prefix (`a/alice/+/+/…` with the grant
/// `a/alice/#`) is authorized, matched by a PUBLISH, unsubscribed, and dropped with its session
/// by the real binary, whose runtime workers have the default 2 MiB stack: each step recursed
/// once per level and aborted the process (issue 15). A deep filter outside the grant is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_deep_filter_under_a_granted_prefix_is_served_without_crashing() {
    let mut node = Node::empty();
    let passwords = node.root().join("passwords.toml");
    passwd(&passwords, "alice", "a-secret", &[]);
    node.write_config("passwords.yaml", &passwords_secret("passwords", &passwords));
    node.write_config("policy.yaml", PREFIX_POLICY);
    node.write_config("auth.yaml", &users_listener(node.port, "prefix"));
    node.start();
    let addr = node.addr();
    let filter = format!("a/alice/{}+", "+/".repeat(9_997));
    let topic = format!("a/alice/{}x", "x/".repeat(9_997));
    let mut c = connect("alice", "a-secret");
    c.client_id = "alice-sub".into();
    let (mut s, ack) = RawClient::connect_with(addr, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    assert_eq!(
        s.subscribe(&filter, QoS::AtLeastOnce).await.reasons,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    assert_eq!(
        s.subscribe(&format!("a/bob/{}+", "+/".repeat(9_997)), QoS::AtLeastOnce)
            .await
            .reasons,
        vec![ReasonCode::NOT_AUTHORIZED]
    );
    let mut c = connect("alice", "a-secret");
    c.client_id = "alice-pub".into();
    let (mut p, _) = RawClient::connect_with(addr, c).await;
    match p.publish(&topic, b"deep", QoS::AtLeastOnce, false, 1).await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::SUCCESS),
        other => panic!("expected PUBACK, got {other:?}\n{}", node.logs()),
    }
    let got = s.publish_received().await;
    assert_eq!(&got.payload[..], b"deep");
    s.puback(got.qos.packet_id().expect("QoS 1")).await;
    let unsub = wardgate_protocol::Unsubscribe {
        packet_id: wardgate_testkit::client::pid(2),
        user_properties: Vec::new(),
        filters: vec![wardgate_protocol::TopicFilter::new(&filter).expect("valid")],
    };
    s.send(&Packet::Unsubscribe(unsub)).await;
    match s.packet().await {
        Packet::UnsubAck(a) => assert_eq!(a.reasons, vec![ReasonCode::SUCCESS]),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    // Subscribed again, then dropped with the (clean) session.
    s.subscribe(&filter, QoS::AtLeastOnce).await;
    s.disconnect().await;
    p.send(&Packet::PingReq).await;
    assert_eq!(p.packet().await, Packet::PingResp, "{}", node.logs());
    let out = node.stop();
    assert!(out.status.success(), "graceful exit:\n{out}");
}

/// alice may read `secret/alice/#` (until the edit of the reload case takes it away, below);
/// bob may publish there but read only `public/#`.
fn resume_policy(alice_reads: &str) -> String {
    format!(
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: resume
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    cache: Enabled
    rules:
    - principals: {{usernames: [alice]}}
      brokerResources:
      - method: Connect
      - {{method: Subscribe, topics: [{alice_reads}]}}
    - principals: {{usernames: [bob]}}
      brokerResources:
      - method: Connect
      - {{method: Publish, topics: ["secret/#", "public/#"]}}
      - {{method: Subscribe, topics: ["public/#"]}}
"#
    )
}

/// A client publishing QoS 1 messages, and its last packet id.
struct Publisher(RawClient, u16);

impl Publisher {
    /// Publishes at QoS 1; the PUBACK's reason.
    async fn publish(&mut self, topic: &str, payload: &[u8]) -> ReasonCode {
        self.1 += 1;
        match self
            .0
            .publish(topic, payload, QoS::AtLeastOnce, false, self.1)
            .await
        {
            Some(Packet::PubAck(a)) => a.reason,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

/// A CONNECT of `user` with `client_id` and Clean Start 0 (v5: Session Expiry 3600).
fn resuming(version: ProtocolVersion, client_id: &str, user: &str) -> wardgate_protocol::Connect {
    let mut c = connect_packet(version, client_id, false);
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(3600);
    }
    c.username = Some(user.into());
    c.password = Some(bytes::Bytes::from(format!("{user}-pw")));
    c
}

/// A running `wardgate serve` whose port authenticates `users` (password `<user>-pw`) and
/// authorizes with BrokerAuthorization `authz_name`, written as `policy.yaml` (edit it to reload).
fn password_node(users: &[&str], authz_name: &str, policy: &str) -> Node {
    let mut node = Node::empty();
    let passwords = node.root().join("passwords.toml");
    for user in users {
        passwd(&passwords, user, &format!("{user}-pw"), &[]);
    }
    node.write_config(
        "auth.yaml",
        &format!(
            "{}---\n{}",
            passwords_secret("passwords", &passwords),
            users_listener(node.port, authz_name)
        ),
    );
    node.write_config("policy.yaml", policy);
    node.start();
    node
}

/// A resumed session is authorized for the identity that connects (docs/security.md). bob,
/// connecting with alice's client ID and Clean Start 0, got her session with its queued
/// messages and her `secret/alice/#` subscription (v5 and v3.1.1): now he gets a new session.
/// And a grant removed by a policy reload while alice had no connection still delivered after
/// she resumed: now her resumed session loses that subscription and what it queued.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_session_is_authorized_for_the_identity_that_connects() {
    let node = password_node(
        &["alice", "bob"],
        "resume",
        &resume_policy(r#""secret/alice/#""#),
    );
    let addr = node.addr();
    let mut bob_pub = Publisher(
        RawClient::connect_with(addr, connect("bob", "bob-pw"))
            .await
            .0,
        0,
    );

    for version in [V, ProtocolVersion::V311] {
        let client_id = format!("alice-{version:?}");
        let (mut alice, ack) =
            RawClient::connect_with(addr, resuming(version, &client_id, "alice")).await;
        assert_eq!(ack.reason, ReasonCode::SUCCESS);
        alice.subscribe("secret/alice/#", QoS::AtLeastOnce).await;
        alice.disconnect().await;
        assert_eq!(
            bob_pub
                .publish("secret/alice/pin", b"queued for alice")
                .await,
            ReasonCode::SUCCESS,
            "alice's session took it"
        );
        // bob with alice's client ID and Clean Start 0: a session of his own, nothing of hers.
        let (mut bob, ack) =
            RawClient::connect_with(addr, resuming(version, &client_id, "bob")).await;
        assert_eq!(ack.reason, ReasonCode::SUCCESS);
        assert!(
            !ack.session_present,
            "{version:?}: bob did not resume alice's session"
        );
        bob_pub
            .publish("secret/alice/pin", b"sent while bob is connected")
            .await;
        assert_eq!(
            bob.recv_within(Duration::from_millis(500)).await,
            Received::Timeout,
            "{version:?}: bob reads nothing of alice's"
        );
        bob.disconnect().await;
    }

    // The reload case. alice's persistent session subscribes and goes; a second connection of
    // hers stays, to see the reload apply (it loses a subscription: DISCONNECT 0x87).
    let (mut alice, _) = RawClient::connect_with(addr, resuming(V, "alice-reload", "alice")).await;
    alice.subscribe("secret/alice/#", QoS::AtLeastOnce).await;
    alice.disconnect().await;
    let (mut watch, _) = RawClient::connect_with(addr, resuming(V, "alice-watch", "alice")).await;
    watch.subscribe("secret/alice/#", QoS::AtLeastOnce).await;
    bob_pub
        .publish("secret/alice/pin", b"queued before the reload")
        .await;
    assert!(matches!(watch.packet().await, Packet::Publish(_)));
    node.write_config("policy.yaml", &resume_policy(r#""public/#""#));
    match watch.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 after the reload, got {other:?}"),
    }
    bob_pub
        .publish("secret/alice/pin", b"queued after the reload")
        .await;
    let (mut alice, ack) =
        RawClient::connect_with(addr, resuming(V, "alice-reload", "alice")).await;
    assert!(ack.session_present, "alice resumes her own session");
    bob_pub
        .publish("secret/alice/pin", b"sent after she resumed")
        .await;
    assert_eq!(
        alice.recv_within(Duration::from_millis(500)).await,
        Received::Timeout,
        "the grant went: nothing queued or new on secret/alice/# is delivered"
    );
    drop(node);
}

/// The writer may publish on `wills/#` until the edit takes that away; the watcher reads all.
fn will_policy(writer_publishes: &str) -> String {
    format!(
        r##"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: wills
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    rules:
    - principals: {{usernames: [writer]}}
      brokerResources:
      - method: Connect
      - {{method: Publish, topics: [{writer_publishes}]}}
    - principals: {{usernames: [watcher]}}
      brokerResources:
      - method: Connect
      - {{method: Subscribe, topics: ["#"]}}
"##
    )
}

/// A will whose topic a policy edit no longer allows was kept (the re-check looked at Connect
/// and subscriptions only) and published when its connection ended. Now the re-check discards
/// it and disconnects the client (0x87), which a CONNECT with that will would get too.
#[tokio::test(flavor = "multi_thread")]
async fn a_will_whose_topic_a_policy_edit_denies_is_discarded() {
    let node = password_node(
        &["writer", "watcher"],
        "wills",
        &will_policy(r#""wills/#""#),
    );
    let addr = node.addr();
    let (mut watcher, _) = RawClient::connect_with(addr, connect("watcher", "watcher-pw")).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let mut c = connect("writer", "writer-pw");
    c.will = Some(wardgate_protocol::Will {
        topic: wardgate_protocol::TopicName::new("wills/writer").expect("topic"),
        payload: bytes::Bytes::from_static(b"writer gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut writer, ack) = RawClient::connect_with(addr, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    node.write_config("policy.yaml", &will_policy(r#""other/#""#));
    match writer.recv_within(Duration::from_secs(10)).await {
        Received::Packet(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 for the writer, got {other:?}"),
    }
    assert_eq!(
        watcher.recv_within(Duration::from_millis(500)).await,
        Received::Timeout,
        "the will was not published"
    );
    drop(node);
}
