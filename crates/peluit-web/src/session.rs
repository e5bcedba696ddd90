//! The page's cryptographic session: the verified manifest, the reporter's keys and the
//! attachment sealers in progress, and every operation the page asks of them.
//!
//! Requests and answers are JSON (bytes as base64, digests as hex), except attachment
//! content and sealed attachment bytes, which travel raw. The operations and their shapes
//! are listed in `docs/web.md#operations`.

use std::collections::BTreeMap;

use peluit_proto::auth::{self, Challenge};
use peluit_proto::day::Day;
use peluit_proto::encoding::{b64, unb64_array, unhex_array};
use peluit_proto::envelope::{self, Answer, AttachmentRef, FollowUp, Report};
use peluit_proto::ids::UploadId;
use peluit_proto::keys::VerifyingKey;
use peluit_proto::manifest::{FormDefinition, SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_proto::pow::Stamp;
use peluit_proto::receipt::{Receipt, ReporterKeys};
use peluit_proto::reply::{self, ManifestHistory, ReplyKind, SealedReply};
use peluit_proto::seal::{SealedDigest, StreamSealer, UnhashedStreamSealer};
use peluit_proto::wordlist::Language;
use peluit_proto::{Error, manifest};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::WebError;

/// Largest sealed output one [`Op::AttachmentTail`] call gathers before it answers.
const TAIL_BATCH: usize = 1 << 20;

/// The operations, by the number the page passes to `peluit_call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Verify the institution's signed manifest under the pinned key and keep it.
    VerifyManifest = 1,
    /// Make a fresh receipt, derive and keep the reporter's keys.
    NewReceipt = 2,
    /// Read a typed receipt, derive and keep the reporter's keys.
    OpenReceipt = 3,
    /// Start sealing one attachment of a declared size.
    AttachmentBegin = 4,
    /// Seal the next piece of an attachment (raw: handle, then content).
    AttachmentPush = 5,
    /// Seal the padding and final chunk of an attachment (raw: handle).
    AttachmentTail = 6,
    /// Finish an attachment: its sealed length and digest.
    AttachmentEnd = 7,
    /// Seal the report envelope.
    SealReport = 8,
    /// Search a range of nonces for a proof-of-work stamp.
    MintStamp = 9,
    /// Sign the server's mailbox challenge with the mailbox key.
    AnswerChallenge = 10,
    /// Verify a sealed reply against the manifest in force on its day, then open it.
    OpenReply = 11,
    /// Seal and sign a follow-up.
    SealFollowUp = 12,
    /// Drop the reporter's keys and every sealer.
    Forget = 13,
    /// Verify the institution's manifest history and keep it for [`Op::OpenReply`].
    VerifyHistory = 14,
    /// Start a SHA-256 of an attachment's ciphertext, for a sealer begun `unhashed`.
    DigestBegin = 15,
    /// Add the next ciphertext bytes to a digest (raw: handle, then bytes).
    DigestPush = 16,
    /// Finish a digest: the hex SHA-256 a report lists for the attachment.
    DigestEnd = 17,
}

impl Op {
    /// The operation numbered `code`.
    pub fn from_code(code: u32) -> Option<Self> {
        use Op::*;
        [
            VerifyManifest,
            NewReceipt,
            OpenReceipt,
            AttachmentBegin,
            AttachmentPush,
            AttachmentTail,
            AttachmentEnd,
            SealReport,
            MintStamp,
            AnswerChallenge,
            OpenReply,
            SealFollowUp,
            Forget,
            VerifyHistory,
            DigestBegin,
            DigestPush,
            DigestEnd,
        ]
        .into_iter()
        .find(|op| *op as u32 == code)
    }
}

/// What the page holds between calls. Secrets live here, never in JavaScript, except the
/// receipt words shown once and plaintext going in or coming out.
#[derive(Debug, Default)]
pub struct Session {
    manifest: Option<VerifiedManifest>,
    /// The policy the manifest was verified under: the history is verified under it too.
    policy: Option<VerifyPolicy>,
    history: Option<ManifestHistory>,
    keys: Option<ReporterKeys>,
    sealers: BTreeMap<u32, Sealer>,
    /// Digests of ciphertext sealed elsewhere: the page runs them in a second worker, so
    /// hashing (about as costly as sealing) takes the other core.
    digests: BTreeMap<u32, SealedDigest>,
    next_handle: u32,
}

/// One attachment being sealed, its ciphertext hashed here or by the page.
#[derive(Debug)]
enum Sealer {
    Hashed(StreamSealer),
    Unhashed(UnhashedStreamSealer),
}

