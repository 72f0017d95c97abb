//! Service-account tokens (K8S-SAT): signed here, verified against a JWKS ConfigMap that is
//! rotated live, and re-authentication with AUTH before a token expires.

use super::*;

/// A JWT signing key: made by openssl, its JWK read back from openssl's output, the signature
/// computed here with aws-lc-rs from the key openssl wrote (not by the code under test).
pub(super) struct TokenKey {
    kid: String,
    signer: Signer,
    jwk: Value,
}

enum Signer {
    Rs256(aws_lc_rs::rsa::KeyPair),
    Es256(EcdsaKeyPair),
}

fn hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

impl TokenKey {
    /// An RSA 2048 (RS256) or P-256 (ES256) key in `dir`, named by `kid`.
    fn new(dir: &Path, kid: &str, rsa: bool) -> TokenKey {
        let pem = format!("{kid}.pem");
        let der = format!("{kid}.p8");
        let algorithm: &[&str] = if rsa {
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        } else {
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        };
        openssl(&[&["genpkey"], algorithm, &["-out", &pem]].concat(), dir);
        let to_der = [
            "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER", "-out", &der,
        ];
        openssl(&to_der, dir);
        let pkcs8 = std::fs::read(dir.join(&der)).expect("key");
        let (signer, jwk) = if rsa {
            let modulus = openssl(&["rsa", "-in", &pem, "-noout", "-modulus"], dir).stdout;
            let n = hex(modulus.trim().trim_start_matches("Modulus="));
            let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).expect("openssl's RSA key");
            // openssl's default public exponent is 65537 (AQAB).
            let jwk = json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                             "n": B64URL.encode(n), "e": "AQAB"});
            (Signer::Rs256(key), jwk)
        } else {
            let spki = format!("{kid}.pub");
            let to_pub = [
                "pkey", "-in", &pem, "-pubout", "-outform", "DER", "-out", &spki,
            ];
            openssl(&to_pub, dir);
            let spki = std::fs::read(dir.join(spki)).expect("public key");
            // A P-256 SubjectPublicKeyInfo ends with the uncompressed point 04 || x || y.
            let point = &spki[spki.len() - 65..];
            assert_eq!(point[0], 4, "uncompressed point");
            let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                .expect("openssl's P-256 key");
            let jwk = json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
                             "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..])});
            (Signer::Es256(key), jwk)
        };
        TokenKey {
            kid: kid.to_owned(),
            signer,
            jwk,
        }
    }

    /// A token for `aud` that expires `exp_in` seconds from now (negative: already expired).
    pub(super) fn token(&self, aud: &str, exp_in: i64) -> String {
        let t = now() as i64;
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local", "sub": SUB, "aud": [aud],
            "iat": t - 10, "nbf": t - 10, "exp": t + exp_in,
        });
        let alg = match self.signer {
            Signer::Rs256(_) => "RS256",
            Signer::Es256(_) => "ES256",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .expect("sign");
                sig
            }
            Signer::Es256(k) => k
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .into(),
        };
        format!("{input}.{}", B64URL.encode(sig))
    }
}

/// Keys RS256 `rsa-1` and ES256 `ec-1` in the ConfigMap `cluster-jwks` (made by `wardgate create
/// configmap` from a jwks.json), and `sat-auth`: ServiceAccountToken for audience `aio-internal`.
pub(super) fn sat_setup(node: &Node) -> (TokenKey, TokenKey) {
    let dir = node.root();
    let rsa = TokenKey::new(dir, "rsa-1", true);
    let ec = TokenKey::new(dir, "ec-1", false);
    write_jwks(node, &[&rsa, &ec]);
    node.write_config(
        "sat-auth.yaml",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: sat-auth\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n  - method: ServiceAccountToken\n    serviceAccountTokenSettings:\n      audiences: [aio-internal]\n      issuerKeysConfigMap: cluster-jwks\n",
    );
    (rsa, ec)
}

