//! Several methods on one port: tried in order, and a client no method applies to is denied.

use super::custom::{AuthServer, custom_method, custom_users};
use super::sat::sat_setup;
use super::*;

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
