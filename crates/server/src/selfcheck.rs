//! The self-check: an internal client that publishes and subscribes through the broker's fabric
//! (no socket) on `$SYS/selftest/<instance>/...` at QoS 0 and 1, every `intervalSeconds`, and
//! records latency and loss in the metrics. After [`FAILURE_THRESHOLD`] failed rounds in a row it
//! makes `/readyz` fail; one passing round makes it pass again.
//!
//! The probe's topics start with `$`, so a `#` subscriber never sees them [MQTT-4.7.2-1] (unlike
//! AIO's `azedge/dmqtt/selftest`). A `$SYS/#` subscriber does.
//!
//! The probe keeps one session (clean, expiry 0) attached between rounds. A failed round ends it
//! and the next round starts over with a fresh session, so a stuck session cannot keep the check
//! failing. The session counts in the core's connected-clients statistics (`$SYS`,
//! `wardgate_total_sessions`), but it is not a connection: the admin API's client list and the
//! per-port counts do not show it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use wardgate_core::{Broker, ConnectParams, Disconnect, Message, Outgoing, Session, Wake};
use wardgate_protocol::{
    ProtocolVersion, PublishProperties, QoS, RetainHandling, SubscriptionFilter,
    SubscriptionOptions, TopicFilter, TopicName,
};

use crate::admin::{CheckResult, ReadinessCheck};
use crate::metrics::{Metrics, QosLabels};

/// Failed rounds in a row after which `/readyz` fails.
pub const FAILURE_THRESHOLD: u32 = 3;

/// How the self-check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCheckSettings {
    /// The broker instance's name: the probe's topics are `$SYS/selftest/<instance>/...`.
    pub instance: String,
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// How long a probe message may take to come back before it counts as lost.
    pub timeout: Duration,
}

impl SelfCheckSettings {
    /// The settings of the Broker resource's `diagnostics.selfCheck`, or `None` when disabled.
    pub fn from_config(broker: &wardgate_config::model::Broker) -> Option<Self> {
        let sc = &broker.diagnostics.self_check;
        if sc.mode != wardgate_config::model::OperationalMode::Enabled {
            return None;
        }
        Some(Self {
            instance: broker.name.clone(),
            interval: sc.interval,
            timeout: sc.timeout,
        })
    }

    fn topic_base(&self) -> String {
        // Topic levels come from the instance name; keep wildcards and separators out of them.
        let level: String = self
            .instance
            .chars()
            .map(|c| match c {
                '/' | '+' | '#' | '\0' => '_',
                c => c,
            })
            .collect();
        let level = if level.is_empty() {
            "default".into()
        } else {
            level
        };
        format!("$SYS/selftest/{level}")
    }
}

/// What the last round found.
#[derive(Debug, Default)]
struct Verdict {
    rounds: u64,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_latency: Option<Duration>,
}

/// A handle on a running self-check: its readiness verdict. Cheap to clone.
#[derive(Clone)]
pub struct SelfCheck {
    verdict: Arc<Mutex<Verdict>>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for SelfCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfCheck")
            .field("verdict", &*self.verdict.lock())
            .finish()
    }
}

impl SelfCheck {
    /// Starts the self-check on `broker`, as a task on `tasks`, until `shutdown`.
    pub fn spawn(
        broker: Arc<Broker>,
        metrics: Arc<Metrics>,
        settings: SelfCheckSettings,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> SelfCheck {
        let handle = SelfCheck {
            verdict: Arc::default(),
            metrics,
        };
        tasks.spawn(run(broker, settings, handle.clone(), shutdown));
        handle
    }

    /// Failed rounds in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.verdict.lock().consecutive_failures
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.verdict.lock().rounds
    }

