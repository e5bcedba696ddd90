//! The page's operations natively, through the same JSON the page sends: a whole report
//! opens on the desk, replies verify against the manifest in force on their day across a
//! key rotation, and every out-of-order or malformed call is refused with its code while
//! the session keeps working.
#![allow(clippy::unwrap_used)]

use peluit_proto::day::Day;
use peluit_proto::envelope::open_report;
use peluit_proto::ids::CaseId;
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution, Manifest, ManifestKey, Purpose, SignedManifest, VerifiedManifest,
    VerifyPolicy,
};
use peluit_proto::receipt::Receipt;
use peluit_proto::reply::{Reply, ReplyKind, seal_reply};
use peluit_proto::seal::open_padded;
use peluit_web::{Op, Session, WebError};
use serde_json::{Value, json};
use sha2::Digest;

const ORIGIN: &str = "http://127.0.0.1:8080";

struct Desk {
    seal: SealIdentity,
    escrow: SealIdentity,
    manifest_key: SigningKey,
    signed: SignedManifest,
}

fn desk() -> Desk {
    let (seal, escrow) = (SealIdentity::generate(), SealIdentity::generate());
    let (reply, manifest_key) = (SigningKey::generate(), SigningKey::generate());
    let manifest = manifest(&seal, &escrow, &reply);
    let signed = manifest.sign(&manifest_key);
    Desk {
        seal,
        escrow,
        manifest_key,
        signed,
    }
}

/// Serial 3, valid through 2026, with one investigator and the escrow.
fn manifest(seal: &SealIdentity, escrow: &SealIdentity, reply: &SigningKey) -> Manifest {
    Manifest {
        version: 1,
        institution: Institution {
            id: "inspektorat-uji".parse().unwrap(),
            name: "Inspektorat Uji".into(),
        },
        origins: vec![ORIGIN.into()],
        serial: 3,
        valid_from: "2026-01-01".parse().unwrap(),
        valid_until: "2027-01-01".parse().unwrap(),
        keys: vec![
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::Seal,
                public: seal.recipient().to_string(),
            },
            ManifestKey {
                holder: "escrow".into(),
                purpose: Purpose::EscrowSeal,
                public: escrow.recipient().to_string(),
            },
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::ReplySigning,
                public: reply.verifying_key().to_string(),
            },
        ],
        form: FormDefinition::kws_default(),
    }
}

fn call(session: &mut Session, op: Op, request: Value) -> Result<Value, WebError> {
    session
        .call(op, request.to_string().as_bytes())
        .map(|out| serde_json::from_slice(&out).unwrap())
}

fn verify(session: &mut Session, desk: &Desk, origin: &str) -> Result<Value, WebError> {
    call(
        session,
        Op::VerifyManifest,
        json!({
            "manifest_key": desk.manifest_key.verifying_key().to_string(),
            "origin": origin,
            "today": "2026-11-28",
            "manifest": String::from_utf8(desk.signed.to_json()).unwrap(),
        }),
    )
}

