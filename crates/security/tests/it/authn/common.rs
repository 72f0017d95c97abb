//! Helpers shared by the authentication and authorization tests: certificate chains made with
//! rcgen, configurations loaded through `wardgate_config`, CONNECT requests.

use std::net::SocketAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use wardgate_config::Model;
use wardgate_security::authn::ConnectRequest;

/// A CA: its parameters and key sign certificates.
pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) der: CertificateDer<'static>,
}

impl Ca {
    pub(crate) fn pem(&self) -> String {
        pem(&self.der)
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

fn ca_params(dn: &[(DnType, &str)], path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    // rcgen starts with `CN = rcgen self signed cert`; start empty to keep the order given.
    p.distinguished_name = DistinguishedName::new();
    for (t, v) in dn {
        p.distinguished_name.push(t.clone(), *v);
    }
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// A self-signed root CA with subject `CN = <cn>`.
pub(crate) fn root(cn: &str) -> Ca {
    root_dn(&[(DnType::CommonName, cn)])
}

/// A self-signed root CA with this subject (encoded in the given order).
pub(crate) fn root_dn(dn: &[(DnType, &str)]) -> Ca {
    let params = ca_params(dn, None);
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().clone();
    Ca { params, key, der }
}

/// An intermediate CA signed by `parent`.
pub(crate) fn intermediate(cn: &str, parent: &Ca) -> Ca {
    let params = ca_params(&[(DnType::CommonName, cn)], Some(0));
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &parent.issuer())
        .unwrap()
        .der()
        .clone();
    Ca { params, key, der }
}

/// A client leaf with this subject, signed by `parent`.
pub(crate) fn client_leaf(
    dn: &[(DnType, &str)],
    parent: &Ca,
) -> (CertificateDer<'static>, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    // rcgen starts with `CN = rcgen self signed cert`; start empty to keep the order given.
    p.distinguished_name = DistinguishedName::new();
    for (t, v) in dn {
        p.distinguished_name.push(t.clone(), *v);
    }
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let der = p.signed_by(&key, &parent.issuer()).unwrap().der().clone();
    (der, key)
}

/// A server leaf for `localhost` and 127.0.0.1, signed by `parent`.
pub(crate) fn server_leaf(parent: &Ca) -> (CertificateDer<'static>, KeyPair) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let der = p.signed_by(&key, &parent.issuer()).unwrap().der().clone();
    (der, key)
}

pub(crate) fn pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

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
    pub(crate) root: Ca,
    pub(crate) devices: Vec<(String, Vec<CertificateDer<'static>>)>,
}

impl Fabrikam {
    pub(crate) fn new() -> Fabrikam {
        let root = root("Fabrikam Root CA");
        let intermediate = intermediate("Fabrikam Intermediate CA 1", &root);
        let devices = ["thermostat", "hygrometer", "heater", "lightbulb"]
            .iter()
            .map(|d| {
                let (leaf, _) = client_leaf(&[(DnType::CommonName, d)], &intermediate);
                ((*d).to_owned(), vec![leaf, intermediate.der.clone()])
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
