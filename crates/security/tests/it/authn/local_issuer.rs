//! ServiceAccountToken on a box without Kubernetes: tokens of the local issuer (the key in the
//! data dir that `wardgate token create` signs with) verified by the default verifier, their
//! claims and signature checked here with aws-lc-rs directly, and attributes from a
//! ServiceAccount in the configuration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::Value;
use wardgate_protocol::ReasonCode;
use wardgate_security::authn::local_issuer::{LOCAL_ISSUER, LocalIssuer, TokenRequest};
use wardgate_security::authn::{Authenticator, AuthnOutcome, ConnectRequest, K8S_SAT};

use super::common::*;

const DEFAULT_AUTHN: &str = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: default}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [aio-internal]
"#;

const SENSOR: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: sensor
  namespace: azure-iot-operations
  annotations:
    aio-broker-auth/group: sensors
"#;

fn request(namespace: &str, name: &str, audience: &str) -> TokenRequest {
    TokenRequest {
        namespace: namespace.to_owned(),
        service_account: name.to_owned(),
        audiences: vec![audience.to_owned()],
        lifetime: Duration::from_secs(3600),
    }
}

fn authenticator(model: &wardgate_config::Model, issuer: &LocalIssuer) -> Authenticator {
    let mut a = Authenticator::new(model, "default").unwrap();
    a.set_default_token_verifier(Arc::new(issuer.verifier().unwrap()));
    a
}

fn sat<'a>(token: &'a str) -> ConnectRequest<'a> {
    ConnectRequest {
        auth_method: Some(K8S_SAT),
        auth_data: Some(token.as_bytes()),
        ..connect("pod-1")
    }
}

fn part(token: &str, i: usize) -> Value {
    let bytes = B64URL.decode(token.split('.').nth(i).unwrap()).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn tokens_are_projected_token_shaped_es256_jwts() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::open_or_create(dir.path()).unwrap();
    let now = SystemTime::now();
    let token = issuer
        .issue(
            &request("azure-iot-operations", "sensor", "aio-internal"),
            now,
        )
        .unwrap();
    let header = part(&token, 0);
    let claims = part(&token, 1);
    assert_eq!(header["alg"], "ES256");
    let jwk: Value = serde_json::from_str(issuer.public_jwk()).unwrap();
    assert_eq!(header["kid"], jwk["kid"]);
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:azure-iot-operations:sensor"
    );
    assert_eq!(claims["aud"], serde_json::json!(["aio-internal"]));
    assert_eq!(claims["iss"], LOCAL_ISSUER);
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600));
    assert_eq!(claims["kubernetes.io"]["namespace"], "azure-iot-operations");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "sensor");
    assert_eq!(claims["jti"].as_str().map(str::len), Some(36));

    // The signature verifies with the published public key, checked without the library.
    let mut point = vec![0x04];
    for c in ["x", "y"] {
        point.extend(B64URL.decode(jwk[c].as_str().unwrap()).unwrap());
    }
    let (input, signature) = token.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &B64URL.decode(signature).unwrap())
        .expect("an ES256 signature by the data dir's key");
}

#[tokio::test]
async fn the_default_authentication_accepts_local_tokens_with_the_service_account_s_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::open_or_create(dir.path()).unwrap();
    let model = load(&[DEFAULT_AUTHN.to_owned(), SENSOR.to_owned()]);
    let a = authenticator(&model, &issuer);
    let token = issuer
        .issue(
            &request("azure-iot-operations", "sensor", "aio-internal"),
            SystemTime::now(),
        )
        .unwrap();
    let AuthnOutcome::Allowed(id) = a.connect(&sat(&token)).await else {
        panic!("a local token of the right audience authenticates");
    };
    assert_eq!(
        id.username(),
        Some("system:serviceaccount:azure-iot-operations:sensor")
    );
    let expected: BTreeMap<String, String> = [("group".to_owned(), "sensors".to_owned())].into();
    assert_eq!(id.attributes(), &expected);

    // Another namespace's account of the same name is not that ServiceAccount.
    let token = issuer
        .issue(
            &request("default", "sensor", "aio-internal"),
            SystemTime::now(),
        )
        .unwrap();
    let AuthnOutcome::Allowed(id) = a.connect(&sat(&token)).await else {
        panic!("a local token of another namespace authenticates");
    };
    assert!(id.attributes().is_empty(), "{:?}", id.attributes());
}

