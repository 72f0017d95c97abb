//! `mq.iotoperations.azure.com/v1beta1` resources are converted to the current model with the
//! same meaning (SPEC.md §3, `reference/aio-broker.md` §2.8, §3.3, §5.7).

use std::time::Duration;

use crate::common::{errors, ok, warnings};
use wardgate_config::{
    AuthnMethod, BrokerMethod, KeyAlgorithm, LogFormat, MemoryProfile, OperationalMode,
    ServiceType, Tls,
};

const OLD: &str = r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: Broker
metadata:
  name: broker
  namespace: azure-iot-operations
spec:
  mode: distributed
  memoryProfile: low
  encryptInternalTraffic: false
  authImage: {repository: mcr.microsoft.com/azureiotoperations/dmqtt-authentication, tag: 0.1.0-preview}
  brokerImage: {repository: mcr.microsoft.com/azureiotoperations/dmqtt-pod, tag: 0.1.0-preview}
  cardinality:
    backendChain: {partitions: 2, redundancyFactor: 2, workers: 1}
    frontend: {replicas: 2, workers: 1}
  diagnostics:
    diagnosticServiceEndpoint: diagnosticservices.azure-iot-operations.svc.cluster.local:9000
    logLevel: debug
    logFormat: json
    enableSelfCheck: false
    selfCheckFrequencySeconds: 60
    selfCheckTimeoutSeconds: 20
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: listener
spec:
  brokerRef: broker
  authenticationEnabled: true
  authorizationEnabled: true
  port: 8883
  serviceName: aio-mq-dmqtt-frontend
  serviceType: clusterIp
  tls:
    manual:
      secretName: server-cert
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: lb
spec:
  brokerRef: broker
  authenticationEnabled: false
  port: 1883
  serviceType: loadBalancer
  serviceName: mq-lb
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerAuthentication
metadata:
  name: authn
spec:
  listenerRef:
  - listener
  - lb
  authenticationMethods:
  - custom:
      endpoint: https://auth.example:8080
      caCert: custom-ca
      auth:
        x509:
          secretName: custom-client
      headers:
        header_key: header_value
  - sat:
      audiences: [aio-mq]
  - usernamePassword:
      secretName: passwords
  - x509:
      trustedClientCaCert: client-ca
      attributes:
        secretName: x509-attributes
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerAuthorization
metadata:
  name: my-authz
spec:
  listenerRef:
  - listener
  authorizationPolicies:
    enableCache: true
    rules:
    - principals:
        clientids:
        - temperature-sensor
        attributes:
        - city: seattle
          organization: contoso
      brokerResources:
      - method: Connect
      - method: Publish
        topics:
        - /telemetry/{principal.clientId}
"#;

#[test]
fn old_resources_convert_to_the_current_model() {
    let loaded = ok("old.yaml", OLD);
    let m = &loaded.model;

    assert_eq!(m.broker.name, "broker");
    assert_eq!(m.broker.memory_profile, MemoryProfile::Low);
    assert_eq!(m.broker.encrypt_internal_traffic, OperationalMode::Disabled);
    assert_eq!(m.broker.diagnostics.log_level, "debug");
    assert_eq!(m.broker.diagnostics.log_format, LogFormat::Json);
    assert_eq!(
        m.broker.diagnostics.self_check.mode,
        OperationalMode::Disabled
    );
    assert_eq!(
        m.broker.diagnostics.self_check.interval,
        Duration::from_secs(60)
    );
    assert_eq!(m.broker.cardinality.as_ref().unwrap().backend_partitions, 2);

    let l = m.listener("listener").unwrap();
    assert_eq!(l.service_type, ServiceType::ClusterIp);
    assert_eq!(l.ports.len(), 1);
    let p = &l.ports[0];
    assert_eq!(p.port, 8883);
    assert_eq!(p.authentication_ref.as_deref(), Some("authn"));
    assert_eq!(p.authorization_ref.as_deref(), Some("my-authz"));
    assert_eq!(
        p.tls,
        Some(Tls::Manual(wardgate_config::ManualTls {
            secret_ref: "server-cert".to_owned()
        }))
    );
    let lb = m.listener("lb").unwrap();
    assert_eq!(lb.service_type, ServiceType::LoadBalancer);
    assert_eq!(lb.ports[0].authentication_ref, None);
    assert_eq!(
        loaded
            .warnings
            .iter()
            .filter(|w| w.message.contains("has no effect"))
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "old.yaml:44: document 3: BrokerListener/lb: spec.authenticationEnabled is false, so BrokerAuthentication/authn, which lists this listener, has no effect"
        ]
    );

    let methods = &m.authentications["authn"].methods;
    let AuthnMethod::Custom(c) = &methods[0] else {
        panic!("{methods:?}")
    };
    assert_eq!(c.endpoint, "https://auth.example:8080");
    assert_eq!(c.ca_cert_config_map.as_deref(), Some("custom-ca"));
    assert_eq!(c.client_cert_secret.as_deref(), Some("custom-client"));
    assert_eq!(c.headers["header_key"], "header_value");
    let AuthnMethod::ServiceAccountToken(s) = &methods[1] else {
        panic!()
    };
    assert_eq!(s.audiences, ["aio-mq"]);
    let AuthnMethod::UsernamePassword(u) = &methods[2] else {
        panic!()
    };
    assert_eq!(u.secret_ref, "passwords");
    let AuthnMethod::X509(x) = &methods[3] else {
        panic!()
    };
    assert_eq!(x.trusted_client_ca_cert, "client-ca");
    assert_eq!(x.attributes_secret.as_deref(), Some("x509-attributes"));

    let z = &m.authorizations["my-authz"];
    assert_eq!(z.cache, OperationalMode::Enabled);
    assert_eq!(z.rules[0].principals.client_ids, ["temperature-sensor"]);
    assert_eq!(z.rules[0].principals.attributes[0]["city"], "seattle");
    assert_eq!(z.rules[0].broker_resources[1].method, BrokerMethod::Publish);
    assert_eq!(
        z.rules[0].broker_resources[1].topics[0].as_str(),
        "/telemetry/{principal.clientId}"
    );
}

