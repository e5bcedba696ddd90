//! Append sessions on upload files: bytes are written to the file as they come, and a
//! commit syncs them and records the new length in sled, one acknowledged step.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex, MutexGuard};

use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::SealedChunk;

use super::commit::GroupCommit;
use super::fair_lock::FairLock;
use super::files::UploadFiles;
use super::keys::{Key, TreeId};
use super::read::Trees;
use super::records::{UploadRec, UploadStateRec};
use super::{WriteSet, apply};
use crate::{Error, MAX_CHUNKS_PER_APPEND, Result, UploadSink};

/// The uploads that have an open append session.
#[derive(Clone, Default)]
pub(crate) struct BusyUploads(Arc<Mutex<HashSet<(InstitutionId, UploadId)>>>);

impl BusyUploads {
    fn lock(&self) -> MutexGuard<'_, HashSet<(InstitutionId, UploadId)>> {
        // Only whole inserts and removals happen under it; a poisoned set is consistent.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a session shares with its store.
pub(crate) struct Shared {
    pub(crate) trees: Trees,
    pub(crate) writer: Arc<FairLock>,
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) files: Arc<UploadFiles>,
    pub(crate) busy: BusyUploads,
}

/// The write side: where the next byte goes.
struct Written {
    /// Opened at the first write, so a session that writes nothing creates nothing.
    file: Option<Arc<File>>,
    end: u64,
    chunks: u64,
    /// A write failed: the file's tail is unknown, so nothing more is written or committed.
    broken: bool,
}

/// The durable side: what sled records (held by a commit for its whole run).
struct Durable {
    received: u64,
}

/// An exclusive append session on one upload file (docs/storage.md#upload-files).
pub(crate) struct SledUploadSink {
    shared: Shared,
    institution: InstitutionId,
    upload: UploadId,
    declared_len: u64,
    written: Mutex<Written>,
    durable: Mutex<Durable>,
}

