//! BrokerAuthentication of the current API (`reference/aio-broker.md` §5.1), with the Wardgate
//! extensions `UsernamePassword` (SPEC.md §7.5) and
//! `serviceAccountTokenSettings.issuerKeysConfigMap` (SPEC.md §7.3).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::listener::X509ManualCertificate;
use crate::enums::{AdditionalValidation, AuthnMethodKind};

/// `spec` of a BrokerAuthentication.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerAuthenticationSpec {
    /// The methods, tried in order.
    pub authentication_methods: Vec<AuthnMethod>,
}

/// One method; exactly the settings object of its `method` may be set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthnMethod {
    /// The method.
    pub method: AuthnMethodKind,
    /// Settings of Custom.
    pub custom_settings: Option<CustomSettings>,
    /// Settings of ServiceAccountToken.
    pub service_account_token_settings: Option<SatSettings>,
    /// Settings of X509.
    pub x509_settings: Option<X509Settings>,
    /// Settings of UsernamePassword (extension).
    pub username_password_settings: Option<UsernamePasswordSettings>,
}

/// `customSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomSettings {
    /// Client certificate the broker presents to the server.
    pub auth: Option<CustomAuth>,
    /// ConfigMap with the CA that verifies the server.
    pub ca_cert_config_map: Option<String>,
    /// `https://` URL.
    pub endpoint: String,
    /// Extra HTTP headers.
    pub headers: Option<BTreeMap<String, String>>,
}

/// `customSettings.auth`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuth {
    /// A `kubernetes.io/tls` Secret.
    pub x509: X509ManualCertificate,
}

/// `serviceAccountTokenSettings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SatSettings {
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Extension: ConfigMap holding the JWKS that verifies tokens outside Kubernetes.
    pub issuer_keys_config_map: Option<String>,
}

/// `x509Settings`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509Settings {
    /// Subject → attributes mapping, keyed by a free label.
    pub authorization_attributes: Option<BTreeMap<String, X509AuthorizationAttributes>>,
    /// ConfigMap with the trusted client CAs (default `client-ca`).
    pub trusted_client_ca_cert: Option<String>,
    /// None (default) or AzureDeviceRegistry.
    pub additional_validation: Option<AdditionalValidation>,
}

/// One entry of `authorizationAttributes`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct X509AuthorizationAttributes {
    /// Attributes given to a certificate with this subject.
    pub attributes: BTreeMap<String, String>,
    /// The subject, e.g. `CN = thermostat`.
    pub subject: String,
}

/// `usernamePasswordSettings` (extension).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsernamePasswordSettings {
    /// Secret whose key `passwords.toml` holds the password hashes.
    pub secret_ref: String,
}
