//! ServiceAccountToken outside Kubernetes: real JWTs, signed here with freshly generated RSA
//! (RS256) and P-256 (ES256) keys by aws-lc-rs directly (not by the library under test),
//! verified against a JWKS in a ConfigMap; expiry, audience, signature, method, continuation and
//! re-authentication.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::json;
use wardgate_protocol::ReasonCode;
use wardgate_security::authn::{
    AuthMethodKind, AuthRequest, Authenticator, AuthnOutcome, ConnectRequest, Identity, K8S_SAT,
};

use super::common::*;

/// A signing key with its JWK.
enum Signer {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(signature::EcdsaKeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    fn rsa(kid: &str) -> Key {
        Key {
            kid: kid.to_owned(),
            signer: Signer::Rsa(
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap(),
            ),
        }
    }

    fn ec(kid: &str) -> Key {
        Key {
            kid: kid.to_owned(),
            signer: Signer::Ec(
                signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .unwrap(),
            ),
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
        }
    }

    fn jwk(&self) -> serde_json::Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let p = k.public_key();
                json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                    "n": B64URL.encode(p.modulus().big_endian_without_leading_zero()),
                    "e": B64URL.encode(p.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({
                    "kty": "EC", "use": "sig", "crv": "P-256", "kid": self.kid,
                    "x": B64URL.encode(&point[1..33]),
                    "y": B64URL.encode(&point[33..65]),
                })
            }
        }
    }

    /// Signs `claims` with a header naming `alg` and `kid` (as given, to test mismatches).
    fn sign_as(&self, alg: &str, kid: &str, claims: &serde_json::Value) -> String {
        let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ec(k) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", B64URL.encode(sig))
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_as(self.alg(), &self.kid, claims)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const SUB: &str = "system:serviceaccount:azure-iot-operations:my-app";

fn claims(aud: &str, exp_in: i64) -> serde_json::Value {
    json!({
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": SUB,
        "aud": [aud],
        "exp": (now() as i64 + exp_in),
        "iat": now() - 10,
        "nbf": now() - 10,
        "kubernetes.io": {"namespace": "azure-iot-operations", "serviceaccount": {"name": "my-app"}},
    })
}

fn model(keys: &[&Key]) -> wardgate_config::Model {
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    load(&[
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: sat}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [aio-internal, other]
      issuerKeysConfigMap: cluster-jwks
"#
        .to_owned(),
        config_map("cluster-jwks", "jwks.json", &jwks.to_string()),
    ])
}

fn sat_connect<'a>(token: &'a str) -> ConnectRequest<'a> {
    ConnectRequest {
        username: Some("claims-to-be-heater"),
        auth_method: Some(K8S_SAT),
        auth_data: Some(token.as_bytes()),
        ..connect("pod-1")
    }
}

