//! `import BUNDLE`: verify an export bundle completely (every frame, the End frame, the
//! manifest) before opening anything, then open each new case with the desk's identity
//! and write it atomically into the case folder (docs/desk.md#import).
//!
//! Pass 1 reads the whole bundle through proto's `BundleReader` (all framing checks),
//! verifies the manifest it carries and keeps each payload's pin (its SHA-256 and a secret
//! fingerprint) from that same read. Pass 2 re-reads the bundle with every payload it uses
//! pinned, opens
//! cases into temporary folders, streams attachments through `StreamOpener` (a
//! bring-your-own file through `UnpaddedStreamOpener`; on a second thread, while this
//! one reads) into temporary files, and renames each case into place only if all of it
//! checked out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use indicatif::ProgressBar;
use peluit_proto::bundle::{
    BundleError, BundleKind, BundleReader, BundleSummary, Frame, FrameMeta, PayloadPin,
};
use peluit_proto::day::Day;
use peluit_proto::envelope::{open_follow_up, open_report};
use peluit_proto::ids::{CaseId, UploadId};
use peluit_proto::keys::{SealIdentity, VerifyingKey};
use peluit_proto::limits::{MAX_ENVELOPE_LEN, MAX_MANIFEST_LEN};
use peluit_proto::manifest::{FormDefinition, SignedManifest, VerifyPolicy};
use peluit_proto::seal::{StreamOpener, UnpaddedStreamOpener};
use peluit_proto::sealed::SealedMessage;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::casefile::{
    AttachmentMeta, CaseMeta, MessageMeta, OWN_CIPHERTEXT, attachment_entries, render_report,
};
use crate::desk::{Desk, manifest_error, to_json};
use crate::error::{DeskError, DeskResult, describe_proto};
use crate::fsutil;
use crate::html;

/// Read buffer for the bundle file. Payload reads of this size or more bypass it once it
/// is empty, so it is no larger than the pieces below (and proto's digest pieces).
const READ_BUFFER: usize = 128 * 1024;
/// Ciphertext pieces handed to the decrypting thread, and how many may wait: memory
/// stays about 1 MiB whatever the attachment's size.
const PIECE: usize = 128 * 1024;
const PIECES_WAITING: usize = 4;
/// Plaintext written since the last write-back: the flush before a case is renamed into
/// place then has little left to do.
const WRITE_BACK_EVERY: u64 = 64 * 1024 * 1024;

/// The upload of a bring-your-own file not yet seen: the case frame does not name it, so
/// its attachment frame binds it. docs/desk.md#import
fn unbound_upload() -> UploadId {
    UploadId::from_bytes([0; 16])
}

