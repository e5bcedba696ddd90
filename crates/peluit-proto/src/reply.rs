//! Replies and status changes: written and signed on the air-gapped desk, sealed to the
//! reporter and the inspectorate, checked by the server, opened by the page (docs/protocol.md#reply).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::day::Day;
use crate::encoding;
use crate::envelope;
use crate::header;
use crate::ids::{CaseId, InstitutionId};
use crate::keys::{SealIdentity, SealRecipient, SignContext, Signature, SigningKey, VerifyingKey};
use crate::limits::{MAX_ANSWER_LEN, MAX_ATTACHMENTS, MAX_REPLY_LEN};
use crate::manifest::{self, SignedManifest, VerifiedManifest, VerifyPolicy};
use crate::seal;
use crate::{Error, Result};

/// The version of the sealed reply and of the sealed plaintext inside it.
pub const REPLY_VERSION: u64 = 1;

/// Largest `SealedReply` JSON document: base64 of the largest ciphertext plus the other
/// fields, which are bounded and short (docs/protocol.md#reply).
pub const MAX_SEALED_REPLY_JSON_LEN: usize = 4 * MAX_REPLY_LEN.div_ceil(3) + 4096;

/// A case's status as the reporter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The report reached the inspectorate (wire `received`).
    Received,
    /// An investigator is working on it (wire `in-review`).
    InReview,
    /// It was handed to the competent authority (wire `forwarded`).
    Forwarded,
    /// The case is closed (wire `closed`).
    Closed,
}

impl Status {
    /// Every status, in the order a case normally passes through them.
    pub const ALL: [Status; 4] = [
        Status::Received,
        Status::InReview,
        Status::Forwarded,
        Status::Closed,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::InReview => "in-review",
            Self::Forwarded => "forwarded",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(Error::Malformed("reply status"))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reply is: a message, or a status change (which may carry a note in `text`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// A message from the investigator.
    Message,
    /// A change of the case's status.
    Status(Status),
}

/// A file sent inline with a reply. Plaintext: zeroized on drop, redacted in `Debug`.
pub struct ReplyAttachment {
    /// File name shown to the reporter; no path separators or control characters.
    pub name: String,
    /// Media type, `type/subtype`.
    pub media_type: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

impl Drop for ReplyAttachment {
    fn drop(&mut self) {
        self.name.zeroize();
        self.media_type.zeroize();
        self.data.zeroize();
    }
}

impl fmt::Debug for ReplyAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplyAttachment([redacted])")
    }
}

/// An investigator's reply or status change, in plaintext. It exists only on the desk and
/// in the reporter's page: it is neither `Clone` nor `Serialize`, prints redacted and is
/// zeroized on drop; the only way onto the wire is [`seal_reply`].
pub struct Reply {
    /// The case this reply belongs to.
    pub case: CaseId,
    /// Per-case counter set by the desk, so the page orders replies and drops duplicates.
    pub seq: u32,
    /// The day it was written.
    pub date: Day,
    /// Message or status change.
    pub kind: ReplyKind,
    /// The text; may be empty for a bare status change.
    pub text: String,
    /// Files sent inline.
    pub attachments: Vec<ReplyAttachment>,
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("case", &self.case)
            .field("seq", &self.seq)
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

/// Checks the limits and text rules of a plaintext reply, on both sealing and opening.
fn check_reply(reply: &Reply) -> Result<()> {
    // Same bound as a form answer. docs/protocol.md#reply
    if reply.text.len() > MAX_ANSWER_LEN {
        return Err(Error::TooLarge("reply text"));
    }
    // Text is shown as is: no control characters but line breaks and tab, as in a
    // report. docs/protocol.md#reply
    if envelope::has_control_except_breaks(&reply.text) {
        return Err(Error::Malformed("reply text: control characters"));
    }
    if reply.attachments.len() > MAX_ATTACHMENTS {
        return Err(Error::TooLarge("reply attachment list"));
    }
    // A message must say something; a status change may be bare. docs/protocol.md#reply
    if reply.kind == ReplyKind::Message && reply.text.is_empty() && reply.attachments.is_empty() {
        return Err(Error::Malformed("reply: empty message"));
    }
    for attachment in &reply.attachments {
        check_attachment_name(&attachment.name)?;
        check_media_type(&attachment.media_type)?;
    }
    Ok(())
}

/// The page offers the name as a download name: it must not climb out of a folder or
/// smuggle control characters into a file dialog. docs/protocol.md#reply
fn check_attachment_name(name: &str) -> Result<()> {
    if envelope::attachment_name_is_valid(name) {
        Ok(())
    } else {
        Err(Error::Malformed("reply attachment name"))
    }
}

/// Lowercase `type/subtype` without parameters, each part 1–127 characters of RFC 6838
/// restricted-name characters: the same rule as report attachments, so that the page can
/// put it into a `Content-Type` unchanged. docs/protocol.md#reply
fn check_media_type(media_type: &str) -> Result<()> {
    if envelope::media_type_is_valid(media_type) {
        Ok(())
    } else {
        Err(Error::Malformed("reply attachment media type"))
    }
}

/// Base64 for plaintext bytes, wiping the temporary text once written.
fn serialize_secret_b64<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    let mut text = encoding::b64(bytes);
    let result = s.serialize_str(&text);
    // Clear intermediates
    text.zeroize();
    result
}

/// Canonical base64 into plaintext bytes, wiping the base64 text.
fn deserialize_secret_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let mut text = String::deserialize(d)?;
    let result = encoding::unb64(&text, "reply attachment data");
    // Clear intermediates
    text.zeroize();
    result.map_err(D::Error::custom)
}

/// The `kind` field of the sealed plaintext.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KindWire {
    Message,
    Status,
}

/// The `status` field of the sealed plaintext.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StatusWire {
    Received,
    InReview,
    Forwarded,
    Closed,
}

impl From<Status> for StatusWire {
    fn from(status: Status) -> Self {
        match status {
            Status::Received => Self::Received,
            Status::InReview => Self::InReview,
            Status::Forwarded => Self::Forwarded,
            Status::Closed => Self::Closed,
        }
    }
}

impl From<StatusWire> for Status {
    fn from(status: StatusWire) -> Self {
        match status {
            StatusWire::Received => Self::Received,
            StatusWire::InReview => Self::InReview,
            StatusWire::Forwarded => Self::Forwarded,
            StatusWire::Closed => Self::Closed,
        }
    }
}

