//! The on-disk store: fjall (an LSM tree) in `<data-dir>/store`, one keyspace per kind of
//! record, and a flusher thread that makes writes durable in groups.
//!
//! Writes go to fjall's journal buffer and memtables without an fsync; each gets the next
//! [`Ticket`] after it is in the journal. The flusher thread waits for writes, notes the last
//! ticket, fsyncs the journal (`persist(SyncAll)`), publishes that ticket as durable and wakes
//! whoever waits for it. Every write that arrives during an fsync is covered by the next one:
//! under load, one fsync confirms many acknowledgements (group commit), and an idle broker does
//! no fsync at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use parking_lot::{Condvar, Mutex};
use tracing::{error, warn};
use wardgate_core::Wake;
use wardgate_core::store::{Op, Recovered, RecoveredDelivery, RecoveredSession, Store, Ticket};

use crate::codec::{self, Clock};

/// How often the flusher checks the store's size against `maxSize`, at most.
const SIZE_CHECK: Duration = Duration::from_secs(1);

/// What a [`DiskStore`] is opened with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `persistence.maxSize` in bytes: past it the store reports itself full.
    pub max_size: u64,
    /// How long the flusher waits after the first write of a group before its fsync, so that
    /// more writes share it (PostgreSQL's `commit_delay`). Zero by default: under load, writes
    /// that arrive during an fsync form the next group anyway. Tests raise it to widen the
    /// window in which written data is not yet durable.
    pub commit_delay: Duration,
}

/// Counters of the flusher, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct FlushStats {
    /// Writes appended.
    pub writes: AtomicU64,
    /// Bytes of values written.
    pub bytes: AtomicU64,
    /// fsyncs done.
    pub syncs: AtomicU64,
    /// Total time spent in fsync, in microseconds.
    pub sync_micros: AtomicU64,
}

struct Keyspaces {
    sessions: Keyspace,
    subscriptions: Keyspace,
    queue: Keyspace,
    inflight: Keyspace,
    incoming: Keyspace,
    retained: Keyspace,
}

impl Keyspaces {
    fn open(db: &Database) -> fjall::Result<Keyspaces> {
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Keyspaces {
            sessions: ks("sessions")?,
            subscriptions: ks("subscriptions")?,
            queue: ks("queue")?,
            inflight: ks("inflight")?,
            incoming: ks("incoming")?,
            retained: ks("retained")?,
        })
    }
}

/// A waiter for a ticket to become durable.
type Waiter = (u64, Arc<dyn Wake>);

struct Flush {
    waiters: Vec<Waiter>,
    stop: bool,
}

type FailureHandler = Box<dyn FnOnce(String) + Send>;

/// What the store and its flusher thread share.
struct Shared {
    written: AtomicU64,
    durable: AtomicU64,
    failed: AtomicBool,
    full: AtomicBool,
    max_size: u64,
    commit_delay: Duration,
    flush: Mutex<Flush>,
    work: Condvar,
    on_failure: Mutex<Option<FailureHandler>>,
    stats: FlushStats,
}

impl Shared {
    /// Marks the store failed (an I/O error on write or fsync): nothing written from now on
    /// becomes durable, so nothing more is acknowledged, and the owner is told once.
    fn fail(&self, what: &str, e: &fjall::Error) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            let message = format!("the store failed ({what}): {e}");
            error!("{message}");
            if let Some(handler) = self.on_failure.lock().take() {
                handler(message);
            }
        }
    }
}

/// The fjall store.
pub struct DiskStore {
    db: Database,
    ks: Keyspaces,
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("written", &self.shared.written)
            .field("durable", &self.shared.durable)
            .finish_non_exhaustive()
    }
}

/// What [`load`] found besides the data.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LoadReport {
    /// Records that could not be read (removed).
    pub(crate) corrupt: usize,
    /// Records of sessions that no longer exist, or not persisted by policy (removed).
    pub(crate) orphans: usize,
}

