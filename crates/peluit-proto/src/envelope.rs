//! The report envelope and the follow-up: the plaintext a reporter's browser seals to every
//! manifest recipient, and how the desk opens it (docs/protocol.md#envelope, #follow-up).
//!
//! `Report` and `FollowUp` are plaintext: they have no public `Serialize`, no `Clone`, a
//! `Debug` that shows no text, and their text is zeroized on drop. They cross a process
//! boundary only as JSON inside an age envelope, through the private wire structs below.

use std::collections::BTreeSet;
use std::fmt;
use std::io;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::day::Day;
use crate::ids::{InstitutionId, UploadId};
use crate::keys::{SealIdentity, SealRecipient, VerifyingKey};
use crate::limits::{
    MAX_ANSWER_LEN, MAX_ATTACHMENT_LEN, MAX_ATTACHMENTS, MAX_ENVELOPE_LEN, MAX_QUESTIONS,
    MAX_SHORT_TEXT,
};
use crate::manifest::{FormDefinition, QuestionKind, VerifiedManifest};
use crate::seal::{open_padded, seal_padded};
use crate::sealed::SealedMessage;
use crate::wordlist::Language;
use crate::{Error, Result};

/// The envelope version this build speaks (reports and follow-ups alike).
pub const ENVELOPE_VERSION: u64 = 1;

const TYPE_REPORT: &str = "report";
const TYPE_FOLLOW_UP: &str = "follow-up";

/// Why a report or follow-up was refused. Problems name questions by their form id and
/// attachments by their position, never by content. [`code`](Self::code) is stable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportProblem {
    /// The report is for another institution than the manifest.
    #[error("the report is addressed to another institution")]
    WrongInstitution,
    /// More answers than [`MAX_QUESTIONS`].
    #[error("more than {MAX_QUESTIONS} answers")]
    TooManyAnswers,
    /// An answer's question id is not 1 to 32 characters of `a-z0-9_`.
    #[error("an answer names an invalid question id")]
    BadQuestionId,
    /// An answer names a question the form does not have.
    #[error("the form has no question {question:?}")]
    UnknownQuestion {
        /// The question id.
        question: String,
    },
    /// Two answers to one question.
    #[error("question {question:?} is answered twice")]
    DuplicateAnswer {
        /// The question id.
        question: String,
    },
    /// Answers are not in the form's order.
    #[error("the answer to {question:?} is out of the form's order")]
    AnswersOutOfOrder {
        /// The question id.
        question: String,
    },
    /// A required question has no answer or an empty one.
    #[error("question {question:?} must be answered")]
    MissingAnswer {
        /// The question id.
        question: String,
    },
    /// An answer is longer than its question allows.
    #[error("the answer to {question:?} is longer than {max_len} bytes")]
    AnswerTooLong {
        /// The question id.
        question: String,
        /// The limit in bytes.
        max_len: usize,
    },
    /// A `choice` answer is not one of the question's choice ids.
    #[error("the answer to {question:?} is not one of its choices")]
    NotAChoice {
        /// The question id.
        question: String,
    },
    /// A `date` answer is not a `YYYY-MM-DD` day.
    #[error("the answer to {question:?} is not a date (YYYY-MM-DD)")]
    NotADate {
        /// The question id.
        question: String,
    },
    /// A `money` answer is not a whole amount in digits.
    #[error("the answer to {question:?} is not an amount in digits")]
    NotAnAmount {
        /// The question id.
        question: String,
    },
    /// An answer holds control characters (line breaks only in long text).
    #[error("the answer to {question:?} holds control characters")]
    ControlCharacters {
        /// The question id.
        question: String,
    },
    /// More attachments than [`MAX_ATTACHMENTS`].
    #[error("{count} attachments; at most {MAX_ATTACHMENTS} are allowed")]
    TooManyAttachments {
        /// Attachments listed.
        count: usize,
    },
    /// An attachment's name is empty, too long, a path or holds control characters.
    #[error("attachment {index} has an invalid name")]
    BadAttachmentName {
        /// Position in the list, from 0.
        index: usize,
    },
    /// An attachment's media type is not a lowercase `type/subtype`.
    #[error("attachment {index} has an invalid media type")]
    BadMediaType {
        /// Position in the list, from 0.
        index: usize,
    },
    /// An attachment is larger than [`MAX_ATTACHMENT_LEN`].
    #[error("attachment {index} is too large")]
    AttachmentTooLarge {
        /// Position in the list, from 0.
        index: usize,
    },
    /// Two attachments name the same upload.
    #[error("attachment {index} repeats an earlier upload")]
    DuplicateAttachment {
        /// Position in the list, from 0.
        index: usize,
    },
    /// A follow-up's text is longer than [`MAX_ANSWER_LEN`].
    #[error("the follow-up text is longer than {MAX_ANSWER_LEN} bytes")]
    FollowUpTooLong,
    /// A follow-up's text holds control characters other than line breaks and tabs.
    #[error("the follow-up text holds control characters")]
    FollowUpControlCharacters,
    /// A follow-up with neither text nor attachments.
    #[error("the follow-up has neither text nor attachments")]
    EmptyFollowUp,
}

