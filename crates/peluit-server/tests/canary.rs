//! The canary: reports, attachments, follow-ups, replies and a bring-your-own file whose
//! plaintext holds a unique marker are sealed by proto and sent with a distinctive
//! User-Agent, X-Forwarded-For and Referer (and the marker in a query string). Then every
//! byte of the data directory and of the captured log is scanned for each of them, raw,
//! in hex and in base64 at every alignment: there must be zero hits.

mod common;

use std::path::Path;

use common::{INSTITUTION, TestServer, reply_bundle};
use peluit_proto::envelope::{
    Answer, AttachmentRef, FollowUp, Report, seal_follow_up, seal_report,
};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{SignedManifest, VerifyPolicy};
use peluit_proto::seal::StreamSealer;
use peluit_proto::wordlist::Language;
use peluit_server::state::today;
use rand::RngCore as _;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Every encoding of `needle` that could appear in stored or logged bytes.
fn encodings(needle: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let raw = needle.as_bytes();
    let mut out = vec![
        raw.to_vec(),
        hex::encode(raw).into_bytes(),
        hex::encode_upper(raw).into_bytes(),
    ];
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        // A substring's base64 depends on its alignment in the surrounding data: encode
        // at each of the three offsets and keep only the characters the needle alone
        // determines.
        for shift in 0..3 {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(raw);
            let text = engine.encode(&shifted);
            let start = if shift == 0 { 0 } else { 4 };
            let end = text.len() - 4;
            out.push(text.as_bytes()[start..end].to_vec());
        }
    }
    out
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable data directory") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn hits(haystack: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, needle)| {
            haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[tokio::test]
