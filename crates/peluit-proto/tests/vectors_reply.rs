//! Runs every sealed-reply vector in `tests/vectors/reply/` (docs/protocol.md#reply) and,
//! with `--ignored`, rewrites them: `cargo test -p peluit-proto --test vectors_reply -- --ignored`.
//!
//! A vector is a testkit-style file: `name: value` header lines, a blank line, then the
//! `SealedReply` JSON exactly as served. Keys come from 32-byte seeds in the header:
//! `reporter seed` and each `inspectorate seed` give age identities
//! (`SealIdentity::from_secret_bytes`), `mailbox seed`, `signer seed` and each
//! `allowed signer seed` give Ed25519 keys (`SigningKey::from_seed`). The test parses the
//! body (which must re-serialize to the same bytes), checks the `signed:` bytes exactly,
//! runs `verify(allowed, recipients)`, then opens it with every `open with:` identity.
//! The first failure must be the `expect:` class; a success must open to the reply in the
//! header (`case`, `seq`, `date`, `kind`, `status`, `text`, `attachment`).
//!
//! Age sealing is randomized, so rewriting changes the bodies; the committed files are the
//! reference: they must keep opening to the same replies with the same signed bytes.

// Tests may unwrap; clippy's in-test allowance does not reach helper functions.
#![allow(clippy::unwrap_used)]

mod support;
mod vector_file;

use peluit_proto::Error;
use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::keys::{SealIdentity, SignContext, SigningKey, VerifyingKey};
use peluit_proto::reply::{
    Reply, ReplyAttachment, ReplyKind, SealedReply, Status, open_reply, seal_reply,
};
use vector_file::VectorFile;
use zeroize::Zeroizing;

const AREA: &str = "reply";

const REPORTER_SEED: u8 = 0x51;
const INSPECTORATE_SEEDS: [u8; 2] = [0x52, 0x53];
const MAILBOX_SEED: u8 = 0x54;
const SIGNER_SEED: u8 = 0x55;
const OTHER_SIGNER_SEED: u8 = 0x56;
const STRANGER_SEED: u8 = 0x57;
const INSTITUTION: &str = "itjen-contoh";

fn seed(byte: u8) -> Zeroizing<[u8; 32]> {
    Zeroizing::new([byte; 32])
}

fn parse_seed(hex_text: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_text, &mut out[..]).expect("a seed is 64 hex digits");
    out
}

/// The failure class a vector's `expect:` names.
fn class(error: &Error) -> &'static str {
    match error {
        Error::BadSignature => "bad signature",
        Error::WrongRecipients(_) => "wrong recipients",
        Error::IntegrityFailed(_) => "integrity failure",
        Error::Malformed(_) => "malformed",
        Error::UnsupportedVersion { .. } => "unsupported version",
        Error::NoMatchingKey => "no match",
        Error::DecryptionFailed => "decryption failure",
        Error::TooLarge(_) => "too large",
        other => panic!("unexpected error class: {other:?}"),
    }
}

/// What a vector's header says the reply opens to.
fn expected_reply(v: &VectorFile) -> Reply {
    let kind = match v.required("kind") {
        "message" => ReplyKind::Message,
        "status" => ReplyKind::Status(v.required("status").parse().unwrap()),
        other => panic!("{}: unknown kind {other}", v.name),
    };
    let attachments = v
        .all("attachment")
        .map(|json| {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            ReplyAttachment {
                name: value["name"].as_str().unwrap().to_owned(),
                media_type: value["media_type"].as_str().unwrap().to_owned(),
                data: peluit_proto::encoding::unb64(value["data"].as_str().unwrap(), "data")
                    .unwrap(),
            }
        })
        .collect();
    Reply {
        case: v.required("case").parse().unwrap(),
        seq: v.required("seq").parse().unwrap(),
        date: v.required("date").parse().unwrap(),
        kind,
        text: serde_json::from_str(v.required("text")).unwrap(),
        attachments,
    }
}

