//! The implementations of the core's [`Store`](wardgate_core::Store) trait: [`NoopStore`]
//! (persistence off: nothing is written, everything is durable at once) and [`DiskStore`]
//! (fjall in `<data-dir>/store`, fsynced by a flusher thread in groups), with the record formats
//! and the recovery at start.
//!
//! A store that cannot be opened or read (a torn or scribbled file, an unknown format) is moved
//! aside to `<data-dir>/store.damaged-<UTC time>` and the broker starts with an empty one; the
//! caller reports what was moved. Nothing in here panics on bad data.

mod codec;
mod disk;
mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use wardgate_core::Wake;
use wardgate_core::store::{Op, Recovered, Store, Ticket};

pub use disk::{DiskStore, FlushStats, MAX_PENDING_BYTES, Options};
pub use transfer::{TransferError, decode_session, encode_session};

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir could not be prepared.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A damaged store could not be moved aside.
    #[error("the store at {path} is damaged ({reason}) and cannot be moved aside: {source}")]
    MoveAside {
        /// The store folder.
        path: PathBuf,
        /// Why it was damaged.
        reason: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Even a fresh store could not be opened.
    #[error("cannot open a store at {path}: {reason}")]
    Open {
        /// The store folder.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The flusher thread could not be started.
    #[error("cannot start the store's flusher thread: {0}")]
    Thread(std::io::Error),
}

/// What [`open`] found.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    /// The store folder.
    pub path: PathBuf,
    /// A damaged store moved aside: where to, and why.
    pub moved_aside: Option<(PathBuf, String)>,
    /// Records that could not be read and were removed.
    pub corrupt_records: usize,
    /// Records no session owned any more (or not persisted by policy), removed.
    pub orphan_records: usize,
}

/// An opened store and what it held.
#[derive(Debug)]
pub struct Opened {
    /// The store, with its flusher running.
    pub store: Arc<DiskStore>,
    /// What to restore into the broker.
    pub recovered: Recovered,
    /// What happened while opening.
    pub report: OpenReport,
}

/// Opens the store in `<data_dir>/store`. A damaged store is moved aside and replaced by an
/// empty one (see [`OpenReport::moved_aside`]).
pub fn open(data_dir: &Path, options: Options) -> Result<Opened, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join("store");
    let mut moved_aside = None;
    let (store, recovered, load) = match attempt(&path, options) {
        Ok(opened) => opened,
        Err(reason) => {
            let aside = data_dir.join(format!("store.damaged-{}", utc_stamp(SystemTime::now())));
            std::fs::rename(&path, &aside).map_err(|source| StoreError::MoveAside {
                path: path.clone(),
                reason: reason.clone(),
                source,
            })?;
            moved_aside = Some((aside, reason));
            attempt(&path, options).map_err(|reason| StoreError::Open {
                path: path.clone(),
                reason,
            })?
        }
    };
    store.start().map_err(StoreError::Thread)?;
    Ok(Opened {
        store: Arc::new(store),
        recovered,
        report: OpenReport {
            path,
            moved_aside,
            corrupt_records: load.corrupt,
            orphan_records: load.orphans,
        },
    })
}

/// One try at opening and reading the store; any error, or a panic in the storage engine on
/// bad data, is the reason it is damaged.
fn attempt(
    path: &Path,
    options: Options,
) -> Result<(DiskStore, Recovered, disk::LoadReport), String> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        DiskStore::open_at(path, options)
    }));
    match result {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the storage engine panicked".to_owned())),
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC; a time before 1970 is written as 1970.
fn utc_stamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
    at.format(UTC_STAMP)
        .expect("every field of the stamp exists in a UTC date-time")
}

/// The format of [`utc_stamp`].
const UTC_STAMP: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Persistence off: writes nothing, and everything is durable at once. The core does not even
/// call a store when it has none (`Broker::new`); this one measures the cost of the core's
/// persistence path without a disk, and serves tests.
#[derive(Debug, Default)]
pub struct NoopStore {
    written: std::sync::atomic::AtomicU64,
}

impl Store for NoopStore {
    fn write(&self, _ops: &[Op<'_>]) -> Ticket {
        Ticket(
            self.written
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        )
    }

    fn durable(&self) -> Ticket {
        Ticket(self.written.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn wait_durable(&self, _ticket: Ticket, waker: Arc<dyn Wake>) {
        waker.wake();
    }

    fn is_full(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
