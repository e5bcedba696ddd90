//! The whole story of issue 5 against a real server on loopback: key ceremony → manifest
//! → server → a report with attachments sealed by proto → courier pull → desk import →
//! the case folder holds exactly the report and its files → reply and status → courier
//! push → the reporter's mailbox yields them, signatures verified. Also: a file sealed
//! by the Go `age` CLI through the bring-your-own-ciphertext form opens on the desk (a
//! large one streamed, a damaged one leaving nothing), and a forged reply signature is
//! refused with nothing stored.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser as _;
use peluit_proto::auth::{Challenge, respond};
use peluit_proto::bundle::{BundleHeader, BundleReader, BundleWriter, FrameMeta};
use peluit_proto::envelope::AttachmentRef;
use peluit_proto::ids::InstitutionId;
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_proto::receipt::ReporterKeys;
use peluit_proto::reply::{ReplyKind, SealedReply, Status, open_reply_with_manifest};
use peluit_server::config::{Institution, Limits};
use peluit_server::state::today;
use peluit_server::tokens::IssuedToken;
use peluit_store::{CiphertextStore, ManifestBytes, SledStore, TokenHash};
use serde_json::{Value, json};

const INSTITUTION: &str = "itjen-uji";
const PASS: &str = "kuda hijau makan rumput pagi";
const POW_BITS: u8 = 6;

mod common;

