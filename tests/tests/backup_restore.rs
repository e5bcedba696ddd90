//! Backup and restore (docs/operating.md#backup): cases submitted to a real server are
//! copied by `deploy/backup.sh`, the original store is lost, `deploy/restore.sh` brings the
//! copy back in a new folder, and a server started on it exports every case, which opens
//! with the desk keys to exactly what was sent. Bad inputs change nothing.

#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use peluit_proto::bundle::{BundleReader, FrameMeta};
use peluit_proto::envelope::{AttachmentRef, Report, open_report};
use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{VerifiedManifest, VerifyPolicy};
use peluit_proto::seal::StreamOpener;
use peluit_proto::sealed::SealedMessage;
use peluit_server::config::{Institution, Limits};
use peluit_server::state::today;
use peluit_server::tokens::IssuedToken;
use peluit_store::{CiphertextStore, ManifestBytes, SledStore, TokenHash};

mod common;

const INSTITUTION: &str = "itjen-cadangan";
const POW_BITS: u8 = 6;

/// What the desk holds and what a deployment's configuration names.
struct Inspectorate {
    desk: SealIdentity,
    manifest_key: SigningKey,
    signed_manifest: Vec<u8>,
    manifest: VerifiedManifest,
    token: String,
}

/// A case as the desk reads it: id, the report's text, its attachments (name, plaintext).
type OpenedCase = (CaseId, String, Vec<(String, Vec<u8>)>);

/// One case as the reporter sent it.
struct Sent {
    text: String,
    files: Vec<(String, Vec<u8>)>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn script(name: &str, args: &[&str]) -> Output {
    Command::new(repo().join("deploy").join(name))
        .args(args)
        .output()
        .unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn inspectorate() -> Inspectorate {
    let (desk, escrow) = (SealIdentity::generate(), SealIdentity::generate());
    let (reply_key, manifest_key) = (SigningKey::generate(), SigningKey::generate());
    // Signed for the public addresses; the servers in this story listen on loopback ports
    // that change with the restore, and the desk does not check the origin.
    let origin = "https://lapor.example.go.id";
    let signed = common::manifest_for(
        INSTITUTION,
        "Inspektorat Cadangan",
        origin,
        &desk,
        &escrow,
        &reply_key,
    )
    .sign(&manifest_key);
    let mut policy = VerifyPolicy::new(manifest_key.verifying_key(), today());
    policy.origin = Some(origin.to_owned());
    let manifest = signed.verify(&policy).unwrap();
    Inspectorate {
        desk,
        manifest_key,
        signed_manifest: signed.to_json(),
        manifest,
        token: IssuedToken::generate().expose_secret().to_owned(),
    }
}

fn institutions(inspectorate: &Inspectorate) -> Vec<Institution> {
    vec![Institution {
        id: INSTITUTION.parse().unwrap(),
        name: "Inspektorat Cadangan".into(),
        manifest_key: inspectorate.manifest_key.verifying_key(),
    }]
}

/// A server on `store_dir` and a loopback port; returns it with its base URL.
fn serve(inspectorate: &Inspectorate, store_dir: &Path) -> (common::Server, String) {
    let store = Arc::new(SledStore::open(store_dir).unwrap());
    let spool = store_dir.with_extension("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let limits = Limits {
        pow_bits: POW_BITS,
        ..Limits::default()
    };
    let server = common::Server::start(listener, store, institutions(inspectorate), limits, spool);
    (server, base)
}

fn api(base: &str, rest: &str) -> String {
    format!("{base}/api/v1/institutions/{INSTITUTION}{rest}")
}

/// Submits one report with its attachments as the page does; returns the case id.
fn submit(base: &str, inspectorate: &Inspectorate, sent: &Sent) -> CaseId {
    let http = reqwest::blocking::Client::new();
    let api = api(base, "");
    let refs: Vec<AttachmentRef> = sent
        .files
        .iter()
        .map(|(name, content)| {
            common::upload_attachment(
                &http,
                &api,
                &inspectorate.manifest,
                name,
                "application/octet-stream",
                content,
            )
        })
        .collect();
    let (case, _) = common::submit_report(
        &http,
        &api,
        &inspectorate.manifest,
        &sent.text,
        refs,
        POW_BITS,
    );
    case.parse().unwrap()
}

/// Exports everything from the server and opens each case with the desk identity:
/// case id → (report text, attachments as (name, plaintext)).
fn export_and_open(base: &str, inspectorate: &Inspectorate) -> Vec<OpenedCase> {
    let bundle = reqwest::blocking::Client::new()
        .get(api(base, "/export?since=0"))
        .bearer_auth(&inspectorate.token)
        .send()
        .unwrap();
    assert_eq!(bundle.status(), 200);
    let bytes = bundle.bytes().unwrap().to_vec();
    let mut reader = BundleReader::new(&bytes[..]).unwrap();
    let mut cases: Vec<OpenedCase> = Vec::new();
    let mut reports: Vec<Report> = Vec::new();
    while let Some(mut frame) = reader.next_frame().unwrap() {
        match frame.meta().clone() {
            FrameMeta::Manifest => {}
            FrameMeta::Case { case, .. } => {
                let payload = frame.read_payload_to_end(2 << 20).unwrap();
                let sealed =
                    SealedMessage::check(payload, 2, peluit_proto::limits::MAX_ENVELOPE_LEN)
                        .unwrap();
                let report =
                    open_report(&sealed, std::slice::from_ref(&inspectorate.desk)).unwrap();
                let text = report
                    .answers
                    .iter()
                    .find(|a| a.question == "what_happened")
                    .unwrap()
                    .value
                    .clone();
                cases.push((case, text, Vec::new()));
                reports.push(report);
            }
            FrameMeta::Attachment { case, index, .. } => {
                let sealed = frame.read_payload_to_end(16 << 20).unwrap();
                let at = cases.iter().position(|(c, ..)| *c == case).unwrap();
                let reference = &reports[at].attachments[index as usize];
                assert_eq!(
                    <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&sealed)),
                    reference.sealed_sha256
                );
                let mut opened = Vec::new();
                StreamOpener::new(&sealed[..], std::slice::from_ref(&inspectorate.desk))
                    .unwrap()
                    .read_to_end(&mut opened)
                    .unwrap();
                cases[at].2.push((reference.name.clone(), opened));
            }
            other => panic!("unexpected frame {other:?} in a fresh export"),
        }
    }
    cases.sort_by_key(|(case, ..)| case.to_string());
    cases
}

