//! Group commit: makes applied writes durable with one sled `flush()` plus an `fsync` of its
//! log and folder, shared by every caller waiting at the time; a failed sync means read-only.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::fair_lock::FairLock;
use crate::{Error, Result};

/// Counts of sync generations. A generation is one flush + fsync run by a leader; every
/// write applied before the generation *started* is durable once it *finished*.
#[derive(Debug, Default)]
struct Generations {
    started: u64,
    finished: u64,
    running: bool,
}

/// The durable-commit half of the sled store (docs/storage.md#group-commit).
pub(crate) struct GroupCommit {
    db: sled::Db,
    /// The store's writer lock: a leader lets every writer queued on it apply before it
    /// flushes, so one generation covers them all.
    writer: Arc<FairLock>,
    /// sled's log file `db`, which holds every tree (docs/storage.md#group-commit).
    log: File,
    /// The data directory, for the entries sled creates and renames (snapshots).
    dir: File,
    generations: Mutex<Generations>,
    finished: Condvar,
    syncs: AtomicU64,
    read_only: AtomicBool,
    fail_next_sync: AtomicBool,
}

// By hand: sled's own `Debug` would print every stored key and value.
impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("syncs", &self.syncs)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub(crate) fn new(db: sled::Db, writer: Arc<FairLock>, log: File, dir: File) -> Self {
        Self {
            db,
            writer,
            log,
            dir,
            generations: Mutex::new(Generations::default()),
            finished: Condvar::new(),
            syncs: AtomicU64::new(0),
            read_only: AtomicBool::new(false),
            fail_next_sync: AtomicBool::new(false),
        }
    }

    /// Refuses to start a write once a sync has failed. docs/storage.md#read-only
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only.load(Ordering::SeqCst) {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::SeqCst)
    }

    pub(crate) fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    pub(crate) fn fail_next_sync(&self) {
        self.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Whether a test asked the next sync to fail (upload files consult it too).
    pub(crate) fn take_injected_failure(&self) -> bool {
        self.fail_next_sync.swap(false, Ordering::SeqCst)
    }

    /// Turns the store read-only after a failed sync outside the group commit (an upload
    /// file's `fdatasync`), for the same reason as a failed generation.
    pub(crate) fn turn_read_only(&self, error: &io::Error) {
        self.read_only.store(true, Ordering::SeqCst);
        tracing::error!(
            %error,
            "upload file sync failed: the store is now read-only and every write is refused \
             until the server restarts"
        );
        // Wake writers waiting for a generation, so they see the flag.
        let _guard = self.lock();
        self.finished.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // The guarded counters are only changed by plain assignments, never left half
        // updated by a panic, so a poisoned lock still holds consistent values.
        self.generations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once every write applied before this call is on disk. The caller's writes
    /// are covered only by a generation that starts after this call: one already
    /// running may have begun before them. docs/storage.md#group-commit
    pub(crate) fn make_durable(&self) -> Result<()> {
        let mut generations = self.lock();
        let needed = generations.started + 1;
        loop {
            if generations.finished >= needed {
                return Ok(());
            }
            if self.read_only.load(Ordering::SeqCst) {
                return Err(Error::ReadOnly);
            }
            if generations.running {
                generations = self
                    .finished
                    .wait(generations)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead this generation: it covers our write and every follower's.
            generations.running = true;
            drop(generations);
            // sled's flush holds its global lock against every transaction until the
            // disk has the log, so writers cannot apply while it runs. Let every writer
            // already queued apply first, and number the generation only then: they all
            // ride on this flush instead of each starting one that stalls the rest.
            drop(self.writer.lock());
            generations = self.lock();
            generations.started += 1;
            let generation = generations.started;
            drop(generations);

            let outcome = self.flush_and_sync();
            self.syncs.fetch_add(1, Ordering::SeqCst);

            generations = self.lock();
            generations.running = false;
            match outcome {
                Ok(()) => generations.finished = generation,
                Err(error) => {
                    // Once a sync failed, what the kernel will write back later is
                    // unknown; only a restart that recovers from the disk is safe.
                    self.read_only.store(true, Ordering::SeqCst);
                    tracing::error!(
                        %error,
                        "store flush or sync failed: the store is now read-only and every \
                         write is refused until the server restarts"
                    );
                }
            }
            self.finished.notify_all();
        }
    }

    /// sled's `flush()` writes its log with `sync_file_range`, which neither flushes the
    /// disk's cache nor file metadata; `fsync` of the log does. The folder's `fsync` makes
    /// the entries of snapshots sled wrote since durable too. Unlike `syncfs`, this leaves
    /// other files alone: uploads streaming into their files and other programs' dirty
    /// pages on the same file system add nothing to a generation's latency.
    fn flush_and_sync(&self) -> io::Result<()> {
        if self.take_injected_failure() {
            return Err(io::Error::other("injected sync failure"));
        }
        self.db.flush().map_err(io::Error::other)?;
        self.log.sync_all()?;
        self.dir.sync_all()
    }
}
