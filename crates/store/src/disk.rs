//! The on-disk store: fjall (an LSM tree) in `<data-dir>/store`, one keyspace per kind of
//! record, and one thread that writes and fsyncs in groups.
//!
//! [`DiskStore::write`] does no I/O: it encodes the ops, appends them to a pending list and takes
//! the next [`Ticket`], under one short mutex (so ticket order is the order the writes are
//! applied in). The flusher thread takes everything pending, reduces it to the final state of
//! each key, commits that to fjall as one atomic batch, fsyncs the journal
//! (`persist(SyncAll)`), publishes the last ticket it covered as durable and wakes whoever waits
//! for it. Writes that arrive during an fsync form the next group: under load one fsync confirms
//! many acknowledgements, and an idle broker does no fsync at all. Connection tasks never wait
//! for the disk (fjall holds its journal lock for the whole fsync); they wait for a ticket.
//!
//! The pending list is bounded: past [`MAX_PENDING_BYTES`] a writer waits for the flusher to take
//! it (backpressure on publishers, instead of unbounded memory when the disk is slow).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::{Condvar, Mutex};
use tracing::{error, warn};
use wardgate_core::Wake;
use wardgate_core::store::{Op, Recovered, RecoveredSession, Store, Ticket};

use crate::codec::{self, Clock};

/// How often the flusher checks the store's size against `maxSize`, at most.
const SIZE_CHECK: Duration = Duration::from_secs(1);

/// Past this many bytes of encoded writes waiting for the flusher, writers wait for it.
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

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
    /// Writes (calls of `Store::write`).
    pub writes: AtomicU64,
    /// Bytes of values written.
    pub bytes: AtomicU64,
    /// fsyncs done.
    pub syncs: AtomicU64,
    /// Total time spent in fsync, in microseconds.
    pub sync_micros: AtomicU64,
}

/// The keyspaces, by [`Space`].
struct Keyspaces {
    sessions: Keyspace,
    subscriptions: Keyspace,
    queue: Keyspace,
    inflight: Keyspace,
    incoming: Keyspace,
    retained: Keyspace,
}

/// One of the keyspaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Space {
    Sessions,
    Subscriptions,
    Queue,
    Inflight,
    Incoming,
    Retained,
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

    fn get(&self, space: Space) -> &Keyspace {
        match space {
            Space::Sessions => &self.sessions,
            Space::Subscriptions => &self.subscriptions,
            Space::Queue => &self.queue,
            Space::Inflight => &self.inflight,
            Space::Incoming => &self.incoming,
            Space::Retained => &self.retained,
        }
    }
}

/// One encoded change.
enum Item {
    /// Set (`Some`) or remove (`None`) one key.
    Key(Space, Vec<u8>, Option<Bytes>),
    /// Remove the session's record and every key it owns.
    DropSession([u8; 8]),
}

/// Encoded writes waiting for the flusher, in ticket order.
#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    bytes: usize,
    /// The ticket of the last write in `items`.
    last: u64,
    stop: bool,
}

/// A waiter for a ticket to become durable.
type Waiter = (u64, Arc<dyn Wake>);

type FailureHandler = Box<dyn FnOnce(String) + Send>;

