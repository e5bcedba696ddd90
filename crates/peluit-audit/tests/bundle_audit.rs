//! `peluit-audit bundle`: a genuine export and reply bundle pass with no secret key; a
//! damaged frame, a forged reply signature, a case sealed to an extra recipient and a
//! manifest signed by another key each fail, naming the frame.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Keys, audit, institution, seal_attachment, today};
use peluit_proto::bundle::{BundleHeader, BundleKind, BundleWriter, FrameMeta};
use peluit_proto::envelope::{Answer, Report, seal_report};
use peluit_proto::ids::{CaseId, UploadId};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::SignedManifest;
use peluit_proto::receipt::Receipt;
use peluit_proto::reply::{Reply, ReplyKind, SealedReply, seal_reply_with_manifest};
use peluit_proto::wordlist::Language;

struct Made {
    keys: Keys,
    manifest: SignedManifest,
    dir: tempfile::TempDir,
}

fn setup() -> Made {
    let keys = Keys::generate();
    let manifest = keys.manifest(
        3,
        &["https://lapor.example.go.id".into()],
        &keys.manifest_key,
    );
    Made {
        keys,
        manifest,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn header(kind: BundleKind) -> BundleHeader {
    BundleHeader {
        kind,
        institution: institution(),
        created: today(),
        cursor_from: 0,
        cursor_to: 3,
    }
}

/// An export bundle: the manifest, a case with one attachment, and a deletion.
fn export(made: &Made, path: &Path, extra_recipient: bool) -> CaseId {
    let verified = made.keys.verified(&made.manifest);
    let inst = institution();
    let reporter = Receipt::generate().derive(&inst);
    let (attachment, sealed_sha256) = seal_attachment(&verified, &vec![3u8; 150_000]);
    let upload = UploadId::random();
    let report = Report {
        institution: inst.clone(),
        language: Language::Id,
        date: today(),
        answers: vec![
            Answer::new("category", "suap"),
            Answer::new("what_happened", "Uang pelicin."),
        ],
        attachments: vec![peluit_proto::envelope::AttachmentRef {
            upload,
            name: "bukti.jpg".into(),
            media_type: "image/jpeg".into(),
            size: 150_000,
            sealed_sha256,
        }],
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };
    let envelope = if extra_recipient {
        let mut recipients = verified.seal_recipients();
        recipients.push(SealIdentity::generate().recipient());
        peluit_proto::seal::seal_padded(b"{\"report\":1}", &recipients).unwrap()
    } else {
        seal_report(&report, &verified).unwrap().into_bytes()
    };
    let case = CaseId::random();
    let mut writer = BundleWriter::new(
        std::fs::File::create(path).unwrap(),
        &header(BundleKind::Export),
    )
    .unwrap();
    writer
        .write_frame(&FrameMeta::Manifest, &made.manifest.to_json())
        .unwrap();
    writer
        .write_frame(
            &FrameMeta::Case {
                case,
                day: today(),
                mailbox_key: reporter.mailbox_public_key(),
                attachments: 1,
            },
            &envelope,
        )
        .unwrap();
    writer
        .write_frame(
            &FrameMeta::Attachment {
                case,
                upload,
                index: 0,
            },
            &attachment,
        )
        .unwrap();
    writer
        .write_frame(
            &FrameMeta::Delete {
                case: CaseId::random(),
            },
            &[],
        )
        .unwrap();
    writer.finish().unwrap();
    case
}

/// A reply bundle with one signed reply; `forge` flips a bit of its signature.
fn reply_bundle(made: &Made, path: &Path, forge: bool) {
    let verified = made.keys.verified(&made.manifest);
    let reporter = Receipt::generate().derive(&institution());
    let sealed = seal_reply_with_manifest(
        &Reply {
            case: CaseId::random(),
            seq: 0,
            date: today(),
            kind: ReplyKind::Message,
            text: "Laporan Anda sedang ditelaah.".into(),
            attachments: Vec::new(),
        },
        &reporter.reply_recipient(),
        &reporter.mailbox_public_key(),
        &verified,
        &made.keys.reply_keys[1],
    )
    .unwrap();
    let mut json = sealed.to_json();
    if forge {
        let text = String::from_utf8(json).unwrap();
        let at = text.find("\"signature\":\"").unwrap() + "\"signature\":\"".len();
        let swapped = if text[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        json = SealedReply::from_json(
            format!("{}{swapped}{}", &text[..at], &text[at + 1..]).as_bytes(),
        )
        .unwrap()
        .to_json();
    }
    let mut writer = BundleWriter::new(
        std::fs::File::create(path).unwrap(),
        &header(BundleKind::Reply),
    )
    .unwrap();
    writer.write_frame(&FrameMeta::Reply, &json).unwrap();
    writer.finish().unwrap();
}

fn frame_findings(report: &peluit_audit::cli::Report) -> Vec<(u64, String, String)> {
    report.json["bundle"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["place"]["index"].as_u64().unwrap_or(u64::MAX),
                f["place"]["frame"].as_str().unwrap_or("").to_owned(),
                f["why"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn genuine_export_and_reply_bundles_pass_without_a_secret_key() {
    let made = setup();
    let key = made.keys.manifest_key.verifying_key().to_string();
    let export_path = made.dir.path().join("export.bundle");
    export(&made, &export_path, false);
    let report = audit(&[
        "bundle",
        export_path.to_str().unwrap(),
        "--manifest-key",
        &key,
    ])
    .unwrap();
    assert!(report.clean, "{}", report.text);
    assert_eq!(report.json["bundle"]["frames"]["attachment"], 1);
    assert!(report.json["bundle"]["digest"].is_string());

    let manifest_file = made.dir.path().join("manifest.json");
    std::fs::write(&manifest_file, made.manifest.to_json()).unwrap();
    let reply_path = made.dir.path().join("reply.bundle");
    reply_bundle(&made, &reply_path, false);
    let report = audit(&[
        "bundle",
        reply_path.to_str().unwrap(),
        "--manifest-key",
        &key,
        "--manifest",
        manifest_file.to_str().unwrap(),
    ])
    .unwrap();
    assert!(report.clean, "{}", report.text);
}

#[test]
fn a_forged_reply_signature_fails_naming_the_frame() {
    let made = setup();
    let manifest_file = made.dir.path().join("manifest.json");
    std::fs::write(&manifest_file, made.manifest.to_json()).unwrap();
    let path = made.dir.path().join("forged.bundle");
    reply_bundle(&made, &path, true);
    let key = made.keys.manifest_key.verifying_key().to_string();
    let args = [
        "bundle",
        path.to_str().unwrap(),
        "--manifest-key",
        &key,
        "--manifest",
        manifest_file.to_str().unwrap(),
    ];
    let report = audit(&args).unwrap();
    assert!(!report.clean);
    let found = frame_findings(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1.as_str()), (1, "reply"));
    assert!(found[0].2.contains("does not verify"), "{}", found[0].2);
}

#[test]
fn a_damaged_byte_an_extra_recipient_and_a_foreign_manifest_key_each_fail() {
    let made = setup();
    let key = made.keys.manifest_key.verifying_key().to_string();

    let path = made.dir.path().join("damaged.bundle");
    export(&made, &path, false);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 40_000;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let report = audit(&["bundle", path.to_str().unwrap(), "--manifest-key", &key]).unwrap();
    let found = frame_findings(&report);
    assert!(
        found.iter().any(|(_, _, why)| why.contains("digest")),
        "{found:?}"
    );

    let path = made.dir.path().join("extra.bundle");
    export(&made, &path, true);
    let report = audit(&["bundle", path.to_str().unwrap(), "--manifest-key", &key]).unwrap();
    let found = frame_findings(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].0, found[0].1.as_str()), (2, "case"));
    assert!(
        found[0]
            .2
            .contains("4 X25519 stanzas; the manifest expects 3"),
        "{}",
        found[0].2
    );

    let other = SigningKey::generate().verifying_key().to_string();
    let path = made.dir.path().join("genuine.bundle");
    export(&made, &path, false);
    let report = audit(&["bundle", path.to_str().unwrap(), "--manifest-key", &other]).unwrap();
    let found = frame_findings(&report);
    assert_eq!(
        (found[0].0, found[0].1.as_str()),
        (1, "manifest"),
        "{found:?}"
    );
    assert!(
        found[0].2.contains("does not verify under the pinned key"),
        "{}",
        found[0].2
    );
}

#[test]
fn a_file_that_is_not_a_bundle_fails_and_a_missing_one_cannot_be_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.age");
    std::fs::write(&path, b"age-encryption.org/v1\n").unwrap();
    let report = audit(&["bundle", path.to_str().unwrap()]).unwrap();
    assert!(!report.clean);
    assert!(
        report.text.contains("not a Peluit bundle"),
        "{}",
        report.text
    );
    let error = audit(&["bundle", dir.path().join("none").to_str().unwrap()]).unwrap_err();
    assert_eq!(error.code, "io");
}
