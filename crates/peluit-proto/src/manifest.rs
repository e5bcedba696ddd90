//! The signed key manifest: which keys a report is sealed to, who may sign replies, which
//! origins may serve the page and which questions it may ask (docs/protocol.md#manifest).
//!
//! A manifest is canonical JSON signed by the institution's offline manifest key. Clients
//! pin that key and only ever use a [`VerifiedManifest`], which exists only after every
//! rule below held. Key fingerprints as words are in docs/protocol.md#fingerprint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::day::Day;
use crate::ids::InstitutionId;
use crate::keys::{SealRecipient, SignContext, Signature, SigningKey, VerifyingKey};
use crate::limits::{
    MAX_ANSWER_LEN, MAX_MANIFEST_LEN, MAX_QUESTIONS, MAX_RECIPIENTS, MAX_SHORT_TEXT,
};
use crate::wordlist::{BITS_PER_WORD, Language};
use crate::{Error, Result};

/// The manifest version this build speaks.
pub const MANIFEST_VERSION: u64 = 1;
/// Most origins one manifest may bind.
pub const MAX_ORIGINS: usize = 16;
/// Most choices one `choice` question may offer.
pub const MAX_CHOICES: usize = 64;
/// Most languages one translated text may carry.
pub const MAX_TRANSLATIONS: usize = 16;
/// Longest help text in one language, in bytes of UTF-8.
pub const MAX_HELP_LEN: usize = 1024;
/// Longest question or choice id.
pub const MAX_ID_LEN: usize = 32;
/// Largest serial: 2^53 - 1, so that a JavaScript number holds every serial exactly.
pub const MAX_SERIAL: u64 = (1 << 53) - 1;
/// Words in a key fingerprint.
pub const FINGERPRINT_WORDS: usize = 8;

const FINGERPRINT_DOMAIN: &[u8] = b"peluit/v1/fingerprint\n";

/// Why a manifest was refused. [`code`](Self::code) gives a stable machine code (used by
/// test vectors and by pages to pick a translated message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The signature does not verify under the pinned manifest key.
    #[error("the signature does not verify under the pinned manifest key")]
    BadSignature,
    /// The document parsed but is not byte for byte its canonical form.
    #[error("the manifest is not in canonical form")]
    NonCanonical,
    /// The institution's name is empty, too long or holds control characters.
    #[error("the institution name is empty, too long or holds control characters")]
    BadInstitutionName,
    /// The manifest lists no origin.
    #[error("the manifest lists no origin")]
    NoOrigins,
    /// The manifest lists more than [`MAX_ORIGINS`] origins.
    #[error("the manifest lists {count} origins; at most {MAX_ORIGINS} are allowed")]
    TooManyOrigins {
        /// Origins listed.
        count: usize,
    },
    /// An origin is not a lowercase `scheme://host[:port]` of an allowed kind.
    #[error("{origin:?} is not an allowed origin")]
    BadOrigin {
        /// The origin as listed.
        origin: String,
    },
    /// An origin is listed twice.
    #[error("the origin {origin:?} is listed twice")]
    DuplicateOrigin {
        /// The origin.
        origin: String,
    },
    /// The page's origin is not one the manifest is bound to.
    #[error("this manifest is not for {origin:?}")]
    OriginNotListed {
        /// The page's origin.
        origin: String,
    },
    /// The serial is above [`MAX_SERIAL`].
    #[error("the serial {serial} is above the largest allowed serial")]
    BadSerial {
        /// The serial.
        serial: u64,
    },
    /// `valid_from` is after `valid_until`.
    #[error("the validity period {valid_from} to {valid_until} is empty")]
    EmptyValidity {
        /// First valid day.
        valid_from: Day,
        /// Last valid day.
        valid_until: Day,
    },
    /// Today is before `valid_from`.
    #[error("the manifest is not valid before {valid_from} (today is {today})")]
    NotYetValid {
        /// First valid day.
        valid_from: Day,
        /// The caller's today.
        today: Day,
    },
    /// Today is after `valid_until`.
    #[error("the manifest expired after {valid_until} (today is {today})")]
    Expired {
        /// Last valid day.
        valid_until: Day,
        /// The caller's today.
        today: Day,
    },
    /// The serial is lower than one already seen: an older manifest is being replayed.
    #[error("the serial {serial} is lower than {seen}, which was already seen")]
    SerialRollback {
        /// The manifest's serial.
        serial: u64,
        /// The highest serial already seen.
        seen: u64,
    },
    /// Two different manifests carry the same serial.
    #[error("the serial {serial} is used more than once; a new manifest needs a higher serial")]
    SerialReused {
        /// The serial.
        serial: u64,
    },
    /// A recipient the caller expects is not in the manifest.
    #[error("the expected recipient {recipient} is missing")]
    MissingRecipient {
        /// The missing recipient.
        recipient: String,
    },
    /// The manifest has a recipient the caller does not expect.
    #[error("the recipient {recipient} is not expected")]
    ExtraRecipient {
        /// The unexpected recipient.
        recipient: String,
    },
    /// A key holder's name is empty, too long or uses characters outside `a-z0-9_.:-`.
    #[error("{holder:?} is not a valid key holder name")]
    BadHolder {
        /// The holder as listed.
        holder: String,
    },
    /// A key's text does not parse as a public key of its purpose.
    #[error("the {purpose} key of {holder:?} is not a valid key for that purpose")]
    BadKey {
        /// The holder.
        holder: String,
        /// The declared purpose.
        purpose: Purpose,
    },
    /// The same public key is listed twice for the same purpose.
    #[error("the key {public} is listed twice")]
    DuplicateKey {
        /// The key's text.
        public: String,
    },
    /// One public key is listed for two purposes.
    #[error("the key {public} is listed both for {first} and for {second}")]
    WrongPurpose {
        /// The key's text.
        public: String,
        /// The purpose of its first listing.
        first: Purpose,
        /// The purpose of its second listing.
        second: Purpose,
    },
    /// A holder has two keys of the same purpose.
    #[error("{holder:?} holds two {purpose} keys")]
    HolderHasTwoKeys {
        /// The holder.
        holder: String,
        /// The purpose.
        purpose: Purpose,
    },
    /// No investigator seal key: nobody but the escrow could read a report.
    #[error("the manifest has no seal key")]
    NoSealKey,
    /// Not exactly one escrow seal key.
    #[error("the manifest has {found} escrow seal keys; exactly one is required")]
    EscrowCount {
        /// Escrow keys found.
        found: usize,
    },
    /// An investigator can read reports but has no key to sign replies.
    #[error("{holder:?} has a seal key but no reply-signing key")]
    MissingReplySigningKey {
        /// The holder.
        holder: String,
    },
    /// A reply-signing key belongs to someone who cannot read reports.
    #[error("{holder:?} has a reply-signing key but no seal key")]
    MissingSealKey {
        /// The holder.
        holder: String,
    },
    /// The escrow holder also holds an investigator key.
    #[error("the escrow holder {holder:?} also holds an investigator key")]
    EscrowHolderReused {
        /// The holder.
        holder: String,
    },
    /// More recipients than [`MAX_RECIPIENTS`].
    #[error("the manifest has {count} recipients; at most {MAX_RECIPIENTS} are allowed")]
    TooManyRecipients {
        /// Seal and escrow keys listed.
        count: usize,
    },
    /// The form definition breaks its own rules.
    #[error("invalid form: {0}")]
    InvalidForm(FormProblem),
    /// A manifest history with no entry.
    #[error("the manifest history is empty")]
    EmptyHistory,
}