/// The per-chunk rules of every append: non-empty, at most one sealed STREAM chunk, at
/// most [`MAX_CHUNKS_PER_APPEND`] at once. docs/storage.md#uploads
pub(crate) fn check_chunks(chunks: &[SealedChunk]) -> Result<()> {
    if chunks.is_empty() || chunks.iter().any(|chunk| chunk.as_bytes().is_empty()) {
        return Err(Error::Invalid("empty chunk"));
    }
    if chunks
        .iter()
        .any(|chunk| chunk.as_bytes().len() > SEALED_CHUNK_SIZE)
    {
        return Err(Error::TooLarge("chunk"));
    }
    if chunks.len() > MAX_CHUNKS_PER_APPEND {
        return Err(Error::TooLarge("chunk run"));
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every field is assigned whole, after the I/O it reflects succeeded.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SledUploadSink {
    /// Claims the upload and checks that `offset` is its durable end and that it still
    /// takes bytes.
    pub(crate) fn open(
        shared: Shared,
        institution: InstitutionId,
        upload: UploadId,
        offset: u64,
    ) -> Result<Self> {
        shared.commit.check_writable()?;
        if !shared.busy.lock().insert((institution.clone(), upload)) {
            // Another request is appending: its end is not this offset.
            return Err(Error::Conflict("offset is not the end of the upload"));
        }
        // From here on, dropping `sink` releases the claim.
        let sink = Self {
            shared,
            institution,
            upload,
            declared_len: 0,
            written: Mutex::new(Written {
                file: None,
                end: 0,
                chunks: 0,
                broken: false,
            }),
            durable: Mutex::new(Durable { received: 0 }),
        };
        let record = sink.record()?;
        if record.state != UploadStateRec::Receiving {
            return Err(Error::Conflict("upload already complete"));
        }
        // Only appending at the exact end keeps the stored bytes one contiguous stream:
        // a retried or reordered chunk must not duplicate or skip bytes.
        // docs/storage.md#uploads
        if offset != record.received {
            return Err(Error::Conflict("offset is not the end of the upload"));
        }
        let mut sink = sink;
        sink.declared_len = record.declared_len;
        *lock(&sink.written) = Written {
            file: None,
            end: record.received,
            chunks: record.chunks,
            broken: false,
        };
        lock(&sink.durable).received = record.received;
        Ok(sink)
    }

    fn record(&self) -> Result<UploadRec> {
        let key = Key::institution(&self.institution).bytes(self.upload.as_bytes());
        self.shared
            .trees
            .get_record(TreeId::Uploads, &key)?
            .ok_or(Error::NotFound("upload"))
    }

    /// Refuses a run that would pass the declared length, before anything is written.
    pub(crate) fn check_fits(&self, chunks: &[SealedChunk]) -> Result<()> {
        let len: u64 = chunks
            .iter()
            .map(|chunk| chunk.as_bytes().len() as u64)
            .sum();
        if lock(&self.written).end + len > self.declared_len {
            return Err(Error::Conflict("append beyond the declared length"));
        }
        Ok(())
    }
}

impl UploadSink for SledUploadSink {
    fn write(&self, chunks: &[SealedChunk]) -> Result<u64> {
        check_chunks(chunks)?;
        self.shared.commit.check_writable()?;
        let mut written = lock(&self.written);
        if written.broken {
            return Err(Error::Conflict("upload session failed"));
        }
        let len: u64 = chunks
            .iter()
            .map(|chunk| chunk.as_bytes().len() as u64)
            .sum();
        if written.end + len > self.declared_len {
            return Err(Error::Conflict("append beyond the declared length"));
        }
        let file = match &written.file {
            Some(file) => file.clone(),
            None => {
                let file = Arc::new(self.shared.files.open_append(
                    &self.institution,
                    self.upload,
                    written.end,
                )?);
                written.file = Some(file.clone());
                file
            }
        };
        let mut at = written.end;
        for chunk in chunks {
            if let Err(error) = file.write_all_at(chunk.as_bytes(), at) {
                written.broken = true;
                return Err(error.into());
            }
            at += chunk.as_bytes().len() as u64;
        }
        written.end = at;
        written.chunks += chunks.len() as u64;
        Ok(at)
    }

    fn commit(&self) -> Result<u64> {
        let mut durable = lock(&self.durable);
        let (file, end, chunks) = {
            let written = lock(&self.written);
            if written.broken {
                return Err(Error::Conflict("upload session failed"));
            }
            (written.file.clone(), written.end, written.chunks)
        };
        let Some(file) = file else {
            return Ok(durable.received);
        };
        if end == durable.received {
            return Ok(end);
        }
        // The writes dated the file: its times go back to the epoch before the sync, so
        // that the sync which makes the bytes durable carries the reset times too. A
        // failure refuses the step before anything counts. docs/storage.md#file-times
        self.shared.files.reset_file_times(&file)?;
        // The bytes first, then the length that makes them count: a crash in between
        // leaves a tail that recovery cuts off. docs/storage.md#upload-files
        let synced = if self.shared.commit.take_injected_failure() {
            Err(std::io::Error::other("injected sync failure"))
        } else {
            file.sync_data()
        };
        if let Err(error) = synced {
            self.shared.commit.turn_read_only(&error);
            return Err(Error::ReadOnly);
        }
        let guard = self.shared.writer.lock();
        self.shared.commit.check_writable()?;
        let mut record = self.record()?;
        // The claim keeps everyone else from appending; an upload expired meanwhile is
        // gone, and its bytes with it.
        if record.state != UploadStateRec::Receiving || record.received != durable.received {
            return Err(Error::Conflict("offset is not the end of the upload"));
        }
        record.received = end;
        record.chunks = chunks;
        let mut writes = WriteSet::default();
        let key = Key::institution(&self.institution).bytes(self.upload.as_bytes());
        writes.put_record(TreeId::Uploads, key, &record)?;
        apply(&self.shared.trees, &writes)?;
        // sled may write the new length to disk from now on, so the file must never be
        // cut below it, even if the sync below fails.
        durable.received = end;
        drop(guard);
        self.shared.commit.make_durable()?;
        Ok(end)
    }
}

impl Drop for SledUploadSink {
    fn drop(&mut self) {
        let durable = lock(&self.durable).received;
        let written = lock(&self.written);
        // Bytes written but never committed were never acknowledged: cut them off now,
        // so a refused or broken request leaves the file as it was. Recovery at open does
        // the same after a crash, so this needs no sync.
        if written.file.is_some() && (written.end != durable || durable == 0) {
            let outcome = if durable == 0 {
                self.shared.files.remove(&self.institution, self.upload)
            } else {
                written.file.as_ref().map_or(Ok(()), |file| {
                    file.set_len(durable)?;
                    self.shared.files.reset_file_times(file)?;
                    Ok(())
                })
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "could not cut an upload file back to its durable length and reset its times");
            }
        }
        drop(written);
        self.shared
            .busy
            .lock()
            .remove(&(self.institution.clone(), self.upload));
    }
}
