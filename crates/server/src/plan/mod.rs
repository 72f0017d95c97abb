//! From the validated configuration to what the runtime runs: one [`Plan`], built in one place
//! ([`Plan::from_model`]) and consumed by startup, persistence and reload. It holds the broker
//! and connection settings from the Broker resource's limits, the ports with the addresses their
//! service type implies (SPEC.md §4.2), the store's settings, and the model each port's
//! security and TLS are built from. A reload is the [`PlanDiff`] of two plans.

mod cluster;
mod diff;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wardgate_config::model::{
    self, MemoryProfile, Model, OperationalMode, PersistenceMode, QueueStrategy, ServiceType,
};
use wardgate_core::store::{PersistenceSettings, PolicyMode, QueuePolicy, RetainPolicy};
use wardgate_core::{BrokerSettings, QueueLimits, QueueOverflow};
use wardgate_security::authn::TokenVerifier;

use crate::connection::ConnectionSettings;
use crate::ports::{PortProtocol, PortSpec};
use crate::security::{PortSecurity, SecurityProblem};

pub use cluster::{ClusterOptions, ClusterPlan};
pub use diff::{PlanDiff, PortChange};

/// What `serve` adds to the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `serve --bind`: LoadBalancer and NodePort ports listen on this address instead of all
    /// interfaces.
    pub public: Option<IpAddr>,
    /// `serve --kubernetes`: a Service routes to every port, so every port (ClusterIp too)
    /// listens on `public` or all interfaces, on its `port` (a Service maps `nodePort` to it).
    pub in_cluster: bool,
    /// `serve --cluster` and `--node-id`.
    pub cluster: ClusterOptions,
    /// How ServiceAccountToken methods without `issuerKeysConfigMap` verify tokens: outside
    /// Kubernetes, the local token issuer of the data dir.
    pub token_verifier: Option<Arc<dyn TokenVerifier>>,
}

/// Everything the runtime runs, derived once from a validated [`Model`].
#[derive(Debug, Clone)]
pub struct Plan {
    /// The core's settings (they apply to new sessions).
    pub broker: BrokerSettings,
    /// The connections' settings (they apply to new connections).
    pub connection: ConnectionSettings,
    /// Every port of every listener, by port number.
    pub ports: BTreeMap<u16, PlannedPort>,
    /// The persistent store, when `Broker.spec.persistence` is set.
    pub store: Option<StorePlan>,
    /// The cluster this node joins, when `Broker.spec.cluster` or `serve --cluster` asks for
    /// one; `None` = a single node.
    pub cluster: Option<ClusterPlan>,
    /// The configuration the plan was made from: the inputs of each port's security and TLS.
    model: Arc<Model>,
    /// [`ServeOptions::token_verifier`].
    token_verifier: Option<Arc<dyn TokenVerifier>>,
}

/// The persistent store's settings (SPEC.md §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorePlan {
    /// `persistence.maxSize` in bytes.
    pub max_size_bytes: u64,
    /// `persistence.encryption` is Enabled (not implemented yet: the store warns).
    pub encryption: bool,
}

impl Plan {
    /// The plan for `model`, with `serve`'s `options`.
    pub fn from_model(model: Model, options: &ServeOptions) -> Plan {
        let broker = &model.broker;
        Plan {
            broker: broker_settings(broker),
            connection: connection_settings(broker),
            ports: ports(&model, options)
                .into_iter()
                .map(|p| (p.spec.port, p))
                .collect(),
            store: broker.persistence.as_ref().map(|p| StorePlan {
                max_size_bytes: p.max_size_bytes,
                encryption: p.encryption == OperationalMode::Enabled,
            }),
            cluster: ClusterPlan::new(broker.cluster.as_ref(), &options.cluster),
            model: Arc::new(model),
            token_verifier: options.token_verifier.clone(),
        }
    }

    /// The configuration the plan was made from.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Builds `port`'s authentication and authorization; the error says which resource is
    /// unusable, or which Secret or ConfigMap the port waits for.
    pub fn security(&self, port: &PlannedPort) -> Result<PortSecurity, SecurityProblem> {
        PortSecurity::for_port(&self.model, &port.config, self.token_verifier.as_ref())
    }
}

