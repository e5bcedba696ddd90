//! `peluit-audit store`: a clean store made through the real store API passes and is left
//! untouched; planted plaintext in every tree and upload file, a ciphertext with an extra
//! stanza, a precise timestamp, garbage among token requests, a time of day on an upload
//! file or folder and anything but empty epoch files in the spare pool each fail, naming
//! the tree and key (or file).

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::FileTimes;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{
    CleanStore, INSTITUTION, audit, clean_store, copy_dir, institution, set_epoch, snapshot, today,
};
use peluit_audit::Place;
use peluit_audit::findings::display_key;
use peluit_audit::store::{StoreAudit, StoreOptions, TREES, audit_store};
use peluit_proto::envelope::{Answer, Report, seal_report};
use peluit_proto::keys::SealIdentity;
use peluit_proto::receipt::Receipt;
use peluit_proto::sealed::SealedMessage;
use peluit_proto::wordlist::Language;
use peluit_store::{CiphertextStore, NewCase, PowHash};

const TEXT: &[u8] = b"Nama pelapor: Budi Santoso, NIK 3174012304560001, kantor lantai 3. ";

fn text_of_len(len: usize) -> Vec<u8> {
    TEXT.iter().copied().cycle().take(len).collect()
}

fn options(store: &CleanStore) -> StoreOptions {
    StoreOptions {
        manifest_keys: vec![(institution(), store.keys.manifest_key.verifying_key())],
        threads: 2,
    }
}

/// A copy of the clean store with `plant` applied to its sled database.
fn planted(
    store: &CleanStore,
    plant: impl FnOnce(&sled::Db) -> Vec<u8>,
) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let copy = tempfile::tempdir().unwrap();
    let data = copy.path().join("data");
    copy_dir(&store.data(), &data);
    let db = sled::open(&data).unwrap();
    let key = plant(&db);
    db.flush().unwrap();
    drop(db);
    (copy, data, key)
}