/// The `type` field of the sealed plaintext: names the structure so that a reply can
/// never be taken for another sealed document.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ReplyType {
    Reply,
}

/// The sealed plaintext, written from a borrowed `Reply` (docs/protocol.md#reply).
#[derive(Serialize)]
struct ReplyWireOut<'a> {
    version: u64,
    #[serde(rename = "type")]
    type_: ReplyType,
    case: &'a CaseId,
    seq: u32,
    date: &'a Day,
    kind: KindWire,
    status: Option<StatusWire>,
    text: &'a str,
    attachments: Vec<AttachmentWireOut<'a>>,
}

#[derive(Serialize)]
struct AttachmentWireOut<'a> {
    name: &'a str,
    media_type: &'a str,
    #[serde(serialize_with = "serialize_secret_b64")]
    data: &'a [u8],
}

/// The sealed plaintext as parsed; same fields and order as [`ReplyWireOut`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyWireIn {
    version: u64,
    #[serde(rename = "type")]
    type_: ReplyType,
    case: CaseId,
    seq: u32,
    date: Day,
    kind: KindWire,
    status: Option<StatusWire>,
    text: String,
    attachments: Vec<AttachmentWireIn>,
}

impl Drop for ReplyWireIn {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentWireIn {
    name: String,
    media_type: String,
    #[serde(deserialize_with = "deserialize_secret_b64")]
    data: Vec<u8>,
}

impl Drop for AttachmentWireIn {
    fn drop(&mut self) {
        self.name.zeroize();
        self.media_type.zeroize();
        self.data.zeroize();
    }
}

/// The canonical sealed plaintext of `reply`.
fn reply_plaintext(reply: &Reply) -> Result<Zeroizing<Vec<u8>>> {
    let (kind, status) = match reply.kind {
        ReplyKind::Message => (KindWire::Message, None),
        ReplyKind::Status(status) => (KindWire::Status, Some(StatusWire::from(status))),
    };
    let wire = ReplyWireOut {
        version: REPLY_VERSION,
        type_: ReplyType::Reply,
        case: &reply.case,
        seq: reply.seq,
        date: &reply.date,
        kind,
        status,
        text: &reply.text,
        attachments: reply
            .attachments
            .iter()
            .map(|a| AttachmentWireOut {
                name: &a.name,
                media_type: &a.media_type,
                data: &a.data,
            })
            .collect(),
    };
    // Sized for the worst case up front: a growing Vec would free unwiped copies of the
    // plaintext. Text escapes to at most 2 bytes per byte (control characters other than
    // LF, CR and TAB are refused); names and media types are short; data is base64.
    let estimate = 1024
        + 2 * reply.text.len()
        + reply
            .attachments
            .iter()
            .map(|a| 6 * (a.name.len() + a.media_type.len()) + 4 * a.data.len().div_ceil(3) + 64)
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(estimate));
    serde_json::to_writer(&mut *out, &wire).map_err(|_| Error::Malformed("reply"))?;
    Ok(out)
}

/// Reads only the `version` of a JSON document, so that a newer one gets a precise error
/// instead of "malformed": refuses anything but [`REPLY_VERSION`].
fn check_reply_version(json: &[u8], what: &'static str) -> Result<()> {
    #[derive(Deserialize)]
    struct VersionProbe {
        version: u64,
    }
    let probe: VersionProbe = serde_json::from_slice(json).map_err(|_| Error::Malformed(what))?;
    if probe.version != REPLY_VERSION {
        return Err(Error::UnsupportedVersion {
            what,
            version: probe.version,
        });
    }
    Ok(())
}

/// Parses the sealed plaintext, refusing anything that is not its canonical form.
fn parse_reply_plaintext(plaintext: &[u8]) -> Result<Reply> {
    check_reply_version(plaintext, "reply")?;
    let mut wire: ReplyWireIn =
        serde_json::from_slice(plaintext).map_err(|_| Error::Malformed("reply"))?;
    // A sealed document of another type is not a reply. docs/protocol.md#reply
    if wire.version != REPLY_VERSION || wire.type_ != ReplyType::Reply {
        return Err(Error::Malformed("reply"));
    }
    // `kind` and `status` must agree: status set exactly for a status change.
    // docs/protocol.md#reply
    let kind = match (wire.kind, wire.status) {
        (KindWire::Message, None) => ReplyKind::Message,
        (KindWire::Status, Some(status)) => ReplyKind::Status(status.into()),
        _ => return Err(Error::Malformed("reply: kind and status disagree")),
    };
    let reply = Reply {
        case: wire.case,
        seq: wire.seq,
        date: wire.date,
        kind,
        text: std::mem::take(&mut wire.text),
        attachments: wire
            .attachments
            .iter_mut()
            .map(|a| ReplyAttachment {
                name: std::mem::take(&mut a.name),
                media_type: std::mem::take(&mut a.media_type),
                data: std::mem::take(&mut a.data),
            })
            .collect(),
    };
    // One reply has one encoding: re-serialize and compare. docs/protocol.md#reply
    if reply_plaintext(&reply)?.as_slice() != plaintext {
        return Err(Error::Malformed("reply: non-canonical JSON"));
    }
    check_reply(&reply)?;
    Ok(reply)
}

/// A sealed, signed reply as the server stores it and the page fetches it. Everything
/// but the ciphertext is public metadata the server needs to file it (docs/protocol.md#reply).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedReply {
    institution: InstitutionId,
    case: CaseId,
    mailbox_key: VerifyingKey,
    seq: u32,
    day: Day,
    signer: VerifyingKey,
    ciphertext: Vec<u8>,
    signature: Signature,
}

/// The wire form of [`SealedReply`]; field order is the canonical order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedReplyWire {
    version: u64,
    institution: InstitutionId,
    case: CaseId,
    mailbox_key: VerifyingKey,
    seq: u32,
    day: Day,
    signer: VerifyingKey,
    #[serde(with = "encoding::serde_b64_vec")]
    ciphertext: Vec<u8>,
    signature: Signature,
}

