//! The desk end to end without a server: key ceremony, manifest, an export bundle built
//! with proto like the server builds it, import (twice), tampered and foreign input,
//! replies and the reply bundle, which the reporter's keys open.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser as _;
use indicatif::ProgressBar;
use peluit_investigator::cli::{Cli, Output, run};
use peluit_investigator::desk::Desk;
use peluit_investigator::import::import_bundle;
use peluit_investigator::keyfile;
use peluit_investigator::secrets::Passphrase;
use peluit_proto::bundle::{BundleHeader, BundleKind, BundleReader, BundleWriter, FrameMeta};
use peluit_proto::day::Day;
use peluit_proto::envelope::{Answer, AttachmentRef, Report, seal_report};
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_proto::receipt::{Receipt, ReporterKeys};
use peluit_proto::reply::{ReplyKind, SealedReply, open_reply_with_manifest};
use peluit_proto::seal::StreamSealer;
use peluit_proto::wordlist::Language;
use zeroize::Zeroizing;

const INSTITUTION: &str = "itjen-contoh";
const TODAY: &str = "2026-03-14";
const PASS: &str = "kuda hijau makan rumput pagi";

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    desk: PathBuf,
    pass_file: PathBuf,
}

impl World {
    fn cli(&self, args: &[&str]) -> Result<Output, peluit_investigator::DeskError> {
        let mut argv = vec![
            "peluit-investigator".to_owned(),
            "--desk".into(),
            self.desk.display().to_string(),
            "--passphrase-file".into(),
            self.pass_file.display().to_string(),
            "--today".into(),
            TODAY.into(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        run(&Cli::try_parse_from(argv).unwrap())
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }

    fn manifest(&self) -> VerifiedManifest {
        let bytes = std::fs::read(self.root.join("manifest.json")).unwrap();
        let signed = SignedManifest::from_json(&bytes).unwrap();
        let key = Desk::open(&self.desk).unwrap().config().manifest_key;
        signed.verify(&VerifyPolicy::new(key, day(TODAY))).unwrap()
    }
}

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

/// Key ceremony and desk set-up through the command line, as an inspectorate would.
fn ceremony() -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let pass_file = root.join("pass.txt");
    std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    let world = World {
        root: root.clone(),
        desk: root.join("desk"),
        pass_file,
        _dir: dir,
    };
    let key = world
        .cli(&[
            "keygen",
            "manifest-key",
            "--out",
            &world.path("manifest.key"),
        ])
        .unwrap();
    let public = key.json["fingerprint"]["public"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        key.json["fingerprint"]["words_en"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        8
    );
    world
        .cli(&[
            "init",
            "--institution",
            INSTITUTION,
            "--manifest-key",
            &public,
        ])
        .unwrap();
    world
        .cli(&["keygen", "investigator", "--holder", "investigator:ani"])
        .unwrap();
    world
        .cli(&["keygen", "escrow", "--out", &world.path("escrow.key")])
        .unwrap();
    let investigator_public = world.desk.join("keys/investigator.key.public.json");
    world
        .cli(&[
            "manifest",
            "new",
            "--institution",
            INSTITUTION,
            "--name",
            "Inspektorat Contoh",
            "--origin",
            "https://lapor.contoh.go.id",
            "--keys",
            &investigator_public.display().to_string(),
            "--keys",
            &world.path("escrow.key.public.json"),
            "--out",
            &world.path("manifest.unsigned.json"),
        ])
        .unwrap();
    world
        .cli(&[
            "manifest",
            "sign",
            &world.path("manifest.unsigned.json"),
            "--key",
            &world.path("manifest.key"),
            "--out",
            &world.path("manifest.json"),
        ])
        .unwrap();
    world
        .cli(&["manifest", "install", &world.path("manifest.json")])
        .unwrap();
    world
}

struct SealedCase {
    case: CaseId,
    envelope: Vec<u8>,
    attachments: Vec<(UploadId, Vec<u8>)>,
    reporter: ReporterKeys,
}

fn seal_attachment(manifest: &VerifiedManifest, content: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let mut sealer = StreamSealer::new(&manifest.seal_recipients(), content.len() as u64).unwrap();
    let mut out = sealer.take_output();
    for chunk in content.chunks(65_536) {
        out.extend(sealer.push(chunk).unwrap());
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        out.extend(tail);
    }
    (out, sealer.sealed_sha256())
}

/// A report as the page seals it, with attachments `(name, media type, bytes)`.
fn report(manifest: &VerifiedManifest, text: &str, files: &[(&str, &str, &[u8])]) -> SealedCase {
    let institution: InstitutionId = INSTITUTION.parse().unwrap();
    let reporter = Receipt::generate().derive(&institution);
    let mut refs = Vec::new();
    let mut attachments = Vec::new();
    for (name, media_type, content) in files {
        let (sealed, sha) = seal_attachment(manifest, content);
        let upload = UploadId::random();
        refs.push(AttachmentRef {
            upload,
            name: (*name).to_owned(),
            media_type: (*media_type).to_owned(),
            size: content.len() as u64,
            sealed_sha256: sha,
        });
        attachments.push((upload, sealed));
    }
    let report = Report {
        institution,
        language: Language::Id,
        date: day(TODAY),
        answers: vec![
            Answer::new("category", "pengadaan"),
            Answer::new("what_happened", text),
        ],
        attachments: refs,
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };
    let envelope = seal_report(&report, manifest).unwrap().into_bytes();
    SealedCase {
        case: CaseId::random(),
        envelope,
        attachments,
        reporter,
    }
}

fn export_bundle(
    path: &Path,
    institution: &str,
    manifest: Option<&VerifiedManifest>,
    cases: &[&SealedCase],
) {
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: institution.parse().unwrap(),
        created: day(TODAY),
        cursor_from: 0,
        cursor_to: 7,
    };
    let file = std::fs::File::create(path).unwrap();
    let mut writer = BundleWriter::new(file, &header).unwrap();
    if let Some(m) = manifest {
        writer
            .write_frame(&FrameMeta::Manifest, &m.signed().to_json())
            .unwrap();
    }
    for c in cases {
        let meta = FrameMeta::Case {
            case: c.case,
            day: day(TODAY),
            mailbox_key: c.reporter.mailbox_public_key(),
            attachments: c.attachments.len() as u32,
        };
        writer.write_frame(&meta, &c.envelope).unwrap();
        for (index, (upload, sealed)) in c.attachments.iter().enumerate() {
            let meta = FrameMeta::Attachment {
                case: c.case,
                upload: *upload,
                index: index as u32,
            };
            writer.write_frame(&meta, sealed).unwrap();
        }
    }
    writer.finish().unwrap();
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_desk_story() {
    let world = ceremony();
    let manifest = world.manifest();
    let photo: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let good = report(
        &manifest,
        "Kepala bagian meminta 10% dari nilai kontrak.",
        &[
            ("kontrak.pdf", "application/pdf", b"%PDF-1.7 kontrak"),
            ("CON.jpg", "image/jpeg", &photo),
        ],
    );
    let bundle = world.root.join("export.bundle");
    export_bundle(&bundle, INSTITUTION, Some(&manifest), &[&good]);

    let out = world
        .cli(&["import", &bundle.display().to_string()])
        .unwrap();
    assert!(!out.partial, "{}", out.text);
    let case_dir = world.desk.join("cases").join(good.case.to_string());
    let report_text = std::fs::read_to_string(case_dir.join("report.txt")).unwrap();
    assert!(report_text.contains("Kepala bagian meminta 10% dari nilai kontrak."));
    assert!(report_text.contains("Procurement fraud"));
    assert_eq!(
        std::fs::read(case_dir.join("attachments/kontrak.pdf")).unwrap(),
        b"%PDF-1.7 kontrak"
    );
    // A reserved device name is renamed, the bytes are the reporter's.
    assert_eq!(
        std::fs::read(case_dir.join("attachments/_CON.jpg")).unwrap(),
        photo
    );
    let files: Vec<_> = std::fs::read_dir(case_dir.join("attachments"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 2, "exactly the report's files");
    let index = std::fs::read_to_string(world.desk.join("index.html")).unwrap();
    assert!(index.contains(&good.case.to_string()));
    assert!(index.contains("Kecurangan pengadaan barang/jasa / Procurement fraud"));
    assert!(
        !index.to_lowercase().contains("<script")
            && !index.contains("://")
            && !index.contains("src=")
    );
    let shown = world
        .cli(&["cases", "show", &good.case.to_string()[..8]])
        .unwrap();
    assert!(
        shown.text.contains("Dangerzone"),
        "active-content warning for the PDF"
    );
    assert!(
        shown.text.contains("mat2"),
        "metadata warning for the photo"
    );

    // Importing the same bundle again changes nothing.
    let before = snapshot(&world.desk);
    let again = world
        .cli(&["import", &bundle.display().to_string()])
        .unwrap();
    assert_eq!(again.json["import"]["already_imported"], true);
    assert_eq!(snapshot(&world.desk), before);

    // Reply and status, gathered into a reply bundle that the reporter's keys open.
    let reply_file = world.root.join("reply.txt");
    std::fs::write(&reply_file, "Terima kasih. Mohon kirim salinan kontrak.\n").unwrap();
    world
        .cli(&[
            "reply",
            &good.case.to_string(),
            "--file",
            &reply_file.display().to_string(),
        ])
        .unwrap();
    world
        .cli(&[
            "status",
            &good.case.to_string(),
            "in-review",
            "--message",
            "Sedang ditelaah.",
        ])
        .unwrap();
    let reply_bundle = world.root.join("reply.bundle");
    world
        .cli(&["bundle", "--out", &reply_bundle.display().to_string()])
        .unwrap();
    let mut reader = BundleReader::new(std::fs::File::open(&reply_bundle).unwrap()).unwrap();
    assert_eq!(reader.header().kind, BundleKind::Reply);
    let mut opened = Vec::new();
    while let Some(mut frame) = reader.next_frame().unwrap() {
        assert_eq!(frame.meta(), &FrameMeta::Reply);
        let sealed = SealedReply::from_json(&frame.read_payload_to_end(1 << 25).unwrap()).unwrap();
        assert_eq!(sealed.mailbox_key(), &good.reporter.mailbox_public_key());
        let reply =
            open_reply_with_manifest(&sealed, good.reporter.reply_identity(), &manifest).unwrap();
        opened.push((reply.seq, reply.kind, reply.text.clone()));
    }
    assert_eq!(
        opened,
        vec![
            (
                0,
                ReplyKind::Message,
                "Terima kasih. Mohon kirim salinan kontrak.".to_owned()
            ),
            (
                1,
                ReplyKind::Status(peluit_proto::reply::Status::InReview),
                "Sedang ditelaah.".to_owned()
            ),
        ]
    );
    let list = world.cli(&["--json", "cases", "list"]).unwrap();
    assert_eq!(list.json["cases"][0]["status"], "in-review");
    // The outbox is empty now.
    let err = world
        .cli(&["bundle", "--out", &world.path("again.bundle")])
        .unwrap_err();
    assert_eq!(err.code, "nothing-to-send");
}

#[test]
fn bad_inputs_write_nothing_and_affect_nothing_else() {
    let world = ceremony();
    let manifest = world.manifest();
    let good = report(
        &manifest,
        "Laporan yang baik.",
        &[("a.txt", "text/plain", b"isi")],
    );
    let mut tampered = report(
        &manifest,
        "Lampiran diganti.",
        &[("b.txt", "text/plain", b"asli")],
    );
    // The server swaps the attachment for another sealed to the same keys.
    tampered.attachments[0].1 = seal_attachment(&manifest, b"palsu").0;
    let bundle = world.root.join("mixed.bundle");
    export_bundle(&bundle, INSTITUTION, None, &[&tampered, &good]);
    let out = world
        .cli(&["import", &bundle.display().to_string()])
        .unwrap();
    assert!(out.partial);
    assert_eq!(out.json["import"]["failures"][0]["code"], "integrity");
    assert!(
        world
            .desk
            .join("cases")
            .join(good.case.to_string())
            .join("report.txt")
            .exists()
    );
    assert!(
        !world
            .desk
            .join("cases")
            .join(tampered.case.to_string())
            .exists()
    );
    let leftovers: Vec<_> = std::fs::read_dir(world.desk.join("cases"))
        .unwrap()
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary folder and no tampered case"
    );

    let before = snapshot(&world.desk);
    // A bundle cut short, a flipped byte, another institution's bundle.
    let other = report(&manifest, "Kasus lain.", &[]);
    let whole = world.root.join("whole.bundle");
    export_bundle(&whole, INSTITUTION, None, &[&other]);
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(world.root.join("cut.bundle"), &bytes[..bytes.len() - 40]).unwrap();
    let err = world
        .cli(&["import", &world.path("cut.bundle")])
        .unwrap_err();
    assert_eq!(err.code, "incomplete-bundle");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    std::fs::write(world.root.join("flipped.bundle"), &flipped).unwrap();
    let err = world
        .cli(&["import", &world.path("flipped.bundle")])
        .unwrap_err();
    assert_eq!(err.code, "damaged-bundle");
    export_bundle(
        &world.root.join("foreign.bundle"),
        "itjen-lain",
        None,
        &[&other],
    );
    let err = world
        .cli(&["import", &world.path("foreign.bundle")])
        .unwrap_err();
    assert_eq!(err.code, "wrong-institution");
    // Wrong passphrase.
    std::fs::write(&world.pass_file, "salah sekali passphrase ini").unwrap();
    let err = world
        .cli(&["import", &whole.display().to_string()])
        .unwrap_err();
    assert_eq!(err.code, "wrong-passphrase");
    assert_eq!(
        snapshot(&world.desk),
        before,
        "nothing written by any of these"
    );
}

#[test]
fn a_case_sealed_to_other_keys_or_with_a_traversal_name_is_refused() {
    let world = ceremony();
    let manifest = world.manifest();
    // A report sealed without the desk's key (a stranger's manifest-shaped recipients).
    let stranger = peluit_proto::keys::SealIdentity::generate();
    let reporter = Receipt::generate().derive(&INSTITUTION.parse().unwrap());
    let json = format!(
        "{{\"version\":1,\"type\":\"report\",\"institution\":\"{INSTITUTION}\",\"language\":\"id\",\
         \"date\":\"{TODAY}\",\"answers\":[{{\"question\":\"category\",\"value\":\"suap\"}},\
         {{\"question\":\"what_happened\",\"value\":\"x\"}}],\"attachments\":[{{\"upload\":\"{}\",\
         \"name\":\"../../.bashrc\",\"media_type\":\"text/plain\",\"size\":1,\"sealed_sha256\":\"{}\"}}],\
         \"reply_to\":\"{}\",\"mailbox\":\"{}\"}}",
        UploadId::random(),
        "00".repeat(32),
        reporter.reply_recipient(),
        reporter.mailbox_public_key()
    );
    let traversal = SealedCase {
        case: CaseId::random(),
        envelope: peluit_proto::seal::seal_padded(json.as_bytes(), &manifest.seal_recipients())
            .unwrap(),
        attachments: vec![],
        reporter,
    };
    let mut foreign = report(&manifest, "Untuk kunci lain.", &[]);
    foreign.envelope = peluit_proto::seal::seal_padded(b"{}", &[stranger.recipient()]).unwrap();
    // The frame says one attachment for the traversal case, as the envelope lists.
    let bundle = world.root.join("bad.bundle");
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: INSTITUTION.parse().unwrap(),
        created: day(TODAY),
        cursor_from: 0,
        cursor_to: 2,
    };
    let mut writer = BundleWriter::new(std::fs::File::create(&bundle).unwrap(), &header).unwrap();
    for (c, n) in [(&traversal, 1), (&foreign, 0)] {
        let meta = FrameMeta::Case {
            case: c.case,
            day: day(TODAY),
            mailbox_key: c.reporter.mailbox_public_key(),
            attachments: n,
        };
        writer.write_frame(&meta, &c.envelope).unwrap();
    }
    writer.finish().unwrap();
    let out = world
        .cli(&["import", &bundle.display().to_string()])
        .unwrap();
    assert!(out.partial);
    let codes: Vec<_> = out.json["import"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, vec!["report-refused", "not-for-this-desk"]);
    assert_eq!(
        std::fs::read_dir(world.desk.join("cases")).unwrap().count(),
        0
    );
    assert!(!world.root.join(".bashrc").exists());
}

#[test]
fn the_escrow_key_opens_cases_too() {
    let world = ceremony();
    let manifest = world.manifest();
    let case = report(&manifest, "Dibuka dengan kunci escrow.", &[]);
    let bundle = world.root.join("e.bundle");
    export_bundle(&bundle, INSTITUTION, None, &[&case]);
    let desk = Desk::open(&world.desk).unwrap();
    let escrow = keyfile::read_escrow(
        &world.root.join("escrow.key"),
        &Passphrase::from_text(Zeroizing::new(PASS.to_owned())),
    )
    .unwrap();
    let outcome = import_bundle(
        &desk,
        &[escrow],
        &bundle,
        day(TODAY),
        &ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(outcome.new_cases, vec![case.case]);
}

#[test]
fn follow_ups_and_withdrawals_reach_existing_cases() {
    use peluit_proto::envelope::{FollowUp, seal_follow_up};
    let world = ceremony();
    let manifest = world.manifest();
    let case = report(&manifest, "Laporan awal.", &[]);
    let first = world.root.join("first.bundle");
    export_bundle(&first, INSTITUTION, None, &[&case]);
    world
        .cli(&["import", &first.display().to_string()])
        .unwrap();

    let follow_up = FollowUp {
        institution: INSTITUTION.parse().unwrap(),
        date: day(TODAY),
        text: "Bukti tambahan: rapat tanggal 3 Maret.".into(),
        attachments: vec![],
    };
    let sealed = seal_follow_up(&follow_up, &manifest).unwrap();
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: INSTITUTION.parse().unwrap(),
        created: day(TODAY),
        cursor_from: 7,
        cursor_to: 9,
    };
    let second = world.root.join("second.bundle");
    let mut writer = BundleWriter::new(std::fs::File::create(&second).unwrap(), &header).unwrap();
    writer
        .write_frame(
            &FrameMeta::FollowUp {
                case: case.case,
                seq: 1,
            },
            sealed.as_bytes(),
        )
        .unwrap();
    writer
        .write_frame(&FrameMeta::Delete { case: case.case }, &[])
        .unwrap();
    writer.finish().unwrap();
    let out = world
        .cli(&["--json", "import", &second.display().to_string()])
        .unwrap();
    assert_eq!(out.json["import"]["new_follow_ups"], 1, "{}", out.json);
    assert_eq!(out.json["import"]["withdrawn"][0], case.case.to_string());
    let list = world.cli(&["--json", "cases", "list"]).unwrap();
    assert_eq!(list.json["cases"][0]["unread_follow_ups"], 1);
    assert_eq!(list.json["cases"][0]["withdrawn"], true);
    let before = snapshot(&world.desk);
    world
        .cli(&["import", &second.display().to_string()])
        .unwrap();
    assert_eq!(
        snapshot(&world.desk),
        before,
        "a second import changes nothing"
    );
    let shown = world
        .cli(&["cases", "show", &case.case.to_string()])
        .unwrap();
    assert!(
        shown
            .text
            .contains("Bukti tambahan: rapat tanggal 3 Maret.")
    );
    let list = world.cli(&["--json", "cases", "list"]).unwrap();
    assert_eq!(
        list.json["cases"][0]["unread_follow_ups"], 0,
        "shown means read"
    );
    let err = world
        .cli(&["status", &case.case.to_string(), "closed"])
        .unwrap_err();
    assert_eq!(err.code, "case-withdrawn");
}