fn assert_same_reply(name: &str, got: &Reply, want: &Reply) {
    assert_eq!(got.case, want.case, "{name}: case");
    assert_eq!(got.seq, want.seq, "{name}: seq");
    assert_eq!(got.date, want.date, "{name}: date");
    assert_eq!(got.kind, want.kind, "{name}: kind");
    assert_eq!(got.text, want.text, "{name}: text");
    assert_eq!(got.attachments.len(), want.attachments.len(), "{name}");
    for (g, w) in got.attachments.iter().zip(&want.attachments) {
        assert_eq!(g.name, w.name, "{name}: attachment name");
        assert_eq!(g.media_type, w.media_type, "{name}: media type");
        assert_eq!(g.data, w.data, "{name}: attachment data");
    }
}

/// Runs one vector; returns the first failure's class, or `None` on success.
fn run(v: &VectorFile) -> Option<&'static str> {
    let sealed = match SealedReply::from_json(&v.body) {
        Ok(sealed) => sealed,
        Err(e) => return Some(class(&e)),
    };
    // Pinned byte for byte: the parsed reply re-serializes to the committed body.
    assert_eq!(
        sealed.to_json(),
        v.body,
        "{}: body is not canonical",
        v.name
    );
    if let Some(signed) = v.optional("signed") {
        assert_eq!(
            String::from_utf8(sealed.signed_bytes()).unwrap(),
            signed,
            "{}: signed bytes differ",
            v.name
        );
    }
    let allowed: Vec<VerifyingKey> = v
        .all("allowed signer seed")
        .map(|s| SigningKey::from_seed(&parse_seed(s)).verifying_key())
        .collect();
    let recipients: usize = v.required("recipients").parse().unwrap();
    if let Err(e) = sealed.verify(&allowed, recipients) {
        return Some(class(&e));
    }
    let reporter = SealIdentity::from_secret_bytes(&parse_seed(v.required("reporter seed")));
    let inspectorate: Vec<SealIdentity> = v
        .all("inspectorate seed")
        .map(|s| SealIdentity::from_secret_bytes(&parse_seed(s)))
        .collect();
    let stranger = v
        .optional("stranger seed")
        .map(|s| SealIdentity::from_secret_bytes(&parse_seed(s)));
    let mut opened = 0;
    for who in v.all("open with") {
        let identity = match who.split_once(' ') {
            None if who == "reporter" => &reporter,
            None if who == "stranger" => stranger.as_ref().expect("a stranger seed"),
            Some(("inspectorate", n)) => &inspectorate[n.parse::<usize>().unwrap() - 1],
            _ => panic!("{}: bad `open with: {who}`", v.name),
        };
        match open_reply(&sealed, identity, &allowed) {
            Ok(reply) => assert_same_reply(&v.name, &reply, &expected_reply(v)),
            Err(e) => return Some(class(&e)),
        }
        opened += 1;
    }
    assert!(opened > 0, "{}: no `open with` header", v.name);
    // The signature is deterministic Ed25519 over the signed bytes: re-signing with the
    // signer seed gives the committed signature.
    let signer = SigningKey::from_seed(&parse_seed(v.required("signer seed")));
    assert_eq!(
        sealed.signer(),
        &signer.verifying_key(),
        "{}: signer",
        v.name
    );
    assert_eq!(
        signer.sign(SignContext::Reply, &sealed.signed_bytes()),
        *sealed.signature(),
        "{}: signature",
        v.name
    );
    let mailbox = SigningKey::from_seed(&parse_seed(v.required("mailbox seed")));
    assert_eq!(sealed.mailbox_key(), &mailbox.verifying_key(), "{}", v.name);
    None
}

#[test]
fn every_reply_vector_has_its_expected_outcome() {
    for v in support::committed(AREA, 10) {
        let outcome = run(&v).unwrap_or("success");
        assert_eq!(outcome, v.required("expect"), "{}", v.name);
    }
}

// --- Writing the vectors -------------------------------------------------------------

fn case_id() -> CaseId {
    CaseId::from_bytes([0xca; 16])
}

