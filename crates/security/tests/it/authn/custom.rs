//! Custom: real HTTPS to `examples/custom-auth-server` (Python, started per test on a free
//! loopback port) with the 0.5.0 contract: pass with attributes and expiry, 403 reasons, 422
//! retry, headers, the broker's client certificate, enhanced authentication and
//! re-authentication, and an unreachable or slow server counting as not relevant.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use wardgate_protocol::ReasonCode;
use wardgate_security::authn::password::PasswordHash;
use wardgate_security::authn::{
    AuthMethodKind, AuthRequest, Authenticator, AuthnOutcome, ConnectRequest, Identity,
};

use super::common::*;

/// The example server's enhanced-authentication method (data `user:password`).
pub(crate) const USERPASS: &str = "WG-USERPASS";

/// The example server, killed when dropped.
pub(crate) struct AuthServer {
    child: Child,
    pub(crate) port: u16,
    pub(crate) ca_pem: String,
    pub(crate) client_ca: TestCa,
    _dir: tempfile::TempDir,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/custom-auth-server/server.py")
}

/// Users: alice (floor=1, expires in an hour), carol (no expiry), bob (refused with 0x8A);
/// passwords `<name>-pw`.
pub(crate) fn users_toml() -> String {
    let h = |pw: &str| {
        PasswordHash::create(pw.as_bytes(), 1000)
            .unwrap()
            .to_string()
    };
    format!(
        "[alice]\npassword = \"{}\"\nexpiry_seconds = 3600\n[alice.attributes]\nfloor = \"1\"\n\n\
         [carol]\npassword = \"{}\"\n\n\
         [bob]\npassword = \"{}\"\ndeny_reason = 138\n",
        h("alice-pw"),
        h("carol-pw"),
        h("bob-pw")
    )
}

