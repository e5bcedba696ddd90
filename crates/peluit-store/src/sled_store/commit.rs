//! Group commit: makes applied writes durable with one sled `flush()` plus `syncfs` shared
//! by every caller waiting at the time, and turns the store read-only if a sync fails.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::{Error, Result};

/// Counts of sync generations. A generation is one flush + syncfs run by a leader; every
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
    /// The data directory, opened once: `syncfs` needs a descriptor on its file system.
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
    pub(crate) fn new(db: sled::Db, dir: File) -> Self {
        Self {
            db,
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
    /// disk's cache nor file metadata; `syncfs` on the data directory's file system does.
    fn flush_and_sync(&self) -> io::Result<()> {
        if self.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected sync failure"));
        }
        self.db.flush().map_err(io::Error::other)?;
        sync_file_system(&self.dir)
    }
}

#[cfg(target_os = "linux")]
fn sync_file_system(dir: &File) -> io::Result<()> {
    rustix::fs::syncfs(dir).map_err(io::Error::from)
}

// Elsewhere `sync(2)` is the closest call; it reports no error, so a failed write-back
// goes unnoticed there. Production runs on Linux (docs/storage.md#limits).
#[cfg(not(target_os = "linux"))]
fn sync_file_system(_dir: &File) -> io::Result<()> {
    rustix::fs::sync();
    Ok(())
}
