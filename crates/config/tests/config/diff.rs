//! `Model::diff` tells the reload machinery what to start, stop and refresh.

use crate::common::ok;
use wardgate_config::{Change, Model, PortKey};

fn key(listener: &str, port: u16) -> PortKey {
    PortKey {
        listener: listener.to_owned(),
        port,
    }
}

const BASE: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
  - port: 8883
    authenticationRef: certs
    authorizationRef: rules
    tls:
      mode: Manual
      manual: {secretRef: server}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: certs
spec:
  authenticationMethods:
  - method: X509
    x509Settings: {trustedClientCaCert: client-ca}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: rules
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - method: Connect
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: client-ca
data:
  ca.pem: one
";

#[test]
fn identical_models_have_no_difference() {
    let a = ok("a.yaml", BASE).model;
    assert!(Model::diff(&a, &a.clone()).is_empty());
}

#[test]
fn ports_added_removed_and_changed() {
    let old = ok("a.yaml", BASE).model;
    let new_text = BASE
        .replace("  - port: 1883\n", "  - port: 1884\n")
        .replace(
            "    tls:\n      mode: Manual",
            "    protocol: WebSockets\n    tls:\n      mode: Manual",
        );
    let new = ok("b.yaml", &new_text).model;
    let d = Model::diff(&old, &new);
    assert_eq!(
        d.ports,
        [
            (key("lb", 1883), Change::Removed),
            (key("lb", 1884), Change::Added),
            (key("lb", 8883), Change::Changed),
        ]
    );
    assert!(d.listeners.is_empty());
    assert!(!d.broker_changed);
}

#[test]
fn a_listener_changing_service_type_changes_all_its_ports() {
    let old = ok("a.yaml", BASE).model;
    let new = ok(
        "b.yaml",
        &BASE
            .replace(
                "serviceType: LoadBalancer\n  ports:\n  - port: 1883\n",
                "serviceType: NodePort\n  ports:\n  - port: 1883\n    nodePort: 31883\n",
            )
            .replace("  - port: 8883\n", "  - port: 8883\n    nodePort: 31884\n"),
    )
    .model;
    let d = Model::diff(&old, &new);
    assert_eq!(d.listeners, [("lb".to_owned(), Change::Changed)]);
    assert_eq!(
        d.ports,
        [
            (key("lb", 1883), Change::Changed),
            (key("lb", 8883), Change::Changed)
        ]
    );
}

#[test]
fn resources_changed_and_the_ports_they_affect() {
    let old = ok("a.yaml", BASE).model;
    let new_text = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: server\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: c\n  tls.key: k\n",
        BASE.replace("ca.pem: one", "ca.pem: two")
            .replace("usernames: [a]", "usernames: [b]")
    );
    let new = ok("b.yaml", &new_text).model;
    let d = Model::diff(&old, &new);
    assert!(d.ports.is_empty());
    assert_eq!(d.config_maps, [("client-ca".to_owned(), Change::Changed)]);
    assert_eq!(d.secrets, [("server".to_owned(), Change::Added)]);
    assert_eq!(d.authorizations, [("rules".to_owned(), Change::Changed)]);
    assert!(d.authentications.is_empty());
    // Port 8883 uses the Secret and the ConfigMap; port 1883 uses neither.
    assert_eq!(
        d.ports_with_changed_inputs(&new)
            .into_iter()
            .collect::<Vec<_>>(),
        [key("lb", 8883)]
    );
    assert_eq!(
        d.ports_with_changed_authorization(&old, &new)
            .into_iter()
            .collect::<Vec<_>>(),
        [key("lb", 8883)]
    );
}

#[test]
fn broker_changes_are_flagged() {
    let old = Model::defaults();
    let new = ok(
        "b.yaml",
        "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata: {name: default}
spec:
  advanced:
    clients: {maxKeepAliveSeconds: 60}
",
    )
    .model;
    let d = Model::diff(&old, &new);
    assert!(d.broker_changed);
    assert_eq!(new.broker.clients.max_keep_alive_seconds, 60);
    assert!(d.ports.is_empty());
}
