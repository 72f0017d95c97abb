//! Every validation rule: a failing YAML and the exact messages, one test per rule.

use crate::common::{errors, warnings};

#[track_caller]
fn check(name: &str, yaml: &str, expected: &[&str]) {
    assert_eq!(errors(name, yaml), expected);
}

/// One listener per serviceType: a second ClusterIp listener.
#[test]
fn a_second_listener_of_a_service_type_is_rejected() {
    check(
        "01-two-clusterip.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: second
spec:
  ports:
  - port: 1883
"#,
        &[
            r#"01-two-clusterip.yaml:6: BrokerListener/second: spec.serviceType ClusterIp is already used by BrokerListener/default: a broker has at most 3 listeners, one per serviceType (add these ports to BrokerListener/default)"#,
        ],
    );
}

/// At most 3 listeners: the fourth necessarily repeats a serviceType.
#[test]
fn a_fourth_listener_is_rejected() {
    check(
        "02-four-listeners.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: lb}
spec:
  serviceType: LoadBalancer
  ports: [{port: 1883}]
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: np}
spec:
  serviceType: NodePort
  ports: [{port: 1884, nodePort: 31884}]
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: lb2}
spec:
  serviceType: loadbalancer
  ports: [{port: 1885}]
"#,
        &[
            r#"02-four-listeners.yaml:19: document 3: BrokerListener/lb2: spec.serviceType LoadBalancer is already used by BrokerListener/lb: a broker has at most 3 listeners, one per serviceType (add these ports to BrokerListener/lb)"#,
        ],
    );
}

/// The example of SPEC.md §3: a port already used by the default listener.
#[test]
fn a_port_used_by_another_listener_is_rejected() {
    check(
        "listeners.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 18883
"#,
        &[
            r#"listeners.yaml:8: BrokerListener/lb: spec.ports[0].port 18883 is already used by BrokerListener/default"#,
        ],
    );
}

/// A port listed twice in one listener.
#[test]
fn a_port_listed_twice_is_rejected() {
    check(
        "04-port-twice.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
  - port: 8883
  - port: 1883
"#,
        &[
            r#"04-port-twice.yaml:10: BrokerListener/lb: spec.ports[2].port 1883 is listed twice in this listener (also spec.ports[0].port)"#,
        ],
    );
}

/// serviceName unique across listeners.
#[test]
fn service_names_are_unique() {
    check(
        "05-service-name.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  serviceName: aio-broker
  ports:
  - port: 1883
"#,
        &[
            r#"05-service-name.yaml:7: BrokerListener/lb: spec.serviceName "aio-broker" is already used by BrokerListener/default"#,
        ],
    );
}

/// nodePort range, required on NodePort, not colliding with a bound port; port range.
#[test]
fn node_port_rules() {
    check(
        "06-nodeport.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: np
spec:
  serviceType: NodePort
  ports:
  - port: 1883
    nodePort: 40000
  - port: 1884
  - port: 1885
    nodePort: 31885
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 31885
    nodePort: 31000
  - port: 70000
"#,
        &[
            r#"06-nodeport.yaml:9: document 1: BrokerListener/np: spec.ports[0].nodePort 40000 is out of range 30000–32767"#,
            r#"06-nodeport.yaml:10: document 1: BrokerListener/np: spec.ports[1].nodePort is required on a NodePort listener outside Kubernetes (30000–32767)"#,
            r#"06-nodeport.yaml:12: document 1: BrokerListener/np: spec.ports[2].nodePort 31885 is already used as a port by BrokerListener/lb"#,
            r#"06-nodeport.yaml:23: document 2: BrokerListener/lb: spec.ports[1].port 70000 is out of range 0–65535"#,
        ],
    );
}

