//! The admin HTTP API in process: a broker on a loopback port, a port status the tests set as
//! the supervisor would, and the admin server on 127.0.0.1:0, queried with real HTTP requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use wardgate_core::{Broker, BrokerSettings, QueueLimits};
use wardgate_protocol::{Packet, ProtocolVersion, QoS};
use wardgate_server::admin::client::AdminClient;
use wardgate_server::admin::{AdminState, dto, serve_admin};
use wardgate_server::metrics::Metrics;
use wardgate_server::plan::{Plan, ServeOptions};
use wardgate_server::registry::Registry;
use wardgate_server::selfcheck::{SelfCheck, SelfCheckSettings};
use wardgate_server::stats::ConnectionStats;
use wardgate_server::{ConnectionSettings, PortProtocol, PortSpec, PortState, PortStatus, Status};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::resources;

/// A broker with one MQTT port, its status as a supervisor would publish it, and the admin API.
pub(crate) struct Fixture {
    pub(crate) broker: Arc<Broker>,
    pub(crate) status: Arc<RwLock<Status>>,
    pub(crate) mqtt: SocketAddr,
    pub(crate) admin: AdminClient,
    shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) settings: BrokerSettings,
    pub(crate) selfcheck: Option<SelfCheckSettings>,
    pub(crate) trust_bundle: Option<std::path::PathBuf>,
    /// Who may use the console and API (default: open, as on loopback).
    pub(crate) access: Option<wardgate_server::admin::Access>,
}

pub(crate) async fn start(options: Options) -> Fixture {
    let broker = Arc::new(Broker::new(options.settings));
    let registry = Arc::new(Registry::default());
    let stats = Arc::new(ConnectionStats::default());
    let shutdown = CancellationToken::new();
    let spec = PortSpec {
        name: "BrokerListener/default:1883".into(),
        port: 0,
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        protocol: PortProtocol::Mqtt,
    };
    let bound = wardgate_server::bind(spec.clone()).expect("bind");
    let mqtt = bound.local_addrs()[0];
    bound.serve(
        broker.clone(),
        Arc::new(arc_swap::ArcSwap::from_pointee(
            ConnectionSettings::default(),
        )),
        registry.clone(),
        stats.clone(),
        None,
        Default::default(),
        shutdown.clone(),
    );
    // Connections on port 0 report the OS-chosen port, so the status uses it too.
    let status = Arc::new(RwLock::new(Status::default()));
    {
        let mut s = status.write();
        s.ports.insert(
            mqtt.port(),
            PortStatus {
                spec: PortSpec {
                    port: mqtt.port(),
                    ..spec
                },
                state: PortState::Listening,
                local_addrs: vec![mqtt],
                tls: false,
                certificates: Vec::new(),
                client_cas: Vec::new(),
            },
        );
        s.reloads = 1;
    }
    let metrics = Metrics::for_broker(
        broker.clone(),
        status.clone(),
        registry.clone(),
        stats,
        std::time::SystemTime::now(),
    );
    let mut state = AdminState::new(broker.clone(), status.clone(), registry, metrics.clone());
    if let Some(path) = options.trust_bundle {
        state = state.with_trust_bundle(path);
    }
    if let Some(access) = options.access {
        state = state.with_access(access);
    }
    if let Some(settings) = options.selfcheck {
        let check = SelfCheck::spawn(
            broker.clone(),
            metrics,
            settings,
            shutdown.clone(),
            &tokio_util::task::TaskTracker::new(),
        );
        state = state.with_check(Arc::new(check));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin = AdminClient::new(listener.local_addr().expect("addr"));
    tokio::spawn(serve_admin(listener, state, shutdown.clone()));
    Fixture {
        broker,
        status,
        mqtt,
        admin,
        shutdown,
    }
}

impl Fixture {
    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> (u16, T) {
        self.admin.get_json(path).await.expect(path)
    }

    async fn metrics(&self) -> String {
        let r = self.admin.get("/metrics").await.expect("/metrics");
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/openmetrics-text")),
            "{:?}",
            r.headers
        );
        r.text()
    }

    async fn readyz(&self) -> (u16, dto::Readiness) {
        self.json("/readyz").await
    }

    fn set_state(&self, state: PortState) {
        let mut s = self.status.write();
        for p in s.ports.values_mut() {
            p.state = state.clone();
        }
    }
}

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn settle() -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(50))
}

