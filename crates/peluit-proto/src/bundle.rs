//! The bundle: a framed, versioned stream of sealed data carried by USB between the online
//! courier and the air-gapped desk, verifiable end to end in constant memory (docs/protocol.md#bundle).
//!
//! Reading is streaming: [`BundleReader::next_frame`] hands out each frame's metadata and
//! lets the caller stream its payload, whose digest is checked once the payload has been
//! read. What a frame yields is provisional until the End frame has been checked, so the
//! desk runs [`BundleReader::verify`] over the whole bundle before it opens anything.

use std::io::{self, Read, Write};

use poly1305::Poly1305;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use rand::RngCore as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::day::Day;
use crate::ids::{CaseId, InstitutionId, UploadId};
use crate::keys::VerifyingKey;
use crate::limits::{
    CHUNK_SIZE, MAX_ATTACHMENT_LEN, MAX_ENVELOPE_LEN, MAX_HEADER_LEN, MAX_MANIFEST_LEN,
};
use crate::reply::MAX_SEALED_REPLY_JSON_LEN;
use crate::{Error, Result, encoding};

/// The first 16 bytes of every bundle: `PELUIT-BUNDLE\n`, the format version `2` as an
/// ASCII digit, and `\n`.
pub const MAGIC: &[u8; 16] = b"PELUIT-BUNDLE\n2\n";
/// The version in the magic and in the Header frame.
pub const BUNDLE_VERSION: u64 = 2;
/// Largest frame metadata, in bytes of JSON.
pub const MAX_META_LEN: u32 = 64 * 1024;
/// Most frames in one bundle, the Header and End frames included.
pub const MAX_FRAMES: u64 = 10_000_000;
/// Piece size for streamed payload copies: memory does not grow with the payload.
const COPY_CHUNK: usize = 64 * 1024;
/// Payloads at least this long are read on one thread and digested on another (native
/// only), so reading (and the fingerprint of a [`PayloadPin`]) overlaps the SHA-256.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MIN_LEN: u64 = 1024 * 1024;
/// Piece size and queue depth of the digest thread: at most a few MiB in flight.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_CHUNK: usize = 128 * 1024;
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_DEPTH: usize = 4;
const DIGEST_LEN: usize = 32;

/// Why a bundle was refused. Carried in [`Error::Bundle`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The input does not start with the bundle magic.
    #[error("not a Peluit bundle (it does not start with the bundle magic)")]
    NotABundle,
    /// The input ended inside a frame.
    #[error("the bundle ends in the middle of a frame (incomplete copy?)")]
    Truncated,
    /// The input ended between frames, before an End frame.
    #[error("the bundle ends without its End frame (incomplete copy?)")]
    MissingEnd,
    /// Bytes follow the End frame.
    #[error("data follows the End frame")]
    DataAfterEnd,
    /// The frame's metadata names a kind this version does not know.
    #[error("frame {index}: unknown frame kind")]
    UnknownFrameKind {
        /// Position of the frame, the Header being frame 0.
        index: u64,
    },
    /// A known frame kind in a place it may not appear.
    #[error("frame {index}: a {frame} frame is not allowed {rule}")]
    WrongFrame {
        /// Position of the frame, the Header being frame 0.
        index: u64,
        /// The frame's kind.
        frame: &'static str,
        /// The rule it broke.
        rule: &'static str,
    },
    /// A payload where the kind has none, or none where it needs one.
    #[error("frame {index}: a {frame} frame has a payload length its kind does not allow")]
    PayloadLength {
        /// Position of the frame, the Header being frame 0.
        index: u64,
        /// The frame's kind.
        frame: &'static str,
    },
    /// A frame's SHA-256 does not match its bytes.
    #[error("frame {index}: digest mismatch (the frame was altered or damaged)")]
    FrameDigest {
        /// Position of the frame, the Header being frame 0.
        index: u64,
    },
    /// The End frame counts a different number of frames than precede it.
    #[error("the End frame counts {declared} frames but {found} precede it")]
    FrameCount {
        /// The count in the End frame.
        declared: u64,
        /// Frames actually read before it.
        found: u64,
    },
    /// The End frame's digest does not match the bytes before it.
    #[error("the End frame's digest does not match the bundle (frames altered or reordered)")]
    BundleDigest,
    /// The underlying reader or writer failed.
    #[error("reading or writing the bundle failed: {0}")]
    Io(io::ErrorKind),
}

fn bundle_error(error: BundleError) -> Error {
    Error::Bundle(error)
}

/// Recovers a protocol error carried through `io::Error`, or classifies an I/O failure.
fn from_io(error: io::Error) -> Error {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        return bundle_error(BundleError::Truncated);
    }
    let kind = error.kind();
    match error.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(inner)) => *inner,
        _ => bundle_error(BundleError::Io(kind)),
    }
}

fn to_io(error: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Which way a bundle travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleKind {
    /// Server → desk: new cases, attachments, follow-ups and deletions.
    Export,
    /// Desk → server: replies, status changes, deletions and a new manifest.
    Reply,
}

impl BundleKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Export => "export",
            Self::Reply => "reply",
        }
    }
}

/// The first frame of every bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    /// Export or reply.
    pub kind: BundleKind,
    /// The institution whose data it carries.
    pub institution: InstitutionId,
    /// The day it was written.
    pub created: Day,
    /// Export: first server export cursor covered. Reply: the `cursor_to` of the last
    /// export the desk imported.
    pub cursor_from: u64,
    /// Export: the cursor after the last change covered. Reply: same as `cursor_from`.
    pub cursor_to: u64,
}

/// The metadata of a frame between the Header and the End (docs/protocol.md#bundle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameMeta {
    /// Payload: a signed manifest document.
    Manifest,
    /// Payload: the sealed report envelope of a new case.
    Case {
        /// The case.
        case: CaseId,
        /// The day it was submitted.
        day: Day,
        /// The reporter's mailbox key, where replies go.
        mailbox_key: VerifyingKey,
        /// How many attachments the report announced.
        attachments: u32,
    },
    /// Payload: one sealed attachment stream.
    Attachment {
        /// The case it belongs to.
        case: CaseId,
        /// The upload it arrived in.
        upload: UploadId,
        /// Its position in the case's attachment list.
        index: u32,
    },
    /// Payload: a sealed follow-up from the reporter.
    FollowUp {
        /// The case it belongs to.
        case: CaseId,
        /// The follow-up's sequence number in the case.
        seq: u32,
    },
    /// Payload: a `SealedReply` JSON document.
    Reply,
    /// No payload: the case is to be deleted (export: the reporter withdrew it; reply:
    /// the desk closed and purged it).
    Delete {
        /// The case.
        case: CaseId,
    },
}

impl FrameMeta {
    /// The frame kind's wire name.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::Case { .. } => "case",
            Self::Attachment { .. } => "attachment",
            Self::FollowUp { .. } => "follow-up",
            Self::Reply => "reply",
            Self::Delete { .. } => "delete",
        }
    }

    /// The payload lengths this kind allows: `None` for no payload, else the largest
    /// (a payload-carrying frame is never empty).
    pub fn max_payload_len(&self) -> Option<u64> {
        match self {
            Self::Manifest => Some(MAX_MANIFEST_LEN as u64),
            Self::Case { .. } | Self::FollowUp { .. } => Some(MAX_ENVELOPE_LEN as u64),
            Self::Attachment { .. } => Some(max_sealed_attachment_len()),
            Self::Reply => Some(MAX_SEALED_REPLY_JSON_LEN as u64),
            Self::Delete { .. } => None,
        }
    }

    fn to_wire(&self) -> WireMeta {
        match self.clone() {
            Self::Manifest => WireMeta::Manifest,
            Self::Case {
                case,
                day,
                mailbox_key,
                attachments,
            } => WireMeta::Case {
                case,
                day,
                mailbox_key,
                attachments,
            },
            Self::Attachment {
                case,
                upload,
                index,
            } => WireMeta::Attachment {
                case,
                upload,
                index,
            },
            Self::FollowUp { case, seq } => WireMeta::FollowUp { case, seq },
            Self::Reply => WireMeta::Reply,
            Self::Delete { case } => WireMeta::Delete { case },
        }
    }
}

/// The largest sealed attachment stream: an age header of at most [`MAX_HEADER_LEN`],
/// the 16-byte nonce, and the padded largest attachment in 64 KiB chunks with a 16-byte
/// tag each.
pub fn max_sealed_attachment_len() -> u64 {
    let padded = crate::seal::padded_len(MAX_ATTACHMENT_LEN);
    let chunks = padded.div_ceil(CHUNK_SIZE as u64).max(1);
    MAX_HEADER_LEN as u64 + 16 + padded + 16 * chunks
}

/// The frame metadata as JSON; the `frame` tag comes first (docs/protocol.md#bundle).
#[derive(Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "kebab-case", deny_unknown_fields)]
enum WireMeta {
    Header {
        version: u64,
        kind: BundleKind,
        institution: InstitutionId,
        created: Day,
        cursor_from: u64,
        cursor_to: u64,
    },
    Manifest,
    Case {
        case: CaseId,
        day: Day,
        mailbox_key: VerifyingKey,
        attachments: u32,
    },
    Attachment {
        case: CaseId,
        upload: UploadId,
        index: u32,
    },
    FollowUp {
        case: CaseId,
        seq: u32,
    },
    Reply,
    Delete {
        case: CaseId,
    },
    End {
        frames: u64,
        digest: String,
    },
}