async fn no_marker_user_agent_or_address_reaches_disk_or_log() {
    let marker = format!("CANARY-PLAINTEXT-{}", random_hex(12));
    let user_agent = format!("CanaryBrowser/{}", random_hex(8));
    let address = "203.0.113.197";
    let referer = format!("https://referer-canary.example/{}", random_hex(8));
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_str(&user_agent).unwrap());
    headers.insert("x-forwarded-for", HeaderValue::from_static(address));
    headers.insert("x-real-ip", HeaderValue::from_static(address));
    headers.insert(
        "forwarded",
        HeaderValue::from_str(&format!("for={address}")).unwrap(),
    );
    headers.insert("referer", HeaderValue::from_str(&referer).unwrap());

    let mut server = TestServer::start().await;
    server.client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let institution = INSTITUTION.parse().unwrap();
    let manifest_json = server
        .get(server.api("/manifest"))
        .await
        .bytes()
        .await
        .unwrap();
    let manifest = SignedManifest::from_json(&manifest_json)
        .unwrap()
        .verify(&VerifyPolicy::new(
            server.desk.manifest_key.verifying_key(),
            today(),
        ))
        .unwrap();

    // An attachment whose plaintext is the marker, many times over, sealed as a stream.
    let content = marker.repeat(10_000).into_bytes();
    let mut sealer = StreamSealer::new(&manifest.seal_recipients(), content.len() as u64).unwrap();
    let mut attachment = sealer.take_output();
    for piece in content.chunks(65_536) {
        attachment.extend(sealer.push(piece).unwrap());
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        attachment.extend(tail);
    }
    let upload = server.upload(&attachment).await;

    let mailbox = SigningKey::generate();
    let reply_identity = SealIdentity::generate();
    let report = Report {
        institution: INSTITUTION.parse().unwrap(),
        language: Language::Id,
        date: today(),
        answers: vec![
            Answer::new("category", "suap"),
            Answer::new("what_happened", marker.clone()),
            Answer::new("free_text", format!("{marker} {user_agent} {address}")),
        ],
        attachments: vec![AttachmentRef {
            upload: upload.parse().unwrap(),
            name: format!("{marker}.pdf"),
            media_type: "application/pdf".into(),
            size: content.len() as u64,
            sealed_sha256: sealer.sealed_sha256(),
        }],
        reply_to: reply_identity.recipient(),
        mailbox: mailbox.verifying_key(),
    };
    let envelope = seal_report(&report, &manifest).unwrap().into_bytes();
    let (status, answer) = server.submit_report(&envelope, &[upload], &mailbox).await;
    assert_eq!(status, 201, "{answer}");
    let case: peluit_proto::ids::CaseId = answer["case"].as_str().unwrap().parse().unwrap();

    // A follow-up and a reply that both carry the marker.
    let (_, session) = server.mailbox_session(&mailbox).await;
    let auth = format!("Mailbox {}", session.unwrap());
    let follow_up = FollowUp {
        institution: INSTITUTION.parse().unwrap(),
        date: today(),
        text: marker.clone(),
        attachments: Vec::new(),
    };
    let sealed = seal_follow_up(&follow_up, &manifest).unwrap();
    let mailbox_id = peluit_proto::auth::MailboxId::of(&mailbox.verifying_key());
    let signature =
        peluit_proto::auth::sign_follow_up(&mailbox, &institution, &mailbox_id, &sealed.sha256());
    let response = server
        .follow_up_request(&auth, &signature, sealed.as_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let reply = peluit_proto::reply::Reply {
        case,
        seq: 1,
        date: today(),
        kind: peluit_proto::reply::ReplyKind::Message,
        text: marker.clone(),
        attachments: Vec::new(),
    };
    let sealed_reply = peluit_proto::reply::seal_reply(
        &reply,
        &reply_identity.recipient(),
        &mailbox.verifying_key(),
        &institution,
        &manifest.seal_recipients(),
        &server.desk.reply_key,
    )
    .unwrap();
    let imported = server
        .import_request(reply_bundle(&institution, &[&sealed_reply]), &server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 200);

    // Bring your own ciphertext, small and large.
    for size in [1usize, 200] {
        let file = peluit_proto::seal::seal(
            marker.repeat(size * 100).as_bytes(),
            &manifest.seal_recipients(),
        )
        .unwrap();
        let file = reqwest::multipart::Part::bytes(file).file_name(format!("{marker}.age"));
        let page = server.submit_file(INSTITUTION, file).await;
        assert_eq!(page.status(), 201);
    }
    // The marker in a query string and a refused request.
    let _ = server
        .get(server.url(&format!("/api/v1/institutions?q={marker}")))
        .await;
    let (status, _) = server
        .submit(&json!({"version": 1, "envelope": marker}))
        .await;
    assert_eq!(status, 400);
    let list = server.mailbox_messages(&auth).await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 2);

    let dir = server.dir.path().to_owned();
    let keep = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.stop().await;
    let log = common::captured_log();
    assert!(
        String::from_utf8_lossy(&log)
            .contains("route=/api/v1/institutions/{institution}/reports status=201"),
        "the log was captured"
    );

    let mut needles = Vec::new();
    for (name, value) in [
        ("marker", &marker),
        ("user-agent", &user_agent),
        ("address", &address.to_owned()),
        ("referer", &referer),
    ] {
        for (i, encoded) in encodings(value).into_iter().enumerate() {
            needles.push((format!("{name} (encoding {i})"), encoded));
        }
    }
    // The scan itself finds what it looks for, at any alignment.
    {
        use base64::Engine as _;
        let embedded = base64::engine::general_purpose::STANDARD.encode(format!("xy{marker}z"));
        assert!(!hits(embedded.as_bytes(), &needles).is_empty());
        assert!(!hits(hex::encode(format!("_{user_agent}")).as_bytes(), &needles).is_empty());
    }
    let mut files = Vec::new();
    files_under(&dir, &mut files);
    assert!(!files.is_empty(), "the store wrote files");
    let mut scanned = 0usize;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        scanned += bytes.len();
        let found = hits(&bytes, &needles);
        assert!(found.is_empty(), "{} holds {found:?}", file.display());
    }
    assert!(
        scanned > attachment.len(),
        "the ciphertext is in what was scanned"
    );
    let found = hits(&log, &needles);
    assert!(found.is_empty(), "the log holds {found:?}");
    // Nothing time-like either: no timestamps in the log.
    let text = String::from_utf8_lossy(&log);
    assert!(
        !text.contains(&today().to_string()),
        "the log carries a date"
    );
    drop(keep);
}
