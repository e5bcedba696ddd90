//! The reporter page in Debian's headless Chromium against the real server on loopback:
//! a report with attachments sealed in the browser opens with the desk keys to exactly what
//! was typed and attached (with WebAssembly and without it), replies are shown only when
//! their signatures verify under the manifest in force on their day (so a key rotation
//! does not turn earlier replies into warnings), and a manifest for another origin or with
//! a key that is not signed stops the page before it seals anything.
//!
//! The browser is driven by `web/tests/drive.mjs` (playwright-core); `./tests/run.sh`
//! installs Chromium and the npm packages first. Screenshots go to
//! `target/browser-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use peluit_proto::day::Day;
use peluit_proto::envelope::{open_follow_up, open_report, seal_report};
use peluit_proto::ids::{InstitutionId, MessageId};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    Manifest, ManifestKey, Purpose, SignedManifest, VerifiedManifest, VerifyPolicy,
};
use peluit_proto::receipt::Receipt;
use peluit_proto::reply::{Reply, ReplyKind, Status};
use peluit_proto::seal::StreamOpener;
use peluit_proto::wordlist::Language;
use peluit_server::config::{Institution, Limits};
use peluit_server::state::today;
use peluit_server::tokens::IssuedToken;
use peluit_store::{
    CiphertextStore, ManifestBytes, NewReply, SealedMailboxMessage, SealedReplyBytes, SledStore,
    TokenHash,
};
use serde_json::{Value, json};

const INSTITUTION: &str = "inspektorat-uji";
const POW_BITS: u8 = 8;

mod common;

struct Page {
    _server: common::Server,
    _dir: tempfile::TempDir,
    base: String,
    id: InstitutionId,
    store: Arc<SledStore>,
    desk: SealIdentity,
    reply_key: SigningKey,
    manifest_key: SigningKey,
    manifest: VerifiedManifest,
    escrow: SealIdentity,
}

fn manifest_for(
    origin: &str,
    desk: &SealIdentity,
    escrow: &SealIdentity,
    reply_key: &SigningKey,
) -> Manifest {
    common::manifest_for(
        INSTITUTION,
        "Inspektorat Uji",
        origin,
        desk,
        escrow,
        reply_key,
    )
}

fn start() -> Page {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (desk, escrow) = (SealIdentity::generate(), SealIdentity::generate());
    let (reply_key, manifest_key) = (SigningKey::generate(), SigningKey::generate());
    let signed = manifest_for(&base, &desk, &escrow, &reply_key).sign(&manifest_key);
    let mut policy = VerifyPolicy::new(manifest_key.verifying_key(), today());
    policy.origin = Some(base.clone());
    let manifest = signed.verify(&policy).unwrap();

    let id: InstitutionId = INSTITUTION.parse().unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
    store
        .put_manifest(&id, 1, &ManifestBytes::new(signed.to_json()))
        .unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let institutions = vec![Institution {
        id: id.clone(),
        name: "Inspektorat Uji".into(),
        manifest_key: manifest_key.verifying_key(),
    }];
    let limits = Limits {
        pow_bits: POW_BITS,
        ..Limits::default()
    };
    let server = common::Server::start(listener, store.clone(), institutions, limits, spool);
    Page {
        _server: server,
        _dir: dir,
        base,
        id,
        store,
        desk,
        reply_key,
        manifest_key,
        manifest,
        escrow,
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs one scenario of `web/tests/drive.mjs` and returns what it observed.
fn drive(scenario: Value) -> Value {
    let script = repo().join("web/tests/drive.mjs");
    assert!(
        repo().join("web/node_modules/playwright-core").is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser stories need Chromium and web/node_modules: run ./tests/run.sh, which \
         installs them"
    );
    let output = Command::new("node")
        .arg(&script)
        .arg(scenario.to_string())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "drive.mjs failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let observed: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert!(
        observed["driver_error"].is_null(),
        "the page could not be driven: {}",
        observed["driver_error"]
    );
    observed
}

fn screenshots() -> String {
    repo()
        .join("target/browser-screenshots")
        .to_string_lossy()
        .into_owned()
}

/// What every story must observe: requests to the page's own origin only, no CSP
/// violation, no script error, no cookie, nothing in web storage, the address unchanged
/// from `url`, where the page was opened.
fn assert_clean(observed: &Value, base: &str, url: &str) {
    for url in observed["requests"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&format!("{base}/")),
            "third-party request {url}"
        );
    }
    assert_eq!(observed["violations"], json!([]), "CSP violations");
    assert_eq!(observed["page_errors"], json!([]), "script errors");
    assert_eq!(observed["cookies"], json!([]), "cookies");
    assert_eq!(observed["storage"], json!({"local": 0, "session": 0}));
    assert_eq!(observed["final_url"], url, "address bar changed");
    for (screen, violations) in observed["axe"].as_object().unwrap() {
        assert_eq!(violations, &json!([]), "axe-core on the {screen} screen");
    }
}

