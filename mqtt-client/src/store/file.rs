//! [`FileStore`]: a durable [`SessionStore`] as an append-only log of checksummed records in a
//! directory of its own.
//!
//! Layout: `session.log` starts with an 8-byte magic, then records
//! `[len: u32 LE][crc32 of body: u32 LE][body: len bytes]`. A body is one change: a flow put
//! (with the PUBLISH encoded by the MQTT 5 codec), a state update, a removal, an incoming QoS 2
//! state, "clear incoming", a subscription put or removed, a publish queued while
//! disconnected, or its removal. Recovery replays the records in order and stops at the first
//! one that is short or fails its checksum: a torn write at any byte of the tail is detected
//! and cut off, and what was synced before it is intact.
//!
//! Changes are encoded into a buffer as the session makes them and written with one
//! `write` + `fdatasync` per [`sync`](SessionStore::sync), which the session calls once per
//! batch of bytes it hands out. When the log has grown past twice the size of a snapshot of the
//! live state (and past a minimum), `sync` writes such a snapshot to `session.log.tmp`, syncs
//! it and renames it over the log instead: the file stays bounded by what is in flight.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, BytesMut};
use sansmqtt_proto::properties::SubscribeProperties;
use sansmqtt_proto::{
    Encode, Packet, PacketId, ProtocolVersion, Publish, Subscribe, SubscribeFilter,
};
use sansmqtt_session::store::{IncomingState, OutgoingFlight, OutgoingState};
use sansmqtt_session::{MemoryStore, SessionStore, StoreError, Token};
use tracing::{debug, warn};

use super::sync::{SyncDone, SyncJob};

const MAGIC: &[u8; 8] = b"MQTTSL01";
pub(super) const LOG: &str = "session.log";
pub(super) const TMP: &str = "session.log.tmp";
/// The lock file: held (`flock`) by the client using the store, and holding its process id.
const LOCK: &str = "lock";
/// Record header: length and checksum.
const HEADER: usize = 8;
/// Largest record accepted on recovery: an MQTT packet of the protocol's maximum size plus the
/// record's own fields. A larger length can only be a torn or corrupt header.
const MAX_RECORD: usize = sansmqtt_proto::MAX_PACKET_SIZE as usize + 64;
/// The log is not compacted below this size: small logs are cheap to replay.
const DEFAULT_COMPACT_MIN: u64 = 4 * 1024 * 1024;

const PUT: u8 = 1;
const UPDATE: u8 = 2;
const REMOVE: u8 = 3;
const INCOMING: u8 = 4;
const CLEAR_INCOMING: u8 = 5;
const SUBSCRIBE: u8 = 6;
const UNSUBSCRIBE: u8 = 7;
/// A queued publish without its acceptance time: written by earlier builds, still read.
const QUEUE: u8 = 8;
const DEQUEUE: u8 = 9;
/// A queued publish with the wall-clock time it was accepted, so that a later process honours
/// its MQTT 5 message expiry interval from acceptance, not from its own start.
const QUEUE_AT: u8 = 10;

/// Publishes queued while disconnected, by their `seq` (send order), with the wall-clock time
/// each was accepted (milliseconds since the Unix epoch; `None` from a `QUEUE` record).
type QueuedPublishes = std::collections::BTreeMap<u64, (Token, Publish, Option<u64>)>;

/// The wall clock in milliseconds since the Unix epoch (0 for a clock before it).
// Not a deadline (those go through `Runtime::now`): a time stamp that must mean the same in
// the next process, which no monotonic instant does.
#[allow(clippy::disallowed_methods)]
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// `publish` as a later process sends it: its MQTT 5 message expiry interval reduced by the
/// wall-clock time since it was accepted, rounded up to whole seconds; 0 once it has run out
/// (the session then drops it as expired, counted and reported, before sending). A clock
/// that went backwards counts as no time passed.
fn with_expiry_left(mut publish: Publish, accepted_ms: Option<u64>, now_ms: u64) -> Publish {
    if let (Some(accepted), Some(interval)) =
        (accepted_ms, publish.properties.message_expiry_interval)
    {
        let elapsed = now_ms.saturating_sub(accepted);
        let left = (u64::from(interval) * 1000).saturating_sub(elapsed);
        publish.properties.message_expiry_interval =
            Some(u32::try_from(left.div_ceil(1000)).unwrap_or(interval));
    }
    publish
}