const FRAME_KINDS: [&str; 8] = [
    "header",
    "manifest",
    "case",
    "attachment",
    "follow-up",
    "reply",
    "delete",
    "end",
];

impl WireMeta {
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| unreachable!("frame metadata serializes"))
    }

    fn parse(json: &[u8], index: u64) -> Result<Self> {
        #[derive(Deserialize)]
        struct TagProbe {
            frame: String,
        }
        let probe: TagProbe =
            serde_json::from_slice(json).map_err(|_| Error::Malformed("bundle frame metadata"))?;
        // A newer writer's frame kind is refused by name, not as garbage.
        // docs/protocol.md#bundle
        if !FRAME_KINDS.contains(&probe.frame.as_str()) {
            return Err(bundle_error(BundleError::UnknownFrameKind { index }));
        }
        let meta: Self =
            serde_json::from_slice(json).map_err(|_| Error::Malformed("bundle frame metadata"))?;
        // One frame, one encoding. docs/protocol.md#bundle
        if meta.to_json() != json {
            return Err(Error::Malformed(
                "bundle frame metadata: non-canonical JSON",
            ));
        }
        Ok(meta)
    }
}

fn header_wire(header: &BundleHeader) -> WireMeta {
    WireMeta::Header {
        version: BUNDLE_VERSION,
        kind: header.kind,
        institution: header.institution.clone(),
        created: header.created,
        cursor_from: header.cursor_from,
        cursor_to: header.cursor_to,
    }
}

fn check_header(header: &BundleHeader) -> Result<()> {
    // A cursor range runs forwards. docs/protocol.md#bundle
    if header.cursor_from > header.cursor_to {
        return Err(Error::Malformed(
            "bundle header: cursor_from after cursor_to",
        ));
    }
    Ok(())
}

/// Checks that `meta` may appear as frame `index` of a bundle of `kind` with a payload of
/// `payload_len` bytes. Writer and reader share it, so a writer cannot produce what a
/// reader refuses.
fn check_frame(kind: BundleKind, index: u64, meta: &FrameMeta, payload_len: u64) -> Result<()> {
    let frame = meta.kind_name();
    let wrong = |rule| bundle_error(BundleError::WrongFrame { index, frame, rule });
    // Export bundles carry what reporters sent; reply bundles what the desk wrote.
    // docs/protocol.md#bundle
    let allowed = match meta {
        FrameMeta::Manifest | FrameMeta::Delete { .. } => true,
        FrameMeta::Case { .. } | FrameMeta::Attachment { .. } | FrameMeta::FollowUp { .. } => {
            kind == BundleKind::Export
        }
        FrameMeta::Reply => kind == BundleKind::Reply,
    };
    if !allowed {
        return Err(wrong(match kind {
            BundleKind::Export => "in an export bundle",
            BundleKind::Reply => "in a reply bundle",
        }));
    }
    // The manifest comes first, so the desk knows the keys before any sealed data.
    // docs/protocol.md#bundle
    if *meta == FrameMeta::Manifest && index != 1 {
        return Err(wrong("except directly after the header"));
    }
    match meta.max_payload_len() {
        None if payload_len != 0 => Err(bundle_error(BundleError::PayloadLength { index, frame })),
        Some(_) if payload_len == 0 => {
            Err(bundle_error(BundleError::PayloadLength { index, frame }))
        }
        Some(max) if payload_len > max => Err(Error::TooLarge("bundle frame payload")),
        _ => Ok(()),
    }
}

/// Writes a bundle to any `Write`: the Header on [`new`](Self::new), frames in order, the
/// End frame on [`finish`](Self::finish). Memory does not grow with payload size.
pub struct BundleWriter<W: Write> {
    inner: W,
    kind: BundleKind,
    bundle_hash: Sha256,
    frames: u64,
    failed: bool,
    buf: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("kind", &self.kind)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl<W: Write> BundleWriter<W> {
    /// Writes the magic and the Header frame.
    pub fn new(inner: W, header: &BundleHeader) -> Result<Self> {
        check_header(header)?;
        let mut writer = Self {
            inner,
            kind: header.kind,
            bundle_hash: Sha256::new(),
            frames: 0,
            failed: false,
            buf: Vec::new(),
        };
        writer.write_hashed(MAGIC, None)?;
        writer.write_frame_inner(&header_wire(header), 0, io::empty())?;
        Ok(writer)
    }

    /// Writes one frame whose payload is in memory.
    pub fn write_frame(&mut self, meta: &FrameMeta, payload: &[u8]) -> Result<()> {
        self.write_frame_streamed(meta, payload.len() as u64, payload)
    }

    /// Writes one frame whose `payload_len`-byte payload is read from `payload` in 64 KiB
    /// pieces. The reader must yield exactly `payload_len` bytes; otherwise the frame is
    /// refused and the writer is unusable (the output is incomplete).
    pub fn write_frame_streamed(
        &mut self,
        meta: &FrameMeta,
        payload_len: u64,
        payload: impl Read,
    ) -> Result<()> {
        self.check_usable()?;
        check_frame(self.kind, self.frames, meta, payload_len)?;
        // Leave room for the End frame. docs/protocol.md#bundle
        if self.frames + 1 >= MAX_FRAMES {
            return Err(Error::TooLarge("bundle frame count"));
        }
        self.write_frame_inner(&meta.to_wire(), payload_len, payload)
    }

    /// Writes the End frame, flushes, and returns the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.check_usable()?;
        let digest: [u8; DIGEST_LEN] = self.bundle_hash.clone().finalize().into();
        let end = WireMeta::End {
            frames: self.frames,
            digest: hex::encode(digest),
        };
        self.write_frame_inner(&end, 0, io::empty())?;
        self.inner
            .flush()
            .map_err(|e| bundle_error(BundleError::Io(e.kind())))?;
        Ok(self.inner)
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidUse("the bundle writer already failed"));
        }
        Ok(())
    }

    /// Writes bytes that are not payload: the bundle digest covers them.
    fn write_hashed(&mut self, bytes: &[u8], frame_hash: Option<&mut Sha256>) -> Result<()> {
        self.write_raw(bytes)?;
        self.bundle_hash.update(bytes);
        if let Some(frame_hash) = frame_hash {
            frame_hash.update(bytes);
        }
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.inner.write_all(bytes) {
            self.failed = true;
            return Err(bundle_error(BundleError::Io(e.kind())));
        }
        Ok(())
    }

    fn write_frame_inner(
        &mut self,
        meta: &WireMeta,
        payload_len: u64,
        mut payload: impl Read,
    ) -> Result<()> {
        let json = meta.to_json();
        let meta_len = u32::try_from(json.len())
            .ok()
            .filter(|len| *len <= MAX_META_LEN)
            .ok_or(Error::TooLarge("bundle frame metadata"))?;
        let mut frame_hash = Sha256::new();
        self.write_hashed(&meta_len.to_be_bytes(), Some(&mut frame_hash))?;
        self.write_hashed(&json, Some(&mut frame_hash))?;
        self.write_hashed(&payload_len.to_be_bytes(), Some(&mut frame_hash))?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(COPY_CHUNK, 0);
        let mut payload_hash = Sha256::new();
        let copied = self.copy_payload(&mut payload, payload_len, &mut buf, &mut payload_hash);
        self.buf = buf;
        if let Err(e) = copied {
            self.failed = true;
            return Err(e);
        }
        // The frame digest covers the payload through its own SHA-256, so each payload
        // byte is digested once. docs/protocol.md#bundle
        frame_hash.update(payload_hash.finalize());
        let digest: [u8; DIGEST_LEN] = frame_hash.finalize().into();
        self.write_hashed(&digest, None)?;
        self.frames += 1;
        Ok(())
    }

    fn copy_payload(
        &mut self,
        payload: &mut impl Read,
        payload_len: u64,
        buf: &mut [u8],
        payload_hash: &mut Sha256,
    ) -> Result<()> {
        let mut left = payload_len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match payload.read(&mut buf[..want]) {
                Ok(0) => return Err(Error::InvalidUse("payload shorter than declared")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(bundle_error(BundleError::Io(e.kind()))),
            };
            self.write_raw(&buf[..n])?;
            payload_hash.update(&buf[..n]);
            left -= n as u64;
        }
        // The declared length is a promise: a longer source is an error, not a cut.
        let mut probe = [0u8; 1];
        loop {
            match payload.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(Error::InvalidUse("payload longer than declared")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(bundle_error(BundleError::Io(e.kind()))),
            }
        }
    }
}

