//! Mailbox authentication vectors (docs/protocol.md#mailbox-auth): challenge and response
//! JSON, follow-up signatures, and the ones a server must refuse. Run
//! `--ignored write_auth_vectors` to rewrite.

// Integration tests are test code: this lets clippy's allow-unwrap-in-tests cover the
// helpers too.
#![cfg(test)]

mod pinned;
mod support;
mod vector_file;

use pinned::Vector;
use vector_file::VectorFile;

use std::collections::BTreeMap;

use peluit_proto::Error;
use peluit_proto::auth::{
    Challenge, ChallengeResponse, MailboxId, respond, sign_follow_up, verify_follow_up,
    verify_response,
};
use peluit_proto::encoding;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SignContext, Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

const AREA: &str = "auth";

fn class(error: &Error) -> &'static str {
    match error {
        Error::BadSignature => "bad signature",
        Error::Malformed(_) => "malformed",
        Error::UnsupportedVersion { .. } => "unsupported version",
        Error::TooLarge(_) => "too large",
        other => panic!("no vector class for {other:?}"),
    }
}

/// The 32 bytes a vector's header `key` gives in hex.
fn hex32(vector: &VectorFile, key: &str) -> [u8; 32] {
    hex::decode(vector.required(key))
        .unwrap()
        .try_into()
        .unwrap()
}

fn key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_seed(&Zeroizing::new(*seed))
}

fn institution(name: &str) -> InstitutionId {
    name.parse().unwrap()
}

/// The exact bytes a challenge response signs (after the context prefix).
fn auth_signed(challenge: &Challenge, mailbox_key: &VerifyingKey) -> String {
    format!(
        r#"{{"version":1,"institution":"{}","mailbox_key":"{}","nonce":"{}"}}"#,
        challenge.institution(),
        mailbox_key,
        encoding::b64(challenge.nonce())
    )
}

/// The exact bytes a follow-up signature signs (after the context prefix).
fn follow_up_signed(institution: &InstitutionId, mailbox: &MailboxId, digest: &[u8; 32]) -> String {
    format!(
        r#"{{"version":1,"institution":"{institution}","mailbox":"{mailbox}","sealed_sha256":"{}"}}"#,
        encoding::b64(digest)
    )
}

fn challenge_vector(expect: &str, comment: &str, challenge: &Challenge, body: String) -> Vector {
    Vector::new(expect)
        .with("kind", "challenge")
        .with("comment", comment)
        .with("institution", challenge.institution())
        .with("nonce", hex::encode(challenge.nonce()))
        .body(body)
}

fn response_vector(
    expect: &str,
    comment: &str,
    seed: &[u8; 32],
    challenge: &Challenge,
    body: String,
) -> Vector {
    let public = key(seed).verifying_key();
    Vector::new(expect)
        .with("kind", "response")
        .with("comment", comment)
        .with("mailbox seed", hex::encode(seed))
        .with("mailbox key", public)
        .with("mailbox id", MailboxId::of(&public))
        .with("challenge", String::from_utf8(challenge.to_json()).unwrap())
        .with("signed", auth_signed(challenge, &public))
        .body(body)
}

fn follow_up_vector(
    expect: &str,
    comment: &str,
    seed: &[u8; 32],
    institution: &InstitutionId,
    mailbox: &MailboxId,
    digest: &[u8; 32],
    signature: &Signature,
) -> Vector {
    Vector::new(expect)
        .with("kind", "follow-up")
        .with("comment", comment)
        .with("mailbox seed", hex::encode(seed))
        .with("mailbox key", key(seed).verifying_key())
        .with("institution", institution)
        .with("mailbox id", mailbox)
        .with("sealed sha256", hex::encode(digest))
        .with("signed", follow_up_signed(institution, mailbox, digest))
        .body(encoding::b64(&signature.to_bytes()))
}

fn json(value: &[u8]) -> String {
    String::from_utf8(value.to_vec()).unwrap()
}