/// Fields drop in order: the server stops before its folder is removed.
struct Story {
    _server: common::Server,
    dir: tempfile::TempDir,
    base: String,
    token_file: PathBuf,
    stick: PathBuf,
    manifest: VerifiedManifest,
    http: reqwest::blocking::Client,
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl Story {
    fn desk(
        &self,
        args: &[&str],
    ) -> Result<peluit_investigator::cli::Output, peluit_investigator::DeskError> {
        let root = self.dir.path();
        let mut argv = vec![
            "peluit-investigator".to_owned(),
            "--desk".into(),
            path(&root.join("desk")),
            "--passphrase-file".into(),
            path(&root.join("pass")),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        peluit_investigator::cli::run(&peluit_investigator::cli::Cli::try_parse_from(argv).unwrap())
    }

    fn courier(
        &self,
        args: &[&str],
    ) -> Result<peluit_courier::cli::Output, peluit_courier::CourierError> {
        let mut argv = vec!["peluit-courier".to_owned()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv.extend([
            "--server".into(),
            self.base.clone(),
            "--institution".into(),
            INSTITUTION.into(),
            "--token-file".into(),
            path(&self.token_file),
        ]);
        peluit_courier::cli::run(&peluit_courier::cli::Cli::try_parse_from(argv).unwrap())
    }

    fn api(&self, rest: &str) -> String {
        format!("{}/api/v1/institutions/{INSTITUTION}{rest}", self.base)
    }

    /// Seals and uploads one attachment like the page; returns its reference.
    fn upload(&self, name: &str, media_type: &str, content: &[u8]) -> AttachmentRef {
        common::upload_attachment(
            &self.http,
            &self.api(""),
            &self.manifest,
            name,
            media_type,
            content,
        )
    }

    /// Submits a report like the page; returns the case id and the reporter's keys.
    fn submit(&self, text: &str, files: &[(&str, &str, &[u8])]) -> (String, ReporterKeys) {
        let refs: Vec<AttachmentRef> = files.iter().map(|(n, m, c)| self.upload(n, m, c)).collect();
        common::submit_report(
            &self.http,
            &self.api(""),
            &self.manifest,
            text,
            refs,
            POW_BITS,
        )
    }

    /// What the reporter's page sees in the mailbox: every reply, opened and verified.
    fn mailbox(&self, reporter: &ReporterKeys) -> Vec<(u32, ReplyKind, String)> {
        let challenge = self
            .http
            .post(self.api("/mailbox/challenges"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let challenge = Challenge::from_json(&challenge).unwrap();
        let response = respond(&challenge, reporter.mailbox_key());
        let session: Value = self
            .http
            .post(self.api("/mailbox/sessions"))
            .body(response.to_json())
            .send()
            .unwrap()
            .json()
            .unwrap();
        let auth = format!("Mailbox {}", session["session"].as_str().unwrap());
        let list: Value = self
            .http
            .get(self.api("/mailbox/messages"))
            .header("authorization", &auth)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let mut out = Vec::new();
        for message in list["messages"].as_array().unwrap() {
            assert_eq!(message["kind"], "reply");
            let bytes = self
                .http
                .get(self.api(&format!("/mailbox/messages/{}", message["seq"])))
                .header("authorization", &auth)
                .send()
                .unwrap()
                .bytes()
                .unwrap();
            let sealed = SealedReply::from_json(&bytes).unwrap();
            let reply =
                open_reply_with_manifest(&sealed, reporter.reply_identity(), &self.manifest)
                    .unwrap();
            out.push((reply.seq, reply.kind, reply.text.clone()));
        }
        out
    }
}

/// Key ceremony on the desk, then a real server on a loopback port serving its manifest.
fn start() -> Story {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    std::fs::write(root.join("pass"), PASS).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let desk = |args: &[&str]| {
        let mut argv = vec![
            "peluit-investigator".to_owned(),
            "--desk".into(),
            path(&root.join("desk")),
            "--passphrase-file".into(),
            path(&root.join("pass")),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        peluit_investigator::cli::run(&peluit_investigator::cli::Cli::try_parse_from(argv).unwrap())
            .unwrap()
    };
    let key = desk(&[
        "keygen",
        "manifest-key",
        "--out",
        &path(&root.join("manifest.key")),
    ]);
    let public = key.json["fingerprint"]["public"]
        .as_str()
        .unwrap()
        .to_owned();
    desk(&[
        "init",
        "--institution",
        INSTITUTION,
        "--manifest-key",
        &public,
    ]);
    desk(&["keygen", "investigator", "--holder", "investigator:ani"]);
    desk(&["keygen", "escrow", "--out", &path(&root.join("escrow.key"))]);
    desk(&[
        "manifest",
        "new",
        "--institution",
        INSTITUTION,
        "--name",
        "Inspektorat Uji",
        "--origin",
        &base,
        "--keys",
        &path(&root.join("desk/keys/investigator.key.public.json")),
        "--keys",
        &path(&root.join("escrow.key.public.json")),
        "--out",
        &path(&root.join("unsigned.json")),
    ]);
    desk(&[
        "manifest",
        "sign",
        &path(&root.join("unsigned.json")),
        "--key",
        &path(&root.join("manifest.key")),
        "--out",
        &path(&root.join("manifest.json")),
    ]);
    desk(&["manifest", "install", &path(&root.join("manifest.json"))]);
    let signed =
        SignedManifest::from_json(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let manifest_key = public.parse().unwrap();
    let mut policy = VerifyPolicy::new(manifest_key, today());
    policy.origin = Some(base.clone());
    let manifest = signed.verify(&policy).unwrap();

    // The server, with the manifest published and one investigator token.
    let id: InstitutionId = INSTITUTION.parse().unwrap();
    let store = Arc::new(SledStore::open(root.join("server/store")).unwrap());
    store
        .put_manifest(&id, 1, &ManifestBytes::new(signed.to_json()))
        .unwrap();
    let token = IssuedToken::generate();
    store
        .put_token_hash(&id, TokenHash::from_bytes(token.hash()), "desk", today())
        .unwrap();
    let token_file = root.join("token");
    std::fs::write(&token_file, token.expose_secret()).unwrap();
    let spool = root.join("server/spool");
    std::fs::create_dir_all(&spool).unwrap();
    let limits = Limits {
        pow_bits: POW_BITS,
        ..Limits::default()
    };
    let institutions = vec![Institution {
        id,
        name: "Inspektorat Uji".into(),
        manifest_key,
    }];
    let server = common::Server::start(listener, store, institutions, limits, spool);
    let stick = root.join("stick");
    std::fs::create_dir_all(&stick).unwrap();
    Story {
        _server: server,
        dir,
        base,
        token_file,
        stick,
        manifest,
        http: reqwest::blocking::Client::new(),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn report_to_reply_through_server_courier_and_desk() {
    let story = start();
    let video: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (case, reporter) = story.submit(
        "Pejabat pengadaan meminta uang pelicin.",
        &[
            ("rekaman.mp4", "video/mp4", &video),
            (".catatan.txt", "text/plain", b"catatan"),
        ],
    );

    // Courier: everything new, verified, onto the stick; a second pull has nothing new.
    let pulled = story
        .courier(&["pull", "--out", &path(&story.stick)])
        .unwrap();
    let bundle = pulled.json["pull"]["bundle"].as_str().unwrap().to_owned();
    assert_eq!(pulled.json["pull"]["cases"], 1);
    let again = story
        .courier(&["pull", "--out", &path(&story.stick)])
        .unwrap();
    assert!(again.json["pull"]["bundle"].is_null(), "{}", again.json);

    // Desk: import; the case folder holds exactly the report and its files.
    let imported = story.desk(&["import", &bundle]).unwrap();
    assert!(!imported.partial, "{}", imported.text);
    let case_dir = story.dir.path().join("desk/cases").join(&case);
    assert_eq!(
        files_in(&case_dir),
        [
            "attachments",
            "case.json",
            "index.html",
            "messages",
            "report.txt"
        ]
    );
    assert_eq!(
        files_in(&case_dir.join("attachments")),
        ["catatan.txt", "rekaman.mp4"]
    );
    assert_eq!(
        std::fs::read(case_dir.join("attachments/rekaman.mp4")).unwrap(),
        video
    );
    assert_eq!(
        std::fs::read(case_dir.join("attachments/catatan.txt")).unwrap(),
        b"catatan"
    );
    let report = std::fs::read_to_string(case_dir.join("report.txt")).unwrap();
    assert!(report.contains("Pejabat pengadaan meminta uang pelicin."));
    assert!(report.contains("Suap / Bribery"));

    // Reply and status, bundled, pushed; the reporter's page reads them.
    let reply_text = story.dir.path().join("reply.txt");
    std::fs::write(&reply_text, "Terima kasih atas laporan Anda.").unwrap();
    story
        .desk(&["reply", &case, "--file", &path(&reply_text)])
        .unwrap();
    story
        .desk(&[
            "status",
            &case,
            "in-review",
            "--message",
            "Sedang ditelaah.",
        ])
        .unwrap();
    let reply_bundle = story.stick.join("reply-1.bundle");
    story
        .desk(&["bundle", "--out", &path(&reply_bundle)])
        .unwrap();
    let pushed = story.courier(&["push", &path(&reply_bundle)]).unwrap();
    assert_eq!(pushed.json["push"]["replies"], 2);
    assert_eq!(
        story.mailbox(&reporter),
        vec![
            (
                0,
                ReplyKind::Message,
                "Terima kasih atas laporan Anda.".to_owned()
            ),
            (
                1,
                ReplyKind::Status(Status::InReview),
                "Sedang ditelaah.".to_owned()
            ),
        ]
    );
    // Pushing the same bundle again stores nothing twice.
    story.courier(&["push", &path(&reply_bundle)]).unwrap();
    assert_eq!(story.mailbox(&reporter).len(), 2);
}

#[test]
fn a_forged_reply_signature_is_refused_and_nothing_is_stored() {
    let story = start();
    let (case, reporter) = story.submit("Laporan singkat.", &[]);
    let pulled = story
        .courier(&["pull", "--out", &path(&story.stick)])
        .unwrap();
    let exported = PathBuf::from(pulled.json["pull"]["bundle"].as_str().unwrap());
    // A stick copy cut short or with a flipped byte is refused whole: nothing written.
    let bytes = std::fs::read(&exported).unwrap();
    let cut = story.stick.join("cut.bundle");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        story.desk(&["import", &path(&cut)]).unwrap_err().code,
        "incomplete-bundle"
    );
    let mut flipped_bytes = bytes.clone();
    let at = flipped_bytes.len() - 100;
    flipped_bytes[at] ^= 0x20;
    let flipped = story.stick.join("flipped.bundle");
    std::fs::write(&flipped, &flipped_bytes).unwrap();
    assert_eq!(
        story.desk(&["import", &path(&flipped)]).unwrap_err().code,
        "damaged-bundle"
    );
    assert!(files_in(&story.dir.path().join("desk/cases")).is_empty());
    story.desk(&["import", &path(&exported)]).unwrap();
    story.desk(&["status", &case, "received"]).unwrap();
    let genuine = story.stick.join("genuine.bundle");
    story.desk(&["bundle", "--out", &path(&genuine)]).unwrap();
    // Re-sign nothing: flip one byte of the signature inside the reply document.
    let mut reader = BundleReader::new(std::fs::File::open(&genuine).unwrap()).unwrap();
    let header: BundleHeader = reader.header().clone();
    let mut frame = reader.next_frame().unwrap().unwrap();
    let json = frame.read_payload_to_end(1 << 25).unwrap();
    let text = String::from_utf8(json).unwrap();
    let at = text.find("\"signature\":\"").unwrap() + "\"signature\":\"".len();
    let first = if text[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let forged_text = format!("{}{first}{}", &text[..at], &text[at + 1..]);
    let forged_json = SealedReply::from_json(forged_text.as_bytes())
        .unwrap()
        .to_json();
    let forged = story.stick.join("forged.bundle");
    let mut writer = BundleWriter::new(std::fs::File::create(&forged).unwrap(), &header).unwrap();
    writer.write_frame(&FrameMeta::Reply, &forged_json).unwrap();
    writer.finish().unwrap();
    let refused = story.courier(&["push", &path(&forged)]).unwrap_err();
    assert_eq!(refused.code, "refused");
    assert!(
        refused.what.contains("bad_signature") || refused.what.contains("400"),
        "{}",
        refused.what
    );
    assert!(story.mailbox(&reporter).is_empty(), "nothing stored");
    // A desk bundle of the wrong kind is refused by the courier before upload.
    let export = story
        .courier(&["push", pulled.json["pull"]["bundle"].as_str().unwrap()])
        .unwrap_err();
    assert_eq!(export.code, "wrong-kind");
}

/// Seals `plain` with the Go `age` CLI to every recipient of the story's manifest, as a
/// reporter following the form's instructions does. Fails, not skips, without `age`:
/// `./tests/run.sh` installs it.
fn seal_with_go_age(story: &Story, plain: &Path) -> PathBuf {
    let sealed = plain.with_extension("age");
    let mut age = std::process::Command::new("age");
    age.arg("-o").arg(&sealed);
    for r in story.manifest.seal_recipients() {
        age.arg("-r").arg(r.to_string());
    }
    let status = age.arg(plain).status().unwrap_or_else(|e| {
        panic!(
            "cannot run `age` ({e}): the Go age CLI is required for this story; run \
             ./tests/run.sh, which installs the Debian package `age`"
        )
    });
    assert!(status.success());
    sealed
}

/// Posts `sealed` through the no-script form; returns the case id the page shows.
fn submit_file(story: &Story, sealed: &[u8]) -> String {
    let part = reqwest::blocking::multipart::Part::bytes(sealed.to_vec()).file_name("laporan.age");
    let form = reqwest::blocking::multipart::Form::new()
        .text("institution", INSTITUTION)
        .part("file", part);
    let answer = story
        .http
        .post(format!("{}/submit-file", story.base))
        .multipart(form)
        .send()
        .unwrap();
    let status = answer.status();
    let page = answer.text().unwrap_or_default();
    assert_eq!(status, 201, "{page}");
    let at = page.find("id=\"case-id\">").unwrap() + "id=\"case-id\">".len();
    page[at..at + page[at..].find('<').unwrap()].to_owned()
}

/// Every name under `dir`, at any depth.
fn all_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(all_files_under(&path));
        }
        found.push(path);
    }
    found
}

#[test]
fn a_file_sealed_by_the_go_age_cli_opens_on_the_desk() {
    let story = start();
    let plain = story.dir.path().join("laporan.txt");
    std::fs::write(
        &plain,
        "Laporan dari alat age sendiri: kontrak fiktif di dinas.\n",
    )
    .unwrap();
    let sealed = seal_with_go_age(&story, &plain);
    submit_file(&story, &std::fs::read(&sealed).unwrap());
    let pulled = story
        .courier(&["pull", "--out", &path(&story.stick)])
        .unwrap();
    let imported = story
        .desk(&[
            "--json",
            "import",
            pulled.json["pull"]["bundle"].as_str().unwrap(),
        ])
        .unwrap();
    assert!(!imported.partial, "{}", imported.json);
    let case = imported.json["import"]["new_cases"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let case_dir = story.dir.path().join("desk/cases").join(&case);
    assert_eq!(
        std::fs::read(case_dir.join("attachments/submitted-file.txt")).unwrap(),
        std::fs::read(&plain).unwrap()
    );
    let err = story.desk(&["status", &case, "in-review"]).unwrap_err();
    assert_eq!(err.code, "no-reply-key");
}

/// A file over the form's 1 MiB envelope limit travels as the case's one attachment, an
/// unpadded age stream: the desk streams it into `submitted-file.bin` byte for byte. The
/// same file with a flipped byte, or without its final chunk, reaches the server (which
/// checks only the header) but leaves no case folder and no temporary file on the desk,
/// and does not stop the good case from importing.
#[test]
fn a_large_file_sealed_by_the_go_age_cli_streams_onto_the_desk() {
    let story = start();
    // Not UTF-8 and with no repeating pattern a misplaced chunk could hide in.
    let len = 3 * 1024 * 1024 + 12_345;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let original: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let plain = story.dir.path().join("rekaman.bin");
    std::fs::write(&plain, &original).unwrap();
    let sealed = std::fs::read(seal_with_go_age(&story, &plain)).unwrap();
    let good = submit_file(&story, &sealed);
    let mut flipped = sealed.clone();
    let at = sealed.len() / 2;
    flipped[at] ^= 0x01;
    let flipped = submit_file(&story, &flipped);
    // The final chunk holds the last 12,345 bytes and its 16-byte tag: what remains is
    // whole chunks only, so nothing but the missing end gives the cut away.
    let truncated = submit_file(&story, &sealed[..sealed.len() - (12_345 + 16)]);

    let pulled = story
        .courier(&["pull", "--out", &path(&story.stick)])
        .unwrap();
    let bundle = pulled.json["pull"]["bundle"].as_str().unwrap().to_owned();
    let imported = story.desk(&["--json", "import", &bundle]).unwrap();
    assert!(imported.partial, "{}", imported.json);
    assert_eq!(imported.json["import"]["new_cases"], json!([good]));
    let mut failed: Vec<(String, String)> = imported.json["import"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["case"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    failed.sort();
    let mut expected = vec![
        (flipped, "decryption-failed".to_owned()),
        (truncated, "decryption-failed".to_owned()),
    ];
    expected.sort();
    assert_eq!(failed, expected);

    let cases = story.dir.path().join("desk/cases");
    let case_dir = cases.join(&good);
    assert_eq!(
        files_in(&case_dir.join("attachments")),
        vec!["submitted-file.bin"]
    );
    assert!(std::fs::read(case_dir.join("attachments/submitted-file.bin")).unwrap() == original);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(case_dir.join("case.json")).unwrap()).unwrap();
    let file = &meta["attachments"][0];
    assert_eq!(file["source"], "own-ciphertext");
    assert_eq!(file["stored"], true);
    assert_eq!(file["size"], len);
    assert_ne!(file["sealed_sha256"], "");
    // The bad cases left nothing: no folder, no temporary folder or file anywhere.
    assert_eq!(files_in(&cases), vec![good.clone()]);
    let leftovers: Vec<_> = all_files_under(&cases)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Importing the bundle again changes nothing and adds no file.
    let before = all_files_under(&cases);
    let again = story.desk(&["--json", "import", &bundle]).unwrap();
    assert_eq!(again.json["import"]["already_imported"], true);
    assert_eq!(again.json["import"]["new_cases"], json!([]));
    assert_eq!(all_files_under(&cases), before);
    let err = story.desk(&["status", &good, "in-review"]).unwrap_err();
    assert_eq!(err.code, "no-reply-key");
}