/// What the investigator signs: the outer fields, with the ciphertext replaced by its
/// SHA-256 so that a verifier need not hold the ciphertext twice.
#[derive(Serialize)]
struct SignedReplyFields<'a> {
    version: u64,
    institution: &'a InstitutionId,
    case: &'a CaseId,
    mailbox_key: &'a VerifyingKey,
    seq: u32,
    day: &'a Day,
    signer: &'a VerifyingKey,
    ciphertext_sha256: String,
}

impl SealedReply {
    /// The institution whose desk wrote it.
    pub fn institution(&self) -> &InstitutionId {
        &self.institution
    }

    /// The case it answers.
    pub fn case(&self) -> CaseId {
        self.case
    }

    /// The reporter's mailbox key: the mailbox this reply is filed in.
    pub fn mailbox_key(&self) -> &VerifyingKey {
        &self.mailbox_key
    }

    /// The per-case sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The day it was written.
    pub fn day(&self) -> Day {
        self.day
    }

    /// The investigator key that signed it.
    pub fn signer(&self) -> &VerifyingKey {
        &self.signer
    }

    /// The age ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// SHA-256 of the ciphertext.
    pub fn ciphertext_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.ciphertext).into()
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The exact bytes the signature covers (after the `peluit/v1/reply\n` context):
    /// canonical JSON of the outer fields with `ciphertext_sha256` in place of the
    /// ciphertext and no signature (docs/protocol.md#reply).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(
            &self.institution,
            &self.case,
            &self.mailbox_key,
            self.seq,
            &self.day,
            &self.signer,
            &self.ciphertext,
        )
    }

    /// The canonical JSON document.
    pub fn to_json(&self) -> Vec<u8> {
        let wire = SealedReplyWire {
            version: REPLY_VERSION,
            institution: self.institution.clone(),
            case: self.case,
            mailbox_key: self.mailbox_key,
            seq: self.seq,
            day: self.day,
            signer: self.signer,
            ciphertext: self.ciphertext.clone(),
            signature: self.signature,
        };
        serde_json::to_vec(&wire)
            .unwrap_or_else(|_| unreachable!("a sealed reply always serializes"))
    }

    /// Parses a JSON document; it must be canonical (what [`to_json`](Self::to_json)
    /// writes). Checks syntax and limits only: call [`verify`](Self::verify) before
    /// trusting it.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        if json.len() > MAX_SEALED_REPLY_JSON_LEN {
            return Err(Error::TooLarge("sealed reply"));
        }
        check_reply_version(json, "sealed reply")?;
        let wire: SealedReplyWire =
            serde_json::from_slice(json).map_err(|_| Error::Malformed("sealed reply"))?;
        if wire.ciphertext.len() > MAX_REPLY_LEN {
            return Err(Error::TooLarge("sealed reply"));
        }
        let sealed = Self {
            institution: wire.institution,
            case: wire.case,
            mailbox_key: wire.mailbox_key,
            seq: wire.seq,
            day: wire.day,
            signer: wire.signer,
            ciphertext: wire.ciphertext,
            signature: wire.signature,
        };
        // One document, one encoding: whitespace, field order or escapes that differ from
        // the canonical form are refused. docs/protocol.md#reply
        if sealed.to_json() != json {
            return Err(Error::Malformed("sealed reply: non-canonical JSON"));
        }
        Ok(sealed)
    }

    /// Checks that one of `allowed_signers` signed this reply and that its ciphertext is
    /// sealed to exactly `recipients` X25519 recipients (the reporter plus every
    /// inspectorate recipient). Needs no key: the server runs it before storing a reply,
    /// the page before opening one.
    pub fn verify(&self, allowed_signers: &[VerifyingKey], recipients: usize) -> Result<()> {
        self.verify_signature(allowed_signers)?;
        // Exactly the reporter and the inspectorate can open it. docs/protocol.md#reply
        let header_len = header::check_sealed_to(&self.ciphertext, recipients)?;
        // An age payload is at least its 16-byte nonce and one 16-byte tag.
        if self.ciphertext.len() < header_len + 32 {
            return Err(Error::Malformed("age payload"));
        }
        Ok(())
    }

    fn verify_signature(&self, allowed_signers: &[VerifyingKey]) -> Result<()> {
        // Only an investigator key listed in the manifest may sign. docs/protocol.md#reply
        if !allowed_signers.contains(&self.signer) {
            return Err(Error::BadSignature);
        }
        self.signer
            .verify(SignContext::Reply, &self.signed_bytes(), &self.signature)
    }
}

impl fmt::Debug for SealedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedReply")
            .field("institution", &self.institution)
            .field("case", &self.case)
            .field("seq", &self.seq)
            .field("day", &self.day)
            .field("signer", &self.signer)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

fn signed_bytes(
    institution: &InstitutionId,
    case: &CaseId,
    mailbox_key: &VerifyingKey,
    seq: u32,
    day: &Day,
    signer: &VerifyingKey,
    ciphertext: &[u8],
) -> Vec<u8> {
    let fields = SignedReplyFields {
        version: REPLY_VERSION,
        institution,
        case,
        mailbox_key,
        seq,
        day,
        signer,
        ciphertext_sha256: hex::encode(Sha256::digest(ciphertext)),
    };
    serde_json::to_vec(&fields).unwrap_or_else(|_| unreachable!("signed fields always serialize"))
}

/// Seals `reply` to the reporter's reply recipient and every inspectorate recipient (in
/// that order), then signs it with an investigator key (encrypt-then-sign), binding it to
/// the reporter's mailbox, the case and the sequence number.
pub fn seal_reply(
    reply: &Reply,
    reporter: &SealRecipient,
    mailbox_key: &VerifyingKey,
    institution: &InstitutionId,
    inspectorate: &[SealRecipient],
    signer: &SigningKey,
) -> Result<SealedReply> {
    check_reply(reply)?;
    // The inspectorate keeps a readable record of every reply. docs/protocol.md#reply
    if inspectorate.is_empty() {
        return Err(Error::WrongRecipients("no inspectorate recipient"));
    }
    let plaintext = reply_plaintext(reply)?;
    // Refuse before sealing: the sealed form is never shorter than the plaintext.
    if plaintext.len() > MAX_REPLY_LEN {
        return Err(Error::TooLarge("sealed reply"));
    }
    let mut recipients = Vec::with_capacity(1 + inspectorate.len());
    recipients.push(reporter.clone());
    recipients.extend_from_slice(inspectorate);
    let ciphertext = seal::seal_padded(&plaintext, &recipients)?;
    if ciphertext.len() > MAX_REPLY_LEN {
        return Err(Error::TooLarge("sealed reply"));
    }
    let signer_key = signer.verifying_key();
    let body = signed_bytes(
        institution,
        &reply.case,
        mailbox_key,
        reply.seq,
        &reply.date,
        &signer_key,
        &ciphertext,
    );
    let signature = signer.sign(SignContext::Reply, &body);
    Ok(SealedReply {
        institution: institution.clone(),
        case: reply.case,
        mailbox_key: *mailbox_key,
        seq: reply.seq,
        day: reply.date,
        signer: signer_key,
        ciphertext,
        signature,
    })
}

