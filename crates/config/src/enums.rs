//! The closed value sets of the resources (service types, TLS modes, key algorithms, ...), shared
//! by the raw serde types and the validated model. Deserialization matches them
//! case-insensitively (see `yaml`).

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

macro_rules! names {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The spelling used in the YAML (and in messages).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// `Enabled` or `Disabled`, AIO's toggle type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum OperationalMode {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}
names!(OperationalMode { Enabled => "Enabled", Disabled => "Disabled" });

impl OperationalMode {
    /// Whether the mode is `Enabled`.
    pub fn is_enabled(self) -> bool {
        self == OperationalMode::Enabled
    }

    pub(crate) fn from_bool(on: bool) -> Self {
        if on {
            OperationalMode::Enabled
        } else {
            OperationalMode::Disabled
        }
    }
}

/// The broker's memory profile; it caps the packet size and the in-flight PUBLISH budget.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum MemoryProfile {
    /// 4 MB packets.
    Tiny,
    /// 16 MB packets.
    Low,
    /// 64 MB packets (the default).
    #[default]
    Medium,
    /// 256 MB packets.
    High,
}
names!(MemoryProfile { Tiny => "Tiny", Low => "Low", Medium => "Medium", High => "High" });

impl MemoryProfile {
    /// The maximum packet size of the profile, in bytes (SPEC.md §9).
    pub fn max_packet_size(self) -> u32 {
        const MB: u32 = 1024 * 1024;
        match self {
            MemoryProfile::Tiny => 4 * MB,
            MemoryProfile::Low => 16 * MB,
            MemoryProfile::Medium => 64 * MB,
            MemoryProfile::High => 256 * MB,
        }
    }
}

/// What a full subscriber queue does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum QueueStrategy {
    /// Never drop: the queue grows until the session expires (bounded by `length` when set).
    #[default]
    None,
    /// Drop the oldest message to make room.
    DropOldest,
}
names!(QueueStrategy { None => "None", DropOldest => "DropOldest" });

/// How a listener's ports are exposed (SPEC.md §4.2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum ServiceType {
    /// Loopback only.
    #[default]
    ClusterIp,
    /// All interfaces, on `port`.
    LoadBalancer,
    /// All interfaces, on `nodePort`.
    NodePort,
}
names!(ServiceType { ClusterIp => "ClusterIp", LoadBalancer => "LoadBalancer", NodePort => "NodePort" });

/// The protocol served on a port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum PortProtocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSocket (or WSS).
    WebSockets,
}
names!(PortProtocol { Mqtt => "Mqtt", WebSockets => "WebSockets" });

/// How a port gets its server certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum TlsMode {
    /// Issued from a cert-manager issuer.
    Automatic,
    /// From a `kubernetes.io/tls` Secret.
    Manual,
}
names!(TlsMode { Automatic => "Automatic", Manual => "Manual" });

/// A cert-manager issuer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum IssuerKind {
    /// A namespaced `Issuer`.
    Issuer,
    /// A `ClusterIssuer`.
    ClusterIssuer,
}
names!(IssuerKind { Issuer => "Issuer", ClusterIssuer => "ClusterIssuer" });

/// The private-key algorithm of an automatically issued certificate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum KeyAlgorithm {
    /// ECDSA P-256 (the default).
    #[default]
    Ec256,
    /// ECDSA P-384.
    Ec384,
    /// ECDSA P-521.
    Ec521,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 bits.
    Rsa2048,
    /// RSA 4096 bits.
    Rsa4096,
    /// RSA 8192 bits.
    Rsa8192,
}
names!(KeyAlgorithm {
    Ec256 => "Ec256", Ec384 => "Ec384", Ec521 => "Ec521", Ed25519 => "Ed25519",
    Rsa2048 => "Rsa2048", Rsa4096 => "Rsa4096", Rsa8192 => "Rsa8192",
});

/// Whether a renewed certificate gets a new private key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum RotationPolicy {
    /// A new key at every renewal (the default).
    #[default]
    Always,
    /// Keep the key.
    Never,
}
names!(RotationPolicy { Always => "Always", Never => "Never" });

/// The kind of an authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum AuthnMethodKind {
    /// Kubernetes service-account tokens (`K8S-SAT`).
    ServiceAccountToken,
    /// Client certificates.
    X509,
    /// An external HTTPS authentication server.
    Custom,
    /// Password hashes in a Secret (Wardgate extension, SPEC.md §7.5).
    UsernamePassword,
}
names!(AuthnMethodKind {
    ServiceAccountToken => "ServiceAccountToken", X509 => "X509", Custom => "Custom",
    UsernamePassword => "UsernamePassword",
});

/// Extra checks on an X.509 client.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum AdditionalValidation {
    /// None (the default).
    #[default]
    None,
    /// The leaf CN must name an enabled Azure Device Registry device (not available standalone).
    AzureDeviceRegistry,
}
names!(AdditionalValidation { None => "None", AzureDeviceRegistry => "AzureDeviceRegistry" });

/// An MQTT action an authorization rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum BrokerMethod {
    /// CONNECT.
    Connect,
    /// PUBLISH on `topics`.
    Publish,
    /// SUBSCRIBE on `topics`.
    Subscribe,
}
names!(BrokerMethod { Connect => "Connect", Publish => "Publish", Subscribe => "Subscribe" });

/// A state store action an authorization rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum StateStoreMethod {
    /// GET and KEYNOTIFY.
    Read,
    /// SET, DEL and VDEL.
    Write,
    /// Both.
    ReadWrite,
}
names!(StateStoreMethod { Read => "Read", Write => "Write", ReadWrite => "ReadWrite" });

/// How state store keys in a rule are matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum KeyType {
    /// Glob patterns with token substitution.
    Pattern,
    /// Exact strings.
    String,
    /// Exact bytes, written in base64.
    Binary,
}
names!(KeyType { Pattern => "Pattern", String => "String", Binary => "Binary" });

/// A persistence policy's mode.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum PersistenceMode {
    /// Persist everything of this kind.
    All,
    /// Persist nothing of this kind (the default).
    #[default]
    None,
    /// Persist what the policy's settings select.
    Custom,
}
names!(PersistenceMode { All => "All", None => "None", Custom => "Custom" });

/// The log output format (Wardgate extension `diagnostics.logs.format`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default, JsonSchema,
)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
names!(LogFormat { Text => "Text", Json => "Json" });
