//! The desk end to end without a server: key ceremony, manifest, an export bundle built
//! with proto like the server builds it, import (twice), attachments arriving in a later
//! export, tampered and foreign input, replies and the reply bundle the reporter opens.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Range;
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

    /// Runs a command that must succeed.
    fn ok(&self, args: &[&str]) -> Output {
        self.cli(args)
            .unwrap_or_else(|e| panic!("{args:?} failed: {} ({})", e.what, e.code))
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
    let manifest_key = world.path("manifest.key");
    let key = world.ok(&["keygen", "manifest-key", "--out", &manifest_key]);
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
    world.ok(&[
        "init",
        "--institution",
        INSTITUTION,
        "--manifest-key",
        &public,
    ]);
    world.ok(&["keygen", "investigator", "--holder", "investigator:ani"]);
    world.ok(&["keygen", "escrow", "--out", &world.path("escrow.key")]);
    let investigator = world.desk.join("keys/investigator.key.public.json");
    let investigator = investigator.display().to_string();
    let escrow = world.path("escrow.key.public.json");
    let unsigned = world.path("manifest.unsigned.json");
    let signed = world.path("manifest.json");
    world.ok(&[
        "manifest",
        "new",
        "--institution",
        INSTITUTION,
        "--name",
        "Inspektorat Contoh",
        "--origin",
        "https://lapor.contoh.go.id",
        "--keys",
        &investigator,
        "--keys",
        &escrow,
        "--out",
        &unsigned,
    ]);
    world.ok(&[
        "manifest",
        "sign",
        &unsigned,
        "--key",
        &manifest_key,
        "--out",
        &signed,
    ]);
    world.ok(&["manifest", "install", &signed]);
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

/// A case's frame, announcing as many attachments as the case has.
fn case_frame(c: &SealedCase) -> (FrameMeta, &[u8]) {
    let meta = FrameMeta::Case {
        case: c.case,
        day: day(TODAY),
        mailbox_key: c.reporter.mailbox_public_key(),
        attachments: c.attachments.len() as u32,
    };
    (meta, &c.envelope)
}

/// The frame of a case's attachment `index`.
fn attachment_frame(c: &SealedCase, index: usize) -> (FrameMeta, &[u8]) {
    let (upload, sealed) = &c.attachments[index];
    let meta = FrameMeta::Attachment {
        case: c.case,
        upload: *upload,
        index: index as u32,
    };
    (meta, sealed)
}

/// An export bundle as the server writes one for the cursors `cursors`: the manifest if
/// given, then `frames`.
fn write_export(
    path: impl AsRef<Path>,
    institution: &str,
    cursors: Range<u64>,
    manifest: Option<&VerifiedManifest>,
    frames: &[(FrameMeta, &[u8])],
) {
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: institution.parse().unwrap(),
        created: day(TODAY),
        cursor_from: cursors.start,
        cursor_to: cursors.end,
    };
    let file = std::fs::File::create(path).unwrap();
    let mut writer = BundleWriter::new(file, &header).unwrap();
    if let Some(m) = manifest {
        writer
            .write_frame(&FrameMeta::Manifest, &m.signed().to_json())
            .unwrap();
    }
    for (meta, payload) in frames {
        writer.write_frame(meta, payload).unwrap();
    }
    writer.finish().unwrap();
}