/// A case (or part of one) that could not be imported; everything else was.
#[derive(Debug, Clone, Serialize)]
pub struct CaseFailure {
    /// The case.
    pub case: CaseId,
    /// Stable code.
    pub code: &'static str,
    /// What went wrong, in one line (never plaintext).
    pub what: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportOutcome {
    /// SHA-256 of the bundle (its End frame digest), hex.
    pub bundle_digest: String,
    /// The bundle had been imported before.
    pub already_imported: bool,
    /// Cases written by this import.
    pub new_cases: Vec<CaseId>,
    /// Cases the desk already had.
    pub known_cases: usize,
    /// Follow-ups added to cases.
    pub new_follow_ups: usize,
    /// Attachment files written.
    pub new_attachments: usize,
    /// Cases the server reported withdrawn.
    pub withdrawn: Vec<CaseId>,
    /// The serial of a newer manifest installed from the bundle.
    pub installed_manifest: Option<u64>,
    /// Notes that need no action now.
    pub warnings: Vec<String>,
    /// What could not be imported.
    pub failures: Vec<CaseFailure>,
}

/// Counts bytes read into the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Reads the ciphertext pieces the reading thread sends; the end of the queue is the
/// end of the stream. Spent pieces go back for reuse.
struct Pieces {
    queue: mpsc::Receiver<Vec<u8>>,
    spent: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            let Ok(next) = self.queue.recv() else {
                return Ok(0);
            };
            let spent = std::mem::replace(&mut self.current, next);
            // The reading thread may have finished already; the piece is then dropped.
            let _ = self.spent.send(spent);
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

type BundleFile = BufReader<Counting<File>>;

fn open_bundle_file(path: &Path, bar: &ProgressBar) -> DeskResult<BundleFile> {
    let file = File::open(path).map_err(|e| {
        let mut error = DeskError::io("open the bundle", path, &e);
        error.next = "check the path of the bundle on the USB stick".to_owned();
        error
    })?;
    let counting = Counting {
        inner: file,
        bar: bar.clone(),
    };
    Ok(BufReader::with_capacity(READ_BUFFER, counting))
}

fn open_bundle(path: &Path, bar: &ProgressBar) -> DeskResult<BundleReader<BundleFile>> {
    BundleReader::new(open_bundle_file(path, bar)?).map_err(|e| bundle_error(&e))
}

/// The second pass: the bundle the first pass verified, every payload it hands out
/// checked against the first pass's digest (a file changed in between is refused).
fn reopen_bundle(
    path: &Path,
    bar: &ProgressBar,
    first_pass: &BundleSummary,
) -> DeskResult<BundleReader<BundleFile>> {
    BundleReader::reread(open_bundle_file(path, bar)?, first_pass).map_err(|e| bundle_error(&e))
}

/// A framing failure: the whole bundle is refused and nothing is written.
fn bundle_error(error: &peluit_proto::Error) -> DeskError {
    match error {
        peluit_proto::Error::Bundle(BundleError::Truncated | BundleError::MissingEnd) => {
            DeskError::new(
                "incomplete-bundle",
                format!("the bundle is incomplete: {error}"),
                "copy it again from the courier's stick (or pull again); nothing was written",
            )
        }
        peluit_proto::Error::Bundle(BundleError::NotABundle) => DeskError::new(
            "not-a-bundle",
            "the file is not a Peluit bundle",
            "check the path: import takes the bundle file that `peluit-courier pull` wrote",
        ),
        peluit_proto::Error::Bundle(BundleError::Io(kind)) => DeskError::new(
            "io",
            format!("reading the bundle failed: {kind}"),
            "check the USB stick and try again; nothing was written",
        ),
        peluit_proto::Error::UnsupportedVersion { .. } => DeskError::new(
            "unsupported-bundle",
            format!("the bundle has a format this desk does not read: {error}"),
            "update peluit-investigator on this desk; nothing was written",
        ),
        _ => DeskError::new(
            "damaged-bundle",
            format!("the bundle is damaged or was altered: {error}"),
            "do not use this copy: pull a fresh bundle with the courier; nothing was written",
        ),
    }
}

/// What pass 1 learnt.
struct Verified {
    summary: BundleSummary,
    cursor_to: u64,
    manifest: Option<Vec<u8>>,
    /// Frame index → that frame's payload pin (every frame pass 2 reads).
    payload_pins: HashMap<u64, PayloadPin>,
    total_len: u64,
}

impl Verified {
    /// The pass-1 pin of frame `index`'s payload.
    fn pin(&self, index: u64) -> DeskResult<&PayloadPin> {
        self.payload_pins
            .get(&index)
            .ok_or_else(|| bundle_error(&peluit_proto::Error::Bundle(BundleError::BundleDigest)))
    }
}

fn pass_verify(desk: &Desk, path: &Path, bar: &ProgressBar) -> DeskResult<Verified> {
    let mut reader = open_bundle(path, bar)?;
    let header = reader.header().clone();
    // An export bundle of this desk's institution only. docs/protocol.md#bundle
    if header.kind != BundleKind::Export {
        return Err(DeskError::new(
            "not-an-export-bundle",
            "this is a reply bundle, written by a desk",
            "import takes export bundles from `peluit-courier pull`; reply bundles go to the \
             server with `peluit-courier push`; nothing was written",
        ));
    }
    if header.institution != desk.config().institution {
        return Err(DeskError::new(
            "wrong-institution",
            format!(
                "the bundle is for {}, this desk serves {}",
                header.institution,
                desk.config().institution
            ),
            "use the bundle pulled for this institution; nothing was written",
        ));
    }
    let mut manifest = None;
    let mut payload_pins = HashMap::new();
    while let Some(mut frame) = reader.next_frame().map_err(|e| bundle_error(&e))? {
        match frame.meta() {
            FrameMeta::Manifest => {
                manifest = Some(
                    frame
                        .read_payload_to_end(MAX_MANIFEST_LEN)
                        .map_err(|e| bundle_error(&e))?,
                );
            }
            FrameMeta::Delete { .. } | FrameMeta::Reply => {}
            // The reader digests the payload once for the frame, the bundle and the
            // attachment pins. docs/protocol.md#bundle
            FrameMeta::Case { .. } | FrameMeta::Attachment { .. } | FrameMeta::FollowUp { .. } => {
                let index = frame.index();
                let pin = frame.payload_pin().map_err(|e| bundle_error(&e))?;
                payload_pins.insert(index, pin);
            }
        }
    }
    let summary = reader
        .summary()
        .cloned()
        .ok_or_else(|| bundle_error(&peluit_proto::Error::Bundle(BundleError::MissingEnd)))?;
    Ok(Verified {
        summary,
        cursor_to: header.cursor_to,
        manifest,
        payload_pins,
        total_len: bar.position(),
    })
}

/// Recovers the protocol error a payload reader carries in an `io::Error`.
fn from_io(error: io::Error) -> peluit_proto::Error {
    let kind = error.kind();
    match error
        .into_inner()
        .map(|inner| inner.downcast::<peluit_proto::Error>())
    {
        Some(Ok(inner)) => *inner,
        _ if kind == io::ErrorKind::UnexpectedEof => {
            peluit_proto::Error::Bundle(BundleError::Truncated)
        }
        _ => peluit_proto::Error::Bundle(BundleError::Io(kind)),
    }
}

/// Verifies the manifest the bundle carries and adds it to the desk's history; installs
/// it as current if it is newer and valid today.
fn take_manifest(
    desk: &Desk,
    bytes: &[u8],
    today: Day,
    outcome: &mut ImportOutcome,
) -> DeskResult<u64> {
    let signed = SignedManifest::from_json(bytes).map_err(|e| manifest_error(&e))?;
    // Only the pinned key vouches for keys. docs/protocol.md#manifest
    let verified = desk.verify_signature_and_rules(&signed)?;
    let current = desk.manifest_history()?.last().map(|m| m.manifest().serial);
    let serial = verified.serial();
    if current.is_some_and(|c| serial <= c) {
        // An older or the same manifest: keep it for the form checks of older reports.
        desk.store_manifest(&signed)?;
        return Ok(serial);
    }
    match signed.verify(&VerifyPolicy::new(desk.config().manifest_key, today)) {
        Ok(_) => {
            desk.store_manifest(&signed)?;
            outcome.installed_manifest = Some(serial);
        }
        Err(e) => outcome.warnings.push(format!(
            "the bundle's manifest (serial {serial}) was not installed: {}",
            describe_proto(&e).1
        )),
    }
    Ok(serial)
}

/// A case being written by this import, or an existing case being added to.
struct Staged {
    dir: PathBuf,
    meta: CaseMeta,
    is_new: bool,
    changed: bool,
    failed: Option<CaseFailure>,
}

struct Importer<'a> {
    desk: &'a Desk,
    identities: &'a [SealIdentity],
    forms: Vec<FormDefinition>,
    verified: Verified,
    staged: BTreeMap<CaseId, Staged>,
    failed_cases: BTreeSet<CaseId>,
    deferred: BTreeSet<u64>,
    outcome: ImportOutcome,
}

fn failure(case: CaseId, error: &peluit_proto::Error) -> CaseFailure {
    let (code, what) = describe_proto(error);
    CaseFailure { case, code, what }
}

/// The staged case `case`, loading an existing case folder on first use.
fn stage<'s>(
    desk: &Desk,
    staged: &'s mut BTreeMap<CaseId, Staged>,
    case: CaseId,
) -> DeskResult<Option<&'s mut Staged>> {
    match staged.entry(case) {
        std::collections::btree_map::Entry::Occupied(entry) => Ok(Some(entry.into_mut())),
        std::collections::btree_map::Entry::Vacant(entry) => {
            let dir = desk.case_dir(case);
            if !dir.exists() {
                return Ok(None);
            }
            let meta = CaseMeta::load(&dir)?;
            Ok(Some(entry.insert(Staged {
                dir,
                meta,
                is_new: false,
                changed: false,
                failed: None,
            })))
        }
    }
}

