//! A live authorization change (SPEC.md §4.5, §8): users authenticated by username and password
//! (hashes made by `wardgate passwd`), a policy edited while they are connected; only the client
//! that lost a subscription is disconnected with 0x87, the others stay connected and keep
//! receiving. Denials on the wire: CONNACK 0x86 for a bad password, PUBACK 0x87, SUBACK 0x87.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::process::{Running, free_port, wait_for_port};

const V: ProtocolVersion = ProtocolVersion::V5;

fn passwd(dir: &Path, user: &str, password: &str, attr: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args([
            "passwd",
            user,
            "--password-stdin",
            "--iterations",
            "1000",
            "--attr",
            attr,
            "--file",
        ])
        .arg(dir.join("passwords.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("wardgate passwd");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
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
    passwd(root.path(), "heater1", "h1-secret", "role=heater");
    passwd(root.path(), "heater2", "h2-secret", "role=heater");
    passwd(root.path(), "sensor", "s-secret", "role=sensor");
    let toml = std::fs::read_to_string(root.path().join("passwords.toml")).expect("passwords");
    let port = free_port().expect("port");
    let indented: String = toml.lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(
        dir.join("auth.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: passwords\nstringData:\n  passwords.toml: |\n{indented}---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: users\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings:\n      secretRef: passwords\n---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: {port}\n    protocol: Mqtt\n    authenticationRef: users\n    authorizationRef: policy\n"
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
    // Denials on the wire: SUBACK 0x87, PUBACK 0x87.
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
        .publish("telemetry/temperature", b"21.5", QoS::AtLeastOnce, false, 2)
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
