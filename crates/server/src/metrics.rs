//! The broker's Prometheus metrics: one [`Metrics`] (and one `prometheus_client` registry) per
//! broker instance, never a global one, so tests can run several brokers in one process and assert
//! on each one's numbers.
//!
//! Two kinds of metric live here:
//!
//! - **Read at scrape time** ([`StateCollector`]): numbers the broker already keeps (the core's
//!   [`Stats`](wardgate_core::Stats) atomics, the port supervisor's [`Status`], the connection
//!   [`Registry`] and what the connections count, [`ConnectionStats`]). Nothing on the publish path does any extra work for them.
//! - **Pushed by their owners** (the pub fields of [`Metrics`]): counters and gauges that only
//!   some component can know about (authentication results from the security layer, self-check
//!   latency and loss). Those components hold an `Arc<Metrics>` (or clones of the handles, which
//!   share their value) and increment them; on the hot path, clone the handle once rather than
//!   looking up labels per message.
//!
//! Names mirror AIO's `aio_broker_*` list (`docs/admin-api.md` has the mapping), prefixed
//! `wardgate_`. Counters get the `_total` suffix from the OpenMetrics encoder.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as PromRegistry;
use wardgate_core::Broker;
use wardgate_protocol::ProtocolVersion;

use crate::registry::Registry;
use crate::stats::{
    AuthenticationMetrics, AuthorizationMetrics, CategoryStats, ConnectionStats, UNCATEGORIZED,
};
use crate::supervisor::Status;

/// The labels of the self-check's per-QoS series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QosLabels {
    /// 0 or 1.
    pub qos: u8,
}

/// What the self-check records (AIO's `aio_broker_payload_check_*` and `*_latency_*`).
#[derive(Debug, Clone)]
pub struct SelfCheckMetrics {
    /// Probe messages published, by QoS.
    pub sent: Family<QosLabels, Counter>,
    /// Probe messages received back, by QoS.
    pub received: Family<QosLabels, Counter>,
    /// Probe messages not received within the timeout, by QoS.
    pub lost: Family<QosLabels, Counter>,
    /// Publish-to-delivery latency, by QoS.
    pub latency: Family<QosLabels, Histogram>,
    /// The latest round's latency, by QoS (AIO's `*_latency_last_value_ms`, in seconds).
    pub last_latency: Family<QosLabels, Gauge<f64, AtomicU64>>,
    /// Rounds that passed.
    pub passed: Counter,
    /// Rounds that failed.
    pub failed: Counter,
    /// Failed rounds in a row (`/readyz` fails at 3).
    pub consecutive_failures: Gauge,
    /// 1 while the self-check passes (or has not failed its threshold), 0 otherwise.
    pub passing: Gauge,
}

impl Default for SelfCheckMetrics {
    fn default() -> Self {
        Self {
            sent: Family::default(),
            received: Family::default(),
            lost: Family::default(),
            // 100 µs to ~6.5 s: an in-process round trip is sub-millisecond when healthy.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 4.0, 9))
            }),
            last_latency: Family::default(),
            passed: Counter::default(),
            failed: Counter::default(),
            consecutive_failures: Gauge::default(),
            passing: Gauge::default(),
        }
    }
}

/// One broker instance's metrics: the handles other components increment, and the registry
/// `/metrics` encodes.
///
/// Extension point: a component with metrics of its own either adds a pub field here (registered
/// in [`Metrics::new`]) or registers a scrape-time [`Collector`] with
/// [`Metrics::register_collector`] (certificate expiry does that, see
/// `admin::certificates`).
pub struct Metrics {
    registry: Mutex<PromRegistry>,
    /// Authentication outcomes (the connection tasks increment them).
    pub authentication: AuthenticationMetrics,
    /// Authorization decisions (the connection tasks increment them).
    pub authorization: AuthorizationMetrics,
    /// The self-check's results.
    pub selfcheck: SelfCheckMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics with the pushed handles registered and no scrape-time collector yet.
    pub fn new() -> Self {
        Self::with_security(
            AuthenticationMetrics::default(),
            AuthorizationMetrics::default(),
            None,
        )
    }