/// An export bundle of whole cases, each followed by all its attachments.
fn export_bundle(
    path: &Path,
    institution: &str,
    manifest: Option<&VerifiedManifest>,
    cases: &[&SealedCase],
) {
    let frames: Vec<_> = cases
        .iter()
        .flat_map(|c| {
            std::iter::once(case_frame(c))
                .chain((0..c.attachments.len()).map(|index| attachment_frame(c, index)))
        })
        .collect();
    write_export(path, institution, 0..7, manifest, &frames);
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
    let (mut traversal_frame, envelope) = case_frame(&traversal);
    if let FrameMeta::Case { attachments, .. } = &mut traversal_frame {
        *attachments = 1;
    }
    let frames = [(traversal_frame, envelope), case_frame(&foreign)];
    write_export(&bundle, INSTITUTION, 0..2, None, &frames);
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
    let second = world.root.join("second.bundle");
    let follow_up_frame = FrameMeta::FollowUp {
        case: case.case,
        seq: 1,
    };
    let frames = [
        (follow_up_frame, sealed.as_bytes()),
        (FrameMeta::Delete { case: case.case }, &[][..]),
    ];
    write_export(&second, INSTITUTION, 7..9, None, &frames);
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

/// The files added, removed or changed between two snapshots of `root`, relative to it.
fn changed_files(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
    root: &Path,
) -> Vec<String> {
    let paths: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).collect();
    paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// The line of `text` that names `file`.
fn line_naming<'t>(text: &'t str, file: &str) -> &'t str {
    let mut lines = text.lines().filter(|l| l.contains(file));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no line names {file}"));
    assert!(lines.next().is_none(), "one line names {file}");
    line
}

const NOT_RECEIVED: &str = "belum diterima / not received yet";

