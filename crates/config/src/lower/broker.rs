//! Lowers the Broker resource (current and old API) into [`Broker`], with ranges and defaults.

use std::time::Duration;

use super::Ctx;
use crate::defaults;
use crate::load::RawDocument;
use crate::model::{
    Broker, Cardinality, ClientLimits, Diagnostics, DiskBackedMessageBuffer, InternalCerts,
    OperationalMode, Persistence, PersistenceMode, PersistencePolicy, PrivateKey,
    StateStorePersistence, SubscriberQueueLimit,
};
use crate::raw::{Object, RawResource, broker as raw, old};
use crate::units;

/// Finds and lowers the Broker; without one, the default.
pub(super) fn lower(docs: &[&RawDocument], ctx: &mut Ctx) -> Broker {
    let mut broker = None;
    for doc in docs {
        let lowered = match &doc.resource {
            RawResource::Broker(o) => Some(lower_current(doc, o, ctx)),
            RawResource::OldBroker(o) => Some(lower_old(doc, o, ctx)),
            _ => None,
        };
        if let Some(b) = lowered {
            if broker.is_some() {
                ctx.err(
                    doc,
                    "metadata.name",
                    "is a second Broker; a configuration has exactly one (named default)",
                );
            } else {
                broker = Some(b);
            }
        }
    }
    broker.unwrap_or_else(defaults::default_broker)
}

fn lower_current(doc: &RawDocument, o: &Object<raw::BrokerSpec>, ctx: &mut Ctx) -> Broker {
    if o.metadata.name != defaults::DEFAULT_BROKER {
        ctx.err(
            doc,
            "metadata.name",
            format!(
                "\"{}\" must be \"default\": AIO has one Broker, named default",
                o.metadata.name
            ),
        );
    }
    let spec = &o.spec;
    let mut b = defaults::default_broker();
    b.name.clone_from(&o.metadata.name);
    if let Some(p) = spec.memory_profile {
        b.memory_profile = p;
    }
    if let Some(adv) = &spec.advanced {
        if let Some(c) = &adv.clients {
            b.clients = clients(doc, c, ctx);
        }
        if let Some(m) = adv.encrypt_internal_traffic {
            b.encrypt_internal_traffic = m;
        }
        if let Some(ic) = &adv.internal_certs {
            let p = "spec.advanced.internalCerts";
            b.internal_certs = Some(InternalCerts {
                duration: ctx.duration(
                    doc,
                    &format!("{p}.duration"),
                    Some(&ic.duration),
                    Duration::ZERO,
                ),
                renew_before: ctx.duration(
                    doc,
                    &format!("{p}.renewBefore"),
                    Some(&ic.renew_before),
                    Duration::ZERO,
                ),
                private_key: PrivateKey {
                    algorithm: ic.private_key.algorithm,
                    rotation_policy: ic.private_key.rotation_policy,
                },
            });
        }
    }
    if let Some(c) = &spec.cardinality {
        b.cardinality = Some(cardinality(doc, c, ctx));
    }
    if let Some(d) = &spec.diagnostics {
        b.diagnostics = diagnostics(doc, d, ctx);
    }
    if let Some(buf) = &spec.disk_backed_message_buffer {
        b.disk_backed_message_buffer = disk_buffer(doc, "spec.diskBackedMessageBuffer", buf, ctx);
    }
    if let Some(cpu) = spec.generate_resource_limits.as_ref().and_then(|g| g.cpu) {
        b.generate_resource_limits_cpu = cpu;
    }
    if let Some(p) = &spec.persistence {
        b.persistence = persistence(doc, p, ctx);
    }
    if let Some(c) = &spec.cluster {
        b.cluster = super::cluster::lower(doc, &o.api_version, c, ctx);
    }
    b
}