impl Importer<'_> {
    fn frame<R: Read>(&mut self, frame: &mut Frame<'_, R>) -> DeskResult<()> {
        match frame.meta().clone() {
            FrameMeta::Case {
                case,
                day,
                mailbox_key,
                attachments,
            } => {
                if self.staged.contains_key(&case) || self.desk.case_dir(case).exists() {
                    self.outcome.known_cases += 1;
                    return Ok(());
                }
                let pin = self.verified.pin(frame.index())?;
                let payload = frame
                    .read_pinned_payload_to_end(MAX_ENVELOPE_LEN, pin)
                    .map_err(|e| bundle_error(&e))?;
                if let Err(f) = self.open_case(case, day, mailbox_key, attachments, payload) {
                    self.failed_cases.insert(case);
                    self.outcome.failures.push(f);
                }
            }
            FrameMeta::Attachment {
                case,
                upload,
                index,
            } => {
                if self.failed_cases.contains(&case) {
                    return Ok(());
                }
                let frame_index = frame.index();
                let expected = self.verified.pin(frame_index)?;
                let Some(staged) = stage(self.desk, &mut self.staged, case)? else {
                    // Its case comes later in the bundle: a third pass takes it.
                    self.deferred.insert(frame_index);
                    return Ok(());
                };
                if staged.failed.is_some() {
                    return Ok(());
                }
                let position = staged
                    .meta
                    .attachments
                    .iter()
                    .position(|a| a.upload == upload)
                    .or_else(|| {
                        // A large bring-your-own file: the case's one attachment, whichever
                        // upload carries it. docs/desk.md#import
                        staged.meta.attachments.iter().position(|a| {
                            a.source == OWN_CIPHERTEXT && a.upload == unbound_upload() && !a.stored
                        })
                    });
                let Some(position) = position else {
                    let f = CaseFailure {
                        case,
                        code: "unlisted-attachment",
                        what: "the bundle carries an attachment its report does not list".into(),
                    };
                    fail(staged, f, &mut self.outcome.failures);
                    return Ok(());
                };
                let entry = staged.meta.attachments[position].clone();
                if entry.stored {
                    return Ok(());
                }
                // The frame's position must be the envelope's. docs/protocol.md#bundle
                if (entry.source == "report" || entry.source == OWN_CIPHERTEXT)
                    && entry.index != index
                {
                    let f = CaseFailure {
                        case,
                        code: "attachment-mismatch",
                        what: "an attachment frame names the wrong position in its report".into(),
                    };
                    fail(staged, f, &mut self.outcome.failures);
                    return Ok(());
                }
                let dir = staged.dir.join("attachments");
                match stream_attachment(
                    frame,
                    self.identities,
                    &entry,
                    expected,
                    &dir,
                    !staged.is_new,
                )? {
                    Ok(size) => {
                        let kept = &mut staged.meta.attachments[position];
                        if kept.source == OWN_CIPHERTEXT {
                            // Known only now: what the bundle pinned and what opened.
                            kept.upload = upload;
                            kept.size = size;
                            kept.sealed_sha256 = hex::encode(expected.sha256());
                        }
                        kept.stored = true;
                        staged.changed = true;
                        self.outcome.new_attachments += 1;
                    }
                    Err(error) => {
                        let (code, what) = describe_proto(&error);
                        let f = CaseFailure {
                            case,
                            code,
                            what: format!("attachment {}: {what}", entry.index + 1),
                        };
                        fail(staged, f, &mut self.outcome.failures);
                    }
                }
            }
            FrameMeta::FollowUp { case, seq } => {
                if self.failed_cases.contains(&case) {
                    return Ok(());
                }
                let identities = self.identities;
                let institution = self.desk.config().institution.clone();
                let Some(staged) = stage(self.desk, &mut self.staged, case)? else {
                    self.outcome.failures.push(CaseFailure {
                        case,
                        code: "unknown-case",
                        what: "a follow-up for a case this desk does not have".into(),
                    });
                    return Ok(());
                };
                if staged.failed.is_some() || staged.meta.has_follow_up(seq) {
                    return Ok(());
                }
                let pin = self.verified.pin(frame.index())?;
                let payload = frame
                    .read_pinned_payload_to_end(MAX_ENVELOPE_LEN, pin)
                    .map_err(|e| bundle_error(&e))?;
                let sealed = SealedMessage::from_stored(payload);
                let follow_up = match open_follow_up(&sealed, identities) {
                    Ok(f) if f.institution == institution => f,
                    Ok(_) => {
                        let f = failure(
                            case,
                            &peluit_proto::Error::IntegrityFailed(
                                "follow-up for another institution",
                            ),
                        );
                        self.outcome.failures.push(f);
                        return Ok(());
                    }
                    Err(e) => {
                        self.outcome.failures.push(failure(case, &e));
                        return Ok(());
                    }
                };
                let file = staged.meta.next_message_file("follow-up", follow_up.date);
                let mut text = format!(
                    "Tindak lanjut dari pelapor / Follow-up from the reporter #{seq}\n\
                     Tanggal / Date: {}\n\n{}\n",
                    follow_up.date, follow_up.text
                );
                let mut new_entries = attachment_entries(
                    &follow_up.attachments,
                    &format!("follow-up {seq}"),
                    &staged.meta.attachments,
                );
                if !new_entries.is_empty() {
                    text.push_str("\nLampiran / Attachments:\n");
                    for a in &new_entries {
                        text.push_str(&format!(
                            "- {} -> attachments/{}\n",
                            a.original_name, a.file
                        ));
                    }
                }
                let messages = staged.dir.join("messages");
                fsutil::create_dir(&messages)?;
                let text = Zeroizing::new(text);
                fsutil::write_atomic(&messages.join(&file), text.as_bytes())?;
                staged.meta.messages.push(MessageMeta {
                    file,
                    kind: "follow-up".into(),
                    seq,
                    date: follow_up.date,
                });
                staged.meta.attachments.append(&mut new_entries);
                staged.meta.unread_follow_ups += 1;
                staged.changed = true;
                self.outcome.new_follow_ups += 1;
            }
            FrameMeta::Delete { case } => {
                if let Some(staged) = stage(self.desk, &mut self.staged, case)?
                    && !staged.meta.withdrawn
                {
                    staged.meta.withdrawn = true;
                    staged.changed = true;
                    self.outcome.withdrawn.push(case);
                }
            }
            FrameMeta::Manifest | FrameMeta::Reply => {}
        }
        Ok(())
    }

    fn open_case(
        &mut self,
        case: CaseId,
        day: Day,
        mailbox_key: VerifyingKey,
        attachments: u32,
        payload: Vec<u8>,
    ) -> Result<(), CaseFailure> {
        let sealed = SealedMessage::from_stored(payload);
        let report = match open_report(&sealed, self.identities) {
            Ok(report) => report,
            // Not a Peluit envelope, but perhaps a file sealed with any age tool and sent
            // through the bring-your-own-ciphertext form. docs/desk.md#import
            Err(
                e @ (peluit_proto::Error::DecryptionFailed
                | peluit_proto::Error::Malformed(_)
                | peluit_proto::Error::TooLarge(_)),
            ) => {
                return self.open_own_ciphertext(case, day, mailbox_key, attachments, &sealed, &e);
            }
            Err(e) => return Err(failure(case, &e)),
        };
        let refuse =
            |what: &'static str| failure(case, &peluit_proto::Error::IntegrityFailed(what));
        // The report must be addressed to this institution. docs/protocol.md#envelope
        if report.institution != self.desk.config().institution {
            return Err(refuse("the report is addressed to another institution"));
        }
        // Replies go to the mailbox the server files them under: it must be the
        // reporter's own. docs/protocol.md#bundle
        if report.mailbox != mailbox_key {
            return Err(refuse("the server's mailbox key differs from the report's"));
        }
        if report.attachments.len() != attachments as usize {
            return Err(refuse(
                "the server's attachment count differs from the report's",
            ));
        }
        // Only questions the institution signed, under some manifest it signed.
        // docs/protocol.md#envelope
        let mut form_error = None;
        let form = self
            .forms
            .iter()
            .rev()
            .find(|form| match report.check_against(form) {
                Ok(()) => true,
                Err(e) => {
                    form_error.get_or_insert(e);
                    false
                }
            });
        let Some(form) = form else {
            let error = form_error.unwrap_or(peluit_proto::Error::Malformed("form"));
            return Err(failure(case, &error));
        };
        let text = Zeroizing::new(render_report(case, day, &report, form));
        let mut meta = CaseMeta::from_report(case, day, &report);
        meta.attachments = attachment_entries(&report.attachments, "report", &[]);
        drop(report);
        self.stage_new_case(meta, &text, None)
    }

    /// A bring-your-own-ciphertext case. A file of at most 1 MiB is the case's envelope
    /// and is written whole as `attachments/submitted-file.txt` (or `.bin`). A larger one
    /// is the case's only attachment, under an envelope the server sealed as an empty
    /// padded message; the case is staged here and its attachment frame streams the file
    /// into `attachments/submitted-file.bin`. docs/desk.md#import
    fn open_own_ciphertext(
        &mut self,
        case: CaseId,
        day: Day,
        mailbox_key: VerifyingKey,
        attachments: u32,
        sealed: &SealedMessage,
        envelope_error: &peluit_proto::Error,
    ) -> Result<(), CaseFailure> {
        if attachments != 0 {
            return self.stage_own_ciphertext_stream(case, day, mailbox_key, attachments, sealed);
        }
        let plaintext =
            peluit_proto::seal::open(sealed.as_bytes(), self.identities, MAX_ENVELOPE_LEN)
                .map_err(|_| failure(case, envelope_error))?;
        let text = std::str::from_utf8(&plaintext).ok();
        let (file, media_type) = if text.is_some() {
            ("submitted-file.txt", "text/plain")
        } else {
            ("submitted-file.bin", "application/octet-stream")
        };
        let entry = AttachmentMeta {
            upload: unbound_upload(),
            source: OWN_CIPHERTEXT.into(),
            index: 0,
            original_name: file.into(),
            file: file.into(),
            media_type: media_type.into(),
            size: plaintext.len() as u64,
            sealed_sha256: hex::encode(sealed.sha256()),
            stored: true,
        };
        let report = own_ciphertext_report(case, day, file, text);
        let meta = self.own_ciphertext_meta(case, day, mailbox_key, entry);
        self.stage_new_case(meta, &report, Some((file, &plaintext)))
    }

    /// A large bring-your-own file: the envelope must open, to this desk, as the empty
    /// padded message the server seals for it, and the case must have exactly one
    /// attachment. Whether the file is text is not checked: that would mean reading it
    /// whole, so it is always `.bin`.
    fn stage_own_ciphertext_stream(
        &mut self,
        case: CaseId,
        day: Day,
        mailbox_key: VerifyingKey,
        attachments: u32,
        sealed: &SealedMessage,
    ) -> Result<(), CaseFailure> {
        let envelope = peluit_proto::seal::open_padded(sealed.as_bytes(), self.identities, 0)
            .map_err(|e| failure(case, &e))?;
        if !envelope.is_empty() || attachments != 1 {
            return Err(failure(
                case,
                &peluit_proto::Error::IntegrityFailed(
                    "neither a report nor a bring-your-own file with one attachment",
                ),
            ));
        }
        let file = "submitted-file.bin";
        let entry = AttachmentMeta {
            upload: unbound_upload(),
            source: OWN_CIPHERTEXT.into(),
            index: 0,
            original_name: file.into(),
            file: file.into(),
            media_type: "application/octet-stream".into(),
            size: 0,
            sealed_sha256: String::new(),
            stored: false,
        };
        let report = own_ciphertext_report(case, day, file, None);
        let meta = self.own_ciphertext_meta(case, day, mailbox_key, entry);
        self.stage_new_case(meta, &report, None)
    }

    fn own_ciphertext_meta(
        &self,
        case: CaseId,
        day: Day,
        mailbox_key: VerifyingKey,
        entry: AttachmentMeta,
    ) -> CaseMeta {
        CaseMeta {
            version: crate::desk::DESK_FORMAT_VERSION,
            case,
            institution: self.desk.config().institution.clone(),
            received: day,
            reported: day,
            language: peluit_proto::wordlist::Language::Id,
            category: None,
            status: "received".into(),
            reply_to: None,
            mailbox: mailbox_key,
            attachments: vec![entry],
            messages: Vec::new(),
            unread_follow_ups: 0,
            next_reply_seq: 0,
            withdrawn: false,
        }
    }

    /// Writes a new case's temporary folder (`report.txt`, and the whole file of a small
    /// bring-your-own case) and stages it; a folder that cannot be written is removed.
    fn stage_new_case(
        &mut self,
        meta: CaseMeta,
        report: &str,
        whole_file: Option<(&str, &[u8])>,
    ) -> Result<(), CaseFailure> {
        let case = meta.case;
        let dir = fsutil::temp_beside(&self.desk.case_dir(case));
        let written = (|| {
            fsutil::create_dir(&dir.join("messages"))?;
            fsutil::create_dir(&dir.join("attachments"))?;
            fsutil::write_new(&dir.join("report.txt"), report.as_bytes())?;
            match whole_file {
                Some((file, bytes)) => {
                    fsutil::write_new(&dir.join("attachments").join(file), bytes)
                }
                None => Ok(()),
            }
        })();
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&dir);
            return Err(CaseFailure {
                case,
                code: e.code,
                what: e.what,
            });
        }
        self.staged.insert(
            case,
            Staged {
                dir,
                meta,
                is_new: true,
                changed: true,
                failed: None,
            },
        );
        Ok(())
    }

    /// Removes every temporary case folder (after an abort).
    fn discard_new(&self) {
        for staged in self.staged.values().filter(|s| s.is_new) {
            let _ = fs::remove_dir_all(&staged.dir);
        }
    }

    fn finish(&mut self) -> DeskResult<()> {
        let form = self.forms.last().cloned();
        let mut moves = Vec::new();
        let mut result = Ok(());
        for (case, staged) in std::mem::take(&mut self.staged) {
            if let Some(f) = staged.failed {
                // A failed new case leaves nothing behind. docs/desk.md#import
                if staged.is_new {
                    let _ = fs::remove_dir_all(&staged.dir);
                }
                self.outcome.failures.push(f);
                continue;
            }
            if !staged.changed || result.is_err() {
                if staged.is_new {
                    let _ = fs::remove_dir_all(&staged.dir);
                }
                continue;
            }
            if staged.is_new {
                let page = html::case_page(&staged.dir, &staged.meta, form.as_ref());
                result = fsutil::write_new(&staged.dir.join("case.json"), &to_json(&staged.meta))
                    .and_then(|()| {
                        fsutil::write_new(&staged.dir.join("index.html"), page.as_bytes())
                    });
                moves.push((case, staged.dir));
            } else {
                result = staged
                    .meta
                    .save(&staged.dir)
                    .and_then(|()| html::write_case_page(&staged.dir, &staged.meta, form.as_ref()));
            }
        }
        if result.is_ok() && !moves.is_empty() {
            // One flush for every new case's files, before any is renamed into place: a
            // crash leaves either a whole case or a temporary folder, never half a case.
            result = fsutil::sync_filesystem(&self.desk.cases_dir());
        }
        for (case, dir) in moves {
            if result.is_err() {
                let _ = fs::remove_dir_all(&dir);
                continue;
            }
            let target = self.desk.case_dir(case);
            if let Err(e) = fs::rename(&dir, &target) {
                let _ = fs::remove_dir_all(&dir);
                result = Err(DeskError::io("move the case into place", &target, &e));
                continue;
            }
            self.outcome.new_cases.push(case);
        }
        fsutil::sync_dir(&self.desk.cases_dir());
        result
    }
}

