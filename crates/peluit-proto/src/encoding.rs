//! Byte encodings shared by every JSON structure: canonical base64 (RFC 4648 §4 with
//! padding) and lowercase hex. Decoding rejects non-canonical input so that one value has
//! exactly one encoding, which signed structures rely on (docs/protocol.md#encodings).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, Result};

/// Encodes bytes as canonical padded base64.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes canonical padded base64; trailing bits and missing padding are rejected.
pub fn unb64(text: &str, what: &'static str) -> Result<Vec<u8>> {
    STANDARD.decode(text).map_err(|_| Error::Malformed(what))
}

/// Decodes canonical unpadded base64 (the encoding of age headers).
pub(crate) fn unb64_unpadded(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
}

/// Decodes canonical base64 into exactly `N` bytes.
pub fn unb64_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N]> {
    unb64(text, what)?
        .try_into()
        .map_err(|_| Error::Malformed(what))
}

/// Decodes lowercase hex into exactly `N` bytes; uppercase is refused as non-canonical.
pub fn unhex_array<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N]> {
    if text.len() != 2 * N || text.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(Error::Malformed(what));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| Error::Malformed(what))?;
    Ok(out)
}

/// Serde helpers for `[u8; 32]`-like fields as canonical base64 strings.
pub mod serde_b64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serializes bytes as canonical base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64(bytes))
    }

    /// Deserializes canonical base64 into a fixed-size array.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        super::unb64_array::<N>(&text, "base64 field").map_err(D::Error::custom)
    }
}

/// Serde helpers for variable-length byte fields as canonical base64 strings.
pub mod serde_b64_vec {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serializes bytes as canonical base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::b64(bytes))
    }

    /// Deserializes canonical base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::unb64(&text, "base64 field").map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rejects_non_canonical_forms() {
        assert_eq!(unb64("AAE=", "t").unwrap(), vec![0, 1]);
        assert!(unb64("AAF=", "t").is_err(), "trailing bits");
        assert!(unb64("AAE", "t").is_err(), "missing padding");
        assert!(unb64("AA E=", "t").is_err(), "whitespace");
    }

    #[test]
    fn hex_is_lowercase_only() {
        assert_eq!(unhex_array::<2>("0aff", "t").unwrap(), [0x0a, 0xff]);
        assert!(unhex_array::<2>("0AFF", "t").is_err());
        assert!(unhex_array::<2>("0af", "t").is_err());
    }
}