fn clients(doc: &RawDocument, c: &raw::ClientConfig, ctx: &mut Ctx) -> ClientLimits {
    let p = "spec.advanced.clients";
    let d = ClientLimits::default();
    let u32max = i64::from(u32::MAX);
    ClientLimits {
        max_session_expiry_seconds: ctx.range_or(
            doc,
            &format!("{p}.maxSessionExpirySeconds"),
            c.max_session_expiry_seconds,
            1,
            u32max,
            d.max_session_expiry_seconds,
        ),
        max_message_expiry_seconds: c
            .max_message_expiry_seconds
            .and_then(|v| ctx.range(doc, &format!("{p}.maxMessageExpirySeconds"), v, 1, u32max)),
        max_packet_size_bytes: c
            .max_packet_size_bytes
            .and_then(|v| ctx.range(doc, &format!("{p}.maxPacketSizeBytes"), v, 1, 268_435_456)),
        max_receive_maximum: ctx.range_or(
            doc,
            &format!("{p}.maxReceiveMaximum"),
            c.max_receive_maximum,
            1,
            65_535,
            d.max_receive_maximum,
        ),
        max_keep_alive_seconds: ctx.range_or(
            doc,
            &format!("{p}.maxKeepAliveSeconds"),
            c.max_keep_alive_seconds,
            0,
            65_535,
            d.max_keep_alive_seconds,
        ),
        subscriber_queue_limit: match &c.subscriber_queue_limit {
            None => SubscriberQueueLimit::default(),
            Some(q) => SubscriberQueueLimit {
                length: q.length.and_then(|v| {
                    ctx.range(
                        doc,
                        &format!("{p}.subscriberQueueLimit.length"),
                        v,
                        1,
                        i64::MAX,
                    )
                }),
                strategy: q.strategy.unwrap_or_default(),
            },
        },
    }
}

fn cardinality(doc: &RawDocument, c: &raw::Cardinality, ctx: &mut Ctx) -> Cardinality {
    let p = "spec.cardinality";
    Cardinality {
        frontend_replicas: ctx
            .range(
                doc,
                &format!("{p}.frontend.replicas"),
                c.frontend.replicas,
                1,
                16,
            )
            .unwrap_or(1),
        frontend_workers: ctx.range_or(
            doc,
            &format!("{p}.frontend.workers"),
            c.frontend.workers,
            1,
            16,
            2,
        ),
        backend_partitions: ctx
            .range(
                doc,
                &format!("{p}.backendChain.partitions"),
                c.backend_chain.partitions,
                1,
                16,
            )
            .unwrap_or(1),
        backend_redundancy_factor: ctx
            .range(
                doc,
                &format!("{p}.backendChain.redundancyFactor"),
                c.backend_chain.redundancy_factor,
                1,
                5,
            )
            .unwrap_or(1),
        backend_workers: ctx.range_or(
            doc,
            &format!("{p}.backendChain.workers"),
            c.backend_chain.workers,
            1,
            16,
            1,
        ),
    }
}