/// Every vector, by file name, computed from the code under test.
fn generate() -> BTreeMap<&'static str, Vector> {
    let mut out = BTreeMap::new();
    let seed: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let other_seed = [0x5e; 32];
    let here = institution("itjen-contoh");
    let issued = Challenge::from_issued(here.clone(), [0xa5; 32]);
    let later = Challenge::from_issued(here.clone(), [0x3c; 32]);
    let elsewhere = Challenge::from_issued(institution("itjen-lain"), [0xa5; 32]);

    // Challenges.
    let text = json(&issued.to_json());
    out.insert(
        "challenge",
        challenge_vector(
            "success",
            "a challenge as the server sends it",
            &issued,
            text.clone(),
        ),
    );
    out.insert(
        "fail_challenge_unpadded_nonce",
        challenge_vector(
            "malformed",
            "nonce base64 without its padding",
            &issued,
            text.replace("=\"", "\""),
        ),
    );
    out.insert(
        "fail_challenge_whitespace",
        challenge_vector(
            "malformed",
            "a space after a comma: not canonical JSON",
            &issued,
            text.replacen(',', ", ", 1),
        ),
    );
    out.insert(
        "fail_challenge_version_2",
        challenge_vector(
            "unsupported version",
            "version 2",
            &issued,
            text.replace("\"version\":1", "\"version\":2"),
        ),
    );

    // Responses.
    let response = respond(&issued, &key(&seed));
    let text = json(&response.to_json());
    out.insert(
        "response",
        response_vector(
            "success",
            "the response to the issued challenge",
            &seed,
            &issued,
            text.clone(),
        ),
    );
    out.insert(
        "fail_response_replayed",
        response_vector(
            "bad signature",
            "a response to an earlier challenge, replayed against a later one",
            &seed,
            &later,
            text.clone(),
        ),
    );
    out.insert(
        "fail_response_other_institution",
        response_vector(
            "bad signature",
            "same nonce, but the challenge was issued by another institution",
            &seed,
            &elsewhere,
            text.clone(),
        ),
    );
    let stolen = text.replace(
        &key(&seed).verifying_key().to_string(),
        &key(&other_seed).verifying_key().to_string(),
    );
    out.insert(
        "fail_response_other_key",
        response_vector(
            "bad signature",
            "the signature presented under another mailbox key",
            &seed,
            &issued,
            stolen,
        ),
    );
    let mut flipped = response.signature().to_bytes();
    flipped[0] ^= 0x01;
    let flipped_text = text.replace(
        &encoding::b64(&response.signature().to_bytes()),
        &encoding::b64(&flipped),
    );
    out.insert(
        "fail_response_flipped_signature",
        response_vector(
            "bad signature",
            "lowest bit of the signature's first byte flipped",
            &seed,
            &issued,
            flipped_text,
        ),
    );
    out.insert(
        "fail_response_unknown_field",
        response_vector(
            "malformed",
            "an extra field",
            &seed,
            &issued,
            text.replace("}", ",\"case\":\"00\"}"),
        ),
    );
    out.insert(
        "fail_response_version_2",
        response_vector(
            "unsupported version",
            "version 2",
            &seed,
            &issued,
            text.replace("\"version\":1", "\"version\":2"),
        ),
    );

    // Follow-ups.
    let mailbox = MailboxId::of(&key(&seed).verifying_key());
    let digest: [u8; 32] = core::array::from_fn(|i| 0xf0 ^ i as u8);
    let signature = sign_follow_up(&key(&seed), &here, &mailbox, &digest);
    out.insert(
        "follow_up",
        follow_up_vector(
            "success",
            "a follow-up signature",
            &seed,
            &here,
            &mailbox,
            &digest,
            &signature,
        ),
    );
    let other_mailbox = MailboxId::of(&key(&other_seed).verifying_key());
    let forged = sign_follow_up(&key(&seed), &here, &other_mailbox, &digest);
    out.insert(
        "fail_follow_up_other_mailbox",
        follow_up_vector(
            "bad signature",
            "a valid signature by this key, but for a mailbox the key does not own",
            &seed,
            &here,
            &other_mailbox,
            &digest,
            &forged,
        ),
    );
    let mut other_digest = digest;
    other_digest[31] ^= 1;
    out.insert(
        "fail_follow_up_other_ciphertext",
        follow_up_vector(
            "bad signature",
            "the signature of one sealed follow-up presented with another",
            &seed,
            &here,
            &mailbox,
            &other_digest,
            &signature,
        ),
    );
    let mut inverted = signature.to_bytes();
    inverted[63] ^= 0x80;
    out.insert(
        "fail_follow_up_flipped_signature",
        follow_up_vector(
            "bad signature",
            "top bit of the signature's last byte flipped",
            &seed,
            &here,
            &mailbox,
            &digest,
            &Signature::from_bytes(inverted),
        ),
    );
    out
}