fn message() -> Reply {
    Reply {
        case: case_id(),
        seq: 3,
        date: "2026-03-14".parse().unwrap(),
        kind: ReplyKind::Message,
        text: "Terima kasih atas laporan Anda. Mohon kirimkan salinan kontrak \
               pengadaan jika ada.\nSalam, Tim Investigasi"
            .to_owned(),
        attachments: vec![ReplyAttachment {
            name: "formulir-tambahan.txt".to_owned(),
            media_type: "text/plain".to_owned(),
            data: b"Nomor kontrak:\nTanggal:\n".to_vec(),
        }],
    }
}

fn status_change() -> Reply {
    Reply {
        case: case_id(),
        seq: 4,
        date: "2026-03-20".parse().unwrap(),
        kind: ReplyKind::Status(Status::InReview),
        text: String::new(),
        attachments: Vec::new(),
    }
}

fn seal_fixed(reply: &Reply, signer_seed: u8) -> SealedReply {
    let reporter = SealIdentity::from_secret_bytes(&seed(REPORTER_SEED)).recipient();
    let inspectorate: Vec<_> = INSPECTORATE_SEEDS
        .iter()
        .map(|&s| SealIdentity::from_secret_bytes(&seed(s)).recipient())
        .collect();
    let institution: InstitutionId = INSTITUTION.parse().unwrap();
    seal_reply(
        reply,
        &reporter,
        &SigningKey::from_seed(&seed(MAILBOX_SEED)).verifying_key(),
        &institution,
        &inspectorate,
        &SigningKey::from_seed(&seed(signer_seed)),
    )
    .unwrap()
}

fn reply_headers(reply: &Reply) -> Vec<String> {
    let mut lines = vec![
        format!("case: {}", reply.case),
        format!("seq: {}", reply.seq),
        format!("date: {}", reply.date),
    ];
    match reply.kind {
        ReplyKind::Message => lines.push("kind: message".into()),
        ReplyKind::Status(status) => {
            lines.push("kind: status".into());
            lines.push(format!("status: {status}"));
        }
    }
    lines.push(format!(
        "text: {}",
        serde_json::to_string(&reply.text).unwrap()
    ));
    for a in &reply.attachments {
        lines.push(format!(
            "attachment: {}",
            serde_json::json!({
                "name": a.name,
                "media_type": a.media_type,
                "data": peluit_proto::encoding::b64(&a.data),
            })
        ));
    }
    lines
}

struct Spec {
    expect: &'static str,
    description: &'static str,
    signer: u8,
    allowed: Vec<u8>,
    recipients: usize,
    open_with: Vec<&'static str>,
    reply: Option<Vec<String>>,
    body: Vec<u8>,
}

fn write_vector(name: &str, spec: Spec) {
    let hex_seed = |b: u8| hex::encode([b; 32]);
    let mut lines = vec![
        format!("expect: {}", spec.expect),
        format!("description: {}", spec.description),
        format!("institution: {INSTITUTION}"),
        format!("reporter seed: {}", hex_seed(REPORTER_SEED)),
    ];
    for s in INSPECTORATE_SEEDS {
        lines.push(format!("inspectorate seed: {}", hex_seed(s)));
    }
    lines.push(format!("mailbox seed: {}", hex_seed(MAILBOX_SEED)));
    lines.push(format!("signer seed: {}", hex_seed(spec.signer)));
    for s in spec.allowed {
        lines.push(format!("allowed signer seed: {}", hex_seed(s)));
    }
    if spec.open_with.contains(&"stranger") {
        lines.push(format!("stranger seed: {}", hex_seed(STRANGER_SEED)));
    }
    lines.push(format!("recipients: {}", spec.recipients));
    for who in spec.open_with {
        lines.push(format!("open with: {who}"));
    }
    if let Ok(sealed) = SealedReply::from_json(&spec.body) {
        lines.push(format!(
            "signed: {}",
            String::from_utf8(sealed.signed_bytes()).unwrap()
        ));
    }
    lines.extend(spec.reply.unwrap_or_default());
    let mut out = lines.join("\n").into_bytes();
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(&spec.body);
    std::fs::write(support::dir(AREA).join(name), out).unwrap();
}

/// The fields of a sealed reply in wire order (`serde_json::Value` sorts its keys).
const FIELDS: [&str; 9] = [
    "version",
    "institution",
    "case",
    "mailbox_key",
    "seq",
    "day",
    "signer",
    "ciphertext",
    "signature",
];

