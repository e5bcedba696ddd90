//! Peluit's ciphertext store: the `CiphertextStore` trait the server writes through, and
//! its sled implementation, durable before any write is acknowledged (docs/storage.md).
//!
//! Signatures name only sealed or opaque types: the store can hold nothing else. Every
//! key starts with the institution, so one deployment serves many inspectorates. Dates
//! are days; nothing here knows an IP address, a User-Agent or a time of day.

mod error;
mod model;
mod sled_store;

pub use error::{Error, Result};
pub use model::{
    CaseRecord, CaseState, ExportItem, ExportItems, MailboxEntry, MailboxKind, ManifestBytes,
    NewCase, NewFollowUp, NewReply, PowHash, SealedChunks, SealedMailboxMessage, SealedReplyBytes,
    StoredManifest, SubmittedCase, TokenHash, TokenRecord, UploadState,
};
pub use sled_store::{PIECE_LEN, SPARE_UPLOAD_FILES, SledOptions, SledStore};

/// Most chunks one [`CiphertextStore::append_upload_chunks`] or [`UploadSink::write`] call
/// may carry (16 MiB of sealed STREAM chunks): bounds the size of one call.
pub const MAX_CHUNKS_PER_APPEND: usize = 256;

use std::sync::Arc;

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_proto::sealed::{SealedChunk, SealedMessage};

/// Where Peluit keeps ciphertext. Methods block (the server calls them from
/// `spawn_blocking`). A write that returns `Ok` is durable: it was applied as one atomic
/// step and then synced to disk, and it survives a crash or power loss (within the
/// limits of docs/storage.md). A write that returns `Err` changed nothing, except
/// [`Error::ReadOnly`] and [`Error::Storage`], after which the step may or may not have
/// survived. Reads never wait for a sync.
pub trait CiphertextStore: Send + Sync {
    /// Appends a verified, signed manifest to the institution's history. Refused with
    /// [`Error::Conflict`] unless `serial` is greater than every stored serial.
    fn put_manifest(
        &self,
        institution: &InstitutionId,
        serial: u64,
        manifest: &ManifestBytes,
    ) -> Result<()>;

    /// The institution's manifest history, oldest first.
    fn manifests(&self, institution: &InstitutionId) -> Result<Vec<StoredManifest>>;

    /// The manifest with the greatest serial, if any.
    fn latest_manifest(&self, institution: &InstitutionId) -> Result<Option<StoredManifest>>;

    /// Every institution that has at least one manifest, in id order.
    fn institutions(&self) -> Result<Vec<InstitutionId>>;

    /// Opens an upload session for `declared_len` sealed bytes and returns its fresh id.
    fn create_upload(
        &self,
        institution: &InstitutionId,
        declared_len: u64,
        day: Day,
    ) -> Result<UploadId>;

    /// Appends `chunk` at `offset`, which must equal the bytes received so far; returns
    /// the new offset. Out-of-order, overlapping and overlong appends are refused.
    fn append_upload(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
        chunk: &SealedChunk,
    ) -> Result<u64>;

    /// Appends a run of chunks at `offset` as one durable step: one sync for the whole
    /// run, which is how a streamed upload reaches disk speed. The same rules as
    /// [`CiphertextStore::append_upload`] apply to the run as a whole; all or nothing. At
    /// most [`MAX_CHUNKS_PER_APPEND`] chunks.
    fn append_upload_chunks(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
        chunks: &[SealedChunk],
    ) -> Result<u64>;

    /// Opens the upload's one append session at `offset`, which must equal the bytes
    /// received so far; a second session on the same upload is refused with
    /// [`Error::Conflict`] while the first is open. This is how a streamed body reaches
    /// disk speed: bytes are written as they arrive and made durable by a commit now and
    /// then, without a step per chunk.
    fn open_upload_sink(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        offset: u64,
    ) -> Result<Arc<dyn UploadSink>>;

    /// Marks an upload complete; refused unless every declared byte arrived. Completing a
    /// complete upload again succeeds (a retried request).
    fn complete_upload(&self, institution: &InstitutionId, upload: UploadId) -> Result<()>;

    /// Where an upload stands (what a resuming client asks first).
    fn upload_state(&self, institution: &InstitutionId, upload: UploadId) -> Result<UploadState>;

    /// How many uploads of the institution are not attached to a case yet (they hold
    /// disk until they are submitted or expire); the server caps this number.
    fn open_uploads(&self, institution: &InstitutionId) -> Result<usize>;

    /// Records a case in one atomic step: refuses a seen proof-of-work hash and any
    /// upload that is unknown, incomplete, already attached or listed twice; attaches the
    /// uploads; stores the envelope; assigns export cursors (case first, then its
    /// attachments in order).
    fn submit_case(&self, institution: &InstitutionId, case: NewCase) -> Result<SubmittedCase>;

    /// A case's metadata, also for a deletion tombstone.
    fn case(&self, institution: &InstitutionId, case: CaseId) -> Result<CaseRecord>;

    /// A case's sealed envelope; [`Error::NotFound`] once deleted.
    fn envelope(&self, institution: &InstitutionId, case: CaseId) -> Result<SealedMessage>;