fn diagnostics(doc: &RawDocument, d: &raw::BrokerDiagnostics, ctx: &mut Ctx) -> Diagnostics {
    let p = "spec.diagnostics";
    let mut out = Diagnostics::default();
    if let Some(logs) = &d.logs {
        if let Some(level) = &logs.level {
            if level.trim().is_empty() {
                ctx.err(doc, &format!("{p}.logs.level"), "must not be empty");
            } else {
                out.log_level.clone_from(level);
            }
        }
        if let Some(f) = logs.format {
            out.log_format = f;
        }
    }
    if let Some(m) = &d.metrics {
        out.prometheus_port = ctx.range_or(
            doc,
            &format!("{p}.metrics.prometheusPort"),
            m.prometheus_port,
            0,
            65_535,
            out.prometheus_port,
        );
    }
    if let Some(s) = &d.self_check {
        if let Some(m) = s.mode {
            out.self_check.mode = m;
        }
        let i: u64 = ctx.range_or(
            doc,
            &format!("{p}.selfCheck.intervalSeconds"),
            s.interval_seconds,
            30,
            300,
            30,
        );
        let t: u64 = ctx.range_or(
            doc,
            &format!("{p}.selfCheck.timeoutSeconds"),
            s.timeout_seconds,
            5,
            120,
            15,
        );
        out.self_check.interval = Duration::from_secs(i);
        out.self_check.timeout = Duration::from_secs(t);
    }
    if let Some(t) = &d.traces {
        if let Some(m) = t.mode {
            out.traces.mode = m;
        }
        out.traces.cache_size_megabytes = ctx.range_or(
            doc,
            &format!("{p}.traces.cacheSizeMegabytes"),
            t.cache_size_megabytes,
            1,
            128,
            16,
        );
        out.traces.span_channel_capacity = ctx.range_or(
            doc,
            &format!("{p}.traces.spanChannelCapacity"),
            t.span_channel_capacity,
            1000,
            100_000,
            1000,
        );
        if let Some(st) = &t.self_tracing {
            if let Some(m) = st.mode {
                out.traces.self_tracing_mode = m;
            }
            let i: u64 = ctx.range_or(
                doc,
                &format!("{p}.traces.selfTracing.intervalSeconds"),
                st.interval_seconds,
                1,
                300,
                30,
            );
            out.traces.self_tracing_interval = Duration::from_secs(i);
        }
    }
    out
}

fn disk_buffer(
    doc: &RawDocument,
    p: &str,
    b: &raw::DiskBackedMessageBuffer,
    ctx: &mut Ctx,
) -> Option<DiskBackedMessageBuffer> {
    // AIO's pattern is `^[0-9]+[KMGTPE]$`.
    let well_formed = b.max_size.len() > 1
        && b.max_size[..b.max_size.len() - 1]
            .chars()
            .all(|c| c.is_ascii_digit())
        && b.max_size.ends_with(['K', 'M', 'G', 'T', 'P', 'E']);
    if !well_formed {
        ctx.err(
            doc,
            &format!("{p}.maxSize"),
            format!(
                "\"{}\" must be a number followed by K, M, G, T, P or E (e.g. 1G)",
                b.max_size
            ),
        );
        return None;
    }
    if b.ephemeral_volume_claim_spec.is_some() && b.persistent_volume_claim_spec.is_some() {
        ctx.err(
            doc,
            &format!("{p}.persistentVolumeClaimSpec"),
            "must not be set together with ephemeralVolumeClaimSpec",
        );
    }
    let max_size_bytes = units::parse_size(&b.max_size).ok()?;
    Some(DiskBackedMessageBuffer {
        max_size_bytes,
        ephemeral_volume_claim_spec: b.ephemeral_volume_claim_spec.clone(),
        persistent_volume_claim_spec: b.persistent_volume_claim_spec.clone(),
    })
}

/// The smallest persistence size AIO accepts ("must be >100 MB").
const MIN_PERSISTENCE_BYTES: u64 = 100_000_000;