fn tree_findings(findings: &[peluit_audit::Finding]) -> Vec<(String, String, String)> {
    findings
        .iter()
        .filter_map(|f| match &f.place {
            Place::Tree { tree, key } => Some((tree.clone(), key.clone(), f.why.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_clean_store_passes_reports_its_metadata_and_is_left_untouched() {
    let store = clean_store();
    let before = snapshot(&store.data());
    let key = format!("{INSTITUTION}={}", store.keys.manifest_key.verifying_key());
    let report = audit(&[
        "store",
        store.data().to_str().unwrap(),
        "--manifest-key",
        &key,
    ])
    .unwrap();
    assert!(report.clean, "{}", report.text);
    assert!(report.text.contains(": PASSED"), "{}", report.text);
    assert_eq!(snapshot(&store.data()), before, "the audit wrote nothing");

    let json = &report.json["store"];
    let exposure = &json["exposure"][INSTITUTION];
    assert_eq!(
        exposure["cases_per_day"][today().to_string()],
        serde_json::json!([2, 1])
    );
    assert_eq!(exposure["uploads"]["attached"], 1);
    assert_eq!(exposure["uploads"]["receiving"], 1);
    assert_eq!(
        exposure["mailbox_per_day"][today().to_string()],
        serde_json::json!([1, 1])
    );
    assert_eq!(exposure["manifests"][1]["signature"], "verified");
    assert_eq!(exposure["tokens"][0][0], "desk");
    // Two envelopes, a follow-up, a reply and two upload files.
    assert_eq!(json["scanned"]["sealed_items"], 6);
    assert_eq!(json["scanned"]["upload_files"], 2);
}

#[test]
fn plaintext_planted_in_any_tree_fails_naming_tree_and_key() {
    let store = clean_store();
    for tree in TREES {
        let (_copy, data, key) = planted(&store, |db| {
            let t = db.open_tree(tree).unwrap();
            let first = t.iter().next().map(|item| item.unwrap());
            match (tree, first) {
                // Pieces keep their length, so only their content can give them away.
                ("envelopes" | "mailbox_pieces" | "manifests", Some((key, value))) => {
                    t.insert(&key, text_of_len(value.len())).unwrap();
                    key.to_vec()
                }
                (_, Some((key, _))) => {
                    t.insert(&key, TEXT).unwrap();
                    key.to_vec()
                }
                // The purge tree is empty once deletions finish: add a marker with a value.
                (_, None) => {
                    let mut key = format!("{INSTITUTION}/").into_bytes();
                    key.push(2);
                    key.extend_from_slice(&[0x9c; 16]);
                    t.insert(&key, TEXT).unwrap();
                    key
                }
            }
        });
        let audit = audit_store(&data, &options(&store)).unwrap();
        let found = tree_findings(&audit.findings);
        assert!(
            found
                .iter()
                .any(|(t, k, _)| t == tree && *k == display_key(&key)),
            "{tree}: {:#?}",
            audit.findings
        );
        assert!(!audit.clean());
    }
}

#[test]
fn plaintext_in_an_upload_file_fails_naming_the_file() {
    let store = clean_store();
    let copy = tempfile::tempdir().unwrap();
    let data = copy.path().join("data");
    copy_dir(&store.data(), &data);
    let rel = format!("uploads/{INSTITUTION}/{}", store.attachment);
    let len = std::fs::metadata(data.join(&rel)).unwrap().len() as usize;
    // Keep the genuine header and first chunk: only the later bytes are plaintext.
    let mut bytes = std::fs::read(data.join(&rel)).unwrap();
    bytes[70_000..].copy_from_slice(&text_of_len(len - 70_000));
    std::fs::write(data.join(&rel), &bytes).unwrap();
    std::fs::write(data.join("notes.txt"), TEXT).unwrap();
    let audit = audit_store(&data, &options(&store)).unwrap();
    let files: Vec<(String, String)> = audit
        .findings
        .iter()
        .filter_map(|f| match &f.place {
            Place::File { path } => Some((path.clone(), f.why.clone())),
            _ => None,
        })
        .collect();
    assert!(
        files
            .iter()
            .any(|(p, why)| *p == rel && why.contains("does not look like ciphertext")),
        "{files:#?}"
    );
    assert!(files.iter().any(|(p, _)| p == "notes.txt"), "{files:#?}");
}

/// Requests written by `peluit-server token issue|revoke` while the server held the store
/// pass as allowlisted records; anything else in their folder is a finding.
#[test]
fn token_requests_pass_and_anything_else_in_their_folder_fails() {
    use peluit_server::token_requests::{TokenRequest, spool};

    let store = clean_store();
    let copy = tempfile::tempdir().unwrap();
    let data = copy.path().join("data");
    copy_dir(&store.data(), &data);
    let issue = TokenRequest::issue(institution(), [0x5a; 32], "meja-2", today()).unwrap();
    let revoke = TokenRequest::Revoke {
        institution: institution(),
        hash: [0xa5; 32],
    };
    spool(&data, &issue).unwrap();
    spool(&data, &revoke).unwrap();
    let audit = audit_store(&data, &options(&store)).unwrap();
    assert!(audit.clean(), "{:#?}", audit.findings);
    let notes = audit.notes.join("\n");
    assert!(
        notes.contains(&format!(
            "token-requests/{}: a token for {INSTITUTION} (label \"meja-2\"",
            issue.file_name()
        )),
        "{notes}"
    );
    assert!(notes.contains("a revocation of a token of"), "{notes}");

    let folder = data.join("token-requests");
    let json = String::from_utf8(issue.to_json()).unwrap();
    let hash = |byte: &str| byte.repeat(32);
    let planted = [
        ("catatan.txt".to_owned(), TEXT.to_vec()),
        (".tmp-0011223344556677".to_owned(), issue.to_json()),
        (
            format!("issue-{}.json", hash("01")),
            json.replace(&hash("5a"), &hash("01"))
                .replace('}', r#","token":"peluit_tok_00"}"#)
                .into_bytes(),
        ),
        (
            format!("issue-{}.json", hash("02")),
            json.replace(&hash("5a"), &hash("02"))
                .replace("meja-2", "Budi 09:41")
                .into_bytes(),
        ),
        (format!("revoke-{}.json", hash("5a")), issue.to_json()),
        (format!("issue-{}.json", hash("03")), TEXT.to_vec()),
        (format!("issue-{}.json", hash("04")), vec![b' '; 5000]),
    ];
    for (name, bytes) in &planted {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    std::fs::create_dir(folder.join(format!("issue-{}.json", hash("06")))).unwrap();
    let audit = audit_store(&data, &options(&store)).unwrap();
    let files: Vec<(String, String)> = audit
        .findings
        .iter()
        .filter_map(|f| match &f.place {
            Place::File { path } => Some((path.clone(), f.why.clone())),
            _ => None,
        })
        .collect();
    let mut expected: Vec<String> = planted
        .iter()
        .map(|(name, _)| format!("token-requests/{name}"))
        .chain([format!("token-requests/issue-{}.json", hash("06"))])
        .collect();
    expected.sort();
    let mut found: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    found.sort();
    assert_eq!(found, expected, "{files:#?}");
    assert!(
        files
            .iter()
            .all(|(_, why)| !why.contains("Budi") && !why.contains("peluit_tok")),
        "{files:#?}"
    );
    assert!(
        audit.findings.len() == planted.len() + 1,
        "{:#?}",
        audit.findings
    );
}

#[test]
fn an_envelope_with_an_extra_stanza_fails_naming_it() {
    let store = clean_store();
    let sled_store = store.open();
    let inst = institution();
    let reporter = Receipt::generate().derive(&inst);
    let report = Report {
        institution: inst.clone(),
        language: Language::En,
        date: today(),
        answers: vec![
            Answer::new("category", "pungli"),
            Answer::new("what_happened", "x"),
        ],
        attachments: Vec::new(),
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };
    // What a tampered page would send: the report sealed to one more key than listed.
    assert!(seal_report(&report, &store.manifest).is_ok());
    let mut recipients = store.manifest.seal_recipients();
    recipients.push(SealIdentity::generate().recipient());
    let content = b"{\"the\":\"same report\"}";
    let extra = peluit_proto::seal::seal_padded(content, &recipients).unwrap();
    let submitted = sled_store
        .submit_case(
            &inst,
            NewCase {
                day: today(),
                size_bucket: 4096,
                mailbox_key: reporter.mailbox_public_key(),
                envelope: SealedMessage::from_stored(extra),
                attachments: Vec::new(),
                pow_hash: PowHash::from_bytes(common::sha(b"extra stanza")),
            },
        )
        .unwrap();
    drop(sled_store);
    let audit = audit_store(&store.data(), &options(&store)).unwrap();
    let mut key = format!("{INSTITUTION}/").into_bytes();
    key.extend_from_slice(submitted.id.as_bytes());
    key.extend_from_slice(&0u32.to_be_bytes());
    let found = tree_findings(&audit.findings);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, "envelopes");
    assert_eq!(found[0].1, display_key(&key));
    assert!(
        found[0]
            .2
            .contains("4 X25519 stanzas; the manifest expects 3"),
        "{}",
        found[0].2
    );
}

#[test]
fn a_precise_timestamp_fails_naming_it_without_repeating_it() {
    let store = clean_store();
    for tree in ["cases", "pow", "mailbox"] {
        let (_copy, data, key) = planted(&store, |db| {
            let t = db.open_tree(tree).unwrap();
            let (key, value) = t.iter().next().unwrap().unwrap();
            let text = String::from_utf8(value.to_vec()).unwrap();
            let day = today().to_string();
            let precise = text.replacen(&format!("\"{day}\""), &format!("\"{day}T09:41:07Z\""), 1);
            assert_ne!(precise, text);
            t.insert(&key, precise.as_bytes()).unwrap();
            key.to_vec()
        });
        let audit = audit_store(&data, &options(&store)).unwrap();
        let found = tree_findings(&audit.findings);
        let hit = found
            .iter()
            .find(|(t, k, _)| t == tree && *k == display_key(&key))
            .unwrap_or_else(|| panic!("{tree}: {found:#?}"));
        assert!(hit.2.contains("record"), "{}", hit.2);
        assert!(!hit.2.contains("09:41"), "{}", hit.2);
    }
}

#[test]
fn a_folder_that_is_not_a_store_cannot_be_audited() {
    let empty = tempfile::tempdir().unwrap();
    let error = audit(&["store", empty.path().to_str().unwrap()]).unwrap_err();
    assert_eq!(error.code, "not-a-store");
    let error = audit(&["store", "/no/such/peluit/store"]).unwrap_err();
    assert_eq!(error.code, "io");
}

#[test]
fn the_command_exits_0_only_for_a_clean_store() {
    let store = clean_store();
    let bin = env!("CARGO_BIN_EXE_peluit-audit");
    let run = |dir: &Path, json: bool| {
        let mut command = std::process::Command::new(bin);
        if json {
            command.arg("--json");
        }
        command.arg("store").arg(dir).output().unwrap()
    };
    let clean = run(&store.data(), false);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    let (_copy, data, _) = planted(&store, |db| {
        let t = db.open_tree("tokens").unwrap();
        let (key, _) = t.iter().next().unwrap().unwrap();
        t.insert(&key, TEXT).unwrap();
        key.to_vec()
    });
    let failed = run(&data, true);
    assert_eq!(failed.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(json["clean"], false);
    assert_eq!(json["store"]["findings"][0]["place"]["tree"], "tokens");

    let missing = run(Path::new("/no/such/peluit/store"), true);
    assert_eq!(missing.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert_eq!(json["error"]["code"], "io");
    let usage = std::process::Command::new(bin)
        .arg("stor")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("next:"));
}

/// What the real server writes, through its HTTP API: a report with a streamed
/// attachment, and a bring-your-own `.age` file (unpadded, as any age tool makes it).
#[test]
fn what_the_real_server_stores_passes() {
    use peluit_proto::pow::Stamp;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = common::Keys::generate();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let signed = keys.manifest(1, std::slice::from_ref(&base), &keys.manifest_key);
    let manifest = keys.verified(&signed);
    let store = std::sync::Arc::new(peluit_store::SledStore::open(&data).unwrap());
    store
        .put_manifest(
            &institution(),
            1,
            &peluit_store::ManifestBytes::new(signed.to_json()),
        )
        .unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let limits = peluit_server::Limits {
        pow_bits: 4,
        ..peluit_server::Limits::default()
    };
    let server = common::Server::start(listener, store, &keys, spool, limits);
    let http = reqwest::blocking::Client::new();
    let api = |rest: &str| format!("{base}/api/v1/institutions/{INSTITUTION}{rest}");

    let content = vec![0x17u8; 150_000];
    let (sealed, sealed_sha256) = common::seal_attachment(&manifest, &content);
    let created: serde_json::Value = http
        .post(api("/uploads"))
        .json(&serde_json::json!({"version": 1, "sealed_size": sealed.len()}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let upload = created["upload"].as_str().unwrap().to_owned();
    let put = http
        .put(api(&format!("/uploads/{upload}?offset=0")))
        .body(sealed)
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let done = http
        .post(api(&format!("/uploads/{upload}/complete")))
        .send()
        .unwrap();
    assert_eq!(done.status(), 200);
    let reporter = Receipt::generate().derive(&institution());
    let report = Report {
        institution: institution(),
        language: Language::Id,
        date: today(),
        answers: vec![
            Answer::new("category", "gratifikasi"),
            Answer::new("what_happened", "Hadiah."),
        ],
        attachments: vec![peluit_proto::envelope::AttachmentRef {
            upload: upload.parse().unwrap(),
            name: "foto.jpg".into(),
            media_type: "image/jpeg".into(),
            size: content.len() as u64,
            sealed_sha256,
        }],
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };
    let envelope = seal_report(&report, &manifest).unwrap();
    let stamp: serde_json::Value =
        serde_json::from_slice(&Stamp::mint(&envelope.sha256(), 4).to_json()).unwrap();
    let submitted = http
        .post(api("/reports"))
        .json(&serde_json::json!({
            "version": 1,
            "envelope": peluit_proto::encoding::b64(envelope.as_bytes()),
            "attachments": [upload],
            "mailbox_key": reporter.mailbox_public_key().to_string(),
            "stamp": stamp,
        }))
        .send()
        .unwrap();
    assert_eq!(submitted.status(), 201);

    let byo =
        peluit_proto::seal::seal(b"laporan dari alat age", &manifest.seal_recipients()).unwrap();
    let form = reqwest::blocking::multipart::Form::new()
        .text("institution", INSTITUTION)
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(byo).file_name("laporan.age"),
        );
    let answered = http
        .post(format!("{base}/submit-file"))
        .multipart(form)
        .send()
        .unwrap();
    assert!(answered.status().is_success(), "{}", answered.status());
    drop(server);

    let key = format!("{INSTITUTION}={}", keys.manifest_key.verifying_key());
    let report = audit(&["store", data.to_str().unwrap(), "--manifest-key", &key]).unwrap();
    assert!(report.clean, "{}", report.text);
    assert_eq!(
        report.json["store"]["exposure"][INSTITUTION]["cases_per_day"][today().to_string()],
        serde_json::json!([2, 0])
    );
}

#[test]
fn the_audited_trees_are_the_stores() {
    assert_eq!(
        peluit_store::SledStore::tree_names().collect::<Vec<_>>(),
        TREES.to_vec()
    );
}

/// 2026-11-27 09:41:07 UTC: a time of day as a file system would record it.
const MORNING: u64 = 1_795_772_467;

fn morning() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(MORNING) + Duration::from_nanos(123_456_789)
}

/// `uploads/` and everything under it, with modification and access times.
fn upload_times(data: &Path) -> Vec<(PathBuf, SystemTime, SystemTime)> {
    let root = data.join("uploads");
    let meta = std::fs::symlink_metadata(&root).unwrap();
    let mut times = vec![(
        root.clone(),
        meta.modified().unwrap(),
        meta.accessed().unwrap(),
    )];
    times.extend(
        snapshot(&root)
            .into_iter()
            .map(|(path, _, modified, accessed)| (path, modified, accessed)),
    );
    times
}

fn file_findings(audit: &StoreAudit) -> Vec<(String, String)> {
    audit
        .findings
        .iter()
        .map(|f| match &f.place {
            Place::File { path } => (path.clone(), f.why.clone()),
            other => panic!("not a file finding: {other}: {}", f.why),
        })
        .collect()
}

/// The store keeps every upload file's and folder's times at the epoch
/// (docs/storage.md#file-times); one time of day on any of them is exactly one finding,
/// which says what to do and does not repeat the time.
#[test]
fn a_time_of_day_on_an_upload_file_or_folder_is_exactly_one_finding() {
    let store = clean_store();
    let copy = tempfile::tempdir().unwrap();
    let pristine = copy.path().join("pristine");
    copy_dir(&store.data(), &pristine);
    assert!(
        upload_times(&pristine)
            .iter()
            .all(|(_, m, a)| (*m, *a) == (UNIX_EPOCH, UNIX_EPOCH)),
        "{:#?}",
        upload_times(&pristine)
    );
    let audit = audit_store(&pristine, &options(&store)).unwrap();
    assert!(audit.clean(), "{:#?}", audit.findings);

    let file = format!("uploads/{INSTITUTION}/{}", store.attachment);
    let folder = format!("uploads/{INSTITUTION}");
    let cases = [
        (file.as_str(), false, true, "a modification time of day"),
        (folder.as_str(), true, false, "an access time of day"),
        (
            "uploads",
            true,
            true,
            "a modification and an access time of day",
        ),
    ];
    for (i, (rel, accessed, modified, which)) in cases.into_iter().enumerate() {
        let data = copy.path().join(format!("case-{i}"));
        copy_dir(&store.data(), &data);
        let mut times = FileTimes::new();
        if accessed {
            times = times.set_accessed(morning());
        }
        if modified {
            times = times.set_modified(morning());
        }
        let options_for = if rel == file {
            std::fs::File::options().write(true).open(data.join(rel))
        } else {
            std::fs::File::open(data.join(rel))
        };
        options_for.unwrap().set_times(times).unwrap();

        let audit = audit_store(&data, &options(&store)).unwrap();
        let found = file_findings(&audit);
        assert_eq!(found.len(), 1, "{rel}: {found:#?}");
        let (path, why) = &found[0];
        assert_eq!(path, rel);
        assert!(why.starts_with(&format!("carries {which}")), "{why}");
        assert!(why.contains("next start or hourly sweep"), "{why}");
        for leaked in ["09:41", "2026-11-27", &MORNING.to_string(), "123456789"] {
            assert!(!why.contains(leaked), "{why}");
        }
    }
}

/// Run twice, the audit reports the same, and every upload file and folder still carries
/// the epoch: it read their times first and opened them with `O_NOATIME`.
#[test]
fn the_audit_run_twice_gives_the_same_result_and_leaves_every_time_at_the_epoch() {
    let store = clean_store();
    let data = store.data();
    let before = upload_times(&data);
    assert!(before.len() >= 4, "{before:#?}");
    assert!(
        before
            .iter()
            .all(|(_, m, a)| (*m, *a) == (UNIX_EPOCH, UNIX_EPOCH)),
        "{before:#?}"
    );
    let first = audit_store(&data, &options(&store)).unwrap();
    assert!(first.clean(), "{:#?}", first.findings);
    assert!(first.notes.iter().all(|n| !n.contains("O_NOATIME")));
    assert_eq!(upload_times(&data), before);
    let second = audit_store(&data, &options(&store)).unwrap();
    assert_eq!(
        serde_json::to_value(&second).unwrap(),
        serde_json::to_value(&first).unwrap()
    );
    assert_eq!(upload_times(&data), before);

    // A plain read and a plain listing do set access times here, so the checks above
    // would have seen an audit that did either.
    let folder = data.join("uploads").join(INSTITUTION);
    std::fs::read(folder.join(store.attachment.to_string())).unwrap();
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 2);
    let after = upload_times(&data);
    let accessed = |path: &Path| after.iter().find(|(p, _, _)| p == path).unwrap().2;
    assert_ne!(
        accessed(&folder.join(store.attachment.to_string())),
        UNIX_EPOCH,
        "this file system records no access times (noatime?): the test cannot see them"
    );
    assert_ne!(accessed(&folder), UNIX_EPOCH);
    let third = audit_store(&data, &options(&store)).unwrap();
    let found = file_findings(&third);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found
            .iter()
            .all(|(_, why)| why.starts_with("carries an access time"))
    );
}

/// The store's pool of spare upload files: a folder of empty files named by 32 lowercase
/// hex digits, all at the epoch, passes; anything else in it is a finding naming it.
#[test]
fn a_spare_pool_of_empty_epoch_files_passes_and_anything_else_in_it_fails() {
    let store = clean_store();
    let copy = tempfile::tempdir().unwrap();
    let data = copy.path().join("data");
    copy_dir(&store.data(), &data);
    let pool = data.join("uploads/.spare");
    // The store keeps a pool of its own; the spares below join it.
    if !pool.exists() {
        std::fs::create_dir(&pool).unwrap();
    }
    let spares = [
        "00112233445566778899aabbccddeeff",
        "0123456789abcdef0123456789abcdef",
    ];
    for name in spares {
        std::fs::File::create(pool.join(name)).unwrap();
        set_epoch(&pool.join(name));
    }
    set_epoch(&pool);
    set_epoch(&data.join("uploads"));
    let audit = audit_store(&data, &options(&store)).unwrap();
    assert!(audit.clean(), "{:#?}", audit.findings);

    let planted = [
        (
            "0011223344556677889900aabbccddee",
            b"x".as_slice(),
            "a spare file of 1 bytes",
        ),
        ("00112233445566778899AABBCCDDEEFF", b"", "not a spare file"),
        ("catatan.txt", TEXT, "not a spare file"),
        ("abcdef", b"", "not a spare file"),
    ];
    for (name, bytes, _) in planted {
        std::fs::write(pool.join(name), bytes).unwrap();
        set_epoch(&pool.join(name));
    }
    let folder = "ffeeddccbbaa99887766554433221100";
    std::fs::create_dir(pool.join(folder)).unwrap();
    set_epoch(&pool.join(folder));
    std::fs::File::options()
        .write(true)
        .open(pool.join(spares[1]))
        .unwrap()
        .set_times(FileTimes::new().set_modified(morning()))
        .unwrap();
    set_epoch(&pool);
    let audit = audit_store(&data, &options(&store)).unwrap();
    let mut expected: Vec<(String, &str)> = planted
        .iter()
        .map(|(name, _, why)| (format!("uploads/.spare/{name}"), *why))
        .chain([
            (format!("uploads/.spare/{folder}"), "not a spare file"),
            (
                format!("uploads/.spare/{}", spares[1]),
                "carries a modification time of day",
            ),
        ])
        .collect();
    expected.sort();
    let found = file_findings(&audit);
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((path, why), (rel, start)) in found.iter().zip(&expected) {
        assert_eq!(path, rel);
        assert!(why.starts_with(start), "{path}: {why}");
    }

    // The pool's own time dates when a spare was last taken, so it is checked too; and
    // a pool that is not a folder is a finding.
    std::fs::File::open(&pool)
        .unwrap()
        .set_times(FileTimes::new().set_modified(morning()))
        .unwrap();
    let audit = audit_store(&data, &options(&store)).unwrap();
    assert!(
        file_findings(&audit)
            .iter()
            .any(|(p, why)| p == "uploads/.spare" && why.starts_with("carries a modification")),
        "{:#?}",
        audit.findings
    );
    std::fs::remove_dir_all(&pool).unwrap();
    std::fs::write(&pool, b"").unwrap();
    set_epoch(&pool);
    set_epoch(&data.join("uploads"));
    let audit = audit_store(&data, &options(&store)).unwrap();
    let found = file_findings(&audit);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, "uploads/.spare");
    assert!(found[0].1.starts_with("not a folder"), "{}", found[0].1);
}

/// An auditor who does not own the copy gets no `O_NOATIME`: the audit still runs, on
/// plain opens, and says that its reads may have set access times, which a second audit
/// of the same copy then reports. Needs root, to run the binary as another user.
#[test]
fn an_audit_by_another_user_falls_back_to_plain_opens_and_says_so() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    use std::os::unix::process::CommandExt as _;

    let store = clean_store();
    let copy = tempfile::tempdir().unwrap();
    // What this process creates it owns: root, or the test cannot switch user.
    assert_eq!(
        std::fs::metadata(copy.path()).unwrap().uid(),
        0,
        "this test runs the auditor as `nobody`, which needs root"
    );
    let data = copy.path().join("data");
    copy_dir(&store.data(), &data);
    // Readable by everyone, owned by root; the modes change ctime only.
    for (path, _, _, _) in snapshot(copy.path()) {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = upload_times(&data);
    let run = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_peluit-audit"))
            .args(["--json", "store"])
            .arg(&data)
            .uid(65534)
            .gid(65534)
            .env("TMPDIR", std::env::temp_dir())
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stdout)));
        (output.status.code(), json)
    };
    let (status, first) = run();
    assert_eq!(status, Some(0), "{first:#}");
    let notes = first["store"]["notes"].to_string();
    assert!(notes.contains("without O_NOATIME"), "{notes}");
    assert_ne!(upload_times(&data), before, "plain reads set access times");

    let (status, second) = run();
    assert_eq!(status, Some(1), "{second:#}");
    let findings = second["store"]["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    assert!(
        findings.iter().all(|f| f["why"]
            .as_str()
            .unwrap()
            .starts_with("carries an access time")),
        "{second:#}"
    );
}
