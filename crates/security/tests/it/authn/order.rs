//! Method order (SPEC.md §7.1): SAT, then X509, then Custom, then UsernamePassword; the first
//! relevant method decides, an unreachable Custom server falls through, a reachable one does
//! not, and a client relevant to none is denied.

use wardgate_protocol::ReasonCode;
use wardgate_security::authn::{AuthMethodKind, Authenticator, AuthnOutcome, ConnectRequest};

use super::common::*;
use super::custom::{AuthServer, custom_docs};

/// SAT (no JWKS: any token is refused), X509, Custom at `endpoint`, UsernamePassword (dave /
/// dave-pw).
fn model(endpoint: &str, ca_pem: &str, f: &Fabrikam) -> wardgate_config::Model {
    let dave = wardgate_security::authn::password::PasswordHash::create(b"dave-pw", 1000)
        .unwrap()
        .to_string();
    let mut docs = custom_docs(
        endpoint,
        ca_pem,
        None,
        r#"  - method: UsernamePassword
    usernamePasswordSettings: {secretRef: passwords}
"#,
    );
    // Put SAT and X509 in front of Custom.
    docs[0] = docs[0].replace(
        "  authenticationMethods:\n",
        "  authenticationMethods:\n  - method: ServiceAccountToken\n    serviceAccountTokenSettings: {audiences: [aio-internal]}\n  - method: X509\n    x509Settings: {trustedClientCaCert: fabrikam-ca}\n",
    );
    docs.push(secret(
        "passwords",
        "passwords.toml",
        &format!("[dave]\npassword = \"{dave}\"\n"),
    ));
    docs.push(config_map("fabrikam-ca", "ca.crt", &f.root.pem()));
    load(&docs)
}

async fn method_of(
    a: &Authenticator,
    req: &ConnectRequest<'_>,
) -> Result<AuthMethodKind, (ReasonCode, String)> {
    match a.connect(req).await {
        AuthnOutcome::Allowed(id) => Ok(id.method()),
        AuthnOutcome::Denied { reason, why } => Err((reason, why)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn first_relevant_method_decides() {
    let f = Fabrikam::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let a = Authenticator::new(&model(&down, &f.root.pem(), &f), "custom").unwrap();
    assert_eq!(
        a.methods(),
        [
            AuthMethodKind::ServiceAccountToken,
            AuthMethodKind::X509,
            AuthMethodKind::Custom,
            AuthMethodKind::UsernamePassword
        ]
    );

    // K8S-SAT is relevant first: its (unverifiable) token decides, even with a certificate.
    let (r, why) = method_of(
        &a,
        &ConnectRequest {
            auth_method: Some("K8S-SAT"),
            auth_data: Some(b"x.y.z"),
            client_chain: f.chain("thermostat"),
            ..connect("c")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(r, ReasonCode::NOT_AUTHORIZED);
    assert!(why.starts_with("ServiceAccountToken"), "{why}");

    // A certificate and a username: X509 comes before UsernamePassword.
    let with_cert = ConnectRequest {
        username: Some("dave"),
        password: Some(b"wrong"),
        client_chain: f.chain("thermostat"),
        ..connect("c")
    };
    assert_eq!(method_of(&a, &with_cert).await, Ok(AuthMethodKind::X509));

    // Only a username: the Custom server is down (not relevant), UsernamePassword decides.
    assert_eq!(
        method_of(
            &a,
            &ConnectRequest {
                username: Some("dave"),
                password: Some(b"dave-pw"),
                ..connect("c")
            }
        )
        .await,
        Ok(AuthMethodKind::UsernamePassword)
    );
    assert_eq!(a.stats().custom_unavailable, 1);

    // Relevant to none: denied, and the message says why for each method.
    let (r, why) = method_of(&a, &connect("c")).await.unwrap_err();
    assert_eq!(r, ReasonCode::NOT_AUTHORIZED);
    for want in [
        "K8S-SAT",
        "no client certificate",
        "unreachable",
        "no username",
    ] {
        assert!(why.contains(want), "{want}: {why}");
    }
}

#[tokio::test]
async fn a_reachable_custom_server_does_not_defer() {
    let f = Fabrikam::new();
    let server = AuthServer::start(&[]);
    let a = Authenticator::new(
        &model(
            &format!("https://127.0.0.1:{}", server.port),
            &server.ca_pem,
            &f,
        ),
        "custom",
    )
    .unwrap();
    // dave is only in the UsernamePassword file; the Custom server refuses him first.
    let (r, why) = method_of(
        &a,
        &ConnectRequest {
            username: Some("dave"),
            password: Some(b"dave-pw"),
            ..connect("c")
        },
    )
    .await
    .unwrap_err();
    assert_eq!(r, ReasonCode::BAD_USERNAME_OR_PASSWORD);
    assert!(why.starts_with("Custom"), "{why}");
    // The server's own users pass through it.
    assert_eq!(
        method_of(
            &a,
            &ConnectRequest {
                username: Some("alice"),
                password: Some(b"alice-pw"),
                ..connect("c")
            }
        )
        .await,
        Ok(AuthMethodKind::Custom)
    );
}

/// The server shares one Authenticator/Authorizer per resource between connection tasks and
/// awaits `connect`/`auth` inside `tokio::spawn`ed tasks.
#[test]
fn engines_are_shareable_and_their_futures_are_send() {
    fn shareable<T: Send + Sync + 'static>() {}
    fn send<T: Send>(_: &T) {}
    shareable::<Authenticator>();
    shareable::<wardgate_security::authz::Authorizer>();
    shareable::<wardgate_security::authn::Identity>();
    let f = Fabrikam::new();
    let a = Authenticator::new(&model("https://127.0.0.1:9", &f.root.pem(), &f), "custom").unwrap();
    let req = connect("c");
    let fut = a.connect(&req);
    send(&fut);
    let auth = wardgate_security::authn::AuthRequest {
        client_id: "c",
        username: None,
        auth_method: "K8S-SAT",
        auth_data: None,
        reason: ReasonCode::REAUTHENTICATE,
        current: None,
        client_chain: &[],
        peer: peer(),
        port: 1,
    };
    send(&a.auth(&auth));
}