async fn refusal(a: &Authenticator, token: &str) -> String {
    match a.connect(&sat(token)).await {
        AuthnOutcome::Denied { reason, why } => {
            assert_eq!(reason, ReasonCode::NOT_AUTHORIZED, "{why}");
            why
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_audience_expired_and_foreign_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::open_or_create(dir.path()).unwrap();
    let a = authenticator(&load(&[DEFAULT_AUTHN.to_owned()]), &issuer);
    let now = SystemTime::now();

    let token = issuer.issue(&request("ns", "app", "api"), now).unwrap();
    let why = refusal(&a, &token).await;
    assert!(why.contains("audience is not one of aio-internal"), "{why}");

    let an_hour_ago = now - Duration::from_secs(3601);
    let token = issuer
        .issue(&request("ns", "app", "aio-internal"), an_hour_ago)
        .unwrap();
    let why = refusal(&a, &token).await;
    assert!(why.contains("expired"), "{why}");

    let other_dir = tempfile::tempdir().unwrap();
    let other = LocalIssuer::open_or_create(other_dir.path()).unwrap();
    let token = other
        .issue(&request("ns", "app", "aio-internal"), now)
        .unwrap();
    let why = refusal(&a, &token).await;
    assert!(
        why.contains("no key in the local token issuer key"),
        "{why}"
    );
}

#[tokio::test]
async fn a_method_s_own_jwks_is_not_replaced_by_the_local_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::open_or_create(dir.path()).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let cluster = LocalIssuer::open_or_create(other_dir.path()).unwrap();
    let jwks = format!(r#"{{"keys":[{}]}}"#, cluster.public_jwk());
    let model = load(&[
        DEFAULT_AUTHN.replace(
            "audiences: [aio-internal]",
            "audiences: [aio-internal]\n      issuerKeysConfigMap: cluster-jwks",
        ),
        config_map("cluster-jwks", "jwks.json", &jwks),
    ]);
    let a = authenticator(&model, &issuer);
    let request = request("ns", "app", "aio-internal");
    let local = issuer.issue(&request, SystemTime::now()).unwrap();
    refusal(&a, &local).await;
    let from_cluster = cluster.issue(&request, SystemTime::now()).unwrap();
    assert!(matches!(
        a.connect(&sat(&from_cluster)).await,
        AuthnOutcome::Allowed(_)
    ));
}

#[test]
fn requests_without_audience_or_duration_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::open_or_create(dir.path()).unwrap();
    let mut r = request("ns", "app", "aio-internal");
    r.audiences.clear();
    let e = issuer.issue(&r, SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("at least one audience"), "{e}");
    let mut r = request("ns", "app", "aio-internal");
    r.lifetime = Duration::ZERO;
    let e = issuer.issue(&r, SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("duration must be positive"), "{e}");
}

#[test]
fn explain_assumes_a_local_token_and_takes_the_service_account_s_attributes() {
    use wardgate_security::authz::{ExplainAction, ExplainQuery, explain};
    let listener = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: default}
spec:
  serviceType: ClusterIp
  ports:
  - port: 18883
    authenticationRef: default
    authorizationRef: by-group
"#;
    let authz = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: by-group}
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes: [{group: sensors}]
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["sensors/#"]
"#;
    let model = load(&[
        DEFAULT_AUTHN.to_owned(),
        SENSOR.to_owned(),
        listener.to_owned(),
        authz.to_owned(),
    ]);
    let query = |sub: &str| ExplainQuery {
        client_id: "pod-1".to_owned(),
        username: Some(sub.to_owned()),
        auth_method: Some(K8S_SAT.to_owned()),
        client_chain: Vec::new(),
        attributes: BTreeMap::new(),
        port: Some(18883),
        action: ExplainAction::Publish("sensors/t".into()),
    };
    let e = explain(
        &model,
        &query("system:serviceaccount:azure-iot-operations:sensor"),
    );
    let text = e.to_string();
    assert!(e.allowed(), "{text}");
    for want in [
        "the data dir's local token issuer",
        "attributes from ServiceAccount/sensor: group=sensors",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let e = explain(&model, &query("system:serviceaccount:default:sensor"));
    assert!(!e.allowed(), "{e}");
    assert!(
        e.to_string()
            .contains("no ServiceAccount of the configuration"),
        "{e}"
    );
}