/// The ranges of reference/aio-broker.md §2.
#[test]
fn every_numeric_broker_field_is_range_checked() {
    check(
        "07-broker-ranges.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: default
spec:
  memoryProfile: tiny
  cardinality:
    frontend: {replicas: 0, workers: 17}
    backendChain: {partitions: 0, redundancyFactor: 6, workers: 1}
  advanced:
    clients:
      maxSessionExpirySeconds: 0
      maxMessageExpirySeconds: 5000000000
      maxPacketSizeBytes: 0
      maxReceiveMaximum: 70000
      maxKeepAliveSeconds: -1
      subscriberQueueLimit: {length: 0, strategy: dropOldest}
  diagnostics:
    logs: {level: debug}
    metrics: {prometheusPort: 70000}
    selfCheck: {mode: Enabled, intervalSeconds: 10, timeoutSeconds: 200}
    traces:
      mode: Disabled
      cacheSizeMegabytes: 0
      spanChannelCapacity: 5
      selfTracing: {mode: Enabled, intervalSeconds: 0}
  persistence:
    maxSize: 10M
  diskBackedMessageBuffer:
    maxSize: 10GiB
"#,
        &[
            r#"07-broker-ranges.yaml:8: Broker/default: spec.cardinality.frontend.replicas 0 is out of range 1–16"#,
            r#"07-broker-ranges.yaml:8: Broker/default: spec.cardinality.frontend.workers 17 is out of range 1–16"#,
            r#"07-broker-ranges.yaml:9: Broker/default: spec.cardinality.backendChain.partitions 0 is out of range 1–16"#,
            r#"07-broker-ranges.yaml:9: Broker/default: spec.cardinality.backendChain.redundancyFactor 6 is out of range 1–5"#,
            r#"07-broker-ranges.yaml:12: Broker/default: spec.advanced.clients.maxSessionExpirySeconds 0 is out of range 1–4294967295"#,
            r#"07-broker-ranges.yaml:13: Broker/default: spec.advanced.clients.maxMessageExpirySeconds 5000000000 is out of range 1–4294967295"#,
            r#"07-broker-ranges.yaml:14: Broker/default: spec.advanced.clients.maxPacketSizeBytes 0 is out of range 1–268435456"#,
            r#"07-broker-ranges.yaml:15: Broker/default: spec.advanced.clients.maxReceiveMaximum 70000 is out of range 1–65535"#,
            r#"07-broker-ranges.yaml:16: Broker/default: spec.advanced.clients.maxKeepAliveSeconds -1 is out of range 0–65535"#,
            r#"07-broker-ranges.yaml:17: Broker/default: spec.advanced.clients.subscriberQueueLimit.length 0 is out of range 1–9223372036854775807"#,
            r#"07-broker-ranges.yaml:20: Broker/default: spec.diagnostics.metrics.prometheusPort 70000 is out of range 0–65535"#,
            r#"07-broker-ranges.yaml:21: Broker/default: spec.diagnostics.selfCheck.intervalSeconds 10 is out of range 30–300"#,
            r#"07-broker-ranges.yaml:21: Broker/default: spec.diagnostics.selfCheck.timeoutSeconds 200 is out of range 5–120"#,
            r#"07-broker-ranges.yaml:24: Broker/default: spec.diagnostics.traces.cacheSizeMegabytes 0 is out of range 1–128"#,
            r#"07-broker-ranges.yaml:25: Broker/default: spec.diagnostics.traces.spanChannelCapacity 5 is out of range 1000–100000"#,
            r#"07-broker-ranges.yaml:26: Broker/default: spec.diagnostics.traces.selfTracing.intervalSeconds 0 is out of range 1–300"#,
            r#"07-broker-ranges.yaml:28: Broker/default: spec.persistence.maxSize "10M" must be more than 100 MB"#,
            r#"07-broker-ranges.yaml:30: Broker/default: spec.diskBackedMessageBuffer.maxSize "10GiB" must be a number followed by K, M, G, T, P or E (e.g. 1G)"#,
        ],
    );
}

