//! Investigator access tokens: 256 random bits shown once, stored only as a SHA-256 hash,
//! checked in constant time (docs/api.md#authentication).

use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// Every token starts with this, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "peluit_tok_";

/// A freshly issued token: its text (shown once, then wiped) and the hash the store keeps.
pub struct IssuedToken {
    text: Zeroizing<String>,
    hash: [u8; 32],
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuedToken([redacted])")
    }
}

impl IssuedToken {
    /// Draws 256 bits from the operating system's random source.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(secret.as_mut());
        let text = Zeroizing::new(format!("{TOKEN_PREFIX}{}", hex::encode(&secret[..])));
        let hash = token_hash(&text);
        Self { text, hash }
    }

    /// The token text, to hand to the investigator exactly once.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the token text: all the store ever sees.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

/// SHA-256 of a presented token's text. A token has 256 bits of entropy, so an unsalted
/// fast hash is enough: nothing can be guessed from it.
pub fn token_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Whether a presented token's hash equals a stored one, in constant time.
pub fn hashes_match(presented: &[u8; 32], stored: &[u8; 32]) -> bool {
    presented.ct_eq(stored).into()
}

/// Reads `Authorization: Bearer <token>`; `None` when missing or not a well-formed token.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    let well_formed = token.len() == TOKEN_PREFIX.len() + 64
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    well_formed.then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_what_is_stored() {
        let a = IssuedToken::generate();
        let b = IssuedToken::generate();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(token_hash(a.expose_secret()), a.hash());
        assert!(hashes_match(&a.hash(), &token_hash(a.expose_secret())));
        assert!(!hashes_match(&a.hash(), &b.hash()));
        assert_eq!(format!("{a:?}"), "IssuedToken([redacted])");
        let mut headers = axum::http::HeaderMap::new();
        let value = format!("Bearer {}", a.expose_secret());
        headers.insert("authorization", value.parse().unwrap());
        assert_eq!(bearer(&headers), Some(a.expose_secret()));
        headers.insert("authorization", "Bearer nope".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