impl Rejection {
    /// A stable, kebab-case code for this rejection (docs/protocol.md#manifest).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad-signature",
            Self::NonCanonical => "non-canonical",
            Self::BadInstitutionName => "bad-institution-name",
            Self::NoOrigins => "no-origins",
            Self::TooManyOrigins { .. } => "too-many-origins",
            Self::BadOrigin { .. } => "bad-origin",
            Self::DuplicateOrigin { .. } => "duplicate-origin",
            Self::OriginNotListed { .. } => "origin-not-listed",
            Self::BadSerial { .. } => "bad-serial",
            Self::EmptyValidity { .. } => "empty-validity",
            Self::NotYetValid { .. } => "not-yet-valid",
            Self::Expired { .. } => "expired",
            Self::SerialRollback { .. } => "serial-rollback",
            Self::SerialReused { .. } => "serial-reused",
            Self::MissingRecipient { .. } => "missing-recipient",
            Self::ExtraRecipient { .. } => "extra-recipient",
            Self::BadHolder { .. } => "bad-holder",
            Self::BadKey { .. } => "bad-key",
            Self::DuplicateKey { .. } => "duplicate-key",
            Self::WrongPurpose { .. } => "wrong-purpose",
            Self::HolderHasTwoKeys { .. } => "holder-has-two-keys",
            Self::NoSealKey => "no-seal-key",
            Self::EscrowCount { .. } => "escrow-count",
            Self::MissingReplySigningKey { .. } => "missing-reply-signing-key",
            Self::MissingSealKey { .. } => "missing-seal-key",
            Self::EscrowHolderReused { .. } => "escrow-holder-reused",
            Self::TooManyRecipients { .. } => "too-many-recipients",
            Self::InvalidForm(_) => "invalid-form",
            Self::EmptyHistory => "empty-history",
        }
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::ManifestRejected(rejection)
    }
}

/// How a form definition breaks its rules (docs/protocol.md#manifest, "Form definition").
/// Locations name ids from the form, never user input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormProblem {
    /// The form has no question.
    #[error("the form has no question")]
    NoQuestions,
    /// More than [`MAX_QUESTIONS`] questions.
    #[error("the form has {count} questions; at most {MAX_QUESTIONS} are allowed")]
    TooManyQuestions {
        /// Questions in the form.
        count: usize,
    },
    /// A question id is not 1 to 32 characters of `a-z0-9_`.
    #[error("{id:?} is not a valid question id")]
    BadQuestionId {
        /// The id.
        id: String,
    },
    /// Two questions share an id.
    #[error("the question id {id:?} is used twice")]
    DuplicateQuestion {
        /// The id.
        id: String,
    },
    /// `max_len` is 0, above the protocol limit, or shorter than a choice id.
    #[error("question {question:?} has an invalid max_len")]
    BadMaxLen {
        /// The question.
        question: String,
    },
    /// A `choice` question without choices.
    #[error("choice question {question:?} offers no choice")]
    NoChoices {
        /// The question.
        question: String,
    },
    /// More than [`MAX_CHOICES`] choices.
    #[error("question {question:?} offers more than {MAX_CHOICES} choices")]
    TooManyChoices {
        /// The question.
        question: String,
    },
    /// Choices on a question that is not a `choice` question.
    #[error("question {question:?} has choices but is not a choice question")]
    ChoicesNotAllowed {
        /// The question.
        question: String,
    },
    /// A choice id is not 1 to 32 characters of `a-z0-9_`.
    #[error("question {question:?} has an invalid choice id {choice:?}")]
    BadChoiceId {
        /// The question.
        question: String,
        /// The choice id.
        choice: String,
    },
    /// Two choices of one question share an id.
    #[error("question {question:?} offers the choice {choice:?} twice")]
    DuplicateChoice {
        /// The question.
        question: String,
        /// The choice id.
        choice: String,
    },
    /// A translated text lacks a required language.
    #[error("{at} has no {language:?} text")]
    MissingTranslation {
        /// Where, e.g. `category.choices.suap.label`.
        at: String,
        /// The missing language tag.
        language: &'static str,
    },
    /// A translated text has a bad language tag, an empty or too long text, control
    /// characters, or too many languages.
    #[error("{at} has an invalid translation")]
    BadTranslation {
        /// Where, e.g. `what_happened.help`.
        at: String,
    },
}

/// What a manifest key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// An investigator's age X25519 recipient: reports are sealed to it.
    Seal,
    /// The escrow identity's age X25519 recipient, kept in a safe.
    EscrowSeal,
    /// An investigator's Ed25519 key that signs replies and status changes.
    ReplySigning,
}

impl Purpose {
    /// The purpose as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seal => "seal",
            Self::EscrowSeal => "escrow-seal",
            Self::ReplySigning => "reply-signing",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The institution a manifest belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Institution {
    /// Short slug used in URLs and store keys.
    pub id: InstitutionId,
    /// Display name, e.g. "Inspektorat Jenderal Kementerian Keuangan".
    pub name: String,
}

/// One key of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestKey {
    /// Who holds the key, e.g. `investigator:ani` or `escrow`.
    pub holder: String,
    /// What the key is for.
    pub purpose: Purpose,
    /// `age1…` for seal keys, canonical base64 of 32 bytes for reply-signing keys.
    pub public: String,
}

/// A text in several languages, keyed by lowercase BCP 47 tag. A `BTreeMap` so that JSON
/// keys come out sorted, which the canonical form requires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Translations(pub BTreeMap<String, String>);

impl Translations {
    /// A text in Indonesian and English, the two languages every text must have.
    pub fn id_en(id: &str, en: &str) -> Self {
        Self(BTreeMap::from([
            ("en".to_owned(), en.to_owned()),
            ("id".to_owned(), id.to_owned()),
        ]))
    }

    /// The text for a language tag.
    pub fn get(&self, tag: &str) -> Option<&str> {
        self.0.get(tag).map(String::as_str)
    }

    /// The text for one of the page's languages (present in every verified manifest).
    pub fn text(&self, language: Language) -> &str {
        self.get(language.tag()).unwrap_or_default()
    }
}

/// How a question is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuestionKind {
    /// One line of text.
    Text,
    /// Several lines of text.
    LongText,
    /// One of the question's choices, answered by the choice's id.
    Choice,
    /// A day, `YYYY-MM-DD`.
    Date,
    /// A whole amount of money as decimal digits, without separators.
    Money,
}

/// One choice of a `choice` question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// The id the answer carries, `a-z0-9_`, 1 to 32 characters.
    pub id: String,
    /// What the page shows.
    pub label: Translations,
}

/// One question of the form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// `a-z0-9_`, 1 to 32 characters, unique in the form.
    pub id: String,
    /// How it is answered.
    pub kind: QuestionKind,
    /// Whether a report must answer it.
    pub required: bool,
    /// Longest answer in bytes of UTF-8, 1 to [`MAX_ANSWER_LEN`].
    pub max_len: u32,
    /// The question as the page shows it.
    pub label: Translations,
    /// A hint shown under the question.
    pub help: Translations,
    /// The choices of a `choice` question; empty for every other kind.
    pub choices: Vec<Choice>,
}

/// The questions a page may ask, signed as part of the manifest so that a compromised
/// server cannot add one (such as "your ID number").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormDefinition {
    /// The questions, in the order the page asks them.
    pub questions: Vec<Question>,
}

/// A key manifest, unsigned. Build it, [`check`](Self::check) it, then
/// [`sign`](Self::sign) it with the offline manifest key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`].
    pub version: u64,
    /// Whose manifest this is.
    pub institution: Institution,
    /// Origins allowed to serve the reporting page.
    pub origins: Vec<String>,
    /// Grows with every new manifest.
    pub serial: u64,
    /// First day the manifest is valid.
    pub valid_from: Day,
    /// Last day the manifest is valid.
    pub valid_until: Day,
    /// Seal, escrow and reply-signing keys.
    pub keys: Vec<ManifestKey>,
    /// The reporting form.
    pub form: FormDefinition,
}

/// A manifest with its signature, as served: `{"manifest":{…},"signature":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    manifest: Manifest,
    signature: Signature,
}

/// What a caller requires of a manifest beyond its own rules.
#[derive(Clone, Debug)]
pub struct VerifyPolicy {
    /// The pinned manifest key.
    pub manifest_key: VerifyingKey,
    /// The page's origin (`location.origin`); `None` where origins are checked elsewhere
    /// (desk, auditor).
    pub origin: Option<String>,
    /// The caller's current day.
    pub today: Day,
    /// The highest serial already seen.
    pub min_serial: Option<u64>,
    /// [`VerifiedManifest::manifest_sha256`] of the manifest seen with `min_serial`; a
    /// different manifest with that same serial is refused.
    pub seen_sha256: Option<[u8; 32]>,
    /// The exact recipient set expected (seal and escrow keys), if the caller knows it.
    pub expected_recipients: Option<Vec<SealRecipient>>,
}