fn persistence(
    doc: &RawDocument,
    p: &raw::BrokerPersistence,
    ctx: &mut Ctx,
) -> Option<Persistence> {
    let path = "spec.persistence";
    let max_size_bytes = match units::parse_size(&p.max_size) {
        Ok(v) if v > MIN_PERSISTENCE_BYTES => v,
        Ok(_) => {
            ctx.err(
                doc,
                &format!("{path}.maxSize"),
                format!("\"{}\" must be more than 100 MB", p.max_size),
            );
            return None;
        }
        Err(e) => {
            ctx.err(doc, &format!("{path}.maxSize"), e);
            return None;
        }
    };
    if let Some(pvc) = &p.persistent_volume_claim_spec
        && let Some(modes) = &pvc.access_modes
        && modes.as_slice() != ["ReadWriteOncePod"]
    {
        ctx.err(
            doc,
            &format!("{path}.persistentVolumeClaimSpec.accessModes"),
            "must be [ReadWriteOncePod]",
        );
    }
    let retain = match &p.retain {
        None => PersistencePolicy::none(),
        Some(r) => {
            let settings = r.retain_settings.as_ref();
            custom_settings_check(
                doc,
                &format!("{path}.retain"),
                r.mode,
                settings.is_some(),
                "retainSettings",
                ctx,
            );
            let topics = settings
                .and_then(|s| s.topics.as_deref())
                .unwrap_or_default();
            let mut filters = Vec::with_capacity(topics.len());
            for (i, t) in topics.iter().enumerate() {
                match crate::topic::check_topic_filter(t) {
                    Ok(filter) => filters.push(filter),
                    Err(e) => ctx.err(doc, &format!("{path}.retain.retainSettings.topics[{i}]"), e),
                }
            }
            PersistencePolicy {
                mode: r.mode,
                selectors: filters,
                dynamic: dynamic(settings.and_then(|s| s.dynamic.as_ref())),
            }
        }
    };
    let subscriber_queue = match &p.subscriber_queue {
        None => PersistencePolicy::none(),
        Some(q) => {
            let settings = q.subscriber_queue_settings.as_ref();
            custom_settings_check(
                doc,
                &format!("{path}.subscriberQueue"),
                q.mode,
                settings.is_some(),
                "subscriberQueueSettings",
                ctx,
            );
            if settings.is_some_and(|s| s.topics.is_some()) {
                ctx.warn(
                    doc,
                    &format!("{path}.subscriberQueue.subscriberQueueSettings.topics"),
                    "was removed from AIO in API 2025-10-01 and is ignored",
                );
            }
            PersistencePolicy {
                mode: q.mode,
                selectors: settings
                    .and_then(|s| s.subscriber_client_ids.clone())
                    .unwrap_or_default(),
                dynamic: dynamic(settings.and_then(|s| s.dynamic.as_ref())),
            }
        }
    };
    let state_store = match &p.state_store {
        None => StateStorePersistence {
            mode: PersistenceMode::None,
            keys: Vec::new(),
            dynamic: OperationalMode::Enabled,
        },
        Some(s) => {
            let settings = s.state_store_settings.as_ref();
            custom_settings_check(
                doc,
                &format!("{path}.stateStore"),
                s.mode,
                settings.is_some(),
                "stateStoreSettings",
                ctx,
            );
            StateStorePersistence {
                mode: s.mode,
                keys: settings
                    .and_then(|s| s.state_store_resources.as_ref())
                    .map(|r| {
                        r.iter()
                            .flat_map(|e| e.keys.iter().map(|k| (e.key_type, k.clone())))
                            .collect()
                    })
                    .unwrap_or_default(),
                dynamic: dynamic(settings.and_then(|s| s.dynamic.as_ref())),
            }
        }
    };
    let dynamic_user_property = p.dynamic_settings.as_ref().map_or_else(
        || ("aio-persistence".to_owned(), "true".to_owned()),
        |d| (d.user_property_key.clone(), d.user_property_value.clone()),
    );
    Some(Persistence {
        max_size_bytes,
        encryption: p
            .encryption
            .as_ref()
            .map_or(OperationalMode::Enabled, |e| e.mode),
        retain,
        subscriber_queue,
        state_store,
        dynamic_user_property,
        persistent_volume_claim_spec: p.persistent_volume_claim_spec.clone(),
    })
}

fn dynamic(d: Option<&raw::ModeOnly>) -> OperationalMode {
    d.map_or(OperationalMode::Enabled, |d| d.mode)
}

