//! The sled 0.34 implementation of `CiphertextStore`: one multi-tree transaction per
//! acknowledged step, then a shared flush + `fsync` before returning (docs/storage.md).

mod commit;
mod fair_lock;
mod files;
mod keys;
mod read;
mod records;
mod sink;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId, MessageId, UploadId};
use peluit_proto::limits::{
    CHUNK_SIZE, MAX_ATTACHMENT_LEN, MAX_ATTACHMENTS, MAX_ENVELOPE_LEN, MAX_HEADER_LEN,
    MAX_MANIFEST_LEN, MAX_REPLY_LEN, MAX_SHORT_TEXT,
};
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use sha2::{Digest, Sha256};
use sled::IVec;
use sled::transaction::{TransactionError, Transactional};

use crate::model::{
    CaseRecord, ExportItems, MailboxEntry, ManifestBytes, NewCase, NewFollowUp, NewReply,
    SealedChunks, SealedMailboxMessage, StoredManifest, SubmittedCase, TokenHash, TokenRecord,
    UploadState,
};
use crate::{CiphertextStore, Error, Result, TimesReset, UploadSink};
use commit::GroupCommit;
use fair_lock::{FairGuard, FairLock};
pub use files::SPARE_UPLOAD_FILES;
use files::UploadFiles;
use keys::{EXPORT_CURSOR, Key, PurgeTarget, TreeId, leading_id, split_institution};
use read::{ExportReader, Trees};
use records::{
    CaseRec, CaseStateRec, ExportKindRec, ExportRec, MailboxKindRec, MailboxRec, PowRec, Record,
    TokenRec, UploadRec, UploadStateRec, VERSION,
};
use sink::{BusyUploads, SledUploadSink};

/// Largest value the store writes into sled for ciphertext (envelopes, mailbox messages,
/// manifests). sled 0.34 writes a B-tree node of more than ~128 KiB to an unsynced blob
/// file, and a leaf holds up to 17 values: pieces this small keep every node inline in the
/// log (docs/storage.md#why-4-kib). Attachments live in files instead.
pub const PIECE_LEN: usize = 4096;

/// How many piece removals one purge batch makes; bounds memory and lock hold time.
const PURGE_BATCH: usize = 1024;

/// Largest sealed attachment: every plaintext chunk gains a 16-byte tag, plus a header.
const MAX_SEALED_ATTACHMENT_LEN: u64 =
    MAX_ATTACHMENT_LEN + (MAX_ATTACHMENT_LEN / CHUNK_SIZE as u64 + 1) * 16 + MAX_HEADER_LEN as u64;

/// Tuning of the sled store.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache in bytes. Attachments never pass through it (they are in
    /// files), so upload size does not touch it; it holds metadata, envelopes and
    /// mailbox messages. 64 MiB instead of 16 lifted 64-client submissions by 15-30 % and
    /// cut their p99 latency by a quarter here: sled inserts each new case into a random
    /// leaf of the envelope tree, and a leaf not in the cache is read back from the log.
    pub cache_capacity: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 64 * 1024 * 1024,
        }
    }
}

/// The embedded store: sled 0.34 in one data directory, durable on every acknowledged
/// write (docs/storage.md#guarantee).
pub struct SledStore {
    trees: Trees,
    /// Serializes writers: each write checks the current state and applies its step
    /// while no other write can change that state, in arrival order. Reads never take it.
    writer: Arc<FairLock>,
    commit: Arc<GroupCommit>,
    files: Arc<UploadFiles>,
    /// Uploads with an open append session: one writer per upload file.
    busy: BusyUploads,
}

// By hand: sled's own `Debug` would print every stored key and value.
impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("commit", &self.commit)
            .finish_non_exhaustive()
    }
}

/// The inserts and removals of one acknowledged step, applied in one transaction.
#[derive(Default)]
struct WriteSet {
    ops: Vec<(TreeId, IVec, Option<IVec>)>,
}

impl WriteSet {
    fn put(&mut self, tree: TreeId, key: Key, value: impl Into<IVec>) {
        self.ops
            .push((tree, IVec::from(key.into_vec()), Some(value.into())));
    }

    fn put_record<R: Record>(&mut self, tree: TreeId, key: Key, record: &R) -> Result<()> {
        self.put(tree, key, record.to_bytes()?);
        Ok(())
    }

    fn remove(&mut self, tree: TreeId, key: Key) {
        self.ops.push((tree, IVec::from(key.into_vec()), None));
    }

    /// Stores `bytes` as pieces `prefix ‖ index (u32 BE)`, index from 0.
    fn put_pieces(&mut self, tree: TreeId, prefix: &Key, bytes: &[u8]) {
        for (index, piece) in (0u32..).zip(bytes.chunks(PIECE_LEN)) {
            self.put(tree, prefix.clone().u32(index), piece);
        }
    }

    /// Marks what `target` names under `inst` and `id` for removal after the step.
    fn purge(&mut self, institution: &InstitutionId, target: PurgeTarget, id: &[u8; 16]) {
        let key = Key::institution(institution).u8(target.code()).bytes(id);
        self.put(TreeId::Purge, key, IVec::default());
    }
}

