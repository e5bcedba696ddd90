//! The types that cross the store's boundary: opaque sealed bytes, the records the server
//! reads back, and the requests it writes. None of them can hold plaintext.

use std::fmt;

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, MessageId, UploadId};
use peluit_proto::keys::VerifyingKey;
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A signed key manifest exactly as the institution published it (canonical JSON with
/// its signature). The server verifies it before storing; the store keeps it verbatim.
#[derive(Clone, PartialEq, Eq)]
pub struct ManifestBytes(Vec<u8>);

impl ManifestBytes {
    /// Wraps signed manifest bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The signed document.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The signed document, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for ManifestBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestBytes({} bytes)", self.0.len())
    }
}

/// A sealed, signed investigator reply or status change (proto's sealed reply JSON). The
/// store treats it as opaque ciphertext: it was sealed and signed on the offline desk.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedReplyBytes(Vec<u8>);

impl SealedReplyBytes {
    /// Wraps reply bytes whose seal and signature the caller has checked.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The sealed reply.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The sealed reply, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for SealedReplyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedReplyBytes({} bytes)", self.0.len())
    }
}

/// SHA-256 of an investigator access token. The store never sees the token itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a bearer token as presented by a client.
    pub fn of_token(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// The hash from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time, so a lookup's timing does not reveal how much of a
    /// guessed token's hash matched.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell tokens apart in a listing and says nothing useful
        // about the token.
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// SHA-256 of a submission's proof-of-work stamp, kept so a stamp is accepted only once.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PowHash([u8; 32]);

impl PowHash {
    /// The hash from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PowHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PowHash({})", hex::encode(self.0))
    }
}

/// One entry of an institution's manifest history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredManifest {
    /// The manifest's serial; strictly grows along the history.
    pub serial: u64,
    /// The signed document, byte for byte as published.
    pub manifest: ManifestBytes,
}

/// Where an upload session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadState {
    /// The upload.
    pub id: UploadId,
    /// The day it was created; unattached uploads expire by this day.
    pub created: Day,
    /// The sealed size the client declared at creation.
    pub declared_len: u64,
    /// Bytes received so far: the only offset the next append may start at.
    pub received: u64,
    /// Sealed chunks appended so far.
    pub chunks: u64,
    /// Every declared byte arrived and the client completed the upload.
    pub complete: bool,
    /// The case it was attached to at submission, if any.
    pub attached_to: Option<CaseId>,
}

/// What the store knows about a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaseState {
    /// Submitted and kept.
    Open,
    /// Deleted after retention: only this tombstone is left.
    Deleted,
}

/// A case's metadata. The sealed envelope and attachments are read separately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRecord {
    /// The case.
    pub id: CaseId,
    /// The day it was submitted.
    pub day: Day,
    /// The padded size bucket of the submission.
    pub size_bucket: u64,
    /// The reporter's mailbox public key.
    pub mailbox_key: VerifyingKey,
    /// Open, or a deletion tombstone.
    pub state: CaseState,
    /// Attached uploads, in submission order (empty once deleted).
    pub attachments: Vec<UploadId>,
    /// Length of the sealed envelope in bytes (0 once deleted).
    pub envelope_len: u64,
    /// The export cursor the case was given.
    pub cursor: u64,
    /// The day it was deleted, for a tombstone.
    pub deleted_on: Option<Day>,
}

/// A report submission, written atomically by [`crate::CiphertextStore::submit_case`].
#[derive(Debug)]
pub struct NewCase {
    /// The day of submission.
    pub day: Day,
    /// The padded size bucket of the submission.
    pub size_bucket: u64,
    /// The reporter's mailbox public key.
    pub mailbox_key: VerifyingKey,
    /// The sealed report envelope.
    pub envelope: SealedMessage,
    /// Completed, unattached uploads to attach to this case, in order.
    pub attachments: Vec<UploadId>,
    /// Hash of the proof-of-work stamp; a hash seen before refuses the submission.
    pub pow_hash: PowHash,
}