/// Verifies the signature (signer among `allowed_signers`), opens the reply with
/// `identity` (the reporter's reply identity, or an inspectorate identity on the desk),
/// and checks that the sealed case, sequence number and date are the signed ones.
///
/// This does not check the recipient count, which needs the manifest: call
/// [`SealedReply::verify`] first, or use [`open_reply_with_manifest`].
pub fn open_reply(
    sealed: &SealedReply,
    identity: &SealIdentity,
    allowed_signers: &[VerifyingKey],
) -> Result<Reply> {
    sealed.verify_signature(allowed_signers)?;
    let plaintext = seal::open_padded(
        &sealed.ciphertext,
        std::slice::from_ref(identity),
        MAX_REPLY_LEN,
    )?;
    let reply = parse_reply_plaintext(&plaintext)?;
    // The sealed reply must be the one that was signed for this case and position: a
    // signer cannot have meant one thing outside and another inside. docs/protocol.md#reply
    if reply.case != sealed.case || reply.seq != sealed.seq || reply.date != sealed.day {
        return Err(Error::IntegrityFailed(
            "sealed reply differs from its signed metadata",
        ));
    }
    Ok(reply)
}

/// [`seal_reply`] with the inspectorate recipients and institution of a verified
/// manifest. Refuses a signing key that the manifest does not list, which no reader would
/// accept.
pub fn seal_reply_with_manifest(
    reply: &Reply,
    reporter: &SealRecipient,
    mailbox_key: &VerifyingKey,
    manifest: &VerifiedManifest,
    signer: &SigningKey,
) -> Result<SealedReply> {
    if !manifest
        .reply_signing_keys()
        .contains(&signer.verifying_key())
    {
        return Err(Error::InvalidUse(
            "the signing key is not a reply key of this manifest",
        ));
    }
    seal_reply(
        reply,
        reporter,
        mailbox_key,
        manifest.institution_id(),
        &manifest.seal_recipients(),
        signer,
    )
}

impl SealedReply {
    /// [`verify`](Self::verify) against a verified manifest: its institution, its reply
    /// keys, and its recipients plus the reporter.
    pub fn verify_with_manifest(&self, manifest: &VerifiedManifest) -> Result<()> {
        // A reply is filed under the institution whose manifest lists its signer.
        // docs/protocol.md#reply
        if self.institution != *manifest.institution_id() {
            return Err(Error::IntegrityFailed(
                "reply belongs to another institution",
            ));
        }
        self.verify(
            &manifest.reply_signing_keys(),
            1 + manifest.seal_recipients().len(),
        )
    }
}

/// [`SealedReply::verify_with_manifest`], then [`open_reply`] with the manifest's reply
/// keys: what the page does with every reply it fetches.
pub fn open_reply_with_manifest(
    sealed: &SealedReply,
    identity: &SealIdentity,
    manifest: &VerifiedManifest,
) -> Result<Reply> {
    sealed.verify_with_manifest(manifest)?;
    open_reply(sealed, identity, &manifest.reply_signing_keys())
}

/// An institution's published manifests, verified as one history under the pinned key
/// and ending with the manifest the caller already verified: what a page checks replies
/// against, so that a reply written before a key rotation stays genuine after it
/// (docs/protocol.md#reply, "Which manifest").
#[derive(Clone, Debug)]
pub struct ManifestHistory {
    /// Oldest first; serials strictly increase.
    entries: Vec<VerifiedManifest>,
}

impl ManifestHistory {
    /// Verifies `history` (oldest first) as a whole: every entry is signed by the pinned
    /// key of `policy` and serials strictly increase (docs/protocol.md#manifest,
    /// "History"); every entry keeps the manifest rules, names `current`'s institution
    /// and lists `policy`'s origin, if any; the newest entry verifies under `policy` and
    /// is `current` byte for byte. One entry that fails refuses the whole history.
    pub fn verify(
        history: &[SignedManifest],
        current: &VerifiedManifest,
        policy: &VerifyPolicy,
    ) -> Result<Self> {
        let newest = manifest::verify_history(history, policy)?;
        // The page verified the current manifest on its own; a history that ends
        // elsewhere is not the one the server serves. docs/protocol.md#reply
        if newest.manifest_sha256() != current.manifest_sha256() {
            return Err(Error::IntegrityFailed(
                "the manifest history does not end with the current manifest",
            ));
        }
        let mut entries = Vec::with_capacity(history.len());
        for signed in &history[..history.len() - 1] {
            // An older manifest may have expired: its dates are checked against the
            // replies it vouches for, not against today. Signature, rules and origin
            // still hold. docs/protocol.md#reply
            let mut then = VerifyPolicy::new(policy.manifest_key, signed.manifest().valid_from);
            then.origin.clone_from(&policy.origin);
            let verified = signed.verify(&then)?;
            if verified.institution_id() != current.institution_id() {
                return Err(Error::IntegrityFailed(
                    "the manifest history names another institution",
                ));
            }
            entries.push(verified);
        }
        entries.push(newest);
        Ok(Self { entries })
    }

    /// The manifest in force on `day`: of the manifests whose first day is not after
    /// `day`, the one with the highest serial, if `day` is within its validity. A
    /// manifest supersedes every older one from its first day on, for good: a key it
    /// dropped never signs for a later day again, even where an older manifest's
    /// validity would still cover it. docs/protocol.md#reply
    pub fn in_force_on(&self, day: Day) -> Option<&VerifiedManifest> {
        self.entries
            .iter()
            .rev()
            .find(|m| m.manifest().valid_from <= day)
            .filter(|m| day <= m.manifest().valid_until)
    }

