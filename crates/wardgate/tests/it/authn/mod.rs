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
use wardgate_testkit::resources;

use crate::support::tls::{key_and_request, sign_by};
use crate::support::{
    Node, mosquitto_pub_output, mosquitto_sub_running, openssl, passwd, passwords_secret, wardgate,
};

mod custom;
mod local_tokens;
mod order;
mod sat;
mod x509;

/// The service account the test tokens are issued to (their `sub`: the MQTT username).
const SUB: &str = "system:serviceaccount:azure-iot-operations:my-app";
/// How long a mosquitto client or a line from one may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// Listener `default` (ClusterIp: loopback only) with one port using `authn`, and optionally an
/// authorization and TLS from a Secret.
fn listener(port: u16, authn: &str, authz: Option<&str>, tls_secret: Option<&str>) -> String {
    let tls = tls_secret.map(resources::manual_tls).unwrap_or_default();
    resources::listener(&(resources::authenticated_port(port, authn, authz) + &tls))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
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

// ---------------------------------------------------------------------------------------------
// Certificates and mosquitto arguments, shared by the custom, order and X.509 tests

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