fn to_wire_order(json: &serde_json::Value) -> Vec<u8> {
    let fields: Vec<String> = FIELDS
        .iter()
        .map(|f| format!("\"{f}\":{}", json[*f]))
        .collect();
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// Replaces one field of a sealed reply's JSON and, if `resign_with` is given, signs the
/// result again, as a signer who signed something other than what they sealed would.
fn edit_json(
    sealed: &SealedReply,
    field: &str,
    value: serde_json::Value,
    resign_with: Option<u8>,
) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(&sealed.to_json()).unwrap();
    json[field] = value;
    let mut bytes = to_wire_order(&json);
    if let Some(signer) = resign_with {
        let edited = SealedReply::from_json(&bytes).unwrap();
        let signature =
            SigningKey::from_seed(&seed(signer)).sign(SignContext::Reply, &edited.signed_bytes());
        json["signature"] =
            serde_json::Value::String(peluit_proto::encoding::b64(&signature.to_bytes()));
        bytes = to_wire_order(&json);
    }
    assert_eq!(
        SealedReply::from_json(&bytes).map(|s| s.to_json()).ok(),
        Some(bytes.clone()),
        "an edited vector stays canonical, so it fails for the reason it is about"
    );
    bytes
}

#[test]
#[ignore = "rewrites tests/vectors/reply; run with --ignored and commit the result"]
fn write_reply_vectors() {
    std::fs::create_dir_all(support::dir(AREA)).unwrap();
    for entry in std::fs::read_dir(support::dir(AREA)).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let both = vec!["reporter", "inspectorate 1", "inspectorate 2"];
    let message_sealed = seal_fixed(&message(), SIGNER_SEED);
    let spec = |expect, description, body: Vec<u8>| Spec {
        expect,
        description,
        signer: SIGNER_SEED,
        allowed: vec![OTHER_SIGNER_SEED, SIGNER_SEED],
        recipients: 3,
        open_with: vec!["reporter"],
        reply: Some(reply_headers(&message())),
        body,
    };

    write_vector(
        "message_with_attachment",
        Spec {
            open_with: both.clone(),
            ..spec(
                "success",
                "a message with one inline attachment, opened by the reporter and by both inspectorate identities",
                message_sealed.to_json(),
            )
        },
    );
    let status_sealed = seal_fixed(&status_change(), SIGNER_SEED);
    write_vector(
        "status_in_review",
        Spec {
            open_with: both,
            reply: Some(reply_headers(&status_change())),
            ..spec(
                "success",
                "a bare status change to in-review, no text",
                status_sealed.to_json(),
            )
        },
    );

    let forged_signature = SigningKey::from_seed(&seed(OTHER_SIGNER_SEED))
        .sign(SignContext::Reply, &message_sealed.signed_bytes());
    write_vector(
        "fail_signature_forged",
        spec(
            "bad signature",
            "signature made by another key over the right bytes, claiming the allowed signer",
            edit_json(
                &message_sealed,
                "signature",
                peluit_proto::encoding::b64(&forged_signature.to_bytes()).into(),
                None,
            ),
        ),
    );
    write_vector(
        "fail_signer_not_allowed",
        Spec {
            allowed: vec![OTHER_SIGNER_SEED],
            ..spec(
                "bad signature",
                "validly signed by a key that is not among the allowed signers",
                message_sealed.to_json(),
            )
        },
    );
    let mut flipped: serde_json::Value = serde_json::from_slice(&message_sealed.to_json()).unwrap();
    let mut ciphertext = message_sealed.ciphertext().to_vec();
    let last = ciphertext.len() - 1;
    ciphertext[last] ^= 1;
    flipped["ciphertext"] = peluit_proto::encoding::b64(&ciphertext).into();
    write_vector(
        "fail_ciphertext_flipped",
        spec(
            "bad signature",
            "one bit of the last ciphertext byte flipped",
            edit_json(
                &message_sealed,
                "ciphertext",
                peluit_proto::encoding::b64(&ciphertext).into(),
                None,
            ),
        ),
    );
    write_vector(
        "fail_seq_changed",
        spec(
            "bad signature",
            "outer seq changed by the server (replay under another seq)",
            edit_json(&message_sealed, "seq", 4.into(), None),
        ),
    );
    write_vector(
        "fail_case_changed",
        spec(
            "bad signature",
            "outer case changed by the server (moved to another case)",
            edit_json(
                &message_sealed,
                "case",
                CaseId::from_bytes([0xcb; 16]).to_string().into(),
                None,
            ),
        ),
    );
    write_vector(
        "fail_mailbox_changed",
        spec(
            "bad signature",
            "outer mailbox key changed by the server (moved to another mailbox)",
            edit_json(
                &message_sealed,
                "mailbox_key",
                SigningKey::from_seed(&seed(STRANGER_SEED))
                    .verifying_key()
                    .to_string()
                    .into(),
                None,
            ),
        ),
    );
    write_vector(
        "fail_seq_resigned",
        spec(
            "integrity failure",
            "outer seq 4 signed by the allowed signer, but the sealed reply says seq 3",
            edit_json(&message_sealed, "seq", 4.into(), Some(SIGNER_SEED)),
        ),
    );
    write_vector(
        "fail_date_resigned",
        spec(
            "integrity failure",
            "outer day signed by the allowed signer differs from the sealed date",
            edit_json(
                &message_sealed,
                "day",
                "2026-03-15".into(),
                Some(SIGNER_SEED),
            ),
        ),
    );
    write_vector(
        "fail_wrong_recipients",
        Spec {
            recipients: 4,
            ..spec(
                "wrong recipients",
                "sealed to 3 recipients where the manifest requires 4",
                message_sealed.to_json(),
            )
        },
    );
    write_vector(
        "fail_stranger",
        Spec {
            open_with: vec!["stranger"],
            ..spec(
                "no match",
                "opened with an identity it was not sealed to",
                message_sealed.to_json(),
            )
        },
    );
    let json = String::from_utf8(message_sealed.to_json()).unwrap();
    write_vector(
        "fail_not_canonical",
        spec(
            "malformed",
            "a space after the first colon: not the canonical JSON",
            json.replacen("\"version\":1", "\"version\": 1", 1)
                .into_bytes(),
        ),
    );
    write_vector(
        "fail_unknown_field",
        spec(
            "malformed",
            "an extra field",
            json.replacen("\"signature\"", "\"note\":\"x\",\"signature\"", 1)
                .into_bytes(),
        ),
    );
    write_vector(
        "fail_version_2",
        spec(
            "unsupported version",
            "version 2",
            json.replacen("\"version\":1", "\"version\":2", 1)
                .into_bytes(),
        ),
    );
}