impl ReportProblem {
    /// A stable, kebab-case code for this problem (docs/protocol.md#envelope).
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongInstitution => "wrong-institution",
            Self::TooManyAnswers => "too-many-answers",
            Self::BadQuestionId => "bad-question-id",
            Self::UnknownQuestion { .. } => "unknown-question",
            Self::DuplicateAnswer { .. } => "duplicate-answer",
            Self::AnswersOutOfOrder { .. } => "answers-out-of-order",
            Self::MissingAnswer { .. } => "missing-answer",
            Self::AnswerTooLong { .. } => "answer-too-long",
            Self::NotAChoice { .. } => "not-a-choice",
            Self::NotADate { .. } => "not-a-date",
            Self::NotAnAmount { .. } => "not-an-amount",
            Self::ControlCharacters { .. } => "control-characters",
            Self::TooManyAttachments { .. } => "too-many-attachments",
            Self::BadAttachmentName { .. } => "bad-attachment-name",
            Self::BadMediaType { .. } => "bad-media-type",
            Self::AttachmentTooLarge { .. } => "attachment-too-large",
            Self::DuplicateAttachment { .. } => "duplicate-attachment",
            Self::FollowUpTooLong => "follow-up-too-long",
            Self::FollowUpControlCharacters => "follow-up-control-characters",
            Self::EmptyFollowUp => "empty-follow-up",
        }
    }
}

impl From<ReportProblem> for Error {
    fn from(problem: ReportProblem) -> Self {
        Error::ReportRefused(problem)
    }
}

/// One answer: the form's question id and the reporter's text.
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Answer {
    /// The question's id in the form.
    pub question: String,
    /// The answer, as typed (a choice id for `choice`, `YYYY-MM-DD` for `date`, digits
    /// for `money`).
    pub value: String,
}

impl Answer {
    /// An answer to `question`.
    pub fn new(question: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            value: value.into(),
        }
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("question", &self.question)
            .field("value", &"[redacted]")
            .finish()
    }
}

/// One attachment of a report or follow-up: sealed separately and uploaded before the
/// envelope, which names it and pins its ciphertext by digest.
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentRef {
    /// The upload holding the sealed attachment.
    #[zeroize(skip)]
    pub upload: UploadId,
    /// The file's name on the reporter's device.
    pub name: String,
    /// Lowercase `type/subtype`, `application/octet-stream` when unknown.
    pub media_type: String,
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the whole sealed attachment (what the server stores).
    pub sealed_sha256: [u8; 32],
}

impl fmt::Debug for AttachmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachmentRef")
            .field("upload", &self.upload)
            .finish_non_exhaustive()
    }
}

/// A report as the reporter wrote it. Plaintext: build it in the browser, seal it with
/// [`seal_report`], open it on the desk with [`open_report`].
#[derive(PartialEq, Eq)]
pub struct Report {
    /// The institution the report is for (the manifest's).
    pub institution: InstitutionId,
    /// The page language the reporter used.
    pub language: Language,
    /// The day the report was sealed.
    pub date: Day,
    /// Answers, in form order.
    pub answers: Vec<Answer>,
    /// Attachments, uploaded sealed before the envelope.
    pub attachments: Vec<AttachmentRef>,
    /// The reporter's reply key, derived from the receipt.
    pub reply_to: SealRecipient,
    /// The reporter's mailbox key, derived from the receipt.
    pub mailbox: VerifyingKey,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report")
            .field("institution", &self.institution)
            .field("language", &self.language)
            .field("date", &self.date)
            .field("answers", &self.answers.len())
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

/// A reporter's later message with more text or evidence. Plaintext, like [`Report`].
#[derive(PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FollowUp {
    /// The institution the follow-up is for.
    #[zeroize(skip)]
    pub institution: InstitutionId,
    /// The day it was sealed.
    #[zeroize(skip)]
    pub date: Day,
    /// The message, at most [`MAX_ANSWER_LEN`] bytes.
    pub text: String,
    /// More attachments.
    pub attachments: Vec<AttachmentRef>,
}

