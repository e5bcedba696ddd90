//! Reading an age header without any key, to count its recipient stanzas. The server and
//! the auditor use this to refuse ciphertext that is not sealed to exactly the manifest's
//! recipients (docs/protocol.md#recipient-check).

use crate::limits::MAX_HEADER_LEN;
use crate::{Error, Result};

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const MAC_PREFIX: &[u8] = b"--- ";
// "--- " + 43 base64 characters of the 32-byte MAC + "\n".
const MAC_LINE_LEN: usize = 4 + 43 + 1;

/// What a header says about its recipients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderSummary {
    /// Stanzas of type `X25519`, each canonical (one 43-character share, 32-byte body).
    pub x25519_stanzas: usize,
    /// Grease stanzas (tag ending in `-grease`), which the Rust age crate adds to every
    /// file to keep parsers honest.
    pub grease_stanzas: usize,
    /// Length of the header in bytes, up to and including the MAC line.
    pub header_len: usize,
}

/// Parses the age header at the start of `bytes` (more may follow). Returns
/// `Error::Malformed` for anything that is not a canonical age v1 header, including a
/// header that does not end within [`MAX_HEADER_LEN`] bytes.
pub fn inspect_header(bytes: &[u8]) -> Result<HeaderSummary> {
    let malformed = Error::Malformed("age header");
    let window = &bytes[..bytes.len().min(MAX_HEADER_LEN)];
    let mut rest = window
        .strip_prefix(INTRO)
        .ok_or(Error::Malformed("age header"))?;
    let (mut x25519_stanzas, mut grease_stanzas) = (0, 0);
    loop {
        if rest.starts_with(MAC_PREFIX) {
            let line = rest
                .get(..MAC_LINE_LEN)
                .ok_or(Error::Malformed("age header"))?;
            let mac = &line[MAC_PREFIX.len()..MAC_LINE_LEN - 1];
            let mac_ok = crate::encoding::unb64_unpadded(mac).is_some_and(|m| m.len() == 32);
            if line[MAC_LINE_LEN - 1] != b'\n' || !mac_ok {
                return Err(malformed);
            }
            let header_len = window.len() - rest.len() + MAC_LINE_LEN;
            return Ok(HeaderSummary {
                x25519_stanzas,
                grease_stanzas,
                header_len,
            });
        }
        let (after, stanza) =
            age_core::format::read::age_stanza(rest).map_err(|_| Error::Malformed("age header"))?;
        match stanza.tag {
            // Enforce valid and canonical stanza format. https://c2sp.org/age#x25519-recipient-stanza
            "X25519" => {
                let share_ok = stanza.args.len() == 1 && stanza.args[0].len() == 43;
                if !share_ok || stanza.body().len() != 32 {
                    return Err(malformed);
                }
                x25519_stanzas += 1;
            }
            tag if tag.ends_with("-grease") => grease_stanzas += 1,
            _ => return Err(Error::WrongRecipients("a stanza other than X25519")),
        }
        rest = after;
    }
}

/// Checks that `bytes` starts with a canonically encoded age v1 header, whatever its
/// stanza types. The age crate also accepts a legacy stanza encoding (a body without its
/// final short line) for files of its beta versions; Peluit accepts only the canonical
/// form everywhere, so what opens on the desk is exactly what passes the server's check.
/// https://c2sp.org/age#header
pub(crate) fn check_canonical_encoding(bytes: &[u8]) -> Result<()> {
    let mut rest = bytes
        .strip_prefix(INTRO)
        .ok_or(Error::Malformed("age header"))?;
    loop {
        if rest.starts_with(MAC_PREFIX) {
            return Ok(());
        }
        let (after, _) =
            age_core::format::read::age_stanza(rest).map_err(|_| Error::Malformed("age header"))?;
        rest = after;
    }
}

/// Checks that `bytes` starts with an age header sealed to exactly `expected` X25519
/// recipients, with at most one grease stanza and no other stanza type. Returns the
/// header length.
pub fn check_sealed_to(bytes: &[u8], expected: usize) -> Result<usize> {
    let summary = inspect_header(bytes)?;
    if summary.x25519_stanzas != expected {
        return Err(Error::WrongRecipients(
            "X25519 stanza count differs from the manifest",
        ));
    }
    if summary.grease_stanzas > 1 {
        return Err(Error::WrongRecipients("more than one grease stanza"));
    }
    Ok(summary.header_len)
}
