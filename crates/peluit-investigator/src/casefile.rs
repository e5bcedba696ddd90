//! One case folder: `case.json` (what the desk knows about the case), `report.txt` (the
//! report as readable text), `attachments/`, `messages/` (follow-ups and replies in
//! order) and `index.html` (docs/desk.md#case-folder).

use std::path::Path;

use peluit_proto::day::Day;
use peluit_proto::envelope::{AttachmentRef, Report};
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_proto::keys::{SealRecipient, VerifyingKey};
use peluit_proto::manifest::{FormDefinition, QuestionKind};
use peluit_proto::wordlist::Language;
use serde::{Deserialize, Serialize};

use crate::desk::{DESK_FORMAT_VERSION, parse_json, to_json};
use crate::error::DeskResult;
use crate::fsutil;
use crate::names::risk;

/// `case.json`: metadata of a case. It names files and keys; the report's text lives
/// in `report.txt` only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMeta {
    /// Always [`DESK_FORMAT_VERSION`].
    pub version: u64,
    /// The case.
    pub case: CaseId,
    /// The institution.
    pub institution: InstitutionId,
    /// The day the server received it.
    pub received: Day,
    /// The day the reporter sealed it.
    pub reported: Day,
    /// The page language the reporter used.
    pub language: Language,
    /// The `category` answer (a choice id), if the form has one.
    pub category: Option<String>,
    /// The status last sent to the reporter (`received` until one is sent).
    pub status: String,
    /// The reporter's reply key; `None` for a bring-your-own-ciphertext file, whose
    /// sender has no mailbox.
    pub reply_to: Option<SealRecipient>,
    /// The reporter's mailbox key.
    pub mailbox: VerifyingKey,
    /// Attachments of the report and of follow-ups.
    pub attachments: Vec<AttachmentMeta>,
    /// Follow-ups and replies, in the order the desk learnt of them.
    pub messages: Vec<MessageMeta>,
    /// Follow-ups not yet shown with `cases show`.
    pub unread_follow_ups: u32,
    /// The `seq` of the next reply or status change.
    pub next_reply_seq: u32,
    /// The server reported the case withdrawn or expired.
    pub withdrawn: bool,
}

/// One attachment of a case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentMeta {
    /// The upload it arrived in.
    pub upload: UploadId,
    /// `report`, or `follow-up N`.
    pub source: String,
    /// Position in its envelope's attachment list.
    pub index: u32,
    /// The name the reporter's device gave it.
    pub original_name: String,
    /// The sanitised file name under `attachments/`.
    pub file: String,
    /// Declared media type.
    pub media_type: String,
    /// Plaintext size.
    pub size: u64,
    /// SHA-256 of the sealed attachment, as the envelope pins it (hex).
    pub sealed_sha256: String,
    /// Whether the file was received, checked and written.
    pub stored: bool,
}

/// The `source` of a case's file sent through the bring-your-own-ciphertext form.
pub const OWN_CIPHERTEXT: &str = "own-ciphertext";

/// How the desk marks an attachment its case announces but no bundle has carried yet (an
/// upload not finished, or a frame left out): a later export brings it.
pub const NOT_RECEIVED: &str = "belum diterima / not received yet";

impl AttachmentMeta {
    /// The plaintext size, once known: a large bring-your-own file has no envelope to
    /// declare it, so it is known only when the file has arrived.
    pub fn known_size(&self) -> Option<u64> {
        (self.stored || self.source != OWN_CIPHERTEXT).then_some(self.size)
    }

    /// The size as the case views show it.
    pub fn size_label(&self) -> String {
        self.known_size()
            .map_or_else(|| "? bytes".to_owned(), |n| format!("{n} bytes"))
    }

    /// The warning for this file's type, if any.
    pub fn warning(&self) -> Option<&'static str> {
        risk(&self.file, &self.media_type).map(|r| r.warning())
    }
}

/// One message of a case thread.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageMeta {
    /// File name under `messages/`.
    pub file: String,
    /// `follow-up`, `reply` or `status`.
    pub kind: String,
    /// The follow-up's or reply's sequence number.
    pub seq: u32,
    /// Its day.
    pub date: Day,
}

impl CaseMeta {
    /// The metadata of a freshly opened report.
    pub fn from_report(case: CaseId, received: Day, report: &Report) -> Self {
        let category = report
            .answers
            .iter()
            .find(|a| a.question == "category")
            .map(|a| a.value.clone());
        Self {
            version: DESK_FORMAT_VERSION,
            case,
            institution: report.institution.clone(),
            received,
            reported: report.date,
            language: report.language,
            category,
            status: "received".to_owned(),
            reply_to: Some(report.reply_to.clone()),
            mailbox: report.mailbox,
            attachments: Vec::new(),
            messages: Vec::new(),
            unread_follow_ups: 0,
            next_reply_seq: 0,
            withdrawn: false,
        }
    }

