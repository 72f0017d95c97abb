//! The web console in process (the admin fixture of [`super::admin`]): who may open it (open on
//! loopback, a token when configured, nobody when exposed without one), the disconnect action's
//! POST + CSRF rule, HTML escaping of what clients send, and `/api/v1/stats` reading the same
//! counters as `/metrics`. The browser journeys are in the wardgate crate (`it::console`).

use std::time::Duration;

use base64::Engine as _;
use wardgate_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use wardgate_server::admin::client::HttpResponse;
use wardgate_server::admin::{Access, AdminToken, dto};
use wardgate_testkit::client::{RawClient, Received};

use super::admin::{Fixture, Options, start};

const TOKEN: &str = "console-test-token-0123456789";

/// The pages and JSON endpoints the access rules cover.
const GUARDED: [&str; 9] = [
    "/",
    "/certificates",
    "/clients",
    "/authorization",
    "/configuration",
    "/cluster",
    "/api/v1/clients",
    "/api/v1/listeners",
    "/api/v1/stats",
];

/// The probes and metrics, open in every case.
const OPEN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

async fn get_with(f: &Fixture, path: &str, authorization: Option<&str>) -> HttpResponse {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    f.admin
        .request("GET", path, &headers, b"")
        .await
        .expect(path)
}

fn token_access() -> Access {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).expect("write token");
    let token = AdminToken::read_file(&file).expect("token");
    Access::for_address("127.0.0.1:9600".parse().expect("addr"), Some(token))
}

#[tokio::test]
async fn exposed_without_a_token_the_console_and_api_refuse_every_request() {
    let addr = "192.0.2.10:9600".parse().expect("addr");
    let f = start(Options {
        access: Some(Access::for_address(addr, None)),
        ..Options::default()
    })
    .await;
    for path in GUARDED {
        let r = get_with(&f, path, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        let body: dto::Error = serde_json::from_slice(&r.body).expect("JSON error");
        assert!(
            body.error.contains("192.0.2.10:9600") && body.error.contains("--admin-token-file"),
            "{path}: {}",
            body.error
        );
        // Even a would-be token is refused: there is none to match.
        let r = get_with(&f, path, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(r.status, 401, "{path}");
    }
    for path in OPEN {
        assert_eq!(get_with(&f, path, None).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn with_a_token_every_page_and_endpoint_requires_it() {
    let f = start(Options {
        access: Some(token_access()),
        ..Options::default()
    })
    .await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{TOKEN}"))
    );
    for path in GUARDED {
        let r = get_with(&f, path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Wardgate\", charset=\"UTF-8\""),
            "{path}: a browser must be asked for the token"
        );
        let wrong = get_with(&f, path, Some("Bearer console-test-token-0123456788")).await;
        assert_eq!(wrong.status, 401, "{path}");
        let bearer = get_with(&f, path, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(bearer.status, 200, "{path}: {}", bearer.text());
        assert_eq!(get_with(&f, path, Some(&basic)).await.status, 200, "{path}");
    }
    for path in OPEN {
        assert_eq!(get_with(&f, path, None).await.status, 200, "{path}");
    }
}

/// The CSRF token embedded in the clients page's forms.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .map(|i| i + "name=\"csrf\" value=\"".len())
        .expect("the page embeds the CSRF token");
    html[start..].split('"').next().expect("token").to_string()
}

async fn post_disconnect(f: &Fixture, body: &str) -> HttpResponse {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    f.admin
        .request("POST", "/clients/disconnect", &headers, body.as_bytes())
        .await
        .expect("POST")
}

#[tokio::test]
async fn disconnect_needs_a_post_with_the_pages_csrf_token() {
    let f = start(Options::default()).await;
    let (mut victim, _) = RawClient::connect(f.mqtt, ProtocolVersion::V5, "victim/1").await;
    let page = f.admin.get("/clients").await.expect("/clients");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("victim/1"), "{html}");
    let csrf = csrf_of(&html);

    for body in [
        "clientId=victim%2F1".to_string(),
        "clientId=victim%2F1&csrf=".to_string(),
        format!("clientId=victim%2F1&csrf={}", "0".repeat(csrf.len())),
    ] {
        let r = post_disconnect(&f, &body).await;
        assert_eq!(r.status, 403, "{body}: {}", r.text());
        assert!(r.text().contains("CSRF token"), "{}", r.text());
    }
    let r = f.admin.get("/clients/disconnect").await.expect("GET");
    assert_eq!(r.status, 405, "a GET must never disconnect");
    assert_eq!(
        victim.recv_within(Duration::from_millis(300)).await,
        Received::Timeout,
        "refused requests leave the client connected"
    );

    let r = post_disconnect(&f, &format!("clientId=victim%2F1&csrf={csrf}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/clients?disconnected=victim%2F1")
    );
    match victim.recv().await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::ADMINISTRATIVE_ACTION);
        }
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    assert_eq!(victim.recv().await, Received::Closed);
    let after = f
        .admin
        .get("/clients?disconnected=victim%2F1")
        .await
        .expect("GET");
    assert!(after.text().contains("Disconnected <code>victim/1</code>"));

    let r = post_disconnect(&f, &format!("clientId=nobody&csrf={csrf}")).await;
    assert_eq!(r.header("location"), Some("/clients?notConnected=nobody"));
}