/// Kubernetes name formats and the Broker name.
#[test]
fn names_follow_kubernetes_rules() {
    check(
        "08-names.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: My_Listener
spec:
  serviceType: LoadBalancer
  serviceName: 1abc
  ports:
  - port: 1883
---
apiVersion: v1
kind: Secret
metadata:
  name: Bad..Name
stringData:
  a: b
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: Broker
metadata:
  name: mybroker
spec: {}
"#,
        &[
            r#"08-names.yaml:4: document 1: BrokerListener/My_Listener: metadata.name "My_Listener" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit"#,
            r#"08-names.yaml:7: document 1: BrokerListener/My_Listener: spec.serviceName "1abc" is not a valid Service name: it must start with a lowercase letter"#,
            r#"08-names.yaml:14: document 2: Secret/Bad..Name: metadata.name "Bad..Name" is not a valid name: use up to 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"#,
            r#"08-names.yaml:21: document 3: Broker/mybroker: metadata.name "mybroker" must be "default": AIO has one Broker, named default"#,
        ],
    );
}

/// References to missing BrokerAuthentication/BrokerAuthorization; X509 on a port without TLS.
#[test]
fn references_and_x509_without_tls() {
    check(
        "09-refs.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
    authenticationRef: x509-auth
    authorizationRef: abac
  - port: 1884
    authenticationRef: certs
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: certs
spec:
  authenticationMethods:
  - method: x509
"#,
        &[
            r#"09-refs.yaml:9: document 1: BrokerListener/lb: spec.ports[0].authenticationRef "x509-auth" names a BrokerAuthentication that does not exist"#,
            r#"09-refs.yaml:10: document 1: BrokerListener/lb: spec.ports[0].authorizationRef "abac" names a BrokerAuthorization that does not exist"#,
            r#"09-refs.yaml:12: document 1: BrokerListener/lb: spec.ports[1].authenticationRef "certs" has an X509 method, which needs TLS on this port: add tls to port 1884"#,
        ],
    );
}

/// Token substitution must be whole segments; topic filter syntax; topics per method.
#[test]
fn authorization_topics_and_tokens() {
    check(
        "10-topics.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: authz
spec:
  authorizationPolicies:
    rules:
    - principals:
        clientIds: [a]
      brokerResources:
      - method: Connect
        topics: [x]
      - method: Publish
        topics:
        - clients/{principal.clientId}/#
        - client-{principal.clientId}/#
        - a/{principal.attributes.}/b
        - a/b#
      - method: Subscribe
"#,
        &[
            r#"10-topics.yaml:12: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[0].topics must not be set for method Connect"#,
            r#"10-topics.yaml:16: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[1].topics[1] "client-{principal.clientId}/#": the token {principal.clientId} must be a whole topic segment, as in clients/{principal.clientId}/#"#,
            r#"10-topics.yaml:17: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[1].topics[2] "a/{principal.attributes.}/b" uses the unknown token {principal.attributes.} (expected {principal.clientId}, {principal.username} or {principal.attributes.<key>})"#,
            r#"10-topics.yaml:18: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[1].topics[3] "a/b#" is not a valid topic filter: `+` and `#` must be whole segments and `#` the last one"#,
            r#"10-topics.yaml:19: BrokerAuthorization/authz: spec.authorizationPolicies.rules[0].brokerResources[2].topics must list at least one topic for method Subscribe"#,
        ],
    );
}