    fn record(&self, outcome: Result<Duration, String>) {
        let m = &self.metrics.selfcheck;
        let mut v = self.verdict.lock();
        v.rounds += 1;
        match outcome {
            Ok(latency) => {
                if v.consecutive_failures >= FAILURE_THRESHOLD {
                    info!(after = v.consecutive_failures, "self-check passes again");
                }
                v.consecutive_failures = 0;
                v.last_error = None;
                v.last_latency = Some(latency);
                m.passed.inc();
            }
            Err(why) => {
                v.consecutive_failures += 1;
                warn!(failures = v.consecutive_failures, reason = %why, "self-check round failed");
                v.last_error = Some(why);
                m.failed.inc();
            }
        }
        m.consecutive_failures
            .set(i64::from(v.consecutive_failures));
        m.passing
            .set(i64::from(v.consecutive_failures < FAILURE_THRESHOLD));
    }
}

impl ReadinessCheck for SelfCheck {
    fn name(&self) -> &str {
        "selfCheck"
    }

    fn check(&self) -> CheckResult {
        let v = self.verdict.lock();
        if v.consecutive_failures >= FAILURE_THRESHOLD {
            return CheckResult {
                ready: false,
                detail: Some(format!(
                    "{} rounds failed in a row; last: {}",
                    v.consecutive_failures,
                    v.last_error.as_deref().unwrap_or("unknown")
                )),
            };
        }
        let detail = match (&v.last_error, v.last_latency) {
            _ if v.rounds == 0 => "no round has run yet".to_string(),
            (Some(e), _) => format!(
                "{} of {FAILURE_THRESHOLD} allowed failures in a row; last: {e}",
                v.consecutive_failures
            ),
            (None, Some(l)) => format!("passing; last round took {} µs", l.as_micros()),
            (None, None) => "passing".to_string(),
        };
        CheckResult {
            ready: true,
            detail: Some(detail),
        }
    }
}

struct NotifyWake(Notify);

impl Wake for NotifyWake {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// The probe's session and what it needs to run a round.
struct Probe {
    session: Arc<Session>,
    generation: u64,
    wake: Arc<NotifyWake>,
}

impl Probe {
    fn connect(broker: &Broker, filter: &SubscriptionFilter, client_id: &str) -> Probe {
        let wake = Arc::new(NotifyWake(Notify::new()));
        let attached = broker.connect(
            ConnectParams {
                client_id: client_id.to_string(),
                clean_start: true,
                session_expiry: 0,
                protocol: ProtocolVersion::V5,
                receive_maximum: u16::MAX,
                will: None,
                principal: None,
                waker: wake.clone(),
            },
            Instant::now(),
        );
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            retain_handling: RetainHandling::DontSend,
            ..SubscriptionOptions::default()
        };
        broker.subscribe(&attached.session, filter, options, None, Instant::now());
        Probe {
            session: attached.session,
            generation: attached.generation,
            wake,
        }
    }

    fn close(self, broker: &Broker) {
        broker.disconnect(
            &self.session,
            self.generation,
            Disconnect::Normal {
                session_expiry: Some(0),
            },
            Instant::now(),
        );
    }

    /// Publishes one message at `qos` and waits for it to come back. Returns the latency.
    async fn probe(
        &self,
        broker: &Broker,
        topic: &TopicName,
        qos: QoS,
        seq: u64,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Duration, String> {
        let payload = Bytes::copy_from_slice(&seq.to_be_bytes());
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        broker.publish(Message {
            topic: topic.clone(),
            payload: payload.clone(),
            qos,
            retain: false,
            properties: PublishProperties::default(),
            origin: Some(self.session.id()),
            expires_at: None,
        });
        let mut out = Vec::new();
        loop {
            let drained = self.session.drain_attached(
                self.generation,
                Instant::now(),
                64,
                |_| true,
                &mut out,
            );
            if drained.is_none() {
                return Err("the probe's session was taken over".to_string());
            }
            let mut arrived = false;
            for outgoing in out.drain(..) {
                match outgoing {
                    Outgoing::Publish { delivery, qos, .. } => {
                        if let Some(id) = qos.packet_id() {
                            self.session.puback(id);
                        }
                        // Late copies of earlier rounds' messages are dropped here.
                        arrived |=
                            delivery.message.topic == *topic && delivery.message.payload == payload;
                    }
                    Outgoing::PubRel(id) => {
                        self.session.pubcomp(id);
                    }
                }
            }
            if arrived {
                return Ok(sent.elapsed());
            }
            tokio::select! {
                _ = self.wake.0.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(format!(
                        "the QoS {} probe message did not arrive within {} ms",
                        qos as u8,
                        timeout.as_millis()
                    ));
                }
                _ = shutdown.cancelled() => return Err("shutting down".to_string()),
            }
        }
    }
}