impl fmt::Debug for FollowUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowUp")
            .field("institution", &self.institution)
            .field("date", &self.date)
            .field("attachments", &self.attachments.len())
            .finish_non_exhaustive()
    }
}

fn id_is_valid(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Control characters other than the line breaks and tab a multi-line text may hold.
pub(crate) fn has_control_except_breaks(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A lowercase `type/subtype` without parameters, each part an RFC 6838 restricted name.
pub(crate) fn media_type_is_valid(media_type: &str) -> bool {
    let name_ok = |name: &str| {
        (1..=127).contains(&name.len())
            && name
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(
                        c,
                        b'!' | b'#' | b'$' | b'&' | b'^' | b'_' | b'.' | b'+' | b'-'
                    )
            })
    };
    media_type.len() <= MAX_SHORT_TEXT
        && media_type
            .split_once('/')
            .is_some_and(|(kind, sub)| name_ok(kind) && name_ok(sub))
}

/// A file name the desk or the page may offer as a download name: short, not a path, no
/// control characters.
pub(crate) fn attachment_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SHORT_TEXT
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        && name != "."
        && name != ".."
}

fn amount_is_valid(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|c| c.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'))
}

fn check_attachments(attachments: &[AttachmentRef]) -> Result<()> {
    // Bounded work for the desk and bounded metadata. docs/protocol.md#envelope
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ReportProblem::TooManyAttachments {
            count: attachments.len(),
        }
        .into());
    }
    let mut uploads = BTreeSet::new();
    for (index, a) in attachments.iter().enumerate() {
        // The desk shows the name and offers it as a file name: no paths, no control
        // characters. docs/protocol.md#envelope
        if !attachment_name_is_valid(&a.name) {
            return Err(ReportProblem::BadAttachmentName { index }.into());
        }
        if !media_type_is_valid(&a.media_type) {
            return Err(ReportProblem::BadMediaType { index }.into());
        }
        if a.size > MAX_ATTACHMENT_LEN {
            return Err(ReportProblem::AttachmentTooLarge { index }.into());
        }
        if !uploads.insert(a.upload) {
            return Err(ReportProblem::DuplicateAttachment { index }.into());
        }
    }
    Ok(())
}

impl Report {
    /// The rules that hold whatever the form: the desk checks them on every opened report
    /// (docs/protocol.md#envelope, "Structure").
    fn check_structure(&self) -> Result<()> {
        if self.answers.len() > MAX_QUESTIONS {
            return Err(ReportProblem::TooManyAnswers.into());
        }
        let mut seen = BTreeSet::new();
        for answer in &self.answers {
            let question = || answer.question.clone();
            if !id_is_valid(&answer.question) {
                return Err(ReportProblem::BadQuestionId.into());
            }
            if !seen.insert(answer.question.as_str()) {
                return Err(ReportProblem::DuplicateAnswer {
                    question: question(),
                }
                .into());
            }
            if answer.value.len() > MAX_ANSWER_LEN {
                return Err(ReportProblem::AnswerTooLong {
                    question: question(),
                    max_len: MAX_ANSWER_LEN,
                }
                .into());
            }
            if has_control_except_breaks(&answer.value) {
                return Err(ReportProblem::ControlCharacters {
                    question: question(),
                }
                .into());
            }
        }
        check_attachments(&self.attachments)
    }