/// `report.txt` of a bring-your-own case: what it is, where the file is and, for a small
/// text file, its content.
fn own_ciphertext_report(
    case: CaseId,
    day: Day,
    file: &str,
    text: Option<&str>,
) -> Zeroizing<String> {
    let mut report =
        String::from("Kiriman berkas sendiri / Bring-your-own-ciphertext submission\n");
    report.push_str(&format!(
        "Kasus / Case: {case}\nDiterima / Received: {day}\n\n"
    ));
    report.push_str(
        "Pelapor mengirim berkas yang disegel dengan alat age miliknya sendiri. Tidak ada \
         kotak surat: balasan tidak dapat dikirim.\nThe reporter sent a file sealed with \
         their own age tool. There is no mailbox: no reply can be sent.\n",
    );
    report.push_str(&format!("\nBerkas / File: attachments/{file}\n"));
    if let Some(text) = text {
        report.push_str("\n== Isi / Content ==\n");
        report.push_str(text);
        report.push('\n');
    }
    Zeroizing::new(report)
}

fn fail(staged: &mut Staged, failure: CaseFailure, failures: &mut Vec<CaseFailure>) {
    if staged.is_new {
        staged.failed.get_or_insert(failure);
    } else {
        failures.push(failure);
    }
}

/// Opens one sealed attachment into `dir` and returns its plaintext length. The outer
/// `Err` aborts the import (disk failure, or a bundle that changed since pass 1); the
/// inner one refuses this attachment. The sealed SHA-256 from pass 1 is compared with the
/// envelope's pin before anything is decrypted (a bring-your-own file has no envelope to
/// name it: the pass-1 digest alone pins it). This thread then reads the payload, pinned
/// to what pass 1 read, and writes the plaintext to a temporary file, while a second
/// thread decrypts; the file is renamed only once the whole stream authenticated and the
/// pin held.
fn stream_attachment<R: Read>(
    frame: &mut Frame<'_, R>,
    identities: &[SealIdentity],
    entry: &AttachmentMeta,
    pin: &PayloadPin,
    dir: &Path,
    durable: bool,
) -> DeskResult<Result<u64, peluit_proto::Error>> {
    // Peluit attachments are padded, their size named by the report; a bring-your-own
    // file is a plain age stream of any size. docs/desk.md#import
    let declared_size = (entry.source != OWN_CIPHERTEXT).then_some(entry.size);
    // The envelope pins the ciphertext: compare before opening. docs/protocol.md#envelope
    if declared_size.is_some() && hex::encode(pin.sha256()) != entry.sealed_sha256 {
        return Ok(Err(peluit_proto::Error::IntegrityFailed(
            "the attachment differs from the one the report names",
        )));
    }
    fsutil::create_dir(dir)?;
    let target = dir.join(&entry.file);
    let temp = fsutil::temp_beside(&target);
    let payload = frame
        .pinned_payload_reader(pin)
        .map_err(|e| bundle_error(&e))?;
    let mut out = PlaintextFile {
        path: &temp,
        file: None,
        unflushed: 0,
    };
    let copied = std::thread::scope(|scope| {
        let (queue, pieces) = mpsc::sync_channel::<Vec<u8>>(PIECES_WAITING);
        let (spent, returned) = mpsc::channel::<Vec<u8>>();
        let (plain_queue, plaintext) = mpsc::channel::<Zeroizing<Vec<u8>>>();
        let (plain_spent, plain_returned) = mpsc::channel::<Zeroizing<Vec<u8>>>();
        let opening = scope.spawn(move || {
            let pieces = Pieces {
                queue: pieces,
                spent,
                current: Vec::new(),
                at: 0,
            };
            decrypt_pieces(
                pieces,
                identities,
                declared_size,
                &plain_queue,
                &plain_returned,
            )
        });
        // Writes the file back to disk while more plaintext comes, on a third thread.
        let (write_back, to_write_back) = mpsc::sync_channel::<File>(1);
        scope.spawn(move || {
            for file in to_write_back {
                // A failure shows again in the flush that decides.
                let _ = file.sync_data();
            }
        });
        let copied = copy_through(
            payload,
            queue,
            &returned,
            &plaintext,
            &plain_spent,
            &mut out,
            &write_back,
        );
        drop(write_back);
        drop(plaintext);
        let opened = opening
            .join()
            .unwrap_or(Err(peluit_proto::Error::DecryptionFailed));
        copied.map(|()| opened)
    });
    let discard = |out: PlaintextFile<'_>| {
        drop(out.file);
        let _ = fs::remove_file(&temp);
    };
    let opened = match copied {
        Ok(opened) => opened,
        Err(e) => {
            discard(out);
            return Err(e);
        }
    };
    let size = match opened {
        Ok(size) => size,
        Err(e) => {
            // Provisional plaintext of a stream that did not authenticate is removed.
            discard(out);
            return Ok(Err(e));
        }
    };
    // An empty attachment sends no plaintext: its file is created here.
    let file = match out.write(&[], None) {
        Ok(()) => out.file.take(),
        Err(e) => {
            discard(out);
            return Err(e);
        }
    };
    let Some(file) = file else {
        return Err(DeskError::io(
            "write",
            &temp,
            &io::Error::from(io::ErrorKind::NotFound),
        ));
    };
    // An existing case's file is flushed now; a new case's files are flushed together
    // before the case is renamed into place.
    if durable && let Err(e) = file.sync_all() {
        discard(out);
        return Err(DeskError::io("write", &temp, &e));
    }
    drop(file);
    fs::rename(&temp, &target).map_err(|e| DeskError::io("write", &target, &e))?;
    Ok(Ok(size))
}

