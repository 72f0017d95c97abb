//! BrokerAuthorization of the current API (`reference/aio-broker.md` §6.1).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::enums::{BrokerMethod, KeyType, OperationalMode, StateStoreMethod};

/// `spec` of a BrokerAuthorization.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerAuthorizationSpec {
    /// The policy.
    pub authorization_policies: AuthorizationConfig,
}

/// `authorizationPolicies`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Decision cache (default Enabled).
    pub cache: Option<OperationalMode>,
    /// The rules; none = deny everything.
    pub rules: Option<Vec<AuthorizationRule>>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRule {
    /// MQTT grants.
    pub broker_resources: Vec<BrokerResourceRule>,
    /// Who the rule applies to.
    pub principals: PrincipalDefinition,
    /// State store grants.
    pub state_store_resources: Option<Vec<StateStoreResourceRule>>,
}

/// One `brokerResources` entry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrokerResourceRule {
    /// Connect, Publish or Subscribe.
    pub method: BrokerMethod,
    /// Client IDs allowed to connect (Connect only).
    pub client_ids: Option<Vec<String>>,
    /// Topic filters (Publish and Subscribe).
    pub topics: Option<Vec<String>>,
}

/// `principals`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrincipalDefinition {
    /// Attribute maps (ORed; keys within a map ANDed).
    pub attributes: Option<Vec<BTreeMap<String, String>>>,
    /// Client IDs.
    pub client_ids: Option<Vec<String>>,
    /// Usernames.
    pub usernames: Option<Vec<String>>,
}

/// One `stateStoreResources` entry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateStoreResourceRule {
    /// Pattern, String or Binary.
    pub key_type: KeyType,
    /// The keys.
    pub keys: Vec<String>,
    /// Read, Write or ReadWrite.
    pub method: StateStoreMethod,
}