/// reference/aio-broker.md §3.3, and authorizationEnabled without a BrokerAuthorization.
#[test]
fn old_api_service_name_sharing() {
    check(
        "12-old-sharing.yaml",
        r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: listener
spec:
  brokerRef: broker
  port: 8883
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: other-name
spec:
  brokerRef: broker
  port: 1883
  serviceType: clusterIp
  serviceName: my-service
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: lb-same-name
spec:
  brokerRef: broker
  port: 1884
  serviceType: loadBalancer
  serviceName: aio-mq-dmqtt-frontend
---
apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: lb-ok
spec:
  brokerRef: broker
  port: 1885
  serviceType: loadBalancer
  serviceName: my-lb
  authorizationEnabled: true
"#,
        &[
            r#"12-old-sharing.yaml:17: document 2: BrokerListener/other-name: spec.serviceName "my-service" differs from "aio-mq-dmqtt-frontend" of BrokerListener/listener: old-API listeners with the same serviceType must share one serviceName"#,
            r#"12-old-sharing.yaml:27: document 3: BrokerListener/lb-same-name: spec.serviceName "aio-mq-dmqtt-frontend" is used by BrokerListener/listener with serviceType ClusterIp: old-API listeners of different serviceTypes must have different serviceNames"#,
            r#"12-old-sharing.yaml:38: document 4: BrokerListener/lb-ok: spec.authorizationEnabled is true but no BrokerAuthorization lists this listener in spec.listenerRef"#,
        ],
    );
}

/// Unknown fields (every one in the document), unknown kinds, wrong apiVersions, non-resources.
#[test]
fn unknown_fields_kinds_and_api_versions() {
    check(
        "13-unknown.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
  labels: {a: b}
  uid: 123
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
    prot: Mqtt
  - port: "abc"
    protocol: Http
status:
  anything: [1, 2]
---
kind: Foo
apiVersion: v1
metadata: {name: f}
---
apiVersion: mqttbroker.iotoperations.azure.com/v2
kind: BrokerListener
metadata: {name: x}
---
- just
- a list
"#,
        &[
            r#"13-unknown.yaml:11: document 1: BrokerListener/lb: spec.ports[0].prot is not a known field (expected one of: port, nodePort, protocol, authenticationRef, authorizationRef, tls)"#,
            r#"13-unknown.yaml:12: document 1: BrokerListener/lb: spec.ports[1].port must be an integer, found string "abc""#,
            r#"13-unknown.yaml:13: document 1: BrokerListener/lb: spec.ports[1].protocol has an unknown value "Http" (expected one of: Mqtt, WebSockets)"#,
            r#"13-unknown.yaml:17: document 2: Foo/f: kind "Foo" is not a kind Wardgate reads (expected one of: Broker, BrokerListener, BrokerAuthentication, BrokerAuthorization, Secret, ConfigMap, ServiceAccount, Issuer, ClusterIssuer, Certificate)"#,
            r#"13-unknown.yaml:21: document 3: BrokerListener/x: apiVersion "mqttbroker.iotoperations.azure.com/v2" is not accepted for BrokerListener (expected one of: mqttbroker.iotoperations.azure.com/v1, mqttbroker.iotoperations.azure.com/v1beta1, wardgate.io/v1, mq.iotoperations.azure.com/v1beta1)"#,
            r#"13-unknown.yaml:25: document 4: is not a resource: expected a mapping with apiVersion, kind and metadata"#,
        ],
    );
}

/// An enum value outside its set.
#[test]
fn unknown_enum_value() {
    check(
        "14-authn.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: a
spec:
  authenticationMethods:
  - method: Custom
    customSettings:
      endpoint: http://auth.example
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: []
    x509Settings: {}
  - method: UsernamePassword
  - method: Magic
"#,
        &[
            r#"14-authn.yaml:15: BrokerAuthentication/a: spec.authenticationMethods[3].method has an unknown value "Magic" (expected one of: ServiceAccountToken, X509, Custom, UsernamePassword)"#,
        ],
    );
}

