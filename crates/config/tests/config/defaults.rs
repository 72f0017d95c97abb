//! The defaults of SPEC.md §4.1, the quickstart and `--add-insecure-listener` (§4.3).

use crate::common::{errors, ok};
use wardgate_config::{
    AuthnMethod, IssuerKind, ListenerPort, MemoryProfile, Model, PortProtocol, ServiceType, Tls,
};

#[test]
fn an_empty_configuration_is_the_aio_defaults() {
    let m = ok("empty.yaml", "").model;
    assert_eq!(m, Model::defaults());
    assert_eq!(m.broker.name, "default");
    assert_eq!(m.broker.memory_profile, MemoryProfile::Medium);
    assert_eq!(m.broker.max_packet_size(), 64 * 1024 * 1024);
    assert_eq!(m.broker.diagnostics.log_level, "info");
    assert_eq!(m.broker.diagnostics.prometheus_port, 9600);
    assert!(m.broker.persistence.is_none());

    let l = m.listener("default").unwrap();
    assert_eq!(l.service_name, "aio-broker");
    assert_eq!(l.service_type, ServiceType::ClusterIp);
    assert_eq!(l.ports.len(), 1);
    let p = &l.ports[0];
    assert_eq!(p.port, 18883);
    assert_eq!(p.protocol, PortProtocol::Mqtt);
    assert_eq!(p.authentication_ref.as_deref(), Some("default"));
    assert_eq!(p.authorization_ref, None);
    let Some(Tls::Automatic(a)) = &p.tls else {
        panic!("{:?}", p.tls)
    };
    assert_eq!(
        a.issuer_ref.name,
        "azure-iot-operations-aio-certificate-issuer"
    );
    assert_eq!(a.issuer_ref.kind, IssuerKind::ClusterIssuer);
    assert_eq!(a.secret_name, "aio-broker-frontend-server-18883");
    assert_eq!(a.duration.as_secs(), 720 * 3600);
    assert_eq!(a.renew_before.as_secs(), 240 * 3600);
    assert!(m.missing_dependencies(p).is_empty());

    let AuthnMethod::ServiceAccountToken(sat) = &m.authentications["default"].methods[0] else {
        panic!()
    };
    assert_eq!(sat.audiences, ["aio-internal"]);
    assert!(m.authorizations.is_empty());
}

#[test]
fn a_user_resource_replaces_the_default_of_the_same_name() {
    let m = ok(
        "mine.yaml",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: default
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: default
spec:
  authenticationMethods:
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: [mine]
",
    )
    .model;
    assert_eq!(m.listeners.len(), 1);
    let l = &m.listeners[0];
    assert_eq!(l.service_name, "default");
    assert_eq!(l.service_type, ServiceType::LoadBalancer);
    assert_eq!(l.ports, vec![ListenerPort::plain(1883)]);
    let AuthnMethod::ServiceAccountToken(sat) = &m.authentications["default"].methods[0] else {
        panic!()
    };
    assert_eq!(sat.audiences, ["mine"]);
}

#[test]
fn quickstart_adds_a_plain_loopback_port_and_persistence() {
    let m = Model::quickstart();
    let l = m.listener("default").unwrap();
    assert_eq!(l.service_type, ServiceType::ClusterIp);
    assert_eq!(l.ports.len(), 2);
    assert_eq!(l.ports[1], ListenerPort::plain(1883));
    assert!(m.broker.persistence.is_some());
}

#[test]
fn insecure_listener_on_the_quickstart_takes_over_1883() {
    let mut m = Model::quickstart();
    m.add_insecure_listener().unwrap();
    let names: Vec<&str> = m.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["default", "default-insecure"]);
    assert_eq!(m.listener("default").unwrap().ports.len(), 1);
    let i = m.listener("default-insecure").unwrap();
    assert_eq!(i.service_type, ServiceType::LoadBalancer);
    assert_eq!(i.ports, vec![ListenerPort::plain(1883)]);
}

#[test]
fn insecure_listener_conflicts_are_errors() {
    let mut m = ok(
        "lb.yaml",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8883
",
    )
    .model;
    assert_eq!(
        m.add_insecure_listener().unwrap_err().to_string(),
        "(built-in defaults): BrokerListener/default-insecure: --add-insecure-listener: BrokerListener/lb already has serviceType LoadBalancer (one listener per serviceType)"
    );
    let mut m = Model::defaults();
    m.add_insecure_listener().unwrap();
    assert!(m.add_insecure_listener().is_err());
}

#[test]
fn defaults_are_not_validated_against_themselves() {
    // Nothing in the defaults produces a diagnostic.
    assert!(crate::common::warnings("empty.yaml", "").is_empty());
    assert!(errors("bad.yaml", "kind: Nope\n").len() == 1);
}

#[test]
fn the_model_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Model>();
    shareable::<wardgate_config::Loaded>();
    shareable::<wardgate_config::ConfigErrors>();
}