    /// [`Metrics::new`] exporting the given authentication and authorization counters (the
    /// [`ConnectionStats`]' handles, which the connection tasks increment).
    /// With a `node`, every series carries the label `node="<id>"` (a node of a cluster).
    fn with_security(
        authentication: AuthenticationMetrics,
        authorization: AuthorizationMetrics,
        node: Option<&str>,
    ) -> Self {
        let labels = node.map(|id| (Cow::Borrowed("node"), Cow::Owned(id.to_owned())));
        let mut registry = PromRegistry::with_prefix_and_labels("wardgate", labels.into_iter());
        let selfcheck = SelfCheckMetrics::default();
        registry.register(
            "authentication_successes",
            "Clients that authenticated",
            authentication.successes.clone(),
        );
        registry.register(
            "authentication_failures",
            "Clients refused by authentication",
            authentication.failures.clone(),
        );
        registry.register(
            "authorization_allow",
            "Operations authorization allowed",
            authorization.allow.clone(),
        );
        registry.register(
            "authorization_deny",
            "Operations authorization denied",
            authorization.deny.clone(),
        );
        let sc = &selfcheck;
        registry.register(
            "selfcheck_messages_sent",
            "Self-check probe messages published",
            sc.sent.clone(),
        );
        registry.register(
            "selfcheck_messages_received",
            "Self-check probe messages received back",
            sc.received.clone(),
        );
        registry.register(
            "selfcheck_messages_lost",
            "Self-check probe messages not received within the timeout",
            sc.lost.clone(),
        );
        registry.register(
            "selfcheck_latency_seconds",
            "Self-check publish-to-delivery latency",
            sc.latency.clone(),
        );
        registry.register(
            "selfcheck_latency_last_seconds",
            "Latency of the latest self-check round",
            sc.last_latency.clone(),
        );
        registry.register(
            "selfcheck_rounds_passed",
            "Self-check rounds that passed",
            sc.passed.clone(),
        );
        registry.register(
            "selfcheck_rounds_failed",
            "Self-check rounds that failed",
            sc.failed.clone(),
        );
        registry.register(
            "selfcheck_consecutive_failures",
            "Self-check rounds failed in a row",
            sc.consecutive_failures.clone(),
        );
        registry.register(
            "selfcheck_passing",
            "1 while the self-check passes, 0 after its failure threshold",
            sc.passing.clone(),
        );
        sc.passing.set(1);
        // Every series exists from the start, at 0: absent series make alerts and rates lie.
        for qos in [0, 1] {
            let labels = QosLabels { qos };
            let _ = sc.sent.get_or_create(&labels);
            let _ = sc.received.get_or_create(&labels);
            let _ = sc.lost.get_or_create(&labels);
            let _ = sc.latency.get_or_create(&labels);
            let _ = sc.last_latency.get_or_create(&labels);
        }
        Self {
            registry: Mutex::new(registry),
            authentication,
            authorization,
            selfcheck,
        }
    }

    /// Metrics for one broker: [`Metrics::new`] plus the [`StateCollector`] reading `broker`,
    /// the supervisor's `status`, the connection `registry` and what the connections count
    /// (`stats`) at every scrape.
    pub fn for_broker(
        broker: Arc<Broker>,
        status: Arc<RwLock<Status>>,
        registry: Arc<Registry>,
        stats: Arc<ConnectionStats>,
        started: SystemTime,
    ) -> Arc<Self> {
        Self::for_node(broker, status, registry, stats, started, None)
    }

    /// [`Metrics::for_broker`] for a node of a cluster: with a `node` id, every series carries
    /// the label `node="<id>"`, so the nodes' series stay apart once scraped together.
    pub fn for_node(
        broker: Arc<Broker>,
        status: Arc<RwLock<Status>>,
        registry: Arc<Registry>,
        stats: Arc<ConnectionStats>,
        started: SystemTime,
        node: Option<&str>,
    ) -> Arc<Self> {
        let metrics = Self::with_security(
            stats.authentication.clone(),
            stats.authorization.clone(),
            node,
        );
        metrics.register_collector(Box::new(StateCollector {
            broker,
            status,
            registry,
            stats,
            started,
        }));
        Arc::new(metrics)
    }

    /// Adds a collector whose metrics are computed at every scrape (names get the `wardgate_`
    /// prefix). Register each collector once.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry.lock().register_collector(collector);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock())?;
        Ok(out)
    }
}