/// Secret data, issuer types, a resource defined twice.
#[test]
fn secrets_issuers_and_duplicates() {
    check(
        "15-resources.yaml",
        r#"apiVersion: v1
kind: Secret
metadata:
  name: s
type: kubernetes.io/tls
data:
  tls.crt: "not base64!"
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: both
spec:
  selfSigned: {}
  ca: {secretName: x}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: vault
spec:
  vault: {server: https://v}
---
apiVersion: v1
kind: Secret
metadata:
  name: s
stringData: {a: b}
"#,
        &[
            r#"15-resources.yaml:7: document 1: Secret/s: data["tls.crt"] is not valid base64 (data values are base64; use stringData for plain text)"#,
            r#"15-resources.yaml:7: document 1: Secret/s: data must have the key tls.key (type kubernetes.io/tls)"#,
            r#"15-resources.yaml:14: document 2: Issuer/both: spec must set exactly one of selfSigned or ca"#,
            r#"15-resources.yaml:22: document 3: ClusterIssuer/vault: spec.vault is not supported outside Kubernetes: use selfSigned or ca"#,
            r#"15-resources.yaml:27: document 4: Secret/s: metadata.name "s" is already defined in 15-resources.yaml:1"#,
        ],
    );
}

/// brokerRef must name the Broker.
#[test]
fn broker_ref_names_the_broker() {
    check(
        "17-brokerref.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  brokerRef: my-broker
  serviceType: LoadBalancer
  ports:
  - port: 1883
"#,
        &[
            r#"17-brokerref.yaml:6: BrokerListener/lb: spec.brokerRef "my-broker" names no Broker (the Broker is "default")"#,
        ],
    );
}

/// authorizationRef without authenticationRef, a missing Secret and empty rules are warnings.
#[test]
fn warnings_do_not_reject() {
    assert_eq!(
        warnings(
            "16-warnings.yaml",
            r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
    authorizationRef: authz
  - port: 8883
    authenticationRef: default
    tls:
      mode: Manual
      manual: {secretRef: server-cert-secret}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: authz
spec:
  authorizationPolicies:
    rules: []
"#
        ),
        [
            r#"16-warnings.yaml:9: document 1: BrokerListener/lb: spec.ports[0].authorizationRef has no effect without an authenticationRef on the same port (AIO behaviour): every client may do everything"#,
            r#"16-warnings.yaml:13: document 1: BrokerListener/lb: spec.ports[1].tls Secret/server-cert-secret does not exist yet: port 8883 will wait for it"#,
            r#"16-warnings.yaml:22: document 2: BrokerAuthorization/authz: spec.authorizationPolicies.rules is empty: every port that uses this authorization denies everything"#,
        ]
    );
}

/// TLS mode with the wrong sub-object; durations, issuer group and SANs.
#[test]
fn tls_mode_needs_its_own_sub_object() {
    check(
        "11-tls.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8883
    tls:
      mode: Manual
  - port: 8884
    tls:
      mode: Automatic
  - port: 8885
    tls:
      mode: manual
      manual: {secretRef: s}
      certManagerCertificateSpec:
        issuerRef: {name: i, kind: Issuer}
  - port: 8886
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: i, kind: Issuer}
        duration: 10 days
  - port: 8887
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef: {name: i, kind: clusterissuer, group: example.com}
        duration: 24h
        renewBefore: 48h
        san:
          ip: [10.0.0.300]
"#,
        &[
            r#"11-tls.yaml:10: BrokerListener/lb: spec.ports[0].tls.manual is required when mode is Manual"#,
            r#"11-tls.yaml:13: BrokerListener/lb: spec.ports[1].tls.certManagerCertificateSpec is required when mode is Automatic"#,
            r#"11-tls.yaml:19: BrokerListener/lb: spec.ports[2].tls.certManagerCertificateSpec must not be set when mode is Manual (use manual.secretRef)"#,
            r#"11-tls.yaml:25: BrokerListener/lb: spec.ports[3].tls.certManagerCertificateSpec.duration "10 days" is not a duration; write it like 720h, 1h30m, 45m or 90s"#,
            r#"11-tls.yaml:30: BrokerListener/lb: spec.ports[4].tls.certManagerCertificateSpec.issuerRef.group "example.com" is not supported outside Kubernetes: only cert-manager.io issuers (selfSigned, ca) can issue here"#,
            r#"11-tls.yaml:32: BrokerListener/lb: spec.ports[4].tls.certManagerCertificateSpec.renewBefore (48h) must be shorter than duration (24h)"#,
            r#"11-tls.yaml:34: BrokerListener/lb: spec.ports[4].tls.certManagerCertificateSpec.san.ip[0] "10.0.0.300" is not an IP address"#,
        ],
    );
}

