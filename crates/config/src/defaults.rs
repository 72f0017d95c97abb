//! The resources AIO creates at deployment (SPEC.md §4.1, `reference/aio-broker.md` §10), the
//! quickstart (SPEC.md §4.3) and the insecure listener of `--add-insecure-listener`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diag::{ConfigErrors, Diagnostic};
use crate::model::{
    Authentication, AuthnMethod, AutomaticTls, Broker, ClientLimits, Diagnostics, Issuer,
    IssuerKind, IssuerRef, IssuerSource, Listener, ListenerPort, MemoryProfile, Model,
    OperationalMode, Persistence, PersistenceMode, PersistencePolicy, PortProtocol, PrivateKey,
    SatSettings, ServiceType, StateStorePersistence, Tls,
};

/// The Broker's name.
pub const DEFAULT_BROKER: &str = "default";
/// The default listener's name.
pub const DEFAULT_LISTENER: &str = "default";
/// The default listener's Service name.
pub const DEFAULT_SERVICE_NAME: &str = "aio-broker";
/// The default listener's port.
pub const DEFAULT_PORT: u16 = 18883;
/// The default BrokerAuthentication's name.
pub const DEFAULT_AUTHENTICATION: &str = "default";
/// The default BrokerAuthentication's audience.
pub const DEFAULT_AUDIENCE: &str = "aio-internal";
/// The built-in ClusterIssuer backed by the quickstart CA.
pub const QUICKSTART_ISSUER: &str = "azure-iot-operations-aio-certificate-issuer";
/// The default Issuer of AIO 0.5–0.8 deployments, an alias of the quickstart CA here.
pub const OLD_DEFAULT_ISSUER: &str = "mq-dmqtt-frontend";
/// The listener added by `--add-insecure-listener`.
pub const INSECURE_LISTENER: &str = "default-insecure";
/// The plain MQTT port of the quickstart and of the insecure listener.
pub const QUICKSTART_PORT: u16 = 1883;
/// The cert-manager API group.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";
/// Default lifetime of an automatic server certificate.
pub const CERT_DURATION: Duration = Duration::from_secs(720 * 3600);
/// Default renewal lead time of an automatic server certificate.
pub const CERT_RENEW_BEFORE: Duration = Duration::from_secs(240 * 3600);
/// The quickstart's persistence size limit.
pub const QUICKSTART_PERSISTENCE_BYTES: u64 = 1024 * 1024 * 1024;

/// The default Secret name of an automatic certificate.
pub fn automatic_secret_name(service_name: &str, port: u16) -> String {
    format!("{service_name}-frontend-server-{port}")
}

/// The Broker `default`: memory profile Medium, no persistence, logs at info.
pub(crate) fn default_broker() -> Broker {
    Broker {
        name: DEFAULT_BROKER.to_owned(),
        memory_profile: MemoryProfile::Medium,
        clients: ClientLimits::default(),
        persistence: None,
        diagnostics: Diagnostics::default(),
        cardinality: None,
        encrypt_internal_traffic: OperationalMode::Enabled,
        internal_certs: None,
        disk_backed_message_buffer: None,
        generate_resource_limits_cpu: OperationalMode::Enabled,
        cluster: None,
    }
}

/// The BrokerListener `default`: ClusterIp `aio-broker`, port 18883, TLS Automatic from the
/// quickstart ClusterIssuer, authentication `default`.
pub(crate) fn default_listener() -> Listener {
    Listener {
        name: DEFAULT_LISTENER.to_owned(),
        service_name: DEFAULT_SERVICE_NAME.to_owned(),
        service_type: ServiceType::ClusterIp,
        ports: vec![ListenerPort {
            port: DEFAULT_PORT,
            node_port: None,
            protocol: PortProtocol::Mqtt,
            tls: Some(Tls::Automatic(AutomaticTls {
                issuer_ref: IssuerRef {
                    name: QUICKSTART_ISSUER.to_owned(),
                    kind: IssuerKind::ClusterIssuer,
                    group: CERT_MANAGER_GROUP.to_owned(),
                },
                duration: CERT_DURATION,
                renew_before: CERT_RENEW_BEFORE,
                secret_name: automatic_secret_name(DEFAULT_SERVICE_NAME, DEFAULT_PORT),
                private_key: PrivateKey::default(),
                san_dns: Vec::new(),
                san_ip: Vec::new(),
            })),
            authentication_ref: Some(DEFAULT_AUTHENTICATION.to_owned()),
            authorization_ref: None,
        }],
    }
}

/// The BrokerAuthentication `default`: ServiceAccountToken with audience `aio-internal`.
pub(crate) fn default_authentication() -> Authentication {
    Authentication {
        name: DEFAULT_AUTHENTICATION.to_owned(),
        methods: vec![AuthnMethod::ServiceAccountToken(SatSettings {
            audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            issuer_keys_config_map: None,
        })],
    }
}