fn check(vector: &VectorFile) {
    let name = vector.name.as_str();
    let expect = vector.required("expect");
    let outcome = match vector.required("kind") {
        "challenge" => {
            let nonce = hex32(vector, "nonce");
            let issued = Challenge::from_issued(institution(vector.required("institution")), nonce);
            Challenge::from_json(&vector.body[..]).map(|parsed| {
                assert_eq!(parsed, issued, "{name}");
                assert_eq!(parsed.to_json(), &vector.body[..], "{name}");
            })
        }
        "response" => {
            let seed = hex32(vector, "mailbox seed");
            let signer = key(&seed);
            assert_eq!(
                signer.verifying_key().to_string(),
                vector.required("mailbox key")
            );
            let challenge = Challenge::from_json(vector.required("challenge").as_bytes()).unwrap();
            assert_eq!(
                auth_signed(&challenge, &signer.verifying_key()),
                vector.required("signed"),
                "{name}"
            );
            ChallengeResponse::from_json(&vector.body[..])
                .and_then(|response| {
                    verify_response(&challenge, &response).map(|id| (response, id))
                })
                .map(|(response, id)| {
                    assert_eq!(id.to_string(), vector.required("mailbox id"), "{name}");
                    // Ed25519 is deterministic: the response is reproducible from the seed.
                    assert_eq!(respond(&challenge, &signer), response, "{name}");
                    // The header's `signed` bytes are what the signature covers.
                    signer
                        .verifying_key()
                        .verify(
                            SignContext::MailboxAuth,
                            vector.required("signed").as_bytes(),
                            response.signature(),
                        )
                        .unwrap();
                })
        }
        "follow-up" => {
            let seed = hex32(vector, "mailbox seed");
            let signer = key(&seed);
            let public: VerifyingKey = vector.required("mailbox key").parse().unwrap();
            assert_eq!(signer.verifying_key(), public, "{name}");
            let here = institution(vector.required("institution"));
            let mailbox: MailboxId = vector.required("mailbox id").parse().unwrap();
            let digest = hex32(vector, "sealed sha256");
            assert_eq!(
                follow_up_signed(&here, &mailbox, &digest),
                vector.required("signed")
            );
            let signature = Signature::from_bytes(
                encoding::unb64_array::<64>(
                    std::str::from_utf8(&vector.body).expect("base64 is text"),
                    "signature",
                )
                .unwrap(),
            );
            verify_follow_up(&public, &here, &mailbox, &digest, &signature).map(|()| {
                assert_eq!(sign_follow_up(&signer, &here, &mailbox, &digest), signature);
                public
                    .verify(
                        SignContext::FollowUp,
                        vector.required("signed").as_bytes(),
                        &signature,
                    )
                    .unwrap();
            })
        }
        other => panic!("{name}: unknown kind {other}"),
    };
    match outcome {
        Ok(()) => assert_eq!(expect, "success", "{name}"),
        Err(error) => assert_eq!(class(&error), expect, "{name}: {error}"),
    }
}

pinned::vector_tests! {
    area: AREA,
    at_least: 15,
    generate: generate,
    check: check,
    holds: every_auth_vector_holds,
    pinned: auth_vectors_are_pinned,
    rewrite: write_auth_vectors,
}