    /// Checks the report against the signed form: every answer names a question of the
    /// form, in form order, once; required questions are answered; each answer fits its
    /// question's kind and length; attachments are within limits
    /// (docs/protocol.md#envelope, "Form check").
    pub fn check_against(&self, form: &FormDefinition) -> Result<()> {
        self.check_structure()?;
        let mut next = 0;
        for answer in &self.answers {
            let question = || answer.question.clone();
            // Only questions the institution signed. docs/protocol.md#envelope
            let Some(index) = form.questions.iter().position(|q| q.id == answer.question) else {
                return Err(ReportProblem::UnknownQuestion {
                    question: question(),
                }
                .into());
            };
            // One order, so one report has one encoding. docs/protocol.md#envelope
            if index < next {
                return Err(ReportProblem::AnswersOutOfOrder {
                    question: question(),
                }
                .into());
            }
            next = index + 1;
            let q = &form.questions[index];
            let value = answer.value.as_str();
            if value.len() > q.max_len as usize {
                return Err(ReportProblem::AnswerTooLong {
                    question: question(),
                    max_len: q.max_len as usize,
                }
                .into());
            }
            // An empty answer is no answer; the kind rules apply to given answers.
            if value.is_empty() {
                continue;
            }
            let fits = match q.kind {
                QuestionKind::Text => {
                    if value.chars().any(char::is_control) {
                        return Err(ReportProblem::ControlCharacters {
                            question: question(),
                        }
                        .into());
                    }
                    Ok(())
                }
                QuestionKind::LongText => Ok(()),
                QuestionKind::Choice => {
                    if q.choices.iter().any(|c| c.id == value) {
                        Ok(())
                    } else {
                        Err(ReportProblem::NotAChoice {
                            question: question(),
                        })
                    }
                }
                QuestionKind::Date => {
                    value
                        .parse::<Day>()
                        .map(drop)
                        .map_err(|_| ReportProblem::NotADate {
                            question: question(),
                        })
                }
                QuestionKind::Money => {
                    if amount_is_valid(value) {
                        Ok(())
                    } else {
                        Err(ReportProblem::NotAnAmount {
                            question: question(),
                        })
                    }
                }
            };
            fits?;
        }
        // Required questions are answered, and not with an empty text.
        // docs/protocol.md#envelope
        for q in form.questions.iter().filter(|q| q.required) {
            let answered = self
                .answers
                .iter()
                .any(|a| a.question == q.id && !a.value.is_empty());
            if !answered {
                return Err(ReportProblem::MissingAnswer {
                    question: q.id.clone(),
                }
                .into());
            }
        }
        Ok(())
    }
}

impl FollowUp {
    /// Checks the follow-up's rules (docs/protocol.md#follow-up).
    pub fn check(&self) -> Result<()> {
        if self.text.len() > MAX_ANSWER_LEN {
            return Err(ReportProblem::FollowUpTooLong.into());
        }
        if has_control_except_breaks(&self.text) {
            return Err(ReportProblem::FollowUpControlCharacters.into());
        }
        if self.text.is_empty() && self.attachments.is_empty() {
            return Err(ReportProblem::EmptyFollowUp.into());
        }
        check_attachments(&self.attachments)
    }
}

/// Serde for a 32-byte digest as 64 lowercase hex digits, the form `sha256sum` prints, so
/// that anyone can compare it with a file's digest by eye.
mod serde_hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        crate::encoding::unhex_array::<32>(&text, "sealed_sha256").map_err(D::Error::custom)
    }
}

#[derive(Serialize)]
struct AnswerWireOut<'a> {
    question: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct AttachmentWireOut<'a> {
    upload: UploadId,
    name: &'a str,
    media_type: &'a str,
    size: u64,
    #[serde(with = "serde_hex32")]
    sealed_sha256: [u8; 32],
}

impl<'a> AttachmentWireOut<'a> {
    fn list(attachments: &'a [AttachmentRef]) -> Vec<Self> {
        attachments
            .iter()
            .map(|a| Self {
                upload: a.upload,
                name: &a.name,
                media_type: &a.media_type,
                size: a.size,
                sealed_sha256: a.sealed_sha256,
            })
            .collect()
    }
}

/// docs/protocol.md#envelope, "Wire form". Field order is the canonical order.
#[derive(Serialize)]
struct ReportWireOut<'a> {
    version: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    institution: &'a InstitutionId,
    language: Language,
    date: Day,
    answers: Vec<AnswerWireOut<'a>>,
    attachments: Vec<AttachmentWireOut<'a>>,
    reply_to: &'a SealRecipient,
    mailbox: &'a VerifyingKey,
}

impl<'a> ReportWireOut<'a> {
    /// The wire form of `report`, borrowing its text.
    fn from_report(report: &'a Report) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            kind: TYPE_REPORT,
            institution: &report.institution,
            language: report.language,
            date: report.date,
            answers: report
                .answers
                .iter()
                .map(|a| AnswerWireOut {
                    question: &a.question,
                    value: &a.value,
                })
                .collect(),
            attachments: AttachmentWireOut::list(&report.attachments),
            reply_to: &report.reply_to,
            mailbox: &report.mailbox,
        }
    }
}