impl SledStore {
    /// Opens (or creates, mode 0700) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, SledOptions::default())
    }

    /// Opens (or creates, mode 0700) the store in `dir`. Finishes deletions that a crash
    /// interrupted, then runs the hourly sweep of file times once (which fills the pool of
    /// spare upload files), before returning.
    pub fn open_with(dir: impl AsRef<Path>, options: SledOptions) -> Result<Self> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            // We flush on every acknowledged step ourselves; a timer flush adds nothing.
            .flush_every_ms(None);
        let db = open_waiting_for_lock(&config)?;
        let trees = TreeId::ALL
            .iter()
            .map(|tree| db.open_tree(tree.name()))
            .collect::<sled::Result<Vec<_>>>()?;
        // sled writes its `conf` once, unsynced, when it creates the store.
        File::open(dir.join("conf"))?.sync_all()?;
        let writer = Arc::new(FairLock::default());
        let store = Self {
            trees: Trees::new(trees),
            writer: writer.clone(),
            commit: Arc::new(GroupCommit::new(
                db,
                writer,
                File::open(dir.join("db"))?,
                File::open(dir)?,
            )),
            files: Arc::new(UploadFiles::open(dir)?),
            busy: BusyUploads::default(),
        };
        // Opening may have created trees; make them durable before anything relies on
        // them, then finish purges a crash interrupted and cut upload files back to
        // their acknowledged length.
        store.commit.make_durable()?;
        store.finish_purges()?;
        store.recover_upload_files()?;
        // An upgraded store loses its files' old times at its first start, not an hour
        // later, and the first uploads find spares. Neither is worth refusing to start for.
        let swept = store.sweep_file_times();
        if swept.failed > 0 {
            tracing::warn!(
                failed = swept.failed,
                "could not reset some upload files' times at open"
            );
        }
        Ok(store)
    }

    /// How many flush + fsync runs the store has made (for metrics, and to show that
    /// concurrent writers share syncs).
    pub fn sync_count(&self) -> u64 {
        self.commit.sync_count()
    }

    /// Whether a failed sync has turned the store read-only.
    pub fn is_read_only(&self) -> bool {
        self.commit.is_read_only()
    }

    /// Makes the next flush + fsync (or upload file sync) fail as a disk error would, so
    /// tests (here and in the server) can check that the store turns read-only. Never
    /// call it in production.
    pub fn dangerously_fail_next_sync(&self) {
        self.commit.fail_next_sync();
    }

    /// Makes the next reset of an upload file's or folder's times fail as a file system
    /// error would, so tests can check that a failed reset changes no stored data. Never
    /// call it in production.
    pub fn dangerously_fail_next_time_reset(&self) {
        self.files.fail_next_time_reset();
    }

    /// The names of the store's trees, in the order docs/storage.md lists them.
    pub fn tree_names() -> impl Iterator<Item = &'static str> {
        TreeId::ALL.iter().map(|tree| tree.name())
    }

    /// SHA-256 over every tree name, key and value, then every upload file's name, length
    /// and bytes, in order: equal digests mean equal stores. Tests use it to show that a
    /// refused request changed nothing. The pool of spare upload files is outside it: a
    /// write takes a spare, and a sweep or an open tops the pool up, without changing
    /// what the store holds.
    pub fn content_digest(&self) -> Result<[u8; 32]> {
        let mut hasher = Sha256::new();
        for tree in TreeId::ALL {
            hasher.update((tree.name().len() as u64).to_be_bytes());
            hasher.update(tree.name());
            for item in self.trees.get(tree).iter() {
                let (key, value) = item?;
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(&key);
                hasher.update((value.len() as u64).to_be_bytes());
                hasher.update(&value);
            }
        }
        self.files.digest_into(&mut hasher)?;
        Ok(hasher.finalize().into())
    }

    /// Takes the writer lock, refusing once the store is read-only.
    fn begin_write(&self) -> Result<FairGuard<'_>> {
        let guard = self.writer.lock();
        self.commit.check_writable()?;
        Ok(guard)
    }

    /// Applies `writes` as one transaction, lets other writers go, and returns once the
    /// step is durable. docs/storage.md#guarantee
    fn finish_write(&self, guard: FairGuard<'_>, writes: WriteSet) -> Result<()> {
        if !writes.ops.is_empty() {
            self.apply(&writes)?;
        }
        drop(guard);
        // Even an empty step waits for a sync: it may answer "already stored" about a
        // write another caller applied and has not yet seen synced.
        self.commit.make_durable()
    }

    fn apply(&self, writes: &WriteSet) -> Result<()> {
        apply(&self.trees, writes)
    }

    fn get<R: Record>(&self, tree: TreeId, key: &Key) -> Result<Option<R>> {
        self.trees.get_record(tree, key)
    }

    fn upload_record(&self, institution: &InstitutionId, upload: UploadId) -> Result<UploadRec> {
        let key = Key::institution(institution).bytes(upload.as_bytes());
        self.get(TreeId::Uploads, &key)?
            .ok_or(Error::NotFound("upload"))
    }

    fn case_record(&self, institution: &InstitutionId, case: CaseId) -> Result<CaseRec> {
        self.trees
            .case_record(institution, case)?
            .ok_or(Error::NotFound("case"))
    }

    /// The case, refusing a tombstone for anything that adds to it.
    fn open_case_record(&self, institution: &InstitutionId, case: CaseId) -> Result<CaseRec> {
        let record = self.case_record(institution, case)?;
        if record.state == CaseStateRec::Deleted {
            return Err(Error::Conflict("case deleted"));
        }
        Ok(record)
    }

    fn export_counter(&self, institution: &InstitutionId) -> Result<u64> {
        let key = Key::institution(institution).bytes(EXPORT_CURSOR);
        match self.trees.get(TreeId::Counters).get(key.as_slice())? {
            None => Ok(0),
            Some(bytes) => {
                let bytes: [u8; 8] = bytes
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::Corrupt("counter"))?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }

    fn put_export_counter(writes: &mut WriteSet, institution: &InstitutionId, value: u64) {
        let key = Key::institution(institution).bytes(EXPORT_CURSOR);
        writes.put(TreeId::Counters, key, &value.to_be_bytes()[..]);
    }

    fn last_manifest_serial(&self, institution: &InstitutionId) -> Result<Option<u64>> {
        let prefix = Key::institution(institution);
        match self
            .trees
            .get(TreeId::Manifests)
            .scan_prefix(prefix.as_slice())
            .next_back()
        {
            None => Ok(None),
            Some(item) => {
                let (key, _) = item?;
                read::manifest_serial(&key, prefix.as_slice().len()).map(Some)
            }
        }
    }

    /// The case's mailbox records with their keys' seq, in seq order.
    fn mailbox_records(
        &self,
        institution: &InstitutionId,
        case: CaseId,
    ) -> Result<Vec<(u64, MailboxRec)>> {
        self.trees.mailbox_records(institution, case)
    }

    /// Removes what every purge entry names (pieces in bounded batches, or an upload's
    /// file), then the entry. Purged items are unreachable (their record went in the step
    /// that queued the purge), so readers never see a half-purged item.
    /// docs/storage.md#deletion
    fn finish_purges(&self) -> Result<()> {
        let pending: Vec<IVec> = self
            .trees
            .get(TreeId::Purge)
            .iter()
            .keys()
            .collect::<sled::Result<_>>()?;
        if pending.is_empty() {
            return Ok(());
        }
        for entry in pending {
            let (institution, rest) = split_institution(&entry).ok_or(Error::Corrupt("purge"))?;
            let (&code, id) = rest.split_first().ok_or(Error::Corrupt("purge"))?;
            let target = PurgeTarget::from_code(code).ok_or(Error::Corrupt("purge"))?;
            let id = leading_id(id).ok_or(Error::Corrupt("purge"))?;
            let tree = match target {
                PurgeTarget::Envelope => TreeId::Envelopes,
                PurgeTarget::MailboxPieces => TreeId::MailboxPieces,
                PurgeTarget::UploadFile => {
                    let guard = self.begin_write()?;
                    self.files.remove(&institution, UploadId::from_bytes(id))?;
                    self.trees.get(TreeId::Purge).remove(&entry)?;
                    drop(guard);
                    continue;
                }
            };
            let prefix = Key::institution(&institution).bytes(&id);
            loop {
                let guard = self.begin_write()?;
                let keys: Vec<IVec> = self
                    .trees
                    .get(tree)
                    .scan_prefix(prefix.as_slice())
                    .keys()
                    .take(PURGE_BATCH)
                    .collect::<sled::Result<_>>()?;
                let mut batch = sled::Batch::default();
                let done = keys.len() < PURGE_BATCH;
                for key in keys {
                    batch.remove(key);
                }
                if done {
                    // The last batch and the entry's removal need not be atomic: a
                    // repeated purge of nothing is harmless.
                    self.trees.get(tree).apply_batch(batch)?;
                    self.trees.get(TreeId::Purge).remove(&entry)?;
                    drop(guard);
                    break;
                }
                self.trees.get(tree).apply_batch(batch)?;
                drop(guard);
            }
        }
        self.commit.make_durable()
    }

    /// Opens the one append session an upload may have, at its durable end.
    fn open_sink(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
    ) -> Result<SledUploadSink> {
        SledUploadSink::open(
            sink::Shared {
                trees: self.trees.clone(),
                writer: self.writer.clone(),
                commit: self.commit.clone(),
                files: self.files.clone(),
                busy: self.busy.clone(),
            },
            institution.clone(),
            upload,
            offset,
        )
    }

    /// Tops up the pool of spare upload files, then resets the times of every upload file,
    /// spare and folder (docs/storage.md#spare-files). A pool that cannot be topped up
    /// counts as one failure; uploads then start as fresh files.
    fn sweep_file_times(&self) -> TimesReset {
        // No lock: a write meanwhile resets its own file's times when it commits, and a
        // removal or a taken spare its folder's.
        let topped_up = self.files.top_up_spares();
        // Listed after the top-up, so the pool's folder is reset after its new entries.
        let (paths, unlisted) = self.files.sweep_paths();
        let mut outcome = self.files.reset_times_of(&paths);
        outcome.failed += unlisted;
        if let Err(error) = topped_up {
            tracing::warn!(%error, "could not top up the pool of spare upload files");
            outcome.failed += 1;
        }
        outcome
    }

    /// Brings upload files in line with the records after a crash: bytes past an upload's
    /// recorded length were never acknowledged and are cut off (a file of an upload with
    /// nothing acknowledged goes), and a file without an upload record (one whose removal
    /// a crash interrupted) is removed. docs/storage.md#upload-files
    fn recover_upload_files(&self) -> Result<()> {
        for found in self.files.list()? {
            let received = match self.upload_record(&found.institution, found.upload) {
                Ok(record) => record.received,
                Err(Error::NotFound(_)) => 0,
                Err(error) => return Err(error),
            };
            if found.len > received || (received == 0 && found.len == 0) {
                self.files
                    .cut_back(&found.institution, found.upload, received)?;
            }
        }
        Ok(())
    }
}