    /// Reads `case.json` from a case folder.
    pub fn load(dir: &Path) -> DeskResult<Self> {
        let path = dir.join("case.json");
        parse_json(&fsutil::read(&path)?, &path)
    }

    /// Writes `case.json` into a case folder atomically.
    pub fn save(&self, dir: &Path) -> DeskResult<()> {
        fsutil::write_atomic(&dir.join("case.json"), &to_json(self))
    }

    /// How many of its attachments no bundle has carried yet.
    pub fn not_received(&self) -> usize {
        self.attachments.iter().filter(|a| !a.stored).count()
    }

    /// The attachment count as the case lists show it, naming those not received yet.
    pub fn attachments_summary(&self) -> String {
        match self.not_received() {
            0 => self.attachments.len().to_string(),
            n => format!("{} ({n} {NOT_RECEIVED})", self.attachments.len()),
        }
    }

    /// The follow-up sequence numbers already held.
    pub fn has_follow_up(&self, seq: u32) -> bool {
        self.messages
            .iter()
            .any(|m| m.kind == "follow-up" && m.seq == seq)
    }

    /// The next free message file name for `kind`.
    pub fn next_message_file(&self, kind: &str, date: Day) -> String {
        format!("{:03}-{date}-{kind}.txt", self.messages.len() + 1)
    }
}

/// The attachment entries of an envelope, with sanitised, distinct file names.
pub fn attachment_entries(
    refs: &[AttachmentRef],
    source: &str,
    existing: &[AttachmentMeta],
) -> Vec<AttachmentMeta> {
    let mut taken: std::collections::BTreeSet<String> =
        existing.iter().map(|a| a.file.to_lowercase()).collect();
    // Names the case folder itself uses stay free.
    taken.insert("case.json".to_owned());
    refs.iter()
        .enumerate()
        .map(|(index, a)| AttachmentMeta {
            upload: a.upload,
            source: source.to_owned(),
            index: index as u32,
            original_name: a.name.clone(),
            file: crate::names::sanitise(&a.name, &mut taken),
            media_type: a.media_type.clone(),
            size: a.size,
            sealed_sha256: hex::encode(a.sealed_sha256),
            stored: false,
        })
        .collect()
}

/// The report as readable text: each question's label in both languages and the answer;
/// choice answers are shown with their label.
pub fn render_report(
    case: CaseId,
    received: Day,
    report: &Report,
    form: &FormDefinition,
) -> String {
    let mut out = String::new();
    out.push_str(&format!("Kasus / Case: {case}\n"));
    out.push_str(&format!("Instansi / Institution: {}\n", report.institution));
    out.push_str(&format!(
        "Dilaporkan / Reported: {} (bahasa / language: {})\n",
        report.date,
        report.language.tag()
    ));
    out.push_str(&format!("Diterima / Received: {received}\n"));
    for answer in &report.answers {
        if answer.value.is_empty() {
            continue;
        }
        let question = form.question(&answer.question);
        let heading = question.map_or_else(
            || answer.question.clone(),
            |q| {
                format!(
                    "{} / {}",
                    q.label.text(Language::Id),
                    q.label.text(Language::En)
                )
            },
        );
        out.push_str(&format!("\n== {heading} ==\n"));
        let shown = match question {
            Some(q) if q.kind == QuestionKind::Choice => {
                q.choices.iter().find(|c| c.id == answer.value).map_or_else(
                    || answer.value.clone(),
                    |c| {
                        format!(
                            "{} / {} ({})",
                            c.label.text(Language::Id),
                            c.label.text(Language::En),
                            c.id
                        )
                    },
                )
            }
            _ => answer.value.clone(),
        };
        out.push_str(&shown);
        out.push('\n');
    }
    if !report.attachments.is_empty() {
        out.push_str("\n== Lampiran / Attachments ==\n");
        out.push_str("(see case.json and the attachments/ folder / lihat folder attachments/)\n");
    }
    out
}

/// The label of a category choice id, in both languages, from the form.
pub fn category_label(form: &FormDefinition, category: &str) -> String {
    form.question("category")
        .and_then(|q| q.choices.iter().find(|c| c.id == category))
        .map_or_else(
            || category.to_owned(),
            |c| {
                format!(
                    "{} / {}",
                    c.label.text(Language::Id),
                    c.label.text(Language::En)
                )
            },
        )
}