async fn denied(a: &Authenticator, token: &str) -> (ReasonCode, String) {
    match a.connect(&sat_connect(token)).await {
        AuthnOutcome::Denied { reason, why } => (reason, why),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn rs256_and_es256_tokens_authenticate() {
    let rsa = Key::rsa("rsa-1");
    let ec = Key::ec("ec-1");
    let a = Authenticator::new(&model(&[&rsa, &ec]), "sat").unwrap();
    for key in [&rsa, &ec] {
        let token = key.sign(&claims("aio-internal", 3600));
        let AuthnOutcome::Allowed(id) = a.connect(&sat_connect(&token)).await else {
            panic!("{} token", key.alg())
        };
        assert_eq!(id.method(), AuthMethodKind::ServiceAccountToken);
        assert_eq!(
            id.username(),
            Some(SUB),
            "the verified sub, not the CONNECT username"
        );
        assert!(id.attributes().is_empty());
        let exp = id.expires_at().unwrap();
        assert!(exp > SystemTime::now() + Duration::from_secs(3500));
        assert_eq!(id.enhanced_method(), Some(K8S_SAT));
    }
    // The second audience works too; a kid-less token is tried against every fitting key.
    let token = ec.sign_as("ES256", "", &claims("other", 60));
    let token = {
        // Drop the kid from the header by re-signing with a header without it.
        let header = json!({"alg": "ES256", "typ": "JWT"});
        let body = token.split('.').nth(1).unwrap();
        let input = format!("{}.{body}", B64URL.encode(header.to_string()));
        let Signer::Ec(k) = &ec.signer else {
            unreachable!()
        };
        let sig = k.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64URL.encode(sig.as_ref()))
    };
    assert!(matches!(
        a.connect(&sat_connect(&token)).await,
        AuthnOutcome::Allowed(_)
    ));
}

#[tokio::test]
async fn invalid_tokens_are_not_authorized() {
    let rsa = Key::rsa("rsa-1");
    let a = Authenticator::new(&model(&[&rsa]), "sat").unwrap();
    let impostor = Key::rsa("rsa-1");

    let (r, why) = denied(&a, &rsa.sign(&claims("aio-internal", -5))).await;
    assert_eq!(r, ReasonCode::NOT_AUTHORIZED);
    assert!(why.contains("expired"), "{why}");

    let (_, why) = denied(&a, &rsa.sign(&claims("someone-else", 3600))).await;
    assert!(why.contains("audience"), "{why}");

    let (_, why) = denied(&a, &impostor.sign(&claims("aio-internal", 3600))).await;
    assert!(why.contains("signature"), "{why}");

    let mut c = claims("aio-internal", 3600);
    c["nbf"] = json!(now() + 3600);
    let (_, why) = denied(&a, &rsa.sign(&c)).await;
    assert!(why.contains("not valid yet"), "{why}");

    let mut c = claims("aio-internal", 3600);
    c.as_object_mut().unwrap().remove("exp");
    let (_, why) = denied(&a, &rsa.sign(&c)).await;
    assert!(why.contains("exp"), "{why}");

    // Algorithm confusion: an HS256 or `none` header is never accepted.
    let body = rsa.sign(&claims("aio-internal", 3600));
    let parts: Vec<&str> = body.split('.').collect();
    for alg in ["HS256", "none"] {
        let header = B64URL.encode(json!({"alg": alg, "kid": "rsa-1"}).to_string());
        let forged = format!("{header}.{}.{}", parts[1], parts[2]);
        let (_, why) = denied(&a, &forged).await;
        assert!(why.contains("not") || why.contains("JWT"), "{alg}: {why}");
    }
    // An unknown kid.
    let (_, why) = denied(
        &a,
        &rsa.sign_as("RS256", "other-kid", &claims("aio-internal", 60)),
    )
    .await;
    assert!(why.contains("no key"), "{why}");
    // Not a JWT at all.
    let (_, why) = denied(&a, "hello").await;
    assert!(why.contains("not a JWT"), "{why}");
    assert_eq!(a.stats().denied, 9);
}

#[tokio::test]
async fn method_names_and_continuation() {
    let ec = Key::ec("ec-1");
    let a = Authenticator::new(&model(&[&ec]), "sat").unwrap();
    // A method this authentication does not offer: 0x8C.
    let AuthnOutcome::Denied { reason, why } = a
        .connect(&ConnectRequest {
            auth_method: Some("SCRAM-SHA-1"),
            ..connect("c")
        })
        .await
    else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert!(why.contains("K8S-SAT"), "{why}");

    // K8S-SAT without data: the server asks for it (AUTH 0x18), the client answers with AUTH.
    let AuthnOutcome::Continue { method, data } = a
        .connect(&ConnectRequest {
            auth_method: Some(K8S_SAT),
            ..connect("c")
        })
        .await
    else {
        panic!("continue")
    };
    assert_eq!((method.as_str(), data), (K8S_SAT, None));
    let token = ec.sign(&claims("aio-internal", 600));
    let AuthnOutcome::Allowed(id) = a
        .auth(&AuthRequest {
            client_id: "c",
            username: None,
            auth_method: K8S_SAT,
            auth_data: Some(token.as_bytes()),
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            current: None,
            client_chain: &[],
            peer: peer(),
            port: 8883,
        })
        .await
    else {
        panic!("allowed after AUTH")
    };
    assert_eq!(id.username(), Some(SUB));

    // No K8S-SAT at all (a v3.1.1 client with a password): not relevant, denied.
    let AuthnOutcome::Denied { reason, .. } = a
        .connect(&ConnectRequest {
            username: Some("$sat"),
            password: Some(token.as_bytes()),
            protocol_v5: false,
            ..connect("c")
        })
        .await
    else {
        panic!("denied")
    };
    assert_eq!(reason.to_v311_connack(), 4);
}

fn reauth<'a>(current: &'a Identity, method: &'a str, token: &'a str) -> AuthRequest<'a> {
    AuthRequest {
        client_id: "pod-1",
        username: None,
        auth_method: method,
        auth_data: Some(token.as_bytes()),
        reason: ReasonCode::REAUTHENTICATE,
        current: Some(current),
        client_chain: &[],
        peer: peer(),
        port: 8883,
    }
}