/// Each method with its own settings object; https endpoints; at least one audience.
#[test]
fn authentication_methods_need_their_own_settings() {
    check(
        "18-authn-settings.yaml",
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: a
spec:
  authenticationMethods:
  - method: Custom
    customSettings:
      endpoint: http://auth.example
  - method: ServiceAccountToken
    serviceAccountTokenSettings:
      audiences: []
    x509Settings: {}
  - method: UsernamePassword
  - method: Custom
"#,
        &[
            r#"18-authn-settings.yaml:9: BrokerAuthentication/a: spec.authenticationMethods[0].customSettings.endpoint "http://auth.example" must be an https:// URL"#,
            r#"18-authn-settings.yaml:12: BrokerAuthentication/a: spec.authenticationMethods[1].serviceAccountTokenSettings.audiences must list at least one audience"#,
            r#"18-authn-settings.yaml:13: BrokerAuthentication/a: spec.authenticationMethods[1].x509Settings must not be set when method is ServiceAccountToken"#,
            r#"18-authn-settings.yaml:14: BrokerAuthentication/a: spec.authenticationMethods[2].usernamePasswordSettings is required when method is UsernamePassword"#,
            r#"18-authn-settings.yaml:15: BrokerAuthentication/a: spec.authenticationMethods[3].customSettings is required when method is Custom"#,
        ],
    );
}

/// Every error of a configuration is reported, across files and documents, not only the first.
#[test]
fn every_error_is_reported() {
    let yaml = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 18883
  - port: 99999
    authenticationRef: nope
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: np
spec:
  serviceType: NodePort
  ports:
  - port: 1883
    colour: blue
"#;
    assert_eq!(
        errors("all.yaml", yaml),
        [
            "all.yaml:8: document 1: BrokerListener/lb: spec.ports[0].port 18883 is already used by BrokerListener/default",
            "all.yaml:9: document 1: BrokerListener/lb: spec.ports[1].port 99999 is out of range 0–65535",
            "all.yaml:10: document 1: BrokerListener/lb: spec.ports[1].authenticationRef \"nope\" names a BrokerAuthentication that does not exist",
            "all.yaml:20: document 2: BrokerListener/np: spec.ports[0].colour is not a known field (expected one of: port, nodePort, protocol, authenticationRef, authorizationRef, tls)",
        ]
    );
}

/// A reference to a resource whose own document is broken is not reported a second time.
#[test]
fn references_to_broken_resources_are_not_reported_twice() {
    let yaml = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: certs
spec:
  authenticationMethods:
  - method: X509
    x509Setting: {}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 8883
    authenticationRef: certs
"#;
    assert_eq!(
        errors("broken.yaml", yaml),
        [
            "broken.yaml:8: document 1: BrokerAuthentication/certs: spec.authenticationMethods[0].x509Setting is not a known field (expected one of: method, customSettings, serviceAccountTokenSettings, x509Settings, usernamePasswordSettings)"
        ]
    );
}

/// Enum values are matched case-insensitively everywhere.
#[test]
fn enum_values_are_case_insensitive() {
    let yaml = r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LOADBALANCER
  ports:
  - port: 8883
    protocol: websockets
    tls:
      mode: AUTOMATIC
      certManagerCertificateSpec:
        issuerRef: {name: azure-iot-operations-aio-certificate-issuer, kind: clusterissuer}
        privateKey: {algorithm: rsa2048, rotationPolicy: never}
"#;
    assert!(errors_or_none("ci.yaml", yaml).is_empty());
}

fn errors_or_none(name: &str, yaml: &str) -> Vec<String> {
    match wardgate_config::load_str(name, yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}