fn expected(submitted: &[(CaseId, &Sent)]) -> Vec<OpenedCase> {
    let mut cases: Vec<_> = submitted
        .iter()
        .map(|(case, sent)| (*case, sent.text.clone(), sent.files.clone()))
        .collect();
    cases.sort_by_key(|(case, ..)| case.to_string());
    cases
}

/// Puts the manifest and the desk's token into a new store, as publishing and
/// `peluit-server token issue` do.
fn prepare_store(inspectorate: &Inspectorate, dir: &Path) {
    let id: InstitutionId = INSTITUTION.parse().unwrap();
    let store = SledStore::open(dir).unwrap();
    store
        .put_manifest(
            &id,
            1,
            &ManifestBytes::new(inspectorate.signed_manifest.clone()),
        )
        .unwrap();
    store
        .put_token_hash(
            &id,
            TokenHash::from_bytes(peluit_server::tokens::token_hash(&inspectorate.token)),
            "desk",
            today(),
        )
        .unwrap();
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// One tar header block as written: the entry's name, type flag and `mtime` field, and for a
/// pax extended header (`x` or `g`) the keywords it sets, with their values.
struct TarHeader {
    name: String,
    kind: u8,
    mtime: u64,
    pax: Vec<(String, String)>,
}

fn octal(field: &[u8]) -> u64 {
    let digits = std::str::from_utf8(field)
        .unwrap()
        .trim_matches(|c| c == '\0' || c == ' ');
    u64::from_str_radix(digits, 8).unwrap_or_else(|_| panic!("bad octal field {field:?}"))
}

/// Every header block of a ustar/pax archive, read from the bytes (not through tar, so the
/// `mtime` of the pax extended headers themselves is checked as well).
fn tar_headers(archive: &[u8]) -> Vec<TarHeader> {
    let mut headers = Vec::new();
    let mut at = 0;
    while at + 512 <= archive.len() && archive[at..at + 512].iter().any(|&b| b != 0) {
        let block = &archive[at..at + 512];
        assert_eq!(&block[257..263], b"ustar\0", "a POSIX header at byte {at}");
        let name_end = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let size = usize::try_from(octal(&block[124..136])).unwrap();
        let body = &archive[at + 512..at + 512 + size];
        let mut pax = Vec::new();
        if matches!(block[156], b'x' | b'g') {
            // Records are "<length> <keyword>=<value>\n", the length counting the whole record.
            let mut rest = body;
            while !rest.is_empty() {
                let space = rest.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&rest[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                let record = std::str::from_utf8(&rest[space + 1..len - 1]).unwrap();
                let (keyword, value) = record.split_once('=').unwrap();
                pax.push((keyword.to_owned(), value.to_owned()));
                rest = &rest[len..];
            }
        }
        headers.push(TarHeader {
            name: String::from_utf8(block[..name_end].to_vec()).unwrap(),
            kind: block[156],
            mtime: octal(&block[136..148]),
            pax,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    headers
}

/// The archive says nothing of when any file was written, read or changed: every header
/// block has mtime 0, no pax header sets a time, and `tar` itself lists every member at
/// the epoch. Returns the members' names, in archive order.
fn assert_archive_has_no_times(archive: &Path) -> Vec<String> {
    let headers = tar_headers(&std::fs::read(archive).unwrap());
    for header in &headers {
        assert_eq!(
            header.mtime, 0,
            "{} carries mtime {}",
            header.name, header.mtime
        );
        for (keyword, value) in &header.pax {
            assert!(
                !matches!(keyword.as_str(), "atime" | "ctime" | "mtime"),
                "{} carries the pax keyword {keyword}={value}",
                header.name
            );
        }
    }
    let listing = Command::new("tar")
        .args(["--list", "--verbose", "--full-time", "--file"])
        .arg(archive)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", stderr(&listing));
    let listing = String::from_utf8(listing.stdout).unwrap();
    for line in listing.lines() {
        assert!(
            line.contains(" 1970-01-01 00:00:00 "),
            "listed with a time: {line}"
        );
    }
    let members: Vec<String> = headers
        .iter()
        .filter(|header| !matches!(header.kind, b'x' | b'g'))
        .map(|header| header.name.clone())
        .collect();
    assert_eq!(listing.lines().count(), members.len());
    members
}

#[test]
fn every_case_exports_and_opens_from_a_restored_backup() {
    let root = tempfile::tempdir().unwrap();
    let inspectorate = inspectorate();
    let live = root.path().join("live/store");
    std::fs::create_dir_all(live.parent().unwrap()).unwrap();
    prepare_store(&inspectorate, &live);

    let video: Vec<u8> = (0..700_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let sent = [
        Sent {
            text: "Pejabat pengadaan meminta uang pelicin.".into(),
            files: vec![
                ("rekaman.mp4".into(), video),
                ("catatan.txt".into(), b"rapat 3 Maret".to_vec()),
            ],
        },
        Sent {
            text: "Laporan tanpa lampiran.".into(),
            files: vec![],
        },
        Sent {
            text: "Kontrak fiktif di dinas.".into(),
            files: vec![("kontrak.pdf".into(), vec![0x25; 5_000])],
        },
    ];
    let (server, base) = serve(&inspectorate, &live);
    let cases: Vec<CaseId> = sent
        .iter()
        .map(|s| submit(&base, &inspectorate, s))
        .collect();
    let submitted: Vec<(CaseId, &Sent)> = cases.iter().copied().zip(sent.iter()).collect();
    assert_eq!(export_and_open(&base, &inspectorate), expected(&submitted));

    // While the server has the store open, the backup refuses and writes nothing.
    let backups = root.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let archive = backups.join("peluit.tar");
    let refused = script("backup.sh", &["--data-dir", p(&live), "--out", p(&archive)]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("in use"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 0);

    // Stopped, it copies; then the original store is lost.
    drop(server);
    let copied = script(
        "backup.sh",
        &["--data-dir", p(&live), "--out", p(&archive), "--wait", "10"],
    );
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 1);
    let live_files = tree(&live);
    assert!(
        live_files
            .iter()
            .any(|(path, _)| path.starts_with("uploads")),
        "attachments are files beside sled"
    );
    // The upload files' times say when each attachment arrived; none of them, nor any
    // other file's, is in the archive, and members come in name order, not in the order
    // the directory lists them (on some file systems, the order of arrival).
    let members = assert_archive_has_no_times(&archive);
    let uploads: Vec<&String> = members
        .iter()
        .filter(|name| {
            name.starts_with("store/uploads/")
                && !name.starts_with("store/uploads/.spare/")
                && !name.ends_with('/')
        })
        .collect();
    assert_eq!(uploads.len(), 3, "{members:?}");
    let mut in_name_order = members.clone();
    in_name_order.sort_by(|a, b| Path::new(a).cmp(Path::new(b)));
    assert_eq!(members, in_name_order);
    std::fs::remove_dir_all(root.path().join("live")).unwrap();

    // Restored into a new folder: the same files, byte for byte, and a server on it
    // exports every case, which opens to what the reporters sent.
    let restored = root.path().join("elsewhere/store");
    let restore = script(
        "restore.sh",
        &["--from", p(&archive), "--data-dir", p(&restored)],
    );
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(tree(&restored), live_files);
    let (_server, base) = serve(&inspectorate, &restored);
    assert_eq!(export_and_open(&base, &inspectorate), expected(&submitted));
    // The restored server takes new reports as before.
    let later = Sent {
        text: "Laporan sesudah pemulihan.".into(),
        files: vec![("foto.jpg".into(), vec![7; 70_000])],
    };
    let case = submit(&base, &inspectorate, &later);
    let mut all = submitted.clone();
    all.push((case, &later));
    assert_eq!(export_and_open(&base, &inspectorate), expected(&all));
}

#[test]
fn bad_backups_and_targets_are_refused_with_nothing_written() {
    let root = tempfile::tempdir().unwrap();
    let inspectorate = inspectorate();
    let store = root.path().join("store");
    prepare_store(&inspectorate, &store);
    let before = tree(&store);
    let archive = root.path().join("good.tar");
    let made = script(
        "backup.sh",
        &[
            "--data-dir",
            p(&store),
            "--out",
            p(&archive),
            "--wait",
            "10",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let good = std::fs::read(&archive).unwrap();

    // backup.sh: an existing --out is never overwritten; a folder that is no store is refused.
    let again = script(
        "backup.sh",
        &["--data-dir", p(&store), "--out", p(&archive)],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&archive).unwrap(), good);
    let not_store = root.path().join("empty");
    std::fs::create_dir_all(&not_store).unwrap();
    let other = root.path().join("other.tar");
    let refused = script(
        "backup.sh",
        &["--data-dir", p(&not_store), "--out", p(&other)],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a Peluit store"),
        "{}",
        stderr(&refused)
    );
    assert!(!other.exists());

    // restore.sh: cut off, one flipped byte, not a tar, a foreign tar, missing file.
    let cut = root.path().join("cut.tar");
    // Half of the members' bytes: the tail of a tar file is zero blocks and padding, and
    // cutting only those leaves every member whole.
    let members_end = good.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::write(&cut, &good[..members_end / 2]).unwrap();
    // One bit of sled's `conf` file, inside the archive (tar stores file data as is).
    let conf = std::fs::read(store.join("conf")).unwrap();
    let at = good
        .windows(conf.len())
        .position(|w| w == conf.as_slice())
        .unwrap();
    let mut flipped_bytes = good.clone();
    flipped_bytes[at + conf.len() / 2] ^= 0x01;
    let flipped = root.path().join("flipped.tar");
    std::fs::write(&flipped, &flipped_bytes).unwrap();
    let junk = root.path().join("junk.tar");
    std::fs::write(&junk, b"not a backup at all").unwrap();
    let foreign_dir = root.path().join("foreign");
    std::fs::create_dir_all(foreign_dir.join("etc")).unwrap();
    std::fs::write(foreign_dir.join("etc/passwd"), b"root:x:0:0").unwrap();
    let foreign = root.path().join("foreign.tar");
    assert!(
        Command::new("tar")
            .arg("-cf")
            .arg(&foreign)
            .arg("-C")
            .arg(&foreign_dir)
            .arg("etc")
            .status()
            .unwrap()
            .success()
    );
    let target = root.path().join("restored/store");
    for (bad, says) in [
        (&cut, "damaged"),
        (&flipped, "damaged"),
        (&junk, "damaged"),
        (&foreign, "not a Peluit backup"),
        (&root.path().join("missing.tar"), "no backup file"),
    ] {
        let out = script("restore.sh", &["--from", p(bad), "--data-dir", p(&target)]);
        assert!(!out.status.success(), "{} was restored", bad.display());
        assert!(
            stderr(&out).contains(says),
            "{}: {}",
            bad.display(),
            stderr(&out)
        );
        assert!(!target.exists(), "nothing appears at the target");
        let parent = root.path().join("restored");
        if parent.exists() {
            assert_eq!(
                std::fs::read_dir(&parent).unwrap().count(),
                0,
                "no staging folder is left behind"
            );
        }
    }

    // A target that holds anything, even the live store itself, is never overwritten.
    let onto_live = script(
        "restore.sh",
        &["--from", p(&archive), "--data-dir", p(&store)],
    );
    assert!(!onto_live.status.success());
    assert!(
        stderr(&onto_live).contains("not empty"),
        "{}",
        stderr(&onto_live)
    );
    assert_eq!(tree(&store), before);

    // And the good archive still restores.
    let ok = script(
        "restore.sh",
        &["--from", p(&archive), "--data-dir", p(&target)],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(tree(&target), before);
}
