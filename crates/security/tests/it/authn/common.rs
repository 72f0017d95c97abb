//! Helpers shared by the authentication and authorization tests: certificate chains made with
//! `wardgate_testkit::pki`, configurations loaded through `wardgate_config`, CONNECT requests.

use std::net::SocketAddr;

use rcgen::DnType;
use rustls_pki_types::CertificateDer;
use wardgate_config::Model;
use wardgate_security::authn::ConnectRequest;
pub(crate) use wardgate_testkit::pki::TestCa;

/// A YAML block scalar of `text`, indented for a value at `indent` spaces.
pub(crate) fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut s = String::from("|\n");
    for line in text.lines() {
        s.push_str(&pad);
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// A ConfigMap document.
pub(crate) fn config_map(name: &str, key: &str, text: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata:\n  {key}: {}",
        block(text, 4)
    )
}

/// An Opaque Secret document with `stringData`.
pub(crate) fn secret(name: &str, key: &str, text: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: Opaque\nstringData:\n  {key}: {}",
        block(text, 4)
    )
}

/// Loads YAML documents (joined with `---`) into a model; panics with every error.
pub(crate) fn load(docs: &[String]) -> Model {
    let yaml = docs.join("\n---\n");
    match wardgate_config::load_str("test.yaml", &yaml) {
        Ok(l) => l.model,
        Err(e) => panic!("{e}\n---\n{yaml}"),
    }
}

pub(crate) fn peer() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

/// A CONNECT with nothing but a client ID (v5).
pub(crate) fn connect<'a>(client_id: &'a str) -> ConnectRequest<'a> {
    ConnectRequest {
        client_id,
        username: None,
        password: None,
        auth_method: None,
        auth_data: None,
        client_chain: &[],
        peer: peer(),
        port: 8883,
        protocol_v5: true,
    }
}

/// The seed tutorial's Fabrikam client PKI: root, intermediate, and the four device leaves,
/// each presented with the intermediate (`--bundle`).
pub(crate) struct Fabrikam {
    pub(crate) root: TestCa,
    pub(crate) devices: Vec<(String, Vec<CertificateDer<'static>>)>,
}

impl Fabrikam {
    pub(crate) fn new() -> Fabrikam {
        let root = TestCa::new("Fabrikam Root CA");
        let intermediate = root.intermediate("Fabrikam Intermediate CA 1");
        let devices = ["thermostat", "hygrometer", "heater", "lightbulb"]
            .iter()
            .map(|d| {
                let leaf = intermediate.issue_client(&[(DnType::CommonName, d)]);
                (
                    (*d).to_owned(),
                    vec![leaf.der().clone(), intermediate.der().clone()],
                )
            })
            .collect();
        Fabrikam { root, devices }
    }

    pub(crate) fn chain(&self, device: &str) -> &[CertificateDer<'static>] {
        &self
            .devices
            .iter()
            .find(|(d, _)| d == device)
            .expect("a tutorial device")
            .1
    }
}

/// The tutorial's `x509-auth` BrokerAuthentication, exactly as its JSON, in YAML.
pub(crate) const TUTORIAL_AUTHN: &str = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: x509-auth}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: fabrikam-ca
      authorizationAttributes:
        thermostat:
          subject: "CN = thermostat"
          attributes:
            group: thermostat_group
        hygrometer:
          subject: "CN = hygrometer"
          attributes:
            group: hygrometer_group
        intermediate:
          subject: "CN = Fabrikam Intermediate CA 1"
          attributes:
            manufacturer: fabrikam
"#;

/// The tutorial's `abac-authz` rules, exactly as its JSON, in YAML.
pub(crate) const TUTORIAL_AUTHZ: &str = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata: {name: abac-authz}
spec:
  authorizationPolicies:
    rules:
    - principals:
        attributes:
        - group: thermostat_group
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["telemetry/temperature"]
    - principals:
        attributes:
        - group: hygrometer_group
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["telemetry/humidity"]
    - principals:
        attributes:
        - manufacturer: fabrikam
      brokerResources:
      - method: Connect
      - method: Publish
        topics: ["health/heartbeat"]
    - principals:
        usernames: [heater]
      brokerResources:
      - method: Connect
      - method: Subscribe
        topics: ["telemetry/temperature", "telemetry/humidity"]
"#;

/// The tutorial's listener: LoadBalancer `mqtts-endpoint`, port 8883, manual TLS, x509-auth and
/// abac-authz.
pub(crate) const TUTORIAL_LISTENER: &str = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: mqtts-endpoint}
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8883
    authenticationRef: x509-auth
    authorizationRef: abac-authz
    protocol: Mqtt
    tls:
      mode: Manual
      manual:
        secretRef: broker-server-cert
"#;
