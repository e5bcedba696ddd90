//! `import BUNDLE`: verify an export bundle completely (every frame, the End frame, the
//! manifest) before opening anything, then open each new case with the desk's identity
//! and write it atomically into the case folder (docs/desk.md#import).
//!
//! Pass 1 reads the whole bundle through proto's `BundleReader` (all framing checks),
//! verifies the manifest it carries and hashes each sealed attachment. Pass 2 opens
//! cases into temporary folders, streams attachments through `StreamOpener` into
//! temporary files, and renames each case into place only if all of it checked out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write as _};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use peluit_proto::bundle::{BundleError, BundleKind, BundleReader, Frame, FrameMeta};
use peluit_proto::day::Day;
use peluit_proto::envelope::{open_follow_up, open_report};
use peluit_proto::ids::CaseId;
use peluit_proto::keys::{SealIdentity, VerifyingKey};
use peluit_proto::limits::{MAX_ENVELOPE_LEN, MAX_MANIFEST_LEN};
use peluit_proto::manifest::{FormDefinition, SignedManifest, VerifyPolicy};
use peluit_proto::seal::StreamOpener;
use peluit_proto::sealed::SealedMessage;
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::casefile::{AttachmentMeta, CaseMeta, MessageMeta, attachment_entries, render_report};
use crate::desk::{Desk, manifest_error, to_json};
use crate::error::{DeskError, DeskResult, describe_proto};
use crate::fsutil;
use crate::html;

/// Read buffer for the bundle file.
const READ_BUFFER: usize = 256 * 1024;

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

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

type BundleFile = BufReader<Counting<File>>;