/// The metrics read from the broker's own state at scrape time.
pub struct StateCollector {
    broker: Arc<Broker>,
    status: Arc<RwLock<Status>>,
    registry: Arc<Registry>,
    stats: Arc<ConnectionStats>,
    started: SystemTime,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

/// Every port state, for the one-gauge-per-state `wardgate_port_state` series.
const PORT_STATES: [&str; 5] = [
    "Listening",
    "AwaitingSecret",
    "AwaitingIssuer",
    "AwaitingConfigMap",
    "Failed",
];

/// The label value for an MQTT version.
pub fn mqtt_version_label(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V31 => "3.1",
        ProtocolVersion::V311 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One family of constant series: `make` turns each value into its metric.
fn const_family<L: EncodeLabelSet, V: Copy, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(L, V)],
    make: impl Fn(V) -> M,
    metric_type: prometheus_client::metrics::MetricType,
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        make(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge family (`wardgate_<name>{labels}`), one series per entry.
pub(crate) fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(L, i64)],
) -> Result<(), fmt::Error> {
    use prometheus_client::metrics::MetricType;
    const_family(
        encoder,
        name,
        help,
        series,
        ConstGauge::new,
        MetricType::Gauge,
    )
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let e = &mut encoder;
        let stats = self.broker.stats();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);

        gauge_family(
            e,
            "build_info",
            "The running version (always 1)",
            &[([("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        let started = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| as_i64(d.as_secs()));
        gauge(
            e,
            "start_time_seconds",
            "When the broker started, in seconds since the Unix epoch",
            started,
        )?;

        // Messaging.
        counter(
            e,
            "publishes_received",
            "PUBLISH packets received and routed (including wills, $SYS updates and the self-check)",
            load(&stats.messages_received),
        )?;
        counter(
            e,
            "publishes_sent",
            "PUBLISH packets sent to clients",
            load(&stats.messages_sent),
        )?;
        counter(
            e,
            "bytes_received",
            "Bytes read from clients (whole packets, not only payloads)",
            load(&stats.bytes_received),
        )?;
        counter(
            e,
            "bytes_sent",
            "Bytes written to clients (whole packets, not only payloads)",
            load(&stats.bytes_sent),
        )?;
        counter(
            e,
            "publishes_dropped",
            "Message copies dropped: subscriber queue full, QoS 0 to an offline session, expired, or too large for the client",
            load(&stats.publish_dropped),
        )?;
        {
            let mut family = e.encode_descriptor(
                "drops",
                "Message copies dropped and new messages refused, by reason",
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (reason, n) in stats.drops.by_reason() {
                ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        counter(
            e,
            "subscriptions_refused",
            "SUBSCRIBE filters refused with 0x97: the session's subscriptions would pass their limit in levels",
            load(&stats.subscriptions_refused),
        )?;
        counter(
            e,
            "retained_lookups_skipped",
            "SUBSCRIBE filters subscribed without their retained messages: the packet's budget of retained topics to visit was spent",
            load(&stats.retained_lookups_skipped),
        )?;
        counter(
            e,
            "will_messages_sent",
            "Will messages published",
            load(&stats.wills_sent),
        )?;
        gauge(
            e,
            "store_retained_messages",
            "Retained messages held",
            as_i64(load(&stats.retained)),
        )?;
        gauge(
            e,
            "store_retained_bytes",
            "Payload bytes of the retained messages held",
            as_i64(self.broker.retained_bytes() as u64),
        )?;
        let (wills, will_bytes) = self.broker.wills();
        gauge(
            e,
            "store_will_messages",
            "Will messages held: set by connected clients, or waiting for their delay",
            as_i64(wills as u64),
        )?;
        gauge(
            e,
            "store_will_bytes",
            "Payload bytes of the will messages held",
            as_i64(will_bytes as u64),
        )?;
        gauge(
            e,
            "total_subscriptions",
            "Subscriptions in the subscription index",
            as_i64(load(&stats.subscriptions)),
        )?;

        // Sessions and connections.
        let connections = self.registry.snapshot();
        let sessions = i64::try_from(self.broker.session_count()).unwrap_or(i64::MAX);
        let attached = stats.clients_connected.load(Ordering::Relaxed).max(0);
        gauge(
            e,
            "total_sessions",
            "Sessions held, connected or not (the self-check's internal session included)",
            sessions,
        )?;
        gauge(
            e,
            "offline_sessions",
            "Sessions kept for clients that are not connected",
            (sessions - attached).max(0),
        )?;
        let mut by_version = [("3.1", 0i64), ("3.1.1", 0), ("5.0", 0)];
        for c in &connections {
            let label = mqtt_version_label(c.protocol);
            if let Some(slot) = by_version.iter_mut().find(|(v, _)| *v == label) {
                slot.1 += 1;
            }
        }
        let series: Vec<_> = by_version
            .iter()
            .map(|(v, n)| ([("mqtt_version", *v)], *n))
            .collect();
        gauge_family(
            e,
            "connected_sessions",
            "Client connections, by MQTT version",
            &series,
        )?;
        gauge(
            e,
            "clients_maximum",
            "The most clients connected at once",
            stats.clients_maximum.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "connections",
            "Client connections accepted (CONNACK sent) since start",
            load(&stats.clients_total),
        )?;
        counter(
            e,
            "accept_failures",
            "Accepts that failed on the MQTT ports (out of file descriptors, most often)",
            load(&self.stats.accept_failures),
        )?;
        counter(
            e,
            "connections_shed",
            "Connections closed as soon as accepted because the process was out of file descriptors",
            load(&self.stats.connections_shed),
        )?;

        // By metric category (the CONNECT user property `metriccategory`).
        let mut categories = self.stats.categories();
        if !categories.iter().any(|(name, _)| &**name == UNCATEGORIZED) {
            categories.push((Arc::from(UNCATEGORIZED), Arc::new(CategoryStats::default())));
        }
        categories.sort_by(|a, b| a.0.cmp(&b.0));
        type Pick = fn(&CategoryStats) -> &AtomicU64;
        let families: [(&str, &str, Pick); 4] = [
            (
                "category_publishes_received",
                "PUBLISH packets received from clients and routed, by the clients' metriccategory",
                |c| &c.publishes_received,
            ),
            (
                "category_publishes_sent",
                "PUBLISH packets sent to clients, by the clients' metriccategory",
                |c| &c.publishes_sent,
            ),
            (
                "category_bytes_received",
                "Bytes read from clients, by the clients' metriccategory",
                |c| &c.bytes_received,
            ),
            (
                "category_bytes_sent",
                "Bytes written to clients, by the clients' metriccategory",
                |c| &c.bytes_sent,
            ),
        ];
        for (name, help, pick) in families {
            let series: Vec<_> = categories
                .iter()
                .map(|(category, c)| ([("category", category.to_string())], load(pick(c))))
                .collect();
            const_family(
                e,
                name,
                help,
                &series,
                ConstCounter::new,
                prometheus_client::metrics::MetricType::Counter,
            )?;
        }
        let mut connected: std::collections::BTreeMap<&str, i64> =
            categories.iter().map(|(name, _)| (&**name, 0)).collect();
        for c in &connections {
            *connected.entry(&*c.category).or_default() += 1;
        }
        let series: Vec<_> = connected
            .into_iter()
            .map(|(name, n)| ([("category", name)], n))
            .collect();
        gauge_family(
            e,
            "category_connected_sessions",
            "Client connections, by metriccategory",
            &series,
        )?;

        // Ports and configuration.
        let status = self.status.read();
        let mut per_port: std::collections::BTreeMap<u16, i64> = Default::default();
        for c in &connections {
            *per_port.entry(c.port).or_default() += 1;
        }
        let mut conn_series = Vec::new();
        let mut state_series = Vec::new();
        for (n, p) in &status.ports {
            let port = n.to_string();
            let listener = p.spec.name.clone();
            conn_series.push((
                [("port", port.clone()), ("listener", listener.clone())],
                per_port.get(n).copied().unwrap_or(0),
            ));
            for state in PORT_STATES {
                state_series.push((
                    [
                        ("port", port.clone()),
                        ("listener", listener.clone()),
                        ("state", state.to_string()),
                    ],
                    i64::from(p.state.name() == state),
                ));
            }
        }
        gauge_family(
            e,
            "port_connections",
            "Client connections per port",
            &conn_series,
        )?;
        gauge_family(
            e,
            "port_state",
            "1 for the state each port is in, 0 for the others",
            &state_series,
        )?;
        counter(
            e,
            "config_reloads",
            "Configuration reloads applied since start (the initial load not counted)",
            status.reloads.saturating_sub(1),
        )?;
        counter(
            e,
            "config_reload_failures",
            "Configuration reloads refused since start (the files failed to load or validate; the previous configuration runs)",
            status.reload_failures,
        )?;
        gauge(
            e,
            "config_reload_failing",
            "1 while the latest configuration reload was refused (the previous configuration runs)",
            i64::from(status.last_reload_error.is_some()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_metrics_are_per_instance() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.authentication.failures.inc();
        let text_a = a.encode().expect("encode");
        let text_b = b.encode().expect("encode");
        assert!(text_a.contains("wardgate_authentication_failures_total 1\n"));
        assert!(text_b.contains("wardgate_authentication_failures_total 0\n"));
        assert!(text_a.ends_with("# EOF\n"));
    }

    #[test]
    fn a_node_of_a_cluster_labels_every_series_with_its_id() {
        let metrics = Metrics::with_security(
            AuthenticationMetrics::default(),
            AuthorizationMetrics::default(),
            Some("n1"),
        );
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains("wardgate_authentication_failures_total{node=\"n1\"} 0\n"),
            "{text}"
        );
        assert!(!Metrics::new().encode().expect("encode").contains("node="));
    }
}