fn report_story(jitless: bool) {
    report_story_with(jitless, None);
}

/// The report story; `fail_once` cuts off the first request matching it, as a dropped
/// connection would.
fn report_story_with(jitless: bool, fail_once: Option<&str>) {
    let page = start();
    let files = tempfile::tempdir().unwrap();
    let small = files.path().join("catatan rapat.txt");
    std::fs::write(&small, "Rapat 3 Maret: pembagian fee 10%.\n").unwrap();
    let large = files.path().join("rekaman.bin");
    let large_bytes: Vec<u8> = (0..2_600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&large, &large_bytes).unwrap();
    let what = "Kepala dinas menerima uang dari rekanan.\nDua kali, di kantor.";
    // The institution's own address, /i/ID, in one of the two runs.
    let url = if jitless {
        format!("{}/i/{}", page.base, page.id)
    } else {
        format!("{}/", page.base)
    };
    let observed = drive(json!({
        "kind": "report",
        "name": if jitless { "report-nowasm" } else { "report" },
        "url": url,
        "jitless": jitless,
        "screenshots": screenshots(),
        "answers": {"category": "pengadaan", "what_happened": what, "estimated_loss": "250000000"},
        "files": [small, large],
        "fail_once": fail_once,
    }));
    if fail_once.is_some() {
        let cut = observed["failed_once"]
            .as_str()
            .expect("a request was cut off");
        assert!(
            cut.contains("/uploads/") && cut.contains("?offset="),
            "{cut}"
        );
    }
    assert!(observed["error"].is_null(), "{}", observed["error"]);
    assert_clean(&observed, &page.base, &url);
    assert_eq!(observed["engine_note_visible"], jitless, "engine note");
    assert_eq!(observed["english_button"], "Write a new report");
    let fingerprint =
        peluit_proto::manifest::fingerprint_words(&page.manifest_key.verifying_key(), Language::Id)
            .join(" ");
    assert_eq!(observed["fingerprint"], fingerprint);
    let receipt = observed["receipt"].as_str().unwrap();
    assert_eq!(receipt.split(' ').count(), 10);
    assert_eq!(observed["clipboard"], receipt);
    assert_eq!(observed["download_name"], "peluit-receipt.txt");
    assert_eq!(observed["wrong_check_refused"], true);
    let case: peluit_proto::ids::CaseId = observed["case_line"]
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // The desk keys open the stored case to exactly what was typed and attached.
    let envelope = page.store.envelope(&page.id, case).unwrap();
    let report = open_report(&envelope, std::slice::from_ref(&page.desk)).unwrap();
    report.check_against(page.manifest.form()).unwrap();
    assert_eq!(report.language, Language::Id);
    let answers: Vec<(&str, &str)> = report
        .answers
        .iter()
        .map(|a| (a.question.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            ("category", "pengadaan"),
            ("what_happened", what),
            ("estimated_loss", "250000000")
        ]
    );
    let keys = Receipt::parse(receipt).unwrap().derive(&page.id);
    assert_eq!(report.mailbox, keys.mailbox_public_key());
    assert_eq!(report.reply_to, keys.reply_recipient());
    let expected = [
        (
            "catatan rapat.txt",
            "text/plain",
            std::fs::read(&small).unwrap(),
        ),
        ("rekaman.bin", "application/octet-stream", large_bytes),
    ];
    assert_eq!(report.attachments.len(), expected.len());
    for (attachment, (name, media_type, content)) in report.attachments.iter().zip(expected) {
        assert_eq!(
            (attachment.name.as_str(), attachment.media_type.as_str()),
            (name, media_type)
        );
        let mut sealed = Vec::new();
        for chunk in page
            .store
            .attachment_chunks(&page.id, case, attachment.upload)
            .unwrap()
        {
            sealed.extend_from_slice(chunk.unwrap().as_bytes());
        }
        assert_eq!(
            <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&sealed)),
            attachment.sealed_sha256
        );
        let mut opened = Vec::new();
        StreamOpener::new(&sealed[..], std::slice::from_ref(&page.escrow))
            .unwrap()
            .read_to_end(&mut opened)
            .unwrap();
        assert_eq!(opened.len() as u64, attachment.size);
        assert!(opened == content, "{name} opens to the file attached");
    }
}