#[test]
fn a_report_with_an_attachment_opens_on_the_desk() {
    let desk = desk();
    let mut session = Session::default();
    let summary = verify(&mut session, &desk, ORIGIN).unwrap();
    assert_eq!(summary["institution"], "inspektorat-uji");
    assert_eq!(summary["recipients"], 2);
    assert_eq!(summary["fingerprint"]["id"].as_array().unwrap().len(), 8);
    let words = call(&mut session, Op::NewReceipt, json!({"language": "en"})).unwrap();
    assert_eq!(words["words"].as_str().unwrap().split(' ').count(), 10);

    let content: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let begin = call(
        &mut session,
        Op::AttachmentBegin,
        json!({"size": content.len()}),
    )
    .unwrap();
    let handle = u32::try_from(begin["handle"].as_u64().unwrap()).unwrap();
    let with_handle = |bytes: &[u8]| [&handle.to_le_bytes()[..], bytes].concat();
    let mut sealed = Vec::new();
    for piece in content.chunks(65_536) {
        sealed.extend_from_slice(
            &session
                .call(Op::AttachmentPush, &with_handle(piece))
                .unwrap(),
        );
    }
    let end = call(&mut session, Op::AttachmentEnd, json!({"handle": handle}));
    assert_eq!(end.unwrap_err().code, "invalid_use", "tail not sealed yet");
    loop {
        let out = session.call(Op::AttachmentTail, &with_handle(&[])).unwrap();
        sealed.extend_from_slice(&out[1..]);
        if out[0] == 1 {
            break;
        }
    }
    assert_eq!(sealed.len() as u64, begin["sealed_size"].as_u64().unwrap());
    let end = call(&mut session, Op::AttachmentEnd, json!({"handle": handle})).unwrap();
    assert_eq!(end["sealed_len"], sealed.len());
    let opened = open_padded(&sealed, std::slice::from_ref(&desk.seal), 1 << 20).unwrap();
    assert!(*opened == content);

    let envelope = call(
        &mut session,
        Op::SealReport,
        json!({
            "language": "en",
            "date": "2026-11-28",
            "answers": [
                {"question": "category", "value": "suap"},
                {"question": "what_happened", "value": "A bribe."}
            ],
            "attachments": [{
                "upload": "00112233445566778899aabbccddeeff",
                "name": "photo.jpg",
                "media_type": "image/jpeg",
                "size": content.len(),
                "sealed_sha256": end["sealed_sha256"],
            }],
        }),
    )
    .unwrap();
    let bytes = peluit_proto::encoding::unb64(envelope["envelope"].as_str().unwrap(), "e").unwrap();
    let sealed = peluit_proto::sealed::SealedMessage::check(bytes, 2, 1 << 20).unwrap();
    assert_eq!(envelope["envelope_sha256"], hex::encode(sealed.sha256()));
    let report = open_report(&sealed, std::slice::from_ref(&desk.escrow)).unwrap();
    assert_eq!(report.answers[1].value, "A bribe.");
    assert_eq!(report.attachments[0].name, "photo.jpg");
    assert_eq!(report.date, "2026-11-28".parse::<Day>().unwrap());
    assert_eq!(
        report.mailbox.to_string(),
        envelope["mailbox_key"].as_str().unwrap()
    );

    let stamp = call(
        &mut session,
        Op::MintStamp,
        json!({"resource": envelope["envelope_sha256"], "bits": 4, "start": 0, "count": 100_000}),
    )
    .unwrap();
    let stamp =
        peluit_proto::pow::Stamp::from_json(stamp["stamp"].as_str().unwrap().as_bytes()).unwrap();
    stamp.verify(&sealed.sha256(), 4).unwrap();
}

/// The page's split: a sealer begun `unhashed` in one session (the sealing worker) and
/// its ciphertext hashed by another (the hashing worker); the digest is the ciphertext's.
#[test]
fn an_attachment_hashed_in_another_session_has_the_ciphertexts_digest() {
    let desk = desk();
    let mut sealing = Session::default();
    verify(&mut sealing, &desk, ORIGIN).unwrap();
    let mut hashing = Session::default();
    let content: Vec<u8> = (0..150_000u32).map(|i| (i * 3) as u8).collect();
    let begin = call(
        &mut sealing,
        Op::AttachmentBegin,
        json!({"size": content.len(), "unhashed": true}),
    )
    .unwrap();
    let handle = u32::try_from(begin["handle"].as_u64().unwrap()).unwrap();
    let digest = call(&mut hashing, Op::DigestBegin, json!({})).unwrap();
    let digest = u32::try_from(digest["handle"].as_u64().unwrap()).unwrap();
    let mut sealed = Vec::new();
    let mut keep = |hashing: &mut Session, out: &[u8]| {
        let pushed = hashing
            .call(Op::DigestPush, &[&digest.to_le_bytes()[..], out].concat())
            .unwrap();
        assert!(pushed.is_empty());
        sealed.extend_from_slice(out);
    };
    for piece in content.chunks(65_536) {
        let input = [&handle.to_le_bytes()[..], piece].concat();
        keep(
            &mut hashing,
            &sealing.call(Op::AttachmentPush, &input).unwrap(),
        );
    }
    loop {
        let out = sealing
            .call(Op::AttachmentTail, &handle.to_le_bytes())
            .unwrap();
        keep(&mut hashing, &out[1..]);
        if out[0] == 1 {
            break;
        }
    }
    let end = call(&mut sealing, Op::AttachmentEnd, json!({"handle": handle})).unwrap();
    assert_eq!(end["sealed_len"], sealed.len());
    assert!(end.get("sealed_sha256").is_none(), "{end}");
    let sha = call(&mut hashing, Op::DigestEnd, json!({"handle": digest})).unwrap();
    assert_eq!(
        sha["sealed_sha256"],
        hex::encode(<[u8; 32]>::from(sha2::Sha256::digest(&sealed)))
    );
    let opened = open_padded(&sealed, std::slice::from_ref(&desk.seal), 1 << 20).unwrap();
    assert!(*opened == content);

    // A finished or unknown digest, or a request without a handle, is refused and the
    // session goes on.
    for (op, request) in [
        (Op::DigestEnd, json!({"handle": digest})),
        (Op::DigestEnd, json!({"handle": 99})),
        (Op::DigestEnd, json!({})),
        (Op::DigestBegin, json!({"extra": 1})),
    ] {
        assert_eq!(
            call(&mut hashing, op, request).unwrap_err().code,
            "bad_request"
        );
    }
    for input in [&[1u8, 0][..], &99u32.to_le_bytes()] {
        let refused = hashing.call(Op::DigestPush, input).unwrap_err();
        assert_eq!(refused.code, "bad_request");
    }
    let again = call(&mut hashing, Op::DigestBegin, json!({})).unwrap();
    let again = u32::try_from(again["handle"].as_u64().unwrap()).unwrap();
    call(&mut hashing, Op::Forget, json!({})).unwrap();
    let forgotten = call(&mut hashing, Op::DigestEnd, json!({"handle": again}));
    assert_eq!(
        forgotten.unwrap_err().code,
        "bad_request",
        "Forget drops digests"
    );
}