impl VerifyPolicy {
    /// A policy that pins `manifest_key` and checks dates against `today`, nothing more.
    pub fn new(manifest_key: VerifyingKey, today: Day) -> Self {
        Self {
            manifest_key,
            origin: None,
            today,
            min_serial: None,
            seen_sha256: None,
            expected_recipients: None,
        }
    }
}

/// A manifest that passed [`SignedManifest::verify`]; only verification makes one.
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    signed: SignedManifest,
    parsed: ParsedKeys,
    sha256: [u8; 32],
}

#[derive(Clone, Debug)]
struct ParsedKeys {
    seal_recipients: Vec<SealRecipient>,
    reply_signers: Vec<(String, VerifyingKey)>,
}

fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .unwrap_or_else(|_| unreachable!("manifest types always serialize: no non-string keys"))
}

impl Manifest {
    /// The canonical bytes that are signed: compact JSON, fields in struct order.
    pub fn canonical_json(&self) -> Vec<u8> {
        to_canonical_json(self)
    }

    /// Signs the manifest. Signing does not check it: call [`check`](Self::check) first.
    pub fn sign(self, key: &SigningKey) -> SignedManifest {
        let signature = key.sign(SignContext::Manifest, &self.canonical_json());
        SignedManifest {
            manifest: self,
            signature,
        }
    }

    /// Checks the rules a manifest must meet on its own, whoever reads it
    /// (docs/protocol.md#manifest, "Rules").
    pub fn check(&self) -> Result<()> {
        self.check_parsed().map(drop)
    }

    fn check_parsed(&self) -> Result<ParsedKeys> {
        if self.version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "manifest",
                version: self.version,
            });
        }
        // The name is shown on the page and on posters. docs/protocol.md#manifest
        let name = &self.institution.name;
        if name.is_empty() || name.len() > MAX_SHORT_TEXT || name.chars().any(char::is_control) {
            return Err(Rejection::BadInstitutionName.into());
        }
        self.check_origins()?;
        // Serials must fit a JavaScript number exactly. docs/protocol.md#manifest
        if self.serial > MAX_SERIAL {
            return Err(Rejection::BadSerial {
                serial: self.serial,
            }
            .into());
        }
        if self.valid_from > self.valid_until {
            return Err(Rejection::EmptyValidity {
                valid_from: self.valid_from,
                valid_until: self.valid_until,
            }
            .into());
        }
        let parsed = self.check_keys()?;
        self.form.check().map_err(Rejection::InvalidForm)?;
        Ok(parsed)
    }

    fn check_origins(&self) -> Result<()> {
        // A manifest binds the page to where it may be served. docs/protocol.md#manifest
        if self.origins.is_empty() {
            return Err(Rejection::NoOrigins.into());
        }
        if self.origins.len() > MAX_ORIGINS {
            return Err(Rejection::TooManyOrigins {
                count: self.origins.len(),
            }
            .into());
        }
        let mut seen = BTreeSet::new();
        for origin in &self.origins {
            if !origin_is_valid(origin) {
                return Err(Rejection::BadOrigin {
                    origin: origin.clone(),
                }
                .into());
            }
            if !seen.insert(origin.as_str()) {
                return Err(Rejection::DuplicateOrigin {
                    origin: origin.clone(),
                }
                .into());
            }
        }
        Ok(())
    }

    fn check_keys(&self) -> Result<ParsedKeys> {
        // Key bytes → (purpose, text) of the first listing, to find reuse across
        // encodings and purposes. docs/protocol.md#manifest
        let mut by_bytes: HashMap<[u8; 32], Purpose> = HashMap::new();
        let mut held: BTreeSet<(&str, Purpose)> = BTreeSet::new();
        let mut seals = Vec::new();
        let mut escrows = Vec::new();
        let mut reply_signers = Vec::new();
        for key in &self.keys {
            if !holder_is_valid(&key.holder) {
                return Err(Rejection::BadHolder {
                    holder: key.holder.clone(),
                }
                .into());
            }
            let bad_key = || Rejection::BadKey {
                holder: key.holder.clone(),
                purpose: key.purpose,
            };
            let bytes = match key.purpose {
                Purpose::Seal | Purpose::EscrowSeal => {
                    let recipient: SealRecipient = key.public.parse().map_err(|_| bad_key())?;
                    let bytes = age_recipient_bytes(&key.public).ok_or_else(bad_key)?;
                    if key.purpose == Purpose::Seal {
                        seals.push((key.holder.as_str(), recipient));
                    } else {
                        escrows.push((key.holder.as_str(), recipient));
                    }
                    bytes
                }
                Purpose::ReplySigning => {
                    let verifying: VerifyingKey = key.public.parse().map_err(|_| bad_key())?;
                    reply_signers.push((key.holder.clone(), verifying));
                    verifying.to_bytes()
                }
            };
            // Reject duplicate keys and keys reused for a second purpose.
            // docs/protocol.md#manifest
            if let Some(&first) = by_bytes.get(&bytes) {
                return Err(if first == key.purpose {
                    Rejection::DuplicateKey {
                        public: key.public.clone(),
                    }
                } else {
                    Rejection::WrongPurpose {
                        public: key.public.clone(),
                        first,
                        second: key.purpose,
                    }
                }
                .into());
            }
            by_bytes.insert(bytes, key.purpose);
            // One key per holder and purpose, so a holder's key is never ambiguous.
            // docs/protocol.md#manifest
            if !held.insert((key.holder.as_str(), key.purpose)) {
                return Err(Rejection::HolderHasTwoKeys {
                    holder: key.holder.clone(),
                    purpose: key.purpose,
                }
                .into());
            }
        }
        if seals.is_empty() {
            return Err(Rejection::NoSealKey.into());
        }
        if escrows.len() != 1 {
            return Err(Rejection::EscrowCount {
                found: escrows.len(),
            }
            .into());
        }
        let recipients = seals.len() + escrows.len();
        if recipients > MAX_RECIPIENTS {
            return Err(Rejection::TooManyRecipients { count: recipients }.into());
        }
        // Every reader can sign replies and every reply signer can read.
        // docs/protocol.md#manifest
        for (holder, _) in &seals {
            if !held.contains(&(*holder, Purpose::ReplySigning)) {
                return Err(Rejection::MissingReplySigningKey {
                    holder: (*holder).to_owned(),
                }
                .into());
            }
        }
        for (holder, _) in &reply_signers {
            if !held.contains(&(holder.as_str(), Purpose::Seal)) {
                return Err(Rejection::MissingSealKey {
                    holder: holder.clone(),
                }
                .into());
            }
        }
        let escrow_holder = escrows[0].0;
        if held.contains(&(escrow_holder, Purpose::Seal)) {
            return Err(Rejection::EscrowHolderReused {
                holder: escrow_holder.to_owned(),
            }
            .into());
        }
        let seal_recipients = seals
            .into_iter()
            .chain(escrows)
            .map(|(_, recipient)| recipient)
            .collect();
        Ok(ParsedKeys {
            seal_recipients,
            reply_signers,
        })
    }
}

/// `https://host[:port]`, `http://<56 base32>.onion[:port]`, `http://127.0.0.1[:port]` or
/// `http://localhost[:port]`, lowercase, no default port, nothing after the authority.
fn origin_is_valid(origin: &str) -> bool {
    let (scheme, rest, default_port) = if let Some(rest) = origin.strip_prefix("https://") {
        ("https", rest, "443")
    } else if let Some(rest) = origin.strip_prefix("http://") {
        ("http", rest, "80")
    } else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if let Some(port) = port {
        let digits_ok = (1..=5).contains(&port.len())
            && port.bytes().all(|c| c.is_ascii_digit())
            && !port.starts_with('0');
        let value_ok = port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !digits_ok || !value_ok || port == default_port {
            return false;
        }
    }
    if scheme == "https" {
        return dns_name_is_valid(host);
    }
    if host == "127.0.0.1" || host == "localhost" {
        return true;
    }
    host.strip_suffix(".onion").is_some_and(|service| {
        service.len() == 56
            && service
                .bytes()
                .all(|c| matches!(c, b'a'..=b'z' | b'2'..=b'7'))
    })
}

