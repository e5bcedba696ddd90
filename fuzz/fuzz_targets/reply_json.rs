//! Fuzzes both layers of a reply (docs/protocol.md#reply): the sealed, signed document the
//! server stores and the page fetches (`SealedReply::from_json`), and the plaintext inside
//! it, which the page parses after opening (`open_reply`).
//!
//! First input byte even: the rest is a sealed-reply document; it must never panic, and an
//! accepted one re-serializes to exactly its bytes. Odd: the rest is a reply plaintext,
//! sealed to the fixture reporter and signed with the fixture investigator key inside the
//! target; what opens must re-seal to exactly the same plaintext. The crypto makes this
//! target slow under AddressSanitizer; `cargo fuzz run -s none reply_json` is ~10x faster.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use peluit_fuzz as fixtures;
use peluit_proto::encoding::b64;
use peluit_proto::ids::CaseId;
use peluit_proto::keys::SignContext;
use peluit_proto::reply::{Reply, ReplyKind, SealedReply, open_reply, seal_reply};
use peluit_proto::seal::{open_padded, seal_padded};

/// A genuine sealed reply whose ciphertext and signature the target swaps out.
struct Template {
    json: String,
    ciphertext: String,
    signature: String,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let reply = Reply {
            case: CaseId::from_bytes([7; 16]),
            seq: 1,
            date: fixtures::today(),
            kind: ReplyKind::Message,
            text: "Terima kasih atas laporan Anda.".to_owned(),
            attachments: Vec::new(),
        };
        let sealed = reseal(&reply).expect("the template reply seals");
        Template {
            json: String::from_utf8(sealed.to_json()).expect("JSON is UTF-8"),
            ciphertext: b64(sealed.ciphertext()),
            signature: b64(&sealed.signature().to_bytes()),
        }
    })
}

fn reseal(reply: &Reply) -> peluit_proto::Result<SealedReply> {
    seal_reply(
        reply,
        &fixtures::reporter().recipient(),
        &fixtures::mailbox_key().verifying_key(),
        &fixtures::institution(),
        &fixtures::inspectorate(),
        &fixtures::reply_signer(),
    )
}

/// The template with `ciphertext` in place of its own, correctly signed.
fn signed_document(ciphertext: &[u8]) -> SealedReply {
    let template = template();
    let unsigned = template
        .json
        .replacen(&template.ciphertext, &b64(ciphertext), 1);
    let draft = SealedReply::from_json(unsigned.as_bytes()).expect("swapped document parses");
    let signature = fixtures::reply_signer().sign(SignContext::Reply, &draft.signed_bytes());
    let signed = unsigned.replacen(&template.signature, &b64(&signature.to_bytes()), 1);
    SealedReply::from_json(signed.as_bytes()).expect("re-signed document parses")
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = fixtures::mode(data) else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(sealed) = SealedReply::from_json(rest) {
            assert_eq!(sealed.to_json(), rest, "canonical re-serialization");
            let _ = sealed.verify(&fixtures::reply_signers(), 3);
            let _ = sealed.signed_bytes();
        }
        return;
    }
    // Sealed to the reporter alone: `open_reply` checks the signature, not the recipient
    // count (the server's `verify` does), and each recipient costs two scalar multiplications.
    let reporter = fixtures::reporter();
    let Ok(ciphertext) = seal_padded(rest, &[reporter.recipient()]) else {
        return;
    };
    let sealed = signed_document(&ciphertext);
    if let Ok(reply) = open_reply(&sealed, &reporter, &fixtures::reply_signers()) {
        // The plaintext parser accepts only canonical JSON: re-sealing gives it back.
        let again = reseal(&reply).expect("an opened reply re-seals");
        let plaintext = open_padded(again.ciphertext(), std::slice::from_ref(&reporter), 1 << 24)
            .expect("a re-sealed reply opens");
        assert_eq!(&plaintext[..], rest);
    }
});
