//! TokenReview against testkit's fake API server, with a broker serving the port in process and
//! the real mosquitto_pub connecting with `K8S-SAT`: allowed with the ServiceAccount's
//! annotations as the attributes an authorization rule decides on; refused for an unknown token,
//! a token of another audience, and (0x88, quickly) when the API server does not answer.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_server::Supervisor;
use wardgate_server::plan::{Plan, ServeOptions};
use wardgate_testkit::kube::{FakeKube, ServiceAccountToken};
use wardgate_testkit::process::{free_port, mosquitto_pub, run};
use wardgate_testkit::resources;

use wardgate_security::authn::TokenError;

use super::TokenReviewVerifier;

pub(crate) const NS: &str = "azure-iot-operations";

/// A kube-rs client configured from the fake's kubeconfig, as a user's would be.
pub(crate) async fn client(fake: &FakeKube) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(fake.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// A fake API server with the namespace [`NS`], and a client of it.
pub(crate) async fn fake_with_namespace() -> (FakeKube, kube::Client) {
    let fake = FakeKube::start().await;
    let client = client(&fake).await;
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NS.to_owned());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
    (fake, client)
}

/// A JWT-shaped token (the fake does not check signatures) expiring in an hour, unique.
fn token(name: &str) -> String {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let jti = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b64(r#"{"alg":"RS256"}"#),
        b64(&format!(
            r#"{{"sub":"system:serviceaccount:{NS}:{name}","exp":{exp},"jti":"{jti}"}}"#
        ))
    )
}

const BY_GROUP: &str = "  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - group: sensors
      brokerResources:
      - method: Connect
      - method: Publish
        topics: [\"sensors/#\"]
";

/// A broker serving `port` with ServiceAccountToken (audience `aio-internal`) and the
/// attribute rule [`BY_GROUP`], verifying tokens with `verifier`; stops with the guard.
fn serve(port: u16, verifier: TokenReviewVerifier) -> tokio_util::sync::DropGuard {
    let yaml = [
        resources::listener(&resources::authenticated_port(
            port,
            "default",
            Some("by-group"),
        )),
        resources::authentication(
            "default",
            "  - method: ServiceAccountToken\n    serviceAccountTokenSettings:\n      audiences: [aio-internal]\n",
        ),
        resources::resource("BrokerAuthorization", "by-group", BY_GROUP),
    ]
    .join("---\n");
    let model = wardgate_config::load_str("config.yaml", &yaml)
        .expect("valid configuration")
        .model;
    let options = ServeOptions {
        token_verifier: Some(Arc::new(verifier)),
        ..ServeOptions::default()
    };
    let shutdown = CancellationToken::new();
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let mut supervisor = Supervisor::new(broker, shutdown.clone());
    supervisor.apply(Plan::from_model(model, &options));
    shutdown.drop_guard()
}

/// `mosquitto_pub -d` with `K8S-SAT` `token`, publishing QoS 1 to `topic`: its output.
async fn publish(port: u16, token: &str, topic: &str) -> String {
    let args: Vec<String> = [
        "-V",
        "mqttv5",
        "-d",
        "-p",
        &port.to_string(),
        "-i",
        "sat-client",
        "-D",
        "CONNECT",
        "authentication-method",
        "K8S-SAT",
        "-D",
        "CONNECT",
        "authentication-data",
        token,
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        "hello",
    ]
    .map(str::to_owned)
    .to_vec();
    tokio::task::spawn_blocking(move || {
        let out = run(
            Command::new(mosquitto_pub().expect("mosquitto_pub")).args(&args),
            Duration::from_secs(30),
        )
        .expect("mosquitto_pub runs");
        out.to_string()
    })
    .await
    .expect("join")
}

async fn create_account(client: &kube::Client, name: &str, annotations: &[(&str, &str)]) {
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(name.to_owned());
    account.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &account)
        .await
        .expect("create the ServiceAccount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenreview_allows_with_the_annotations_as_attributes_and_refuses_bad_tokens() {
    let (fake, client) = fake_with_namespace().await;
    create_account(&client, "sensor", &[("aio-broker-auth/group", "sensors")]).await;
    create_account(&client, "plain", &[("team", "sensors")]).await;
    let register = |name: &str, audience: &str| {
        let token = token(name);
        fake.add_token(ServiceAccountToken {
            token: token.clone(),
            namespace: NS.to_owned(),
            name: name.to_owned(),
            audiences: vec![audience.to_owned()],
        });
        token
    };
    let sensor = register("sensor", "aio-internal");
    let plain = register("plain", "aio-internal");
    let other_audience = register("sensor", "https://kubernetes.default.svc");

    let port = free_port().expect("port");
    let _broker = serve(port, TokenReviewVerifier::new(client));

    let allowed = publish(port, &sensor, "sensors/t").await;
    assert!(allowed.contains("received CONNACK (0)"), "{allowed}");
    assert!(
        allowed.contains("received PUBACK (Mid: 1, RC:16)"),
        "the rule's topic, allowed (no subscribers): {allowed}"
    );
    let denied_topic = publish(port, &sensor, "other/t").await;
    assert!(
        denied_topic.contains("received PUBACK (Mid: 1, RC:135)"),
        "not the rule's topic: {denied_topic}"
    );
    for (case, token) in [
        ("no aio-broker-auth/ attribute", plain.as_str()),
        ("another audience", other_audience.as_str()),
        ("a token the API server does not know", &token("sensor")),
        ("not a JWT", "garbage"),
    ] {
        let out = publish(port, token, "sensors/t").await;
        assert!(out.contains("received CONNACK (135)"), "{case}: {out}");
    }
    let reviews = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /apis/authentication.k8s.io/v1/tokenreviews"))
        .count();
    assert_eq!(reviews, 6, "one TokenReview per connection");
    let account_reads = fake
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with(&format!(
                "GET /api/v1/namespaces/{NS}/serviceaccounts/sensor"
            ))
        })
        .count();
    assert_eq!(account_reads, 1, "the ServiceAccount is cached");
}