fn dns_name_is_valid(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn holder_is_valid(holder: &str) -> bool {
    (1..=64).contains(&holder.len())
        && holder.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b':' | b'-')
        })
}

/// The 32 key bytes of a canonical `age1…` recipient (already parsed by age).
fn age_recipient_bytes(text: &str) -> Option<[u8; 32]> {
    let (_, data) = bech32::decode(text).ok()?;
    data.try_into().ok()
}

fn id_is_valid(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

fn tag_is_valid(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_lowercase()));
    primary_ok
        && tag.len() <= 35
        && parts.all(|p| {
            (2..=8).contains(&p.len())
                && p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

impl Translations {
    fn check(&self, at: impl Fn() -> String, max_len: usize) -> Result<(), FormProblem> {
        // Every text exists in the page's two languages. docs/protocol.md#manifest
        for language in ["id", "en"] {
            if !self.0.contains_key(language) {
                return Err(FormProblem::MissingTranslation { at: at(), language });
            }
        }
        let ok = self.0.len() <= MAX_TRANSLATIONS
            && self.0.iter().all(|(tag, text)| {
                tag_is_valid(tag)
                    && !text.is_empty()
                    && text.len() <= max_len
                    && !text.chars().any(char::is_control)
            });
        if ok {
            Ok(())
        } else {
            Err(FormProblem::BadTranslation { at: at() })
        }
    }
}

impl FormDefinition {
    /// Checks the form's own rules (docs/protocol.md#manifest, "Form definition").
    pub fn check(&self) -> Result<(), FormProblem> {
        if self.questions.is_empty() {
            return Err(FormProblem::NoQuestions);
        }
        if self.questions.len() > MAX_QUESTIONS {
            return Err(FormProblem::TooManyQuestions {
                count: self.questions.len(),
            });
        }
        let mut ids = BTreeSet::new();
        for q in &self.questions {
            if !id_is_valid(&q.id) {
                return Err(FormProblem::BadQuestionId { id: q.id.clone() });
            }
            if !ids.insert(q.id.as_str()) {
                return Err(FormProblem::DuplicateQuestion { id: q.id.clone() });
            }
            let question = || q.id.clone();
            if q.max_len == 0 || q.max_len as usize > MAX_ANSWER_LEN {
                return Err(FormProblem::BadMaxLen {
                    question: question(),
                });
            }
            q.label
                .check(|| format!("{}.label", q.id), MAX_SHORT_TEXT)?;
            q.help.check(|| format!("{}.help", q.id), MAX_HELP_LEN)?;
            // Choices only where they are the answer. docs/protocol.md#manifest
            if q.kind != QuestionKind::Choice {
                if !q.choices.is_empty() {
                    return Err(FormProblem::ChoicesNotAllowed {
                        question: question(),
                    });
                }
                continue;
            }
            if q.choices.is_empty() {
                return Err(FormProblem::NoChoices {
                    question: question(),
                });
            }
            if q.choices.len() > MAX_CHOICES {
                return Err(FormProblem::TooManyChoices {
                    question: question(),
                });
            }
            let mut choice_ids = BTreeSet::new();
            for c in &q.choices {
                if !id_is_valid(&c.id) {
                    return Err(FormProblem::BadChoiceId {
                        question: question(),
                        choice: c.id.clone(),
                    });
                }
                if !choice_ids.insert(c.id.as_str()) {
                    return Err(FormProblem::DuplicateChoice {
                        question: question(),
                        choice: c.id.clone(),
                    });
                }
                // Every choice must be a possible answer.
                if c.id.len() > q.max_len as usize {
                    return Err(FormProblem::BadMaxLen {
                        question: question(),
                    });
                }
                c.label.check(
                    || format!("{}.choices.{}.label", q.id, c.id),
                    MAX_SHORT_TEXT,
                )?;
            }
        }
        Ok(())
    }

    /// The question with this id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    /// The fields of the KPK Whistleblower System, labelled in Indonesian and English.
    pub fn kws_default() -> Self {
        let q = |id: &str,
                 kind,
                 required,
                 max_len,
                 label: (&str, &str),
                 help: (&str, &str),
                 choices: Vec<Choice>| Question {
            id: id.to_owned(),
            kind,
            required,
            max_len,
            label: Translations::id_en(label.0, label.1),
            help: Translations::id_en(help.0, help.1),
            choices,
        };
        let choice = |id: &str, label_id: &str, label_en: &str| Choice {
            id: id.to_owned(),
            label: Translations::id_en(label_id, label_en),
        };
        let long = MAX_ANSWER_LEN as u32;
        Self {
            questions: vec![
                q(
                    "category",
                    QuestionKind::Choice,
                    true,
                    32,
                    ("Jenis dugaan pelanggaran", "Type of suspected violation"),
                    (
                        "Pilih jenis yang paling mendekati. Jika ragu, pilih “Lainnya”.",
                        "Choose the closest type. If you are unsure, choose “Other”.",
                    ),
                    vec![
                        choice("suap", "Suap", "Bribery"),
                        choice("gratifikasi", "Gratifikasi", "Gratuities"),
                        choice(
                            "pengadaan",
                            "Kecurangan pengadaan barang/jasa",
                            "Procurement fraud",
                        ),
                        choice(
                            "penyalahgunaan_wewenang",
                            "Penyalahgunaan wewenang",
                            "Abuse of authority",
                        ),
                        choice("penggelapan", "Penggelapan dalam jabatan", "Embezzlement"),
                        choice("pungli", "Pungutan liar (pungli)", "Illegal levies"),
                        choice("lainnya", "Lainnya", "Other"),
                    ],
                ),
                q(
                    "what_happened",
                    QuestionKind::LongText,
                    true,
                    long,
                    ("Apa yang terjadi?", "What happened?"),
                    (
                        "Ceritakan dengan kata-kata Anda sendiri: apa yang dilakukan, oleh \
                         siapa, dan bagaimana caranya. Jangan menulis nama Anda atau hal lain \
                         yang dapat mengungkap siapa Anda.",
                        "Describe it in your own words: what was done, by whom, and how. Do \
                         not write your name or anything else that could reveal who you are.",
                    ),
                    vec![],
                ),
                q(
                    "who_involved",
                    QuestionKind::LongText,
                    false,
                    4096,
                    ("Siapa yang terlibat?", "Who was involved?"),
                    (
                        "Nama, jabatan dan unit kerja setiap orang yang diduga terlibat, \
                         sejauh Anda mengetahuinya.",
                        "The name, position and work unit of each person you suspect was \
                         involved, as far as you know them.",
                    ),
                    vec![],
                ),
                q(
                    "where",
                    QuestionKind::Text,
                    false,
                    1024,
                    ("Di mana kejadiannya?", "Where did it happen?"),
                    (
                        "Kantor, unit kerja, kota atau lokasi proyek.",
                        "The office, work unit, city or project site.",
                    ),
                    vec![],
                ),
                q(
                    "when",
                    QuestionKind::Text,
                    false,
                    256,
                    ("Kapan kejadiannya?", "When did it happen?"),
                    (
                        "Tanggal atau perkiraan waktu, misalnya “Maret 2025” atau “sejak awal \
                         2024”.",
                        "A date or an approximate time, for example “March 2025” or “since \
                         early 2024”.",
                    ),
                    vec![],
                ),
                q(
                    "how_discovered",
                    QuestionKind::LongText,
                    false,
                    4096,
                    ("Bagaimana Anda mengetahuinya?", "How did you find out?"),
                    (
                        "Misalnya melihat sendiri, mendengar dari orang lain, atau dari \
                         dokumen. Anda tidak perlu menyebut siapa Anda.",
                        "For example, you saw it yourself, heard it from someone, or read it \
                         in documents. You do not need to say who you are.",
                    ),
                    vec![],
                ),
                q(
                    "estimated_loss",
                    QuestionKind::Money,
                    false,
                    20,
                    (
                        "Perkiraan kerugian negara (Rp)",
                        "Estimated loss to the state (IDR)",
                    ),
                    (
                        "Angka saja, tanpa titik atau koma, misalnya 250000000. Kosongkan jika \
                         tidak tahu.",
                        "Digits only, without dots or commas, for example 250000000. Leave it \
                         empty if you do not know.",
                    ),
                    vec![],
                ),
                q(
                    "free_text",
                    QuestionKind::LongText,
                    false,
                    long,
                    ("Informasi lain", "Anything else"),
                    (
                        "Hal lain yang perlu diketahui pemeriksa, misalnya bukti yang Anda \
                         miliki atau di mana bukti dapat ditemukan.",
                        "Anything else investigators should know, for example evidence you \
                         have or where evidence can be found.",
                    ),
                    vec![],
                ),
            ],
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    manifest: ManifestVersionProbe,
}

#[derive(Deserialize)]
struct ManifestVersionProbe {
    version: u64,
}

impl SignedManifest {
    /// Parses a served manifest document. The input must be exactly the canonical JSON
    /// that [`to_json`](Self::to_json) produces (docs/protocol.md#manifest, "Parsing").
    /// This does not verify anything: call [`verify`](Self::verify).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(Error::TooLarge("manifest"));
        }
        // Read the version first, so that a newer manifest is reported as such rather than
        // as unknown fields. docs/protocol.md#manifest
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|_| Error::Malformed("manifest"))?;
        if probe.manifest.version != MANIFEST_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "manifest",
                version: probe.manifest.version,
            });
        }
        let parsed: Self =
            serde_json::from_slice(bytes).map_err(|_| Error::Malformed("manifest"))?;
        // Reject non-canonical input: one manifest has one spelling, so signer, server
        // and verifier all hash and sign the same bytes. docs/protocol.md#manifest
        if parsed.to_json() != bytes {
            return Err(Rejection::NonCanonical.into());
        }
        Ok(parsed)
    }

    /// The canonical document, `{"manifest":{…},"signature":"…"}`.
    pub fn to_json(&self) -> Vec<u8> {
        to_canonical_json(self)
    }

    /// The manifest (not yet verified).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// SHA-256 of the manifest's canonical bytes (the signed body, without the context).
    pub fn manifest_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.manifest.canonical_json()).into()
    }

    fn check_signature(&self, key: &VerifyingKey) -> Result<()> {
        // Only the pinned key may vouch for keys. docs/protocol.md#manifest
        key.verify(
            SignContext::Manifest,
            &self.manifest.canonical_json(),
            &self.signature,
        )
        .map_err(|_| Rejection::BadSignature.into())
    }

    /// Verifies the signature, the manifest's own rules and the caller's policy, in the
    /// order of docs/protocol.md#manifest, "Verification".
    pub fn verify(&self, policy: &VerifyPolicy) -> Result<VerifiedManifest> {
        self.check_signature(&policy.manifest_key)?;
        let parsed = self.manifest.check_parsed()?;
        let m = &self.manifest;
        // The page must be served from an origin the institution signed.
        // docs/protocol.md#manifest
        if let Some(origin) = &policy.origin
            && !m.origins.iter().any(|o| o == origin)
        {
            return Err(Rejection::OriginNotListed {
                origin: origin.clone(),
            }
            .into());
        }
        if policy.today < m.valid_from {
            return Err(Rejection::NotYetValid {
                valid_from: m.valid_from,
                today: policy.today,
            }
            .into());
        }
        if policy.today > m.valid_until {
            return Err(Rejection::Expired {
                valid_until: m.valid_until,
                today: policy.today,
            }
            .into());
        }
        let sha256 = self.manifest_sha256();
        // Serials only grow: refuse replay of an older manifest. docs/protocol.md#manifest
        if let Some(seen) = policy.min_serial {
            if m.serial < seen {
                return Err(Rejection::SerialRollback {
                    serial: m.serial,
                    seen,
                }
                .into());
            }
            if m.serial == seen && policy.seen_sha256.is_some_and(|s| s != sha256) {
                return Err(Rejection::SerialReused { serial: m.serial }.into());
            }
        }
        // The caller's own list of recipients must match exactly. docs/protocol.md#manifest
        if let Some(expected) = &policy.expected_recipients {
            if let Some(missing) = expected
                .iter()
                .find(|r| !parsed.seal_recipients.contains(r))
            {
                return Err(Rejection::MissingRecipient {
                    recipient: missing.to_string(),
                }
                .into());
            }
            if let Some(extra) = parsed
                .seal_recipients
                .iter()
                .find(|r| !expected.contains(r))
            {
                return Err(Rejection::ExtraRecipient {
                    recipient: extra.to_string(),
                }
                .into());
            }
        }
        Ok(VerifiedManifest {
            signed: self.clone(),
            parsed,
            sha256,
        })
    }
}

