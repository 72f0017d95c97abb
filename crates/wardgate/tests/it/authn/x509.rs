//! X.509 client certificates with mosquitto's `--cert/--key`: chains made by `wardgate cert`
//! and by openssl, untrusted or missing ones refused, sessions bound to the certificate.

use super::*;

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