#[tokio::test]
async fn healthz_answers_while_the_process_lives() {
    let f = start(Options::default()).await;
    let (code, health): (u16, dto::Health) = f.json("/healthz").await;
    assert_eq!(code, 200);
    assert_eq!(health.status, "alive");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn readyz_follows_the_port_states() {
    let f = start(Options::default()).await;
    let (code, body) = f.readyz().await;
    assert_eq!(code, 200, "{body:?}");
    assert!(body.ready && body.reasons.is_empty());

    // A port waiting for its Secret does not serve yet: not ready, and why.
    f.set_state(PortState::AwaitingSecret(
        "Secret `tls` does not exist".into(),
    ));
    let (code, body) = f.readyz().await;
    assert_eq!(code, 503, "{body:?}");
    assert!(!body.ready);
    assert!(
        body.reasons[0].contains("AwaitingSecret: Secret `tls` does not exist"),
        "{body:?}"
    );
    let ports = body
        .checks
        .iter()
        .find(|c| c.name == "ports")
        .expect("ports check");
    assert!(
        ports
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("AwaitingSecret"),
        "{ports:?}"
    );

    f.set_state(PortState::Failed("cannot listen: address in use".into()));
    let (code, body) = f.readyz().await;
    assert_eq!(code, 503);
    assert!(!body.ready);
    assert_eq!(body.reasons.len(), 1, "{body:?}");
    assert!(body.reasons[0].starts_with("ports: "), "{body:?}");
    assert!(
        body.reasons[0].contains("Failed: cannot listen: address in use"),
        "{body:?}"
    );

    f.set_state(PortState::Listening);
    assert_eq!(f.readyz().await.0, 200);

    f.status.write().ports.clear();
    let (code, body) = f.readyz().await;
    assert_eq!(code, 503);
    assert!(
        body.reasons[0].contains("no port is configured"),
        "{body:?}"
    );
}

#[tokio::test]
async fn the_api_shows_clients_listeners_and_retained_messages() {
    let f = start(Options::default()).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "alice", true);
    connect.username = Some("alice-user".into());
    connect.password = Some(bytes::Bytes::from_static(b"s3cret"));
    let (mut alice, _) = RawClient::connect_with(f.mqtt, connect).await;
    alice.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let (mut bob, _) = RawClient::connect(f.mqtt, ProtocolVersion::V311, "bob").await;
    bob.publish("sensors/t", b"21", QoS::AtLeastOnce, true, 1)
        .await;

    let (code, clients): (u16, dto::Clients) = f.json("/api/v1/clients").await;
    assert_eq!(code, 200);
    assert_eq!(clients.count, 2);
    let a = &clients.clients[0];
    assert_eq!(a.client_id, "alice");
    assert!(a.connected);
    assert_eq!(a.username.as_deref(), Some("alice-user"));
    assert_eq!(a.port, Some(f.mqtt.port()));
    assert_eq!(a.protocol_version.as_deref(), Some("5.0"));
    assert!(
        a.connected_since
            .as_deref()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(a.subscriptions.len(), 1);
    assert_eq!(a.subscriptions[0].filter, "sensors/#");
    assert_eq!(a.subscriptions[0].qos, 1);
    let b = &clients.clients[1];
    assert_eq!(
        (b.client_id.as_str(), b.protocol_version.as_deref()),
        ("bob", Some("3.1.1"))
    );
    assert!(b.subscriptions.is_empty());
    // Alice has not acknowledged the message she was sent.
    assert_eq!(a.inflight + a.queued, 1, "{a:?}");

    let raw = f
        .admin
        .get("/api/v1/clients")
        .await
        .expect("clients")
        .text();
    assert!(!raw.contains("s3cret"), "a password leaked: {raw}");

    let (code, one): (u16, dto::Client) = f.json("/api/v1/clients/alice").await;
    assert_eq!((code, one.client_id.as_str()), (200, "alice"));
    let (code, err): (u16, dto::Error) = f.json("/api/v1/clients/nobody").await;
    assert_eq!(code, 404);
    assert!(err.error.contains("no connected client"), "{err:?}");

    let (code, listeners): (u16, dto::Listeners) = f.json("/api/v1/listeners").await;
    assert_eq!(code, 200);
    assert_eq!(listeners.ports.len(), 1);
    let p = &listeners.ports[0];
    assert_eq!(p.listener, "default");
    assert_eq!(
        (p.port, p.state.as_str(), p.protocol.as_str()),
        (f.mqtt.port(), "Listening", "Mqtt")
    );
    assert_eq!(p.connections, 2);
    assert_eq!(p.addresses, vec![f.mqtt.to_string()]);
    assert_eq!(listeners.reloads, 0);

    let (code, retained): (u16, dto::Retained) = f.json("/api/v1/retained").await;
    assert_eq!((code, retained.count), (200, 1));

    let (code, certs): (u16, dto::Certificates) = f.json("/api/v1/certificates").await;
    assert_eq!((code, certs.certificates.len()), (200, 0));

    // A persistent session outlives its connection and is still shown, as not connected.
    let mut carol = connect_packet(ProtocolVersion::V311, "carol", false);
    carol.keep_alive = 0;
    let (carol, _) = RawClient::connect_with(f.mqtt, carol).await;
    carol.disconnect().await;
    for _ in 0..100 {
        if f.admin
            .get_json::<dto::Clients>("/api/v1/clients")
            .await
            .expect("clients")
            .1
            .count
            == 2
        {
            break;
        }
        settle().await;
    }
    let (code, c): (u16, dto::Client) = f.json("/api/v1/clients/carol").await;
    assert_eq!(code, 200);
    assert!(!c.connected && c.port.is_none(), "{c:?}");
}

#[tokio::test]
async fn errors_are_json_and_say_nothing_internal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("ca.pem");
    let f = start(Options {
        trust_bundle: Some(missing.clone()),
        ..Options::default()
    })
    .await;
    let (code, err): (u16, dto::Error) = f.json("/nope").await;
    assert_eq!((code, err.error.as_str()), (404, "no such endpoint"));

    let r = f.admin.get("/api/v1/trust-bundle").await.expect("bundle");
    assert_eq!(r.status, 404);
    assert!(
        !r.text().contains(&*dir.path().to_string_lossy()),
        "{}",
        r.text()
    );

    std::fs::write(
        &missing,
        "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let r = f.admin.get("/api/v1/trust-bundle").await.expect("bundle");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-pem-file"));
    assert!(r.text().starts_with("-----BEGIN CERTIFICATE-----"));

    // A directory where the file should be: a 500 that names no path.
    std::fs::remove_file(&missing).expect("rm");
    std::fs::create_dir(&missing).expect("mkdir");
    let r = f.admin.get("/api/v1/trust-bundle").await.expect("bundle");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("ca.pem"), "{}", r.text());

    let no_bundle = start(Options::default()).await;
    let r = no_bundle
        .admin
        .get("/api/v1/trust-bundle")
        .await
        .expect("bundle");
    assert_eq!(r.status, 404);

    // explain needs a running configuration; a malformed query is a 400 that says why.
    let (code, err): (u16, dto::Error) = f.json("/api/v1/explain?connect").await;
    assert_eq!(
        (code, err.error.as_str()),
        (404, "no configuration is running yet")
    );
    let (code, err): (u16, dto::Error) = f.json("/api/v1/explain?connect&port=99999").await;
    assert_eq!(code, 400);
    assert_eq!(err.error, "port \"99999\" is not a port number");
}