/// The result of a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmittedCase {
    /// The new case's random id.
    pub id: CaseId,
    /// The export cursor given to the case (its attachments follow it).
    pub cursor: u64,
}

/// What a mailbox entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MailboxKind {
    /// A sealed reply or status change from an investigator.
    Reply,
    /// A sealed follow-up from the reporter.
    FollowUp,
}

/// One message of a case's mailbox, without its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxEntry {
    /// Position in the case's mailbox; grows from 1 in the order messages were stored.
    pub seq: u64,
    /// The message's id, chosen by its author (a re-imported reply keeps its id).
    pub id: MessageId,
    /// Reply or follow-up.
    pub kind: MailboxKind,
    /// The day it was stored.
    pub day: Day,
    /// Length of the sealed bytes.
    pub len: u64,
    /// The export cursor of a follow-up; replies are not exported.
    pub cursor: Option<u64>,
}

/// The sealed bytes of one mailbox message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealedMailboxMessage {
    /// An investigator's sealed, signed reply.
    Reply(SealedReplyBytes),
    /// A reporter's sealed follow-up.
    FollowUp(SealedMessage),
}

/// A reporter's follow-up, for [`crate::CiphertextStore::add_follow_up`].
#[derive(Debug)]
pub struct NewFollowUp {
    /// The message id (fresh and random for each follow-up).
    pub id: MessageId,
    /// The day it arrived.
    pub day: Day,
    /// The sealed follow-up.
    pub message: SealedMessage,
}

/// One reply of an imported reply bundle, for [`crate::CiphertextStore::add_replies`].
#[derive(Debug)]
pub struct NewReply {
    /// The case it answers.
    pub case: CaseId,
    /// The reply's id from the bundle; storing the same id twice is a no-op.
    pub id: MessageId,
    /// The day it was imported.
    pub day: Day,
    /// The sealed, signed reply.
    pub reply: SealedReplyBytes,
}

/// An investigator token's record, found by its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's hash.
    pub hash: TokenHash,
    /// A label chosen when it was issued (e.g. the investigator's desk name).
    pub label: String,
    /// The day it was issued.
    pub created: Day,
}

/// One exportable item, in cursor order.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportItem {
    /// A submitted case with its sealed envelope.
    Case {
        /// The item's cursor.
        cursor: u64,
        /// The case's metadata.
        case: CaseRecord,
        /// The sealed envelope.
        envelope: SealedMessage,
    },
    /// An attachment of a case; read its bytes with
    /// [`crate::CiphertextStore::attachment_chunks`], which streams them.
    Attachment {
        /// The item's cursor.
        cursor: u64,
        /// The case it belongs to.
        case: CaseId,
        /// The upload holding its ciphertext.
        upload: UploadId,
        /// Sealed length in bytes.
        len: u64,
    },
    /// A reporter's follow-up with its sealed bytes.
    FollowUp {
        /// The item's cursor.
        cursor: u64,
        /// The case it belongs to.
        case: CaseId,
        /// The mailbox entry.
        entry: MailboxEntry,
        /// The sealed follow-up.
        message: SealedMessage,
    },
}

impl ExportItem {
    /// The item's export cursor.
    pub fn cursor(&self) -> u64 {
        match self {
            Self::Case { cursor, .. }
            | Self::Attachment { cursor, .. }
            | Self::FollowUp { cursor, .. } => *cursor,
        }
    }
}

/// Sealed attachment bytes, read lazily chunk by chunk: memory does not grow with the
/// attachment. Chunk boundaries are the store's, not the uploader's; only the
/// concatenation is meaningful.
pub type SealedChunks = Box<dyn Iterator<Item = crate::Result<SealedChunk>> + Send>;

/// Exportable items in cursor order, read lazily.
pub type ExportItems = Box<dyn Iterator<Item = crate::Result<ExportItem>> + Send>;