/// One port of the configuration and whether this build can open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPort {
    /// What to bind.
    pub spec: PortSpec,
    /// The listener the port belongs to.
    pub listener: String,
    /// The port as configured (TLS and authentication settings).
    pub config: model::ListenerPort,
}

/// The addresses a port of `service_type` listens on. Outside Kubernetes, `public`, when set,
/// replaces "all interfaces" for LoadBalancer and NodePort ports (`serve --bind`) and ClusterIp
/// ports are loopback; in a cluster every port is reached through its Service.
fn addresses(service_type: ServiceType, port: u16, options: &ServeOptions) -> Vec<SocketAddr> {
    let local = service_type == ServiceType::ClusterIp && !options.in_cluster;
    if let Some(ip) = options.public
        && !local
    {
        return vec![SocketAddr::new(ip, port)];
    }
    let (v4, v6): (IpAddr, IpAddr) = if local {
        // Like a ClusterIP Service: reachable by local processes only.
        (Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into())
    } else {
        (Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into())
    };
    vec![SocketAddr::new(v4, port), SocketAddr::new(v6, port)]
}

/// Every port of every listener, in listener order.
fn ports(model: &Model, options: &ServeOptions) -> Vec<PlannedPort> {
    let mut planned = Vec::new();
    for listener in &model.listeners {
        for port in &listener.ports {
            let number = if options.in_cluster {
                port.port
            } else {
                port.bound_port(listener.service_type)
            };
            let protocol = match port.protocol {
                model::PortProtocol::Mqtt => PortProtocol::Mqtt,
                model::PortProtocol::WebSockets => PortProtocol::WebSockets,
            };
            planned.push(PlannedPort {
                spec: PortSpec {
                    name: format!("BrokerListener/{}:{}", listener.name, port.port),
                    port: number,
                    addrs: addresses(listener.service_type, number, options),
                    protocol,
                },
                listener: listener.name.clone(),
                config: port.clone(),
            });
        }
    }
    planned
}

/// A session's queued and in-flight messages may hold at most this fraction of the memory
/// budget (`QueueLimits::max_queued_bytes`): one subscriber that stops reading then costs the
/// others nothing, and it takes 24 of them at their limit to reach the 75% at which new QoS 1/2
/// messages are refused (Tiny: 512 KiB per session, Medium: 18 MiB, High: 64 MiB).
pub const SESSION_SHARE: u64 = 32;

/// The core's settings from the Broker resource.
fn broker_settings(broker: &model::Broker) -> BrokerSettings {
    let limits = &broker.clients;
    let defaults = QueueLimits::default();
    let publish_budget = publish_budget(broker.memory_profile);
    let max_queued = limits
        .subscriber_queue_limit
        .length
        .map_or(defaults.max_queued, |l| {
            usize::try_from(l).unwrap_or(usize::MAX)
        });
    BrokerSettings {
        queue: QueueLimits {
            max_queued,
            max_queued_bytes: publish_budget / SESSION_SHARE,
            // Below the limit, so publishers slow down before a live subscriber's queue drops.
            congestion_threshold: defaults.congestion_threshold.min(max_queued / 2),
            overflow: match limits.subscriber_queue_limit.strategy {
                QueueStrategy::DropOldest => QueueOverflow::DropOldest,
                QueueStrategy::None => QueueOverflow::DropNew,
            },
        },
        max_session_expiry: limits.max_session_expiry_seconds,
        max_message_expiry: limits.max_message_expiry_seconds,
        sys_interval: Duration::from_secs(10),
        publish_budget,
        persistence: broker
            .persistence
            .as_ref()
            .map(persistence_settings)
            .unwrap_or_default(),
        max_subscription_levels: subscription_levels(broker.memory_profile),
    }
}

/// The persistence policies of `Broker.spec.persistence` (SPEC.md §10).
fn persistence_settings(p: &model::Persistence) -> PersistenceSettings {
    let mode = |m: PersistenceMode| match m {
        PersistenceMode::All => PolicyMode::All,
        PersistenceMode::None => PolicyMode::None,
        PersistenceMode::Custom => PolicyMode::Custom,
    };
    PersistenceSettings {
        queues: QueuePolicy {
            mode: mode(p.subscriber_queue.mode),
            client_ids: p.subscriber_queue.selectors.clone(),
            dynamic: p.subscriber_queue.dynamic == OperationalMode::Enabled,
        },
        retained: RetainPolicy {
            mode: mode(p.retain.mode),
            topics: p.retain.selectors.clone(),
            dynamic: p.retain.dynamic == OperationalMode::Enabled,
        },
        dynamic_property: p.dynamic_user_property.clone(),
    }
}

