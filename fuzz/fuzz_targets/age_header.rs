//! Fuzzes the keyless age header reader the server and auditor run on every upload
//! (`header::inspect_header`, docs/protocol.md#recipient-check) and the openers behind it.
//!
//! Arbitrary bytes must never panic. An accepted header must parse the same when cut at
//! its reported length, and re-serializing its stanzas by the age spec (written here
//! independently of the parser) must give back exactly its bytes: a header the server
//! accepts has one spelling.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use libfuzzer_sys::fuzz_target;
use peluit_proto::header::{check_sealed_to, inspect_header};
use peluit_proto::keys::SealIdentity;
use peluit_proto::seal::{StreamOpener, dangerously_classify_open, open};
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use zeroize::Zeroizing;

const INTRO: &[u8] = b"age-encryption.org/v1\n";

/// Writes the stanzas of `header` back by the age spec: `-> tag args…`, then the body in
/// canonical unpadded base64 wrapped at 64 columns, ending with a short (maybe empty) line.
fn reserialize(header: &[u8]) -> Vec<u8> {
    let mut rest = &header[INTRO.len()..];
    let mut out = INTRO.to_vec();
    while !rest.starts_with(b"--- ") {
        let (after, stanza) =
            age_core::format::read::age_stanza(rest).expect("an accepted header's stanza parses");
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = STANDARD_NO_PAD.encode(stanza.body());
        let mut lines = body.as_bytes().chunks(64).peekable();
        while let Some(line) = lines.next() {
            out.extend_from_slice(line);
            out.push(b'\n');
            if line.len() == 64 && lines.peek().is_none() {
                out.push(b'\n');
            }
        }
        if body.is_empty() {
            out.push(b'\n');
        }
        rest = after;
    }
    out.extend_from_slice(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = inspect_header(data) {
        let header = &data[..summary.header_len];
        assert_eq!(inspect_header(header).ok(), Some(summary), "header alone");
        assert_eq!(reserialize(header), header, "canonical re-serialization");
        assert_eq!(
            check_sealed_to(data, summary.x25519_stanzas).ok(),
            (summary.grease_stanzas <= 1).then_some(summary.header_len)
        );
        assert!(SealedChunk::check_first(data.to_vec(), summary.x25519_stanzas + 1).is_err());
    }
    let _ = SealedMessage::check(data.to_vec(), 1, 1 << 20);

    // The openers over the same bytes, with a fixed identity: errors, never panics.
    let identity = SealIdentity::from_secret_bytes(&Zeroizing::new([7u8; 32]));
    let identities = std::slice::from_ref(&identity);
    let classified = dangerously_classify_open(data, identities);
    let opened = open(data, identities, 1 << 20);
    assert_eq!(classified.is_ok(), opened.is_ok());
    if let Ok(mut opener) = StreamOpener::new(data, identities) {
        let _ = std::io::copy(&mut opener, &mut std::io::sink());
    }
});
