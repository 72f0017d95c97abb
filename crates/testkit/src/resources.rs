//! Configuration resources as a user writes them (the Azure IoT Operations broker API, namespace
//! `azure-iot-operations`), for tests that give a broker a config folder.
//!
//! Ports are YAML list items (each `  - port: …`, indented by two spaces, ending in a newline),
//! made by [`port`], [`mqtt_port`], [`manual_tls_port`] and [`automatic_tls_port`] or written by the test,
//! and concatenated.

use std::fmt::Write as _;

/// The `apiVersion` of every resource.
pub const API_VERSION: &str = "mqttbroker.iotoperations.azure.com/v1";

/// The built-in ClusterIssuer backed by the quickstart CA.
pub const QUICKSTART_ISSUER: &str = "azure-iot-operations-aio-certificate-issuer";

/// A resource of `kind` named `name`; `spec` is the body under `spec:` (indented by two spaces,
/// ending in a newline).
pub fn resource(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: {API_VERSION}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: azure-iot-operations\nspec:\n{spec}"
    )
}

/// The BrokerListener `default` of service `aio-broker`, ClusterIp (every port on loopback
/// only), with `ports`.
pub fn listener(ports: &str) -> String {
    listener_of("default", "aio-broker", "ClusterIp", ports)
}

/// A BrokerListener `name` whose service is also called `name`, of `service_type` (`ClusterIp`,
/// `NodePort`, `LoadBalancer`), with `ports`.
pub fn named_listener(name: &str, service_type: &str, ports: &str) -> String {
    listener_of(name, name, service_type, ports)
}

fn listener_of(name: &str, service_name: &str, service_type: &str, ports: &str) -> String {
    resource(
        "BrokerListener",
        name,
        &format!(
            "  brokerRef: default\n  serviceName: {service_name}\n  serviceType: {service_type}\n  ports:\n{ports}"
        ),
    )
}

/// A plain port item of `protocol` (`Mqtt` or `WebSockets`).
pub fn port(port: u16, protocol: &str) -> String {
    format!("  - port: {port}\n    protocol: {protocol}\n")
}

/// A plain MQTT port item.
pub fn mqtt_port(port: u16) -> String {
    self::port(port, "Mqtt")
}

/// An MQTT port item using the BrokerAuthentication `authn` and, when given, the
/// BrokerAuthorization `authz`.
pub fn authenticated_port(port: u16, authn: &str, authz: Option<&str>) -> String {
    let mut item = format!("{}    authenticationRef: {authn}\n", mqtt_port(port));
    if let Some(authz) = authz {
        let _ = writeln!(item, "    authorizationRef: {authz}");
    }
    item
}

/// A TLS block for a port item, serving the certificate of the TLS Secret `secret`. Append it to
/// a port item: `mqtt_port(p) + &manual_tls(s)`.
pub fn manual_tls(secret: &str) -> String {
    format!("    tls:\n      mode: Manual\n      manual:\n        secretRef: {secret}\n")
}

/// An MQTT port item with TLS from the Secret `secret`.
pub fn manual_tls_port(port: u16, secret: &str) -> String {
    mqtt_port(port) + &manual_tls(secret)
}

/// A port item (`protocol` Mqtt or WebSockets) with an automatic certificate from the issuer
/// `kind`/`name`, with `extra` certManagerCertificateSpec fields (each line indented by eight
/// spaces and ending in a newline).
pub fn automatic_tls_port(
    port: u16,
    protocol: &str,
    kind: &str,
    name: &str,
    extra: &str,
) -> String {
    format!(
        "  - port: {port}\n    protocol: {protocol}\n    tls:\n      mode: Automatic\n      certManagerCertificateSpec:\n        issuerRef:\n          group: cert-manager.io\n          kind: {kind}\n          name: {name}\n{extra}"
    )
}

/// [`automatic_tls_port`] from the built-in ClusterIssuer (the quickstart CA).
pub fn quickstart_tls_port(port: u16, protocol: &str, extra: &str) -> String {
    automatic_tls_port(port, protocol, "ClusterIssuer", QUICKSTART_ISSUER, extra)
}

/// The Broker resource `default` with `spec`.
pub fn broker(spec: &str) -> String {
    resource("Broker", "default", spec)
}

/// A BrokerAuthentication `name` with `methods` (YAML list items under
/// `authenticationMethods:`, indented by two spaces).
pub fn authentication(name: &str, methods: &str) -> String {
    resource(
        "BrokerAuthentication",
        name,
        &format!("  authenticationMethods:\n{methods}"),
    )
}

/// The authentication method item UsernamePassword with the passwords of the Secret `secret`.
pub fn password_method(secret: &str) -> String {
    format!(
        "  - method: UsernamePassword\n    usernamePasswordSettings:\n      secretRef: {secret}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_the_resource_a_user_writes() {
        let yaml = listener(
            &(manual_tls_port(8883, "cert") + &authenticated_port(1883, "users", Some("policy"))),
        );
        assert_eq!(
            yaml,
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\n  namespace: azure-iot-operations\nspec:\n  brokerRef: default\n  serviceName: aio-broker\n  serviceType: ClusterIp\n  ports:\n  - port: 8883\n    protocol: Mqtt\n    tls:\n      mode: Manual\n      manual:\n        secretRef: cert\n  - port: 1883\n    protocol: Mqtt\n    authenticationRef: users\n    authorizationRef: policy\n"
        );
    }

    #[test]
    fn an_authentication_lists_its_methods() {
        assert_eq!(
            authentication("users", &password_method("passwords")),
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata:\n  name: users\n  namespace: azure-iot-operations\nspec:\n  authenticationMethods:\n  - method: UsernamePassword\n    usernamePasswordSettings:\n      secretRef: passwords\n"
        );
    }
}