/// The temporary plaintext file, created with the first plaintext.
struct PlaintextFile<'p> {
    path: &'p Path,
    file: Option<File>,
    unflushed: u64,
}

impl PlaintextFile<'_> {
    /// Appends `plaintext`; every [`WRITE_BACK_EVERY`] bytes, hands a handle of the file
    /// to `write_back` (skipped while the previous write-back runs).
    fn write(
        &mut self,
        plaintext: &[u8],
        write_back: Option<&mpsc::SyncSender<File>>,
    ) -> DeskResult<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                File::create_new(self.path).map_err(|e| DeskError::io("write", self.path, &e))?,
            ),
        };
        file.write_all(plaintext)
            .map_err(|e| DeskError::io("write", self.path, &e))?;
        self.unflushed += plaintext.len() as u64;
        if let Some(write_back) = write_back
            && self.unflushed >= WRITE_BACK_EVERY
            && let Ok(handle) = file.try_clone()
        {
            self.unflushed = 0;
            let _ = write_back.try_send(handle);
        }
        Ok(())
    }
}

/// The reading side of [`stream_attachment`]: sends the ciphertext on in pieces and
/// writes the plaintext that comes back. `Err` is a disk failure or a bundle that
/// changed since pass 1 (the pin did not hold); the plaintext is then not to be kept.
fn copy_through(
    mut payload: impl Read,
    queue: mpsc::SyncSender<Vec<u8>>,
    returned: &mpsc::Receiver<Vec<u8>>,
    plaintext: &mpsc::Receiver<Zeroizing<Vec<u8>>>,
    plain_spent: &mpsc::Sender<Zeroizing<Vec<u8>>>,
    out: &mut PlaintextFile<'_>,
    write_back: &mpsc::SyncSender<File>,
) -> DeskResult<()> {
    let mut write = |piece: Zeroizing<Vec<u8>>| -> DeskResult<()> {
        out.write(&piece, Some(write_back))?;
        let _ = plain_spent.send(piece);
        Ok(())
    };
    loop {
        while let Ok(piece) = plaintext.try_recv() {
            write(piece)?;
        }
        let mut piece = returned.try_recv().unwrap_or_default();
        piece.resize(PIECE, 0);
        let n = match payload.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The last read fails if the pin did not hold. docs/desk.md#import
            Err(e) => return Err(bundle_error(&from_io(e))),
        };
        piece.truncate(n);
        if queue.send(piece).is_err() {
            // The stream did not open: the next frame skips the rest.
            break;
        }
    }
    // The end of the ciphertext; the opening thread sends the rest of the plaintext
    // until it finishes.
    drop(queue);
    for piece in plaintext.iter() {
        write(piece)?;
    }
    Ok(())
}