/// Applies a step's writes as one sled transaction over the trees it touches.
fn apply(trees: &Trees, writes: &WriteSet) -> Result<()> {
    // Only the trees this step touches take part: each one in a sled transaction
    // costs an overlay and a commit pass.
    let mut slots = [usize::MAX; TreeId::ALL.len()];
    let mut touched: Vec<&sled::Tree> = Vec::new();
    for (tree, _, _) in &writes.ops {
        if slots[tree.index()] == usize::MAX {
            slots[tree.index()] = touched.len();
            touched.push(trees.get(*tree));
        }
    }
    let outcome: Result<(), TransactionError<std::convert::Infallible>> =
        touched.as_slice().transaction(|trees| {
            for (tree, key, value) in &writes.ops {
                let tree = &trees[slots[tree.index()]];
                match value {
                    Some(value) => tree.insert(key.clone(), value.clone())?,
                    None => tree.remove(key.clone())?,
                };
            }
            Ok(())
        });
    outcome.map_err(|error| match error {
        TransactionError::Abort(never) => match never {},
        TransactionError::Storage(error) => error.into(),
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

impl CiphertextStore for SledStore {
    fn put_manifest(
        &self,
        institution: &InstitutionId,
        serial: u64,
        manifest: &ManifestBytes,
    ) -> Result<()> {
        let bytes = manifest.as_bytes();
        if bytes.is_empty() {
            return Err(Error::Invalid("empty manifest"));
        }
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(Error::TooLarge("manifest"));
        }
        let guard = self.begin_write()?;
        // The history is append-only and serials only grow, so an old manifest can never
        // be served again as current. docs/protocol.md#manifest
        if let Some(last) = self.last_manifest_serial(institution)?
            && serial <= last
        {
            return Err(Error::Conflict("manifest serial must grow"));
        }
        let mut writes = WriteSet::default();
        let prefix = Key::institution(institution).u64(serial);
        writes.put_pieces(TreeId::Manifests, &prefix, bytes);
        self.finish_write(guard, writes)
    }

    fn manifests(&self, institution: &InstitutionId) -> Result<Vec<StoredManifest>> {
        self.trees.manifests(institution, None)
    }

    fn latest_manifest(&self, institution: &InstitutionId) -> Result<Option<StoredManifest>> {
        match self.last_manifest_serial(institution)? {
            None => Ok(None),
            Some(serial) => Ok(self.trees.manifests(institution, Some(serial))?.pop()),
        }
    }

    fn institutions(&self) -> Result<Vec<InstitutionId>> {
        let tree = self.trees.get(TreeId::Manifests);
        let mut found = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = tree.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let (institution, _) = split_institution(&key).ok_or(Error::Corrupt("manifest"))?;
            // Jump past every key of this institution: they all start `id/`, and `0`
            // is the byte after `/`.
            from = institution.as_str().as_bytes().to_vec();
            from.push(b'/' + 1);
            found.push(institution);
        }
        Ok(found)
    }

    fn create_upload(
        &self,
        institution: &InstitutionId,
        declared_len: u64,
        day: Day,
    ) -> Result<UploadId> {
        if declared_len == 0 {
            return Err(Error::Invalid("empty upload"));
        }
        // An attachment is at most MAX_ATTACHMENT_LEN of plaintext. docs/protocol.md#limits
        if declared_len > MAX_SEALED_ATTACHMENT_LEN {
            return Err(Error::TooLarge("upload"));
        }
        let guard = self.begin_write()?;
        let id = loop {
            let id = UploadId::random();
            let key = Key::institution(institution).bytes(id.as_bytes());
            if !self
                .trees
                .get(TreeId::Uploads)
                .contains_key(key.as_slice())?
            {
                break id;
            }
        };
        let record = UploadRec {
            version: VERSION,
            created: day,
            declared_len,
            received: 0,
            chunks: 0,
            state: UploadStateRec::Receiving,
            case: None,
            cursor: None,
        };
        let mut writes = WriteSet::default();
        let key = Key::institution(institution).bytes(id.as_bytes());
        writes.put_record(TreeId::Uploads, key, &record)?;
        self.finish_write(guard, writes)?;
        Ok(id)
    }

    fn append_upload(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
        chunk: &SealedChunk,
    ) -> Result<u64> {
        self.append_upload_chunks(institution, upload, offset, std::slice::from_ref(chunk))
    }

    fn append_upload_chunks(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
        chunks: &[SealedChunk],
    ) -> Result<u64> {
        sink::check_chunks(chunks)?;
        let sink = self.open_sink(institution, upload, offset)?;
        // All or nothing: a run that does not fit is refused before a byte is written.
        sink.check_fits(chunks)?;
        sink.write(chunks)?;
        sink.commit()
    }

    fn open_upload_sink(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
    ) -> Result<Arc<dyn UploadSink>> {
        Ok(Arc::new(self.open_sink(institution, upload, offset)?))
    }

    fn complete_upload(&self, institution: &InstitutionId, upload: UploadId) -> Result<()> {
        let guard = self.begin_write()?;
        let mut record = self.upload_record(institution, upload)?;
        let mut writes = WriteSet::default();
        match record.state {
            UploadStateRec::Complete => {}
            UploadStateRec::Attached => return Err(Error::Conflict("upload already attached")),
            UploadStateRec::Receiving => {
                // A truncated upload must never be attached to a case.
                if record.received != record.declared_len {
                    return Err(Error::Conflict("upload incomplete"));
                }
                record.state = UploadStateRec::Complete;
                let key = Key::institution(institution).bytes(upload.as_bytes());
                writes.put_record(TreeId::Uploads, key, &record)?;
            }
        }
        self.finish_write(guard, writes)
    }

    fn upload_state(&self, institution: &InstitutionId, upload: UploadId) -> Result<UploadState> {
        let record = self.upload_record(institution, upload)?;
        Ok(UploadState {
            id: upload,
            created: record.created,
            declared_len: record.declared_len,
            received: record.received,
            chunks: record.chunks,
            complete: record.state != UploadStateRec::Receiving,
            attached_to: record.case,
        })
    }

    fn submit_case(&self, institution: &InstitutionId, case: NewCase) -> Result<SubmittedCase> {
        let envelope = case.envelope.as_bytes();
        if envelope.is_empty() {
            return Err(Error::Invalid("empty envelope"));
        }
        if envelope.len() > MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge("envelope"));
        }
        // docs/protocol.md#limits
        if case.attachments.len() > MAX_ATTACHMENTS {
            return Err(Error::TooLarge("attachments"));
        }
        let mut distinct = HashSet::new();
        if !case
            .attachments
            .iter()
            .all(|upload| distinct.insert(*upload))
        {
            return Err(Error::Invalid("duplicate attachment"));
        }

        let guard = self.begin_write()?;
        // A proof-of-work stamp buys one submission, not many. docs/protocol.md#pow
        let pow_key = Key::institution(institution).bytes(case.pow_hash.as_bytes());
        if self
            .trees
            .get(TreeId::Pow)
            .contains_key(pow_key.as_slice())?
        {
            return Err(Error::Conflict("proof of work already used"));
        }
        let mut uploads = Vec::with_capacity(case.attachments.len());
        for &upload in &case.attachments {
            let record = self.upload_record(institution, upload)?;
            match record.state {
                UploadStateRec::Receiving => return Err(Error::Conflict("upload incomplete")),
                // An upload belongs to exactly one case: attaching it twice would let one
                // reporter's ciphertext appear in another's report.
                UploadStateRec::Attached => {
                    return Err(Error::Conflict("upload already attached"));
                }
                UploadStateRec::Complete => uploads.push((upload, record)),
            }
        }
        let id = loop {
            let id = CaseId::random();
            if self.trees.case_record(institution, id)?.is_none() {
                break id;
            }
        };

        let mut writes = WriteSet::default();
        let mut cursor = self.export_counter(institution)?;
        cursor += 1;
        let case_cursor = cursor;
        writes.put_record(
            TreeId::Export,
            Key::institution(institution).u64(case_cursor),
            &ExportRec {
                version: VERSION,
                kind: ExportKindRec::Case,
                case: id,
                upload: None,
                seq: None,
            },
        )?;
        for (upload, mut record) in uploads {
            cursor += 1;
            record.state = UploadStateRec::Attached;
            record.case = Some(id);
            record.cursor = Some(cursor);
            let key = Key::institution(institution).bytes(upload.as_bytes());
            writes.put_record(TreeId::Uploads, key, &record)?;
            writes.put_record(
                TreeId::Export,
                Key::institution(institution).u64(cursor),
                &ExportRec {
                    version: VERSION,
                    kind: ExportKindRec::Attachment,
                    case: id,
                    upload: Some(upload),
                    seq: None,
                },
            )?;
        }
        Self::put_export_counter(&mut writes, institution, cursor);
        let record = CaseRec {
            version: VERSION,
            day: case.day,
            size_bucket: case.size_bucket,
            mailbox_key: case.mailbox_key,
            state: CaseStateRec::Open,
            attachments: case.attachments.clone(),
            envelope_len: envelope.len() as u64,
            cursor: case_cursor,
            deleted_on: None,
        };
        let case_key = Key::institution(institution).bytes(id.as_bytes());
        writes.put_record(TreeId::Cases, case_key.clone(), &record)?;
        writes.put_pieces(TreeId::Envelopes, &case_key, envelope);
        writes.put_record(
            TreeId::Pow,
            pow_key,
            &PowRec {
                version: VERSION,
                day: case.day,
            },
        )?;
        self.finish_write(guard, writes)?;
        Ok(SubmittedCase {
            id,
            cursor: case_cursor,
        })
    }

    fn case(&self, institution: &InstitutionId, case: CaseId) -> Result<CaseRecord> {
        let record = self.case_record(institution, case)?;
        Ok(read::case_record(case, record))
    }

    fn envelope(&self, institution: &InstitutionId, case: CaseId) -> Result<SealedMessage> {
        let record = self.case_record(institution, case)?;
        if record.state == CaseStateRec::Deleted {
            return Err(Error::NotFound("envelope"));
        }
        self.trees.envelope(institution, case, &record)
    }

    fn attachment_chunks(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        upload: UploadId,
    ) -> Result<SealedChunks> {
        let record = self
            .upload_record(institution, upload)
            .map_err(|_| Error::NotFound("attachment"))?;
        // Only an upload attached to this very case is its attachment.
        if record.state != UploadStateRec::Attached || record.case != Some(case) {
            return Err(Error::NotFound("attachment"));
        }
        Ok(Box::new(self.files.reader(
            institution,
            upload,
            record.received,
        )?))
    }

    fn export_since(&self, institution: &InstitutionId, cursor: u64) -> Result<ExportItems> {
        Ok(Box::new(ExportReader::new(
            self.trees.clone(),
            institution.clone(),
            cursor,
        )))
    }

    fn export_cursor(&self, institution: &InstitutionId) -> Result<u64> {
        self.export_counter(institution)
    }

    fn add_follow_up(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        follow_up: NewFollowUp,
    ) -> Result<MailboxEntry> {
        let bytes = follow_up.message.as_bytes();
        if bytes.is_empty() {
            return Err(Error::Invalid("empty follow-up"));
        }
        // A follow-up is sealed like an envelope. docs/protocol.md#limits
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge("follow-up"));
        }
        let guard = self.begin_write()?;
        self.open_case_record(institution, case)?;
        let existing = self.mailbox_records(institution, case)?;
        if let Some((seq, record)) = existing.iter().find(|(_, r)| r.id == follow_up.id) {
            // A retried post stores nothing new; a reused id with other bytes is refused.
            let same = record.kind == MailboxKindRec::FollowUp
                && self.trees.mailbox_bytes(institution, case, *seq, record)? == bytes;
            if !same {
                return Err(Error::Conflict("message id reused"));
            }
            let entry = read::mailbox_entry(*seq, record);
            self.finish_write(guard, WriteSet::default())?;
            return Ok(entry);
        }
        let seq = existing.last().map_or(1, |(seq, _)| seq + 1);
        let cursor = self.export_counter(institution)? + 1;
        let record = MailboxRec {
            version: VERSION,
            id: follow_up.id,
            kind: MailboxKindRec::FollowUp,
            day: follow_up.day,
            len: bytes.len() as u64,
            cursor: Some(cursor),
        };
        let mut writes = WriteSet::default();
        let key = Key::institution(institution)
            .bytes(case.as_bytes())
            .u64(seq);
        writes.put_record(TreeId::Mailbox, key.clone(), &record)?;
        writes.put_pieces(TreeId::MailboxPieces, &key, bytes);
        writes.put_record(
            TreeId::Export,
            Key::institution(institution).u64(cursor),
            &ExportRec {
                version: VERSION,
                kind: ExportKindRec::FollowUp,
                case,
                upload: None,
                seq: Some(seq),
            },
        )?;
        Self::put_export_counter(&mut writes, institution, cursor);
        self.finish_write(guard, writes)?;
        Ok(read::mailbox_entry(seq, &record))
    }

    fn add_replies(
        &self,
        institution: &InstitutionId,
        replies: Vec<NewReply>,
    ) -> Result<Vec<MailboxEntry>> {
        let mut distinct: HashSet<(CaseId, MessageId)> = HashSet::new();
        for reply in &replies {
            if reply.reply.as_bytes().is_empty() {
                return Err(Error::Invalid("empty reply"));
            }
            // docs/protocol.md#limits
            if reply.reply.as_bytes().len() > MAX_REPLY_LEN {
                return Err(Error::TooLarge("reply"));
            }
            if !distinct.insert((reply.case, reply.id)) {
                return Err(Error::Invalid("duplicate reply in batch"));
            }
        }

        let guard = self.begin_write()?;
        // Per case: the stored mailbox and the next free seq, read once.
        let mut mailboxes: HashMap<CaseId, (Vec<(u64, MailboxRec)>, u64)> = HashMap::new();
        let mut writes = WriteSet::default();
        let mut entries = Vec::with_capacity(replies.len());
        for reply in &replies {
            let (existing, next) = match mailboxes.entry(reply.case) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    self.open_case_record(institution, reply.case)?;
                    let existing = self.mailbox_records(institution, reply.case)?;
                    let next = existing.last().map_or(1, |(seq, _)| seq + 1);
                    entry.insert((existing, next))
                }
            };
            let bytes = reply.reply.as_bytes();
            if let Some((seq, record)) = existing.iter().find(|(_, r)| r.id == reply.id) {
                // Importing the same bundle twice is harmless; a reused id is not.
                let same = record.kind == MailboxKindRec::Reply
                    && self
                        .trees
                        .mailbox_bytes(institution, reply.case, *seq, record)?
                        == bytes;
                if !same {
                    return Err(Error::Conflict("message id reused"));
                }
                entries.push(read::mailbox_entry(*seq, record));
                continue;
            }
            let seq = *next;
            *next += 1;
            let record = MailboxRec {
                version: VERSION,
                id: reply.id,
                kind: MailboxKindRec::Reply,
                day: reply.day,
                len: bytes.len() as u64,
                cursor: None,
            };
            let key = Key::institution(institution)
                .bytes(reply.case.as_bytes())
                .u64(seq);
            writes.put_record(TreeId::Mailbox, key.clone(), &record)?;
            writes.put_pieces(TreeId::MailboxPieces, &key, bytes);
            entries.push(read::mailbox_entry(seq, &record));
        }
        self.finish_write(guard, writes)?;
        Ok(entries)
    }

    fn mailbox(&self, institution: &InstitutionId, case: CaseId) -> Result<Vec<MailboxEntry>> {
        let record = self.case_record(institution, case)?;
        if record.state == CaseStateRec::Deleted {
            return Err(Error::NotFound("mailbox"));
        }
        Ok(self
            .mailbox_records(institution, case)?
            .iter()
            .map(|(seq, record)| read::mailbox_entry(*seq, record))
            .collect())
    }

    fn mailbox_message(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        seq: u64,
    ) -> Result<SealedMailboxMessage> {
        let record = self.case_record(institution, case)?;
        if record.state == CaseStateRec::Deleted {
            return Err(Error::NotFound("message"));
        }
        self.trees.mailbox_message(institution, case, seq)
    }

    fn delete_case(&self, institution: &InstitutionId, case: CaseId, day: Day) -> Result<()> {
        let guard = self.begin_write()?;
        let mut record = self.case_record(institution, case)?;
        if record.state == CaseStateRec::Deleted {
            return self.finish_write(guard, WriteSet::default());
        }
        let mut writes = WriteSet::default();
        // Unlink everything in this step; the pieces go after it, in bounded batches,
        // from the purge entries it writes (docs/storage.md#deletion).
        writes.remove(
            TreeId::Export,
            Key::institution(institution).u64(record.cursor),
        );
        for upload in &record.attachments {
            if let Some(upload_record) = self.get::<UploadRec>(
                TreeId::Uploads,
                &Key::institution(institution).bytes(upload.as_bytes()),
            )? {
                if let Some(cursor) = upload_record.cursor {
                    writes.remove(TreeId::Export, Key::institution(institution).u64(cursor));
                }
                writes.remove(
                    TreeId::Uploads,
                    Key::institution(institution).bytes(upload.as_bytes()),
                );
                writes.purge(institution, PurgeTarget::UploadFile, upload.as_bytes());
            }
        }
        for (seq, message) in self.mailbox_records(institution, case)? {
            if let Some(cursor) = message.cursor {
                writes.remove(TreeId::Export, Key::institution(institution).u64(cursor));
            }
            writes.remove(
                TreeId::Mailbox,
                Key::institution(institution)
                    .bytes(case.as_bytes())
                    .u64(seq),
            );
        }
        writes.purge(institution, PurgeTarget::MailboxPieces, case.as_bytes());
        writes.purge(institution, PurgeTarget::Envelope, case.as_bytes());
        record.state = CaseStateRec::Deleted;
        record.attachments.clear();
        record.envelope_len = 0;
        record.deleted_on = Some(day);
        // Nothing reads a deleted case's mailbox key; kept, it would let whoever holds the
        // receipt and a copy of the store prove that this reporter filed a case.
        record.mailbox_key = tombstone_mailbox_key();
        writes.put_record(
            TreeId::Cases,
            Key::institution(institution).bytes(case.as_bytes()),
            &record,
        )?;
        self.finish_write(guard, writes)?;
        self.finish_purges()
    }

    fn open_uploads(&self, institution: &InstitutionId) -> Result<usize> {
        let prefix = Key::institution(institution);
        let mut open = 0;
        for item in self
            .trees
            .get(TreeId::Uploads)
            .scan_prefix(prefix.as_slice())
        {
            let (_, value) = item?;
            if UploadRec::from_bytes(&value)?.state != UploadStateRec::Attached {
                open += 1;
            }
        }
        Ok(open)
    }

    fn cases_before(&self, institution: &InstitutionId, day: Day) -> Result<Vec<CaseId>> {
        let prefix = Key::institution(institution);
        let mut found = Vec::new();
        for item in self.trees.get(TreeId::Cases).scan_prefix(prefix.as_slice()) {
            let (key, value) = item?;
            let record = CaseRec::from_bytes(&value)?;
            if record.state == CaseStateRec::Open && record.day < day {
                let id =
                    leading_id(&key[prefix.as_slice().len()..]).ok_or(Error::Corrupt("case"))?;
                found.push(CaseId::from_bytes(id));
            }
        }
        Ok(found)
    }

    fn put_token_hash(
        &self,
        institution: &InstitutionId,
        hash: TokenHash,
        label: &str,
        created: Day,
    ) -> Result<()> {
        if label.len() > MAX_SHORT_TEXT {
            return Err(Error::TooLarge("token label"));
        }
        let guard = self.begin_write()?;
        let key = Key::institution(institution).bytes(hash.as_bytes());
        if self
            .trees
            .get(TreeId::Tokens)
            .contains_key(key.as_slice())?
        {
            return Err(Error::Conflict("token already stored"));
        }
        let mut writes = WriteSet::default();
        writes.put_record(
            TreeId::Tokens,
            key,
            &TokenRec {
                version: VERSION,
                label: label.to_owned(),
                created,
            },
        )?;
        self.finish_write(guard, writes)
    }

    fn find_token_hash(
        &self,
        institution: &InstitutionId,
        hash: &TokenHash,
    ) -> Result<Option<TokenRecord>> {
        let key = Key::institution(institution).bytes(hash.as_bytes());
        Ok(self
            .get::<TokenRec>(TreeId::Tokens, &key)?
            .map(|record| TokenRecord {
                hash: *hash,
                label: record.label,
                created: record.created,
            }))
    }

    fn tokens(&self, institution: &InstitutionId) -> Result<Vec<TokenRecord>> {
        let prefix = Key::institution(institution);
        let mut found = Vec::new();
        for item in self
            .trees
            .get(TreeId::Tokens)
            .scan_prefix(prefix.as_slice())
        {
            let (key, value) = item?;
            let record = TokenRec::from_bytes(&value)?;
            let hash: [u8; 32] = key[prefix.as_slice().len()..]
                .try_into()
                .map_err(|_| Error::Corrupt("token"))?;
            found.push(TokenRecord {
                hash: TokenHash::from_bytes(hash),
                label: record.label,
                created: record.created,
            });
        }
        Ok(found)
    }

    fn revoke_token(&self, institution: &InstitutionId, hash: &TokenHash) -> Result<()> {
        let guard = self.begin_write()?;
        let key = Key::institution(institution).bytes(hash.as_bytes());
        if !self
            .trees
            .get(TreeId::Tokens)
            .contains_key(key.as_slice())?
        {
            return Err(Error::NotFound("token"));
        }
        let mut writes = WriteSet::default();
        writes.remove(TreeId::Tokens, key);
        self.finish_write(guard, writes)
    }

    fn expire_uploads(&self, before: Day) -> Result<usize> {
        let guard = self.begin_write()?;
        let mut writes = WriteSet::default();
        let mut expired = 0;
        for item in self.trees.get(TreeId::Uploads).iter() {
            let (key, value) = item?;
            let record = UploadRec::from_bytes(&value)?;
            if record.state == UploadStateRec::Attached || record.created >= before {
                continue;
            }
            let (institution, rest) = split_institution(&key).ok_or(Error::Corrupt("upload"))?;
            let id = leading_id(rest).ok_or(Error::Corrupt("upload"))?;
            writes.remove(TreeId::Uploads, Key::institution(&institution).bytes(&id));
            writes.purge(&institution, PurgeTarget::UploadFile, &id);
            expired += 1;
        }
        if expired == 0 {
            return Ok(0);
        }
        self.finish_write(guard, writes)?;
        self.finish_purges()?;
        Ok(expired)
    }

    fn forget_pow_hashes(&self, before: Day) -> Result<usize> {
        let guard = self.begin_write()?;
        let mut writes = WriteSet::default();
        let mut forgotten = 0;
        for item in self.trees.get(TreeId::Pow).iter() {
            let (key, value) = item?;
            if PowRec::from_bytes(&value)?.day < before {
                writes.ops.push((TreeId::Pow, key, None));
                forgotten += 1;
            }
        }
        if forgotten == 0 {
            return Ok(0);
        }
        self.finish_write(guard, writes)?;
        Ok(forgotten)
    }

    fn reset_file_times(&self) -> Result<TimesReset> {
        Ok(self.sweep_file_times())
    }
}

/// Opens sled, waiting up to about a second for its directory lock. sled's background
/// threads let go of a just-dropped database a moment after the drop returns, so a store
/// reopened in the same process (a restart after a read-only flip) can briefly find the
/// lock still held; another live process holding it is still refused.
fn open_waiting_for_lock(config: &sled::Config) -> sled::Result<sled::Db> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if attempt < ATTEMPTS && e.to_string().contains("could not acquire lock") =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The mailbox key every tombstone carries in place of the reporter's: the key of the
/// all-zero seed, the same for every deleted case.
fn tombstone_mailbox_key() -> peluit_proto::keys::VerifyingKey {
    peluit_proto::keys::SigningKey::from_seed(&zeroize::Zeroizing::new([0; 32])).verifying_key()
}