/// (Re)writes the ConfigMap `cluster-jwks` with the public keys of `keys`.
fn write_jwks(node: &Node, keys: &[&TokenKey]) {
    let jwks = json!({"keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>()});
    std::fs::write(node.root().join("jwks.json"), jwks.to_string()).expect("jwks");
    wardgate(
        &[
            "create",
            "configmap",
            "cluster-jwks",
            "--from-file=jwks.json=jwks.json",
            "-o",
            "config",
        ],
        node.root(),
    );
}

#[test]
fn service_account_tokens_are_verified_against_the_jwks_config_map() {
    let mut node = Node::empty();
    let (rsa, ec) = sat_setup(&node);
    node.write_config(
        "listener.yaml",
        &listener(node.port, "sat-auth", None, None),
    );
    node.start();
    let port = node.port.to_string();
    let v5 = |id: &'static str| ["-V", "mqttv5", "-d", "-p", &port, "-i", id];

    // A subscriber with an ES256 token receives what a publisher with an RS256 token sends.
    let es256 = ec.token("aio-internal", 600);
    let mut sub = mosquitto_sub_running(
        &[
            &v5("sat-sub")[..],
            &enhanced("K8S-SAT", &es256),
            &["-q", "1", "-t", "sat/#", "-W", "30"],
        ]
        .concat(),
    );
    sub.wait_for_line("the SUBACK", WAIT, |l| l.contains("Subscribed (mid: 1): 1"))
        .expect("the ES256 token authenticates the subscriber");
    let rs256 = rsa.token("aio-internal", 600);
    let published = mosquitto_pub_output(
        &[
            &v5("sat-pub")[..],
            &enhanced("K8S-SAT", &rs256),
            &["-q", "1", "-t", "sat/rs256", "-m", "signed-by-rs256"],
        ]
        .concat(),
    );
    assert!(published.contains("received CONNACK (0)"), "{published}");
    assert!(
        published.contains("received PUBACK (Mid: 1, RC:0)"),
        "{published}"
    );
    sub.wait_for_line("the message", WAIT, |l| l == "signed-by-rs256")
        .expect("the message is delivered");

    // Refused at CONNECT: 135 (not authorized) for a bad token, 140 for another method.
    let impostor = TokenKey::new(node.root(), "rsa-1-impostor", true);
    let forged = {
        // Signed by a key not in the JWKS, under the kid of one that is.
        let mut k = impostor;
        k.kid = "rsa-1".into();
        k.token("aio-internal", 600)
    };
    let cases = [
        ("expired", rsa.token("aio-internal", -30), "K8S-SAT", 135),
        (
            "wrong audience",
            ec.token("someone-else", 600),
            "K8S-SAT",
            135,
        ),
        ("bad signature", forged, "K8S-SAT", 135),
        ("wrong method", es256.clone(), "K8S-SATX", 140),
    ];
    for (what, token, method, code) in &cases {
        let out = mosquitto_pub_output(
            &[
                &v5("sat-refused")[..],
                &enhanced(method, token),
                &["-t", "sat/x", "-m", "never"],
            ]
            .concat(),
        );
        assert!(
            out.contains(&format!("received CONNACK ({code})")),
            "{what}: expected CONNACK {code}:\n{out}"
        );
    }
    drop(sub);
    let log = node.kill().stdout;
    for why in ["expired", "audience", "signature", "K8S-SATX"] {
        assert!(
            log.lines()
                .any(|l| l.contains("sat-refused") && l.contains(why)),
            "the broker logs why ({why}):\n{log}"
        );
    }
}

/// A RawClient connected with a K8S-SAT `token`; the CONNACK must be a success.
async fn connect_sat(addr: std::net::SocketAddr, id: &str, token: String) -> RawClient {
    let mut c = connect_packet(ProtocolVersion::V5, id, true);
    c.properties.authentication_method = Some("K8S-SAT".into());
    c.properties.authentication_data = Some(Bytes::from(token));
    let (client, ack) = RawClient::connect_with(addr, c).await;
    assert_eq!(ack.reason, ReasonCode::SUCCESS, "{id}");
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn reauthentication_with_auth_keeps_the_connection_past_the_first_expiry() {
    let mut node = Node::empty();
    let (rsa, ec) = sat_setup(&node);
    node.write_config(
        "listener.yaml",
        &listener(node.port, "sat-auth", None, None),
    );
    node.start();
    let addr = node.addr();
    let auth = |token: String| {
        Packet::Auth(Auth {
            reason: ReasonCode::REAUTHENTICATE,
            properties: AuthProperties {
                authentication_method: Some("K8S-SAT".into()),
                authentication_data: Some(Bytes::from(token)),
                ..AuthProperties::default()
            },
        })
    };
    // `renewing` holds a token that expires in 5 s and sends a fresh one at once; `lapsing`'s
    // expires in 8 s and is never renewed; `refused` re-authenticates with an expired token.
    let mut renewing = connect_sat(addr, "renewing", rsa.token("aio-internal", 5)).await;
    let mut lapsing = connect_sat(addr, "lapsing", ec.token("aio-internal", 8)).await;
    let mut refused = connect_sat(addr, "refused", ec.token("aio-internal", 600)).await;

    renewing.send(&auth(rsa.token("aio-internal", 600))).await;
    match renewing.packet().await {
        Packet::Auth(a) => {
            assert_eq!(a.reason, ReasonCode::SUCCESS);
            assert_eq!(
                a.properties.authentication_method.as_deref(),
                Some("K8S-SAT")
            );
        }
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    refused.send(&auth(ec.token("aio-internal", -30))).await;
    match refused.packet().await {
        Packet::Disconnect(d) => assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected DISCONNECT 0x87 for an expired token, got {other:?}"),
    }

    // At its token's expiry `lapsing` gets DISCONNECT 0x87 and the close; by then the first
    // token of `renewing` has been expired for about 3 s.
    match lapsing.recv_within(Duration::from_secs(20)).await {
        Received::Packet(Packet::Disconnect(d)) => {
            assert_eq!(d.reason, ReasonCode::NOT_AUTHORIZED)
        }
        other => panic!("expected DISCONNECT 0x87 at expiry, got {other:?}"),
    }
    assert_eq!(lapsing.recv().await, Received::Closed);
    renewing.send(&Packet::PingReq).await;
    assert_eq!(
        renewing.packet().await,
        Packet::PingResp,
        "the re-authenticated client is still connected"
    );
    drop(node.kill());
}

/// SAT CONNECT arguments for mosquitto_pub on `port` with `token`, publishing one message.
fn sat_publish(port: u16, id: &str, token: &str) -> String {
    let port = port.to_string();
    let head = [
        "-V", "mqttv5", "-d", "-p", &port, "-i", id, "-t", "sat/x", "-m", "m",
    ];
    mosquitto_pub_output(&[&head[..], &enhanced("K8S-SAT", token)].concat())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_jwks_applies_to_new_connections_and_connected_clients_stay() {
    let mut node = Node::empty();
    let (rsa, ec) = sat_setup(&node);
    write_jwks(&node, &[&rsa]);
    node.write_config(
        "listener.yaml",
        &listener(node.port, "sat-auth", None, None),
    );
    node.start();
    let mut connected = connect_sat(node.addr(), "connected", rsa.token("aio-internal", 600)).await;
    let out = sat_publish(node.port, "ec-before", &ec.token("aio-internal", 600));
    assert!(
        out.contains("received CONNACK (135)"),
        "ec-1 is not in the JWKS yet: {out}"
    );

    // The key rotates: ec-1 in, rsa-1 out. The folder is watched; poll until it applies.
    write_jwks(&node, &[&ec]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = sat_publish(node.port, "ec-after", &ec.token("aio-internal", 600));
        if out.contains("received CONNACK (0)") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new JWKS never applied: {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = sat_publish(node.port, "rsa-after", &rsa.token("aio-internal", 600));
    assert!(
        out.contains("received CONNACK (135)"),
        "rsa-1 was removed: {out}"
    );
    // The client authenticated before keeps its connection.
    connected.send(&Packet::PingReq).await;
    assert_eq!(connected.packet().await, Packet::PingResp);
    drop(node.kill());
}