/// The opening side of [`stream_attachment`]: decrypts `sealed` and sends the plaintext
/// in pieces; returns the plaintext length. A padded stream must hold `declared_size`
/// bytes of content; `None` opens an unpadded age stream of any length. `Err` is a stream
/// that does not open with `identities` or that is not the size the report declares;
/// what was sent is then provisional plaintext to discard.
fn decrypt_pieces<'s>(
    sealed: impl Read + 's,
    identities: &[SealIdentity],
    declared_size: Option<u64>,
    plaintext: &mpsc::Sender<Zeroizing<Vec<u8>>>,
    spent: &mpsc::Receiver<Zeroizing<Vec<u8>>>,
) -> Result<u64, peluit_proto::Error> {
    let mut opener: Box<dyn Read + 's> = match declared_size {
        Some(size) => {
            let opener = StreamOpener::new(sealed, identities)?;
            // The declared size is part of what the reporter sealed. docs/protocol.md#envelope
            if opener.content_len() != size {
                return Err(peluit_proto::Error::IntegrityFailed(
                    "the attachment's size differs from the report's",
                ));
            }
            Box::new(opener)
        }
        None => Box::new(UnpaddedStreamOpener::new(sealed, identities)?),
    };
    let mut total = 0u64;
    loop {
        let mut piece = spent
            .try_recv()
            .unwrap_or_else(|_| Zeroizing::new(Vec::new()));
        piece.resize(PIECE, 0);
        let mut filled = 0;
        while filled < piece.len() {
            match opener.read(&mut piece[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(peluit_proto::Error::DecryptionFailed),
            }
        }
        piece.truncate(filled);
        if filled == 0 {
            return Ok(total);
        }
        total += filled as u64;
        if plaintext.send(piece).is_err() {
            // The reading side stopped (disk or bundle failure); it reports why.
            return Err(peluit_proto::Error::DecryptionFailed);
        }
    }
}

