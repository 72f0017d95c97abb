//! BrokerListener of `mqttbroker.iotoperations.azure.com/v1|v1beta1` and `wardgate.io/v1`
//! (`reference/aio-broker.md` §3.1, §4).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::enums::{IssuerKind, KeyAlgorithm, PortProtocol, RotationPolicy, ServiceType, TlsMode};

/// `spec` of a BrokerListener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerListenerSpec {
    /// The Broker this listener belongs to.
    pub broker_ref: Option<String>,
    /// The Service name (default: the listener name).
    pub service_name: Option<String>,
    /// The Service type (default ClusterIp).
    pub service_type: Option<ServiceType>,
    /// The ports.
    pub ports: Vec<ListenerPort>,
}

/// One port of a listener.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerPort {
    /// The TCP port.
    pub port: i64,
    /// The node port (NodePort listeners).
    pub node_port: Option<i64>,
    /// Mqtt (default) or WebSockets.
    pub protocol: Option<PortProtocol>,
    /// A BrokerAuthentication name.
    pub authentication_ref: Option<String>,
    /// A BrokerAuthorization name.
    pub authorization_ref: Option<String>,
    /// TLS settings; absent = plain TCP.
    pub tls: Option<TlsCertMethod>,
}

/// `ports[].tls`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertMethod {
    /// Automatic or Manual.
    pub mode: TlsMode,
    /// Settings of Automatic.
    pub cert_manager_certificate_spec: Option<CertManagerCertificateSpec>,
    /// Settings of Manual.
    pub manual: Option<X509ManualCertificate>,
}

/// `tls.certManagerCertificateSpec`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManagerCertificateSpec {
    /// Lifetime, a Go duration (default 720h).
    pub duration: Option<String>,
    /// Secret to store the certificate in.
    pub secret_name: Option<String>,
    /// The same as `secretName`, as seed 000's "all supported properties" block spells it.
    pub secret: Option<String>,
    /// Namespace of the certificate (seed 000's block); ignored in standalone mode, as
    /// `metadata.namespace` is.
    pub namespace: Option<String>,
    /// Renewal lead time, a Go duration (default 240h).
    pub renew_before: Option<String>,
    /// The issuer.
    pub issuer_ref: IssuerRef,
    /// Key settings.
    pub private_key: Option<ListenerPrivateKey>,
    /// Extra SANs.
    pub san: Option<SanForCert>,
}

/// `certManagerCertificateSpec.privateKey`: the CRD's `{algorithm: Ec256, rotationPolicy}`, or
/// cert-manager's `{algorithm: ECDSA, size: 256}` as seed 000 writes it (SPEC.md §3); every
/// field optional (default Ec256, Always).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerPrivateKey {
    /// Key algorithm, in either spelling.
    pub algorithm: Option<ListenerKeyAlgorithm>,
    /// Key size, with `ECDSA` (256, 384, 521) or `RSA` (2048, 4096, 8192).
    pub size: Option<i64>,
    /// Rotation policy.
    pub rotation_policy: Option<RotationPolicy>,
}

/// The key algorithms a listener's `privateKey.algorithm` accepts: the CRD's names, which
/// include the size, and cert-manager's, which take it from `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum ListenerKeyAlgorithm {
    /// ECDSA P-256.
    Ec256,
    /// ECDSA P-384.
    Ec384,
    /// ECDSA P-521.
    Ec521,
    /// Ed25519 (both spellings).
    Ed25519,
    /// RSA 2048.
    Rsa2048,
    /// RSA 4096.
    Rsa4096,
    /// RSA 8192.
    Rsa8192,
    /// cert-manager's ECDSA, with `size`.
    #[serde(rename = "ECDSA")]
    Ecdsa,
    /// cert-manager's RSA, with `size`.
    #[serde(rename = "RSA")]
    Rsa,
}

/// A reference to a cert-manager issuer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// Issuer or ClusterIssuer.
    pub kind: IssuerKind,
    /// API group (default `cert-manager.io`).
    pub group: Option<String>,
}

/// `privateKey` of an automatic certificate.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertManagerPrivateKey {
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Rotation policy.
    pub rotation_policy: RotationPolicy,
}

/// Extra subject alternative names.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SanForCert {
    /// DNS names.
    pub dns: Option<Vec<String>>,
    /// IP addresses.
    pub ip: Option<Vec<String>>,
}

/// `tls.manual`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509ManualCertificate {
    /// A `kubernetes.io/tls` Secret name.
    pub secret_ref: String,
}
