//! From the validated configuration to what the runtime opens: the ports with the addresses their
//! service type implies (SPEC.md §4.2), and the broker and connection settings from the Broker
//! resource's limits.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use wardgate_config::model::{
    self, MemoryProfile, Model, OperationalMode, PersistenceMode, QueueStrategy, ServiceType,
};
use wardgate_core::store::{PersistenceSettings, PolicyMode, QueuePolicy, RetainPolicy};
use wardgate_core::{BrokerSettings, QueueLimits, QueueOverflow};
use wardgate_protocol::TopicFilter;

use crate::connection::ConnectionSettings;
use crate::ports::{PortProtocol, PortSpec};

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

/// The addresses a port of `service_type` listens on outside Kubernetes. `public`, when set,
/// replaces "all interfaces" for LoadBalancer and NodePort ports (`serve --bind`).
pub fn addresses(service_type: ServiceType, port: u16, public: Option<IpAddr>) -> Vec<SocketAddr> {
    if let Some(ip) = public
        && service_type != ServiceType::ClusterIp
    {
        return vec![SocketAddr::new(ip, port)];
    }
    let (v4, v6): (IpAddr, IpAddr) = match service_type {
        // Like a ClusterIP Service: reachable by local processes only.
        ServiceType::ClusterIp => (Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()),
        ServiceType::LoadBalancer | ServiceType::NodePort => {
            (Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into())
        }
    };
    vec![SocketAddr::new(v4, port), SocketAddr::new(v6, port)]
}

/// Every port of every listener, in listener order.
pub fn ports(model: &Model, public: Option<IpAddr>) -> Vec<PlannedPort> {
    let mut planned = Vec::new();
    for listener in &model.listeners {
        for port in &listener.ports {
            let number = port.bound_port(listener.service_type);
            let protocol = match port.protocol {
                model::PortProtocol::Mqtt => PortProtocol::Mqtt,
                model::PortProtocol::WebSockets => PortProtocol::WebSockets,
            };
            planned.push(PlannedPort {
                spec: PortSpec {
                    name: format!("BrokerListener/{}:{}", listener.name, port.port),
                    port: number,
                    addrs: addresses(listener.service_type, number, public),
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
pub fn broker_settings(broker: &model::Broker) -> BrokerSettings {
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
pub fn persistence_settings(p: &model::Persistence) -> PersistenceSettings {
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
            // Validated as topic filters by the configuration.
            topics: p
                .retain
                .selectors
                .iter()
                .filter_map(|t| TopicFilter::new(t.as_str()).ok())
                .collect(),
            dynamic: p.retain.dynamic == OperationalMode::Enabled,
        },
        dynamic_property: p.dynamic_user_property.clone(),
    }
}

/// The memory profile's budget for in-flight PUBLISH data: AIO's incoming PUBLISH buffer per
/// backend worker (`aio-broker.md` §2.3). Wardgate is one process, so it gets one worker's worth.
pub fn publish_budget(profile: MemoryProfile) -> u64 {
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
pub fn subscription_levels(profile: MemoryProfile) -> u64 {
    match profile {
        MemoryProfile::Tiny => 25_000,
        MemoryProfile::Low => 100_000,
        MemoryProfile::Medium => wardgate_core::DEFAULT_MAX_SUBSCRIPTION_LEVELS,
        MemoryProfile::High => 2 * wardgate_core::DEFAULT_MAX_SUBSCRIPTION_LEVELS,
    }
}

/// The connection settings from the Broker resource.
pub fn connection_settings(broker: &model::Broker) -> ConnectionSettings {
    let limits = &broker.clients;
    ConnectionSettings {
        max_packet_size: broker.max_packet_size(),
        max_receive_maximum: limits.max_receive_maximum,
        max_keep_alive: (limits.max_keep_alive_seconds < u16::MAX)
            .then_some(limits.max_keep_alive_seconds),
        ..ConnectionSettings::default()
    }
}