/// Imports an export bundle into the desk with `identities` (the investigator's, or the
/// escrow identity). See the module documentation for the order of checks.
pub fn import_bundle(
    desk: &Desk,
    identities: &[SealIdentity],
    path: &Path,
    today: Day,
    bar: &ProgressBar,
) -> DeskResult<ImportOutcome> {
    desk.clean_temporaries();
    let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    bar.set_length(size.saturating_mul(2));
    bar.set_message("verifying");
    let verified = pass_verify(desk, path, bar)?;
    let mut outcome = ImportOutcome {
        bundle_digest: hex::encode(verified.summary.digest),
        ..ImportOutcome::default()
    };
    let mut state = desk.state()?;
    outcome.already_imported = state.imported.contains(&outcome.bundle_digest);
    if let Some(bytes) = &verified.manifest {
        let serial = take_manifest(desk, bytes, today, &mut outcome)?;
        state.server_serial = state.server_serial.max(serial);
    }
    let forms: Vec<FormDefinition> = desk
        .manifest_history()?
        .into_iter()
        .map(|m| m.manifest().form.clone())
        .collect();
    if forms.is_empty() {
        return Err(DeskError::new(
            "no-manifest",
            "this desk has no manifest and the bundle carries none",
            "install the signed manifest with `peluit-investigator manifest install FILE`; \
             nothing was written",
        ));
    }
    bar.set_length(verified.total_len.saturating_mul(2));
    bar.set_message("importing");
    let mut importer = Importer {
        desk,
        identities,
        forms,
        verified,
        staged: BTreeMap::new(),
        failed_cases: BTreeSet::new(),
        deferred: BTreeSet::new(),
        outcome,
    };
    let created = run_passes(&mut importer, path, bar);
    if let Err(e) = created {
        importer.discard_new();
        return Err(e);
    }
    if let Err(e) = importer.finish() {
        importer.discard_new();
        return Err(e);
    }
    let mut outcome = importer.outcome;
    let digest = outcome.bundle_digest.clone();
    if !state.imported.contains(&digest) {
        state.imported.push(digest);
    }
    state.cursor_to = state.cursor_to.max(importer.verified.cursor_to);
    desk.save_state(&state)?;
    let form = desk
        .manifest_history()?
        .last()
        .map(|m| m.manifest().form.clone());
    html::write_index(desk, form.as_ref())?;
    outcome.new_cases.sort();
    bar.finish_and_clear();
    Ok(outcome)
}