    /// The verified manifests, oldest first.
    pub fn entries(&self) -> &[VerifiedManifest] {
        &self.entries
    }
}

/// Verifies a reply against the manifest that was in force on its signed day
/// ([`ManifestHistory::in_force_on`]) and opens it with `identity`; answers the reply and
/// that manifest (which names the signer). A day no manifest covers, or a signer that
/// manifest does not list, is a bad signature. docs/protocol.md#reply
pub fn open_reply_with_history<'h>(
    sealed: &SealedReply,
    identity: &SealIdentity,
    history: &'h ManifestHistory,
) -> Result<(Reply, &'h VerifiedManifest)> {
    let manifest = history.in_force_on(sealed.day).ok_or(Error::BadSignature)?;
    let reply = open_reply_with_manifest(sealed, identity, manifest)?;
    Ok((reply, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_SHORT_TEXT;

    struct Keys {
        reporter: SealIdentity,
        inspectorate: Vec<SealIdentity>,
        mailbox: SigningKey,
        signer: SigningKey,
        institution: InstitutionId,
    }

    fn keys() -> Keys {
        Keys {
            reporter: SealIdentity::generate(),
            inspectorate: vec![SealIdentity::generate(), SealIdentity::generate()],
            mailbox: SigningKey::generate(),
            signer: SigningKey::generate(),
            institution: "itjen-contoh".parse().unwrap(),
        }
    }

    fn message(case: CaseId) -> Reply {
        Reply {
            case,
            seq: 3,
            date: "2026-03-14".parse().unwrap(),
            kind: ReplyKind::Message,
            text: "Terima kasih. Mohon kirim salinan kontrak.".into(),
            attachments: vec![ReplyAttachment {
                name: "formulir.pdf".into(),
                media_type: "application/pdf".into(),
                data: b"%PDF-1.7 contoh".to_vec(),
            }],
        }
    }

    fn seal(keys: &Keys, reply: &Reply) -> Result<SealedReply> {
        let inspectorate: Vec<_> = keys.inspectorate.iter().map(|i| i.recipient()).collect();
        seal_reply(
            reply,
            &keys.reporter.recipient(),
            &keys.mailbox.verifying_key(),
            &keys.institution,
            &inspectorate,
            &keys.signer,
        )
    }

    #[test]
    fn round_trip_opens_for_reporter_and_inspectorate() {
        let k = keys();
        let case = CaseId::random();
        let sealed = seal(&k, &message(case)).unwrap();
        let allowed = [
            SigningKey::generate().verifying_key(),
            k.signer.verifying_key(),
        ];
        sealed.verify(&allowed, 3).unwrap();
        let parsed = SealedReply::from_json(&sealed.to_json()).unwrap();
        assert_eq!(parsed, sealed);
        for identity in std::iter::once(&k.reporter).chain(&k.inspectorate) {
            let reply = open_reply(&parsed, identity, &allowed).unwrap();
            assert_eq!(reply.case, case);
            assert_eq!(reply.seq, 3);
            assert_eq!(reply.kind, ReplyKind::Message);
            assert_eq!(reply.text, "Terima kasih. Mohon kirim salinan kontrak.");
            assert_eq!(reply.attachments[0].data, b"%PDF-1.7 contoh");
        }
        assert!(matches!(
            open_reply(&parsed, &SealIdentity::generate(), &allowed),
            Err(Error::NoMatchingKey)
        ));
        let debug = format!("{:?}", message(case));
        assert!(!debug.contains("Terima"), "{debug}");
    }

    #[test]
    fn manifest_wrappers_use_its_keys_and_institution() {
        use crate::manifest::{
            FormDefinition, Institution, MANIFEST_VERSION, Manifest, ManifestKey, Purpose,
            VerifyPolicy,
        };
        let k = keys();
        let key = |holder: &str, purpose, public: String| ManifestKey {
            holder: holder.into(),
            purpose,
            public,
        };
        let manifest_key = SigningKey::generate();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            institution: Institution {
                id: k.institution.clone(),
                name: "Inspektorat Contoh".into(),
            },
            origins: vec!["https://lapor.contoh.go.id".into()],
            serial: 1,
            valid_from: "2026-01-01".parse().unwrap(),
            valid_until: "2026-12-31".parse().unwrap(),
            keys: vec![
                key(
                    "investigator:ani",
                    Purpose::Seal,
                    k.inspectorate[0].recipient().to_string(),
                ),
                key(
                    "investigator:ani",
                    Purpose::ReplySigning,
                    k.signer.verifying_key().to_string(),
                ),
                key(
                    "escrow",
                    Purpose::EscrowSeal,
                    k.inspectorate[1].recipient().to_string(),
                ),
            ],
            form: FormDefinition::kws_default(),
        };
        let verified = manifest
            .sign(&manifest_key)
            .verify(&VerifyPolicy::new(
                manifest_key.verifying_key(),
                "2026-03-14".parse().unwrap(),
            ))
            .unwrap();
        let reporter = k.reporter.recipient();
        let mailbox = k.mailbox.verifying_key();
        let sealed = seal_reply_with_manifest(
            &message(CaseId::random()),
            &reporter,
            &mailbox,
            &verified,
            &k.signer,
        )
        .unwrap();
        sealed.verify_with_manifest(&verified).unwrap();
        for identity in std::iter::once(&k.reporter).chain(&k.inspectorate) {
            open_reply_with_manifest(&sealed, identity, &verified).unwrap();
        }
        assert!(matches!(
            seal_reply_with_manifest(
                &message(CaseId::random()),
                &reporter,
                &mailbox,
                &verified,
                &SigningKey::generate()
            ),
            Err(Error::InvalidUse(_))
        ));
        let mut elsewhere = sealed;
        elsewhere.institution = "itjen-lain".parse().unwrap();
        assert!(matches!(
            elsewhere.verify_with_manifest(&verified),
            Err(Error::IntegrityFailed(_))
        ));
    }

    #[test]
    fn bare_status_change_round_trips() {
        let k = keys();
        let reply = Reply {
            text: String::new(),
            attachments: Vec::new(),
            kind: ReplyKind::Status(Status::InReview),
            ..message(CaseId::random())
        };
        let sealed = seal(&k, &reply).unwrap();
        let opened = open_reply(&sealed, &k.reporter, &[k.signer.verifying_key()]).unwrap();
        assert_eq!(opened.kind, ReplyKind::Status(Status::InReview));
        assert!(opened.text.is_empty());
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
    }

    #[test]
    fn forged_or_unlisted_signatures_are_refused() {
        let k = keys();
        let sealed = seal(&k, &message(CaseId::random())).unwrap();
        let allowed = [k.signer.verifying_key()];
        // Signer not allowed.
        assert!(matches!(
            sealed.verify(&[SigningKey::generate().verifying_key()], 3),
            Err(Error::BadSignature)
        ));
        // Signature by another key claiming to be the allowed signer.
        let mut forged = sealed.clone();
        forged.signature = SigningKey::generate().sign(SignContext::Reply, &sealed.signed_bytes());
        assert!(matches!(
            forged.verify(&allowed, 3),
            Err(Error::BadSignature)
        ));
        assert!(open_reply(&forged, &k.reporter, &allowed).is_err());
        // A flipped ciphertext byte changes its hash.
        let mut flipped = sealed.clone();
        let last = flipped.ciphertext.len() - 1;
        flipped.ciphertext[last] ^= 1;
        assert!(matches!(
            flipped.verify(&allowed, 3),
            Err(Error::BadSignature)
        ));
        // Moved to another case or replayed under another seq.
        let mut moved = sealed.clone();
        moved.case = CaseId::random();
        assert!(matches!(
            moved.verify(&allowed, 3),
            Err(Error::BadSignature)
        ));
        let mut replayed = sealed.clone();
        replayed.seq += 1;
        assert!(matches!(
            replayed.verify(&allowed, 3),
            Err(Error::BadSignature)
        ));
        let mut other_mailbox = sealed;
        other_mailbox.mailbox_key = SigningKey::generate().verifying_key();
        assert!(matches!(
            other_mailbox.verify(&allowed, 3),
            Err(Error::BadSignature)
        ));
    }

    #[test]
    fn signed_outer_fields_must_match_the_sealed_ones() {
        let k = keys();
        let sealed = seal(&k, &message(CaseId::random())).unwrap();
        let allowed = [k.signer.verifying_key()];
        // A signer who signs an outer seq other than the sealed one is caught on opening.
        let mut resigned = sealed;
        resigned.seq = 4;
        resigned.signature = k.signer.sign(SignContext::Reply, &resigned.signed_bytes());
        resigned.verify(&allowed, 3).unwrap();
        assert!(matches!(
            open_reply(&resigned, &k.reporter, &allowed),
            Err(Error::IntegrityFailed(_))
        ));
    }

    #[test]
    fn wrong_recipient_count_is_refused() {
        let k = keys();
        let sealed = seal(&k, &message(CaseId::random())).unwrap();
        let allowed = [k.signer.verifying_key()];
        for wrong in [1, 2, 4] {
            assert!(matches!(
                sealed.verify(&allowed, wrong),
                Err(Error::WrongRecipients(_))
            ));
        }
        // The reporter may not double as an inspectorate recipient, and the record copy
        // is mandatory.
        let reporter = k.reporter.recipient();
        let m = message(CaseId::random());
        let mailbox = k.mailbox.verifying_key();
        assert!(matches!(
            seal_reply(&m, &reporter, &mailbox, &k.institution, &[], &k.signer),
            Err(Error::WrongRecipients(_))
        ));
        assert!(matches!(
            seal_reply(
                &m,
                &reporter,
                &mailbox,
                &k.institution,
                std::slice::from_ref(&reporter),
                &k.signer
            ),
            Err(Error::WrongRecipients(_))
        ));
    }

    #[test]
    fn limits_and_names_are_enforced() {
        let k = keys();
        let mut long = message(CaseId::random());
        long.text = "a".repeat(MAX_ANSWER_LEN + 1);
        assert!(matches!(seal(&k, &long), Err(Error::TooLarge(_))));
        let mut big = message(CaseId::random());
        big.attachments[0].data = vec![0; MAX_REPLY_LEN];
        assert!(matches!(seal(&k, &big), Err(Error::TooLarge(_))));
        for bad in [
            "",
            "..",
            "a/b",
            "a\\b",
            "a\nb",
            &"x".repeat(MAX_SHORT_TEXT + 1),
        ] {
            let mut r = message(CaseId::random());
            r.attachments[0].name = bad.into();
            assert!(matches!(seal(&k, &r), Err(Error::Malformed(_))), "{bad:?}");
        }
        for bad in [
            "",
            "pdf",
            "application/",
            "/pdf",
            "a/b/c",
            "text/plain; charset",
            "Text/plain",
            "-x/y",
        ] {
            let mut r = message(CaseId::random());
            r.attachments[0].media_type = bad.into();
            assert!(matches!(seal(&k, &r), Err(Error::Malformed(_))), "{bad:?}");
        }
        let mut bell = message(CaseId::random());
        bell.text = "ding\u{7}".into();
        assert!(matches!(seal(&k, &bell), Err(Error::Malformed(_))));
        let mut lines = message(CaseId::random());
        lines.text = "satu\r\n\tdua".into();
        seal(&k, &lines).unwrap();
        let mut empty = message(CaseId::random());
        empty.text.clear();
        empty.attachments.clear();
        assert!(matches!(seal(&k, &empty), Err(Error::Malformed(_))));
    }

    #[test]
    fn json_must_be_canonical_and_current() {
        let k = keys();
        let sealed = seal(&k, &message(CaseId::random())).unwrap();
        let json = String::from_utf8(sealed.to_json()).unwrap();
        assert!(json.starts_with("{\"version\":1,\"institution\":\"itjen-contoh\",\"case\":"));
        let spaced = json.replacen("\"version\":1", "\"version\": 1", 1);
        assert!(matches!(
            SealedReply::from_json(spaced.as_bytes()),
            Err(Error::Malformed(_))
        ));
        let extra = json.replacen('{', "{\"extra\":0,", 1);
        assert!(matches!(
            SealedReply::from_json(extra.as_bytes()),
            Err(Error::Malformed(_))
        ));
        let v2 = json.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            SealedReply::from_json(v2.as_bytes()),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        let huge = vec![b' '; MAX_SEALED_REPLY_JSON_LEN + 1];
        assert!(matches!(
            SealedReply::from_json(&huge),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn sealed_plaintext_must_be_canonical_and_consistent() {
        let case = CaseId::from_bytes([7; 16]);
        let good = reply_plaintext(&message(case)).unwrap();
        let text = std::str::from_utf8(&good).unwrap();
        assert!(text.starts_with(
            "{\"version\":1,\"type\":\"reply\",\"case\":\"07070707070707070707070707070707\",\
             \"seq\":3,\"date\":\"2026-03-14\",\"kind\":\"message\",\"status\":null,"
        ));
        assert!(parse_reply_plaintext(&good).is_ok());
        for bad in [
            text.replacen("\"status\":null", "\"status\":\"closed\"", 1),
            text.replacen("\"kind\":\"message\"", "\"kind\":\"status\"", 1),
            text.replacen("\"type\":\"reply\"", "\"type\":\"report\"", 1),
            text.replacen("\"seq\":3", "\"seq\":03", 1),
            text.replacen(",\"status\":null", "", 1),
            text.replacen('{', "{ ", 1),
        ] {
            assert!(parse_reply_plaintext(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    mod history {
        use super::*;
        use crate::manifest::{
            FormDefinition, Institution, MANIFEST_VERSION, Manifest, ManifestKey, Purpose,
            Rejection,
        };

        const ORIGIN: &str = "https://lapor.contoh.go.id";

        fn day(text: &str) -> Day {
            text.parse().unwrap()
        }

        /// One investigator's keys as a manifest lists them.
        struct Investigator {
            seal: SealIdentity,
            signer: SigningKey,
        }

        fn investigator() -> Investigator {
            Investigator {
                seal: SealIdentity::generate(),
                signer: SigningKey::generate(),
            }
        }

        struct Inspectorate {
            manifest_key: SigningKey,
            escrow: SealIdentity,
            reporter: SealIdentity,
            mailbox: SigningKey,
        }

        fn inspectorate() -> Inspectorate {
            Inspectorate {
                manifest_key: SigningKey::generate(),
                escrow: SealIdentity::generate(),
                reporter: SealIdentity::generate(),
                mailbox: SigningKey::generate(),
            }
        }

        fn manifest(
            i: &Inspectorate,
            serial: u64,
            valid: (&str, &str),
            ani: &Investigator,
        ) -> Manifest {
            let key = |holder: &str, purpose, public: String| ManifestKey {
                holder: holder.into(),
                purpose,
                public,
            };
            Manifest {
                version: MANIFEST_VERSION,
                institution: Institution {
                    id: "itjen-contoh".parse().unwrap(),
                    name: "Inspektorat Contoh".into(),
                },
                origins: vec![ORIGIN.into()],
                serial,
                valid_from: day(valid.0),
                valid_until: day(valid.1),
                keys: vec![
                    key(
                        "investigator:ani",
                        Purpose::Seal,
                        ani.seal.recipient().to_string(),
                    ),
                    key(
                        "investigator:ani",
                        Purpose::ReplySigning,
                        ani.signer.verifying_key().to_string(),
                    ),
                    key(
                        "escrow",
                        Purpose::EscrowSeal,
                        i.escrow.recipient().to_string(),
                    ),
                ],
                form: FormDefinition::kws_default(),
            }
        }

        fn policy(i: &Inspectorate, today: &str) -> VerifyPolicy {
            let mut policy = VerifyPolicy::new(i.manifest_key.verifying_key(), day(today));
            policy.origin = Some(ORIGIN.into());
            policy
        }

        /// Verifies `history` as a page would on `today`: the newest entry first, alone,
        /// then the whole history against it.
        fn verify(
            i: &Inspectorate,
            history: &[SignedManifest],
            today: &str,
        ) -> Result<ManifestHistory> {
            let current = history.last().unwrap().verify(&policy(i, today))?;
            ManifestHistory::verify(history, &current, &policy(i, today))
        }

        /// A reply written on `date` by `by` under `manifest` (its recipients and keys).
        fn reply(
            i: &Inspectorate,
            manifest: &VerifiedManifest,
            by: &SigningKey,
            seq: u32,
            date: &str,
        ) -> SealedReply {
            let mut reply = message(CaseId::from_bytes([9; 16]));
            reply.seq = seq;
            reply.date = day(date);
            seal_reply(
                &reply,
                &i.reporter.recipient(),
                &i.mailbox.verifying_key(),
                manifest.institution_id(),
                &manifest.seal_recipients(),
                by,
            )
            .unwrap()
        }

        /// Serial 1 from January with Ani's first keys; on 2026-06-01 serial 2 rotates
        /// them (her first signing key may have been stolen).
        fn rotation() -> (
            Inspectorate,
            Investigator,
            Investigator,
            Vec<SignedManifest>,
        ) {
            let i = inspectorate();
            let (before, after) = (investigator(), investigator());
            let history = vec![
                manifest(&i, 1, ("2026-01-01", "2026-12-31"), &before).sign(&i.manifest_key),
                manifest(&i, 2, ("2026-06-01", "2027-05-31"), &after).sign(&i.manifest_key),
            ];
            (i, before, after, history)
        }

        fn verified(i: &Inspectorate, signed: &SignedManifest) -> VerifiedManifest {
            signed
                .verify(&VerifyPolicy::new(
                    i.manifest_key.verifying_key(),
                    signed.manifest().valid_from,
                ))
                .unwrap()
        }

        #[test]
        fn a_reply_from_before_a_rotation_still_verifies_after_it() {
            let (i, before, after, signed) = rotation();
            let history = verify(&i, &signed, "2026-07-15").unwrap();
            assert_eq!(history.entries().len(), 2);
            let (m1, m2) = (verified(&i, &signed[0]), verified(&i, &signed[1]));
            let old = reply(&i, &m1, &before.signer, 1, "2026-05-31");
            // The current manifest alone calls it forged: that is what misled reporters.
            assert!(matches!(
                open_reply_with_manifest(&old, &i.reporter, &m2),
                Err(Error::BadSignature)
            ));
            let (opened, under) = open_reply_with_history(&old, &i.reporter, &history).unwrap();
            assert_eq!((opened.seq, under.serial()), (1, 1));
            assert_eq!(
                under.reply_signer_holder(old.signer()),
                Some("investigator:ani")
            );
            let new = reply(&i, &m2, &after.signer, 2, "2026-06-01");
            let (opened, under) = open_reply_with_history(&new, &i.reporter, &history).unwrap();
            assert_eq!((opened.seq, under.serial()), (2, 2));
            // Every reader of the record copy still opens both.
            open_reply_with_history(&old, &before.seal, &history).unwrap();
            open_reply_with_history(&new, &after.seal, &history).unwrap();
        }

        #[test]
        fn a_removed_key_is_refused_for_any_day_after_the_rotation() {
            let (i, before, after, signed) = rotation();
            let history = verify(&i, &signed, "2026-07-15").unwrap();
            let (m1, m2) = (verified(&i, &signed[0]), verified(&i, &signed[1]));
            // Serial 1 is valid until December, but from June serial 2 speaks: a reply
            // signed with the dropped key and dated on or after the rotation is refused,
            // whichever recipients it was sealed to.
            for date in ["2026-06-01", "2026-07-14", "2026-12-31"] {
                for sealed_under in [&m1, &m2] {
                    let forged = reply(&i, sealed_under, &before.signer, 7, date);
                    assert!(
                        matches!(
                            open_reply_with_history(&forged, &i.reporter, &history),
                            Err(Error::BadSignature)
                        ),
                        "{date}"
                    );
                }
            }
            // The new key did not speak before its manifest.
            let early = reply(&i, &m2, &after.signer, 1, "2026-05-31");
            assert!(matches!(
                open_reply_with_history(&early, &i.reporter, &history),
                Err(Error::BadSignature)
            ));
            // No manifest covers a day before the first or after the newest's validity.
            for date in ["2025-12-31", "2027-06-01"] {
                let stray = reply(&i, &m2, &after.signer, 1, date);
                assert!(matches!(
                    open_reply_with_history(&stray, &i.reporter, &history),
                    Err(Error::BadSignature)
                ));
            }
            // A reply under the right manifest but sealed to other recipients is refused.
            let mut early = message(CaseId::from_bytes([9; 16]));
            early.date = day("2026-03-01");
            let fewer = seal_reply(
                &early,
                &i.reporter.recipient(),
                &i.mailbox.verifying_key(),
                m1.institution_id(),
                &m1.seal_recipients()[..1],
                &before.signer,
            )
            .unwrap();
            assert!(matches!(
                open_reply_with_history(&fewer, &i.reporter, &history),
                Err(Error::WrongRecipients(_))
            ));
        }

        #[test]
        fn a_dropped_key_does_not_return_when_a_later_manifest_lapses() {
            // Serial 2 drops the key for two months; serial 3 starts only in October.
            // In between, serial 1's validity still covers the day, yet serial 2 has
            // superseded it: nothing is in force, so nothing verifies.
            let i = inspectorate();
            let (before, after) = (investigator(), investigator());
            let signed = vec![
                manifest(&i, 1, ("2026-01-01", "2026-12-31"), &before).sign(&i.manifest_key),
                manifest(&i, 2, ("2026-06-01", "2026-07-31"), &after).sign(&i.manifest_key),
                manifest(&i, 3, ("2026-10-01", "2027-09-30"), &after).sign(&i.manifest_key),
            ];
            let history = verify(&i, &signed, "2026-10-02").unwrap();
            let m1 = verified(&i, &signed[0]);
            let gap = reply(&i, &m1, &before.signer, 4, "2026-08-15");
            assert!(matches!(
                open_reply_with_history(&gap, &i.reporter, &history),
                Err(Error::BadSignature)
            ));
            assert!(history.in_force_on(day("2026-08-15")).is_none());
            assert_eq!(
                history.in_force_on(day("2026-07-31")).map(|m| m.serial()),
                Some(2)
            );
        }

        #[test]
        fn a_history_with_one_bad_entry_is_refused_whole() {
            let (i, before, _, signed) = rotation();
            let today = "2026-07-15";
            let rejection = |history: &[SignedManifest]| {
                let current = signed[1].verify(&policy(&i, today)).unwrap();
                match ManifestHistory::verify(history, &current, &policy(&i, today)) {
                    Err(Error::ManifestRejected(rejection)) => rejection.code(),
                    other => panic!("{other:?}"),
                }
            };
            // An older entry signed by a key other than the pinned one.
            let foreign = manifest(&i, 1, ("2026-01-01", "2026-12-31"), &before)
                .sign(&SigningKey::generate());
            assert_eq!(rejection(&[foreign, signed[1].clone()]), "bad-signature");
            // Serials going backwards, or repeating.
            let three =
                manifest(&i, 3, ("2026-01-01", "2026-12-31"), &before).sign(&i.manifest_key);
            assert_eq!(rejection(&[three, signed[1].clone()]), "serial-rollback");
            let again =
                manifest(&i, 2, ("2026-01-01", "2026-12-31"), &before).sign(&i.manifest_key);
            assert_eq!(rejection(&[again, signed[1].clone()]), "serial-reused");
            // An older entry for another origin.
            let mut elsewhere = manifest(&i, 1, ("2026-01-01", "2026-12-31"), &before);
            elsewhere.origins = vec!["https://lapor.lain.go.id".into()];
            assert_eq!(
                rejection(&[elsewhere.sign(&i.manifest_key), signed[1].clone()]),
                "origin-not-listed"
            );
            assert_eq!(rejection(&[]), "empty-history");

            let current = signed[1].verify(&policy(&i, today)).unwrap();
            // An older entry for another institution, signed by the same key.
            let mut other = manifest(&i, 1, ("2026-01-01", "2026-12-31"), &before);
            other.institution.id = "itjen-lain".parse().unwrap();
            assert!(matches!(
                ManifestHistory::verify(
                    &[other.sign(&i.manifest_key), signed[1].clone()],
                    &current,
                    &policy(&i, today)
                ),
                Err(Error::IntegrityFailed(_))
            ));
            // A history that stops before the current manifest.
            assert!(matches!(
                ManifestHistory::verify(&signed[..1], &current, &policy(&i, today)),
                Err(Error::IntegrityFailed(_))
            ));
            // A newest entry that no longer verifies today.
            assert!(matches!(
                ManifestHistory::verify(&signed, &current, &policy(&i, "2027-06-01")),
                Err(Error::ManifestRejected(Rejection::Expired { .. }))
            ));
            ManifestHistory::verify(&signed, &current, &policy(&i, today)).unwrap();
        }
    }
}