/// The memory profile's budget for in-flight PUBLISH data: AIO's incoming PUBLISH buffer per
/// backend worker (`aio-broker.md` §2.3). Wardgate is one process, so it gets one worker's worth.
fn publish_budget(profile: MemoryProfile) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match profile {
        MemoryProfile::Tiny => 16 * MIB,
        MemoryProfile::Low => 64 * MIB,
        MemoryProfile::Medium => 576 * MIB,
        MemoryProfile::High => 2048 * MIB,
    }
}

/// The memory profile's limit on one session's subscriptions, in levels
/// (`BrokerSettings::max_subscription_levels`; a level of a wildcard filter is an index node of
/// about 80 bytes for `+`, 450 for a literal level). Medium, the default, allows 100,000
/// filters of 10 levels; Tiny, whose largest SUBSCRIBE is 4 MiB, about 11 MB of index.
fn subscription_levels(profile: MemoryProfile) -> u64 {
    match profile {
        MemoryProfile::Tiny => 25_000,
        MemoryProfile::Low => 100_000,
        MemoryProfile::Medium => wardgate_core::DEFAULT_MAX_SUBSCRIPTION_LEVELS,
        MemoryProfile::High => 2 * wardgate_core::DEFAULT_MAX_SUBSCRIPTION_LEVELS,
    }
}

/// The connection settings from the Broker resource.
fn connection_settings(broker: &model::Broker) -> ConnectionSettings {
    let limits = &broker.clients;
    ConnectionSettings {
        max_packet_size: broker.max_packet_size(),
        max_receive_maximum: limits.max_receive_maximum,
        max_keep_alive: (limits.max_keep_alive_seconds < u16::MAX)
            .then_some(limits.max_keep_alive_seconds),
        ..ConnectionSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use super::{Plan, ServeOptions};

    /// A ClusterIp listener on 1883 and a NodePort listener on 1884 (node port 31884).
    const LISTENERS: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: default
spec:
  ports:
  - port: 1883
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: np
spec:
  serviceType: NodePort
  ports:
  - port: 1884
    nodePort: 31884
";

    /// Port number → the addresses it listens on.
    fn bound(options: ServeOptions) -> Vec<(u16, Vec<SocketAddr>)> {
        let loaded = wardgate_config::load_str("test.yaml", LISTENERS)
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}"));
        let plan = Plan::from_model(loaded.model, &options);
        plan.ports
            .into_iter()
            .map(|(n, p)| (n, p.spec.addrs))
            .collect()
    }

    fn addrs(ip: &str, port: u16) -> Vec<SocketAddr> {
        ip.split(',')
            .map(|ip| SocketAddr::new(ip.parse().expect("IP"), port))
            .collect()
    }

    #[test]
    fn in_a_cluster_every_port_listens_on_its_port_for_its_service() {
        // Standalone: ClusterIp is loopback, NodePort listens on its node port.
        assert_eq!(
            bound(ServeOptions::default()),
            [
                (1883, addrs("127.0.0.1,::1", 1883)),
                (31884, addrs("0.0.0.0,::", 31884))
            ]
        );
        // In a cluster: every port on all interfaces (or --bind), on `port`.
        let in_cluster = ServeOptions {
            in_cluster: true,
            ..ServeOptions::default()
        };
        assert_eq!(
            bound(in_cluster),
            [
                (1883, addrs("0.0.0.0,::", 1883)),
                (1884, addrs("0.0.0.0,::", 1884))
            ]
        );
        let bound_to = ServeOptions {
            in_cluster: true,
            public: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ..ServeOptions::default()
        };
        assert_eq!(
            bound(bound_to),
            [
                (1883, addrs("127.0.0.1", 1883)),
                (1884, addrs("127.0.0.1", 1884))
            ]
        );
    }
}