/// What a fully verified bundle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    /// Its Header.
    pub header: BundleHeader,
    /// Frames before the End frame, the Header included (the End frame's count).
    pub frames: u64,
    /// Manifest frames.
    pub manifests: u64,
    /// Case frames.
    pub cases: u64,
    /// Attachment frames.
    pub attachments: u64,
    /// Follow-up frames.
    pub follow_ups: u64,
    /// Reply frames.
    pub replies: u64,
    /// Delete frames.
    pub deletes: u64,
    /// Sum of all payload lengths.
    pub payload_bytes: u64,
    /// The End frame's digest: SHA-256 of every byte before the End frame except the
    /// payloads, which the frame digests cover.
    pub digest: [u8; 32],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    Reading,
    Finished,
    Failed,
}

/// A frame whose payload is being, or can be, read.
struct Pending {
    index: u64,
    remaining: u64,
    /// No payload byte has been read yet.
    untouched: bool,
    frame_hash: Sha256,
    /// The payload's own SHA-256, on a first pass.
    payload_hash: Option<Sha256>,
    /// The payload's fingerprint, for a [`PayloadPin`] being made or checked.
    fingerprint: Option<Fingerprint>,
    /// The fingerprint a first pass reported, checked at the payload's end.
    pin: Option<[u8; FINGERPRINT_LEN]>,
}

impl Pending {
    fn new(index: u64, remaining: u64, frame_hash: Sha256, digesting: bool) -> Self {
        Self {
            index,
            remaining,
            untouched: true,
            frame_hash,
            payload_hash: digesting.then(Sha256::new),
            fingerprint: None,
            pin: None,
        }
    }
}

const FINGERPRINT_LEN: usize = 16;

/// What a first pass learnt of one payload ([`Frame::payload_pin`]): its SHA-256, which the
/// frame digest covers and an envelope pins, and a Poly1305 fingerprint of it under a key
/// drawn for this payload alone and never written anywhere. A re-read
/// ([`Frame::pinned_payload_reader`]) recomputes the fingerprint instead of the SHA-256,
/// at about a third of the cost: whoever chose other bytes, knowing nothing of the key,
/// matches it with probability at most 8⌈L/16⌉/2^106 for L bytes, below 2^-74 for the
/// largest payload. docs/protocol.md#bundle
pub struct PayloadPin {
    sha256: [u8; DIGEST_LEN],
    key: Zeroizing<[u8; 32]>,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl PayloadPin {
    /// The payload's SHA-256.
    pub fn sha256(&self) -> [u8; DIGEST_LEN] {
        self.sha256
    }
}

impl std::fmt::Debug for PayloadPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadPin")
            .field("sha256", &hex::encode(self.sha256))
            .finish_non_exhaustive()
    }
}

/// Poly1305 over a payload fed in pieces of any size: whole groups of four 16-byte blocks go
/// to the MAC as they come, the rest at the end, so the result does not depend on how the
/// payload was split. Groups of four keep poly1305's AVX2 backend on its four-block path,
/// about three times faster than block by block.
struct Fingerprint {
    mac: Poly1305,
    partial: [u8; FINGERPRINT_GROUP],
    filled: usize,
}

const FINGERPRINT_GROUP: usize = 64;

impl Fingerprint {
    fn new(key: &[u8; 32]) -> Self {
        Self {
            mac: Poly1305::new(key.into()),
            partial: [0; FINGERPRINT_GROUP],
            filled: 0,
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        if self.filled > 0 {
            let take = bytes.len().min(FINGERPRINT_GROUP - self.filled);
            self.partial[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled < FINGERPRINT_GROUP {
                return;
            }
            self.mac.update_padded(&self.partial);
            self.filled = 0;
        }
        // Whole groups only: `update_padded` pads nothing then.
        let whole = bytes.len() - bytes.len() % FINGERPRINT_GROUP;
        self.mac.update_padded(&bytes[..whole]);
        let rest = &bytes[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    fn finish(self) -> [u8; FINGERPRINT_LEN] {
        self.mac
            .compute_unpadded(&self.partial[..self.filled])
            .into()
    }
}

/// What reading a whole payload computed of it.
struct Finished {
    sha256: Option<[u8; DIGEST_LEN]>,
    fingerprint: Option<[u8; FINGERPRINT_LEN]>,
}

/// What a frame head says before its payload.
struct FrameHead {
    meta: WireMeta,
    payload_len: u64,
    frame_hash: Sha256,
}

/// Reads exactly `buf.len()` bytes. `Ok(false)` if the input ended before the first byte
/// and `at_boundary` allows it; an end after the first byte is a truncation.
fn read_exact_or_end(inner: &mut impl Read, buf: &mut [u8], at_boundary: bool) -> Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match inner.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 && at_boundary => return Ok(false),
            Ok(0) => return Err(bundle_error(BundleError::Truncated)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(from_io(e)),
        }
    }
    Ok(true)
}

/// Reads at least one byte into `buf` (not empty); an end of input is a truncation.
fn read_some(inner: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    loop {
        match inner.read(buf) {
            Ok(0) => return Err(bundle_error(BundleError::Truncated)),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(from_io(e)),
        }
    }
}

/// Reads the next `len` bytes of `inner`, feeding them to `sha` and `fingerprint` where
/// given.
fn digest_stream(
    inner: &mut impl Read,
    len: u64,
    mut sha: Option<&mut Sha256>,
    mut fingerprint: Option<&mut Fingerprint>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    #[cfg(not(target_arch = "wasm32"))]
    if len >= PARALLEL_MIN_LEN
        && let Some(sha) = sha.as_deref_mut()
    {
        return digest_stream_parallel(inner, len, sha, fingerprint);
    }
    buf.resize(COPY_CHUNK, 0);
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_some(inner, &mut buf[..want])?;
        if let Some(sha) = sha.as_deref_mut() {
            sha.update(&buf[..n]);
        }
        if let Some(fingerprint) = fingerprint.as_deref_mut() {
            fingerprint.update(&buf[..n]);
        }
        left -= n as u64;
    }
    Ok(())
}

/// [`digest_stream`] with the SHA-256 on a second thread, fed pieces through a bounded
/// queue, while this one reads (waiting on the disk) and computes the fingerprint.
#[cfg(not(target_arch = "wasm32"))]
fn digest_stream_parallel(
    inner: &mut impl Read,
    len: u64,
    sha: &mut Sha256,
    mut fingerprint: Option<&mut Fingerprint>,
) -> Result<()> {
    use std::sync::mpsc;

    std::thread::scope(|scope| {
        let (queue, pieces) = mpsc::sync_channel::<(Vec<u8>, usize)>(PARALLEL_DEPTH);
        let (spent, returned) = mpsc::channel::<Vec<u8>>();
        let hashing = scope.spawn(move || {
            for (piece, n) in pieces {
                sha.update(&piece[..n]);
                // Pieces go back for reuse, so memory stays at about the queue depth.
                let _ = spent.send(piece);
            }
        });
        let mut left = len;
        let read = loop {
            if left == 0 {
                break Ok(());
            }
            let mut piece = returned
                .try_recv()
                .unwrap_or_else(|_| vec![0; PARALLEL_CHUNK]);
            let want = PARALLEL_CHUNK.min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match read_some(inner, &mut piece[..want]) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Some(fingerprint) = fingerprint.as_deref_mut() {
                fingerprint.update(&piece[..n]);
            }
            if queue.send((piece, n)).is_err() {
                break Err(Error::InvalidUse("a digest thread stopped"));
            }
            left -= n as u64;
        };
        drop(queue);
        let joined = hashing
            .join()
            .map_err(|_| Error::InvalidUse("a digest thread stopped"));
        read.and(joined)
    })
}

/// The byte-level side of reading: the input, the running digests and the frame whose
/// payload is pending.
struct Input<R: Read> {
    inner: R,
    /// A first pass digests every payload; a re-read ([`BundleReader::reread`]) only
    /// the pinned ones.
    digesting: bool,
    /// The magic, and every frame's head and stored digest, in order.
    bundle_hash: Sha256,
    pending: Option<Pending>,
    buf: Vec<u8>,
}

impl<R: Read> Input<R> {
    /// Reads a frame's metadata length, metadata and payload length, hashing them.
    /// `None` if the input ended cleanly before the frame.
    fn read_head(&mut self, index: u64) -> Result<Option<FrameHead>> {
        let mut len_bytes = [0u8; 4];
        if !read_exact_or_end(&mut self.inner, &mut len_bytes, true)? {
            return Ok(None);
        }
        let meta_len = u32::from_be_bytes(len_bytes);
        // Bound the only buffer whose size the input chooses. docs/protocol.md#bundle
        if meta_len > MAX_META_LEN {
            return Err(Error::TooLarge("bundle frame metadata"));
        }
        let mut json = vec![0u8; meta_len as usize];
        read_exact_or_end(&mut self.inner, &mut json, false)?;
        let mut payload_len_bytes = [0u8; 8];
        read_exact_or_end(&mut self.inner, &mut payload_len_bytes, false)?;
        let mut frame_hash = Sha256::new();
        for part in [&len_bytes[..], &json, &payload_len_bytes] {
            frame_hash.update(part);
            self.bundle_hash.update(part);
        }
        let meta = WireMeta::parse(&json, index)?;
        Ok(Some(FrameHead {
            meta,
            payload_len: u64::from_be_bytes(payload_len_bytes),
            frame_hash,
        }))
    }