#[test]
fn signed_bytes_layout_is_pinned() {
    // Independent of the committed files: the exact text the investigator signs.
    let sealed = seal_fixed(&message(), SIGNER_SEED);
    let signed = String::from_utf8(sealed.signed_bytes()).unwrap();
    let expected = format!(
        "{{\"version\":1,\"institution\":\"itjen-contoh\",\"case\":\"{case}\",\
         \"mailbox_key\":\"{mailbox}\",\"seq\":3,\"day\":\"2026-03-14\",\
         \"signer\":\"{signer}\",\"ciphertext_sha256\":\"{digest}\"}}",
        case = case_id(),
        mailbox = SigningKey::from_seed(&seed(MAILBOX_SEED)).verifying_key(),
        signer = SigningKey::from_seed(&seed(SIGNER_SEED)).verifying_key(),
        digest = hex::encode(sealed.ciphertext_sha256()),
    );
    assert_eq!(signed, expected);
    let json = String::from_utf8(sealed.to_json()).unwrap();
    assert!(json.starts_with(&format!(
        "{{\"version\":1,\"institution\":\"itjen-contoh\",\"case\":\"{}\",\"mailbox_key\":",
        case_id()
    )));
    assert!(json.contains("\"ciphertext\":\"YWdlLWVuY3J5cHRpb24ub3JnL3YxCi"));
    let _: Day = sealed.day();
}
