//! Key types. Secrets (`SealIdentity`, `SigningKey`) are neither `Clone` nor `Serialize`,
//! print as `[redacted]`, and are zeroized on drop; their text form is only reachable
//! through `expose_secret…` methods (docs/protocol.md#keys).

use std::fmt;
use std::str::FromStr;

use age_core::secrecy::ExposeSecret;
use ed25519_dalek::Signer as _;
use rand::rngs::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result, encoding};

/// An age X25519 identity: opens what was sealed to its [`SealRecipient`].
pub struct SealIdentity(age::x25519::Identity);

impl SealIdentity {
    /// A fresh identity from the operating system's random source.
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }

    /// The identity whose X25519 secret scalar is `secret` (used by receipt derivation).
    pub fn from_secret_bytes(secret: &Zeroizing<[u8; 32]>) -> Self {
        let hrp = bech32::Hrp::parse_unchecked("AGE-SECRET-KEY-");
        let mut encoded = age_core::primitives::bech32_encode(hrp, secret.as_slice());
        encoded.make_ascii_uppercase();
        let identity = age::x25519::Identity::from_str(&encoded)
            .unwrap_or_else(|_| unreachable!("a 32-byte Bech32 secret key always parses"));
        // Clear intermediates
        encoded.zeroize();
        Self(identity)
    }

    /// Parses an `AGE-SECRET-KEY-1…` string.
    pub fn parse_secret(text: &str) -> Result<Self> {
        age::x25519::Identity::from_str(text.trim())
            .map(Self)
            .map_err(|_| Error::Malformed("age identity"))
    }

    /// The identity's `AGE-SECRET-KEY-1…` text, for writing to a protected file.
    pub fn expose_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.to_string().expose_secret().to_owned())
    }

    /// The matching recipient.
    pub fn recipient(&self) -> SealRecipient {
        SealRecipient(self.0.to_public())
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }
}

impl fmt::Debug for SealIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealIdentity([redacted])")
    }
}

/// An age X25519 recipient, written `age1…`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SealRecipient(age::x25519::Recipient);

impl SealRecipient {
    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl FromStr for SealRecipient {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let recipient =
            age::x25519::Recipient::from_str(s).map_err(|_| Error::Malformed("age recipient"))?;
        // Only the canonical lowercase form is accepted, so a key has one spelling.
        if recipient.to_string() != s {
            return Err(Error::Malformed("age recipient"));
        }
        Ok(Self(recipient))
    }
}

impl fmt::Display for SealRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for SealRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealRecipient({})", self.0)
    }
}

impl Serialize for SealRecipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SealRecipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// What a signature is for. The context is prefixed to every signed message, so a
/// signature made for one purpose never verifies for another (docs/protocol.md#signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignContext {
    /// A key manifest, signed by the institution's manifest key.
    Manifest,
    /// A sealed reply or status change, signed by an investigator.
    Reply,
    /// A mailbox challenge response, signed by the reporter's mailbox key.
    MailboxAuth,
    /// A sealed follow-up posted by the reporter, signed by the mailbox key.
    FollowUp,
}

impl SignContext {
    fn prefix(self) -> &'static [u8] {
        match self {
            Self::Manifest => b"peluit/v1/manifest\n",
            Self::Reply => b"peluit/v1/reply\n",
            Self::MailboxAuth => b"peluit/v1/mailbox-auth\n",
            Self::FollowUp => b"peluit/v1/follow-up\n",
        }
    }

    fn message(self, body: &[u8]) -> Vec<u8> {
        let mut message = Vec::with_capacity(self.prefix().len() + body.len());
        message.extend_from_slice(self.prefix());
        message.extend_from_slice(body);
        message
    }
}

/// An Ed25519 signing key (manifest key, investigator reply key or reporter mailbox key).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut OsRng))
    }

    /// The key with this 32-byte seed.
    pub fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for writing to a protected file.
    pub fn expose_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `body` for `context`.
    pub fn sign(&self, context: SignContext, body: &[u8]) -> Signature {
        Signature(self.0.sign(&context.message(body)).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// An Ed25519 public key, written as canonical base64 of its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// The key from its 32 bytes; refuses points that are not valid or are weak.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| Error::Malformed("ed25519 key"))?;
        if key.is_weak() {
            return Err(Error::Malformed("ed25519 key"));
        }
        Ok(Self(key))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// SHA-256 of the key's bytes, the basis of fingerprints and mailbox ids.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// Verifies a signature made for `context` over `body`, in strict mode (no malleable
    /// or small-order signatures).
    pub fn verify(&self, context: SignContext, body: &[u8], signature: &Signature) -> Result<()> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(&context.message(body), &signature)
            .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encoding::b64(self.0.as_bytes()))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

impl FromStr for VerifyingKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_bytes(&encoding::unb64_array::<32>(s, "ed25519 key")?)
    }
}

impl Serialize for VerifyingKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VerifyingKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// An Ed25519 signature, written as canonical base64 of its 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// The signature's bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// A signature from its 64 bytes (not yet verified).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", encoding::b64(&self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encoding::b64(&self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        encoding::unb64_array::<64>(&text, "signature")
            .map(Self)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_from_bytes_matches_its_text_form() {
        let secret = Zeroizing::new([7u8; 32]);
        let identity = SealIdentity::from_secret_bytes(&secret);
        let reparsed = SealIdentity::parse_secret(&identity.expose_secret_string()).unwrap();
        assert_eq!(identity.recipient(), reparsed.recipient());
        assert_eq!(format!("{identity:?}"), "SealIdentity([redacted])");
    }

    #[test]
    fn recipients_have_one_spelling() {
        let r = SealIdentity::generate().recipient();
        assert_eq!(r.to_string().parse::<SealRecipient>().unwrap(), r);
        assert!(
            r.to_string()
                .to_uppercase()
                .parse::<SealRecipient>()
                .is_err()
        );
    }

    #[test]
    fn signatures_are_bound_to_their_context() {
        let key = SigningKey::generate();
        let sig = key.sign(SignContext::Reply, b"body");
        let public = key.verifying_key();
        public.verify(SignContext::Reply, b"body", &sig).unwrap();
        assert!(public.verify(SignContext::Manifest, b"body", &sig).is_err());
        assert!(public.verify(SignContext::Reply, b"bodY", &sig).is_err());
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }
}