#[test]
fn refusals_have_codes_and_leave_the_session_usable() {
    let desk = desk();
    let mut session = Session::default();
    let code = |result: Result<Value, WebError>| result.unwrap_err().code;
    let detail = |result: Result<Value, WebError>| result.unwrap_err().detail;

    assert_eq!(
        code(call(
            &mut session,
            Op::NewReceipt,
            json!({"language": "id"})
        )),
        "no_manifest"
    );
    assert_eq!(
        detail(verify(&mut session, &desk, "https://elsewhere.example")),
        Some("origin-not-listed")
    );
    let other = Desk {
        signed: desk.signed.clone(),
        ..self::desk()
    };
    assert_eq!(
        detail(verify(&mut session, &other, ORIGIN)),
        Some("bad-signature")
    );
    assert_eq!(
        session
            .call(Op::VerifyManifest, b"{not json")
            .unwrap_err()
            .code,
        "bad_request"
    );
    verify(&mut session, &desk, ORIGIN).unwrap();
    assert_eq!(
        code(call(
            &mut session,
            Op::SealReport,
            json!({
                "language": "id", "date": "2026-11-28", "answers": [], "attachments": []
            })
        )),
        "no_receipt"
    );
    assert_eq!(
        code(call(
            &mut session,
            Op::OpenReceipt,
            json!({"words": "satu dua tiga"})
        )),
        "receipt"
    );
    call(&mut session, Op::NewReceipt, json!({"language": "id"})).unwrap();
    let missing = call(
        &mut session,
        Op::SealReport,
        json!({
            "language": "id", "date": "2026-11-28", "answers": [], "attachments": []
        }),
    );
    assert_eq!(missing.as_ref().unwrap_err().code, "report_refused");
    assert_eq!(
        session.call(Op::AttachmentPush, &[1, 0]).unwrap_err().code,
        "bad_request"
    );
    assert_eq!(
        session
            .call(Op::AttachmentTail, &7u32.to_le_bytes())
            .unwrap_err()
            .code,
        "bad_request"
    );
    assert_eq!(
        code(call(
            &mut session,
            Op::AnswerChallenge,
            json!({"challenge": "{}"})
        )),
        "malformed"
    );
    assert_eq!(
        code(call(&mut session, Op::OpenReply, json!({"reply": "[]"}))),
        "no_history"
    );
    let history = format!(
        "{{\"manifests\":[{}]}}",
        String::from_utf8(desk.signed.to_json()).unwrap()
    );
    call(
        &mut session,
        Op::VerifyHistory,
        json!({ "manifests": history }),
    )
    .unwrap();
    assert_eq!(
        code(call(&mut session, Op::OpenReply, json!({"reply": "[]"}))),
        "malformed"
    );
    call(&mut session, Op::Forget, json!({})).unwrap();
    assert_eq!(
        code(call(
            &mut session,
            Op::SealFollowUp,
            json!({
                "date": "2026-11-28", "text": "x", "attachments": []
            })
        )),
        "no_receipt"
    );
    assert!(Op::from_code(0).is_none() && Op::from_code(18).is_none());
}

/// The body of `GET …/manifests`: the signed documents as served, oldest first.
fn history_body(history: &[&SignedManifest]) -> String {
    let documents: Vec<String> = history
        .iter()
        .map(|m| String::from_utf8(m.to_json()).unwrap())
        .collect();
    format!("{{\"manifests\":[{}]}}", documents.join(","))
}