#[test]
fn old_automatic_tls_maps_key_algorithms() {
    let yaml = r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: listener
spec:
  brokerRef: broker
  port: 8883
  tls:
    automatic:
      issuerRef: {name: mq-dmqtt-frontend, kind: Issuer}
      privateKey: {algorithm: RSA, size: 4096}
"#;
    let m = ok("tls.yaml", yaml).model;
    let Some(Tls::Automatic(a)) = &m.listener("listener").unwrap().ports[0].tls else {
        panic!()
    };
    assert_eq!(a.private_key.algorithm, KeyAlgorithm::Rsa4096);
    assert_eq!(a.secret_name, "mq-dmqtt-frontend-8883");
    assert!(m.missing_dependencies(&m.listeners[0].ports[0]).is_empty());
}

#[test]
fn old_api_errors() {
    let yaml = r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: listener
spec:
  port: 8883
  tls:
    keyVault: {vault: {name: v}}
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerAuthentication
metadata:
  name: a
spec:
  listenerRef: [listener]
  authenticationMethods:
  - sat: {audiences: [x]}
    x509: {}
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerAuthentication
metadata:
  name: b
spec:
  listenerRef: [listener]
  authenticationMethods:
  - sat: {audiences: [x]}
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: lb
spec:
  port: 8884
  serviceType: loadBalancer
  serviceName: lb
  tls:
    automatic:
      issuerRef: {name: i, kind: Issuer}
      privateKey: {algorithm: ECDSA, size: 512}
"#;
    assert_eq!(
        errors("old-bad.yaml", yaml),
        [
            "old-bad.yaml:8: document 1: BrokerListener/listener: spec.tls.keyVault is not supported outside Azure: use automatic or manual",
            "old-bad.yaml:17: document 2: BrokerAuthentication/a: spec.authenticationMethods[0] must set exactly one of sat, x509, custom or usernamePassword",
            "old-bad.yaml:25: document 3: BrokerAuthentication/b: spec.listenerRef[0] \"listener\" is already linked to BrokerAuthentication/a; a listener uses one BrokerAuthentication",
            "old-bad.yaml:40: document 4: BrokerListener/lb: spec.tls.automatic.privateKey.size 512 is not a supported key size (expected 256, 384 or 521)",
        ]
    );
}

#[test]
fn an_authentication_enabled_listener_without_a_linked_resource_uses_default() {
    let yaml = r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: listener
spec:
  brokerRef: broker
  authenticationEnabled: true
  port: 8883
"#;
    assert_eq!(
        warnings("w.yaml", yaml),
        [
            "w.yaml:7: BrokerListener/listener: spec.authenticationEnabled is true and no BrokerAuthentication lists this listener in spec.listenerRef; using BrokerAuthentication/default"
        ]
    );
}