/// A random-enough suffix so that no client can guess, and take over, the probe's client ID.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

async fn run(
    broker: Arc<Broker>,
    settings: SelfCheckSettings,
    handle: SelfCheck,
    shutdown: CancellationToken,
) {
    let base = settings.topic_base();
    let Ok(filter) = TopicFilter::new(format!("{base}/#")).and_then(SubscriptionFilter::new) else {
        warn!(topic = %base, "self-check disabled: its topic is not valid");
        return;
    };
    let topics: Vec<(QoS, TopicName)> = [QoS::AtMostOnce, QoS::AtLeastOnce]
        .into_iter()
        .filter_map(|q| {
            TopicName::new(format!("{base}/qos{}", q as u8))
                .ok()
                .map(|t| (q, t))
        })
        .collect();
    let client_id = format!("$wardgate-selfcheck-{:016x}", nonce());
    info!(
        topic = %filter,
        interval_s = settings.interval.as_secs_f64(),
        timeout_s = settings.timeout.as_secs_f64(),
        "self-check started"
    );
    let metrics = handle.metrics.clone();
    let mut probe: Option<Probe> = None;
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(settings.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let p = probe.get_or_insert_with(|| Probe::connect(&broker, &filter, &client_id));
        let mut outcome = Ok(Duration::ZERO);
        for (qos, topic) in &topics {
            seq += 1;
            let labels = QosLabels { qos: *qos as u8 };
            metrics.selfcheck.sent.get_or_create(&labels).inc();
            match p
                .probe(&broker, topic, *qos, seq, settings.timeout, &shutdown)
                .await
            {
                Ok(latency) => {
                    let secs = latency.as_secs_f64();
                    metrics.selfcheck.received.get_or_create(&labels).inc();
                    metrics
                        .selfcheck
                        .latency
                        .get_or_create(&labels)
                        .observe(secs);
                    metrics
                        .selfcheck
                        .last_latency
                        .get_or_create(&labels)
                        .set(secs);
                    debug!(
                        qos = *qos as u8,
                        latency_us = latency.as_micros() as u64,
                        "self-check probe"
                    );
                    outcome = outcome.map(|total| total.max(latency));
                }
                Err(why) => {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    metrics.selfcheck.lost.get_or_create(&labels).inc();
                    outcome = Err(why);
                    break;
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        if outcome.is_err()
            && let Some(p) = probe.take()
        {
            p.close(&broker);
        }
        handle.record(outcome);
    }
    if let Some(p) = probe.take() {
        p.close(&broker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> SelfCheck {
        SelfCheck {
            verdict: Arc::default(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    #[test]
    fn readiness_fails_after_three_failures_in_a_row_and_recovers() {
        let h = handle();
        assert!(h.check().ready, "no round yet counts as ready");
        h.record(Err("lost".into()));
        h.record(Err("lost".into()));
        assert!(h.check().ready);
        h.record(Err("lost".into()));
        let verdict = h.check();
        assert!(!verdict.ready);
        assert!(verdict.detail.expect("detail").contains("3 rounds failed"));
        assert_eq!(h.metrics.selfcheck.passing.get(), 0);
        h.record(Ok(Duration::from_micros(20)));
        assert!(h.check().ready);
        assert_eq!(h.metrics.selfcheck.passing.get(), 1);
        assert_eq!(h.metrics.selfcheck.consecutive_failures.get(), 0);
    }

    #[test]
    fn topic_levels_never_hold_wildcards() {
        let s = SelfCheckSettings {
            instance: "a/b+#".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(s.topic_base(), "$SYS/selftest/a_b__");
    }
}
