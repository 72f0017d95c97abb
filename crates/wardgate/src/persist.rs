//! `serve`'s persistence (SPEC.md §10): with `Broker.spec.persistence`, open `<data-dir>/store`,
//! say what a damaged store was moved aside to, restore the broker from it, stop the broker if the
//! store fails, and flush it at shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wardgate_core::Broker;
use wardgate_server::plan::Plan;
use wardgate_store::{DiskStore, Options};

/// The broker for `plan`'s settings, restored from its store when persistence is on.
pub(crate) fn open(
    data_dir: &Path,
    plan: &Plan,
) -> anyhow::Result<(Arc<Broker>, Option<Arc<DiskStore>>)> {
    let settings = plan.broker.clone();
    let Some(store) = plan.store else {
        return Ok((Arc::new(Broker::new(settings)), None));
    };
    if store.encryption {
        warn!(
            "persistence.encryption.mode is Enabled, but encryption at rest is not implemented yet: \
             the store is written unencrypted (set it to Disabled to silence this)"
        );
    }
    let started = Instant::now();
    let opened = wardgate_store::open(
        data_dir,
        Options {
            max_size: store.max_size_bytes,
            commit_delay: commit_delay(),
        },
    )
    .context("cannot open the persistent store")?;
    let report = &opened.report;
    if let Some((aside, reason)) = &report.moved_aside {
        error!(
            moved_to = %aside.display(),
            %reason,
            "the store was damaged: it was moved aside and the broker starts with an empty store"
        );
    }
    if report.corrupt_records > 0 {
        warn!(
            records = report.corrupt_records,
            "unreadable records were removed from the store"
        );
    }
    let restored = Broker::with_store(settings, opened.store.clone());
    let broker = Arc::new(restored);
    let r = broker.restore(opened.recovered, Instant::now());
    info!(
        path = %report.path.display(),
        sessions = r.sessions,
        messages = r.messages,
        retained = r.retained,
        wills = r.wills,
        expired_sessions = r.expired,
        took_ms = started.elapsed().as_millis() as u64,
        "persistence on: store opened"
    );
    Ok((broker, Some(opened.store)))
}

/// `WARDGATE_STORE_COMMIT_DELAY_MS`: how long the flusher gathers writes before an fsync
/// (default 0; see `wardgate_store::Options::commit_delay`). The crash tests raise it.
fn commit_delay() -> Duration {
    std::env::var("WARDGATE_STORE_COMMIT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis)
}

/// A store that fails (an I/O error on write or fsync) acknowledges nothing more: stop serving.
pub(crate) fn stop_on_failure(store: Option<&Arc<DiskStore>>, shutdown: &CancellationToken) {
    if let Some(store) = store {
        let shutdown = shutdown.clone();
        store.on_failure(move |why| {
            error!("{why}: stopping the broker");
            shutdown.cancel();
        });
    }
}

/// Makes everything written durable (graceful shutdown).
pub(crate) fn close(store: Option<&Arc<DiskStore>>) {
    if let Some(store) = store {
        store.close();
        let stats = store.stats();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let (writes, syncs) = (load(&stats.writes), load(&stats.syncs));
        info!(
            writes,
            fsyncs = syncs,
            writes_per_fsync = writes.checked_div(syncs).unwrap_or(0),
            avg_fsync_us = load(&stats.sync_micros).checked_div(syncs).unwrap_or(0),
            "store flushed"
        );
    }
}
