//! Replies and status changes: sealed with proto to the reporter's reply key and the
//! inspectorate, signed with the investigator's reply key, kept in the outbox, and
//! gathered into a reply bundle for the trip back (docs/desk.md#replies).

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use peluit_proto::bundle::{BundleHeader, BundleKind, BundleReader, BundleWriter, FrameMeta};
use peluit_proto::day::Day;
use peluit_proto::ids::CaseId;
use peluit_proto::limits::MAX_REPLY_LEN;
use peluit_proto::reply::{
    MAX_SEALED_REPLY_JSON_LEN, Reply, ReplyAttachment, ReplyKind, SealedReply, Status, open_reply,
    seal_reply_with_manifest,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::casefile::{CaseMeta, MessageMeta};
use crate::desk::Desk;
use crate::error::{DeskError, DeskResult, describe_proto};
use crate::fsutil;
use crate::html;
use crate::keyfile::InvestigatorKeys;
use crate::names::media_type_for;

/// What a reply or status change did.
#[derive(Debug, Serialize)]
pub struct Sealed {
    /// The case.
    pub case: CaseId,
    /// Its sequence number.
    pub seq: u32,
    /// The outbox file holding the sealed reply.
    pub outbox_file: PathBuf,
}

/// Reads files to attach to a reply.
pub fn read_attachments(paths: &[PathBuf]) -> DeskResult<Vec<ReplyAttachment>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| DeskError::io("read", path, &e))?;
        total += meta.len();
        // Everything travels inside one sealed reply. docs/protocol.md#limits
        if total > MAX_REPLY_LEN as u64 / 2 {
            return Err(DeskError::new(
                "too-large",
                "the attachments are too large for one reply (at most about 8 MiB together)",
                "send fewer or smaller files, or hand large evidence over another way",
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lampiran".to_owned());
        out.push(ReplyAttachment {
            media_type: media_type_for(&name).to_owned(),
            name,
            data: fsutil::read(path)?,
        });
    }
    Ok(out)
}

/// Seals a message (`kind` Message) or a status change for `case`, writes it to the
/// outbox and records a readable copy in the case's `messages/`.
pub fn seal_for_case(
    desk: &Desk,
    keys: &InvestigatorKeys,
    case: CaseId,
    kind: ReplyKind,
    text: Zeroizing<String>,
    attachments: Vec<ReplyAttachment>,
    today: Day,
) -> DeskResult<Sealed> {
    let manifest = desk.current_manifest(today)?;
    let dir = desk.case_dir(case);
    let mut meta = CaseMeta::load(&dir)?;
    if meta.withdrawn {
        return Err(DeskError::new(
            "case-withdrawn",
            format!("case {case} was withdrawn on the server"),
            "the reporter's mailbox is gone; keep the case file, send nothing",
        ));
    }
    let Some(reply_to) = meta.reply_to.clone() else {
        return Err(DeskError::new(
            "no-reply-key",
            format!("case {case} was sent as a bring-your-own file: its sender has no mailbox"),
            "nothing can be sent back for this case; keep it on the desk",
        ));
    };
    let attachment_names: Vec<String> = attachments.iter().map(|a| a.name.clone()).collect();
    let reply = Reply {
        case,
        seq: meta.next_reply_seq,
        date: today,
        kind,
        text: text.as_str().to_owned(),
        attachments,
    };
    let sealed = seal_reply_with_manifest(
        &reply,
        &reply_to,
        &meta.mailbox,
        &manifest,
        &keys.reply_key,
    )
    .map_err(|e| {
        let (code, what) = describe_proto(&e);
        let next = if matches!(e, peluit_proto::Error::InvalidUse(_)) {
            "this desk's reply key is not in the current manifest: add it with `manifest rotate`"
        } else {
            "shorten the text or the attachments and try again"
        };
        DeskError::new(code, format!("could not seal the reply: {what}"), next)
    })?;
    // Check what the page and the server will check, and that the inspectorate's copy
    // opens, before anything leaves the desk. docs/protocol.md#reply
    sealed
        .verify_with_manifest(&manifest)
        .and_then(|()| {
            open_reply(&sealed, &keys.identity, &manifest.reply_signing_keys()).map(drop)
        })
        .map_err(|e| {
            DeskError::new(
                "self-check-failed",
                format!(
                    "the sealed reply failed its own check: {}",
                    describe_proto(&e).1
                ),
                "this desk's identity is not in the current manifest: check the keys",
            )
        })?;
    let outbox_file = desk
        .outbox_dir()
        .join(format!("{case}-{:010}.json", reply.seq));
    fsutil::write_atomic(&outbox_file, &sealed.to_json())?;
    let (kind_name, heading) = match reply.kind {
        ReplyKind::Message => ("reply", "Balasan pemeriksa / Investigator reply".to_owned()),
        ReplyKind::Status(status) => (
            "status",
            format!(
                "Perubahan status / Status change: {}",
                html::status_label(status.as_str())
            ),
        ),
    };
    let file = meta.next_message_file(kind_name, today);
    let mut record = Zeroizing::new(format!(
        "{heading} #{}\nTanggal / Date: {today}\nDitandatangani / Signed by: {}\n\n{}\n",
        reply.seq, keys.holder, reply.text
    ));
    for name in &attachment_names {
        record.push_str(&format!("Lampiran / Attachment: {name}\n"));
    }
    fsutil::create_dir(&dir.join("messages"))?;
    fsutil::write_atomic(&dir.join("messages").join(&file), record.as_bytes())?;
    meta.messages.push(MessageMeta {
        file,
        kind: kind_name.to_owned(),
        seq: reply.seq,
        date: today,
    });
    if let ReplyKind::Status(status) = reply.kind {
        meta.status = status.as_str().to_owned();
    }
    meta.next_reply_seq += 1;
    meta.save(&dir)?;
    let form = manifest.form().clone();
    html::write_case_page(&dir, &meta, Some(&form))?;
    html::write_index(desk, Some(&form))?;
    Ok(Sealed {
        case,
        seq: reply.seq,
        outbox_file,
    })
}

/// Parses a status argument.
pub fn parse_status(text: &str) -> DeskResult<Status> {
    text.parse().map_err(|_| {
        DeskError::new(
            "bad-status",
            format!("{text:?} is not a status"),
            "use one of: received, in-review, forwarded, closed",
        )
    })
}

/// What a reply bundle holds.
#[derive(Debug, Serialize)]
pub struct WrittenBundle {
    /// Where it was written.
    pub path: PathBuf,
    /// Replies and status changes in it.
    pub replies: usize,
    /// The manifest serial it carries, if any.
    pub manifest_serial: Option<u64>,
    /// Its End digest, hex.
    pub digest: String,
}

/// Gathers the outbox (and a manifest newer than the server's) into a reply bundle at
/// `out`, checks the bundle, and moves the sent replies to `outbox/sent/`.
pub fn write_reply_bundle(desk: &Desk, out: &Path, today: Day) -> DeskResult<WrittenBundle> {
    let manifest = desk.current_manifest(today)?;
    let state = desk.state()?;
    let outbox = desk.outbox_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&outbox)
        .map_err(|e| DeskError::io("read", &outbox, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let carry_manifest = manifest.serial() > state.server_serial;
    if files.is_empty() && !carry_manifest {
        return Err(DeskError::new(
            "nothing-to-send",
            "the outbox is empty and the server has the current manifest",
            "write a reply with `reply CASE` or a status with `status CASE STATUS` first",
        ));
    }
    if out.exists() {
        return Err(DeskError::new(
            "exists",
            format!("{} already exists", out.display()),
            "choose another --out path or move the old bundle away",
        ));
    }
    let header = BundleHeader {
        kind: BundleKind::Reply,
        institution: desk.config().institution.clone(),
        created: today,
        cursor_from: state.cursor_to,
        cursor_to: state.cursor_to,
    };
    let temp = fsutil::temp_beside(out);
    let written = (|| -> DeskResult<(usize, [u8; 32])> {
        let file = File::create_new(&temp).map_err(|e| DeskError::io("write", &temp, &e))?;
        let proto = |e: peluit_proto::Error| {
            DeskError::new(
                "bundle-write-failed",
                format!("could not write the reply bundle: {e}"),
                "check the USB stick (space, write protection) and try again",
            )
        };
        let mut writer = BundleWriter::new(BufWriter::new(file), &header).map_err(proto)?;
        if carry_manifest {
            writer
                .write_frame(&FrameMeta::Manifest, &manifest.signed().to_json())
                .map_err(proto)?;
        }
        for path in &files {
            let json = fsutil::read(path)?;
            // Only replies that the server and the page will accept travel.
            // docs/protocol.md#reply
            let parsed = SealedReply::from_json(&json)
                .and_then(|r| r.verify_with_manifest(&manifest).map(|()| r))
                .map_err(|e| {
                    DeskError::new(
                        "bad-outbox-file",
                        format!(
                            "{} is not a valid sealed reply: {}",
                            path.display(),
                            describe_proto(&e).1
                        ),
                        "move it out of the outbox and seal the reply again",
                    )
                })?;
            drop(parsed);
            if json.len() > MAX_SEALED_REPLY_JSON_LEN {
                return Err(DeskError::new(
                    "too-large",
                    format!("{} is too large", path.display()),
                    "seal the reply again with smaller attachments",
                ));
            }
            writer
                .write_frame(&FrameMeta::Reply, &json)
                .map_err(proto)?;
        }
        let buffered = writer.finish().map_err(proto)?;
        let file = buffered
            .into_inner()
            .map_err(|e| DeskError::io("write", &temp, e.error()))?;
        file.sync_all()
            .map_err(|e| DeskError::io("write", &temp, &e))?;
        // Read back what was written, as the courier and the server will.
        let check = File::open(&temp).map_err(|e| DeskError::io("read", &temp, &e))?;
        let summary = BundleReader::verify(std::io::BufReader::new(check)).map_err(proto)?;
        Ok((files.len(), summary.digest))
    })();
    let (replies, digest) = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
    };
    fs::rename(&temp, out).map_err(|e| DeskError::io("write", out, &e))?;
    fsutil::sync_parent(out);
    let sent = outbox.join("sent");
    fsutil::create_dir(&sent)?;
    for path in &files {
        if let Some(name) = path.file_name() {
            let _ = fs::rename(path, sent.join(name));
        }
    }
    Ok(WrittenBundle {
        path: out.to_owned(),
        replies,
        manifest_serial: carry_manifest.then(|| manifest.serial()),
        digest: hex::encode(digest),
    })
}