#[tokio::test]
async fn reauthentication_renews_the_expiry() {
    let rsa = Key::rsa("rsa-1");
    let a = Authenticator::new(&model(&[&rsa]), "sat").unwrap();
    let first = rsa.sign(&claims("aio-internal", 60));
    let AuthnOutcome::Allowed(id) = a.connect(&sat_connect(&first)).await else {
        panic!("allowed")
    };
    let renewed = rsa.sign(&claims("aio-internal", 7200));
    let AuthnOutcome::Allowed(new) = a.auth(&reauth(&id, K8S_SAT, &renewed)).await else {
        panic!("re-authenticated")
    };
    assert!(new.expires_at().unwrap() > id.expires_at().unwrap() + Duration::from_secs(3600));
    assert_eq!(new.username(), id.username());

    // Another method name: 0x8C.
    let AuthnOutcome::Denied { reason, .. } = a.auth(&reauth(&id, "OTHER", &renewed)).await else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::BAD_AUTHENTICATION_METHOD);
    // An expired token: denied (the server disconnects).
    let expired = rsa.sign(&claims("aio-internal", -1));
    assert!(matches!(
        a.auth(&reauth(&id, K8S_SAT, &expired)).await,
        AuthnOutcome::Denied { .. }
    ));
    // A token of another service account: the identity must not change.
    let mut c = claims("aio-internal", 600);
    c["sub"] = json!("system:serviceaccount:default:intruder");
    let other = rsa.sign(&c);
    let AuthnOutcome::Denied { why, .. } = a.auth(&reauth(&id, K8S_SAT, &other)).await else {
        panic!("denied")
    };
    assert!(why.contains("must not change"), "{why}");
}

#[tokio::test]
async fn without_a_jwks_tokens_cannot_be_verified() {
    let model = load(&[r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: sat}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [aio-internal]
"#
    .to_owned()]);
    let a = Authenticator::new(&model, "sat").unwrap();
    let (r, why) = denied(&a, "a.b.c").await;
    assert_eq!(r, ReasonCode::NOT_AUTHORIZED);
    assert!(why.contains("issuerKeysConfigMap"), "{why}");
    assert!(
        !format!("{:?}", sat_connect("secret.token.value")).contains("secret.token"),
        "tokens are redacted in Debug"
    );
}

#[test]
fn a_jwks_without_usable_keys_is_an_error() {
    let e = Authenticator::new(
        &load(&[
            r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: sat}
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [aio-internal]
      issuerKeysConfigMap: cluster-jwks
"#
            .to_owned(),
            config_map(
                "cluster-jwks",
                "jwks.json",
                r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
            ),
        ]),
        "sat",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no usable public key"), "{e}");
}
