//! Bring your own ciphertext with files of several MiB: the file reaches the store through
//! one append session, byte-identical, and opens on the desk; a file over the limit and a
//! failed disk sync answer an error page and leave no case and no spool file behind
//! (docs/api.md#byo).

#![allow(clippy::unwrap_used)]

mod common;

use common::{INSTITUTION, TestServer};
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_store::CiphertextStore as _;

/// Content no two chunks of which are alike, so a reordered, doubled or dropped chunk
/// cannot open to the same bytes.
fn content(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Posts `file` through the bring-your-own form; returns the status and the answer page.
async fn post(server: &TestServer, file: Vec<u8>) -> (u16, String) {
    let file = reqwest::multipart::Part::bytes(file).file_name("laporan.age");
    let response = server.submit_file(INSTITUTION, file).await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The text of the element with `id` on an answer page.
fn element(page: &str, id: &str) -> String {
    let start = page.find(&format!("id=\"{id}\">")).unwrap() + id.len() + 6;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].to_owned()
}

fn spool_files(server: &TestServer) -> usize {
    std::fs::read_dir(server.dir.path().join("spool"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn a_file_past_one_commit_stretch_opens_on_the_desk() {
    let server = TestServer::start().await;
    // 70 MiB: past the 64 MiB between two commits, so the copy commits midway and at the
    // end, and its last chunk is a short one.
    let plaintext = content((70 << 20) + 12_345);
    // Any age tool: plain age to the published recipients, no padding.
    let sealed = peluit_proto::seal::seal(&plaintext, &server.desk.recipients()).unwrap();
    let (status, page) = post(&server, sealed.clone()).await;
    assert_eq!(status, 201, "{page}");
    let case: CaseId = element(&page, "case-id").parse().unwrap();
    assert_eq!(
        spool_files(&server),
        0,
        "the spool file went with the request"
    );

    // The store: one complete upload, attached to the case, exactly as long as the file,
    // in one file on disk of that length.
    let institution: InstitutionId = INSTITUTION.parse().unwrap();
    let record = server.store.case(&institution, case).unwrap();
    assert_eq!(record.attachments.len(), 1);
    let upload: UploadId = record.attachments[0];
    let state = server.store.upload_state(&institution, upload).unwrap();
    assert!(state.complete);
    assert_eq!(state.attached_to, Some(case));
    assert_eq!(state.received, sealed.len() as u64);
    assert_eq!(state.declared_len, sealed.len() as u64);
    let on_disk = server
        .dir
        .path()
        .join("store/uploads")
        .join(INSTITUTION)
        .join(upload.to_string());
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().len(),
        sealed.len() as u64
    );

    // The desk: the attachment is the reporter's file, byte for byte, and each
    // investigator's identity opens it to the reporter's content; the envelope is the
    // server's empty padded message.
    let (envelopes, attachments) = server.exported_payloads(128 << 20).await;
    assert_eq!(attachments.len(), 1);
    assert!(attachments[0] == sealed, "the exported file differs");
    for identity in &server.desk.investigators {
        let opened = peluit_proto::seal::open(
            &attachments[0],
            std::slice::from_ref(identity),
            plaintext.len(),
        )
        .unwrap();
        assert!(*opened == plaintext, "the opened file differs");
    }
    assert_eq!(envelopes.len(), 1);
    let empty =
        peluit_proto::seal::open_padded(&envelopes[0], &server.desk.investigators[..1], 1 << 20)
            .unwrap();
    assert!(empty.is_empty());

    // The same file again is refused: its SHA-256 was recorded like an envelope's.
    let (status, page) = post(&server, sealed).await;
    assert_eq!(status, 409, "{page}");
    assert_eq!(server.exported_payloads(128 << 20).await.1.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_large_file_over_the_limit_changes_nothing() {
    let server = TestServer::start_with(|limits| limits.max_upload_bytes = 3 << 20).await;
    let sealed = peluit_proto::seal::seal(&content(4 << 20), &server.desk.recipients()).unwrap();
    let before = server.digest();
    let (status, page) = post(&server, sealed).await;
    assert_eq!(status, 413, "{page}");
    assert_eq!(element(&page, "error-code"), "payload_too_large");
    assert_eq!(server.digest(), before);
    assert_eq!(spool_files(&server), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_sync_while_storing_answers_503_and_makes_no_case() {
    let server = TestServer::start().await;
    let sealed = peluit_proto::seal::seal(&content(3 << 20), &server.desk.recipients()).unwrap();
    // The next sync fails as a disk error would: the store turns read-only mid-request.
    server.store.dangerously_fail_next_sync();
    let (status, page) = post(&server, sealed).await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(element(&page, "error-code"), "read_only");
    assert_eq!(spool_files(&server), 0);
    assert!(server.store.is_read_only());
    let institution: InstitutionId = INSTITUTION.parse().unwrap();
    assert_eq!(server.store.export_cursor(&institution).unwrap(), 0);
    server.stop().await;
}