    /// Reads up to `buf.len()` bytes of the pending payload; at its end, reads and checks
    /// the frame digest (and the pin, if any) and returns 0.
    fn read_payload(&mut self, buf: &mut [u8]) -> Result<usize> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(0);
        };
        // A second pass hands out only what it can check against the first.
        if !self.digesting && pending.pin.is_none() {
            return Err(Error::InvalidUse(
                "a re-read bundle hands out only pinned payloads",
            ));
        }
        if pending.remaining == 0 {
            self.finish_pending()?;
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(pending.remaining).unwrap_or(usize::MAX));
        let n = read_some(&mut self.inner, &mut buf[..want])?;
        if let Some(payload_hash) = pending.payload_hash.as_mut() {
            payload_hash.update(&buf[..n]);
        }
        if let Some(fingerprint) = pending.fingerprint.as_mut() {
            fingerprint.update(&buf[..n]);
        }
        pending.untouched = false;
        pending.remaining -= n as u64;
        Ok(n)
    }

    /// Skips what is left of the pending payload (still digesting it) and checks the
    /// frame digest and the pin. Returns what was computed of the payload.
    fn finish_pending(&mut self) -> Result<Option<Finished>> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(None);
        };
        if pending.remaining > 0 {
            digest_stream(
                &mut self.inner,
                pending.remaining,
                pending.payload_hash.as_mut(),
                pending.fingerprint.as_mut(),
                &mut self.buf,
            )?;
            pending.remaining = 0;
        }
        let mut digest = [0u8; DIGEST_LEN];
        read_exact_or_end(&mut self.inner, &mut digest, false)?;
        self.bundle_hash.update(digest);
        let failed = bundle_error(BundleError::FrameDigest {
            index: pending.index,
        });
        let payload_sha256: Option<[u8; DIGEST_LEN]> =
            pending.payload_hash.map(|hash| hash.finalize().into());
        // A re-read cannot check the digest of a payload it skipped undigested; the End
        // frame compares the digests themselves with the first pass's.
        if let Some(payload_sha256) = payload_sha256 {
            pending.frame_hash.update(payload_sha256);
            let computed: [u8; DIGEST_LEN] = pending.frame_hash.finalize().into();
            // Each frame carries its own digest, so damage is located to a frame and
            // caught as soon as the frame has been read. docs/protocol.md#bundle
            if computed != digest {
                return Err(failed);
            }
        }
        let fingerprint = pending.fingerprint.map(Fingerprint::finish);
        // A second pass must read the bytes the first pass checked.
        if let Some(pin) = pending.pin
            && !fingerprint.is_some_and(|f| bool::from(f.ct_eq(&pin)))
        {
            return Err(failed);
        }
        Ok(Some(Finished {
            sha256: payload_sha256,
            fingerprint,
        }))
    }

    /// Reads the digest of a frame without payload and checks it.
    fn finish_empty_frame(&mut self, index: u64, frame_hash: Sha256) -> Result<()> {
        self.pending = Some(Pending::new(index, 0, frame_hash, true));
        self.finish_pending().map(|_| ())
    }

    fn check_nothing_after_end(&mut self) -> Result<()> {
        // The End frame is the last byte: appended data could be mistaken for more frames
        // by a lax reader. docs/protocol.md#bundle
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(bundle_error(BundleError::DataAfterEnd)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e)),
            }
        }
    }
}

/// Reads a bundle from any `Read`, frame by frame, checking each frame's digest once its
/// payload has been read or skipped, and the End frame's count and digest at the end.
pub struct BundleReader<R: Read> {
    input: Input<R>,
    header: BundleHeader,
    frames: u64,
    state: ReaderState,
    summary: BundleSummary,
    /// A re-read's first pass.
    first_pass: Option<BundleSummary>,
}

impl<R: Read> std::fmt::Debug for BundleReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleReader")
            .field("header", &self.header)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl<R: Read> BundleReader<R> {
    /// Reads and checks the magic and the Header frame (its digest included).
    pub fn new(inner: R) -> Result<Self> {
        Self::open(inner, None)
    }

    /// A second pass over a bundle that a first pass read to its end (`first_pass` is
    /// that pass's summary), for a reader that needs the payloads the first pass could
    /// only check. Frames are parsed and checked by the same rules, but only the payloads
    /// the caller reads are digested: each must be pinned ([`Frame::pinned_payload_reader`])
    /// to the fingerprint the first pass reported ([`Frame::payload_pin`]), and the End
    /// frame checks that every frame's metadata and stored digest are the first pass's.
    /// So the second pass uses exactly the bytes the first one checked, even if the file
    /// changed in between, and skipped payloads cost no digest.
    pub fn reread(inner: R, first_pass: &BundleSummary) -> Result<Self> {
        let reader = Self::open(inner, Some(first_pass.clone()))?;
        if reader.header != first_pass.header {
            return Err(bundle_error(BundleError::BundleDigest));
        }
        Ok(reader)
    }

    fn open(mut inner: R, first_pass: Option<BundleSummary>) -> Result<Self> {
        let mut magic = [0u8; MAGIC.len()];
        let mut filled = 0;
        while filled < magic.len() {
            match inner.read(&mut magic[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(from_io(e)),
            }
        }
        // The magic names the format and its version; any version digit is read as a
        // bundle of that version. docs/protocol.md#bundle
        let looks_like_magic = magic[..filled]
            .iter()
            .zip(MAGIC)
            .enumerate()
            .all(|(i, (got, want))| got == want || (i == 14 && got.is_ascii_digit()));
        if !looks_like_magic || filled == 0 {
            return Err(bundle_error(BundleError::NotABundle));
        }
        if filled < magic.len() {
            return Err(bundle_error(BundleError::Truncated));
        }
        if magic[14] != MAGIC[14] {
            return Err(match magic[14] {
                digit @ b'0'..=b'9' => Error::UnsupportedVersion {
                    what: "bundle",
                    version: u64::from(digit - b'0'),
                },
                _ => bundle_error(BundleError::NotABundle),
            });
        }
        let mut input = Input {
            inner,
            digesting: first_pass.is_none(),
            bundle_hash: Sha256::new(),
            pending: None,
            buf: Vec::new(),
        };
        input.bundle_hash.update(magic);
        let head = input
            .read_head(0)?
            .ok_or(bundle_error(BundleError::MissingEnd))?;
        // The first frame is the Header, and only the first. docs/protocol.md#bundle
        let WireMeta::Header {
            version,
            kind,
            institution,
            created,
            cursor_from,
            cursor_to,
        } = head.meta
        else {
            return Err(bundle_error(BundleError::WrongFrame {
                index: 0,
                frame: "non-header",
                rule: "as the first frame",
            }));
        };
        if version != BUNDLE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "bundle header",
                version,
            });
        }
        if head.payload_len != 0 {
            return Err(bundle_error(BundleError::PayloadLength {
                index: 0,
                frame: "header",
            }));
        }
        input.finish_empty_frame(0, head.frame_hash)?;
        let header = BundleHeader {
            kind,
            institution,
            created,
            cursor_from,
            cursor_to,
        };
        check_header(&header)?;
        Ok(Self {
            input,
            header: header.clone(),
            frames: 1,
            state: ReaderState::Reading,
            summary: BundleSummary {
                header,
                frames: 0,
                manifests: 0,
                cases: 0,
                attachments: 0,
                follow_ups: 0,
                replies: 0,
                deletes: 0,
                payload_bytes: 0,
                digest: [0; 32],
            },
            first_pass,
        })
    }

    /// The bundle's Header.
    pub fn header(&self) -> &BundleHeader {
        &self.header
    }

    /// The summary, once [`next_frame`](Self::next_frame) has returned `None` (the End
    /// frame and everything before it verified).
    pub fn summary(&self) -> Option<&BundleSummary> {
        (self.state == ReaderState::Finished).then_some(&self.summary)
    }

    /// Reads a whole bundle in constant memory and checks every frame digest, the frame
    /// rules, the End frame's count and digest, and that nothing follows. The desk runs
    /// this before opening anything.
    pub fn verify(inner: R) -> Result<BundleSummary> {
        let mut reader = Self::new(inner)?;
        while reader.next_frame()?.is_some() {}
        Ok(reader.summary)
    }

    /// The next frame between Header and End, or `None` once the End frame has been read
    /// and checked (count, digest, nothing after it). The previous frame's payload, if not
    /// fully read, is skipped and its digest checked first.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_, R>>> {
        match self.state {
            ReaderState::Failed => {
                return Err(Error::InvalidUse("the bundle reader already failed"));
            }
            ReaderState::Finished => return Ok(None),
            ReaderState::Reading => {}
        }
        match self.advance() {
            Ok(Some((meta, index, payload_len))) => Ok(Some(Frame {
                reader: self,
                meta,
                index,
                payload_len,
            })),
            Ok(None) => {
                self.state = ReaderState::Finished;
                Ok(None)
            }
            Err(e) => {
                self.state = ReaderState::Failed;
                Err(e)
            }
        }
    }

    fn advance(&mut self) -> Result<Option<(FrameMeta, u64, u64)>> {
        self.input.finish_pending()?;
        let before_frame = self.input.bundle_hash.clone();
        let index = self.frames;
        let head = self
            .input
            .read_head(index)?
            .ok_or(bundle_error(BundleError::MissingEnd))?;
        // docs/protocol.md#bundle
        if index >= MAX_FRAMES {
            return Err(Error::TooLarge("bundle frame count"));
        }
        self.frames += 1;
        let meta = match head.meta {
            WireMeta::Header { .. } => {
                return Err(bundle_error(BundleError::WrongFrame {
                    index,
                    frame: "header",
                    rule: "after the first frame",
                }));
            }
            WireMeta::End { frames, digest } => {
                // The End frame has no payload. docs/protocol.md#bundle
                if head.payload_len != 0 {
                    return Err(bundle_error(BundleError::PayloadLength {
                        index,
                        frame: "end",
                    }));
                }
                self.input.finish_empty_frame(index, head.frame_hash)?;
                // The count catches a bundle cut at a frame boundary and given a forged
                // End. docs/protocol.md#bundle
                if frames != index {
                    return Err(bundle_error(BundleError::FrameCount {
                        declared: frames,
                        found: index,
                    }));
                }
                let declared = encoding::unhex_array::<32>(&digest, "bundle digest")?;
                let computed: [u8; 32] = before_frame.finalize().into();
                // Detects reordered, dropped or duplicated frames, each of which would
                // still pass its own digest; on a re-read, the frames, in order, and their
                // digests are those the first pass checked. docs/protocol.md#bundle
                if computed != declared
                    || self
                        .first_pass
                        .as_ref()
                        .is_some_and(|f| f.digest != declared)
                {
                    return Err(bundle_error(BundleError::BundleDigest));
                }
                self.input.check_nothing_after_end()?;
                self.summary.digest = declared;
                self.summary.frames = frames;
                return Ok(None);
            }
            WireMeta::Manifest => FrameMeta::Manifest,
            WireMeta::Case {
                case,
                day,
                mailbox_key,
                attachments,
            } => FrameMeta::Case {
                case,
                day,
                mailbox_key,
                attachments,
            },
            WireMeta::Attachment {
                case,
                upload,
                index,
            } => FrameMeta::Attachment {
                case,
                upload,
                index,
            },
            WireMeta::FollowUp { case, seq } => FrameMeta::FollowUp { case, seq },
            WireMeta::Reply => FrameMeta::Reply,
            WireMeta::Delete { case } => FrameMeta::Delete { case },
        };
        check_frame(self.header.kind, index, &meta, head.payload_len)?;
        let count = match meta {
            FrameMeta::Manifest => &mut self.summary.manifests,
            FrameMeta::Case { .. } => &mut self.summary.cases,
            FrameMeta::Attachment { .. } => &mut self.summary.attachments,
            FrameMeta::FollowUp { .. } => &mut self.summary.follow_ups,
            FrameMeta::Reply => &mut self.summary.replies,
            FrameMeta::Delete { .. } => &mut self.summary.deletes,
        };
        *count += 1;
        self.summary.payload_bytes += head.payload_len;
        self.input.pending = Some(Pending::new(
            index,
            head.payload_len,
            head.frame_hash,
            self.input.digesting,
        ));
        Ok(Some((meta, index, head.payload_len)))
    }
}