#[test]
fn replies_verify_under_the_manifest_in_force_on_their_day() {
    // Serial 3 (all of 2026) and, from 2026-11-01, serial 4 with Ani's keys rotated.
    let desk = desk();
    let ani_before = SigningKey::generate();
    let old = {
        let mut m = manifest(&desk.seal, &desk.escrow, &ani_before);
        m.valid_until = "2026-12-31".parse().unwrap();
        m.sign(&desk.manifest_key)
    };
    let (seal_after, ani_after) = (SealIdentity::generate(), SigningKey::generate());
    let new = {
        let mut m = manifest(&seal_after, &desk.escrow, &ani_after);
        m.serial = 4;
        m.valid_from = "2026-11-01".parse().unwrap();
        m.sign(&desk.manifest_key)
    };
    let current = Desk {
        signed: new.clone(),
        ..desk
    };
    let mut session = Session::default();
    verify(&mut session, &current, ORIGIN).unwrap();
    let words = call(&mut session, Op::NewReceipt, json!({"language": "id"})).unwrap();
    let keys = Receipt::parse(words["words"].as_str().unwrap())
        .unwrap()
        .derive(&"inspektorat-uji".parse().unwrap());
    let at = |signed: &SignedManifest| -> VerifiedManifest {
        signed
            .verify(&VerifyPolicy::new(
                current.manifest_key.verifying_key(),
                signed.manifest().valid_from,
            ))
            .unwrap()
    };
    let reply = |under: &SignedManifest, signer: &SigningKey, seq: u32, date: &str| {
        let reply = Reply {
            case: CaseId::from_bytes([5; 16]),
            seq,
            date: date.parse().unwrap(),
            kind: ReplyKind::Message,
            text: format!("balasan {seq}"),
            attachments: vec![],
        };
        let under = at(under);
        let sealed = seal_reply(
            &reply,
            &keys.reply_recipient(),
            &keys.mailbox_public_key(),
            under.institution_id(),
            &under.seal_recipients(),
            signer,
        )
        .unwrap();
        json!({ "reply": String::from_utf8(sealed.to_json()).unwrap() })
    };
    let before = reply(&old, &ani_before, 1, "2026-10-31");
    let after = reply(&new, &ani_after, 2, "2026-11-28");
    let dropped = reply(&old, &ani_before, 3, "2026-11-28");
    let code = |result: Result<Value, WebError>| result.unwrap_err().code;

    // A history that does not verify is refused whole and keeps nothing.
    let foreign = manifest(&SealIdentity::generate(), &current.escrow, &ani_before)
        .sign(&SigningKey::generate());
    for (body, refused) in [
        (history_body(&[&foreign, &new]), "manifest_rejected"),
        (history_body(&[&new, &old]), "manifest_rejected"),
        (history_body(&[&old]), "not_authentic"),
        (history_body(&[]), "manifest_rejected"),
        (
            history_body(&[&old, &new]).replace("},{", "}, {"),
            "manifest_rejected",
        ),
        (
            history_body(&[&old, &new]).replace("]}", "]"),
            "bad_request",
        ),
        ("[]".into(), "bad_request"),
    ] {
        assert_eq!(
            code(call(
                &mut session,
                Op::VerifyHistory,
                json!({ "manifests": body })
            )),
            refused
        );
        assert_eq!(
            code(call(&mut session, Op::OpenReply, before.clone())),
            "no_history"
        );
    }

    let answer = call(
        &mut session,
        Op::VerifyHistory,
        json!({ "manifests": history_body(&[&old, &new]) }),
    )
    .unwrap();
    assert_eq!(answer["serials"], json!([3, 4]));
    for (request, seq) in [(&before, 1), (&after, 2)] {
        let opened = call(&mut session, Op::OpenReply, request.clone()).unwrap();
        assert_eq!(opened["seq"], seq);
        assert_eq!(opened["text"], format!("balasan {seq}"));
        assert_eq!(opened["signer"], "investigator:ani");
    }
    // The dropped key, dated after the rotation, is refused though serial 3 still covers
    // the day.
    assert_eq!(
        code(call(&mut session, Op::OpenReply, dropped)),
        "bad_signature"
    );
    // A new manifest check forgets the history it was verified against.
    verify(&mut session, &current, ORIGIN).unwrap();
    assert_eq!(
        code(call(&mut session, Op::OpenReply, before)),
        "no_history"
    );
}