impl DiskStore {
    /// Opens (or creates) the store at `path` and reads everything in it.
    pub(crate) fn open_at(
        path: &Path,
        options: Options,
    ) -> fjall::Result<(DiskStore, Recovered, LoadReport)> {
        let db = Database::builder(path)
            // The flusher decides when the journal reaches the disk.
            .manual_journal_persist(true)
            // Sized for an edge device: the store is mostly short-lived queue entries.
            .max_journaling_size(64 * 1024 * 1024)
            .cache_size(16 * 1024 * 1024)
            .open()?;
        let ks = Keyspaces::open(&db)?;
        let (recovered, report) = load(&db, &ks, Clock::now())?;
        // Make the start's own clean-up durable before anything is acknowledged.
        db.persist(PersistMode::SyncAll)?;
        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            full: AtomicBool::new(false),
            max_size: options.max_size,
            commit_delay: options.commit_delay,
            flush: Mutex::new(Flush {
                waiters: Vec::new(),
                stop: false,
            }),
            work: Condvar::new(),
            on_failure: Mutex::new(None),
            stats: FlushStats::default(),
        });
        let store = DiskStore {
            db,
            ks,
            shared,
            flusher: Mutex::new(None),
        };
        check_size(&store.shared, &store.db);
        Ok((store, recovered, report))
    }

    /// Starts the flusher thread.
    pub(crate) fn start(&self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let db = self.db.clone();
        let handle = std::thread::Builder::new()
            .name("wardgate-flush".into())
            .spawn(move || flusher(&shared, &db))?;
        *self.flusher.lock() = Some(handle);
        Ok(())
    }

    /// Calls `handler` once if the store fails (an I/O error on write or fsync). After a
    /// failure nothing more is acknowledged; the broker should stop.
    pub fn on_failure(&self, handler: impl FnOnce(String) + Send + 'static) {
        *self.shared.on_failure.lock() = Some(Box::new(handler));
    }

    /// Flusher counters.
    pub fn stats(&self) -> &FlushStats {
        &self.shared.stats
    }

    /// Bytes on disk (journal and tables).
    pub fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    /// Makes everything written durable and stops the flusher (graceful shutdown).
    pub fn close(&self) {
        {
            let mut flush = self.shared.flush.lock();
            flush.stop = true;
            self.shared.work.notify_all();
        }
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
    }

    fn add(&self, batch: &mut OwnedWriteBatch, clock: Clock, op: &Op<'_>) -> fjall::Result<()> {
        let ks = &self.ks;
        let stats = &self.shared.stats;
        let mut put = |keyspace: &Keyspace, key: &[u8], value: &[u8]| {
            stats.bytes.fetch_add(value.len() as u64, Ordering::Relaxed);
            batch.insert(keyspace, key, value);
        };
        match *op {
            Op::Session(record) => put(
                &ks.sessions,
                &codec::session_key(record.id),
                &codec::session_value(clock, record),
            ),
            Op::DropSession(session) => {
                let prefix = codec::session_key(session);
                batch.remove(&ks.sessions, &prefix[..]);
                for keyspace in [&ks.subscriptions, &ks.queue, &ks.inflight, &ks.incoming] {
                    for item in keyspace.prefix(prefix) {
                        batch.remove(keyspace, item.key()?);
                    }
                }
            }
            Op::Subscribe {
                session,
                filter,
                entry,
            } => put(
                &ks.subscriptions,
                &codec::sub_key(session, filter),
                &codec::subscription_value(filter, entry),
            ),
            Op::Unsubscribe { session, filter } => {
                batch.remove(&ks.subscriptions, codec::sub_key(session, filter));
            }
            Op::Enqueue {
                session,
                seq,
                delivery,
            } => put(
                &ks.queue,
                &codec::seq_key(session, seq),
                &codec::queue_value(clock, &delivery),
            ),
            Op::Inflight {
                session,
                seq,
                packet_id,
                state,
            } => put(
                &ks.inflight,
                &codec::seq_key(session, seq),
                &codec::inflight_value(packet_id, state),
            ),
            Op::Dequeue { session, seq } => {
                let key = codec::seq_key(session, seq);
                batch.remove(&ks.queue, &key[..]);
                batch.remove(&ks.inflight, &key[..]);
            }
            Op::IncomingQos2 { session, packet_id } => {
                put(&ks.incoming, &codec::incoming_key(session, packet_id), &[])
            }
            Op::ReleaseQos2 { session, packet_id } => {
                batch.remove(&ks.incoming, &codec::incoming_key(session, packet_id)[..]);
            }
            Op::Retain(message) => put(
                &ks.retained,
                message.topic.as_str().as_bytes(),
                &codec::retained_value(clock, message),
            ),
            Op::ClearRetained(topic) => {
                batch.remove(&ks.retained, topic.as_str().as_bytes());
            }
        }
        Ok(())
    }
}