/// Counters of a [`FileStore`]'s work, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStoreStats {
    /// `fdatasync` calls on the log (one per batch that changed something) and on
    /// compaction snapshots.
    pub syncs: u64,
    /// Snapshots written in place of the log.
    pub compactions: u64,
    /// Records appended.
    pub records: u64,
    /// Current size of the log file.
    pub log_len: u64,
    /// Records found on opening (including the ones a later record cancelled).
    pub recovered_records: u64,
    /// Bytes of a torn tail cut off on opening.
    pub torn_bytes: u64,
}

/// The counters behind [`FileStoreStats`], shared with [`FileStoreMonitor`]s.
#[derive(Debug, Default)]
struct Counters {
    syncs: AtomicU64,
    compactions: AtomicU64,
    records: AtomicU64,
    log_len: AtomicU64,
    recovered_records: AtomicU64,
    torn_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> FileStoreStats {
        FileStoreStats {
            syncs: self.syncs.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            log_len: self.log_len.load(Ordering::Relaxed),
            recovered_records: self.recovered_records.load(Ordering::Relaxed),
            torn_bytes: self.torn_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Reads a [`FileStore`]'s counters from anywhere (e.g. while a client's driver owns the
/// store); see [`MqttClient::store_stats`](crate::MqttClient::store_stats).
#[derive(Debug, Clone)]
pub struct FileStoreMonitor(Arc<Counters>);

impl FileStoreMonitor {
    /// The counters now.
    pub fn stats(&self) -> FileStoreStats {
        self.0.snapshot()
    }
}

/// A durable session store: in-flight QoS 1/2 state in an append-only, checksummed log in a
/// directory of its own, synced once per batch and compacted to what is in flight.
///
/// Open it on the same directory after a crash and the session built over it resumes every
/// outgoing flow (re-sent with DUP, or PUBREL) and every incoming QoS 2 flow acknowledged with
/// PUBREC.
///
/// One client per directory at a time: opening takes an exclusive advisory lock on the file
/// `lock` in the directory (`flock` on Unix, `LockFileEx` on Windows), and a second opening,
/// from this process or another, fails with [`StoreError::Locked`] naming the directory and
/// the holder's process id. The operating system releases the lock when the store is dropped
/// or its process dies (even by `SIGKILL`), so nothing stale is left to clean up.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    /// The log, shared with a [`SyncJob`] appending to it.
    file: Arc<File>,
    /// Held open for as long as the store lives: its lock is the store's.
    _lock: File,
    /// What the log holds plus the pending changes: every read is served from here.
    index: MemoryStore,
    /// The subscriptions recorded, in the order first recorded.
    subscriptions: Subscriptions,
    /// The publishes queued while disconnected, not yet in flight.
    queued: QueuedPublishes,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    /// Length of the log known to be durable.
    synced_len: u64,
    /// The log is compacted at the first sync that finds it longer than this.
    compact_at: u64,
    compact_min: u64,
    /// A sync that ran as a [`SyncJob`] failed: the next [`sync`](SessionStore::sync) says so.
    failed: Option<StoreError>,
    stats: Arc<Counters>,
}

impl FileStore {
    /// Opens (or creates) the store in `dir`, recovering what the log holds and cutting off a
    /// torn tail.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, DEFAULT_COMPACT_MIN)
    }

    /// Like [`open`](Self::open), compacting once the log exceeds `compact_min` bytes (and
    /// twice the live state). Small values suit tests; the default is 4 MiB.
    pub fn open_with(dir: impl AsRef<Path>, compact_min: u64) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("creating the store directory", e))?;
        let lock = lock_dir(&dir)?;
        // A snapshot that was not renamed into place was never the log.
        let _ = fs::remove_file(dir.join(TMP));
        let path = dir.join(LOG);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| StoreError::io("opening the log", e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| StoreError::io("reading the log", e))?;