fn open_bundle(path: &Path, bar: &ProgressBar) -> DeskResult<BundleReader<BundleFile>> {
    let file = File::open(path).map_err(|e| {
        let mut error = DeskError::io("open the bundle", path, &e);
        error.next = "check the path of the bundle on the USB stick".to_owned();
        error
    })?;
    let counting = Counting {
        inner: file,
        bar: bar.clone(),
    };
    BundleReader::new(BufReader::with_capacity(READ_BUFFER, counting)).map_err(|e| bundle_error(&e))
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
    digest: [u8; 32],
    cursor_to: u64,
    manifest: Option<Vec<u8>>,
    /// Frame index → SHA-256 of that attachment frame's payload.
    attachment_sha256: HashMap<u64, [u8; 32]>,
    total_len: u64,
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
    let mut attachment_sha256 = HashMap::new();
    while let Some(mut frame) = reader.next_frame().map_err(|e| bundle_error(&e))? {
        match frame.meta() {
            FrameMeta::Manifest => {
                manifest = Some(
                    frame
                        .read_payload_to_end(MAX_MANIFEST_LEN)
                        .map_err(|e| bundle_error(&e))?,
                );
            }
            FrameMeta::Attachment { .. } => {
                let index = frame.index();
                let mut hashing = Hashing {
                    inner: frame.payload_reader(),
                    hasher: Sha256::new(),
                };
                io::copy(&mut hashing, &mut io::sink()).map_err(|e| bundle_error(&from_io(e)))?;
                attachment_sha256.insert(index, hashing.hasher.finalize().into());
            }
            // Every other payload is skipped; the reader still digests it.
            _ => {}
        }
    }
    let summary = reader
        .summary()
        .ok_or_else(|| bundle_error(&peluit_proto::Error::Bundle(BundleError::MissingEnd)))?;
    Ok(Verified {
        digest: summary.digest,
        cursor_to: header.cursor_to,
        manifest,
        attachment_sha256,
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
                let payload = frame
                    .read_payload_to_end(MAX_ENVELOPE_LEN)
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
                let Some(expected) = self.verified.attachment_sha256.get(&frame_index).copied()
                else {
                    return Ok(());
                };
                let Some(staged) = stage(self.desk, &mut self.staged, case)? else {
                    // Its case comes later in the bundle: a third pass takes it.
                    self.deferred.insert(frame_index);
                    return Ok(());
                };
                if staged.failed.is_some() {
                    return Ok(());
                }
                let Some(position) = staged
                    .meta
                    .attachments
                    .iter()
                    .position(|a| a.upload == upload)
                else {
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
                if entry.source == "report" && entry.index != index {
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
                    Ok(()) => {
                        staged.meta.attachments[position].stored = true;
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
                let payload = frame
                    .read_payload_to_end(MAX_ENVELOPE_LEN)
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
        let final_dir = self.desk.case_dir(case);
        let dir = fsutil::temp_beside(&final_dir);
        let written = (|| {
            fsutil::create_dir(&dir.join("messages"))?;
            fsutil::create_dir(&dir.join("attachments"))?;
            fsutil::write_new(&dir.join("report.txt"), text.as_bytes())
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

    /// A bring-your-own-ciphertext case: the whole age file (at most 1 MiB) is the case's
    /// only content; it is written as `attachments/submitted-file.*`.
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
            // A large file arrives as an attachment stream without Peluit's padding, which
            // proto cannot yet open as a stream (see the desk notes).
            return Err(CaseFailure {
                case,
                code: "own-ciphertext-too-large",
                what: "a bring-your-own file over 1 MiB cannot be opened by this desk yet".into(),
            });
        }
        let plaintext =
            peluit_proto::seal::open(sealed.as_bytes(), self.identities, MAX_ENVELOPE_LEN)
                .map_err(|_| failure(case, envelope_error))?;
        let text = std::str::from_utf8(&plaintext).ok();
        let file = if text.is_some() {
            "submitted-file.txt"
        } else {
            "submitted-file.bin"
        };
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
        let report = Zeroizing::new(report);
        let meta = CaseMeta {
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
            attachments: vec![AttachmentMeta {
                upload: peluit_proto::ids::UploadId::from_bytes([0; 16]),
                source: "own-ciphertext".into(),
                index: 0,
                original_name: file.into(),
                file: file.into(),
                media_type: if text.is_some() {
                    "text/plain"
                } else {
                    "application/octet-stream"
                }
                .into(),
                size: plaintext.len() as u64,
                sealed_sha256: hex::encode(sealed.sha256()),
                stored: true,
            }],
            messages: Vec::new(),
            unread_follow_ups: 0,
            next_reply_seq: 0,
            withdrawn: false,
        };
        let dir = fsutil::temp_beside(&self.desk.case_dir(case));
        let written = (|| {
            fsutil::create_dir(&dir.join("messages"))?;
            fsutil::create_dir(&dir.join("attachments"))?;
            fsutil::write_new(&dir.join("report.txt"), report.as_bytes())?;
            fsutil::write_new(&dir.join("attachments").join(file), &plaintext)
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

fn fail(staged: &mut Staged, failure: CaseFailure, failures: &mut Vec<CaseFailure>) {
    if staged.is_new {
        staged.failed.get_or_insert(failure);
    } else {
        failures.push(failure);
    }
}

/// Opens one sealed attachment into `dir`. The outer `Err` aborts the import (disk
/// failure); the inner one refuses this attachment. The sealed SHA-256 from pass 1 is
/// compared with the envelope's pin before anything is decrypted, and the plaintext goes
/// to a temporary file that is renamed only once the whole stream authenticated.
fn stream_attachment<R: Read>(
    frame: &mut Frame<'_, R>,
    identities: &[SealIdentity],
    entry: &AttachmentMeta,
    sealed_sha256: [u8; 32],
    dir: &Path,
    durable: bool,
) -> DeskResult<Result<(), peluit_proto::Error>> {
    // The envelope pins the ciphertext: compare before opening. docs/protocol.md#envelope
    if hex::encode(sealed_sha256) != entry.sealed_sha256 {
        return Ok(Err(peluit_proto::Error::IntegrityFailed(
            "the attachment differs from the one the report names",
        )));
    }
    fsutil::create_dir(dir)?;
    let target = dir.join(&entry.file);
    let temp = fsutil::temp_beside(&target);
    let mut payload = frame.payload_reader();
    let mut opener = match StreamOpener::new(&mut payload, identities) {
        Ok(opener) => opener,
        Err(e) => return Ok(Err(e)),
    };
    // The declared size is part of what the reporter sealed. docs/protocol.md#envelope
    if opener.content_len() != entry.size {
        return Ok(Err(peluit_proto::Error::IntegrityFailed(
            "the attachment's size differs from the report's",
        )));
    }
    let file = File::create_new(&temp).map_err(|e| DeskError::io("write", &temp, &e))?;
    let mut out = BufWriter::with_capacity(READ_BUFFER, file);
    let mut buf = Zeroizing::new(vec![0u8; READ_BUFFER]);
    let copied: Result<(), peluit_proto::Error> = loop {
        let n = match opener.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break Err(peluit_proto::Error::DecryptionFailed),
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            drop(out);
            let _ = fs::remove_file(&temp);
            return Err(DeskError::io("write", &temp, &e));
        }
    };
    let flushed = out
        .into_inner()
        .map_err(|e| e.into_error())
        // A new case's files are flushed together before the case is renamed into place.
        .and_then(|file| if durable { file.sync_all() } else { Ok(()) });
    if let Err(e) = copied {
        // Provisional plaintext of a stream that did not authenticate is removed.
        let _ = fs::remove_file(&temp);
        return Ok(Err(e));
    }
    if let Err(e) = flushed {
        let _ = fs::remove_file(&temp);
        return Err(DeskError::io("write", &temp, &e));
    }
    fs::rename(&temp, &target).map_err(|e| DeskError::io("write", &target, &e))?;
    Ok(Ok(()))
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
        bundle_digest: hex::encode(verified.digest),
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
    let mut reader = open_bundle(path, bar)?;
    while let Some(mut frame) = reader.next_frame().map_err(|e| bundle_error(&e))? {
        importer.frame(&mut frame)?;
    }
    if importer.deferred.is_empty() {
        return Ok(());
    }
    // Attachments that came before their case: one more pass for just those.
    let deferred = std::mem::take(&mut importer.deferred);
    let mut reader = open_bundle(path, bar)?;
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
