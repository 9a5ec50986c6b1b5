//! Syncing the durable store off the executor.
//!
//! A [`FileStore`](super::FileStore) sync is a `write` plus an `fdatasync` (about 1.5 ms on a
//! disk), or a compaction. Run on the driver's task it would stall every task of that
//! executor thread, once per batch. So the driver splits it: [`FileStore::begin_sync`]
//! (in memory: take the pending records, or build the snapshot) on the task, [`SyncJob::run`]
//! (the system calls) through [`Runtime::spawn_blocking`], and
//! [`FileStore::finish_sync`](super::FileStore::finish_sync) back on the task.
//!
//! The write-ahead rule is unchanged: a batch of bytes waits in the session until the sync
//! that covers its records is done, and while it runs the driver feeds the session nothing
//! (no command, no read), so the sync covers exactly the records of that batch.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sansmqtt_session::{Session, StoreError};

use super::ClientStore;
use super::file::{LOG, TMP, sync_dir};
use crate::transport::Runtime;

/// The blocking half of a store sync (see the module docs).
#[derive(Debug)]
pub(crate) enum SyncJob {
    /// Append the records to the log and `fdatasync` it.
    Append {
        file: Arc<File>,
        bytes: Vec<u8>,
        /// Where the durable log ends: a failed append is cut back to it.
        synced_len: u64,
    },
    /// Write a snapshot of the live state next to the log, sync it, rename it over the log.
    Compact {
        dir: PathBuf,
        snapshot: Vec<u8>,
        /// Bytes of pending records the snapshot covers.
        covered: usize,
    },
}

/// What a [`SyncJob`] did, for [`FileStore::finish_sync`](super::FileStore::finish_sync).
#[derive(Debug)]
pub(crate) enum SyncDone {
    Appended {
        bytes: Vec<u8>,
        result: Result<(), StoreError>,
    },
    Compacted {
        /// The log reopened, once the snapshot was renamed over it.
        file: Option<File>,
        /// The snapshot's length.
        len: u64,
        covered: usize,
        result: Result<(), StoreError>,
    },
}

impl SyncJob {
    /// Does the blocking work.
    pub(crate) fn run(self) -> SyncDone {
        match self {
            Self::Append {
                file,
                bytes,
                synced_len,
            } => {
                let mut log = &*file;
                let written = log.write_all(&bytes).and_then(|()| log.sync_data());
                let result = written.map_err(|err| {
                    // Back to the last durable length, so a later sync appends after good
                    // records (if this fails too, recovery cuts the partial batch off by its
                    // checksums).
                    let _ = log.set_len(synced_len);
                    StoreError::io("appending to the log", err)
                });
                SyncDone::Appended { bytes, result }
            }
            Self::Compact {
                dir,
                snapshot,
                covered,
            } => {
                let (file, result) = compact(&dir, &snapshot);
                SyncDone::Compacted {
                    file,
                    len: snapshot.len() as u64,
                    covered,
                    result,
                }
            }
        }
    }
}

/// Writes `snapshot` as the new log; returns the log reopened once it is in place.
fn compact(dir: &std::path::Path, snapshot: &[u8]) -> (Option<File>, Result<(), StoreError>) {
    let tmp = dir.join(TMP);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(snapshot)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(LOG))
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return (None, Err(StoreError::io("compacting the log", err)));
    }
    let reopened = OpenOptions::new()
        .read(true)
        .append(true)
        .open(dir.join(LOG))
        .map_err(|e| StoreError::io("reopening the log", e));
    match reopened {
        Ok(file) => (Some(file), sync_dir(dir)),
        Err(err) => (None, Err(err)),
    }
}

type Running = Pin<Box<dyn Future<Output = SyncDone> + Send>>;

/// The driver's sync in flight, if any.
#[derive(Default)]
pub(crate) struct BackgroundSync {
    running: Option<Running>,
}

impl BackgroundSync {
    /// Starts a sync off the executor when the session has bytes to hand out whose records
    /// are not durable yet. Returns whether it started one: then the session must be fed
    /// nothing until [`poll`](Self::poll) says it is done. Records with nothing to send
    /// (removals) wait for the next batch, as the session's own `sync` would have them.
    pub(crate) fn start<R: Runtime>(
        &mut self,
        runtime: &R,
        session: &mut Session<ClientStore>,
    ) -> bool {
        if self.running.is_some() || !session.has_transmit() {
            return false;
        }
        let ClientStore::File(store) = session.store_mut() else {
            return false;
        };
        let Some(job) = store.begin_sync() else {
            return false;
        };
        self.running = Some(Box::pin(runtime.spawn_blocking(move || job.run())));
        true
    }

    /// `Pending` while a sync runs; `Ready(true)` when one just finished (its result is in
    /// the store: the session's next `poll_transmit` hands out the batch, or reports the
    /// failure), `Ready(false)` when none was running.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        session: &mut Session<ClientStore>,
    ) -> Poll<bool> {
        let Some(running) = &mut self.running else {
            return Poll::Ready(false);
        };
        let done = std::task::ready!(running.as_mut().poll(cx));
        self.running = None;
        if let ClientStore::File(store) = session.store_mut() {
            store.finish_sync(done);
        }
        Poll::Ready(true)
    }

    /// Waits for a sync still running (a connection that ended meanwhile): its records were
    /// taken from the store, which must learn how they fared.
    pub(crate) async fn finish(&mut self, session: &mut Session<ClientStore>) {
        if self.running.is_some() {
            std::future::poll_fn(|cx| self.poll(cx, session)).await;
        }
    }
}
