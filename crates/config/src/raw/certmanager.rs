//! cert-manager `Issuer`, `ClusterIssuer` and `Certificate` (apiVersion `cert-manager.io/v1`).
//!
//! Issuers of type `selfSigned` and `ca` are used (SPEC.md §6.2); `acme`, `vault` and `venafi`
//! are read so that the error can say they are not supported outside Kubernetes. A `Certificate`
//! is read because the operator's manifests bootstrap a CA with one (`seeds/000_…`).

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::listener::IssuerRef;
use crate::enums::RotationPolicy;

/// `spec` of an Issuer or ClusterIssuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerSpec {
    /// A self-signed issuer.
    pub self_signed: Option<SelfSignedIssuer>,
    /// A CA issuer backed by a Secret.
    pub ca: Option<CaIssuer>,
    /// Not supported standalone.
    pub acme: Option<IgnoredAny>,
    /// Not supported standalone.
    pub vault: Option<IgnoredAny>,
    /// Not supported standalone.
    pub venafi: Option<IgnoredAny>,
}

/// `spec.selfSigned`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfSignedIssuer {
    /// CRL distribution points written into issued certificates.
    pub crl_distribution_points: Option<Vec<String>>,
}

/// `spec.ca`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaIssuer {
    /// A `kubernetes.io/tls` Secret holding the CA certificate and key.
    pub secret_name: String,
    /// CRL distribution points.
    pub crl_distribution_points: Option<Vec<String>>,
    /// OCSP servers.
    pub ocsp_servers: Option<Vec<String>>,
    /// Issuing certificate URLs.
    #[serde(rename = "issuingCertificateURLs")]
    pub issuing_certificate_urls: Option<Vec<String>>,
}

/// `spec` of a Certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// The Secret the certificate is written to.
    pub secret_name: String,
    /// The issuer.
    pub issuer_ref: IssuerRef,
    /// Whether the certificate is a CA.
    #[serde(rename = "isCA")]
    pub is_ca: Option<bool>,
    /// Subject CN.
    pub common_name: Option<String>,
    /// DNS SANs.
    pub dns_names: Option<Vec<String>>,
    /// IP SANs.
    pub ip_addresses: Option<Vec<String>>,
    /// URI SANs.
    pub uris: Option<Vec<String>>,
    /// Email SANs.
    pub email_addresses: Option<Vec<String>>,
    /// Go duration (default 2160h).
    pub duration: Option<String>,
    /// Go duration (default a third of the duration).
    pub renew_before: Option<String>,
    /// Percentage form of renewBefore.
    pub renew_before_percentage: Option<i64>,
    /// Subject fields.
    pub subject: Option<X509Subject>,
    /// A literal subject.
    pub literal_subject: Option<String>,
    /// Key settings.
    pub private_key: Option<CertificatePrivateKey>,
    /// Key usages.
    pub usages: Option<Vec<String>>,
    /// Accepted and ignored.
    pub secret_template: Option<IgnoredAny>,
    /// Accepted and ignored.
    pub revision_history_limit: Option<i64>,
    /// Accepted and ignored.
    pub encode_usages_in_request: Option<bool>,
    /// Accepted and ignored.
    pub keystores: Option<IgnoredAny>,
    /// Accepted and ignored.
    pub additional_output_formats: Option<IgnoredAny>,
    /// Accepted and ignored.
    pub name_constraints: Option<IgnoredAny>,
}

/// `spec.subject`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Subject {
    /// O.
    pub organizations: Option<Vec<String>>,
    /// C.
    pub countries: Option<Vec<String>>,
    /// OU.
    pub organizational_units: Option<Vec<String>>,
    /// L.
    pub localities: Option<Vec<String>>,
    /// ST.
    pub provinces: Option<Vec<String>>,
    /// Street.
    pub street_addresses: Option<Vec<String>>,
    /// Postal code.
    pub postal_codes: Option<Vec<String>>,
    /// Serial number.
    pub serial_number: Option<String>,
}

/// `spec.privateKey` of a Certificate (cert-manager's spelling, unlike the listener's).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificatePrivateKey {
    /// RSA (default), ECDSA or Ed25519.
    pub algorithm: Option<CertManagerKeyAlgorithm>,
    /// Key size: RSA 2048/4096/8192, ECDSA 256/384/521.
    pub size: Option<i64>,
    /// PKCS1 (default) or PKCS8.
    pub encoding: Option<KeyEncoding>,
    /// Always or Never.
    pub rotation_policy: Option<RotationPolicy>,
}

/// cert-manager key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum CertManagerKeyAlgorithm {
    /// RSA.
    #[serde(rename = "RSA")]
    Rsa,
    /// ECDSA.
    #[serde(rename = "ECDSA")]
    Ecdsa,
    /// Ed25519.
    Ed25519,
}

/// Private key encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyEncoding {
    /// PKCS#1.
    #[serde(rename = "PKCS1")]
    Pkcs1,
    /// PKCS#8.
    #[serde(rename = "PKCS8")]
    Pkcs8,
}