#[tokio::test]
async fn pages_escape_what_clients_send() {
    let f = start(Options::default()).await;
    let id = "<script>alert(1)</script>";
    let (_evil, _) = RawClient::connect(f.mqtt, ProtocolVersion::V5, id).await;
    let html = f.admin.get("/clients").await.expect("/clients").text();
    assert!(!html.contains(id), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    let page = f.admin.get("/").await.expect("/");
    assert_eq!(
        page.header("content-security-policy")
            .map(|csp| csp.contains("script-src 'self'")),
        Some(true)
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn stats_are_the_counters_metrics_exports() {
    let f = start(Options::default()).await;
    let (mut sub, _) = RawClient::connect(f.mqtt, ProtocolVersion::V5, "sub").await;
    sub.subscribe("t/#", QoS::AtMostOnce).await;
    let (mut publisher, _) = RawClient::connect(f.mqtt, ProtocolVersion::V311, "pub").await;
    for _ in 0..5 {
        publisher
            .publish("t/x", b"1", QoS::AtMostOnce, false, 0)
            .await;
    }
    for _ in 0..5 {
        assert!(matches!(
            sub.recv().await,
            Received::Packet(Packet::Publish(_))
        ));
    }
    let (code, stats): (u16, dto::Stats) = f.admin.get_json("/api/v1/stats").await.expect("stats");
    assert_eq!(code, 200);
    let metrics = f.admin.get("/metrics").await.expect("metrics").text();
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    assert_eq!(stats.connections, 2);
    assert_eq!(
        stats.connections_total,
        metric("wardgate_connections_total")
    );
    assert_eq!(
        stats.publishes_received,
        metric("wardgate_publishes_received_total")
    );
    assert_eq!(
        stats.publishes_sent,
        metric("wardgate_publishes_sent_total")
    );
    assert!(
        stats.publishes_received >= 5 && stats.publishes_sent >= 5,
        "{stats:?}"
    );
    assert_eq!(
        stats.drops.get("queue_full").copied(),
        Some(metric("wardgate_drops_total{reason=\"queue_full\"}"))
    );
    assert!(
        stats.self_check_latency_seconds.is_empty(),
        "no self-check ran"
    );
}

#[tokio::test]
async fn a_refused_reload_shows_its_exact_error() {
    let f = start(Options::default()).await;
    let page = f.admin.get("/configuration").await.expect("page").text();
    assert!(
        page.contains("The configuration in effect is the latest one read."),
        "{page}"
    );
    let error =
        "listener.yaml: BrokerListener default: ports[0].port: 70000 is not a port <1..65535>";
    {
        let mut status = f.status.write();
        status.reload_failures = 1;
        status.last_reload_error = Some(error.to_string());
    }
    let page = f.admin.get("/configuration").await.expect("page").text();
    assert!(page.contains("0 applied, 1 refused since start."), "{page}");
    assert!(
        page.contains(
            "<pre class=\"error\" id=\"reload-error\">listener.yaml: BrokerListener default: ports[0].port: 70000 is not a port &lt;1..65535&gt;</pre>"
        ),
        "{page}"
    );
}