impl AuthServer {
    pub(crate) fn start(extra: &[&str]) -> AuthServer {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Auth Server Test CA");
        ca.issue_server(&wardgate_testkit::pki::LOCALHOST)
            .write(dir.path(), "server", &[]);
        let client_ca = TestCa::new("Broker Client CA");
        std::fs::write(dir.path().join("client-ca.crt"), client_ca.pem()).unwrap();
        std::fs::write(dir.path().join("users.toml"), users_toml()).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(example())
            .arg("--users")
            .arg(dir.path().join("users.toml"))
            .arg("--cert")
            .arg(dir.path().join("server.crt"))
            .arg("--key")
            .arg(dir.path().join("server.key"))
            .args(["--port", "0", "--require-header", "x-wardgate-test=yes"]);
        for a in extra {
            if *a == "--client-ca" {
                cmd.arg(a).arg(dir.path().join("client-ca.crt"));
            } else {
                cmd.arg(a);
            }
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the example custom authentication server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the server did not start: {line:?}"));
        AuthServer {
            child,
            port,
            ca_pem: ca.pem(),
            client_ca,
            _dir: dir,
        }
    }
}

/// A BrokerAuthentication `custom` with the Custom method first, then `rest` (YAML list items).
pub(crate) fn custom_docs(
    endpoint: &str,
    ca_pem: &str,
    client_cert: Option<&str>,
    rest: &str,
) -> Vec<String> {
    let auth = client_cert
        .map(|s| format!("\n      auth: {{x509: {{secretRef: {s}}}}}"))
        .unwrap_or_default();
    vec![
        format!(
            r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {{name: custom}}
spec:
  authenticationMethods:
  - method: Custom
    customSettings:
      endpoint: {endpoint}
      caCertConfigMap: auth-server-ca
      headers: {{x-wardgate-test: "yes"}}{auth}
{rest}"#
        ),
        config_map("auth-server-ca", "ca.crt", ca_pem),
    ]
}

fn authn(server: &AuthServer) -> Authenticator {
    let model = load(&custom_docs(
        &format!("https://127.0.0.1:{}", server.port),
        &server.ca_pem,
        None,
        "",
    ));
    Authenticator::new(&model, "custom").unwrap()
}

fn login<'a>(user: &'a str, pw: &'a str) -> ConnectRequest<'a> {
    ConnectRequest {
        username: Some(user),
        password: Some(pw.as_bytes()),
        ..connect("dev")
    }
}

async fn denial(a: &Authenticator, req: &ConnectRequest<'_>) -> (ReasonCode, String) {
    match a.connect(req).await {
        AuthnOutcome::Denied { reason, why } => (reason, why),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn passes_and_fails_as_the_server_says() {
    let server = AuthServer::start(&[]);
    let a = authn(&server);
    let AuthnOutcome::Allowed(id) = a.connect(&login("alice", "alice-pw")).await else {
        panic!("alice passes")
    };
    assert_eq!(id.method(), AuthMethodKind::Custom);
    assert_eq!(id.username(), Some("alice"));
    assert_eq!(id.attributes()["floor"], "1");
    let exp = id.expires_at().expect("the server's expiry");
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    assert!(exp <= in_an_hour && exp > in_an_hour - Duration::from_secs(120));

    let AuthnOutcome::Allowed(id) = a.connect(&login("carol", "carol-pw")).await else {
        panic!("carol passes")
    };
    assert_eq!(id.expires_at(), None, "no expiry: never expires");

    // 403 with the server's reason code.
    let (r, why) = denial(&a, &login("alice", "wrong")).await;
    assert_eq!(r, ReasonCode::BAD_USERNAME_OR_PASSWORD, "{why}");
    assert!(why.contains("bad username or password"), "{why}");
    let (r, _) = denial(&a, &login("bob", "bob-pw")).await;
    assert_eq!(r, ReasonCode::BANNED);
    assert_eq!(r.to_v311_connack(), 5);
    // Custom is relevant to everyone: no credentials is the server's call (403, 0x87).
    let (r, _) = denial(&a, &connect("anon")).await;
    assert_eq!(r, ReasonCode::NOT_AUTHORIZED);
}

#[tokio::test]
async fn missing_configured_header_is_refused_by_the_server() {
    let server = AuthServer::start(&[]);
    let docs = custom_docs(
        &format!("https://127.0.0.1:{}", server.port),
        &server.ca_pem,
        None,
        "",
    );
    let docs = vec![
        docs[0].replace("x-wardgate-test: \"yes\"", "x-other: \"1\""),
        docs[1].clone(),
    ];
    let a = Authenticator::new(&load(&docs), "custom").unwrap();
    let (_, why) = denial(&a, &login("alice", "alice-pw")).await;
    assert!(why.contains("missing header"), "{why}");
}

#[tokio::test]
async fn a_422_is_retried_with_a_supported_version() {
    let server = AuthServer::start(&["--fail-first-422"]);
    let a = authn(&server);
    assert!(matches!(
        a.connect(&login("alice", "alice-pw")).await,
        AuthnOutcome::Allowed(_)
    ));
}

#[tokio::test]
async fn the_broker_presents_its_client_certificate() {
    let server = AuthServer::start(&["--client-ca"]);
    let leaf = server
        .client_ca
        .issue_client(&[(rcgen::DnType::CommonName, "wardgate-broker")]);
    let endpoint = format!("https://127.0.0.1:{}", server.port);
    let mut docs = custom_docs(&endpoint, &server.ca_pem, Some("broker-client-cert"), "");
    docs.push(format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: broker-client-cert}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: {}  tls.key: {}",
        block(&leaf.pem(), 4),
        block(&leaf.key_pem(), 4)
    ));
    let a = Authenticator::new(&load(&docs), "custom").unwrap();
    assert!(matches!(
        a.connect(&login("alice", "alice-pw")).await,
        AuthnOutcome::Allowed(_)
    ));
    // Without the client certificate the server refuses the handshake: unavailable, so not
    // relevant, and nothing else is configured.
    let a = Authenticator::new(
        &load(&custom_docs(&endpoint, &server.ca_pem, None, "")),
        "custom",
    )
    .unwrap();
    let (_, why) = denial(&a, &login("alice", "alice-pw")).await;
    assert!(
        why.contains("Custom:") && why.contains("no authentication method"),
        "{why}"
    );
    assert_eq!(a.stats().custom_unavailable, 1);
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_unavailable() {
    let server = AuthServer::start(&[]);
    let other_ca = TestCa::new("Someone Else");
    let a = Authenticator::new(
        &load(&custom_docs(
            &format!("https://127.0.0.1:{}", server.port),
            &other_ca.pem(),
            None,
            "",
        )),
        "custom",
    )
    .unwrap();
    let (_, why) = denial(&a, &login("alice", "alice-pw")).await;
    assert!(why.contains("unreachable"), "{why}");
}

fn auth_req<'a>(current: Option<&'a Identity>, data: &'a str) -> AuthRequest<'a> {
    AuthRequest {
        client_id: "dev",
        username: None,
        auth_method: USERPASS,
        auth_data: Some(data.as_bytes()),
        reason: if current.is_some() {
            ReasonCode::REAUTHENTICATE
        } else {
            ReasonCode::CONTINUE_AUTHENTICATION
        },
        current,
        client_chain: &[],
        peer: peer(),
        port: 8883,
    }
}

#[tokio::test]
async fn enhanced_authentication_and_reauthentication() {
    let server = AuthServer::start(&[]);
    let a = authn(&server);
    let AuthnOutcome::Allowed(id) = a
        .connect(&ConnectRequest {
            username: Some("alice"),
            auth_method: Some(USERPASS),
            auth_data: Some(b"alice:alice-pw"),
            ..connect("dev")
        })
        .await
    else {
        panic!("enhanced authentication passes")
    };
    assert_eq!(id.enhanced_method(), Some(USERPASS));
    assert_eq!(id.attributes()["floor"], "1");

    // AUTH 0x19 with the same method: a new expiry.
    let AuthnOutcome::Allowed(again) = a.auth(&auth_req(Some(&id), "alice:alice-pw")).await else {
        panic!("re-authenticated")
    };
    assert_eq!(again.attributes(), id.attributes());
    assert!(again.expires_at().is_some());
    // Wrong password on re-authentication: denied (DISCONNECT).
    let AuthnOutcome::Denied { reason, .. } = a.auth(&auth_req(Some(&id), "alice:nope")).await
    else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::BAD_USERNAME_OR_PASSWORD);
    // Another user's credentials change the identity: denied.
    let AuthnOutcome::Denied { why, .. } = a.auth(&auth_req(Some(&id), "carol:carol-pw")).await
    else {
        panic!("denied")
    };
    assert!(why.contains("must not change"), "{why}");

    // The server goes away: a transient failure, AUTH 0x18, the connection stays.
    drop(server);
    let AuthnOutcome::Continue { method, .. } =
        a.auth(&auth_req(Some(&id), "alice:alice-pw")).await
    else {
        panic!("continue")
    };
    assert_eq!(method, USERPASS);
}

#[tokio::test]
async fn an_unreachable_or_slow_server_is_not_relevant() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ca = TestCa::new("unused");
    let a = Authenticator::new(
        &load(&custom_docs(
            &format!("https://127.0.0.1:{port}"),
            &ca.pem(),
            None,
            "",
        )),
        "custom",
    )
    .unwrap();
    let (r, why) = denial(&a, &login("alice", "alice-pw")).await;
    assert_eq!(r, ReasonCode::BAD_USERNAME_OR_PASSWORD, "{why}");
    assert!(why.contains("unreachable"), "{why}");

    // A server slower than 5 s.
    let slow = AuthServer::start(&["--delay", "8"]);
    let a = authn(&slow);
    let started = Instant::now();
    let (_, why) = denial(&a, &login("alice", "alice-pw")).await;
    let took = started.elapsed();
    assert!(why.contains("did not answer within 5 s"), "{why}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "{took:?}"
    );
}