impl Sealer {
    fn push(&mut self, content: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            Sealer::Hashed(s) => s.push(content),
            Sealer::Unhashed(s) => s.push(content),
        }
    }

    fn next_tail(&mut self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Sealer::Hashed(s) => s.next_tail(),
            Sealer::Unhashed(s) => s.next_tail(),
        }
    }

    fn sealed_len(&self) -> u64 {
        match self {
            Sealer::Hashed(s) => s.sealed_len(),
            Sealer::Unhashed(s) => s.sealed_len(),
        }
    }

    fn total_len(&self) -> u64 {
        match self {
            Sealer::Hashed(s) => s.total_len(),
            Sealer::Unhashed(s) => s.total_len(),
        }
    }

    fn sealed_sha256(&self) -> Option<[u8; 32]> {
        match self {
            Sealer::Hashed(s) => Some(s.sealed_sha256()),
            Sealer::Unhashed(_) => None,
        }
    }
}

/// The answer of one call: bytes that may hold plaintext, wiped when dropped.
pub type Output = Zeroizing<Vec<u8>>;

impl Session {
    /// Runs `op` on `input`.
    pub fn call(&mut self, op: Op, input: &[u8]) -> Result<Output, WebError> {
        match op {
            Op::VerifyManifest => json_out(&self.verify_manifest(parse(input)?)?),
            Op::NewReceipt => json_out(&self.new_receipt(parse(input)?)?),
            Op::OpenReceipt => json_out(&self.open_receipt(parse(input)?)?),
            Op::AttachmentBegin => json_out(&self.attachment_begin(parse(input)?)?),
            Op::AttachmentPush => self.attachment_push(input),
            Op::AttachmentTail => self.attachment_tail(input),
            Op::AttachmentEnd => json_out(&self.attachment_end(parse(input)?)?),
            Op::DigestBegin => json_out(&self.digest_begin(parse(input)?)),
            Op::DigestPush => self.digest_push(input),
            Op::DigestEnd => json_out(&self.digest_end(parse(input)?)?),
            Op::SealReport => json_out(&self.seal_report(parse(input)?)?),
            Op::MintStamp => json_out(&mint_stamp(parse(input)?)?),
            Op::AnswerChallenge => json_out(&self.answer_challenge(parse(input)?)?),
            Op::OpenReply => json_out(&self.open_reply(parse(input)?)?),
            Op::SealFollowUp => json_out(&self.seal_follow_up(parse(input)?)?),
            Op::VerifyHistory => json_out(&self.verify_history(parse(input)?)?),
            Op::Forget => {
                self.keys = None;
                self.sealers.clear();
                self.digests.clear();
                json_out(&serde_json::json!({}))
            }
        }
    }

    fn manifest(&self) -> Result<&VerifiedManifest, WebError> {
        self.manifest.as_ref().ok_or_else(WebError::no_manifest)
    }

    fn keys(&self) -> Result<&ReporterKeys, WebError> {
        self.keys.as_ref().ok_or_else(WebError::no_receipt)
    }

    fn verify_manifest(&mut self, request: VerifyManifest) -> Result<ManifestSummary, WebError> {
        let key =
            VerifyingKey::from_bytes(&unb64_array::<32>(&request.manifest_key, "manifest key")?)?;
        let mut policy = VerifyPolicy::new(key, request.today);
        policy.origin = Some(request.origin);
        // A page that cannot verify its manifest seals nothing: forget any earlier one.
        self.manifest = None;
        self.policy = None;
        self.history = None;
        self.keys = None;
        let verified = SignedManifest::from_json(request.manifest.as_bytes())?.verify(&policy)?;
        let summary = ManifestSummary {
            institution: verified.institution_id().to_string(),
            name: verified.manifest().institution.name.clone(),
            serial: verified.serial(),
            valid_until: verified.manifest().valid_until,
            recipients: verified.seal_recipients().len(),
            fingerprint: Fingerprint {
                id: manifest::fingerprint_words(&key, Language::Id),
                en: manifest::fingerprint_words(&key, Language::En),
                hex: manifest::fingerprint_hex(&key),
            },
            form: verified.form().clone(),
        };
        self.manifest = Some(verified);
        self.policy = Some(policy);
        Ok(summary)
    }