/// What the store and its flusher thread share.
struct Shared {
    durable: AtomicU64,
    failed: AtomicBool,
    full: AtomicBool,
    max_size: u64,
    commit_delay: Duration,
    pending: Mutex<Pending>,
    /// Signalled when writes are pending (for the flusher) or taken (for blocked writers).
    work: Condvar,
    room: Condvar,
    waiters: Mutex<Vec<Waiter>>,
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
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    keyspaces: Arc<Keyspaces>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
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
            durable: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            full: AtomicBool::new(false),
            max_size: options.max_size,
            commit_delay: options.commit_delay,
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            room: Condvar::new(),
            waiters: Mutex::new(Vec::new()),
            on_failure: Mutex::new(None),
            stats: FlushStats::default(),
        });
        check_size(&shared, &db);
        let store = DiskStore {
            db,
            shared,
            flusher: Mutex::new(None),
            keyspaces: Arc::new(ks),
        };
        Ok((store, recovered, report))
    }

    /// Starts the flusher thread.
    pub(crate) fn start(&self) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let db = self.db.clone();
        let keyspaces = self.keyspaces.clone();
        let handle = std::thread::Builder::new()
            .name("wardgate-flush".into())
            .spawn(move || flusher(&shared, &db, &keyspaces))?;
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
            let mut pending = self.shared.pending.lock();
            pending.stop = true;
            self.shared.work.notify_all();
        }
        if let Some(handle) = self.flusher.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Encodes `op` (on the writer's thread, so the flusher only applies bytes).
fn encode(op: &Op<'_>, clock: Clock, items: &mut Vec<Item>) -> usize {
    let mut key = |space, key: &[u8], value: Option<BytesMut>| {
        let len = key.len() + value.as_ref().map_or(0, BytesMut::len);
        items.push(Item::Key(space, key.to_vec(), value.map(BytesMut::freeze)));
        len
    };
    let bytes = |b: &[u8]| Some(BytesMut::from(b));
    match *op {
        Op::Session(record) => key(
            Space::Sessions,
            &codec::session_key(record.id),
            Some(codec::session_value(clock, record)),
        ),
        Op::DropSession(session) => {
            items.push(Item::DropSession(codec::session_key(session)));
            8
        }
        Op::Subscribe {
            session,
            filter,
            entry,
        } => key(
            Space::Subscriptions,
            &codec::sub_key(session, filter),
            Some(codec::subscription_value(filter, entry)),
        ),
        Op::Unsubscribe { session, filter } => {
            key(Space::Subscriptions, &codec::sub_key(session, filter), None)
        }
        Op::Enqueue {
            session,
            seq,
            delivery,
        } => key(
            Space::Queue,
            &codec::seq_key(session, seq.get()),
            Some(codec::queue_value(clock, &delivery)),
        ),
        Op::Inflight {
            session,
            seq,
            packet_id,
            state,
        } => key(
            Space::Inflight,
            &codec::seq_key(session, seq),
            bytes(&codec::inflight_value(packet_id, state)),
        ),
        Op::Dequeue { session, seq } => {
            let k = codec::seq_key(session, seq);
            key(Space::Queue, &k, None) + key(Space::Inflight, &k, None)
        }
        Op::IncomingQos2 { session, packet_id } => key(
            Space::Incoming,
            &codec::incoming_key(session, packet_id),
            bytes(&[]),
        ),
        Op::ReleaseQos2 { session, packet_id } => key(
            Space::Incoming,
            &codec::incoming_key(session, packet_id),
            None,
        ),
        Op::Retain(message) => key(
            Space::Retained,
            message.topic.as_str().as_bytes(),
            Some(codec::retained_value(clock, message)),
        ),
        Op::ClearRetained(topic) => key(Space::Retained, topic.as_str().as_bytes(), None),
    }
}

impl Store for DiskStore {
    fn write(&self, ops: &[Op<'_>]) -> Ticket {
        let clock = Clock::now();
        let mut items = Vec::with_capacity(ops.len());
        let mut bytes = 0;
        for op in ops {
            bytes += encode(op, clock, &mut items);
        }
        let stats = &self.shared.stats;
        stats.writes.fetch_add(1, Ordering::Relaxed);
        stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let mut pending = self.shared.pending.lock();
        while pending.bytes > MAX_PENDING_BYTES && !pending.stop {
            self.shared.room.wait(&mut pending);
        }
        pending.items.append(&mut items);
        pending.bytes += bytes;
        pending.last += 1;
        let ticket = Ticket(pending.last);
        self.shared.work.notify_one();
        ticket
    }

    fn durable(&self) -> Ticket {
        Ticket(self.shared.durable.load(Ordering::Acquire))
    }

    fn wait_durable(&self, ticket: Ticket, waker: Arc<dyn Wake>) {
        if self.shared.durable.load(Ordering::Acquire) >= ticket.0 {
            waker.wake();
            return;
        }
        let mut waiters = self.shared.waiters.lock();
        // Checked again under the lock the flusher takes to wake waiters.
        if self.shared.durable.load(Ordering::Acquire) >= ticket.0 {
            waker.wake();
            return;
        }
        waiters.push((ticket.0, waker));
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

/// Applies one group of writes as one atomic fjall batch: each key's final state only (a
/// message queued and acknowledged within the group never reaches the disk).
fn apply(db: &Database, ks: &Keyspaces, items: Vec<Item>) -> fjall::Result<()> {
    let mut last: HashMap<(Space, Vec<u8>), Option<Bytes>> = HashMap::with_capacity(items.len());
    let mut order: Vec<(Space, Vec<u8>)> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Key(space, key, value) => {
                let k = (space, key);
                if last.insert(k.clone(), value).is_none() {
                    order.push(k);
                }
            }
            Item::DropSession(prefix) => {
                // Everything the session owns: what is on disk and what is in this group.
                let owned = [
                    Space::Subscriptions,
                    Space::Queue,
                    Space::Inflight,
                    Space::Incoming,
                ];
                for space in owned {
                    for item in ks.get(space).prefix(prefix) {
                        let k = (space, item.key()?.to_vec());
                        if last.insert(k.clone(), None).is_none() {
                            order.push(k);
                        }
                    }
                }
                for (k, value) in &mut last {
                    if owned.contains(&k.0) && k.1.starts_with(&prefix) {
                        *value = None;
                    }
                }
                let k = (Space::Sessions, prefix.to_vec());
                if last.insert(k.clone(), None).is_none() {
                    order.push(k);
                }
            }
        }
    }
    let mut batch = db.batch();
    for k in order {
        let keyspace = ks.get(k.0);
        match last.remove(&k).flatten() {
            Some(value) => batch.insert(keyspace, k.1, &value[..]),
            None => batch.remove(keyspace, k.1),
        }
    }
    batch.commit()
}

/// The flusher thread: apply what was written, fsync, publish it as durable, wake the waiters.
fn flusher(shared: &Shared, db: &Database, ks: &Keyspaces) {
    let mut last_size_check = Instant::now();
    let mut applied = 0u64;
    loop {
        {
            let mut pending = shared.pending.lock();
            while pending.last == applied && !pending.stop {
                shared.work.wait(&mut pending);
            }
            if pending.stop && pending.last == applied {
                return;
            }
        }
        if !shared.commit_delay.is_zero() {
            std::thread::sleep(shared.commit_delay);
        }
        let (items, target) = {
            let mut pending = shared.pending.lock();
            pending.bytes = 0;
            shared.room.notify_all();
            (std::mem::take(&mut pending.items), pending.last)
        };
        applied = target;
        if shared.failed.load(Ordering::Acquire) {
            continue;
        }
        let started = Instant::now();
        let result = apply(db, ks, items).and_then(|()| db.persist(PersistMode::SyncAll));
        shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
        shared.stats.sync_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Err(e) = result {
            // Nothing more becomes durable; waiters stay asleep (their connections end when
            // the broker stops, which the failure handler asks for).
            shared.fail("write and fsync", &e);
            continue;
        }
        shared.durable.store(target, Ordering::Release);
        let woken: Vec<Waiter> = {
            let mut waiters = shared.waiters.lock();
            let (due, later) = std::mem::take(&mut *waiters)
                .into_iter()
                .partition(|(t, _)| *t <= target);
            *waiters = later;
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
            Ok(copy) => owner.messages.push(copy.recovered(seq, None)),
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