/// One frame of a bundle being read; its payload can be streamed with
/// [`payload_reader`](Self::payload_reader) or read whole with
/// [`read_payload_to_end`](Self::read_payload_to_end). Dropping it unread is fine: the
/// reader skips the payload and still checks its digest.
pub struct Frame<'a, R: Read> {
    reader: &'a mut BundleReader<R>,
    meta: FrameMeta,
    index: u64,
    payload_len: u64,
}

impl<R: Read> std::fmt::Debug for Frame<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("meta", &self.meta)
            .field("index", &self.index)
            .field("payload_len", &self.payload_len)
            .finish()
    }
}

impl<'a, R: Read> Frame<'a, R> {
    /// The frame's metadata.
    pub fn meta(&self) -> &FrameMeta {
        &self.meta
    }

    /// Its position in the bundle, the Header being frame 0.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The payload length the frame declares.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Streams the payload. The final `read` returning 0 comes only after the frame
    /// digest has been checked; a mismatch is an `InvalidData` error wrapping
    /// [`Error::Bundle`]. Bytes read are provisional until then.
    pub fn payload_reader(&mut self) -> FramePayload<'_, R> {
        FramePayload {
            reader: &mut *self.reader,
        }
    }

    /// Reads the rest of the payload into memory and checks the frame digest. A payload
    /// longer than `limit` is refused without being read (and skipped by the next
    /// [`BundleReader::next_frame`]).
    pub fn read_payload_to_end(&mut self, limit: usize) -> Result<Vec<u8>> {
        if self.payload_len > limit as u64 {
            return Err(Error::TooLarge("bundle frame payload"));
        }
        let mut out = Vec::with_capacity(self.payload_len as usize);
        self.payload_reader()
            .read_to_end(&mut out)
            .map_err(from_io)?;
        Ok(out)
    }

    /// Reads the whole payload without handing it out, checks the frame digest as a skip
    /// does, and returns its [`PayloadPin`]: the payload's SHA-256 (what an envelope's
    /// `sealed_sha256` pins, docs/protocol.md#envelope) and the fingerprint
    /// [`BundleReader::reread`] checks. Only before any of the payload was read, and only
    /// on a first pass.
    pub fn payload_pin(&mut self) -> Result<PayloadPin> {
        let reader = &mut *self.reader;
        if reader.state != ReaderState::Reading || !reader.input.digesting {
            return Err(Error::InvalidUse(
                "a payload pin needs a first pass that has not failed",
            ));
        }
        let Some(pending) = reader.input.pending.as_mut().filter(|p| p.untouched) else {
            return Err(Error::InvalidUse("part of the payload was already read"));
        };
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        pending.fingerprint = Some(Fingerprint::new(&key));
        match reader.input.finish_pending() {
            Ok(Some(Finished {
                sha256: Some(sha256),
                fingerprint: Some(fingerprint),
            })) => Ok(PayloadPin {
                sha256,
                key,
                fingerprint,
            }),
            Ok(_) => Err(Error::InvalidUse("the payload was already read")),
            Err(e) => {
                reader.state = ReaderState::Failed;
                Err(e)
            }
        }
    }

    /// Streams the payload, as [`payload_reader`](Self::payload_reader), and also checks
    /// at its end that it is the payload `pin` was made from (by the first pass, see
    /// [`BundleReader::reread`]); a mismatch is a frame digest error. The final `read`
    /// returning 0 comes only after that check. Only before any of the payload was read.
    pub fn pinned_payload_reader(&mut self, pin: &PayloadPin) -> Result<FramePayload<'_, R>> {
        let Some(pending) = self
            .reader
            .input
            .pending
            .as_mut()
            .filter(|p| p.untouched && p.pin.is_none())
        else {
            return Err(Error::InvalidUse("part of the payload was already read"));
        };
        pending.fingerprint = Some(Fingerprint::new(&pin.key));
        pending.pin = Some(pin.fingerprint);
        Ok(self.payload_reader())
    }

    /// [`read_payload_to_end`](Self::read_payload_to_end) with the pin of
    /// [`pinned_payload_reader`](Self::pinned_payload_reader).
    pub fn read_pinned_payload_to_end(
        &mut self,
        limit: usize,
        pin: &PayloadPin,
    ) -> Result<Vec<u8>> {
        if self.payload_len > limit as u64 {
            return Err(Error::TooLarge("bundle frame payload"));
        }
        let mut out = Vec::with_capacity(self.payload_len as usize);
        self.pinned_payload_reader(pin)?
            .read_to_end(&mut out)
            .map_err(from_io)?;
        Ok(out)
    }
}

/// Reads a frame's payload; see [`Frame::payload_reader`].
pub struct FramePayload<'f, R: Read> {
    reader: &'f mut BundleReader<R>,
}

impl<R: Read> std::fmt::Debug for FramePayload<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramePayload").finish_non_exhaustive()
    }
}