    fn verify_history(&mut self, request: HistoryText) -> Result<HistorySummary, WebError> {
        let manifest = self.manifest()?;
        let policy = self.policy.as_ref().ok_or_else(WebError::no_manifest)?;
        let history = split_history(request.manifests.as_bytes())?
            .into_iter()
            .map(SignedManifest::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let history = ManifestHistory::verify(&history, manifest, policy)?;
        let summary = HistorySummary {
            serials: history.entries().iter().map(|m| m.serial()).collect(),
        };
        self.history = Some(history);
        Ok(summary)
    }

    fn new_receipt(&mut self, request: NewReceipt) -> Result<ReceiptWords, WebError> {
        let institution = self.manifest()?.institution_id().clone();
        let receipt = Receipt::generate();
        let words = receipt.words(request.language);
        self.keys = Some(receipt.derive(&institution));
        Ok(ReceiptWords {
            words: words.to_string(),
        })
    }

    fn open_receipt(&mut self, request: OpenReceipt) -> Result<ReceiptLanguage, WebError> {
        let institution = self.manifest()?.institution_id().clone();
        let (receipt, language) = Receipt::parse_with_language(&request.words)
            .map_err(|problem| WebError::from(Error::from(problem)))?;
        self.keys = Some(receipt.derive(&institution));
        Ok(ReceiptLanguage { language })
    }

    fn new_handle(&mut self) -> u32 {
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        handle
    }

    fn attachment_begin(&mut self, request: AttachmentBegin) -> Result<AttachmentSize, WebError> {
        let recipients = self.manifest()?.seal_recipients();
        let sealer = if request.unhashed {
            Sealer::Unhashed(UnhashedStreamSealer::new(&recipients, request.size)?)
        } else {
            Sealer::Hashed(StreamSealer::new(&recipients, request.size)?)
        };
        let handle = self.new_handle();
        let sealed_size = sealer.total_len();
        self.sealers.insert(handle, sealer);
        Ok(AttachmentSize {
            handle,
            sealed_size,
        })
    }

    fn sealer(&mut self, input: &[u8]) -> Result<(&mut Sealer, usize), WebError> {
        let handle = raw_handle(input)?;
        let sealer = self
            .sealers
            .get_mut(&handle)
            .ok_or(WebError::bad_request("unknown attachment handle"))?;
        Ok((sealer, 4))
    }

    fn attachment_push(&mut self, input: &[u8]) -> Result<Output, WebError> {
        let (sealer, skip) = self.sealer(input)?;
        Ok(Zeroizing::new(sealer.push(&input[skip..])?))
    }

    /// Answers a flag byte (1 when the message is complete) and then the ciphertext.
    fn attachment_tail(&mut self, input: &[u8]) -> Result<Output, WebError> {
        let (sealer, _) = self.sealer(input)?;
        let mut out = Zeroizing::new(vec![0u8]);
        while out.len() < TAIL_BATCH {
            match sealer.next_tail()? {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => {
                    out[0] = 1;
                    break;
                }
            }
        }
        Ok(out)
    }

    fn attachment_end(&mut self, request: Handle) -> Result<AttachmentDigest, WebError> {
        let sealer = self
            .sealers
            .get(&request.handle)
            .ok_or(WebError::bad_request("unknown attachment handle"))?;
        if sealer.sealed_len() != sealer.total_len() {
            return Err(WebError::invalid_use("attachment not completely sealed"));
        }
        let digest = AttachmentDigest {
            sealed_len: sealer.sealed_len(),
            sealed_sha256: sealer.sealed_sha256().map(hex::encode),
        };
        self.sealers.remove(&request.handle);
        Ok(digest)
    }

    fn digest_begin(&mut self, _: Empty) -> Handle {
        let handle = self.new_handle();
        self.digests.insert(handle, SealedDigest::new());
        Handle { handle }
    }

    /// Answers nothing: the bytes are ciphertext the page already has.
    fn digest_push(&mut self, input: &[u8]) -> Result<Output, WebError> {
        let handle = raw_handle(input)?;
        self.digests
            .get_mut(&handle)
            .ok_or(WebError::bad_request("unknown digest handle"))?
            .update(&input[4..]);
        Ok(Zeroizing::new(Vec::new()))
    }

    fn digest_end(&mut self, request: Handle) -> Result<SealedSha256, WebError> {
        let digest = self
            .digests
            .remove(&request.handle)
            .ok_or(WebError::bad_request("unknown digest handle"))?;
        Ok(SealedSha256 {
            sealed_sha256: hex::encode(digest.finalize()),
        })
    }

    fn seal_report(&mut self, request: ReportRequest) -> Result<SealedEnvelope, WebError> {
        let manifest = self.manifest()?;
        let keys = self.keys()?;
        let report = Report {
            institution: manifest.institution_id().clone(),
            language: request.language,
            date: request.date,
            answers: request
                .answers
                .iter()
                .map(|a| Answer::new(a.question.as_str(), a.value.as_str()))
                .collect(),
            attachments: attachment_refs(&request.attachments)?,
            reply_to: keys.reply_recipient(),
            mailbox: keys.mailbox_public_key(),
        };
        let sealed = envelope::seal_report(&report, manifest)?;
        Ok(SealedEnvelope {
            envelope_sha256: hex::encode(sealed.sha256()),
            envelope: b64(sealed.as_bytes()),
            mailbox_key: b64(&keys.mailbox_public_key().to_bytes()),
        })
    }

    fn answer_challenge(&mut self, request: ChallengeText) -> Result<ResponseText, WebError> {
        let manifest = self.manifest()?;
        let challenge = Challenge::from_json(request.challenge.as_bytes())?;
        // Sign only challenges for this institution: a response is useless elsewhere, but a
        // page never signs what it was not asked to. docs/protocol.md#mailbox-auth
        if challenge.institution() != manifest.institution_id() {
            return Err(WebError::bad_request("challenge for another institution"));
        }
        let response = auth::respond(&challenge, self.keys()?.mailbox_key());
        Ok(ResponseText {
            response: String::from_utf8_lossy(&response.to_json()).into_owned(),
        })
    }

    fn open_reply(&mut self, request: ReplyText) -> Result<OpenedReply, WebError> {
        let history = self.history.as_ref().ok_or_else(WebError::no_history)?;
        let keys = self.keys()?;
        let sealed = SealedReply::from_json(request.reply.as_bytes())?;
        // A reply is shown only in the mailbox it was signed for. docs/protocol.md#reply
        if sealed.mailbox_key() != &keys.mailbox_public_key() {
            return Err(WebError::from(Error::IntegrityFailed(
                "reply addressed to another mailbox",
            )));
        }
        // Checked against the manifest in force on the reply's day, so that a reply
        // written before a key rotation stays genuine and a dropped key never signs for a
        // later day. docs/protocol.md#reply
        let (reply, manifest) =
            reply::open_reply_with_history(&sealed, keys.reply_identity(), history)?;
        let (kind, status) = match reply.kind {
            ReplyKind::Message => ("message", None),
            ReplyKind::Status(status) => ("status", Some(status.as_str())),
        };
        Ok(OpenedReply {
            seq: reply.seq,
            date: reply.date,
            kind,
            status,
            text: reply.text.clone(),
            signer: manifest
                .reply_signer_holder(sealed.signer())
                .unwrap_or_default()
                .to_owned(),
            attachments: reply
                .attachments
                .iter()
                .map(|a| OpenedAttachment {
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    data: b64(&a.data),
                })
                .collect(),
        })
    }

    fn seal_follow_up(&mut self, request: FollowUpRequest) -> Result<SealedFollowUp, WebError> {
        let manifest = self.manifest()?;
        let keys = self.keys()?;
        let follow_up = FollowUp {
            institution: manifest.institution_id().clone(),
            date: request.date,
            text: request.text.clone(),
            attachments: attachment_refs(&request.attachments)?,
        };
        let sealed = envelope::seal_follow_up(&follow_up, manifest)?;
        let signature = auth::sign_follow_up(
            keys.mailbox_key(),
            manifest.institution_id(),
            &keys.mailbox_id(),
            &sealed.sha256(),
        );
        Ok(SealedFollowUp {
            message: b64(sealed.as_bytes()),
            signature: b64(&signature.to_bytes()),
        })
    }
}

/// The signed documents of a `GET …/manifests` body (`{"manifests":[DOC,…]}`, docs/api.md),
/// each exactly as served: they are parsed as canonical documents, so they must not be
/// re-encoded on the way.
fn split_history(body: &[u8]) -> Result<Vec<&[u8]>, WebError> {
    let unreadable = || WebError::bad_request("manifest history");
    let mut rest = body
        .strip_prefix(b"{\"manifests\":[")
        .ok_or_else(unreadable)?;
    let mut documents = Vec::new();
    if rest == b"]}" {
        return Ok(documents);
    }
    loop {
        // One JSON value and where it ends; the manifest parser checks it in full.
        let mut values =
            serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
        if !matches!(values.next(), Some(Ok(_))) {
            return Err(unreadable());
        }
        let (document, after) = rest.split_at(values.byte_offset());
        documents.push(document);
        if after == b"]}" {
            return Ok(documents);
        }
        rest = after.strip_prefix(b",").ok_or_else(unreadable)?;
    }
}

fn mint_stamp(request: MintRequest) -> Result<MintedStamp, WebError> {
    let resource = unhex_array::<32>(&request.resource, "proof-of-work resource")?;
    // Canonical JSON text (docs/protocol.md#pow): the page embeds it as is.
    let stamp = Stamp::mint_from(&resource, request.bits, request.start, request.count)
        .map(|stamp| String::from_utf8_lossy(&stamp.to_json()).into_owned());
    Ok(MintedStamp { stamp })
}

fn attachment_refs(list: &[AttachmentIn]) -> Result<Vec<AttachmentRef>, WebError> {
    list.iter()
        .map(|a| {
            Ok(AttachmentRef {
                upload: a.upload.parse::<UploadId>()?,
                name: a.name.clone(),
                media_type: a.media_type.clone(),
                size: a.size,
                sealed_sha256: unhex_array::<32>(&a.sealed_sha256, "attachment digest")?,
            })
        })
        .collect()
}

/// The u32 (little-endian) that starts a raw request: a sealer's or a digest's handle.
fn raw_handle(input: &[u8]) -> Result<u32, WebError> {
    input
        .first_chunk::<4>()
        .map(|bytes| u32::from_le_bytes(*bytes))
        .ok_or(WebError::bad_request("attachment handle"))
}

fn parse<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Result<T, WebError> {
    serde_json::from_slice(input).map_err(|_| WebError::bad_request("request JSON"))
}

fn json_out<T: Serialize>(value: &T) -> Result<Output, WebError> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|_| WebError::invalid_use("answer encoding"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyManifest {
    manifest_key: String,
    origin: String,
    today: Day,
    manifest: String,
}

#[derive(Serialize)]
struct ManifestSummary {
    institution: String,
    name: String,
    serial: u64,
    valid_until: Day,
    recipients: usize,
    fingerprint: Fingerprint,
    form: FormDefinition,
}

#[derive(Serialize)]
struct Fingerprint {
    id: Vec<&'static str>,
    en: Vec<&'static str>,
    hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReceipt {
    language: Language,
}

#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct ReceiptWords {
    words: String,
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct OpenReceipt {
    words: String,
}

#[derive(Serialize)]
struct ReceiptLanguage {
    language: Language,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentBegin {
    size: u64,
    /// The page hashes the ciphertext itself ([`Op::DigestBegin`]), on another core.
    #[serde(default)]
    unhashed: bool,
}

#[derive(Serialize)]
struct AttachmentSize {
    handle: u32,
    sealed_size: u64,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Handle {
    handle: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Serialize)]
struct AttachmentDigest {
    sealed_len: u64,
    /// Absent for a sealer begun `unhashed`: the page's own digest is the one to list.
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_sha256: Option<String>,
}

#[derive(Serialize)]
struct SealedSha256 {
    sealed_sha256: String,
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct AnswerIn {
    question: String,
    value: String,
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct AttachmentIn {
    upload: String,
    name: String,
    media_type: String,
    size: u64,
    sealed_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRequest {
    language: Language,
    date: Day,
    answers: Vec<AnswerIn>,
    attachments: Vec<AttachmentIn>,
}

#[derive(Serialize)]
struct SealedEnvelope {
    envelope: String,
    envelope_sha256: String,
    mailbox_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    resource: String,
    bits: u8,
    start: u64,
    count: u64,
}

#[derive(Serialize)]
struct MintedStamp {
    stamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeText {
    challenge: String,
}

#[derive(Serialize)]
struct ResponseText {
    response: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyText {
    reply: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryText {
    manifests: String,
}

#[derive(Serialize)]
struct HistorySummary {
    serials: Vec<u64>,
}

#[derive(Serialize, Zeroize, ZeroizeOnDrop)]
struct OpenedAttachment {
    name: String,
    media_type: String,
    data: String,
}

#[derive(Serialize)]
struct OpenedReply {
    seq: u32,
    date: Day,
    kind: &'static str,
    status: Option<&'static str>,
    text: String,
    signer: String,
    attachments: Vec<OpenedAttachment>,
}

impl Drop for OpenedReply {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct FollowUpRequest {
    #[zeroize(skip)]
    date: Day,
    text: String,
    attachments: Vec<AttachmentIn>,
}

#[derive(Serialize)]
struct SealedFollowUp {
    message: String,
    signature: String,
}
