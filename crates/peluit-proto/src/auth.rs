//! Mailbox ids and mailbox authentication: a reporter proves, replay-proof, that they hold
//! the mailbox key derived from their receipt, and signs follow-ups with it
//! (docs/protocol.md#mailbox-auth).

use std::fmt;
use std::str::FromStr;

use rand::RngCore as _;
use rand::rngs::OsRng;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::ids::InstitutionId;
use crate::keys::{SignContext, Signature, SigningKey, VerifyingKey};
use crate::{Error, Result, encoding};

/// Domain separation for mailbox ids (docs/protocol.md#receipt).
const MAILBOX_ID_PREFIX: &[u8] = b"peluit/v1/mailbox-id\n";

/// Longest challenge, response or stamp JSON accepted; the real ones are under 300 bytes,
/// so anything longer is refused before the JSON parser sees it.
pub const MAX_WIRE_JSON_LEN: usize = 1024;

/// A mailbox id: the first 16 bytes of SHA-256("peluit/v1/mailbox-id\n" || mailbox public
/// key), written as 32 lowercase hex digits. The server files sealed replies under it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MailboxId([u8; 16]);

impl MailboxId {
    /// The id of the mailbox owned by `key`.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::new()
            .chain_update(MAILBOX_ID_PREFIX)
            .chain_update(key.to_bytes())
            .finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    /// The id from its 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MailboxId({self})")
    }
}

impl FromStr for MailboxId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        encoding::unhex_array::<16>(s, "mailbox id").map(Self)
    }
}

impl Serialize for MailboxId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MailboxId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// The `"version": 1` field of a wire structure: writes `1` and refuses any other value,
/// so that even a struct embedded in a larger JSON document cannot carry another version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Version1;

impl Serialize for Version1 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(1)
    }
}

impl<'de> Deserialize<'de> for Version1 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u64::deserialize(d)? {
            1 => Ok(Self),
            _ => Err(D::Error::custom("unsupported version")),
        }
    }
}

/// Canonical JSON of a wire structure: fields in struct order, no whitespace.
pub(crate) fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .unwrap_or_else(|_| unreachable!("wire structures serialize to JSON without error"))
}

/// Parses a small versioned wire structure and refuses any text that does not
/// re-serialize to the same bytes. docs/protocol.md#mailbox-auth and docs/protocol.md#pow
pub(crate) fn from_canonical_json<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    // Bound the work of parsing untrusted input. docs/protocol.md#mailbox-auth
    if bytes.len() > MAX_WIRE_JSON_LEN {
        return Err(Error::TooLarge(what));
    }
    // Read the version first so that a newer structure gets a precise error instead of
    // "malformed". docs/protocol.md#mailbox-auth
    #[derive(Deserialize)]
    struct VersionProbe {
        version: u64,
    }
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|_| Error::Malformed(what))?;
    if probe.version != 1 {
        return Err(Error::UnsupportedVersion {
            what,
            version: probe.version,
        });
    }
    let value: T = serde_json::from_slice(bytes).map_err(|_| Error::Malformed(what))?;
    // One value, one spelling: signed bytes are rebuilt from the parsed struct, so
    // accepting other spellings would let two texts carry one signature.
    // docs/protocol.md#mailbox-auth
    if to_canonical_json(&value) != bytes {
        return Err(Error::Malformed(what));
    }
    Ok(value)
}

/// A fresh login challenge, issued by the server for one institution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    version: Version1,
    institution: InstitutionId,
    #[serde(with = "encoding::serde_b64")]
    nonce: [u8; 32],
}

impl Challenge {
    /// A challenge with a fresh 32-byte nonce from the operating system's random source.
    /// The server keeps the nonce for a short time and deletes it on first use.
    pub fn new(institution: InstitutionId) -> Self {
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        Self::from_issued(institution, nonce)
    }

    /// The challenge the server issued earlier with this nonce (rebuilt from its store).
    pub fn from_issued(institution: InstitutionId, nonce: [u8; 32]) -> Self {
        Self {
            version: Version1,
            institution,
            nonce,
        }
    }

    /// The institution whose server issued the challenge.
    pub fn institution(&self) -> &InstitutionId {
        &self.institution
    }

    /// The random nonce.
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }

    /// The canonical JSON sent to the browser.
    pub fn to_json(&self) -> Vec<u8> {
        to_canonical_json(self)
    }

    /// Parses canonical challenge JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        from_canonical_json(bytes, "challenge")
    }
}

/// A reporter's answer to a [`Challenge`]: the mailbox public key and a signature over
/// the challenge. It names no case and no reporter, only the mailbox key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeResponse {
    version: Version1,
    mailbox_key: VerifyingKey,
    #[serde(with = "encoding::serde_b64")]
    nonce: [u8; 32],
    signature: Signature,
}

impl ChallengeResponse {
    /// The mailbox public key the response claims.
    pub fn mailbox_key(&self) -> &VerifyingKey {
        &self.mailbox_key
    }