/// Verifies a manifest history, oldest first: every entry is signed by the pinned key and
/// serials strictly increase; the newest entry is then verified in full against `policy`
/// and returned (docs/protocol.md#manifest, "History").
pub fn verify_history(
    history: &[SignedManifest],
    policy: &VerifyPolicy,
) -> Result<VerifiedManifest> {
    let newest = history.last().ok_or(Rejection::EmptyHistory)?;
    let mut previous: Option<u64> = None;
    for entry in history {
        entry.check_signature(&policy.manifest_key)?;
        let serial = entry.manifest.serial;
        if let Some(previous) = previous {
            if serial < previous {
                return Err(Rejection::SerialRollback {
                    serial,
                    seen: previous,
                }
                .into());
            }
            if serial == previous {
                return Err(Rejection::SerialReused { serial }.into());
            }
        }
        previous = Some(serial);
    }
    newest.verify(policy)
}

impl VerifiedManifest {
    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.signed.manifest
    }

    /// The signed document it came from (to store or forward byte for byte).
    pub fn signed(&self) -> &SignedManifest {
        &self.signed
    }

    /// The institution.
    pub fn institution_id(&self) -> &InstitutionId {
        &self.signed.manifest.institution.id
    }

    /// The serial.
    pub fn serial(&self) -> u64 {
        self.signed.manifest.serial
    }

    /// SHA-256 of the manifest's canonical bytes; remember it with the serial
    /// ([`VerifyPolicy::seen_sha256`]).
    pub fn manifest_sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Every report is sealed to these, in this order: the seal keys in manifest order,
    /// then the escrow key.
    pub fn seal_recipients(&self) -> Vec<SealRecipient> {
        self.parsed.seal_recipients.clone()
    }

    /// The keys that may sign replies and status changes, in manifest order.
    pub fn reply_signing_keys(&self) -> Vec<VerifyingKey> {
        self.parsed.reply_signers.iter().map(|(_, k)| *k).collect()
    }

    /// The holder of a reply-signing key, if the manifest lists it.
    pub fn reply_signer_holder(&self, key: &VerifyingKey) -> Option<&str> {
        self.parsed
            .reply_signers
            .iter()
            .find(|(_, k)| k == key)
            .map(|(holder, _)| holder.as_str())
    }

    /// The signed form definition.
    pub fn form(&self) -> &FormDefinition {
        &self.signed.manifest.form
    }
}

fn fingerprint_digest(key: &VerifyingKey) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(FINGERPRINT_DOMAIN);
    hasher.update(key.to_bytes());
    hasher.finalize().into()
}

/// The key's fingerprint as 8 words: the first 88 bits of
/// SHA-256("peluit/v1/fingerprint\n" || key), 11 bits per word, big-endian
/// (docs/protocol.md#fingerprint).
pub fn fingerprint_words(key: &VerifyingKey, language: Language) -> Vec<&'static str> {
    let digest = fingerprint_digest(key);
    let mut first = [0u8; 16];
    first[..11].copy_from_slice(&digest[..11]);
    // The 88 bits sit at the top of a 128-bit big-endian integer.
    let bits = u128::from_be_bytes(first);
    let words = language.words();
    (0..FINGERPRINT_WORDS)
        .map(|i| {
            let shift = 128 - BITS_PER_WORD * (i + 1);
            words[((bits >> shift) & 0x7ff) as usize]
        })
        .collect()
}