impl<R: Read> Read for FramePayload<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.state != ReaderState::Reading {
            return Err(to_io(Error::InvalidUse("the bundle reader already failed")));
        }
        self.reader.input.read_payload(buf).map_err(|e| {
            self.reader.state = ReaderState::Failed;
            to_io(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use proptest::prelude::*;

    fn header(kind: BundleKind) -> BundleHeader {
        BundleHeader {
            kind,
            institution: "itjen-contoh".parse().unwrap(),
            created: "2026-03-14".parse().unwrap(),
            cursor_from: 10,
            cursor_to: 42,
        }
    }

    fn export_frames() -> Vec<(FrameMeta, Vec<u8>)> {
        let case = CaseId::from_bytes([1; 16]);
        vec![
            (FrameMeta::Manifest, b"{\"manifest\":1}".to_vec()),
            (
                FrameMeta::Case {
                    case,
                    day: "2026-03-13".parse().unwrap(),
                    mailbox_key: SigningKey::generate().verifying_key(),
                    attachments: 1,
                },
                vec![7; 5000],
            ),
            (
                FrameMeta::Attachment {
                    case,
                    upload: UploadId::from_bytes([2; 16]),
                    index: 0,
                },
                (0..200_000u32).map(|i| (i % 251) as u8).collect(),
            ),
            (FrameMeta::FollowUp { case, seq: 1 }, vec![9; 100]),
            (
                FrameMeta::Delete {
                    case: CaseId::from_bytes([3; 16]),
                },
                Vec::new(),
            ),
        ]
    }

    fn reply_frames() -> Vec<(FrameMeta, Vec<u8>)> {
        vec![
            (FrameMeta::Manifest, b"{\"manifest\":2}".to_vec()),
            (FrameMeta::Reply, b"{\"sealed\":\"reply\"}".to_vec()),
            (FrameMeta::Reply, b"{\"sealed\":\"reply 2\"}".to_vec()),
            (
                FrameMeta::Delete {
                    case: CaseId::from_bytes([4; 16]),
                },
                Vec::new(),
            ),
        ]
    }

    /// The bundle bytes and the offset where each frame starts (the Header first, the End
    /// last, then the total length).
    fn write(kind: BundleKind, frames: &[(FrameMeta, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
        let mut writer = BundleWriter::new(Vec::new(), &header(kind)).unwrap();
        let mut offsets = vec![MAGIC.len()];
        for (meta, payload) in frames {
            offsets.push(writer.inner.len());
            writer.write_frame(meta, payload).unwrap();
        }
        offsets.push(writer.inner.len());
        let bytes = writer.finish().unwrap();
        offsets.push(bytes.len());
        (bytes, offsets)
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(FrameMeta, Vec<u8>)>> {
        let mut reader = BundleReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(mut frame) = reader.next_frame()? {
            let payload = frame.read_payload_to_end(usize::MAX)?;
            out.push((frame.meta().clone(), payload));
        }
        Ok(out)
    }

    fn bundle_err(result: Result<impl std::fmt::Debug>) -> BundleError {
        match result {
            Err(Error::Bundle(e)) => e,
            other => panic!("expected a bundle error, got {other:?}"),
        }
    }

    /// The export frames with a payload long enough for the threaded digests.
    fn large_export_frames() -> Vec<(FrameMeta, Vec<u8>)> {
        let mut frames = export_frames();
        frames[2].1 = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        frames
    }

    /// First pass with `payload_pin` on every payload: the pins, frame 1 first.
    fn first_pass(bytes: &[u8]) -> Result<(BundleSummary, Vec<PayloadPin>)> {
        let mut reader = BundleReader::new(bytes)?;
        let mut pins = Vec::new();
        while let Some(mut frame) = reader.next_frame()? {
            pins.push(frame.payload_pin()?);
        }
        Ok((reader.summary().cloned().unwrap(), pins))
    }

    #[test]
    fn a_fingerprint_does_not_depend_on_how_the_payload_was_split() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 256) as u8).collect();
        let key = [7u8; 32];
        let whole: [u8; 16] = Poly1305::new(&key.into()).compute_unpadded(&payload).into();
        for sizes in [
            &[10_000][..],
            &[1, 15, 16, 17, 9951],
            &[3; 3334],
            &[4096, 0, 5904],
        ] {
            let mut fingerprint = Fingerprint::new(&key);
            let mut at = 0;
            for size in sizes {
                let end = (at + size).min(payload.len());
                fingerprint.update(&payload[at..end]);
                at = end;
            }
            assert_eq!(fingerprint.finish(), whole, "{sizes:?}");
        }
        let mut other = Fingerprint::new(&key);
        other.update(&payload[..9_999]);
        assert_ne!(other.finish(), whole);
    }

    #[test]
    fn payload_digests_come_from_the_one_verifying_read() {
        for frames in [export_frames(), large_export_frames()] {
            let (bytes, offsets) = write(BundleKind::Export, &frames);
            let (summary, pins) = first_pass(&bytes).unwrap();
            assert_eq!(summary, BundleReader::verify(&bytes[..]).unwrap());
            for (i, (_, payload)) in frames.iter().enumerate() {
                assert_eq!(pins[i].sha256(), <[u8; 32]>::from(Sha256::digest(payload)));
            }
            // Damage in the large payload, in its digest, or a cut inside it.
            for at in [offsets[4] - 1, offsets[4] - 40, offsets[4] - 100_000] {
                let mut bad = bytes.clone();
                bad[at] ^= 4;
                assert_eq!(
                    bundle_err(first_pass(&bad)),
                    BundleError::FrameDigest { index: 3 }
                );
                assert_eq!(
                    bundle_err(BundleReader::verify(&bad[..])),
                    BundleError::FrameDigest { index: 3 }
                );
            }
            for cut in [offsets[4] - 1, offsets[4] - 100_000] {
                assert_eq!(
                    bundle_err(first_pass(&bytes[..cut])),
                    BundleError::Truncated
                );
            }
        }
        // Only before any of the payload was read, only on a first pass.
        let (bytes, offsets) = write(BundleKind::Export, &export_frames());
        let (summary, pins) = first_pass(&bytes).unwrap();
        let mut reader = BundleReader::new(&bytes[..]).unwrap();
        reader.next_frame().unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        frame.payload_reader().read_exact(&mut [0; 10]).unwrap();
        assert!(matches!(frame.payload_pin(), Err(Error::InvalidUse(_))));
        assert!(matches!(
            frame.pinned_payload_reader(&pins[1]),
            Err(Error::InvalidUse(_))
        ));
        let mut reader = BundleReader::reread(&bytes[..], &summary).unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        assert!(matches!(frame.payload_pin(), Err(Error::InvalidUse(_))));
        // A failed reader gives no digest.
        let mut bad = bytes.clone();
        bad[offsets[2] - 1] ^= 1;
        let mut reader = BundleReader::new(&bad[..]).unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        assert!(frame.payload_pin().is_err());
        assert!(reader.next_frame().is_err());
    }

    #[test]
    fn a_reread_hands_out_exactly_what_the_first_pass_checked() {
        for frames in [export_frames(), large_export_frames()] {
            let (bytes, _) = write(BundleKind::Export, &frames);
            let (summary, pins) = first_pass(&bytes).unwrap();
            let mut reader = BundleReader::reread(&bytes[..], &summary).unwrap();
            let mut read = Vec::new();
            while let Some(mut frame) = reader.next_frame().unwrap() {
                let pin = &pins[frame.index() as usize - 1];
                let payload = if frame.index() == 2 {
                    // Skipped: never handed out, so not digested again.
                    Vec::new()
                } else {
                    frame.read_pinned_payload_to_end(usize::MAX, pin).unwrap()
                };
                read.push(payload);
            }
            assert_eq!(reader.summary(), Some(&summary));
            for (i, (_, payload)) in frames.iter().enumerate() {
                if i != 1 {
                    assert_eq!(&read[i], payload);
                }
            }
        }
    }

    #[test]
    fn a_reread_refuses_a_file_changed_since_the_first_pass() {
        let frames = large_export_frames();
        let (bytes, offsets) = write(BundleKind::Export, &frames);
        let (summary, pins) = first_pass(&bytes).unwrap();
        let reread_all = |bytes: &[u8]| -> Result<()> {
            let mut reader = BundleReader::reread(bytes, &summary)?;
            while let Some(mut frame) = reader.next_frame()? {
                let pin = &pins[frame.index() as usize - 1];
                frame.read_pinned_payload_to_end(usize::MAX, pin)?;
            }
            Ok(())
        };
        reread_all(&bytes).unwrap();
        // Another attachment with every digest made valid again, as whoever could write
        // the file between the passes could: the pin catches it at the payload's end,
        // before the last read hands it over.
        let mut other = frames.clone();
        other[2].1[2_999_999] ^= 1;
        let (swapped, _) = write(BundleKind::Export, &other);
        BundleReader::verify(&swapped[..]).unwrap();
        assert_eq!(
            bundle_err(reread_all(&swapped)),
            BundleError::FrameDigest { index: 3 }
        );
        let mut reader = BundleReader::reread(&swapped[..], &summary).unwrap();
        reader.next_frame().unwrap();
        reader.next_frame().unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        let mut stream = frame.pinned_payload_reader(&pins[2]).unwrap();
        let mut sink = Vec::new();
        assert!(stream.read_to_end(&mut sink).is_err());
        // Changed metadata of a frame whose payload is not read: caught at the End.
        let mut other = frames.clone();
        other[3].0 = FrameMeta::FollowUp {
            case: CaseId::from_bytes([1; 16]),
            seq: 2,
        };
        let (changed, _) = write(BundleKind::Export, &other);
        let mut reader = BundleReader::reread(&changed[..], &summary).unwrap();
        let end = loop {
            match reader.next_frame() {
                Ok(Some(_)) => {}
                other => break other.map(|_| ()),
            }
        };
        assert_eq!(bundle_err(end), BundleError::BundleDigest);
        // Another header, a cut, a flipped payload byte, another bundle.
        let mut bad = bytes.clone();
        bad[offsets[4] - 100] ^= 1;
        assert_eq!(
            bundle_err(reread_all(&bad)),
            BundleError::FrameDigest { index: 3 }
        );
        assert_eq!(
            bundle_err(reread_all(&bytes[..offsets[4] + 3])),
            BundleError::Truncated
        );
        let (reply, _) = write(BundleKind::Reply, &reply_frames());
        assert_eq!(
            bundle_err(BundleReader::reread(&reply[..], &summary)),
            BundleError::BundleDigest
        );
        // Unpinned payloads are not handed out by a re-read.
        let mut reader = BundleReader::reread(&bytes[..], &summary).unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        assert!(matches!(
            frame.read_payload_to_end(usize::MAX),
            Err(Error::InvalidUse(_))
        ));
    }

    #[test]
    fn round_trip_with_every_frame_kind() {
        for (kind, frames) in [
            (BundleKind::Export, export_frames()),
            (BundleKind::Reply, reply_frames()),
        ] {
            let (bytes, _) = write(kind, &frames);
            assert!(bytes.starts_with(b"PELUIT-BUNDLE\n2\n"));
            assert_eq!(read_all(&bytes).unwrap(), frames);
            let summary = BundleReader::verify(&bytes[..]).unwrap();
            assert_eq!(summary.header, header(kind));
            assert_eq!(summary.frames, frames.len() as u64 + 1);
            let payload: usize = frames.iter().map(|(_, p)| p.len()).sum();
            assert_eq!(summary.payload_bytes, payload as u64);
            assert_eq!(
                summary.digest,
                <[u8; 32]>::from(Sha256::digest(without_payloads(
                    &bytes[..bytes.len() - end_len(&bytes)]
                )))
            );
        }
        let summary =
            BundleReader::verify(&write(BundleKind::Export, &export_frames()).0[..]).unwrap();
        assert_eq!(
            (summary.manifests, summary.cases, summary.attachments),
            (1, 1, 1)
        );
        assert_eq!(
            (summary.follow_ups, summary.replies, summary.deletes),
            (1, 0, 1)
        );
    }

    /// `bytes` (magic and whole frames) with every payload left out: what the End digest
    /// covers.
    fn without_payloads(bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes[..MAGIC.len()].to_vec();
        let mut at = MAGIC.len();
        while at < bytes.len() {
            let meta_len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let payload_at = at + 4 + meta_len + 8;
            let payload_len =
                u64::from_be_bytes(bytes[payload_at - 8..payload_at].try_into().unwrap());
            let digest_at = payload_at + payload_len as usize;
            out.extend_from_slice(&bytes[at..payload_at]);
            out.extend_from_slice(&bytes[digest_at..digest_at + DIGEST_LEN]);
            at = digest_at + DIGEST_LEN;
        }
        out
    }

    /// Length of the End frame at the end of `bytes`: its metadata starts with
    /// `{"frame":"end",` after the 4-byte length.
    fn end_len(bytes: &[u8]) -> usize {
        let pos = bytes
            .windows(15)
            .rposition(|w| w == b"{\"frame\":\"end\",")
            .unwrap();
        bytes.len() - (pos - 4)
    }

    #[test]
    fn partial_and_skipped_payloads_are_still_checked() {
        let (bytes, offsets) = write(BundleKind::Export, &export_frames());
        let mut reader = BundleReader::new(&bytes[..]).unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        let mut first = [0u8; 3];
        frame.payload_reader().read_exact(&mut first).unwrap();
        assert_eq!(&first, b"{\"m");
        // Skip the case frame entirely; read the attachment in small pieces.
        assert!(matches!(
            reader.next_frame().unwrap().unwrap().meta(),
            FrameMeta::Case { .. }
        ));
        let mut frame = reader.next_frame().unwrap().unwrap();
        assert!(matches!(
            frame.read_payload_to_end(10),
            Err(Error::TooLarge(_))
        ));
        let mut piece = [0u8; 1000];
        frame.payload_reader().read_exact(&mut piece).unwrap();
        while reader.next_frame().unwrap().is_some() {}
        assert!(reader.summary().is_some());

        // Corrupt the middle of the skipped case payload: the skip catches it.
        let mut bad = bytes.clone();
        bad[offsets[2] + 200] ^= 1;
        let mut reader = BundleReader::new(&bad[..]).unwrap();
        reader.next_frame().unwrap().unwrap();
        reader.next_frame().unwrap().unwrap();
        assert_eq!(
            bundle_err(reader.next_frame().map(|f| f.is_some())),
            BundleError::FrameDigest { index: 2 }
        );
        assert!(reader.next_frame().is_err(), "a failed reader stays failed");

        // Streaming the corrupted payload: the last read reports the digest mismatch.
        let mut reader = BundleReader::new(&bad[..]).unwrap();
        reader.next_frame().unwrap().unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        let mut sink = Vec::new();
        let error = frame.payload_reader().read_to_end(&mut sink).unwrap_err();
        assert_eq!(
            bundle_err(Err::<(), _>(from_io(error))),
            BundleError::FrameDigest { index: 2 }
        );
        assert!(matches!(
            frame.read_payload_to_end(1 << 20),
            Err(Error::Bundle(_) | Error::InvalidUse(_))
        ));
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let (bytes, offsets) = write(BundleKind::Reply, &reply_frames());
        for cut in 0..bytes.len() {
            let result = BundleReader::verify(&bytes[..cut]);
            match result {
                Err(Error::Bundle(BundleError::MissingEnd)) => {
                    assert!(
                        offsets.contains(&cut),
                        "clean end only at a boundary: {cut}"
                    )
                }
                Err(Error::Bundle(BundleError::Truncated | BundleError::NotABundle)) => {
                    assert!(!offsets[1..].contains(&cut), "{cut}")
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // And for a bundle with a large payload, at every frame boundary and mid-frame.
        let (bytes, offsets) = write(BundleKind::Export, &export_frames());
        for &boundary in &offsets[..offsets.len() - 1] {
            for cut in [boundary, boundary + 1, boundary + 13, boundary + 1000] {
                assert!(BundleReader::verify(&bytes[..cut.min(bytes.len() - 1)]).is_err());
            }
        }
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let (bytes, _) = write(BundleKind::Reply, &reply_frames());
        for pos in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x20;
            assert!(BundleReader::verify(&bad[..]).is_err(), "flip at {pos}");
        }
        // In the digest of the case frame of an export bundle: located to that frame.
        let (bytes, offsets_e) = write(BundleKind::Export, &export_frames());
        let mut bad = bytes.clone();
        bad[offsets_e[3] - 1] ^= 1;
        assert_eq!(
            bundle_err(BundleReader::verify(&bad[..])),
            BundleError::FrameDigest { index: 2 }
        );
    }

    #[test]
    fn reordered_dropped_or_duplicated_frames_are_refused() {
        let (bytes, o) = write(BundleKind::Reply, &reply_frames());
        // o: [header, manifest, reply, reply2, delete, end, total]
        let frame = |i: usize| &bytes[o[i]..o[i + 1]];
        let build = |order: &[usize]| {
            let mut out = bytes[..o[1]].to_vec();
            for &i in order {
                out.extend_from_slice(frame(i));
            }
            out
        };
        assert!(BundleReader::verify(&build(&[1, 2, 3, 4, 5])[..]).is_ok());
        assert_eq!(
            bundle_err(BundleReader::verify(&build(&[1, 3, 2, 4, 5])[..])),
            BundleError::BundleDigest
        );
        assert_eq!(
            bundle_err(BundleReader::verify(&build(&[1, 2, 4, 5])[..])),
            BundleError::FrameCount {
                declared: 5,
                found: 4
            }
        );
        assert_eq!(
            bundle_err(BundleReader::verify(&build(&[1, 2, 2, 3, 4, 5])[..])),
            BundleError::FrameCount {
                declared: 5,
                found: 6
            }
        );
        // The manifest must come first.
        assert!(matches!(
            bundle_err(BundleReader::verify(&build(&[2, 1, 3, 4, 5])[..])),
            BundleError::WrongFrame { index: 2, .. }
        ));
        // A second header.
        let mut twice = bytes[..o[1]].to_vec();
        twice.extend_from_slice(frame(0));
        assert!(matches!(
            bundle_err(BundleReader::verify(&twice[..])),
            BundleError::WrongFrame { index: 1, .. }
        ));
        // No header: a bundle that starts with another frame.
        let mut headless = MAGIC.to_vec();
        headless.extend_from_slice(frame(1));
        assert!(matches!(
            bundle_err(BundleReader::verify(&headless[..])),
            BundleError::WrongFrame { index: 0, .. }
        ));
        // Data after the End frame, even one byte, even another End frame.
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            bundle_err(BundleReader::verify(&extra[..])),
            BundleError::DataAfterEnd
        );
        let mut double_end = bytes.clone();
        double_end.extend_from_slice(frame(5));
        assert_eq!(
            bundle_err(BundleReader::verify(&double_end[..])),
            BundleError::DataAfterEnd
        );
    }

    #[test]
    fn frames_of_the_wrong_kind_are_refused() {
        let mut writer = BundleWriter::new(Vec::new(), &header(BundleKind::Export)).unwrap();
        assert!(matches!(
            writer.write_frame(&FrameMeta::Reply, b"x"),
            Err(Error::Bundle(BundleError::WrongFrame { .. }))
        ));
        let mut writer = BundleWriter::new(Vec::new(), &header(BundleKind::Reply)).unwrap();
        let case = CaseId::from_bytes([1; 16]);
        assert!(matches!(
            writer.write_frame(&FrameMeta::FollowUp { case, seq: 1 }, b"x"),
            Err(Error::Bundle(BundleError::WrongFrame { .. }))
        ));
        writer.write_frame(&FrameMeta::Reply, b"x").unwrap();
        assert!(matches!(
            writer.write_frame(&FrameMeta::Manifest, b"m"),
            Err(Error::Bundle(BundleError::WrongFrame { .. }))
        ));
        assert!(matches!(
            writer.write_frame(&FrameMeta::Delete { case }, b"x"),
            Err(Error::Bundle(BundleError::PayloadLength { .. }))
        ));
        assert!(matches!(
            writer.write_frame(&FrameMeta::Reply, b""),
            Err(Error::Bundle(BundleError::PayloadLength { .. }))
        ));
        let mut fresh = BundleWriter::new(Vec::new(), &header(BundleKind::Reply)).unwrap();
        assert!(matches!(
            fresh.write_frame(&FrameMeta::Manifest, &vec![0; MAX_MANIFEST_LEN + 1]),
            Err(Error::TooLarge(_))
        ));
        // Refused frames leave the writer usable; the bundle verifies.
        let bytes = writer.finish().unwrap();
        assert_eq!(BundleReader::verify(&bytes[..]).unwrap().replies, 1);

        // A reply bundle relabelled as an export bundle (header rewritten, digests fixed
        // by a hostile writer) still fails on the Reply frame.
        let relabelled = rewrite_header_kind(&bytes);
        assert!(matches!(
            bundle_err(BundleReader::verify(&relabelled[..])),
            BundleError::WrongFrame { index: 1, .. }
        ));
    }

    /// Rebuilds `bytes` (a reply bundle) with the header kind set to export and every
    /// digest recomputed, as an attacker with the format could.
    fn rewrite_header_kind(bytes: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let mut rest = &bytes[MAGIC.len()..];
        let mut frames = 0u64;
        while !rest.is_empty() {
            let meta_len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let mut meta = rest[4..4 + meta_len].to_vec();
            let at = 4 + meta_len;
            let payload_len = u64::from_be_bytes(rest[at..at + 8].try_into().unwrap()) as usize;
            let payload = &rest[at + 8..at + 8 + payload_len];
            rest = &rest[at + 8 + payload_len + 32..];
            let text = String::from_utf8(meta.clone()).unwrap();
            if text.starts_with("{\"frame\":\"header\"") {
                meta = text
                    .replace("\"kind\":\"reply\"", "\"kind\":\"export\"")
                    .into_bytes();
            }
            if text.starts_with("{\"frame\":\"end\"") {
                let digest = hex::encode(Sha256::digest(without_payloads(&out)));
                meta = format!("{{\"frame\":\"end\",\"frames\":{frames},\"digest\":\"{digest}\"}}")
                    .into_bytes();
            }
            let mut head = (meta.len() as u32).to_be_bytes().to_vec();
            head.extend_from_slice(&meta);
            head.extend_from_slice(&(payload_len as u64).to_be_bytes());
            let digest = Sha256::new()
                .chain_update(&head)
                .chain_update(Sha256::digest(payload))
                .finalize();
            out.extend_from_slice(&head);
            out.extend_from_slice(payload);
            out.extend_from_slice(&digest);
            frames += 1;
        }
        out
    }

    #[test]
    fn streamed_payload_length_is_enforced() {
        let case = CaseId::from_bytes([1; 16]);
        let meta = FrameMeta::Attachment {
            case,
            upload: UploadId::from_bytes([2; 16]),
            index: 0,
        };
        let mut writer = BundleWriter::new(Vec::new(), &header(BundleKind::Export)).unwrap();
        writer
            .write_frame_streamed(&meta, 300_000, io::repeat(5).take(300_000))
            .unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(
            BundleReader::verify(&bytes[..]).unwrap().payload_bytes,
            300_000
        );

        let mut short = BundleWriter::new(Vec::new(), &header(BundleKind::Export)).unwrap();
        assert!(matches!(
            short.write_frame_streamed(&meta, 300_000, io::repeat(5).take(299_999)),
            Err(Error::InvalidUse(_))
        ));
        assert!(
            short.finish().is_err(),
            "a writer that failed mid-frame is unusable"
        );
        let mut long = BundleWriter::new(Vec::new(), &header(BundleKind::Export)).unwrap();
        assert!(matches!(
            long.write_frame_streamed(&meta, 300_000, io::repeat(5).take(300_001)),
            Err(Error::InvalidUse(_))
        ));
    }

    #[test]
    fn headers_and_metadata_are_strict() {
        let mut backwards = header(BundleKind::Export);
        backwards.cursor_from = 50;
        assert!(BundleWriter::new(Vec::new(), &backwards).is_err());
        let (bytes, _) = write(BundleKind::Reply, &reply_frames());
        assert_eq!(
            bundle_err(BundleReader::new(&b"PELUIT-BUNDLE\n"[..])),
            BundleError::Truncated
        );
        for not_a_bundle in [&b"age-encryption.org/v1\n"[..], b"", b"PELUIX"] {
            assert_eq!(
                bundle_err(BundleReader::new(not_a_bundle)),
                BundleError::NotABundle
            );
        }
        let mut v3 = bytes.clone();
        v3[14] = b'3';
        assert!(matches!(
            BundleReader::new(&v3[..]),
            Err(Error::UnsupportedVersion { version: 3, .. })
        ));
        // An unknown frame kind is named as such.
        assert!(matches!(
            WireMeta::parse(b"{\"frame\":\"video\"}", 3),
            Err(Error::Bundle(BundleError::UnknownFrameKind { index: 3 }))
        ));
        for bad in [
            &b"{\"frame\":\"reply\",\"x\":1}"[..],
            b"{\"frame\": \"reply\"}",
            b"{\"frame\":\"delete\"}",
            b"{\"case\":\"01010101010101010101010101010101\",\"frame\":\"delete\"}",
            b"[]",
        ] {
            assert!(
                matches!(WireMeta::parse(bad, 1), Err(Error::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // An oversized metadata length is refused before anything is allocated.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&(MAX_META_LEN + 1).to_be_bytes());
        assert!(matches!(
            BundleReader::new(&huge[..]),
            Err(Error::TooLarge(_))
        ));
    }

    fn any_meta() -> impl Strategy<Value = FrameMeta> {
        let case = any::<[u8; 16]>().prop_map(CaseId::from_bytes);
        let key = SigningKey::generate().verifying_key();
        prop_oneof![
            (case.clone(), 1u8..=28, any::<u32>()).prop_map(move |(case, d, attachments)| {
                FrameMeta::Case {
                    case,
                    day: Day::new(2026, 2, d).unwrap(),
                    mailbox_key: key,
                    attachments,
                }
            }),
            (case.clone(), any::<[u8; 16]>(), any::<u32>()).prop_map(|(case, u, index)| {
                FrameMeta::Attachment {
                    case,
                    upload: UploadId::from_bytes(u),
                    index,
                }
            }),
            (case.clone(), any::<u32>()).prop_map(|(case, seq)| FrameMeta::FollowUp { case, seq }),
            Just(FrameMeta::Reply),
            case.prop_map(|case| FrameMeta::Delete { case }),
        ]
    }

    proptest! {
        #[test]
        fn random_frame_lists_round_trip(
            export in any::<bool>(),
            manifest in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..100)),
            frames in proptest::collection::vec(
                (any_meta(), proptest::collection::vec(any::<u8>(), 1..300)),
                0..12,
            ),
        ) {
            let kind = if export { BundleKind::Export } else { BundleKind::Reply };
            let mut expected: Vec<(FrameMeta, Vec<u8>)> = manifest
                .into_iter()
                .map(|m| (FrameMeta::Manifest, m))
                .collect();
            for (meta, payload) in frames {
                let allowed = match &meta {
                    FrameMeta::Reply => kind == BundleKind::Reply,
                    FrameMeta::Delete { .. } => true,
                    _ => kind == BundleKind::Export,
                };
                if allowed {
                    let payload = if meta.max_payload_len().is_some() { payload } else { Vec::new() };
                    expected.push((meta, payload));
                }
            }
            let (bytes, _) = write(kind, &expected);
            prop_assert_eq!(read_all(&bytes).unwrap(), expected.clone());
            let summary = BundleReader::verify(&bytes[..]).unwrap();
            prop_assert_eq!(summary.frames, expected.len() as u64 + 1);
        }
    }
}