/// An API server that accepts connections and never answers: the client is refused with 0x88
/// after the review's timeout, not left hanging until its connect timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_api_server_refuses_with_server_unavailable_after_the_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let config = kube::Config::new(url.parse().expect("URL"));
    let client = kube::Client::try_from(config).expect("client");
    let port = free_port().expect("port");
    let _broker = serve(
        port,
        TokenReviewVerifier::new(client).with_timeout(Duration::from_secs(1)),
    );
    let started = std::time::Instant::now();
    let out = publish(port, &token("sensor"), "sensors/t").await;
    assert!(out.contains("received CONNACK (136)"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused after the review's timeout: {:?}",
        started.elapsed()
    );
    held.abort();
}

/// An API server that ignores `spec.audiences` answers with no `status.audiences`: the token
/// was then checked for the API server's own audience, not ours, and is refused.
#[test]
fn a_review_without_our_audience_is_refused() {
    use k8s_openapi::api::authentication::v1::{TokenReviewStatus, UserInfo};
    let status = |audiences: Option<Vec<String>>| TokenReviewStatus {
        authenticated: Some(true),
        audiences,
        user: Some(UserInfo {
            username: Some(format!("system:serviceaccount:{NS}:sensor")),
            ..UserInfo::default()
        }),
        ..TokenReviewStatus::default()
    };
    let ours = ["aio-internal".to_owned()];
    assert_eq!(
        super::reviewed_account(status(Some(ours.to_vec())), &ours),
        Ok((NS.to_owned(), "sensor".to_owned()))
    );
    for audiences in [
        None,
        Some(vec!["https://kubernetes.default.svc".to_owned()]),
    ] {
        let refused = super::reviewed_account(status(audiences.clone()), &ours);
        assert!(
            matches!(&refused, Err(TokenError::Invalid(why)) if why.contains("audience")),
            "{audiences:?}: {refused:?}"
        );
    }
    let mut user = status(Some(ours.to_vec()));
    user.user = Some(UserInfo {
        username: Some("jane".to_owned()),
        ..UserInfo::default()
    });
    assert!(matches!(
        super::reviewed_account(user, &ours),
        Err(TokenError::Invalid(_))
    ));
}