/// The files under `dir`, relative to it.
fn files_of(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_keys()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

/// Writes the server's next export (cursors 7 to 9: the current manifest, then `frames`)
/// as `name`, and imports it; returns its path and what the import said.
fn import_next_export(
    world: &World,
    name: &str,
    frames: &[(FrameMeta, &[u8])],
) -> (String, Output) {
    let path = world.path(name);
    write_export(&path, INSTITUTION, 7..9, Some(&world.manifest()), frames);
    let out = world.ok(&["--json", "import", &path]);
    (path, out)
}

/// A next export whose one `frame` the desk must refuse with `code`, leaving the case in
/// `case_dir` as it was (no file, no temporary file).
fn assert_late_frame_refused(
    world: &World,
    name: &str,
    frame: (FrameMeta, &[u8]),
    code: &str,
    case_dir: &Path,
) {
    let before = snapshot(case_dir);
    let (_, out) = import_next_export(world, name, &[frame]);
    assert!(out.partial, "{}", out.json);
    assert_eq!(out.json["import"]["failures"][0]["code"], code);
    assert_eq!(
        out.json["import"]["failures"][0]["case"].as_str(),
        case_dir.file_name().unwrap().to_str()
    );
    assert_eq!(snapshot(case_dir), before, "{name} changed the case");
}

/// All a late attachment `file` of case `id` may change on the desk: the file, the case's
/// metadata and page, the desk's index and state.
fn late_attachment_changes(id: &str, file: &str) -> Vec<String> {
    vec![
        format!("cases/{id}/attachments/{file}"),
        format!("cases/{id}/case.json"),
        format!("cases/{id}/index.html"),
        "index.html".to_owned(),
        "state.json".to_owned(),
    ]
}

/// A case announces two attachments and its bundle carries only the first (the upload
/// was not finished when the server exported): the case is written with the report and
/// that file, and every view says the second has not arrived. The server's next export
/// carries it alone; importing that adds the file and drops the mark, nothing else, and
/// importing it again (or everything again from cursor 0) changes nothing.
#[test]
fn an_attachment_not_received_yet_arrives_with_the_next_export() {
    let world = ceremony();
    let manifest = world.manifest();
    let recording: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let case = report(
        &manifest,
        "Rapat pembagian fee proyek.",
        &[
            ("notulen.txt", "text/plain", b"notulen rapat 3 Maret"),
            ("rekaman.mp3", "audio/mpeg", &recording),
        ],
    );
    let id = case.case.to_string();
    let case_dir = world.desk.join("cases").join(&id);
    let first = world.path("first.bundle");
    let frames = [case_frame(&case), attachment_frame(&case, 0)];
    write_export(&first, INSTITUTION, 0..7, Some(&manifest), &frames);
    let out = world.ok(&["--json", "import", &first]);
    assert!(!out.partial, "{}", out.json);
    assert_eq!(out.json["import"]["new_cases"], serde_json::json!([id]));
    assert_eq!(out.json["import"]["new_attachments"], 1);

    // The folder holds the report and the first file, nothing for the second.
    assert_eq!(
        files_of(&case_dir),
        [
            "attachments/notulen.txt",
            "case.json",
            "index.html",
            "report.txt"
        ]
    );
    assert_eq!(
        std::fs::read(case_dir.join("attachments/notulen.txt")).unwrap(),
        b"notulen rapat 3 Maret"
    );
    let meta = read_json(&case_dir.join("case.json"));
    assert_eq!(meta["attachments"][0]["stored"], true);
    assert_eq!(meta["attachments"][1]["stored"], false);
    // The case's page, `cases show` (both in both languages), its JSON, and the lists.
    let page = read_text(&case_dir.join("index.html"));
    assert!(
        line_naming(&page, "rekaman.mp3").contains(NOT_RECEIVED),
        "{page}"
    );
    assert!(line_naming(&page, "notulen.txt").contains("attachments/notulen.txt"));
    assert_eq!(page.matches(NOT_RECEIVED).count(), 1);
    let shown = world.ok(&["cases", "show", &id]);
    assert!(line_naming(&shown.text, "rekaman.mp3").contains(NOT_RECEIVED));
    let notulen = case_dir.join("attachments/notulen.txt");
    assert!(line_naming(&shown.text, "notulen.txt").contains(&notulen.display().to_string()));
    let shown = world.ok(&["--json", "cases", "show", &id]);
    let files = &shown.json["attachments"];
    assert_eq!(files[0]["received"], true);
    assert_eq!(files[0]["file"], notulen.display().to_string());
    assert_eq!(files[1]["received"], false);
    assert_eq!(files[1]["file"], serde_json::Value::Null);
    assert_eq!(files[1]["size"], recording.len());
    let list = world.ok(&["--json", "cases", "list"]);
    assert_eq!(list.json["cases"][0]["attachments"], 2);
    assert_eq!(list.json["cases"][0]["attachments_not_received"], 1);
    let listed = world.ok(&["cases", "list"]);
    assert!(listed.text.contains(&format!("files 2 (1 {NOT_RECEIVED})")));
    let index = read_text(&world.desk.join("index.html"));
    assert!(
        index.contains(&format!("<td>2 (1 {NOT_RECEIVED})</td>")),
        "{index}"
    );

    // The server's next export carries the attachment alone (its case went in the last).
    let before = snapshot(&world.desk);
    let (later, out) = import_next_export(&world, "later.bundle", &[attachment_frame(&case, 1)]);
    assert!(!out.partial, "{}", out.json);
    assert_eq!(out.json["import"]["new_cases"], serde_json::json!([]));
    assert_eq!(out.json["import"]["new_attachments"], 1);
    assert_eq!(
        changed_files(&before, &snapshot(&world.desk), &world.desk),
        late_attachment_changes(&id, "rekaman.mp3")
    );
    assert!(std::fs::read(case_dir.join("attachments/rekaman.mp3")).unwrap() == recording);
    // In case.json only the mark changed; on the pages the mark became the file's path.
    let mut expected = meta;
    expected["attachments"][1]["stored"] = true.into();
    assert_eq!(read_json(&case_dir.join("case.json")), expected);
    assert_eq!(
        read_text(&case_dir.join("index.html")),
        page.replace(NOT_RECEIVED, "attachments/rekaman.mp3")
    );
    assert_eq!(
        read_text(&world.desk.join("index.html")),
        index.replace(&format!("<td>2 (1 {NOT_RECEIVED})</td>"), "<td>2</td>")
    );
    let shown = world.ok(&["--json", "cases", "show", &id]);
    assert_eq!(shown.json["attachments"][1]["received"], true);
    let shown = world.ok(&["cases", "show", &id]);
    assert!(!shown.text.contains(NOT_RECEIVED) && !shown.text.contains("not received"));
    let list = world.ok(&["--json", "cases", "list"]);
    assert_eq!(list.json["cases"][0]["attachments_not_received"], 0);

    // Again, the first bundle again, and everything again from cursor 0 (a courier whose
    // state was lost): nothing changes.
    let before = snapshot(&world.desk);
    let again = world.ok(&["--json", "import", &later]);
    assert_eq!(again.json["import"]["already_imported"], true);
    assert_eq!(again.json["import"]["new_attachments"], 0);
    world.ok(&["import", &first]);
    let whole = world.path("whole.bundle");
    let frames = [
        case_frame(&case),
        attachment_frame(&case, 0),
        attachment_frame(&case, 1),
    ];
    write_export(&whole, INSTITUTION, 0..9, Some(&manifest), &frames);
    let again = world.ok(&["--json", "import", &whole]);
    assert_eq!(again.json["import"]["known_cases"], 1);
    assert_eq!(again.json["import"]["new_attachments"], 0);
    assert_eq!(
        changed_files(&before, &snapshot(&world.desk), &world.desk),
        ["state.json"],
        "only the new bundle's digest is recorded"
    );
}

/// The late attachment is checked like any other: one that is not the file the report
/// pins, or one the report does not list, is refused and leaves the case as it was (no
/// file, no temporary file, the mark still there); the right one still arrives after.
#[test]
fn a_late_attachment_that_is_not_the_reported_one_changes_nothing() {
    let world = ceremony();
    let manifest = world.manifest();
    let case = report(
        &manifest,
        "Dua lampiran.",
        &[
            ("a.txt", "text/plain", b"satu"),
            ("b.txt", "text/plain", b"dua"),
        ],
    );
    let id = case.case.to_string();
    let first = world.path("first.bundle");
    let frames = [case_frame(&case), attachment_frame(&case, 0)];
    write_export(&first, INSTITUTION, 0..7, None, &frames);
    world.ok(&["import", &first]);
    let case_dir = world.desk.join("cases").join(&id);

    // Another file sealed to the same keys in its place, with every digest valid; the
    // right file under an upload the report does not list, or at another position.
    let (meta, sealed) = attachment_frame(&case, 1);
    let fake = seal_attachment(&manifest, b"palsu").0;
    assert_late_frame_refused(
        &world,
        "swapped.bundle",
        (meta, &fake),
        "integrity",
        &case_dir,
    );
    let at = |upload: UploadId, index: u32| FrameMeta::Attachment {
        case: case.case,
        upload,
        index,
    };
    let unlisted = (at(UploadId::random(), 1), sealed);
    assert_late_frame_refused(
        &world,
        "unlisted.bundle",
        unlisted,
        "unlisted-attachment",
        &case_dir,
    );
    let misplaced = (at(case.attachments[1].0, 0), sealed);
    assert_late_frame_refused(
        &world,
        "misplaced.bundle",
        misplaced,
        "attachment-mismatch",
        &case_dir,
    );
    let (_, out) = import_next_export(&world, "later.bundle", &[attachment_frame(&case, 1)]);
    assert!(!out.partial, "{}", out.json);
    assert_eq!(read_text(&case_dir.join("attachments/b.txt")), "dua");
}

/// A file too large for the bring-your-own form's envelope travels as the case's one
/// attachment, an unpadded age stream under an empty envelope the server seals. Exported
/// before its frame, the case shows the file as not received and its size as unknown; a
/// damaged or misplaced late frame is refused and changes nothing; the right one binds
/// the upload, size and digest, and importing it again changes nothing.
#[test]
fn a_bring_your_own_file_not_received_yet_arrives_with_the_next_export() {
    use sha2::{Digest as _, Sha256};
    let world = ceremony();
    let manifest = world.manifest();
    let recipients = manifest.seal_recipients();
    let content: Vec<u8> = (0..1_500_000u32).map(|i| (i % 239) as u8).collect();
    let sealed = peluit_proto::seal::seal(&content, &recipients).unwrap();
    let upload = UploadId::random();
    let own = SealedCase {
        case: CaseId::random(),
        envelope: peluit_proto::seal::seal_padded(b"", &recipients).unwrap(),
        attachments: vec![(upload, sealed.clone())],
        // The server makes a mailbox key nobody holds the secret half of.
        reporter: Receipt::generate().derive(&INSTITUTION.parse().unwrap()),
    };
    let id = own.case.to_string();
    let case_dir = world.desk.join("cases").join(&id);
    let first = world.path("first.bundle");
    write_export(&first, INSTITUTION, 0..7, None, &[case_frame(&own)]);
    let out = world.ok(&["--json", "import", &first]);
    assert!(!out.partial, "{}", out.json);
    assert_eq!(out.json["import"]["new_cases"], serde_json::json!([id]));
    assert_eq!(
        files_of(&case_dir),
        ["case.json", "index.html", "report.txt"]
    );
    let meta = read_json(&case_dir.join("case.json"));
    assert_eq!(meta["attachments"][0]["source"], "own-ciphertext");
    assert_eq!(meta["attachments"][0]["stored"], false);
    let page = read_text(&case_dir.join("index.html"));
    let line = line_naming(&page, "submitted-file.bin (");
    assert!(
        line.contains(NOT_RECEIVED) && line.contains("(? bytes,"),
        "{line}"
    );
    let shown = world.ok(&["cases", "show", &id]);
    let line = line_naming(&shown.text, "submitted-file.bin (");
    assert!(
        line.contains(NOT_RECEIVED) && line.contains("(? bytes,"),
        "{line}"
    );
    let shown = world.ok(&["--json", "cases", "show", &id]);
    assert_eq!(shown.json["attachments"][0]["received"], false);
    assert_eq!(
        shown.json["attachments"][0]["size"],
        serde_json::Value::Null
    );
    let list = world.ok(&["--json", "cases", "list"]);
    assert_eq!(list.json["cases"][0]["attachments_not_received"], 1);

    // A flipped byte (digests made valid again) or another position: refused, with no
    // file and no temporary file left in the case's folder.
    let mut flipped = sealed.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    let (meta_frame, _) = attachment_frame(&own, 0);
    let flipped = (meta_frame, &flipped[..]);
    assert_late_frame_refused(
        &world,
        "flipped.bundle",
        flipped,
        "decryption-failed",
        &case_dir,
    );
    let at = |index: u32| FrameMeta::Attachment {
        case: own.case,
        upload,
        index,
    };
    let misplaced = (at(1), &sealed[..]);
    assert_late_frame_refused(
        &world,
        "misplaced.bundle",
        misplaced,
        "attachment-mismatch",
        &case_dir,
    );

    let before = snapshot(&world.desk);
    let (later, out) = import_next_export(&world, "later.bundle", &[attachment_frame(&own, 0)]);
    assert!(!out.partial, "{}", out.json);
    assert_eq!(out.json["import"]["new_attachments"], 1);
    assert_eq!(
        changed_files(&before, &snapshot(&world.desk), &world.desk),
        late_attachment_changes(&id, "submitted-file.bin")
    );
    assert!(std::fs::read(case_dir.join("attachments/submitted-file.bin")).unwrap() == content);
    // Known only now: the upload that carried it, its size and the digest pass 1 read.
    let mut expected = meta;
    let entry = &mut expected["attachments"][0];
    entry["stored"] = true.into();
    entry["upload"] = upload.to_string().into();
    entry["size"] = content.len().into();
    entry["sealed_sha256"] = hex::encode(Sha256::digest(&sealed)).into();
    assert_eq!(read_json(&case_dir.join("case.json")), expected);
    assert_eq!(
        read_text(&case_dir.join("index.html")),
        page.replace(
            &format!(
                "(? bytes, application/octet-stream, own-ciphertext) &mdash; <code>{NOT_RECEIVED}"
            ),
            &format!(
                "({} bytes, application/octet-stream, own-ciphertext) &mdash; \
                 <code>attachments/submitted-file.bin",
                content.len()
            )
        )
    );
    let shown = world.ok(&["--json", "cases", "show", &id]);
    assert_eq!(shown.json["attachments"][0]["received"], true);
    assert_eq!(shown.json["attachments"][0]["size"], content.len());

    let before = snapshot(&world.desk);
    let again = world.ok(&["--json", "import", &later]);
    assert_eq!(again.json["import"]["new_attachments"], 0);
    assert_eq!(
        snapshot(&world.desk),
        before,
        "a second import changes nothing"
    );
}