impl Store for DiskStore {
    fn write(&self, ops: &[Op<'_>]) -> Ticket {
        let clock = Clock::now();
        let mut batch = self.db.batch();
        let mut result = Ok(());
        for op in ops {
            result = self.add(&mut batch, clock, op);
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result.and_then(|()| batch.commit()) {
            self.shared.fail("write", &e);
        }
        self.shared.stats.writes.fetch_add(1, Ordering::Relaxed);
        // The ticket is taken after the batch is in the journal: a flusher that sees it
        // written fsyncs a journal that holds it (and every smaller ticket).
        let ticket = self.shared.written.fetch_add(1, Ordering::AcqRel) + 1;
        let _flush = self.shared.flush.lock();
        self.shared.work.notify_one();
        Ticket(ticket)
    }

    fn durable(&self) -> Ticket {
        Ticket(self.shared.durable.load(Ordering::Acquire))
    }

    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        if self.shared.durable.load(Ordering::Acquire) >= ticket.0 {
            waker.wake();
            return;
        }
        let mut flush = self.shared.flush.lock();
        // Checked again under the lock the flusher takes to wake waiters.
        if self.shared.durable.load(Ordering::Acquire) >= ticket.0 {
            waker.wake();
            return;
        }
        flush.waiters.push((ticket.0, waker));
    }

    fn is_full(&self) -> bool {
        self.shared.full.load(Ordering::Relaxed) || self.shared.failed.load(Ordering::Relaxed)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// The flusher thread: fsync whatever was written, publish it as durable, wake the waiters.
fn flusher(shared: &Shared, db: &Database) {
    let mut last_size_check = Instant::now();
    loop {
        {
            let mut flush = shared.flush.lock();
            while shared.written.load(Ordering::Acquire) <= shared.durable.load(Ordering::Acquire)
                && !flush.stop
            {
                shared.work.wait(&mut flush);
            }
            if flush.stop
                && shared.written.load(Ordering::Acquire) <= shared.durable.load(Ordering::Acquire)
            {
                return;
            }
        }
        if !shared.commit_delay.is_zero() {
            std::thread::sleep(shared.commit_delay);
        }
        let target = shared.written.load(Ordering::Acquire);
        let started = Instant::now();
        if let Err(e) = db.persist(PersistMode::SyncAll) {
            shared.fail("fsync", &e);
        }
        shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        shared.stats.sync_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if shared.failed.load(Ordering::Acquire) {
            // Nothing more becomes durable; waiters stay asleep (their connections end when
            // the broker stops). Park until told to stop.
            let mut flush = shared.flush.lock();
            while !flush.stop {
                shared.work.wait(&mut flush);
            }
            return;
        }
        shared.durable.store(target, Ordering::Release);
        let woken: Vec<Waiter> = {
            let mut flush = shared.flush.lock();
            let (due, later) = std::mem::take(&mut flush.waiters)
                .into_iter()
                .partition(|(t, _)| *t <= target);
            flush.waiters = later;
            due
        };
        for (_, waker) in woken {
            waker.wake();
        }
        if last_size_check.elapsed() >= SIZE_CHECK {
            last_size_check = Instant::now();
            check_size(shared, db);
        }
    }
}

/// Compares the bytes on disk with `maxSize` and reports changes.
fn check_size(shared: &Shared, db: &Database) {
    let used = db.disk_space().unwrap_or(0);
    let full = used > shared.max_size;
    if shared.full.swap(full, Ordering::Relaxed) != full {
        if full {
            warn!(
                used,
                max_size = shared.max_size,
                "the store is past persistence.maxSize: new QoS 1/2 messages are refused (0x97)"
            );
        } else {
            warn!(used, "the store is below persistence.maxSize again");
        }
    }
}

/// Reads the whole store into what the broker restores, removing what cannot be read and what
/// no session owns any more.
fn load(db: &Database, ks: &Keyspaces, clock: Clock) -> fjall::Result<(Recovered, LoadReport)> {
    let mut report = LoadReport::default();
    let mut remove: Vec<(&Keyspace, fjall::UserKey)> = Vec::new();
    let mut sessions: BTreeMap<u64, RecoveredSession> = BTreeMap::new();

    for item in ks.sessions.iter() {
        let (key, value) = item.into_inner()?;
        let read = codec::key_session(&key)
            .and_then(|id| codec::read_session(id, Bytes::copy_from_slice(&value), clock));
        match read {
            Ok(record) => {
                sessions.insert(
                    record.id.0,
                    RecoveredSession {
                        record,
                        subscriptions: Vec::new(),
                        messages: Vec::new(),
                        incoming_qos2: Vec::new(),
                    },
                );
            }
            Err(e) => {
                warn!(error = %e, "unreadable session record removed");
                report.corrupt += 1;
                remove.push((&ks.sessions, key));
            }
        }
    }

    for item in ks.subscriptions.iter() {
        let (key, value) = item.into_inner()?;
        let owner = codec::key_session(&key)
            .ok()
            .and_then(|id| sessions.get_mut(&id.0))
            .filter(|s| s.record.expiry_interval > 0);
        let Some(owner) = owner else {
            report.orphans += 1;
            remove.push((&ks.subscriptions, key));
            continue;
        };
        match codec::read_subscription(Bytes::copy_from_slice(&value)) {
            Ok(sub) => owner.subscriptions.push(sub),
            Err(e) => {
                warn!(error = %e, "unreadable subscription removed");
                report.corrupt += 1;
                remove.push((&ks.subscriptions, key));
            }
        }
    }

    for item in ks.queue.iter() {
        let (key, value) = item.into_inner()?;
        let owner = codec::key_session(&key)
            .ok()
            .and_then(|id| sessions.get_mut(&id.0))
            .filter(|s| s.record.persist_queue);
        let (Some(owner), Ok(seq)) = (owner, codec::key_seq(&key)) else {
            report.orphans += 1;
            remove.push((&ks.queue, key));
            continue;
        };
        match codec::read_queue(Bytes::copy_from_slice(&value), clock) {
            // Keys sort by session then sequence: messages arrive in queue order.
            Ok(copy) => owner.messages.push(RecoveredDelivery {
                seq,
                message: copy.message,
                qos: copy.qos,
                retain: copy.retain,
                subscription_ids: copy.subscription_ids,
                shared: copy.shared,
                inflight: None,
            }),
            Err(e) => {
                warn!(error = %e, "unreadable queued message removed");
                report.corrupt += 1;
                remove.push((&ks.queue, key));
            }
        }
    }

    for item in ks.inflight.iter() {
        let (key, value) = item.into_inner()?;
        let entry = codec::key_session(&key)
            .ok()
            .zip(codec::key_seq(&key).ok())
            .and_then(|(id, seq)| {
                let owner = sessions.get_mut(&id.0)?;
                let at = owner.messages.binary_search_by_key(&seq, |m| m.seq).ok()?;
                owner.messages.get_mut(at)
            });
        let Some(entry) = entry else {
            report.orphans += 1;
            remove.push((&ks.inflight, key));
            continue;
        };
        match codec::read_inflight(Bytes::copy_from_slice(&value)) {
            Ok(state) => entry.inflight = Some(state),
            Err(e) => {
                warn!(error = %e, "unreadable in-flight state removed");
                report.corrupt += 1;
                remove.push((&ks.inflight, key));
            }
        }
    }

    for item in ks.incoming.iter() {
        let (key, _) = item.into_inner()?;
        let owner = codec::key_session(&key)
            .ok()
            .and_then(|id| sessions.get_mut(&id.0))
            .filter(|s| s.record.expiry_interval > 0);
        match (owner, codec::key_packet_id(&key)) {
            (Some(owner), Ok(id)) => owner.incoming_qos2.push(id),
            _ => {
                report.orphans += 1;
                remove.push((&ks.incoming, key));
            }
        }
    }

    let mut retained = Vec::new();
    for item in ks.retained.iter() {
        let (key, value) = item.into_inner()?;
        match codec::read_retained(Bytes::copy_from_slice(&value), clock) {
            Ok(message) => retained.push(message),
            Err(e) => {
                warn!(error = %e, "unreadable retained message removed");
                report.corrupt += 1;
                remove.push((&ks.retained, key));
            }
        }
    }

    if !remove.is_empty() {
        let mut batch = db.batch();
        for (keyspace, key) in remove {
            batch.remove(keyspace, key);
        }
        batch.commit()?;
    }
    Ok((
        Recovered {
            sessions: sessions.into_values().collect(),
            retained,
        },
        report,
    ))
}