    /// The nonce of the challenge it answers.
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The canonical JSON sent to the server.
    pub fn to_json(&self) -> Vec<u8> {
        to_canonical_json(self)
    }

    /// Parses canonical response JSON (the signature is checked by [`verify_response`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        from_canonical_json(bytes, "challenge response")
    }
}

/// What a challenge response signs. docs/protocol.md#mailbox-auth
#[derive(Serialize)]
struct MailboxAuthBody<'a> {
    version: Version1,
    institution: &'a InstitutionId,
    mailbox_key: &'a VerifyingKey,
    #[serde(with = "encoding::serde_b64")]
    nonce: [u8; 32],
}

fn mailbox_auth_body(
    institution: &InstitutionId,
    mailbox_key: &VerifyingKey,
    nonce: &[u8; 32],
) -> Vec<u8> {
    to_canonical_json(&MailboxAuthBody {
        version: Version1,
        institution,
        mailbox_key,
        nonce: *nonce,
    })
}

/// Answers `challenge` with the mailbox key.
pub fn respond(challenge: &Challenge, mailbox_key: &SigningKey) -> ChallengeResponse {
    let public = mailbox_key.verifying_key();
    let body = mailbox_auth_body(&challenge.institution, &public, &challenge.nonce);
    ChallengeResponse {
        version: Version1,
        mailbox_key: public,
        nonce: challenge.nonce,
        signature: mailbox_key.sign(SignContext::MailboxAuth, &body),
    }
}

/// Checks that `response` answers `challenge` (the one the server issued and has just
/// taken out of its store) and returns the mailbox it proves control of. Any failure is
/// [`Error::BadSignature`], without saying which check failed.
pub fn verify_response(challenge: &Challenge, response: &ChallengeResponse) -> Result<MailboxId> {
    // The response must answer this very challenge; compared in constant time so that
    // timing does not reveal how much of an issued nonce a guess got right.
    // docs/protocol.md#mailbox-auth
    let same_nonce: bool = challenge.nonce.ct_eq(&response.nonce).into();
    // The signed body is rebuilt from the server's own challenge (its institution and
    // nonce), so a response made for another institution or challenge never verifies.
    // docs/protocol.md#mailbox-auth
    let body = mailbox_auth_body(
        &challenge.institution,
        &response.mailbox_key,
        &challenge.nonce,
    );
    let signature_ok = response
        .mailbox_key
        .verify(SignContext::MailboxAuth, &body, &response.signature)
        .is_ok();
    if same_nonce && signature_ok {
        Ok(MailboxId::of(&response.mailbox_key))
    } else {
        Err(Error::BadSignature)
    }
}

/// What a follow-up signature signs. docs/protocol.md#mailbox-auth
#[derive(Serialize)]
struct FollowUpBody<'a> {
    version: Version1,
    institution: &'a InstitutionId,
    mailbox: MailboxId,
    #[serde(with = "encoding::serde_b64")]
    sealed_sha256: [u8; 32],
}

fn follow_up_body(
    institution: &InstitutionId,
    mailbox: &MailboxId,
    sealed_sha256: &[u8; 32],
) -> Vec<u8> {
    to_canonical_json(&FollowUpBody {
        version: Version1,
        institution,
        mailbox: *mailbox,
        sealed_sha256: *sealed_sha256,
    })
}

/// Signs a sealed follow-up (by the SHA-256 of its ciphertext) for `mailbox` at
/// `institution`, so that the server accepts it only from the mailbox's owner.
pub fn sign_follow_up(
    mailbox_key: &SigningKey,
    institution: &InstitutionId,
    mailbox: &MailboxId,
    sealed_sha256: &[u8; 32],
) -> Signature {
    mailbox_key.sign(
        SignContext::FollowUp,
        &follow_up_body(institution, mailbox, sealed_sha256),
    )
}