/// A policy's settings object belongs to mode Custom.
fn custom_settings_check(
    doc: &RawDocument,
    path: &str,
    mode: PersistenceMode,
    has_settings: bool,
    settings_field: &str,
    ctx: &mut Ctx,
) {
    if mode == PersistenceMode::Custom && !has_settings {
        ctx.err(
            doc,
            &format!("{path}.{settings_field}"),
            "is required when mode is Custom",
        );
    } else if mode != PersistenceMode::Custom && has_settings {
        ctx.warn(
            doc,
            &format!("{path}.{settings_field}"),
            format!("is ignored: mode is {mode}, not Custom"),
        );
    }
}

impl<S> PersistencePolicy<S> {
    fn none() -> Self {
        PersistencePolicy {
            mode: PersistenceMode::None,
            selectors: Vec::new(),
            dynamic: OperationalMode::Enabled,
        }
    }
}

fn lower_old(doc: &RawDocument, o: &Object<old::BrokerSpec>, ctx: &mut Ctx) -> Broker {
    let name = &o.metadata.name;
    if name != "broker" && name != defaults::DEFAULT_BROKER {
        ctx.err(
            doc,
            "metadata.name",
            format!(
                "\"{name}\" must be \"broker\" (the old API's name) or \"default\": there is one Broker"
            ),
        );
    }
    let spec = &o.spec;
    let mut b = defaults::default_broker();
    b.name.clone_from(name);
    if let Some(p) = spec.memory_profile {
        b.memory_profile = p;
    }
    if let Some(c) = &spec.cardinality {
        b.cardinality = Some(cardinality(doc, c, ctx));
    }
    if let Some(e) = spec.encrypt_internal_traffic {
        b.encrypt_internal_traffic = OperationalMode::from_bool(e);
    }
    if let Some(buf) = &spec.disk_backed_message_buffer_settings {
        b.disk_backed_message_buffer =
            disk_buffer(doc, "spec.diskBackedMessageBufferSettings", buf, ctx);
    }
    if let Some(d) = &spec.diagnostics {
        let p = "spec.diagnostics";
        let diag = &mut b.diagnostics;
        if let Some(level) = &d.log_level {
            diag.log_level.clone_from(level);
        }
        if let Some(f) = d.log_format {
            diag.log_format = f;
        }
        if d.enable_metrics == Some(false) {
            ctx.warn(
                doc,
                &format!("{p}.enableMetrics"),
                "is ignored: Wardgate always serves metrics",
            );
        }
        if let Some(e) = d.enable_self_check {
            diag.self_check.mode = OperationalMode::from_bool(e);
        }
        let i: u64 = ctx.range_or(
            doc,
            &format!("{p}.selfCheckFrequencySeconds"),
            d.self_check_frequency_seconds,
            30,
            300,
            30,
        );
        diag.self_check.interval = Duration::from_secs(i);
        let t: u64 = ctx.range_or(
            doc,
            &format!("{p}.selfCheckTimeoutSeconds"),
            d.self_check_timeout_seconds,
            5,
            120,
            15,
        );
        diag.self_check.timeout = Duration::from_secs(t);
        if let Some(e) = d.enable_tracing {
            diag.traces.mode = OperationalMode::from_bool(e);
        }
        if let Some(e) = d.enable_self_tracing {
            diag.traces.self_tracing_mode = OperationalMode::from_bool(e);
        }
        let st: u64 = ctx.range_or(
            doc,
            &format!("{p}.selfTraceFrequencySeconds"),
            d.self_trace_frequency_seconds,
            1,
            300,
            30,
        );
        diag.traces.self_tracing_interval = Duration::from_secs(st);
        diag.traces.span_channel_capacity = ctx.range_or(
            doc,
            &format!("{p}.spanChannelCapacity"),
            d.span_channel_capacity,
            1000,
            100_000,
            1000,
        );
        if let Some(v) = d.metric_update_frequency_seconds {
            let _: Option<u32> = ctx.range(
                doc,
                &format!("{p}.metricUpdateFrequencySeconds"),
                v,
                1,
                3600,
            );
        }
    }
    b
}