#[tokio::test]
async fn the_api_is_read_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = start(Options::default()).await;
    let admin = f.admin.addr();
    for (method, path) in [
        ("POST", "/api/v1/clients"),
        ("DELETE", "/api/v1/clients/x"),
        ("PUT", "/metrics"),
    ] {
        let mut s = tokio::net::TcpStream::connect(admin)
            .await
            .expect("connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 405"),
            "{method} {path}: {answer}"
        );
    }
}

#[tokio::test]
async fn metrics_count_the_workload() {
    let f = start(Options::default()).await;
    // The subscriber names its metric category; the publisher names none.
    let mut connect = connect_packet(ProtocolVersion::V5, "sub", true);
    connect
        .properties
        .user_properties
        .push(("metriccategory".into(), "dashboards".into()));
    let (mut sub, _) = RawClient::connect_with(f.mqtt, connect).await;
    sub.subscribe("t/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = RawClient::connect(f.mqtt, ProtocolVersion::V311, "pub").await;
    for i in 1..=5u16 {
        let ack = publisher
            .publish("t/x", b"hello", QoS::AtLeastOnce, false, i)
            .await;
        assert!(matches!(ack, Some(Packet::PubAck(_))), "{ack:?}");
    }
    publisher
        .publish("t/retained", b"r", QoS::AtLeastOnce, true, 6)
        .await;
    let mut got = 0;
    while got < 6 {
        let p = sub.publish_received().await;
        sub.puback(p.qos.packet_id().expect("QoS 1")).await;
        got += 1;
    }
    settle().await;
    let text = f.metrics().await;
    let m =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(m("wardgate_publishes_received_total"), 6.0);
    assert_eq!(m("wardgate_publishes_sent_total"), 6.0);
    assert_eq!(m("wardgate_store_retained_messages"), 1.0);
    assert_eq!(m("wardgate_store_retained_bytes"), 1.0);
    assert_eq!(m("wardgate_store_will_messages"), 0.0);
    // By metriccategory: the publisher's 6 messages are uncategorized, the subscriber's 6
    // deliveries are "dashboards"; the bytes are whole packets.
    let uncategorized = "{category=\"uncategorized\"}";
    let dashboards = "{category=\"dashboards\"}";
    let per = |family: &str, labels: &str| m(&format!("wardgate_category_{family}{labels}"));
    assert_eq!(per("publishes_received_total", uncategorized), 6.0);
    assert_eq!(per("publishes_sent_total", uncategorized), 0.0);
    assert_eq!(per("publishes_received_total", dashboards), 0.0);
    assert_eq!(per("publishes_sent_total", dashboards), 6.0);
    assert_eq!(per("connected_sessions", dashboards), 1.0);
    assert_eq!(per("connected_sessions", uncategorized), 1.0);
    // Bytes: at least the publisher's six PUBLISH packets (14 bytes each for "t/x" + "hello"
    // at QoS 1, 18 for "t/retained" + "r"); the categories add up to the broker's totals.
    assert!(
        per("bytes_received_total", uncategorized) >= 5.0 * 14.0 + 17.0,
        "{text}"
    );
    assert_eq!(
        per("bytes_received_total", uncategorized) + per("bytes_received_total", dashboards),
        m("wardgate_bytes_received_total")
    );
    assert_eq!(
        per("bytes_sent_total", uncategorized) + per("bytes_sent_total", dashboards),
        m("wardgate_bytes_sent_total")
    );
    assert_eq!(m("wardgate_total_subscriptions"), 1.0);
    assert_eq!(m("wardgate_total_sessions"), 2.0);
    assert_eq!(m("wardgate_connections_total"), 2.0);
    assert_eq!(m("wardgate_connected_sessions{mqtt_version=\"5.0\"}"), 1.0);
    assert_eq!(
        m("wardgate_connected_sessions{mqtt_version=\"3.1.1\"}"),
        1.0
    );
    assert_eq!(m("wardgate_publishes_dropped_total"), 0.0);
    assert!(m("wardgate_bytes_received_total") > 0.0);
    let port = f.mqtt.port();
    let listener = "BrokerListener/default:1883";
    assert_eq!(
        m(&format!(
            "wardgate_port_connections{{port=\"{port}\",listener=\"{listener}\"}}"
        )),
        2.0
    );
    assert_eq!(
        m(&format!(
            "wardgate_port_state{{port=\"{port}\",listener=\"{listener}\",state=\"Listening\"}}"
        )),
        1.0
    );
    assert_eq!(
        m(&format!(
            "wardgate_port_state{{port=\"{port}\",listener=\"{listener}\",state=\"Failed\"}}"
        )),
        0.0
    );
    assert_eq!(m("wardgate_config_reloads_total"), 0.0);
    assert_eq!(m("wardgate_config_reload_failing"), 0.0);
    assert_eq!(m("wardgate_authentication_failures_total"), 0.0);
    assert_eq!(m("wardgate_authorization_deny_total"), 0.0);
    assert!(text.ends_with("# EOF\n"));

    // A QoS 0 message to a subscriber whose session is offline is dropped and counted.
    let mut persistent = connect_packet(ProtocolVersion::V311, "away", false);
    persistent.keep_alive = 0;
    let (mut away, _) = RawClient::connect_with(f.mqtt, persistent).await;
    away.subscribe("t/#", QoS::AtMostOnce).await;
    away.disconnect().await;
    for _ in 0..100 {
        if f.broker.session("away").is_some_and(|s| !s.is_connected()) {
            break;
        }
        settle().await;
    }
    publisher
        .publish("t/x", b"lost", QoS::AtLeastOnce, false, 7)
        .await;
    let text = f.metrics().await;
    assert_eq!(sample(&text, "wardgate_publishes_dropped_total"), Some(1.0));
    assert_eq!(
        sample(&text, "wardgate_drops_total{reason=\"offline_qos0\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "wardgate_drops_total{reason=\"queue_full\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "wardgate_offline_sessions"), Some(1.0));

    // A will (12 bytes) held by a live connection.
    let mut with_will = connect_packet(ProtocolVersion::V5, "has-will", true);
    with_will.will = Some(wardgate_protocol::Will {
        topic: wardgate_protocol::TopicName::new("t/will").expect("topic"),
        payload: bytes::Bytes::from_static(b"gone offline"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (will_client, _) = RawClient::connect_with(f.mqtt, with_will).await;
    let text = f.metrics().await;
    assert_eq!(sample(&text, "wardgate_store_will_messages"), Some(1.0));
    assert_eq!(sample(&text, "wardgate_store_will_bytes"), Some(12.0));
    will_client.disconnect().await;
    // A normal DISCONNECT discards the will.
    let mut held = Some(1.0);
    for _ in 0..100 {
        held = sample(&f.metrics().await, "wardgate_store_will_messages");
        if held == Some(0.0) {
            break;
        }
        settle().await;
    }
    assert_eq!(held, Some(0.0));

    {
        let mut status = f.status.write();
        status.last_reload_error = Some("bad YAML".into());
        status.reload_failures = 2;
    }
    let text = f.metrics().await;
    assert_eq!(sample(&text, "wardgate_config_reload_failing"), Some(1.0));
    assert_eq!(
        sample(&text, "wardgate_config_reload_failures_total"),
        Some(2.0)
    );
    let (_, listeners): (u16, dto::Listeners) = f.json("/api/v1/listeners").await;
    assert_eq!(listeners.reload_failures, 2);
    assert_eq!(listeners.last_reload_error.as_deref(), Some("bad YAML"));
    f.set_state(PortState::Failed("x".into()));
    let text = f.metrics().await;
    assert_eq!(
        sample(
            &text,
            &format!(
                "wardgate_port_state{{port=\"{port}\",listener=\"{listener}\",state=\"Failed\"}}"
            )
        ),
        Some(1.0)
    );
}

fn fast_selfcheck() -> SelfCheckSettings {
    SelfCheckSettings {
        instance: "default".into(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn the_selfcheck_passes_and_a_hash_subscriber_never_sees_it() {
    let f = start(Options {
        selfcheck: Some(fast_selfcheck()),
        ..Options::default()
    })
    .await;
    let (mut everything, _) = RawClient::connect(f.mqtt, ProtocolVersion::V5, "everything").await;
    everything.subscribe("#", QoS::AtLeastOnce).await;
    let (mut sys, _) = RawClient::connect(f.mqtt, ProtocolVersion::V5, "sys").await;
    sys.subscribe("$SYS/selftest/#", QoS::AtMostOnce).await;

    // The probe's messages do reach an explicit `$SYS/selftest/#` subscriber...
    let seen = sys.publish_received().await;
    let topic = seen.topic.expect("topic");
    assert!(
        topic.as_str().starts_with("$SYS/selftest/default/qos"),
        "{topic:?}"
    );
    // ...and never a `#` subscriber, over several rounds.
    assert_eq!(
        everything.recv_within(Duration::from_millis(400)).await,
        Received::Timeout
    );

    let text = f.metrics().await;
    let m = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert!(m("wardgate_selfcheck_messages_received_total{qos=\"0\"}") >= 2.0);
    assert!(m("wardgate_selfcheck_messages_received_total{qos=\"1\"}") >= 2.0);
    assert_eq!(m("wardgate_selfcheck_messages_lost_total{qos=\"1\"}"), 0.0);
    assert!(m("wardgate_selfcheck_latency_seconds_count{qos=\"1\"}") >= 2.0);
    assert_eq!(m("wardgate_selfcheck_passing"), 1.0);
    let (code, body) = f.readyz().await;
    assert_eq!(code, 200, "{body:?}");
    let check = body
        .checks
        .iter()
        .find(|c| c.name == "selfCheck")
        .expect("selfCheck");
    assert!(
        check.detail.as_deref().unwrap_or("").starts_with("passing"),
        "{check:?}"
    );
    // The probe is not a connection: it is not listed.
    let (_, clients): (u16, dto::Clients) = f.json("/api/v1/clients").await;
    assert_eq!(clients.count, 2);
}

#[tokio::test]
async fn readyz_fails_after_three_failed_selfchecks_and_recovers() {
    // Queues of length 0 drop every message: the probe's never come back.
    let broken = BrokerSettings {
        queue: QueueLimits {
            max_queued: 0,
            ..QueueLimits::default()
        },
        ..BrokerSettings::default()
    };
    let f = start(Options {
        settings: broken,
        selfcheck: Some(fast_selfcheck()),
        ..Options::default()
    })
    .await;
    let mut body = None;
    for _ in 0..100 {
        let (code, b) = f.readyz().await;
        if code == 503 {
            body = Some(b);
            break;
        }
        settle().await;
    }
    let body = body.expect("/readyz never turned 503");
    assert_eq!(body.reasons.len(), 1, "{body:?}");
    assert!(body.reasons[0].starts_with("selfCheck: "), "{body:?}");
    assert!(
        body.reasons[0].contains("did not arrive within 200 ms"),
        "{body:?}"
    );
    let text = f.metrics().await;
    assert_eq!(sample(&text, "wardgate_selfcheck_passing"), Some(0.0));
    assert!(
        sample(&text, "wardgate_selfcheck_messages_lost_total{qos=\"0\"}").unwrap_or(0.0) >= 3.0
    );

    // Fixed: the next round starts a fresh session with the new limits, and passes.
    f.broker.update_settings(BrokerSettings::default());
    let mut ready = false;
    for _ in 0..100 {
        if f.readyz().await.0 == 200 {
            ready = true;
            break;
        }
        settle().await;
    }
    assert!(ready, "/readyz did not recover");
    assert_eq!(
        sample(&f.metrics().await, "wardgate_selfcheck_passing"),
        Some(1.0)
    );
}

/// `$SYS/broker/clients/port/<port>/connected`, from a supervisor's ports and connections.
#[tokio::test(flavor = "multi_thread")]
async fn sys_topics_count_the_clients_of_each_port() {
    let (a, b) = (
        wardgate_testkit::process::free_port().expect("port"),
        wardgate_testkit::process::free_port().expect("port"),
    );
    let yaml = resources::listener(&(resources::mqtt_port(a) + &resources::mqtt_port(b)));
    let model = wardgate_config::load_str("listener.yaml", &yaml)
        .expect("valid")
        .model;
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let mut supervisor = wardgate_server::Supervisor::new(broker.clone(), shutdown.clone());
    supervisor.apply(Plan::from_model(model, &ServeOptions::default()));
    // The configuration says 10 s; a test cannot wait that long for each update.
    broker.update_settings(BrokerSettings {
        sys_interval: Duration::from_millis(100),
        ..(*broker.settings()).clone()
    });
    tokio::spawn(wardgate_server::run_ticker(
        broker.clone(),
        shutdown.clone(),
    ));

    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let (_on_a, _) = RawClient::connect(addr(a), ProtocolVersion::V5, "on-a").await;
    let (mut watcher, _) = RawClient::connect(addr(b), ProtocolVersion::V5, "watcher").await;
    watcher
        .subscribe("$SYS/broker/clients/port/+/connected", QoS::AtMostOnce)
        .await;
    let mut seen = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.get(&a).map(String::as_str) != Some("1")
        || seen.get(&b).map(String::as_str) != Some("1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "per-port counts never reached 1 and 1: {seen:?}"
        );
        let p = watcher.publish_received().await;
        let topic = p.topic.expect("a topic, not an alias");
        let port: u16 = topic
            .as_str()
            .trim_start_matches("$SYS/broker/clients/port/")
            .trim_end_matches("/connected")
            .parse()
            .expect("a port number");
        seen.insert(port, String::from_utf8_lossy(&p.payload).into_owned());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// A port whose X509 method names a `trustedClientCaCert` ConfigMap that is not in the
/// configuration waits for it (`AwaitingConfigMap`, SPEC.md §4.4); it showed `Failed` with
/// "ConfigMap/… does not exist". When the ConfigMap appears, the port opens.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_trusted_client_ca_config_map_makes_the_port_await_it() {
    use wardgate_security::pki::{CertRequest, Key, Profile};
    let port = wardgate_testkit::process::free_port().expect("port");
    let yaml = format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: x509\nspec:\n  authenticationMethods:\n  - method: X509\n    x509Settings:\n      trustedClientCaCert: client-ca\n---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: {port}\n    protocol: Mqtt\n    authenticationRef: x509\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef:\n          kind: ClusterIssuer\n          name: azure-iot-operations-aio-certificate-issuer\n"
    );
    let model = wardgate_config::load_str("listener.yaml", &yaml)
        .expect("valid")
        .model;
    let data = tempfile::tempdir().expect("tempdir");
    let tls = wardgate_security::tls::TlsContext::open(data.path()).expect("pki");
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let mut supervisor =
        wardgate_server::Supervisor::new(broker, shutdown.clone()).with_tls(Arc::new(tls));
    let state = |s: &wardgate_server::Supervisor| s.status().read().ports[&port].state.clone();
    supervisor.apply(Plan::from_model(model, &ServeOptions::default()));
    let waiting = state(&supervisor);
    assert_eq!(waiting.name(), "AwaitingConfigMap", "{waiting:?}");
    assert!(
        waiting
            .reason()
            .is_some_and(|r| r.contains("client-ca not found. Awaiting creation of configmap")),
        "{waiting:?}"
    );
    assert!(supervisor.has_waiting_ports());

    // The ConfigMap appears: the port opens.
    let key = Key::generate(wardgate_config::KeyAlgorithm::Ec256).expect("key");
    let ca = wardgate_security::pki::issue::self_signed(
        &CertRequest::new("Client CA", Profile::RootCa, Duration::from_secs(3600)),
        &key,
    )
    .expect("CA");
    let pem = wardgate_security::pki::pem::certificate_pem(&ca);
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    let with_cm = format!(
        "{yaml}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: client-ca\ndata:\n  client_ca.pem: |\n{indented}"
    );
    let with_cm = wardgate_config::load_str("listener.yaml", &with_cm)
        .expect("valid")
        .model;
    supervisor.apply(Plan::from_model(with_cm, &ServeOptions::default()));
    let listening = state(&supervisor);
    assert_eq!(listening, PortState::Listening, "{listening:?}");
}
