//! Types for ciphertext in transit and at rest. The server and the store only ever name
//! these: they carry age ciphertext whose header was checked, never plaintext
//! (docs/protocol.md#sealed-types).

use std::fmt;

use sha2::{Digest, Sha256};

use crate::header::check_sealed_to;
use crate::limits::MAX_HEADER_LEN;
use crate::{Error, Result};

/// A whole age message (report envelope, follow-up, reply) whose header has exactly the
/// expected number of X25519 stanzas.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedMessage(Vec<u8>);

impl SealedMessage {
    /// Accepts `bytes` only if they start with an age header sealed to exactly
    /// `recipients` X25519 recipients and the message is no longer than `max_len`.
    pub fn check(bytes: Vec<u8>, recipients: usize, max_len: usize) -> Result<Self> {
        if bytes.len() > max_len {
            return Err(Error::TooLarge("sealed message"));
        }
        let header_len = check_sealed_to(&bytes, recipients)?;
        // An age payload is at least its 16-byte nonce and one 16-byte tag.
        if bytes.len() < header_len + 32 {
            return Err(Error::Malformed("age payload"));
        }
        Ok(Self(bytes))
    }

    /// Wraps bytes that were checked before they were stored; for reading back from a
    /// store, never for input from the network.
    pub fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The ciphertext.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ciphertext, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// SHA-256 of the ciphertext.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.0).into()
    }
}

impl fmt::Debug for SealedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedMessage({} bytes)", self.0.len())
    }
}

/// A piece of a streamed age message (an attachment upload), stored in order. The first
/// piece of a stream starts with the age header; later pieces are opaque ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedChunk(Vec<u8>);

impl SealedChunk {
    /// Wraps ciphertext bytes of one upload piece.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Checks that the first piece of an attachment starts with an age header sealed to
    /// exactly `recipients` recipients. The piece must hold the whole header.
    pub fn check_first(bytes: Vec<u8>, recipients: usize) -> Result<Self> {
        check_sealed_to(&bytes[..bytes.len().min(MAX_HEADER_LEN)], recipients)?;
        Ok(Self(bytes))
    }

    /// The ciphertext.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The ciphertext, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for SealedChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedChunk({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SealIdentity;
    use crate::seal::seal_padded;

    #[test]
    fn sealed_messages_must_match_the_recipient_count() {
        let recipients: Vec<_> = (0..3)
            .map(|_| SealIdentity::generate().recipient())
            .collect();
        let sealed = seal_padded(b"isi laporan", &recipients).unwrap();
        assert!(SealedMessage::check(sealed.clone(), 3, 1 << 20).is_ok());
        assert!(matches!(
            SealedMessage::check(sealed.clone(), 2, 1 << 20),
            Err(Error::WrongRecipients(_))
        ));
        assert!(matches!(
            SealedMessage::check(sealed.clone(), 3, 100),
            Err(Error::TooLarge(_))
        ));
        assert!(SealedMessage::check(b"plain text".to_vec(), 3, 1 << 20).is_err());
        let header_len = crate::header::inspect_header(&sealed).unwrap().header_len;
        assert!(SealedChunk::check_first(sealed[..header_len].to_vec(), 3).is_ok());
        assert!(SealedChunk::check_first(sealed[..header_len - 1].to_vec(), 3).is_err());
        assert!(SealedChunk::check_first(b"age-encryption.org/v1\n".to_vec(), 3).is_err());
    }
}