/// The key's fingerprint as hex: the first 16 bytes of the same digest as
/// [`fingerprint_words`], in 8 groups of 4 lowercase digits separated by spaces.
pub fn fingerprint_hex(key: &VerifyingKey) -> String {
    let digest = fingerprint_digest(key);
    digest[..16]
        .chunks(2)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::keys::SealIdentity;

    fn seed(n: u8) -> Zeroizing<[u8; 32]> {
        Zeroizing::new([n; 32])
    }

    fn manifest_key() -> SigningKey {
        SigningKey::from_seed(&seed(1))
    }

    fn seal_key(n: u8) -> SealRecipient {
        SealIdentity::from_secret_bytes(&seed(0x10 + n)).recipient()
    }

    fn reply_key(n: u8) -> VerifyingKey {
        SigningKey::from_seed(&seed(0x20 + n)).verifying_key()
    }

    fn escrow_key() -> SealRecipient {
        SealIdentity::from_secret_bytes(&seed(0x30)).recipient()
    }

    fn key(holder: &str, purpose: Purpose, public: impl ToString) -> ManifestKey {
        ManifestKey {
            holder: holder.to_owned(),
            purpose,
            public: public.to_string(),
        }
    }

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    /// Three investigators and the escrow.
    fn good() -> Manifest {
        let mut keys = Vec::new();
        for (n, name) in [(1, "ani"), (2, "budi"), (3, "citra")] {
            let holder = format!("investigator:{name}");
            keys.push(key(&holder, Purpose::Seal, seal_key(n)));
            keys.push(key(&holder, Purpose::ReplySigning, reply_key(n)));
        }
        keys.push(key("escrow", Purpose::EscrowSeal, escrow_key()));
        Manifest {
            version: MANIFEST_VERSION,
            institution: Institution {
                id: "itjen-contoh".parse().unwrap(),
                name: "Inspektorat Jenderal Kementerian Contoh".to_owned(),
            },
            origins: vec![
                "https://lapor.contoh.go.id".to_owned(),
                format!("http://{}.onion", "a".repeat(55) + "d"),
                "http://127.0.0.1:8080".to_owned(),
            ],
            serial: 7,
            valid_from: day("2026-01-01"),
            valid_until: day("2026-12-31"),
            keys,
            form: FormDefinition::kws_default(),
        }
    }

    fn policy() -> VerifyPolicy {
        VerifyPolicy {
            origin: Some("https://lapor.contoh.go.id".to_owned()),
            ..VerifyPolicy::new(manifest_key().verifying_key(), day("2026-06-15"))
        }
    }

    fn rejection_with(manifest: Manifest, policy: &VerifyPolicy) -> Rejection {
        match manifest.sign(&manifest_key()).verify(policy) {
            Err(Error::ManifestRejected(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn rejection(manifest: Manifest) -> Rejection {
        rejection_with(manifest, &policy())
    }

    fn edit(f: impl FnOnce(&mut Manifest)) -> Manifest {
        let mut m = good();
        f(&mut m);
        m
    }

    fn form_problem(f: impl FnOnce(&mut FormDefinition)) -> FormProblem {
        match rejection(edit(|m| f(&mut m.form))) {
            Rejection::InvalidForm(problem) => problem,
            other => panic!("expected a form problem, got {other:?}"),
        }
    }

    #[test]
    fn three_investigators_and_escrow_verify() {
        let signed = good().sign(&manifest_key());
        let verified = signed.verify(&policy()).unwrap();
        assert_eq!(verified.serial(), 7);
        assert_eq!(verified.institution_id().as_str(), "itjen-contoh");
        assert_eq!(
            verified.seal_recipients(),
            vec![seal_key(1), seal_key(2), seal_key(3), escrow_key()]
        );
        assert_eq!(
            verified.reply_signing_keys(),
            vec![reply_key(1), reply_key(2), reply_key(3)]
        );
        assert_eq!(
            verified.reply_signer_holder(&reply_key(2)),
            Some("investigator:budi")
        );
        assert_eq!(verified.reply_signer_holder(&reply_key(9)), None);
        assert_eq!(verified.form(), &FormDefinition::kws_default());
        assert_eq!(verified.manifest(), &good());
        assert_eq!(verified.signed(), &signed);
        assert_eq!(verified.manifest_sha256(), signed.manifest_sha256());
        // Every listed origin works, and no origin at all (desk, auditor).
        for origin in &good().origins {
            let p = VerifyPolicy {
                origin: Some(origin.clone()),
                ..policy()
            };
            signed.verify(&p).unwrap();
        }
        let desk = VerifyPolicy::new(manifest_key().verifying_key(), day("2026-01-01"));
        signed.verify(&desk).unwrap();
        // The document round-trips through its canonical JSON.
        assert_eq!(
            SignedManifest::from_json(&signed.to_json()).unwrap(),
            signed
        );
    }

    #[test]
    fn rejects_a_bad_signature() {
        let forged = good().sign(&SigningKey::from_seed(&seed(2)));
        assert!(matches!(
            forged.verify(&policy()),
            Err(Error::ManifestRejected(Rejection::BadSignature))
        ));
        // A manifest altered after signing.
        let json = String::from_utf8(good().sign(&manifest_key()).to_json()).unwrap();
        let altered = json.replace("\"serial\":7", "\"serial\":8");
        let parsed = SignedManifest::from_json(altered.as_bytes()).unwrap();
        assert!(matches!(
            parsed.verify(&policy()),
            Err(Error::ManifestRejected(Rejection::BadSignature))
        ));
    }

    #[test]
    fn parsing_requires_canonical_json_of_this_version() {
        let json = String::from_utf8(good().sign(&manifest_key()).to_json()).unwrap();
        let spaced = json.replacen("{\"manifest\":", "{\"manifest\": ", 1);
        assert!(matches!(
            SignedManifest::from_json(spaced.as_bytes()),
            Err(Error::ManifestRejected(Rejection::NonCanonical))
        ));
        let escaped = json.replace("https://", "https:\\/\\/");
        assert!(matches!(
            SignedManifest::from_json(escaped.as_bytes()),
            Err(Error::ManifestRejected(Rejection::NonCanonical))
        ));
        let newline = format!("{json}\n");
        assert!(SignedManifest::from_json(newline.as_bytes()).is_err());
        let unknown = json.replacen("\"serial\":7", "\"serial\":7,\"extra\":1", 1);
        assert!(matches!(
            SignedManifest::from_json(unknown.as_bytes()),
            Err(Error::Malformed(_))
        ));
        let v2 = json.replacen("\"version\":1", "\"version\":2", 1);
        assert!(matches!(
            SignedManifest::from_json(v2.as_bytes()),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        let huge = vec![b' '; MAX_MANIFEST_LEN + 1];
        assert!(matches!(
            SignedManifest::from_json(&huge),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn rejects_an_unlisted_origin() {
        for origin in [
            "https://evil.example",
            "https://lapor.contoh.go.id:443",
            "http://lapor.contoh.go.id",
            "https://LAPOR.contoh.go.id",
        ] {
            let p = VerifyPolicy {
                origin: Some(origin.to_owned()),
                ..policy()
            };
            assert_eq!(
                rejection_with(good(), &p),
                Rejection::OriginNotListed {
                    origin: origin.to_owned()
                }
            );
        }
    }

    #[test]
    fn rejects_malformed_or_duplicate_origins() {
        assert_eq!(rejection(edit(|m| m.origins.clear())), Rejection::NoOrigins);
        for bad in [
            "https://lapor.contoh.go.id/",
            "https://lapor.contoh.go.id/path",
            "https://Lapor.contoh.go.id",
            "https://lapor.contoh.go.id:443",
            "https://lapor.contoh.go.id:0",
            "https://lapor.contoh.go.id:08080",
            "https://lapor.contoh.go.id:70000",
            "http://lapor.contoh.go.id",
            "http://short.onion",
            "http://127.0.0.1:80",
            "ftp://lapor.contoh.go.id",
            "https://",
            "https://-a.go.id",
            "https://a..go.id",
            "https://user@lapor.contoh.go.id",
        ] {
            assert_eq!(
                rejection(edit(|m| m.origins.push(bad.to_owned()))),
                Rejection::BadOrigin {
                    origin: bad.to_owned()
                },
                "{bad}"
            );
        }
        assert_eq!(
            rejection(edit(|m| m.origins.push(m.origins[0].clone()))),
            Rejection::DuplicateOrigin {
                origin: "https://lapor.contoh.go.id".to_owned()
            }
        );
        assert_eq!(
            rejection(edit(
                |m| m.origins = (0..17).map(|i| format!("https://o{i}.example")).collect()
            )),
            Rejection::TooManyOrigins { count: 17 }
        );
        for ok in [
            "https://lapor.contoh.go.id:8443",
            "http://localhost",
            "http://localhost:3000",
        ] {
            assert!(origin_is_valid(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_expired_and_not_yet_valid_manifests() {
        let at = |d: &str| VerifyPolicy {
            today: day(d),
            ..policy()
        };
        assert_eq!(
            rejection_with(good(), &at("2027-01-01")),
            Rejection::Expired {
                valid_until: day("2026-12-31"),
                today: day("2027-01-01")
            }
        );
        assert_eq!(
            rejection_with(good(), &at("2025-12-31")),
            Rejection::NotYetValid {
                valid_from: day("2026-01-01"),
                today: day("2025-12-31")
            }
        );
        // Both ends are inclusive.
        let signed = good().sign(&manifest_key());
        signed.verify(&at("2026-01-01")).unwrap();
        signed.verify(&at("2026-12-31")).unwrap();
        assert!(matches!(
            rejection(edit(|m| m.valid_from = day("2027-01-01"))),
            Rejection::EmptyValidity { .. }
        ));
    }

    #[test]
    fn rejects_serial_rollback_and_reuse() {
        let seen = good().sign(&manifest_key()).verify(&policy()).unwrap();
        let after = |serial| VerifyPolicy {
            min_serial: Some(serial),
            seen_sha256: Some(seen.manifest_sha256()),
            ..policy()
        };
        assert_eq!(
            rejection_with(good(), &after(8)),
            Rejection::SerialRollback { serial: 7, seen: 8 }
        );
        // The same manifest again is fine; another one with its serial is not.
        good().sign(&manifest_key()).verify(&after(7)).unwrap();
        let other = edit(|m| m.institution.name.push_str(" (baru)"));
        assert_eq!(
            rejection_with(other.clone(), &after(7)),
            Rejection::SerialReused { serial: 7 }
        );
        // A higher serial is always acceptable.
        let newer = edit(|m| m.serial = 9);
        newer.sign(&manifest_key()).verify(&after(7)).unwrap();
        assert_eq!(
            rejection(edit(|m| m.serial = MAX_SERIAL + 1)),
            Rejection::BadSerial {
                serial: MAX_SERIAL + 1
            }
        );
    }

    #[test]
    fn rejects_missing_or_extra_recipients() {
        let all = vec![seal_key(1), seal_key(2), seal_key(3), escrow_key()];
        let expecting = |recipients: Vec<SealRecipient>| VerifyPolicy {
            expected_recipients: Some(recipients),
            ..policy()
        };
        // Order does not matter.
        let mut shuffled = all.clone();
        shuffled.reverse();
        good()
            .sign(&manifest_key())
            .verify(&expecting(shuffled))
            .unwrap();
        let mut more = all.clone();
        more.push(seal_key(4));
        assert_eq!(
            rejection_with(good(), &expecting(more)),
            Rejection::MissingRecipient {
                recipient: seal_key(4).to_string()
            }
        );
        assert_eq!(
            rejection_with(good(), &expecting(all[1..].to_vec())),
            Rejection::ExtraRecipient {
                recipient: seal_key(1).to_string()
            }
        );
    }

    #[test]
    fn rejects_duplicate_keys_and_keys_for_two_purposes() {
        let dup = edit(|m| {
            m.keys
                .push(key("investigator:dewi", Purpose::Seal, seal_key(1)));
            m.keys.push(key(
                "investigator:dewi",
                Purpose::ReplySigning,
                reply_key(4),
            ));
        });
        assert_eq!(
            rejection(dup),
            Rejection::DuplicateKey {
                public: seal_key(1).to_string()
            }
        );
        let dup_signing = edit(|m| {
            m.keys
                .push(key("investigator:dewi", Purpose::Seal, seal_key(4)));
            m.keys.push(key(
                "investigator:dewi",
                Purpose::ReplySigning,
                reply_key(1),
            ));
        });
        assert_eq!(
            rejection(dup_signing),
            Rejection::DuplicateKey {
                public: reply_key(1).to_string()
            }
        );
        // An investigator's seal key reused as the escrow key.
        let escrow_reused = edit(|m| {
            m.keys.pop();
            m.keys.push(key("escrow", Purpose::EscrowSeal, seal_key(2)));
        });
        assert_eq!(
            rejection(escrow_reused),
            Rejection::WrongPurpose {
                public: seal_key(2).to_string(),
                first: Purpose::Seal,
                second: Purpose::EscrowSeal
            }
        );
        // The same 32 bytes as an X25519 and an Ed25519 key.
        let bytes = age_recipient_bytes(&seal_key(1).to_string()).unwrap();
        // (Seed 0x11 happens to give bytes that are also a valid Ed25519 point.)
        let as_ed25519 = VerifyingKey::from_bytes(&bytes).unwrap();
        let cross = edit(|m| m.keys[1].public = as_ed25519.to_string());
        assert!(matches!(
            rejection(cross),
            Rejection::WrongPurpose {
                first: Purpose::Seal,
                second: Purpose::ReplySigning,
                ..
            }
        ));
    }

    #[test]
    fn rejects_keys_that_do_not_parse_for_their_purpose() {
        // An Ed25519 key listed as a seal key, and the reverse.
        let cases = [
            (0, reply_key(1).to_string(), Purpose::Seal),
            (1, seal_key(1).to_string(), Purpose::ReplySigning),
            (6, reply_key(5).to_string(), Purpose::EscrowSeal),
            (0, seal_key(1).to_string().to_uppercase(), Purpose::Seal),
            (1, "AAAA".to_owned(), Purpose::ReplySigning),
        ];
        for (index, public, purpose) in cases {
            let m = edit(|m| m.keys[index].public = public.clone());
            assert_eq!(
                rejection(m),
                Rejection::BadKey {
                    holder: good().keys[index].holder.clone(),
                    purpose
                },
                "{public}"
            );
        }
        for holder in ["", "Investigator:ani", "a b", &"x".repeat(65)] {
            assert_eq!(
                rejection(edit(|m| m.keys[0].holder = holder.to_owned())),
                Rejection::BadHolder {
                    holder: holder.to_owned()
                }
            );
        }
    }

    #[test]
    fn rejects_bad_key_sets() {
        assert_eq!(
            rejection(edit(|m| m
                .keys
                .retain(|k| k.purpose == Purpose::EscrowSeal))),
            Rejection::NoSealKey
        );
        assert_eq!(
            rejection(edit(|m| {
                m.keys.pop();
            })),
            Rejection::EscrowCount { found: 0 }
        );
        assert_eq!(
            rejection(edit(|m| m.keys.push(key(
                "escrow:2",
                Purpose::EscrowSeal,
                seal_key(9)
            )))),
            Rejection::EscrowCount { found: 2 }
        );
        assert_eq!(
            rejection(edit(|m| {
                m.keys.remove(3);
            })),
            Rejection::MissingReplySigningKey {
                holder: "investigator:budi".to_owned()
            }
        );
        assert_eq!(
            rejection(edit(|m| {
                m.keys.remove(2);
            })),
            Rejection::MissingSealKey {
                holder: "investigator:budi".to_owned()
            }
        );
        assert_eq!(
            rejection(edit(|m| m.keys.push(key(
                "investigator:ani",
                Purpose::Seal,
                seal_key(9)
            )))),
            Rejection::HolderHasTwoKeys {
                holder: "investigator:ani".to_owned(),
                purpose: Purpose::Seal
            }
        );
        assert_eq!(
            rejection(edit(|m| {
                m.keys.push(key("escrow", Purpose::Seal, seal_key(9)));
                m.keys
                    .push(key("escrow", Purpose::ReplySigning, reply_key(9)));
            })),
            Rejection::EscrowHolderReused {
                holder: "escrow".to_owned()
            }
        );
        let crowded = edit(|m| {
            for n in 4..=16 {
                let holder = format!("investigator:{n}");
                m.keys.push(key(&holder, Purpose::Seal, seal_key(n)));
                m.keys
                    .push(key(&holder, Purpose::ReplySigning, reply_key(n)));
            }
        });
        assert_eq!(
            rejection(crowded),
            Rejection::TooManyRecipients { count: 17 }
        );
    }

    #[test]
    fn rejects_bad_institution_names() {
        for name in ["".to_owned(), "a\nb".to_owned(), "x".repeat(257)] {
            assert_eq!(
                rejection(edit(|m| m.institution.name = name.clone())),
                Rejection::BadInstitutionName
            );
        }
    }

    #[test]
    fn the_default_form_is_valid() {
        let form = FormDefinition::kws_default();
        form.check().unwrap();
        let ids: Vec<_> = form.questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "category",
                "what_happened",
                "who_involved",
                "where",
                "when",
                "how_discovered",
                "estimated_loss",
                "free_text"
            ]
        );
        let category = form.question("category").unwrap();
        assert_eq!(category.choices.len(), 7);
        assert_eq!(
            category.label.text(Language::En),
            "Type of suspected violation"
        );
        assert!(form.question("what_happened").unwrap().required);
    }

    #[test]
    fn rejects_forms_that_break_their_rules() {
        assert_eq!(
            form_problem(|f| f.questions.clear()),
            FormProblem::NoQuestions
        );
        assert_eq!(
            form_problem(|f| {
                let q = f.questions[1].clone();
                f.questions = (0..65)
                    .map(|i| Question {
                        id: format!("q{i}"),
                        ..q.clone()
                    })
                    .collect();
            }),
            FormProblem::TooManyQuestions { count: 65 }
        );
        for id in ["", "Nama", "no-dash", &"a".repeat(33)] {
            assert_eq!(
                form_problem(|f| f.questions[1].id = id.to_owned()),
                FormProblem::BadQuestionId { id: id.to_owned() }
            );
        }
        assert_eq!(
            form_problem(|f| f.questions[2].id = "what_happened".to_owned()),
            FormProblem::DuplicateQuestion {
                id: "what_happened".to_owned()
            }
        );
        for max_len in [0, MAX_ANSWER_LEN as u32 + 1] {
            assert_eq!(
                form_problem(|f| f.questions[1].max_len = max_len),
                FormProblem::BadMaxLen {
                    question: "what_happened".to_owned()
                }
            );
        }
        assert_eq!(
            form_problem(|f| f.questions[0].max_len = 5),
            FormProblem::BadMaxLen {
                question: "category".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| f.questions[0].choices.clear()),
            FormProblem::NoChoices {
                question: "category".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| {
                let c = f.questions[0].choices[0].clone();
                f.questions[0].choices = (0..65)
                    .map(|i| Choice {
                        id: format!("c{i}"),
                        ..c.clone()
                    })
                    .collect();
            }),
            FormProblem::TooManyChoices {
                question: "category".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| {
                let c = f.questions[0].choices[0].clone();
                f.questions[1].choices.push(c);
            }),
            FormProblem::ChoicesNotAllowed {
                question: "what_happened".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| f.questions[0].choices[1].id = "Suap".to_owned()),
            FormProblem::BadChoiceId {
                question: "category".to_owned(),
                choice: "Suap".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| f.questions[0].choices[1].id = "suap".to_owned()),
            FormProblem::DuplicateChoice {
                question: "category".to_owned(),
                choice: "suap".to_owned()
            }
        );
        assert_eq!(
            form_problem(|f| {
                f.questions[1].help.0.remove("id");
            }),
            FormProblem::MissingTranslation {
                at: "what_happened.help".to_owned(),
                language: "id"
            }
        );
        assert_eq!(
            form_problem(|f| {
                f.questions[0].choices[2].label.0.remove("en");
            }),
            FormProblem::MissingTranslation {
                at: "category.choices.pengadaan.label".to_owned(),
                language: "en"
            }
        );
        let bad_translations: [fn(&mut Translations); 5] = [
            |t| {
                t.0.insert("EN".to_owned(), "x".to_owned());
            },
            |t| {
                t.0.insert("jv".to_owned(), String::new());
            },
            |t| {
                t.0.insert("jv".to_owned(), "a\u{7}b".to_owned());
            },
            |t| {
                t.0.insert("jv".to_owned(), "x".repeat(257));
            },
            |t| {
                for i in 0..20 {
                    t.0.insert(format!("x{i}"), "x".to_owned());
                }
            },
        ];
        for bad in bad_translations {
            assert_eq!(
                form_problem(|f| bad(&mut f.questions[3].label)),
                FormProblem::BadTranslation {
                    at: "where.label".to_owned()
                }
            );
        }
        // Other languages with valid tags are welcome.
        good().sign(&manifest_key()).verify(&policy()).unwrap();
        let mut form = FormDefinition::kws_default();
        form.questions[0]
            .label
            .0
            .insert("jv".to_owned(), "Jinis pelanggaran".to_owned());
        form.questions[0]
            .label
            .0
            .insert("zh-hant".to_owned(), "違規類型".to_owned());
        form.check().unwrap();
    }

    #[test]
    fn history_must_be_signed_and_increasing() {
        let v = |serial| edit(|m| m.serial = serial).sign(&manifest_key());
        let verified = verify_history(&[v(1), v(2), v(7)], &policy()).unwrap();
        assert_eq!(verified.serial(), 7);
        let rollback = verify_history(&[v(1), v(7), v(2)], &policy()).unwrap_err();
        assert!(matches!(
            rollback,
            Error::ManifestRejected(Rejection::SerialRollback { serial: 2, seen: 7 })
        ));
        assert!(matches!(
            verify_history(&[v(2), v(2)], &policy()),
            Err(Error::ManifestRejected(Rejection::SerialReused {
                serial: 2
            }))
        ));
        let forged = edit(|m| m.serial = 3).sign(&SigningKey::from_seed(&seed(2)));
        assert!(matches!(
            verify_history(&[v(1), forged, v(7)], &policy()),
            Err(Error::ManifestRejected(Rejection::BadSignature))
        ));
        assert!(matches!(
            verify_history(&[], &policy()),
            Err(Error::ManifestRejected(Rejection::EmptyHistory))
        ));
        // Old entries may have expired; the newest may not.
        let old = edit(|m| {
            m.serial = 1;
            m.valid_until = day("2026-01-31");
        })
        .sign(&manifest_key());
        verify_history(&[old.clone(), v(7)], &policy()).unwrap();
        assert!(matches!(
            verify_history(&[v(0), old], &policy()),
            Err(Error::ManifestRejected(Rejection::Expired { .. }))
        ));
        // The caller's highest seen serial applies to the newest entry.
        let p = VerifyPolicy {
            min_serial: Some(8),
            ..policy()
        };
        assert!(matches!(
            verify_history(&[v(1), v(7)], &p),
            Err(Error::ManifestRejected(Rejection::SerialRollback { .. }))
        ));
    }

    #[test]
    fn fingerprints_are_deterministic_and_differ_per_key() {
        let a = manifest_key().verifying_key();
        let b = SigningKey::from_seed(&seed(2)).verifying_key();
        for language in [Language::Id, Language::En] {
            let words = fingerprint_words(&a, language);
            assert_eq!(words.len(), FINGERPRINT_WORDS);
            assert_eq!(words, fingerprint_words(&a, language));
            assert_ne!(words, fingerprint_words(&b, language));
        }
        let hex = fingerprint_hex(&a);
        assert_eq!(hex.len(), 39);
        assert_eq!(hex, fingerprint_hex(&a));
        assert_ne!(hex, fingerprint_hex(&b));
        // The words encode the same bits as the hex digits: word 0 is the first 11 bits.
        let digits: String = hex.split(' ').collect();
        let first = u16::from_str_radix(&digits[..4], 16).unwrap() >> 5;
        assert_eq!(
            fingerprint_words(&a, Language::En)[0],
            Language::En.words()[first as usize]
        );
    }

    #[test]
    fn rejection_codes_are_distinct() {
        let all = [
            Rejection::BadSignature,
            Rejection::NonCanonical,
            Rejection::NoOrigins,
            Rejection::NoSealKey,
            Rejection::EmptyHistory,
            Rejection::BadInstitutionName,
            Rejection::InvalidForm(FormProblem::NoQuestions),
        ];
        let codes: BTreeSet<_> = all.iter().map(Rejection::code).collect();
        assert_eq!(codes.len(), all.len());
        let error: Error = Rejection::NoSealKey.into();
        assert_eq!(
            error.to_string(),
            "manifest rejected: the manifest has no seal key"
        );
    }
}