/// Verifies a follow-up signature under the mailbox key the server holds for `mailbox`.
/// Any failure is [`Error::BadSignature`].
pub fn verify_follow_up(
    mailbox_key: &VerifyingKey,
    institution: &InstitutionId,
    mailbox: &MailboxId,
    sealed_sha256: &[u8; 32],
    signature: &Signature,
) -> Result<()> {
    // The key must be the one that owns the mailbox, so a valid signature by any other
    // mailbox key cannot post into this mailbox. docs/protocol.md#mailbox-auth
    if MailboxId::of(mailbox_key) != *mailbox {
        return Err(Error::BadSignature);
    }
    mailbox_key.verify(
        SignContext::FollowUp,
        &follow_up_body(institution, mailbox, sealed_sha256),
        signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn institution(name: &str) -> InstitutionId {
        name.parse().unwrap()
    }

    #[test]
    fn mailbox_ids_round_trip_and_follow_the_key() {
        let key = SigningKey::generate().verifying_key();
        let id = MailboxId::of(&key);
        assert_eq!(id, MailboxId::of(&key));
        assert_ne!(id, MailboxId::of(&SigningKey::generate().verifying_key()));
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.to_string().parse::<MailboxId>().unwrap(), id);
        assert_eq!(MailboxId::from_bytes(*id.as_bytes()), id);
        assert!(id.to_string().to_uppercase().parse::<MailboxId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<MailboxId>(&json).unwrap(), id);
        assert_eq!(format!("{id:?}"), format!("MailboxId({id})"));
    }

    #[test]
    fn a_fresh_response_verifies() {
        let key = SigningKey::generate();
        let challenge = Challenge::new(institution("itjen-contoh"));
        let wire = Challenge::from_json(&challenge.to_json()).unwrap();
        assert_eq!(wire, challenge);
        let response = ChallengeResponse::from_json(&respond(&wire, &key).to_json()).unwrap();
        assert_eq!(
            verify_response(&challenge, &response).unwrap(),
            MailboxId::of(&key.verifying_key())
        );
        assert_ne!(
            Challenge::new(institution("a")).nonce(),
            Challenge::new(institution("a")).nonce()
        );
    }

    #[test]
    fn responses_to_anything_else_fail() {
        let key = SigningKey::generate();
        let issued = Challenge::new(institution("itjen-contoh"));
        let response = respond(&issued, &key);

        // Replayed against a later challenge, or answering another one.
        let later = Challenge::new(institution("itjen-contoh"));
        assert!(matches!(
            verify_response(&later, &response),
            Err(Error::BadSignature)
        ));
        let other = respond(&later, &key);
        assert!(verify_response(&issued, &other).is_err());

        // Made for the same nonce at another institution.
        let elsewhere = Challenge::from_issued(institution("itjen-lain"), *issued.nonce());
        assert!(verify_response(&elsewhere, &response).is_err());
        assert!(verify_response(&issued, &respond(&elsewhere, &key)).is_err());

        // Another key claiming the signature.
        let mut stolen = response.clone();
        stolen.mailbox_key = SigningKey::generate().verifying_key();
        assert!(verify_response(&issued, &stolen).is_err());

        // A flipped signature bit, or a nonce edited to match after signing.
        let mut flipped = response.clone();
        let mut bytes = flipped.signature.to_bytes();
        bytes[10] ^= 1;
        flipped.signature = Signature::from_bytes(bytes);
        assert!(verify_response(&issued, &flipped).is_err());
        let mut edited = other.clone();
        edited.nonce = *issued.nonce();
        assert!(verify_response(&issued, &edited).is_err());

        verify_response(&issued, &response).unwrap();
    }

    #[test]
    fn wire_json_is_canonical_and_versioned() {
        let challenge = Challenge::from_issued(institution("itjen-contoh"), [7u8; 32]);
        let json = String::from_utf8(challenge.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"institution":"itjen-contoh","nonce":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}"#
        );
        let spaced = json.replace(",", ", ");
        assert!(matches!(
            Challenge::from_json(spaced.as_bytes()),
            Err(Error::Malformed(_))
        ));
        let reordered = r#"{"institution":"itjen-contoh","version":1,"nonce":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="}"#;
        assert!(Challenge::from_json(reordered.as_bytes()).is_err());
        let extra = json.replace("}", r#","x":1}"#);
        assert!(Challenge::from_json(extra.as_bytes()).is_err());
        let v2 = json.replace(r#""version":1"#, r#""version":2"#);
        assert!(matches!(
            Challenge::from_json(v2.as_bytes()),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
        // Even parsed directly through serde, another version is refused.
        assert!(serde_json::from_str::<Challenge>(&v2).is_err());
        let long = vec![b' '; MAX_WIRE_JSON_LEN + 1];
        assert!(matches!(
            Challenge::from_json(&long),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn follow_ups_verify_only_for_the_mailbox_owner() {
        let key = SigningKey::generate();
        let public = key.verifying_key();
        let mailbox = MailboxId::of(&public);
        let here = institution("itjen-contoh");
        let digest = [9u8; 32];
        let sig = sign_follow_up(&key, &here, &mailbox, &digest);
        verify_follow_up(&public, &here, &mailbox, &digest, &sig).unwrap();

        let other_digest = [8u8; 32];
        assert!(verify_follow_up(&public, &here, &mailbox, &other_digest, &sig).is_err());
        assert!(verify_follow_up(&public, &institution("lain"), &mailbox, &digest, &sig).is_err());
        let other_key = SigningKey::generate();
        let other_mailbox = MailboxId::of(&other_key.verifying_key());
        assert!(verify_follow_up(&public, &here, &other_mailbox, &digest, &sig).is_err());
        // A signature by another mailbox key over this mailbox's id is refused too.
        let forged = sign_follow_up(&other_key, &here, &mailbox, &digest);
        assert!(
            verify_follow_up(
                &other_key.verifying_key(),
                &here,
                &mailbox,
                &digest,
                &forged
            )
            .is_err()
        );
        // The challenge context and the follow-up context never cross.
        let challenge = Challenge::new(here.clone());
        let response = respond(&challenge, &key);
        assert!(verify_follow_up(&public, &here, &mailbox, &digest, response.signature()).is_err());
    }
}