    /// The sealed bytes of an attachment of `case`, streamed chunk by chunk.
    fn attachment_chunks(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        upload: UploadId,
    ) -> Result<SealedChunks>;

    /// Every exportable item (case, attachment, follow-up) whose cursor is greater than
    /// `cursor`, in cursor order. Items of deleted cases are left out.
    fn export_since(&self, institution: &InstitutionId, cursor: u64) -> Result<ExportItems>;

    /// The greatest cursor given so far (0 if none).
    fn export_cursor(&self, institution: &InstitutionId) -> Result<u64>;

    /// Adds a reporter's sealed follow-up to an open case's mailbox and gives it a cursor.
    /// Adding the same id with the same bytes again returns the stored entry.
    fn add_follow_up(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        follow_up: NewFollowUp,
    ) -> Result<MailboxEntry>;

    /// Adds a batch of sealed replies (an imported reply bundle) in one atomic step: all
    /// or none. A reply whose id is already in its case's mailbox with the same bytes is
    /// skipped, so importing a bundle twice is harmless. Returns one entry per reply.
    fn add_replies(
        &self,
        institution: &InstitutionId,
        replies: Vec<NewReply>,
    ) -> Result<Vec<MailboxEntry>>;

    /// A case's mailbox (replies and follow-ups), in seq order, without the bytes.
    fn mailbox(&self, institution: &InstitutionId, case: CaseId) -> Result<Vec<MailboxEntry>>;

    /// The sealed bytes of one mailbox message.
    fn mailbox_message(
        &self,
        institution: &InstitutionId,
        case: CaseId,
        seq: u64,
    ) -> Result<SealedMailboxMessage>;

    /// Deletes a case's envelope, attachments and mailbox, keeping a tombstone with the
    /// day of deletion. Deleting a deleted case again succeeds.
    fn delete_case(&self, institution: &InstitutionId, case: CaseId, day: Day) -> Result<()>;

    /// Open cases submitted before `day`, for the retention sweep.
    fn cases_before(&self, institution: &InstitutionId, day: Day) -> Result<Vec<CaseId>>;

    /// Stores the hash of a newly issued investigator token.
    fn put_token_hash(
        &self,
        institution: &InstitutionId,
        hash: TokenHash,
        label: &str,
        created: Day,
    ) -> Result<()>;

    /// Finds a token by its hash.
    fn find_token_hash(
        &self,
        institution: &InstitutionId,
        hash: &TokenHash,
    ) -> Result<Option<TokenRecord>>;

    /// Every token of the institution, in hash order.
    fn tokens(&self, institution: &InstitutionId) -> Result<Vec<TokenRecord>>;

    /// Revokes a token; [`Error::NotFound`] if it is not there.
    fn revoke_token(&self, institution: &InstitutionId, hash: &TokenHash) -> Result<()>;

    /// Removes, across all institutions, uploads never attached to a case and created
    /// before `before`, with their bytes. Returns how many.
    fn expire_uploads(&self, before: Day) -> Result<usize>;

    /// Forgets, across all institutions, proof-of-work hashes recorded before `before`.
    /// Returns how many. The server does not call it: a stamp carries no date, so a
    /// forgotten hash would let the same stamped ciphertext be submitted again.
    fn forget_pow_hashes(&self, before: Day) -> Result<usize>;

    /// Sets the access and modification times of everything the backend keeps per upload
    /// on a file system (files, their folders) to the Unix epoch. The kernel stamps each
    /// entry's change time with the moment of this call, so afterwards they all show this
    /// call's time instead of their own upload's (docs/storage.md#file-times). The server
    /// runs it hourly. An entry that vanishes meanwhile is skipped; one that fails is
    /// logged and counted, and the rest go on. Changes no stored byte. A backend that
    /// starts upload files from a pool of spares, so that a file's birth time is not its
    /// upload's (the sled store does), tops the pool up here first.
    fn reset_file_times(&self) -> Result<TimesReset>;
}

/// What a [`CiphertextStore::reset_file_times`] sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimesReset {
    /// Files and folders whose times are now the epoch.
    pub reset: usize,
    /// Files and folders whose times could not be reset (each one logged).
    pub failed: usize,
}

/// An open append session on one upload ([`CiphertextStore::open_upload_sink`]). Written
/// bytes count only once a commit returns: dropping the session discards everything
/// written after the last commit, and so does a crash.
pub trait UploadSink: Send + Sync {
    /// Writes `chunks` after every byte written so far in this session, under the rules of
    /// [`CiphertextStore::append_upload`] for each chunk and at most
    /// [`MAX_CHUNKS_PER_APPEND`] of them. Neither durable nor visible yet: returns the end
    /// of the bytes written.
    fn write(&self, chunks: &[SealedChunk]) -> Result<u64>;

    /// One acknowledged step: makes every byte written before the call durable and
    /// records it as received (the offset `upload_state` reports). Returns that offset.
    /// May run on another thread while `write` goes on; commits take turns.
    fn commit(&self) -> Result<u64>;
}