fn run_passes(importer: &mut Importer<'_>, path: &Path, bar: &ProgressBar) -> DeskResult<()> {
    let mut reader = reopen_bundle(path, bar, &importer.verified.summary)?;
    while let Some(mut frame) = reader.next_frame().map_err(|e| bundle_error(&e))? {
        importer.frame(&mut frame)?;
    }
    if importer.deferred.is_empty() {
        return Ok(());
    }
    // Attachments that came before their case: one more pass for just those.
    let deferred = std::mem::take(&mut importer.deferred);
    let mut reader = reopen_bundle(path, bar, &importer.verified.summary)?;
    while let Some(mut frame) = reader.next_frame().map_err(|e| bundle_error(&e))? {
        if !deferred.contains(&frame.index()) {
            continue;
        }
        let FrameMeta::Attachment { case, .. } = frame.meta().clone() else {
            continue;
        };
        if stage(importer.desk, &mut importer.staged, case)?.is_none() {
            importer.outcome.failures.push(CaseFailure {
                case,
                code: "unknown-case",
                what: "an attachment for a case this desk does not have".into(),
            });
            continue;
        }
        importer.frame(&mut frame)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peluit_proto::bundle::{BundleHeader, BundleWriter};
    use peluit_proto::ids::UploadId;
    use peluit_proto::seal::StreamSealer;

    fn seal(identity: &SealIdentity, content: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let mut sealer = StreamSealer::new(&[identity.recipient()], content.len() as u64).unwrap();
        let mut out = sealer.take_output();
        for chunk in content.chunks(65_536) {
            out.extend(sealer.push(chunk).unwrap());
        }
        while let Some(tail) = sealer.next_tail().unwrap() {
            out.extend(tail);
        }
        (out, sealer.sealed_sha256())
    }

    fn bundle(sealed: &[u8]) -> Vec<u8> {
        let header = BundleHeader {
            kind: BundleKind::Export,
            institution: "itjen-contoh".parse().unwrap(),
            created: "2026-03-14".parse().unwrap(),
            cursor_from: 0,
            cursor_to: 1,
        };
        let mut writer = BundleWriter::new(Vec::new(), &header).unwrap();
        let meta = FrameMeta::Attachment {
            case: CaseId::from_bytes([1; 16]),
            upload: UploadId::from_bytes([2; 16]),
            index: 0,
        };
        writer.write_frame(&meta, sealed).unwrap();
        writer.finish().unwrap()
    }

    fn entry(size: u64, sealed_sha256: [u8; 32]) -> AttachmentMeta {
        AttachmentMeta {
            upload: UploadId::from_bytes([2; 16]),
            source: "report".into(),
            index: 0,
            original_name: "video.mp4".into(),
            file: "video.mp4".into(),
            media_type: "video/mp4".into(),
            size,
            sealed_sha256: hex::encode(sealed_sha256),
            stored: false,
        }
    }

    /// Pass 1 over `first`, then pass 2 over `second` (the same file, or what it became).
    fn import_twice(
        first: &[u8],
        second: &[u8],
        identity: &SealIdentity,
        entry: &AttachmentMeta,
        dir: &Path,
    ) -> DeskResult<Result<u64, peluit_proto::Error>> {
        let mut reader = BundleReader::new(first).unwrap();
        let pin = reader.next_frame().unwrap().unwrap().payload_pin().unwrap();
        assert!(reader.next_frame().unwrap().is_none());
        let summary = reader.summary().unwrap().clone();
        let mut reader = BundleReader::reread(second, &summary).unwrap();
        let mut frame = reader.next_frame().unwrap().unwrap();
        let identities = std::slice::from_ref(identity);
        stream_attachment(&mut frame, identities, entry, &pin, dir, true)
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir).map_or(Vec::new(), |d| d.map(|e| e.unwrap().path()).collect())
    }

    #[test]
    fn an_attachment_streams_into_its_file_and_nothing_else() {
        let identity = SealIdentity::generate();
        let dir = tempfile::tempdir().unwrap();
        for content in [
            (0..3_000_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
            Vec::new(),
        ] {
            let (sealed, sha) = seal(&identity, &content);
            let bytes = bundle(&sealed);
            let entry = entry(content.len() as u64, sha);
            let out = dir.path().join(content.len().to_string());
            import_twice(&bytes, &bytes, &identity, &entry, &out)
                .unwrap()
                .unwrap();
            assert_eq!(files(&out), vec![out.join("video.mp4")]);
            assert_eq!(fs::read(out.join("video.mp4")).unwrap(), content);
        }
    }

    #[test]
    fn a_bring_your_own_file_streams_unpadded_and_only_whole() {
        let identity = SealIdentity::generate();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let sealed = peluit_proto::seal::seal(&content, &[identity.recipient()]).unwrap();
        let mut own = entry(0, [0; 32]);
        own.source = OWN_CIPHERTEXT.into();
        own.upload = unbound_upload();
        own.sealed_sha256 = String::new();
        own.file = "submitted-file.bin".into();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("whole");
        let bytes = bundle(&sealed);
        let size = import_twice(&bytes, &bytes, &identity, &own, &out)
            .unwrap()
            .unwrap();
        assert_eq!(size, content.len() as u64);
        assert_eq!(files(&out), vec![out.join("submitted-file.bin")]);
        assert!(fs::read(out.join("submitted-file.bin")).unwrap() == content);
        // A flipped byte in the middle, with every digest made valid again: half the
        // plaintext went to the temporary file before the bad chunk showed.
        let out = dir.path().join("flipped");
        let mut damaged = sealed.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 1;
        let bytes = bundle(&damaged);
        let refused = import_twice(&bytes, &bytes, &identity, &own, &out);
        assert!(matches!(
            refused,
            Ok(Err(peluit_proto::Error::DecryptionFailed))
        ));
        assert!(files(&out).is_empty());
        // Cut short by its final chunk: no chunk's length gives it away, the end does.
        let out = dir.path().join("cut");
        let bytes = bundle(&sealed[..sealed.len() - (3_000_000 % 65_536 + 16)]);
        let refused = import_twice(&bytes, &bytes, &identity, &own, &out);
        assert!(matches!(
            refused,
            Ok(Err(peluit_proto::Error::DecryptionFailed))
        ));
        assert!(files(&out).is_empty());
        // A padded Peluit stream is not taken for a bring-your-own file's plaintext, nor
        // the reverse: the report's attachments open only as padded streams.
        let out = dir.path().join("unpadded-as-report");
        let bytes = bundle(&sealed);
        let sha = <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&sealed));
        let refused = import_twice(
            &bytes,
            &bytes,
            &identity,
            &entry(content.len() as u64, sha),
            &out,
        );
        assert!(matches!(refused, Ok(Err(_))));
        assert!(files(&out).is_empty());
    }

    #[test]
    fn an_attachment_swapped_between_the_passes_leaves_no_file() {
        let identity = SealIdentity::generate();
        let content = vec![7u8; 2_000_000];
        let (sealed, sha) = seal(&identity, &content);
        // Another attachment of the same size sealed to the same key, in a bundle with
        // every digest valid: what whoever holds the stick between the passes can make.
        let (swapped, _) = seal(&identity, &vec![8u8; 2_000_000]);
        let dir = tempfile::tempdir().unwrap();
        let entry = entry(content.len() as u64, sha);
        let error = import_twice(
            &bundle(&sealed),
            &bundle(&swapped),
            &identity,
            &entry,
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(error.code, "damaged-bundle");
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn a_stream_that_does_not_open_leaves_no_file() {
        let identity = SealIdentity::generate();
        let content = vec![7u8; 2_000_000];
        let (sealed, sha) = seal(&identity, &content);
        let bytes = bundle(&sealed);
        let dir = tempfile::tempdir().unwrap();
        // Not sealed to this desk.
        let stranger = SealIdentity::generate();
        let refused = import_twice(
            &bytes,
            &bytes,
            &stranger,
            &entry(2_000_000, sha),
            dir.path(),
        );
        assert!(matches!(refused, Ok(Err(_))));
        // Another size than the report declares.
        let refused = import_twice(
            &bytes,
            &bytes,
            &identity,
            &entry(1_999_999, sha),
            dir.path(),
        );
        assert!(matches!(refused, Ok(Err(_))));
        // A flipped byte in the last chunk, with the frame's digests made valid again and
        // the pin following it: the stream's end does not authenticate, after most of the
        // plaintext went to the temporary file.
        let mut damaged = sealed.clone();
        let at = damaged.len() - 20;
        damaged[at] ^= 1;
        let sha = <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&damaged));
        let bytes = bundle(&damaged);
        let refused = import_twice(
            &bytes,
            &bytes,
            &identity,
            &entry(2_000_000, sha),
            dir.path(),
        );
        assert!(matches!(
            refused,
            Ok(Err(peluit_proto::Error::DecryptionFailed))
        ));
        assert!(files(dir.path()).is_empty());
    }
}
