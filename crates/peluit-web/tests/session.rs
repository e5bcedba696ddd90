//! The page's operations natively, through the same JSON the page sends: a whole report
//! opens on the desk, and every out-of-order or malformed call is refused with its code
//! while the session keeps working.
#![allow(clippy::unwrap_used)]

use peluit_proto::day::Day;
use peluit_proto::envelope::open_report;
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution, Manifest, ManifestKey, Purpose, SignedManifest,
};
use peluit_proto::seal::open_padded;
use peluit_web::{Op, Session, WebError};
use serde_json::{Value, json};

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
    let manifest = Manifest {
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
    };
    let signed = manifest.sign(&manifest_key);
    Desk {
        seal,
        escrow,
        manifest_key,
        signed,
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
    assert!(Op::from_code(0).is_none() && Op::from_code(14).is_none());
}
