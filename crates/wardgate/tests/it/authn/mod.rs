//! Authentication end to end through `wardgate serve` (SPEC.md §7), with real clients and real
//! credentials: service-account tokens signed here with keys made by openssl and verified
//! against a JWKS ConfigMap (rotated live), the example custom authentication server
//! (`examples/custom-auth-server`, real HTTPS with certificates made by `wardgate cert`),
//! re-authentication with AUTH 0x19, the order of methods, and X.509 with mosquitto's
//! `--cert/--key` (chains made by `wardgate cert` and by openssl).
//!
//! Re-authentication uses the testkit's `RawClient`: neither mosquitto_pub/sub nor Paho
//! (paho-mqtt 2.2 has no way to send an AUTH packet) can re-authenticate.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use bytes::Bytes;
use serde_json::{Value, json};
use wardgate_protocol::{Auth, AuthProperties, Packet, ProtocolVersion, ReasonCode};
use wardgate_testkit::client::{RawClient, Received, connect_packet};
use wardgate_testkit::process::{Running, repo_root};

mod support;
use support::tls::{key_and_request, sign_by};
use support::{
    Node, mosquitto_pub_output, mosquitto_sub_running, openssl, passwd, passwords_secret, wardgate,
};

/// The service account the test tokens are issued to (their `sub`: the MQTT username).
const SUB: &str = "system:serviceaccount:azure-iot-operations:my-app";
/// How long a mosquitto client or a line from one may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// Listener `default` (ClusterIp: loopback only) with one port using `authn`, and optionally an
/// authorization and TLS from a Secret.
fn listener(port: u16, authn: &str, authz: Option<&str>, tls_secret: Option<&str>) -> String {
    let authz = authz
        .map(|a| format!("\n    authorizationRef: {a}"))
        .unwrap_or_default();
    let tls = tls_secret
        .map(|s| format!("\n    tls:\n      mode: Manual\n      manual:\n        secretRef: {s}"))
        .unwrap_or_default();
    format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: {port}\n    protocol: Mqtt\n    authenticationRef: {authn}{authz}{tls}\n"
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

// ---------------------------------------------------------------------------------------------
// Service-account tokens

/// A JWT signing key: made by openssl, its JWK read back from openssl's output, the signature
/// computed here with aws-lc-rs from the key openssl wrote (not by the code under test).
struct TokenKey {
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
    fn token(&self, aud: &str, exp_in: i64) -> String {
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
fn sat_setup(node: &Node) -> (TokenKey, TokenKey) {
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

/// mosquitto client arguments for MQTT v5 enhanced authentication with `method` and `data`.
fn enhanced<'a>(method: &'a str, data: &'a str) -> [&'a str; 8] {
    [
        "-D",
        "CONNECT",
        "authentication-method",
        method,
        "-D",
        "CONNECT",
        "authentication-data",
        data,
    ]
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

// ---------------------------------------------------------------------------------------------
// Certificates, the custom authentication server

/// Certificates made by `wardgate cert` in `dir`: `ca.crt` (signs `server.crt` for localhost and
/// 127.0.0.1, used by the broker and by the custom authentication server), `device-ca.crt`
/// (signs client `device1.crt`), `stranger-ca.crt` (signs `stranger.crt`, trusted by no one),
/// `broker-client-ca.crt` (signs `broker-client.crt`, the broker's certificate towards the custom
/// server).
fn certificates(dir: &Path) {
    let ca = |cn: &str, name: &str| {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        wardgate(
            &[
                "cert",
                "ca",
                "--cn",
                cn,
                "--out-cert",
                &crt,
                "--out-key",
                &key,
            ],
            dir,
        );
    };
    let leaf = |kind: &str, cn: &str, ca: &str, name: &str, sans: &[&str]| {
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let mut args = vec!["cert", kind, "--cn", cn];
        for san in sans {
            args.extend(["--san", san]);
        }
        args.extend([
            "--ca-cert",
            &ca_crt,
            "--ca-key",
            &ca_key,
            "--out-cert",
            &crt,
            "--out-key",
            &key,
        ]);
        wardgate(&args, dir);
    };
    ca("Test CA", "ca");
    leaf(
        "server",
        "localhost",
        "ca",
        "server",
        &["localhost", "127.0.0.1"],
    );
    ca("Device CA", "device-ca");
    leaf("client", "device1", "device-ca", "device1", &[]);
    ca("Stranger CA", "stranger-ca");
    leaf("client", "stranger", "stranger-ca", "stranger", &[]);
    ca("Broker Client CA", "broker-client-ca");
    leaf(
        "client",
        "wardgate-broker",
        "broker-client-ca",
        "broker-client",
        &[],
    );
}

/// `examples/custom-auth-server/server.py` on a free loopback port with `server.crt` of
/// [`certificates`], the users of `users.toml` and `extra` options; killed when dropped.
struct AuthServer {
    process: Running,
    port: u16,
}

impl AuthServer {
    fn start(dir: &Path, extra: &[&str]) -> AuthServer {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(repo_root().join("examples/custom-auth-server/server.py"))
            .args(["--users", "users.toml", "--cert", "server.crt", "--key"])
            .args(["server.key", "--port", "0"])
            .args(extra)
            .current_dir(dir);
        let mut process = Running::spawn(&mut cmd).expect("python3 runs the example server");
        let line = process
            .wait_for_line("the port", WAIT, |l| l.starts_with("listening on "))
            .expect("the custom authentication server starts");
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port");
        AuthServer { process, port }
    }

    /// Stops the server and returns its request log (status codes, never credentials).
    fn stop(mut self) -> String {
        self.process.kill().stderr
    }
}

/// The example server's users: alice (password `alice-pw`, attributes via=custom), bob (refused
/// with 138, banned), dave (his credential expires 3 s after each authentication).
fn custom_users(dir: &Path) {
    let file = dir.join("users.toml");
    passwd(&file, "alice", "alice-pw", &["via=custom"]);
    passwd(&file, "bob", "bob-pw", &[]);
    passwd(&file, "dave", "dave-pw", &[]);
    let users = std::fs::read_to_string(&file).expect("users");
    let users = users
        .replacen("[bob]\n", "[bob]\ndeny_reason = 138\n", 1)
        .replacen("[dave]\n", "[dave]\nexpiry_seconds = 3\n", 1);
    assert!(
        users.contains("deny_reason") && users.contains("expiry_seconds"),
        "{users}"
    );
    std::fs::write(&file, users).expect("users");
}

/// A `Custom` method for `endpoint`, with the CA of [`certificates`] as `caCertConfigMap`, the
/// broker's client certificate from a Secret and a header.
fn custom_method(port: u16) -> String {
    format!(
        "  - method: Custom\n    customSettings:\n      endpoint: https://127.0.0.1:{port}\n      caCertConfigMap: custom-auth-ca\n      headers:\n        x-wardgate-test: \"yes\"\n      auth:\n        x509:\n          secretRef: broker-client-cert\n"
    )
}

/// The ConfigMap `custom-auth-ca`, the Secrets `server-cert` and `broker-client-cert`, and the
/// ConfigMap `device-ca`, made by `wardgate create` into the config folder.
fn create_resources(dir: &Path) {
    let create = |args: &[&str]| {
        wardgate(&[&["create"], args, &["-o", "config"]].concat(), dir);
    };
    create(&["configmap", "custom-auth-ca", "--from-file=ca.crt=ca.crt"]);
    create(&[
        "configmap",
        "device-ca",
        "--from-file=client_ca.pem=device-ca.crt",
    ]);
    create(&[
        "secret",
        "tls",
        "server-cert",
        "--cert",
        "server.crt",
        "--key",
        "server.key",
    ]);
    create(&[
        "secret",
        "tls",
        "broker-client-cert",
        "--cert",
        "broker-client.crt",
        "--key",
        "broker-client.key",
    ]);
}

/// A node whose root holds the certificates of [`certificates`], with their Secrets and
/// ConfigMaps in its config folder ([`create_resources`]).
fn tls_node() -> (Node, PathBuf) {
    let node = Node::empty();
    let dir = node.root().to_owned();
    certificates(&dir);
    create_resources(&dir);
    (node, dir)
}

/// mosquitto arguments for a TLS connection to the broker on `port`, MQTT v5, with `-d`.
fn tls_v5(dir: &Path, port: u16, id: &str) -> Vec<String> {
    tls_args(dir, port, "mqttv5", id)
}

/// [`tls_v5`] with the protocol `version` (`mqttv5`, `mqttv311`).
fn tls_args(dir: &Path, port: u16, version: &str, id: &str) -> Vec<String> {
    [
        "-V",
        version,
        "-d",
        "-h",
        "localhost",
        "-p",
        &port.to_string(),
        "-i",
        id,
        "--cafile",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([path(dir, "ca.crt")])
    .collect()
}

/// mosquitto arguments presenting the client certificate `name.crt` of [`certificates`].
fn client_cert(dir: &Path, name: &str) -> Vec<String> {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    vec![
        "--cert".into(),
        path(dir, &crt),
        "--key".into(),
        path(dir, &key),
    ]
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("utf-8 path").to_owned()
}

/// mosquitto_pub with `base` then `more`.
fn publish(base: &[String], more: &[&str]) -> String {
    let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
    args.extend(more);
    mosquitto_pub_output(&args)
}

/// Whether a QoS 1 publish was accepted: PUBACK 0, or 16 (no matching subscribers).
fn accepted(out: &str) -> bool {
    out.contains("received PUBACK (Mid: 1, RC:0)")
        || out.contains("received PUBACK (Mid: 1, RC:16)")
}

#[test]
fn the_custom_authentication_server_decides() {
    let (mut node, dir) = tls_node();
    custom_users(&dir);
    // The server answers its first request with 422, requires the broker's client certificate
    // and the configured header.
    let server = AuthServer::start(
        &dir,
        &[
            "--fail-first-422",
            "--client-ca",
            "broker-client-ca.crt",
            "--require-header",
            "x-wardgate-test=yes",
        ],
    );
    node.write_config(
        "custom.yaml",
        &format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: custom\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n{}",
            custom_method(server.port)
        ),
    );
    node.write_config(
        "listener.yaml",
        &listener(node.port, "custom", None, Some("server-cert")),
    );
    node.start();
    let base = |id: &str| tls_v5(&dir, node.port, id);

    // Passes (after the 422, retried with a supported version): CONNACK 0.
    let out = publish(
        &base("alice"),
        &[
            "-u", "alice", "-P", "alice-pw", "-q", "1", "-t", "c/x", "-m", "hi",
        ],
    );
    assert!(
        out.contains("received CONNACK (0)") && accepted(&out),
        "{out}"
    );
    // Enhanced authentication with the server's own method.
    let out = publish(
        &base("alice-enhanced"),
        &[
            &enhanced("WG-USERPASS", "alice:alice-pw")[..],
            &["-t", "c/x", "-m", "hi"],
        ]
        .concat(),
    );
    assert!(out.contains("received CONNACK (0)"), "{out}");
    // 403 with the server's reason: 134 for a wrong password, 138 (banned) for bob; in MQTT
    // 3.1.1 the return codes 4 and 5.
    for (version, wrong, banned) in [("mqttv5", 134, 138), ("mqttv311", 4, 5)] {
        let alice = tls_args(&dir, node.port, version, "alice-wrong");
        let bob = tls_args(&dir, node.port, version, "bob");
        let out = publish(
            &alice,
            &["-u", "alice", "-P", "nope", "-t", "c/x", "-m", "x"],
        );
        assert!(
            out.contains(&format!("received CONNACK ({wrong})")),
            "{out}"
        );
        let out = publish(&bob, &["-u", "bob", "-P", "bob-pw", "-t", "c/x", "-m", "x"]);
        assert!(
            out.contains(&format!("received CONNACK ({banned})")),
            "{out}"
        );
    }
    // The server's `expiry`: at it, DISCONNECT 0x87 (135), then the close.
    let mut args = base("dave");
    args.extend(["-u", "dave", "-P", "dave-pw", "-t", "c/#", "-W", "30"].map(String::from));
    let mut dave = mosquitto_sub_running(&args.iter().map(String::as_str).collect::<Vec<_>>());
    dave.wait_for_line("the SUBACK", WAIT, |l| l.contains("Subscribed (mid: 1)"))
        .expect("dave connects");
    let started = std::time::Instant::now();
    let disconnect = dave
        .wait_for_line("the DISCONNECT", WAIT, |l| l.contains("DISCONNECT ("))
        .expect("DISCONNECT at expiry");
    assert_eq!(disconnect, "Received DISCONNECT (135)");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    let log = server.stop();
    let statuses: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("HTTP/1.1\" ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["422", "200", "200", "403", "403", "403", "403", "200"],
        "the first request got 422 and was retried:\n{log}"
    );
}

/// A burst of clients connecting at once (a broker restart, a fleet coming back online): each
/// CONNECT is one HTTPS request to the custom server, and none may wait past the 5 s timeout
/// (the example server once kept Python's default listen backlog of 5).
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_connections_through_the_custom_server_all_pass() {
    let (mut node, dir) = tls_node();
    custom_users(&dir);
    let server = AuthServer::start(&dir, &["--client-ca", "broker-client-ca.crt"]);
    node.write_config(
        "custom.yaml",
        &format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: custom\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n{}",
            custom_method(server.port)
        ),
    );
    node.write_config("listener.yaml", &listener(node.port, "custom", None, None));
    node.start();
    let addr = node.addr();
    let started = std::time::Instant::now();
    let clients = (0..100).map(|i| {
        tokio::spawn(async move {
            let mut c = connect_packet(ProtocolVersion::V5, &format!("burst-{i}"), true);
            c.username = Some("alice".into());
            c.password = Some(Bytes::from_static(b"alice-pw"));
            RawClient::connect_with(addr, c).await
        })
    });
    let mut refused = Vec::new();
    let mut connected = Vec::new();
    for (i, client) in clients.collect::<Vec<_>>().into_iter().enumerate() {
        let (client, ack) = client.await.expect("the client task");
        if ack.reason != ReasonCode::SUCCESS {
            refused.push((i, ack.reason));
        }
        connected.push(client);
    }
    assert!(
        refused.is_empty(),
        "refused after {:?}: {refused:?}",
        started.elapsed()
    );
    drop(connected);
    drop(server.stop());
}

// ---------------------------------------------------------------------------------------------
// Method order, X.509

#[test]
fn methods_are_tried_in_order_and_a_client_no_method_applies_to_is_denied() {
    let (mut node, dir) = tls_node();
    custom_users(&dir);
    let (rsa, _) = sat_setup(&node);
    let passwords = dir.join("passwords.toml");
    passwd(&passwords, "carol", "carol-pw", &["via=passwords"]);
    node.write_config("passwords.yaml", &passwords_secret("passwords", &passwords));
    let server = AuthServer::start(&dir, &[]);
    // SAT, then X509, then Custom, then UsernamePassword; each grants a topic of its own.
    node.write_config(
        "order.yaml",
        &format!(
            r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: order
  namespace: azure-iot-operations
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [aio-internal]
      issuerKeysConfigMap: cluster-jwks
  - method: X509
    x509Settings:
      trustedClientCaCert: device-ca
      authorizationAttributes:
        device1:
          subject: "CN = device1"
          attributes: {{via: x509}}
{}  - method: UsernamePassword
    usernamePasswordSettings:
      secretRef: passwords
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: by-method
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    rules:
    - principals: {{usernames: ["{SUB}"]}}
      brokerResources: [{{method: Connect}}, {{method: Publish, topics: [order/sat]}}]
    - principals: {{attributes: [{{via: x509}}]}}
      brokerResources: [{{method: Connect}}, {{method: Publish, topics: [order/x509]}}]
    - principals: {{attributes: [{{via: custom}}]}}
      brokerResources: [{{method: Connect}}, {{method: Publish, topics: [order/custom]}}]
    - principals: {{attributes: [{{via: passwords}}]}}
      brokerResources: [{{method: Connect}}, {{method: Publish, topics: [order/passwords]}}]
"#,
            custom_method(server.port)
        ),
    );
    node.write_config(
        "listener.yaml",
        &listener(node.port, "order", Some("by-method"), Some("server-cert")),
    );
    node.start();
    let base = |id: &str| tls_v5(&dir, node.port, id);
    let device1 = client_cert(&dir, "device1");
    let token = rsa.token("aio-internal", 600);
    let topic = |t: &'static str| ["-q", "1", "-t", t, "-m", "which method?"];
    let login = |user: &str, password: &str, t: &'static str| {
        let mut args = vec!["-u", user, "-P", password];
        args.extend(topic(t));
        publish(&base(user), &args)
    };

    // A token and a certificate: SAT comes first.
    let out = publish(
        &[base("sat-and-cert"), device1.clone()].concat(),
        &[&enhanced("K8S-SAT", &token)[..], &topic("order/sat")].concat(),
    );
    assert!(accepted(&out), "SAT decides:\n{out}");
    // A certificate and a username: X509 comes before Custom and UsernamePassword.
    let out = publish(
        &[base("cert-and-user"), device1].concat(),
        &[&["-u", "carol", "-P", "carol-pw"][..], &topic("order/x509")].concat(),
    );
    assert!(accepted(&out), "X509 decides:\n{out}");
    // A username: Custom (always relevant while its server answers) decides, for alice and
    // against carol, whom only UsernamePassword knows.
    let out = login("alice", "alice-pw", "order/custom");
    assert!(accepted(&out), "Custom decides:\n{out}");
    let out = login("carol", "carol-pw", "order/passwords");
    assert!(
        out.contains("received CONNACK (134)"),
        "Custom refuses carol:\n{out}"
    );
    // Nothing at all: Custom's server refuses (no credentials).
    let out = publish(&base("nobody"), &topic("order/custom"));
    assert!(out.contains("received CONNACK (135)"), "{out}");

    // The custom server is down: it is not relevant, the next method decides.
    drop(server.stop());
    let out = login("carol", "carol-pw", "order/passwords");
    assert!(accepted(&out), "UsernamePassword decides:\n{out}");
    let out = login("alice", "alice-pw", "order/custom");
    assert!(
        out.contains("received CONNACK (134)"),
        "UsernamePassword does not know alice:\n{out}"
    );
    // A client relevant to no method: denied, v5 135 and v3.1.1 return code 5.
    let out = publish(&base("nobody"), &topic("order/custom"));
    assert!(out.contains("received CONNACK (135)"), "{out}");
    let v311 = tls_args(&dir, node.port, "mqttv311", "nobody-v311");
    let out = publish(&v311, &topic("order/custom"));
    assert!(out.contains("received CONNACK (5)"), "{out}");
    let log = node.kill().stdout;
    assert!(
        log.contains("custom authentication server unavailable"),
        "the fall-through is logged:\n{log}"
    );
}

/// A device chain made with openssl as the seeds' recipes do: root `OpenSSL Root CA`,
/// intermediate `OpenSSL Intermediate CA` (CA:TRUE, keyCertSign), client `device2` (clientAuth);
/// `device2.crt` holds the leaf then the intermediate, as a client presents it.
fn openssl_device_chain(dir: &Path) {
    let root = ["-x509", "-days", "2", "-subj", "/CN=OpenSSL Root CA"];
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let out = ["-keyout", "ossl-root.key", "-out", "ossl-root.crt"];
    openssl(&[&["req"][..], &root, &ec, &out].concat(), dir);
    // `<name>.csr` signed by `<ca>` with the extensions `ext`: `<name>.crt`.
    let sign = |name: &str, subject: &str, ca: &str, ext: &str| {
        key_and_request(dir, name, subject);
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("extensions");
        sign_by(dir, name, ca, true);
    };
    sign(
        "ossl-int",
        "/CN=OpenSSL Intermediate CA",
        "ossl-root",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
    sign(
        "device2",
        "/CN=device2",
        "ossl-int",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    // As a client presents it: the leaf, then the intermediate.
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("certificate");
    let bundle = read("device2.crt") + &read("ossl-int.crt");
    std::fs::write(dir.join("device2.crt"), bundle).expect("bundle");
}

#[test]
fn an_x509_port_takes_openssl_and_wardgate_chains_and_refuses_untrusted_or_missing_ones() {
    let (mut node, dir) = tls_node();
    openssl_device_chain(&dir);
    // Both device roots are trusted: one ConfigMap, one PEM per key.
    wardgate(
        &[
            "create",
            "configmap",
            "device-roots",
            "--from-file=wardgate.pem=device-ca.crt",
            "--from-file=openssl.pem=ossl-root.crt",
            "-o",
            "config",
        ],
        &dir,
    );
    node.write_config(
        "x509.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: x509
  namespace: azure-iot-operations
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: device-roots
      authorizationAttributes:
        openssl-made:
          subject: "CN = OpenSSL Intermediate CA"
          attributes: {maker: openssl}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: devices
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [device1]}
      brokerResources: [{method: Connect}, {method: Publish, topics: [x509/wardgate]}]
    - principals: {attributes: [{maker: openssl}]}
      brokerResources: [{method: Connect}, {method: Publish, topics: [x509/openssl]}]
"#,
    );
    node.write_config(
        "listener.yaml",
        &listener(node.port, "x509", Some("devices"), Some("server-cert")),
    );
    node.start();
    let base = |id: &str| tls_v5(&dir, node.port, id);
    let topic = ["-q", "1", "-t", "x509/t", "-m", "m"];

    // device1 (`wardgate cert`) by its CN; device2 (openssl) by its intermediate's attribute.
    let to = |t: &'static str| ["-q", "1", "-t", t, "-m", "m"];
    let out = publish(
        &[base("d1"), client_cert(&dir, "device1")].concat(),
        &to("x509/wardgate"),
    );
    assert!(
        out.contains("received CONNACK (0)") && accepted(&out),
        "{out}"
    );
    let out = publish(
        &[base("d2"), client_cert(&dir, "device2")].concat(),
        &to("x509/openssl"),
    );
    assert!(
        out.contains("received CONNACK (0)") && accepted(&out),
        "{out}"
    );
    let out = publish(
        &[base("d2"), client_cert(&dir, "device2")].concat(),
        &to("x509/wardgate"),
    );
    assert!(out.contains("received PUBACK (Mid: 1, RC:135)"), "{out}");
    // A certificate from a CA the port does not trust: the handshake fails, no CONNACK.
    let out = publish(
        &[base("stranger"), client_cert(&dir, "stranger")].concat(),
        &topic,
    );
    assert!(!out.contains("received CONNACK"), "{out}");
    assert!(out.contains("OpenSSL Error"), "a TLS error: {out}");
    // No certificate: the handshake passes, CONNECT is refused (v5 135, v3.1.1 5).
    let out = publish(&base("no-cert"), &topic);
    assert!(out.contains("received CONNACK (135)"), "{out}");
    let v311 = tls_args(&dir, node.port, "mqttv311", "no-cert-v311");
    let out = publish(&v311, &topic);
    assert!(out.contains("received CONNACK (5)"), "{out}");
    let log = node.kill().stdout;
    assert!(log.contains("no client certificate"), "{log}");
    // Each refusal is logged once, and the rejected certificate's line names the client.
    let lines = |client: &str, what: &str| {
        log.lines()
            .filter(|l| l.contains(client) && l.contains(what))
            .count()
    };
    assert_eq!(lines("no-cert-v311", "authentication failed"), 1, "{log}");
    assert_eq!(lines("no-cert-v311", "authentication denied"), 0, "{log}");
    assert_eq!(lines("d2", "x509/wardgate"), 1, "one denial line:\n{log}");
    assert!(!log.contains("not authorized"), "{log}");
    let rejected = log
        .lines()
        .find(|l| l.contains("client certificate rejected"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{log}"));
    assert!(rejected.contains("peer=127.0.0.1:"), "{rejected}");
}

/// A persistent session resumed with another certificate (Clean Start 0, same client ID) gave
/// the second device the first one's queued messages and subscriptions: a session is resumed
/// only by the principal that created it (docs/security.md); another gets a new one.
#[test]
fn a_session_resumed_with_another_certificate_gets_nothing_of_the_first() {
    let (mut node, dir) = tls_node();
    // `intruder`, signed by the trusted device CA too.
    wardgate(
        &[
            "cert",
            "client",
            "--cn",
            "intruder",
            "--ca-cert",
            "device-ca.crt",
            "--ca-key",
            "device-ca.key",
            "--out-cert",
            "intruder.crt",
            "--out-key",
            "intruder.key",
        ],
        &dir,
    );
    node.write_config(
        "x509.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: x509
  namespace: azure-iot-operations
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: device-ca
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: devices
  namespace: azure-iot-operations
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [device1]}
      brokerResources:
      - {method: Connect}
      - {method: Publish, topics: ["secret/device1/#"]}
      - {method: Subscribe, topics: ["secret/device1/#"]}
    - principals: {usernames: [intruder]}
      brokerResources: [{method: Connect}, {method: Subscribe, topics: ["public/#"]}]
"#,
    );
    node.write_config(
        "listener.yaml",
        &listener(node.port, "x509", Some("devices"), Some("server-cert")),
    );
    node.start();
    let v311 = |id: &str| tls_args(&dir, node.port, "mqttv311", id);
    // mosquitto_sub with `more`, for a second: everything it printed.
    let subscribe = |base: Vec<String>, more: &[&str]| {
        let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
        args.extend(["-c", "-v", "-W", "1"]);
        args.extend(more);
        let out = wardgate_testkit::process::run(
            std::process::Command::new(wardgate_testkit::process::mosquitto_sub().expect("sub"))
                .args(&args),
            WAIT,
        )
        .expect("mosquitto_sub runs");
        format!("{out}")
    };

    // device1's persistent session subscribes to its secrets and goes; a secret is queued.
    let base = [v311("shared-id"), client_cert(&dir, "device1")].concat();
    let out = subscribe(base, &["-q", "1", "-t", "secret/device1/#"]);
    assert!(out.contains("received CONNACK (0)"), "{out}");
    let out = publish(
        &[v311("d1-pub"), client_cert(&dir, "device1")].concat(),
        &["-q", "1", "-t", "secret/device1/pin", "-m", "1234"],
    );
    assert!(out.contains("received PUBACK"), "{out}");

    // The intruder resumes the client ID with Clean Start 0: nothing of device1's arrives.
    let base = [v311("shared-id"), client_cert(&dir, "intruder")].concat();
    let out = subscribe(base, &["-q", "1", "-t", "public/#"]);
    assert!(out.contains("received CONNACK (0)"), "{out}");
    assert!(
        !out.contains("1234"),
        "the intruder read device1's secret:\n{out}"
    );

    drop(node.kill());
}