/// Adds the default BrokerAuthentication unless the user defined one with its name.
pub(crate) fn add_authentications(map: &mut BTreeMap<String, Authentication>) {
    map.entry(DEFAULT_AUTHENTICATION.to_owned())
        .or_insert_with(default_authentication);
}

/// Adds the built-in issuers unless the user defined issuers with their names.
pub(crate) fn add_issuers(map: &mut BTreeMap<(IssuerKind, String), Issuer>) {
    for (kind, name) in [
        (IssuerKind::ClusterIssuer, QUICKSTART_ISSUER),
        (IssuerKind::Issuer, OLD_DEFAULT_ISSUER),
    ] {
        map.entry((kind, name.to_owned()))
            .or_insert_with(|| Issuer {
                kind,
                name: name.to_owned(),
                source: IssuerSource::Quickstart,
            });
    }
}

impl Model {
    /// The defaults of SPEC.md §4.1 alone: what an empty configuration gives.
    pub fn defaults() -> Model {
        let mut authentications = BTreeMap::new();
        add_authentications(&mut authentications);
        let mut issuers = BTreeMap::new();
        add_issuers(&mut issuers);
        Model {
            broker: default_broker(),
            listeners: vec![default_listener()],
            authentications,
            authorizations: BTreeMap::new(),
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            issuers,
            certificates: BTreeMap::new(),
            service_accounts: BTreeMap::new(),
        }
    }

    /// The quickstart of SPEC.md §4.3: the defaults plus port 1883 on listener `default` (loopback,
    /// no TLS, no authentication), with persistence on.
    pub fn quickstart() -> Model {
        let mut m = Model::defaults();
        if let Some(l) = m.listeners.iter_mut().find(|l| l.name == DEFAULT_LISTENER) {
            l.ports.push(ListenerPort::plain(QUICKSTART_PORT));
        }
        m.broker.persistence = Some(Persistence {
            max_size_bytes: QUICKSTART_PERSISTENCE_BYTES,
            encryption: OperationalMode::Disabled,
            retain: PersistencePolicy {
                mode: PersistenceMode::All,
                selectors: Vec::new(),
                dynamic: OperationalMode::Enabled,
            },
            subscriber_queue: PersistencePolicy {
                mode: PersistenceMode::All,
                selectors: Vec::new(),
                dynamic: OperationalMode::Enabled,
            },
            state_store: StateStorePersistence {
                mode: PersistenceMode::All,
                keys: Vec::new(),
                dynamic: OperationalMode::Enabled,
            },
            dynamic_user_property: ("aio-persistence".to_owned(), "true".to_owned()),
            persistent_volume_claim_spec: None,
        });
        m
    }

    /// Adds listener `default-insecure` (LoadBalancer, port 1883, no TLS, no authentication), as
    /// `--add-insecure-listener` does.
    ///
    /// The quickstart's loopback port 1883 on listener `default` is removed first: the insecure
    /// listener serves 1883 on every interface, loopback included. Any other conflict (a
    /// LoadBalancer listener already defined, port 1883 already used, a listener already named
    /// `default-insecure`) is an error.
    pub fn add_insecure_listener(&mut self) -> Result<(), ConfigErrors> {
        let flag = |message: String| {
            ConfigErrors::single(Diagnostic {
                file: None,
                line: None,
                document: None,
                resource: Some(format!("BrokerListener/{INSECURE_LISTENER}")),
                path: None,
                message: format!("--add-insecure-listener: {message}"),
            })
        };
        if self.listeners.iter().any(|l| l.name == INSECURE_LISTENER) {
            return Err(flag(
                "a listener with this name is already configured".to_owned(),
            ));
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.service_type == ServiceType::LoadBalancer)
        {
            return Err(flag(format!(
                "BrokerListener/{} already has serviceType LoadBalancer (one listener per serviceType)",
                l.name
            )));
        }
        if let Some(l) = self
            .listeners
            .iter_mut()
            .find(|l| l.name == DEFAULT_LISTENER)
            && l.ports.len() > 1
        {
            l.ports
                .retain(|p| *p != ListenerPort::plain(QUICKSTART_PORT));
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.ports.iter().any(|p| p.port == QUICKSTART_PORT))
        {
            return Err(flag(format!(
                "port {QUICKSTART_PORT} is already used by BrokerListener/{}",
                l.name
            )));
        }
        self.listeners.push(Listener {
            name: INSECURE_LISTENER.to_owned(),
            service_name: INSECURE_LISTENER.to_owned(),
            service_type: ServiceType::LoadBalancer,
            ports: vec![ListenerPort::plain(QUICKSTART_PORT)],
        });
        self.listeners.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }
}