        let mut stats = FileStoreStats::default();
        let mut index = MemoryStore::new();
        let mut subscriptions = Subscriptions::default();
        let mut queued = QueuedPublishes::new();
        let good_len = if data.len() < MAGIC.len() {
            // Empty, or the magic itself was torn: a store that never held a record.
            if MAGIC.starts_with(&data) {
                0
            } else {
                return Err(StoreError::Corrupt("not a session store log"));
            }
        } else if &data[..MAGIC.len()] != MAGIC {
            return Err(StoreError::Corrupt("not a session store log"));
        } else {
            let (good, records) = replay(&data, &mut index, &mut subscriptions, &mut queued)?;
            stats.recovered_records = records;
            good
        };
        stats.torn_bytes = (data.len() - good_len) as u64;
        if stats.torn_bytes > 0 {
            warn!(
                torn = stats.torn_bytes,
                at = good_len,
                "session store: cutting off a torn tail"
            );
        }
        if good_len == 0 {
            file.set_len(0)
                .map_err(|e| StoreError::io("resetting the log", e))?;
            file.write_all(MAGIC)
                .map_err(|e| StoreError::io("writing the log header", e))?;
            file.sync_all()
                .map_err(|e| StoreError::io("syncing the log header", e))?;
        } else if stats.torn_bytes > 0 {
            file.set_len(good_len as u64)
                .map_err(|e| StoreError::io("cutting off a torn tail", e))?;
            file.sync_all()
                .map_err(|e| StoreError::io("syncing the log", e))?;
        }
        if created {
            sync_dir(&dir)?;
        }
        let synced_len = (good_len.max(MAGIC.len())) as u64;
        let counters = Counters::default();
        counters.log_len.store(synced_len, Ordering::Relaxed);
        counters
            .recovered_records
            .store(stats.recovered_records, Ordering::Relaxed);
        counters
            .torn_bytes
            .store(stats.torn_bytes, Ordering::Relaxed);
        debug!(dir = %dir.display(), inflight = index.outgoing_len(), "session store opened");
        Ok(Self {
            dir,
            file: Arc::new(file),
            _lock: lock,
            index,
            subscriptions,
            queued,
            pending: Vec::new(),
            synced_len,
            compact_at: compact_min.max(synced_len.saturating_mul(2)),
            compact_min,
            failed: None,
            stats: Arc::new(counters),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the store has done so far.
    pub fn stats(&self) -> FileStoreStats {
        self.stats.snapshot()
    }

    /// A handle that reads the counters while someone else owns the store.
    pub fn monitor(&self) -> FileStoreMonitor {
        FileStoreMonitor(self.stats.clone())
    }

    /// Bytes of changes recorded and not yet synced.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn append(&mut self, body: impl FnOnce(&mut Vec<u8>)) {
        record(&mut self.pending, body);
        self.stats.records.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts a sync: hands what it takes to make every pending change durable to a
    /// [`SyncJob`], which blocks (write, `fdatasync`, or a compaction) and can run on another
    /// thread; [`finish_sync`](Self::finish_sync) takes its result. `None` when nothing is
    /// pending. Until it is finished the store must not be changed (the driver records nothing
    /// while a sync runs), and a failure it reports is returned by the next
    /// [`sync`](SessionStore::sync).
    pub(crate) fn begin_sync(&mut self) -> Option<SyncJob> {
        if self.pending.is_empty() {
            return None;
        }
        if self.synced_len + self.pending.len() as u64 > self.compact_at {
            return Some(SyncJob::Compact {
                dir: self.dir.clone(),
                snapshot: self.snapshot(),
                covered: self.pending.len(),
            });
        }
        Some(SyncJob::Append {
            file: self.file.clone(),
            bytes: std::mem::take(&mut self.pending),
            synced_len: self.synced_len,
        })
    }

    /// Takes the result of a [`SyncJob`] from [`begin_sync`](Self::begin_sync).
    pub(crate) fn finish_sync(&mut self, done: SyncDone) {
        match done {
            SyncDone::Appended { mut bytes, result } => match result {
                Ok(()) => {
                    self.synced_len += bytes.len() as u64;
                    self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                    // Keep the buffer's capacity for the next batch.
                    bytes.clear();
                    bytes.append(&mut self.pending);
                    self.pending = bytes;
                }
                Err(err) => {
                    // The changes stay pending, ahead of any made since, for the next sync.
                    bytes.append(&mut self.pending);
                    self.pending = bytes;
                    self.failed = Some(err);
                }
            },
            SyncDone::Compacted {
                file,
                len,
                covered,
                result,
            } => {
                if let Some(file) = file {
                    // The snapshot is the log now (even if syncing its directory failed).
                    self.file = Arc::new(file);
                    self.synced_len = len;
                    self.compact_at = self.compact_min.max(len.saturating_mul(2));
                    self.stats.syncs.fetch_add(1, Ordering::Relaxed);
                    self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                    debug!(len, "session store compacted");
                }
                match result {
                    Ok(()) => drop(self.pending.drain(..covered)),
                    // Pending changes are kept: written again after the snapshot, they change
                    // nothing on replay (every record sets a state), and nothing is lost.
                    Err(err) => self.failed = Some(err),
                }
            }
        }
        self.stats.log_len.store(self.synced_len, Ordering::Relaxed);
    }

    /// The live state (which includes the pending changes) as a log of its own.
    fn snapshot(&self) -> Vec<u8> {
        let mut snapshot = Vec::with_capacity(self.pending.len() + 4096);
        snapshot.extend_from_slice(MAGIC);
        for (id, flight) in self.index.outgoing_in_order() {
            record(&mut snapshot, |buf| put_body(buf, id, &flight));
        }
        for (id, state) in self.index.incoming_flows() {
            if state == IncomingState::AwaitingPubRel {
                record(&mut snapshot, |buf| incoming_body(buf, id, Some(state)));
            }
        }
        for (filter, properties) in &self.subscriptions.0 {
            record(&mut snapshot, |buf| subscribe_body(buf, filter, properties));
        }
        for (seq, (token, publish, accepted)) in &self.queued {
            record(&mut snapshot, |buf| {
                queue_body(buf, *seq, *token, publish, *accepted);
            });
        }
        snapshot
    }

    /// What the log in `dir` holds, read without taking the lock: tests look at the durable
    /// state under a store that is open.
    #[cfg(test)]
    pub(crate) fn peek(dir: &Path) -> MemoryStore {
        let data = fs::read(dir.join(LOG)).unwrap_or_default();
        let mut index = MemoryStore::new();
        if data.len() >= MAGIC.len() {
            let _ = replay(
                &data,
                &mut index,
                &mut Subscriptions::default(),
                &mut QueuedPublishes::new(),
            );
        }
        index
    }

    /// The subscriptions the log in `dir` holds, read without taking the lock.
    #[cfg(test)]
    pub(crate) fn peek_subscriptions(dir: &Path) -> Vec<SubscribeFilter> {
        let data = fs::read(dir.join(LOG)).unwrap_or_default();
        let mut subscriptions = Subscriptions::default();
        if data.len() >= MAGIC.len() {
            let _ = replay(
                &data,
                &mut MemoryStore::new(),
                &mut subscriptions,
                &mut QueuedPublishes::new(),
            );
        }
        subscriptions.0.into_iter().map(|(f, _)| f).collect()
    }

    /// The queued publishes the log in `dir` holds, read without taking the lock.
    #[cfg(test)]
    pub(crate) fn peek_queued(dir: &Path) -> Vec<(u64, Token, Publish)> {
        let data = fs::read(dir.join(LOG)).unwrap_or_default();
        let mut queued = QueuedPublishes::new();
        if data.len() >= MAGIC.len() {
            let _ = replay(
                &data,
                &mut MemoryStore::new(),
                &mut Subscriptions::default(),
                &mut queued,
            );
        }
        queued
            .into_iter()
            .map(|(seq, (t, p, _))| (seq, t, p))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn replace_file_for_test(&mut self, file: File) {
        self.file = Arc::new(file);
    }
}

impl SessionStore for FileStore {
    fn outgoing(&self, id: PacketId) -> Option<&OutgoingFlight> {
        self.index.outgoing(id)
    }

    fn insert_outgoing(&mut self, id: PacketId, flight: OutgoingFlight) -> Result<(), StoreError> {
        self.append(|buf| put_body(buf, id, &flight));
        // The same record ends the queued one it carries (`put_queued`), on replay too.
        self.queued.remove(&flight.seq);
        self.index.insert_outgoing(id, flight)
    }

    fn update_outgoing(
        &mut self,
        id: PacketId,
        state: OutgoingState,
        seq: u64,
    ) -> Result<(), StoreError> {
        if self.index.outgoing(id).is_none() {
            return Ok(());
        }
        self.append(|buf| {
            buf.put_u8(UPDATE);
            buf.put_u16_le(id.get());
            buf.put_u8(outgoing_state_code(state));
            buf.put_u64_le(seq);
        });
        self.index.update_outgoing(id, state, seq)
    }

    fn remove_outgoing(&mut self, id: PacketId) -> Result<Option<OutgoingFlight>, StoreError> {
        let flight = self.index.remove_outgoing(id)?;
        if flight.is_some() {
            self.append(|buf| {
                buf.put_u8(REMOVE);
                buf.put_u16_le(id.get());
            });
        }
        Ok(flight)
    }

    fn outgoing_len(&self) -> usize {
        self.index.outgoing_len()
    }

    fn outgoing_in_order(&self) -> Vec<(PacketId, OutgoingFlight)> {
        self.index.outgoing_in_order()
    }

    fn incoming(&self, id: PacketId) -> Option<IncomingState> {
        self.index.incoming(id)
    }

    fn set_incoming(
        &mut self,
        id: PacketId,
        state: Option<IncomingState>,
    ) -> Result<(), StoreError> {
        // `Delivered` commits to nothing and is not kept across a restart (see
        // `IncomingState::Delivered`): only the PUBREC state and its end are logged.
        let was_logged = self.index.incoming(id) == Some(IncomingState::AwaitingPubRel);
        let logged = state == Some(IncomingState::AwaitingPubRel);
        if was_logged != logged {
            self.append(|buf| incoming_body(buf, id, state));
        }
        self.index.set_incoming(id, state)
    }

    fn incoming_len(&self) -> usize {
        self.index.incoming_len()
    }

    fn clear_incoming(&mut self) -> Result<(), StoreError> {
        if self.index.incoming_len() > 0 {
            self.append(|buf| buf.put_u8(CLEAR_INCOMING));
        }
        self.index.clear_incoming()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // A failure of a sync that ran elsewhere is this call's to report.
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        if let Some(job) = self.begin_sync() {
            let done = job.run();
            self.finish_sync(done);
        }
        self.failed.take().map_or(Ok(()), Err)
    }

    fn put_subscription(
        &mut self,
        filter: &SubscribeFilter,
        properties: &SubscribeProperties,
    ) -> Result<(), StoreError> {
        if self.subscriptions.get(&filter.filter) == Some((filter, properties)) {
            return Ok(());
        }
        self.append(|buf| subscribe_body(buf, filter, properties));
        self.subscriptions.put(filter.clone(), properties.clone());
        Ok(())
    }

    fn remove_subscription(&mut self, filter: &str) -> Result<(), StoreError> {
        if self.subscriptions.remove(filter) {
            self.append(|buf| {
                buf.put_u8(UNSUBSCRIBE);
                buf.extend_from_slice(filter.as_bytes());
            });
        }
        Ok(())
    }

    fn subscriptions(&self) -> Vec<(SubscribeFilter, SubscribeProperties)> {
        self.subscriptions.0.clone()
    }

    fn keeps_queued(&self) -> bool {
        true
    }

    fn put_queued(&mut self, seq: u64, token: Token, publish: &Publish) -> Result<(), StoreError> {
        let accepted = Some(unix_millis());
        self.append(|buf| queue_body(buf, seq, token, publish, accepted));
        self.queued.insert(seq, (token, publish.clone(), accepted));
        Ok(())
    }

    fn remove_queued(&mut self, seq: u64) -> Result<(), StoreError> {
        if self.queued.remove(&seq).is_some() {
            self.append(|buf| {
                buf.put_u8(DEQUEUE);
                buf.put_u64_le(seq);
            });
        }
        Ok(())
    }

    /// The queued publishes, each with what is left of its MQTT 5 message expiry interval
    /// by the wall clock (see `with_expiry_left`): the session that takes them counts that
    /// from its first look at them, so time spent before this process is not given back.
    fn queued_in_order(&self) -> Vec<(u64, Token, Publish)> {
        let now = unix_millis();
        self.queued
            .iter()
            .map(|(seq, (token, publish, accepted))| {
                (
                    *seq,
                    *token,
                    with_expiry_left(publish.clone(), *accepted, now),
                )
            })
            .collect()
    }
}

/// The subscriptions a [`FileStore`] holds, in the order first recorded (there are few).
#[derive(Debug, Default)]
struct Subscriptions(Vec<(SubscribeFilter, SubscribeProperties)>);

impl Subscriptions {
    fn get(&self, filter: &str) -> Option<(&SubscribeFilter, &SubscribeProperties)> {
        self.0
            .iter()
            .find(|(f, _)| f.filter == filter)
            .map(|(f, p)| (f, p))
    }

    fn put(&mut self, filter: SubscribeFilter, properties: SubscribeProperties) {
        match self.0.iter_mut().find(|(f, _)| f.filter == filter.filter) {
            Some(entry) => *entry = (filter, properties),
            None => self.0.push((filter, properties)),
        }
    }

    fn remove(&mut self, filter: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(f, _)| f.filter != filter);
        self.0.len() != before
    }
}

/// A subscription as the body of a SUBSCRIBE (MQTT 5 encoding: options and properties of
/// either version) with one filter.
fn subscribe_body(buf: &mut Vec<u8>, filter: &SubscribeFilter, properties: &SubscribeProperties) {
    buf.put_u8(SUBSCRIBE);
    let packet = Subscribe {
        packet_id: PacketId::MIN,
        filters: vec![filter.clone()],
        properties: properties.clone(),
    };
    // The session validated the filter before recording it.
    if let Err(err) = packet.encode(ProtocolVersion::V5, buf) {
        warn!(%err, "session store: cannot encode a subscription");
    }
}

/// Appends one record: header (length, checksum) and the body `body` writes.
fn record(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    body(buf);
    let body = &buf[start + HEADER..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Takes the directory's lock (see [`FileStore`]) and writes our process id into it, for the
/// error a second opener gets.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK))
        .map_err(|e| StoreError::io("opening the lock file", e))?;
    // Called through the trait: `File::try_lock` of std (1.89) is newer than our MSRV.
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let pid = file
                .read_to_string(&mut holder)
                .ok()
                .and_then(|_| holder.trim().parse().ok());
            return Err(StoreError::Locked {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err(fs4::TryLockError::Error(err)) => {
            return Err(StoreError::io("locking the store directory", err));
        }
    }
    // The id is advice for the error above; the lock itself is what excludes.
    let written = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush());
    if let Err(err) = written {
        debug!(%err, "session store: cannot record our process id in the lock file");
    }
    Ok(file)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    // A new or renamed file is durable only once its directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("syncing the store directory", e))
}

fn outgoing_state_code(state: OutgoingState) -> u8 {
    match state {
        OutgoingState::AwaitingPubAck => 1,
        OutgoingState::AwaitingPubRec => 2,
        OutgoingState::AwaitingPubComp => 3,
    }
}

fn outgoing_state(code: u8) -> Option<OutgoingState> {
    match code {
        1 => Some(OutgoingState::AwaitingPubAck),
        2 => Some(OutgoingState::AwaitingPubRec),
        3 => Some(OutgoingState::AwaitingPubComp),
        _ => None,
    }
}

fn put_body(buf: &mut Vec<u8>, id: PacketId, flight: &OutgoingFlight) {
    buf.put_u8(PUT);
    buf.put_u16_le(id.get());
    buf.put_u64_le(flight.token.get());
    buf.put_u64_le(flight.seq);
    buf.put_u8(outgoing_state_code(flight.state));
    // The MQTT 5 encoding carries everything a PUBLISH of either version can hold. The
    // session validated the message before recording it, so encoding cannot fail here.
    if let Err(err) = flight.publish.encode(ProtocolVersion::V5, buf) {
        warn!(%err, "session store: cannot encode a PUBLISH");
    }
}

fn queue_body(buf: &mut Vec<u8>, seq: u64, token: Token, publish: &Publish, accepted: Option<u64>) {
    match accepted {
        Some(accepted) => {
            buf.put_u8(QUEUE_AT);
            buf.put_u64_le(seq);
            buf.put_u64_le(token.get());
            buf.put_u64_le(accepted);
        }
        None => {
            buf.put_u8(QUEUE);
            buf.put_u64_le(seq);
            buf.put_u64_le(token.get());
        }
    }
    // A QoS 1/2 PUBLISH is encoded with a packet identifier; a queued one has none yet, so
    // a placeholder stands in (and is dropped on replay).
    let mut publish = publish.clone();
    publish.packet_id = PacketId::new(1);
    if let Err(err) = publish.encode(ProtocolVersion::V5, buf) {
        warn!(%err, "session store: cannot encode a queued PUBLISH");
    }
}

fn incoming_body(buf: &mut Vec<u8>, id: PacketId, state: Option<IncomingState>) {
    buf.put_u8(INCOMING);
    buf.put_u16_le(id.get());
    buf.put_u8(match state {
        None => 0,
        Some(IncomingState::Delivered) => 1,
        Some(IncomingState::AwaitingPubRel) => 2,
    });
}

/// Replays the records of `data` (which starts with the magic) into `index`. Returns the
/// length of the valid prefix and the number of records in it. A record that is short or fails
/// its checksum ends the log there; one that passes its checksum but cannot be understood is
/// corruption of another kind (a newer format, a bug) and fails the open.
fn replay(
    data: &[u8],
    index: &mut MemoryStore,
    subscriptions: &mut Subscriptions,
    queued: &mut QueuedPublishes,
) -> Result<(usize, u64), StoreError> {
    let mut at = MAGIC.len();
    let mut records = 0;
    while let Some(header) = data.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let Some(body) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        apply(body, index, subscriptions, queued)
            .ok_or(StoreError::Corrupt("unreadable record"))??;
        records += 1;
        at += HEADER + len;
    }
    Ok((at, records))
}

/// Applies one record; `None` if it cannot be parsed.
fn apply(
    mut body: &[u8],
    index: &mut MemoryStore,
    subscriptions: &mut Subscriptions,
    queued: &mut QueuedPublishes,
) -> Option<Result<(), StoreError>> {
    let kind = take_u8(&mut body)?;
    Some(match kind {
        PUT => {
            let id = PacketId::new(take_u16(&mut body)?)?;
            let token = take_u64(&mut body)?;
            let seq = take_u64(&mut body)?;
            let state = outgoing_state(take_u8(&mut body)?)?;
            let mut packet = BytesMut::from(body);
            let decoded = sansmqtt_proto::decode(
                &mut packet,
                ProtocolVersion::V5,
                sansmqtt_proto::MAX_PACKET_SIZE,
            );
            let Ok(Some(Packet::Publish(publish))) = decoded else {
                return None;
            };
            let flight = OutgoingFlight {
                token: Token::from_raw(token),
                publish,
                state,
                seq,
            };
            queued.remove(&seq);
            index.insert_outgoing(id, flight)
        }
        UPDATE => {
            let id = PacketId::new(take_u16(&mut body)?)?;
            let state = outgoing_state(take_u8(&mut body)?)?;
            let seq = take_u64(&mut body)?;
            index.update_outgoing(id, state, seq)
        }
        REMOVE => {
            let id = PacketId::new(take_u16(&mut body)?)?;
            index.remove_outgoing(id).map(drop)
        }
        INCOMING => {
            let id = PacketId::new(take_u16(&mut body)?)?;
            let state = match take_u8(&mut body)? {
                0 | 1 => None,
                2 => Some(IncomingState::AwaitingPubRel),
                _ => return None,
            };
            index.set_incoming(id, state)
        }
        CLEAR_INCOMING => index.clear_incoming(),
        SUBSCRIBE => {
            let mut packet = BytesMut::from(body);
            let decoded = sansmqtt_proto::decode(
                &mut packet,
                ProtocolVersion::V5,
                sansmqtt_proto::MAX_PACKET_SIZE,
            );
            let Ok(Some(Packet::Subscribe(subscribe))) = decoded else {
                return None;
            };
            let filter = subscribe.filters.into_iter().next()?;
            subscriptions.put(filter, subscribe.properties);
            Ok(())
        }
        UNSUBSCRIBE => {
            subscriptions.remove(std::str::from_utf8(body).ok()?);
            Ok(())
        }
        QUEUE | QUEUE_AT => {
            let seq = take_u64(&mut body)?;
            let token = Token::from_raw(take_u64(&mut body)?);
            let accepted = if kind == QUEUE_AT {
                Some(take_u64(&mut body)?)
            } else {
                None
            };
            let mut packet = BytesMut::from(body);
            let decoded = sansmqtt_proto::decode(
                &mut packet,
                ProtocolVersion::V5,
                sansmqtt_proto::MAX_PACKET_SIZE,
            );
            let Ok(Some(Packet::Publish(mut publish))) = decoded else {
                return None;
            };
            publish.packet_id = None;
            queued.insert(seq, (token, publish, accepted));
            Ok(())
        }
        DEQUEUE => {
            queued.remove(&take_u64(&mut body)?);
            Ok(())
        }
        _ => return None,
    })
}

fn take_u8(buf: &mut &[u8]) -> Option<u8> {
    (buf.remaining() >= 1).then(|| buf.get_u8())
}

fn take_u16(buf: &mut &[u8]) -> Option<u16> {
    (buf.remaining() >= 2).then(|| buf.get_u16_le())
}

fn take_u64(buf: &mut &[u8]) -> Option<u64> {
    (buf.remaining() >= 8).then(|| buf.get_u64_le())
}

#[cfg(test)]
mod expiry_left {
    use sansmqtt_proto::properties::PublishProperties;
    use sansmqtt_proto::{Publish, QoS};

    use super::with_expiry_left;

    fn left(interval: Option<u32>, accepted: Option<u64>, now: u64) -> Option<u32> {
        let mut publish = Publish::new("t", "x");
        publish.qos = QoS::AtLeastOnce;
        publish.properties = PublishProperties {
            message_expiry_interval: interval,
            ..PublishProperties::default()
        }
        .into();
        with_expiry_left(publish, accepted, now)
            .properties
            .message_expiry_interval
    }

    #[test]
    fn what_is_left_is_rounded_up_and_runs_out_at_zero() {
        // 10.5 s of 60 s gone: 49.5 s left, sent as 50 (rounded up, as a server forwards it).
        assert_eq!(left(Some(60), Some(1_000), 11_500), Some(50));
        assert_eq!(left(Some(60), Some(1_000), 11_000), Some(50));
        assert_eq!(left(Some(5), Some(1_000), 11_000), Some(0));
        // A clock that went backwards: no time passed.
        assert_eq!(left(Some(5), Some(11_000), 1_000), Some(5));
        // No interval, or a record without its acceptance time: unchanged.
        assert_eq!(left(None, Some(1_000), 11_000), None);
        assert_eq!(left(Some(5), None, 11_000), Some(5));
    }
}