/// docs/protocol.md#follow-up, "Wire form".
#[derive(Serialize)]
struct FollowUpWireOut<'a> {
    version: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    institution: &'a InstitutionId,
    date: Day,
    text: &'a str,
    attachments: Vec<AttachmentWireOut<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerWireIn {
    question: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentWireIn {
    upload: UploadId,
    name: String,
    media_type: String,
    size: u64,
    #[serde(with = "serde_hex32")]
    sealed_sha256: [u8; 32],
}

impl AttachmentWireIn {
    /// The attachment references of a parsed attachment list, in order.
    fn into_refs(list: Vec<Self>) -> Vec<AttachmentRef> {
        list.into_iter()
            .map(|a| AttachmentRef {
                upload: a.upload,
                name: a.name,
                media_type: a.media_type,
                size: a.size,
                sealed_sha256: a.sealed_sha256,
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportWireIn {
    #[allow(dead_code, reason = "checked by the probe before this parse")]
    version: u64,
    #[serde(rename = "type")]
    #[allow(dead_code, reason = "checked by the probe before this parse")]
    kind: String,
    institution: InstitutionId,
    language: Language,
    date: Day,
    answers: Vec<AnswerWireIn>,
    attachments: Vec<AttachmentWireIn>,
    reply_to: SealRecipient,
    mailbox: VerifyingKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUpWireIn {
    #[allow(dead_code, reason = "checked by the probe before this parse")]
    version: u64,
    #[serde(rename = "type")]
    #[allow(dead_code, reason = "checked by the probe before this parse")]
    kind: String,
    institution: InstitutionId,
    date: Day,
    text: String,
    attachments: Vec<AttachmentWireIn>,
}

/// The two fields every envelope starts with, read before the full parse.
#[derive(Deserialize)]
struct Probe {
    version: u64,
    #[serde(rename = "type")]
    kind: String,
}

/// Counts bytes, to size the output buffer exactly.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compact JSON in a zeroizing buffer allocated once at its exact size, so that no
/// reallocation leaves a copy of the plaintext behind in freed memory.
fn plaintext_json<T: Serialize>(wire: &T) -> Result<Zeroizing<Vec<u8>>> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, wire).map_err(|_| Error::InvalidUse("envelope JSON"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *out, wire).map_err(|_| Error::InvalidUse("envelope JSON"))?;
    Ok(out)
}

fn seal_json(json: &[u8], manifest: &VerifiedManifest) -> Result<SealedMessage> {
    if json.len() > MAX_ENVELOPE_LEN {
        return Err(Error::TooLarge("envelope"));
    }
    let recipients = manifest.seal_recipients();
    let sealed = seal_padded(json, &recipients)?;
    SealedMessage::check(sealed, recipients.len(), MAX_ENVELOPE_LEN)
}

/// Seals an envelope's wire form to every recipient of the manifest.
fn seal_wire<T: Serialize>(wire: &T, manifest: &VerifiedManifest) -> Result<SealedMessage> {
    let json = plaintext_json(wire)?;
    seal_json(&json, manifest)
}

/// Opens an envelope, checks that it is version 1 of `kind` and parses its wire form.
fn open_wire<T: DeserializeOwned>(
    sealed: &SealedMessage,
    identities: &[SealIdentity],
    kind: &'static str,
    what: &'static str,
) -> Result<T> {
    if sealed.as_bytes().len() > MAX_ENVELOPE_LEN {
        return Err(Error::TooLarge(what));
    }
    let json = open_padded(sealed.as_bytes(), identities, MAX_ENVELOPE_LEN)?;
    let probe: Probe = serde_json::from_slice(&json).map_err(|_| Error::Malformed(what))?;
    if probe.version != ENVELOPE_VERSION {
        return Err(Error::UnsupportedVersion {
            what,
            version: probe.version,
        });
    }
    // A follow-up never reads as a report, nor the reverse. docs/protocol.md#follow-up
    if probe.kind != kind {
        return Err(Error::Malformed(what));
    }
    serde_json::from_slice(&json).map_err(|_| Error::Malformed(what))
}

/// Seals a report to every recipient of the manifest, after checking it against the
/// manifest's institution and form (docs/protocol.md#envelope).
pub fn seal_report(report: &Report, manifest: &VerifiedManifest) -> Result<SealedMessage> {
    // A report is only ever sealed for the institution whose keys it uses.
    // docs/protocol.md#envelope
    if &report.institution != manifest.institution_id() {
        return Err(ReportProblem::WrongInstitution.into());
    }
    report.check_against(manifest.form())?;
    seal_wire(&ReportWireOut::from_report(report), manifest)
}

/// Opens a sealed report with one of `identities` and checks its form-independent rules;
/// check it against the manifest's form with [`Report::check_against`].
pub fn open_report(sealed: &SealedMessage, identities: &[SealIdentity]) -> Result<Report> {
    let wire: ReportWireIn = open_wire(sealed, identities, TYPE_REPORT, "report envelope")?;
    let report = Report {
        institution: wire.institution,
        language: wire.language,
        date: wire.date,
        answers: wire
            .answers
            .into_iter()
            .map(|a| Answer {
                question: a.question,
                value: a.value,
            })
            .collect(),
        attachments: AttachmentWireIn::into_refs(wire.attachments),
        reply_to: wire.reply_to,
        mailbox: wire.mailbox,
    };
    report.check_structure()?;
    Ok(report)
}

/// Seals a follow-up to every recipient of the manifest (docs/protocol.md#follow-up).
pub fn seal_follow_up(follow_up: &FollowUp, manifest: &VerifiedManifest) -> Result<SealedMessage> {
    if &follow_up.institution != manifest.institution_id() {
        return Err(ReportProblem::WrongInstitution.into());
    }
    follow_up.check()?;
    let wire = FollowUpWireOut {
        version: ENVELOPE_VERSION,
        kind: TYPE_FOLLOW_UP,
        institution: &follow_up.institution,
        date: follow_up.date,
        text: &follow_up.text,
        attachments: AttachmentWireOut::list(&follow_up.attachments),
    };
    seal_wire(&wire, manifest)
}

/// Opens a sealed follow-up with one of `identities` and checks its rules.
pub fn open_follow_up(sealed: &SealedMessage, identities: &[SealIdentity]) -> Result<FollowUp> {
    let wire: FollowUpWireIn = open_wire(sealed, identities, TYPE_FOLLOW_UP, "follow-up")?;
    let follow_up = FollowUp {
        institution: wire.institution,
        date: wire.date,
        text: wire.text,
        attachments: AttachmentWireIn::into_refs(wire.attachments),
    };
    follow_up.check()?;
    Ok(follow_up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::manifest::{
        Institution, MANIFEST_VERSION, Manifest, ManifestKey, Purpose, Question, Translations,
        VerifyPolicy,
    };

    fn seed(n: u8) -> Zeroizing<[u8; 32]> {
        Zeroizing::new([n; 32])
    }

    fn identity(n: u8) -> SealIdentity {
        SealIdentity::from_secret_bytes(&seed(n))
    }

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    /// Two investigators (identities 0x11, 0x12) and the escrow (0x30).
    fn manifest() -> VerifiedManifest {
        let key = |holder: &str, purpose, public: String| ManifestKey {
            holder: holder.to_owned(),
            purpose,
            public,
        };
        let mut keys = Vec::new();
        for n in [1u8, 2] {
            let holder = format!("investigator:{n}");
            keys.push(key(
                &holder,
                Purpose::Seal,
                identity(0x10 + n).recipient().to_string(),
            ));
            let signing = SigningKey::from_seed(&seed(0x20 + n)).verifying_key();
            keys.push(key(&holder, Purpose::ReplySigning, signing.to_string()));
        }
        keys.push(key(
            "escrow",
            Purpose::EscrowSeal,
            identity(0x30).recipient().to_string(),
        ));
        let mut form = FormDefinition::kws_default();
        form.questions.push(Question {
            id: "first_noticed".to_owned(),
            kind: QuestionKind::Date,
            required: false,
            max_len: 10,
            label: Translations::id_en("Pertama kali diketahui", "First noticed"),
            help: Translations::id_en("Tanggal", "Date"),
            choices: vec![],
        });
        let manifest_key = SigningKey::from_seed(&seed(1));
        Manifest {
            version: MANIFEST_VERSION,
            institution: Institution {
                id: "itjen-contoh".parse().unwrap(),
                name: "Inspektorat Jenderal Kementerian Contoh".to_owned(),
            },
            origins: vec!["https://lapor.contoh.go.id".to_owned()],
            serial: 1,
            valid_from: day("2026-01-01"),
            valid_until: day("2026-12-31"),
            keys,
            form,
        }
        .sign(&manifest_key)
        .verify(&VerifyPolicy::new(
            manifest_key.verifying_key(),
            day("2026-06-15"),
        ))
        .unwrap()
    }

    fn attachment(n: u8) -> AttachmentRef {
        AttachmentRef {
            upload: UploadId::from_bytes([n; 16]),
            name: format!("bukti-{n}.pdf"),
            media_type: "application/pdf".to_owned(),
            size: 12_345,
            sealed_sha256: [n; 32],
        }
    }

    fn report() -> Report {
        Report {
            institution: "itjen-contoh".parse().unwrap(),
            language: Language::Id,
            date: day("2026-06-15"),
            answers: vec![
                Answer::new("category", "pengadaan"),
                Answer::new("what_happened", "Harga kontrak digelembungkan.\nDua kali."),
                Answer::new("when", "Maret 2026"),
                Answer::new("estimated_loss", "250000000"),
                Answer::new("free_text", ""),
                Answer::new("first_noticed", "2026-03-02"),
            ],
            attachments: vec![attachment(1), attachment(2)],
            reply_to: identity(0x40).recipient(),
            mailbox: SigningKey::from_seed(&seed(0x41)).verifying_key(),
        }
    }

    fn problem(edit: impl FnOnce(&mut Report)) -> ReportProblem {
        let mut r = report();
        edit(&mut r);
        match r.check_against(manifest().form()) {
            Err(Error::ReportRefused(problem)) => problem,
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn reports_round_trip_to_every_recipient() {
        let manifest = manifest();
        let sealed = seal_report(&report(), &manifest).unwrap();
        assert!(sealed.as_bytes().len() >= 4096, "padded");
        for n in [0x11, 0x12, 0x30] {
            let opened = open_report(&sealed, &[identity(n)]).unwrap();
            assert!(opened == report());
            opened.check_against(manifest.form()).unwrap();
        }
        assert!(matches!(
            open_report(&sealed, &[identity(0x40)]),
            Err(Error::NoMatchingKey)
        ));
        // A follow-up opener refuses a report.
        assert!(matches!(
            open_follow_up(&sealed, &[identity(0x11)]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn follow_ups_round_trip_and_never_read_as_reports() {
        let manifest = manifest();
        let follow_up = FollowUp {
            institution: "itjen-contoh".parse().unwrap(),
            date: day("2026-07-01"),
            text: "Ada dokumen baru.".to_owned(),
            attachments: vec![attachment(3)],
        };
        let sealed = seal_follow_up(&follow_up, &manifest).unwrap();
        let opened = open_follow_up(&sealed, &[identity(0x30)]).unwrap();
        assert!(opened == follow_up);
        assert!(matches!(
            open_report(&sealed, &[identity(0x30)]),
            Err(Error::Malformed(_))
        ));
        for (text, institution, expected) in [
            (String::new(), "itjen-contoh", ReportProblem::EmptyFollowUp),
            (
                "x".repeat(MAX_ANSWER_LEN + 1),
                "itjen-contoh",
                ReportProblem::FollowUpTooLong,
            ),
            (
                "x".to_owned(),
                "itjen-lain",
                ReportProblem::WrongInstitution,
            ),
        ] {
            let refused = FollowUp {
                text,
                attachments: vec![],
                institution: institution.parse().unwrap(),
                date: day("2026-07-01"),
            };
            match seal_follow_up(&refused, &manifest) {
                Err(Error::ReportRefused(problem)) => assert_eq!(problem, expected),
                other => panic!("expected {expected:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn debug_output_shows_no_text() {
        let shown = format!("{:?}", report());
        for secret in ["digelembungkan", "Maret", "bukti-1", "250000000"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let follow_up = FollowUp {
            institution: "itjen-contoh".parse().unwrap(),
            date: day("2026-07-01"),
            text: "rahasia".to_owned(),
            attachments: vec![attachment(3)],
        };
        let shown = format!("{follow_up:?}");
        assert!(
            !shown.contains("rahasia") && !shown.contains("bukti"),
            "{shown}"
        );
    }

    #[test]
    fn reports_for_another_institution_are_not_sealed() {
        let mut r = report();
        r.institution = "itjen-lain".parse().unwrap();
        assert!(matches!(
            seal_report(&r, &manifest()),
            Err(Error::ReportRefused(ReportProblem::WrongInstitution))
        ));
    }

    #[test]
    fn answers_must_fit_the_form() {
        let q = |s: &str| s.to_owned();
        assert_eq!(
            problem(|r| r.answers.push(Answer::new("nik", "3174..."))),
            ReportProblem::UnknownQuestion { question: q("nik") }
        );
        assert_eq!(
            problem(|r| r.answers.insert(1, Answer::new("category", "suap"))),
            ReportProblem::DuplicateAnswer {
                question: q("category")
            }
        );
        assert_eq!(
            problem(|r| r.answers.swap(0, 1)),
            ReportProblem::AnswersOutOfOrder {
                question: q("category")
            }
        );
        assert_eq!(
            problem(|r| {
                r.answers.remove(1);
            }),
            ReportProblem::MissingAnswer {
                question: q("what_happened")
            }
        );
        assert_eq!(
            problem(|r| r.answers[1].value.clear()),
            ReportProblem::MissingAnswer {
                question: q("what_happened")
            }
        );
        assert_eq!(
            problem(|r| r.answers[2].value = "x".repeat(257)),
            ReportProblem::AnswerTooLong {
                question: q("when"),
                max_len: 256
            }
        );
        assert_eq!(
            problem(|r| r.answers[1].value = "x".repeat(MAX_ANSWER_LEN + 1)),
            ReportProblem::AnswerTooLong {
                question: q("what_happened"),
                max_len: MAX_ANSWER_LEN
            }
        );
        assert_eq!(
            problem(|r| r.answers[0].value = q("Suap")),
            ReportProblem::NotAChoice {
                question: q("category")
            }
        );
        for bad in ["1.500.000", "Rp 5", "007", "-5", "1e9"] {
            assert_eq!(
                problem(|r| r.answers[3].value = bad.to_owned()),
                ReportProblem::NotAnAmount {
                    question: q("estimated_loss")
                },
                "{bad}"
            );
        }
        for bad in ["2026-02-30", "2 Maret", "2026-3-02"] {
            assert_eq!(
                problem(|r| r.answers[5].value = bad.to_owned()),
                ReportProblem::NotADate {
                    question: q("first_noticed")
                },
                "{bad}"
            );
        }
        assert_eq!(
            problem(|r| r.answers[2].value = q("Maret\n2026")),
            ReportProblem::ControlCharacters {
                question: q("when")
            }
        );
        assert_eq!(
            problem(|r| r.answers[1].value = q("a\u{0}b")),
            ReportProblem::ControlCharacters {
                question: q("what_happened")
            }
        );
        assert_eq!(
            problem(|r| r.answers[1].question = q("What")),
            ReportProblem::BadQuestionId
        );
        // Line breaks and tabs are fine in long text; an empty optional answer is no answer.
        let mut r = report();
        r.answers[1].value = q("baris satu\r\nbaris\tdua");
        r.answers[3].value.clear();
        r.check_against(manifest().form()).unwrap();
    }

    #[test]
    fn attachments_are_bounded_and_named_safely() {
        assert_eq!(
            problem(|r| r.attachments = (0..21).map(attachment).collect()),
            ReportProblem::TooManyAttachments { count: 21 }
        );
        for bad in [
            "",
            "..",
            ".",
            "a/b.pdf",
            "a\\b.pdf",
            "a\nb",
            &"x".repeat(257),
        ] {
            assert_eq!(
                problem(|r| r.attachments[1].name = bad.to_owned()),
                ReportProblem::BadAttachmentName { index: 1 },
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "pdf",
            "Application/PDF",
            "text/plain; charset=utf-8",
            "a/",
        ] {
            assert_eq!(
                problem(|r| r.attachments[0].media_type = bad.to_owned()),
                ReportProblem::BadMediaType { index: 0 },
                "{bad:?}"
            );
        }
        assert_eq!(
            problem(|r| r.attachments[0].size = MAX_ATTACHMENT_LEN + 1),
            ReportProblem::AttachmentTooLarge { index: 0 }
        );
        assert_eq!(
            problem(|r| r.attachments[1].upload = r.attachments[0].upload),
            ReportProblem::DuplicateAttachment { index: 1 }
        );
        let mut r = report();
        r.attachments[0].name = "rekaman rapat (2).m4a".to_owned();
        r.attachments[0].media_type = "application/vnd.oasis.opendocument.text".to_owned();
        r.check_against(manifest().form()).unwrap();
    }

    #[test]
    fn oversized_reports_are_refused_before_sealing() {
        let mut form = FormDefinition::kws_default();
        let template = form.questions[1].clone();
        form.questions = (0..40)
            .map(|i| Question {
                id: format!("q{i}"),
                required: false,
                ..template.clone()
            })
            .collect();
        let mut r = report();
        r.answers = (0..40)
            .map(|i| Answer::new(format!("q{i}"), "x".repeat(MAX_ANSWER_LEN)))
            .collect();
        r.check_against(&form).unwrap();
        let json = plaintext_json(&ReportWireOut::from_report(&r)).unwrap();
        assert_eq!(json.capacity(), json.len(), "allocated once, exactly");
        assert!(matches!(
            seal_json(&json, &manifest()),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn problem_codes_are_distinct() {
        let all = [
            ReportProblem::WrongInstitution,
            ReportProblem::TooManyAnswers,
            ReportProblem::BadQuestionId,
            ReportProblem::FollowUpTooLong,
            ReportProblem::EmptyFollowUp,
            ReportProblem::FollowUpControlCharacters,
        ];
        let codes: BTreeSet<_> = all.iter().map(ReportProblem::code).collect();
        assert_eq!(codes.len(), all.len());
    }
}