#[test]
fn a_report_sealed_in_the_page_opens_on_the_desk() {
    report_story(false);
}

#[test]
fn without_webassembly_the_page_still_seals_the_same_report() {
    report_story(true);
}

#[test]
fn an_upload_cut_off_midway_resumes_and_the_report_still_opens() {
    report_story_with(false, Some("/uploads/[0-9a-f]{32}\\?offset="));
}

/// A case submitted the way the page does it (through proto), with its receipt.
fn submit_case(page: &Page) -> (peluit_proto::ids::CaseId, Receipt) {
    let receipt = Receipt::generate();
    let keys = receipt.derive(&page.id);
    let report = peluit_proto::envelope::Report {
        institution: page.id.clone(),
        language: Language::Id,
        date: today(),
        answers: vec![
            peluit_proto::envelope::Answer::new("category", "suap"),
            peluit_proto::envelope::Answer::new("what_happened", "Suap izin usaha."),
        ],
        attachments: vec![],
        reply_to: keys.reply_recipient(),
        mailbox: keys.mailbox_public_key(),
    };
    let sealed = seal_report(&report, &page.manifest).unwrap();
    let stamp = peluit_proto::pow::Stamp::mint(&sealed.sha256(), POW_BITS);
    let answer: Value = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v1/institutions/{INSTITUTION}/reports",
            page.base
        ))
        .json(&json!({
            "version": 1,
            "envelope": peluit_proto::encoding::b64(sealed.as_bytes()),
            "attachments": [],
            "mailbox_key": keys.mailbox_public_key().to_string(),
            "stamp": serde_json::from_slice::<Value>(&stamp.to_json()).unwrap(),
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    (answer["case"].as_str().unwrap().parse().unwrap(), receipt)
}

fn sealed_reply(
    page: &Page,
    case: peluit_proto::ids::CaseId,
    receipt: &Receipt,
    seq: u32,
    kind: ReplyKind,
    text: &str,
    signer: &SigningKey,
) -> Vec<u8> {
    sealed_reply_under(
        &page.manifest,
        (case, receipt, seq, today()),
        kind,
        text,
        signer,
    )
}

/// A reply to `case` written on `date`, sealed to the reporter and `manifest`'s recipients.
fn sealed_reply_under(
    manifest: &VerifiedManifest,
    (case, receipt, seq, date): (peluit_proto::ids::CaseId, &Receipt, u32, Day),
    kind: ReplyKind,
    text: &str,
    signer: &SigningKey,
) -> Vec<u8> {
    let keys = receipt.derive(manifest.institution_id());
    let reply = Reply {
        case,
        seq,
        date,
        kind,
        text: text.to_owned(),
        attachments: vec![],
    };
    peluit_proto::reply::seal_reply(
        &reply,
        &keys.reply_recipient(),
        &keys.mailbox_public_key(),
        manifest.institution_id(),
        &manifest.seal_recipients(),
        signer,
    )
    .unwrap()
    .to_json()
}

fn mailbox_entry(seq: u32, day: Day) -> Value {
    json!({"seq": seq, "id": MessageId::random().to_string(), "kind": "reply",
        "day": day.to_string(), "len": 1})
}

#[test]
fn replies_signed_before_a_key_rotation_stay_verified_after_it() {
    let page = start();
    let (case, receipt) = submit_case(&page);
    let yesterday = Day::from_unix_seconds((today().days_since_epoch() - 1) * 86_400).unwrap();
    // Written yesterday under serial 1 (valid from yesterday) with Ani's first key.
    let before = sealed_reply_under(
        &page.manifest,
        (case, &receipt, 1, yesterday),
        ReplyKind::Message,
        "Laporan Anda sudah kami terima.",
        &page.reply_key,
    );

    // Today the inspectorate rotates Ani's keys and publishes serial 2 through the API.
    let (desk_after, reply_key_after) = (SealIdentity::generate(), SigningKey::generate());
    let mut rotated = manifest_for(&page.base, &desk_after, &page.escrow, &reply_key_after);
    rotated.serial = 2;
    rotated.valid_from = today();
    let rotated = rotated.sign(&page.manifest_key);
    let token = IssuedToken::generate();
    page.store
        .put_token_hash(
            &page.id,
            TokenHash::from_bytes(token.hash()),
            "desk",
            today(),
        )
        .unwrap();
    let api = format!("{}/api/v1/institutions/{INSTITUTION}", page.base);
    let published = reqwest::blocking::Client::new()
        .post(format!("{api}/manifests"))
        .bearer_auth(token.expose_secret())
        .body(rotated.to_json())
        .send()
        .unwrap();
    assert_eq!(published.status(), 201);
    let mut policy = VerifyPolicy::new(page.manifest_key.verifying_key(), today());
    policy.origin = Some(page.base.clone());
    let rotated = rotated.verify(&policy).unwrap();
    let after = sealed_reply_under(
        &rotated,
        (case, &receipt, 2, today()),
        ReplyKind::Status(Status::InReview),
        "",
        &reply_key_after,
    );
    page.store
        .add_replies(
            &page.id,
            [(yesterday, before), (today(), after)]
                .into_iter()
                .map(|(day, reply)| NewReply {
                    case,
                    id: MessageId::random(),
                    day,
                    reply: SealedReplyBytes::new(reply),
                })
                .collect(),
        )
        .unwrap();
    // Through a compromised server only: a reply signed by a key never listed, and one
    // signed today with the key the rotation dropped (serial 1 is still within its
    // validity, but serial 2 speaks for today).
    let never_listed = sealed_reply_under(
        &rotated,
        (case, &receipt, 3, today()),
        ReplyKind::Message,
        "Kirim KTP Anda ke nomor ini.",
        &SigningKey::generate(),
    );
    let dropped = sealed_reply_under(
        &page.manifest,
        (case, &receipt, 4, today()),
        ReplyKind::Message,
        "Kasus ditutup, hapus bukti Anda.",
        &page.reply_key,
    );
    let listing = json!({"case": case.to_string(), "messages": [
        mailbox_entry(1, yesterday), mailbox_entry(2, today()),
        mailbox_entry(3, today()), mailbox_entry(4, today()),
    ]});
    let observed = drive(json!({
        "kind": "follow-up",
        "name": "rotation",
        "url": format!("{}/", page.base),
        "screenshots": screenshots(),
        "receipt": receipt.words(Language::Id).to_string(),
        "routes": [
            {"url": format!("{api}/mailbox/messages"), "body": listing.to_string()},
            {"url": format!("{api}/mailbox/messages/3"), "body": String::from_utf8(never_listed).unwrap()},
            {"url": format!("{api}/mailbox/messages/4"), "body": String::from_utf8(dropped).unwrap()},
        ],
    }));
    assert!(observed["error"].is_null(), "{}", observed["error"]);
    assert_clean(&observed, &page.base, &format!("{}/", page.base));
    assert!(
        observed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|url| url.as_str() == Some(&format!("{api}/manifests"))),
        "the page fetched the manifest history"
    );
    let shown = observed["messages"].to_string();
    assert!(
        shown.contains("Laporan Anda sudah kami terima.") && shown.contains(&yesterday.to_string()),
        "the reply from before the rotation is shown: {shown}"
    );
    assert!(shown.contains("investigator:ani"), "{shown}");
    assert_eq!(
        observed["status"], "Status: sedang ditelaah.",
        "the status change signed with the new key is shown"
    );
    assert!(
        !shown.contains("KTP") && !shown.contains("hapus bukti"),
        "neither forged reply is shown: {shown}"
    );
    assert_eq!(observed["warnings"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(
        observed["messages"].as_array().unwrap().len(),
        3,
        "two verified replies and one warning: {shown}"
    );
}

#[test]
fn replies_show_only_when_their_signature_verifies_and_a_follow_up_reaches_the_desk() {
    let page = start();
    let (case, receipt) = submit_case(&page);
    let genuine = |seq, kind, text: &str| NewReply {
        case,
        id: MessageId::random(),
        day: today(),
        reply: SealedReplyBytes::new(sealed_reply(
            &page,
            case,
            &receipt,
            seq,
            kind,
            text,
            &page.reply_key,
        )),
    };
    page.store
        .add_replies(
            &page.id,
            vec![
                genuine(
                    1,
                    ReplyKind::Message,
                    "Terima kasih, laporan Anda kami telaah.",
                ),
                genuine(2, ReplyKind::Status(Status::InReview), ""),
            ],
        )
        .unwrap();
    // A third reply, signed by a key the manifest does not list, reaches the page only
    // through a compromised server; the store would refuse it, so the test serves it.
    let forged = sealed_reply(
        &page,
        case,
        &receipt,
        3,
        ReplyKind::Message,
        "Kirim KTP Anda ke nomor ini.",
        &SigningKey::generate(),
    );
    let api = format!("{}/api/v1/institutions/{INSTITUTION}/mailbox", page.base);
    let listing = json!({"case": case.to_string(), "messages": [
        {"seq": 1, "id": MessageId::random().to_string(), "kind": "reply", "day": today().to_string(), "len": 1},
        {"seq": 2, "id": MessageId::random().to_string(), "kind": "reply", "day": today().to_string(), "len": 1},
        {"seq": 3, "id": MessageId::random().to_string(), "kind": "reply", "day": today().to_string(), "len": 1},
    ]});
    let observed = drive(json!({
        "kind": "follow-up",
        "name": "follow-up",
        "url": format!("{}/", page.base),
        "screenshots": screenshots(),
        "receipt": receipt.words(Language::Id).to_string(),
        "follow_up": "Tambahan: rapat berikutnya 10 Maret.",
        "routes": [
            {"url": format!("{api}/messages"), "body": listing.to_string()},
            {"url": format!("{api}/messages/3"), "body": String::from_utf8(forged).unwrap()},
        ],
    }));
    assert!(observed["error"].is_null(), "{}", observed["error"]);
    assert_clean(&observed, &page.base, &format!("{}/", page.base));
    let shown = observed["messages"].to_string();
    assert!(
        shown.contains("Terima kasih, laporan Anda kami telaah."),
        "{shown}"
    );
    assert!(shown.contains("investigator:ani"), "{shown}");
    assert!(
        !shown.contains("KTP"),
        "a forged reply is never shown: {shown}"
    );
    assert_eq!(observed["warnings"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(observed["status"], "Status: sedang ditelaah.");
    assert_eq!(observed["follow_up_sent"], true);

    // The follow-up is in the case's mailbox, and only the desk can read it.
    let mailbox = page.store.mailbox(&page.id, case).unwrap();
    let last = mailbox.last().unwrap();
    let SealedMailboxMessage::FollowUp(sealed) = page
        .store
        .mailbox_message(&page.id, case, last.seq)
        .unwrap()
    else {
        panic!("the last message is the follow-up");
    };
    let follow_up = open_follow_up(&sealed, std::slice::from_ref(&page.desk)).unwrap();
    assert_eq!(follow_up.text, "Tambahan: rapat berikutnya 10 Maret.");
}

#[test]
fn a_manifest_for_another_origin_or_with_an_unsigned_key_stops_the_page() {
    let page = start();
    let other_origin = manifest_for(
        "https://inspektorat.example.go.id",
        &page.desk,
        &page.escrow,
        &page.reply_key,
    )
    .sign(&page.manifest_key);
    let mut extra = manifest_for(&page.base, &page.desk, &page.escrow, &page.reply_key);
    let signature = extra
        .clone()
        .sign(&page.manifest_key)
        .signature()
        .to_bytes();
    extra.keys.insert(
        1,
        ManifestKey {
            holder: "investigator:mallory".into(),
            purpose: Purpose::Seal,
            public: SealIdentity::generate().recipient().to_string(),
        },
    );
    let tampered = format!(
        "{{\"manifest\":{},\"signature\":\"{}\"}}",
        String::from_utf8(extra.canonical_json()).unwrap(),
        peluit_proto::encoding::b64(&signature)
    );
    assert!(SignedManifest::from_json(tampered.as_bytes()).is_ok());
    let manifest_url = format!("{}/api/v1/institutions/{INSTITUTION}/manifest", page.base);
    for (body, code) in [
        (
            String::from_utf8(other_origin.to_json()).unwrap(),
            "origin-not-listed",
        ),
        (tampered, "bad-signature"),
    ] {
        let observed = drive(json!({
            "kind": "start",
            "url": format!("{}/", page.base),
            "routes": [{"url": manifest_url, "body": body}],
        }));
        let error = observed["error"].as_str().expect("the page refuses");
        assert!(error.contains(code), "{error}");
        assert!(error.contains("tidak akan mengenkripsi"), "{error}");
        for url in observed["requests"].as_array().unwrap() {
            let url = url.as_str().unwrap();
            assert!(
                !url.contains("/uploads") && !url.contains("/reports"),
                "{url}"
            );
        }
    }
}
