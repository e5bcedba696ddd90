//! Streamed ingest into upload files: a body of several MiB in one `PUT` lands
//! byte-identical with one durable commit, a body cut off midway resumes from the last
//! durable offset, and a body refused midway leaves the store as it was
//! (docs/api.md#uploads).

#![allow(clippy::unwrap_used)]

mod common;

use common::{INSTITUTION, TestServer};
use peluit_proto::keys::SigningKey;
use serde_json::Value;

/// Completes the upload, submits it with a report and returns the exported attachment.
async fn complete_and_export(server: &TestServer, id: &str) -> Vec<u8> {
    assert_eq!(server.complete_upload(id).await.status(), 200);
    let mailbox = SigningKey::generate();
    let envelope = server.seal(b"laporan dengan lampiran besar");
    let (status, _) = server
        .submit_report(&envelope, &[id.to_owned()], &mailbox)
        .await;
    assert_eq!(status, 201);
    let (_, mut attachments) = server.exported_payloads(64 << 20).await;
    attachments.pop().unwrap()
}

#[tokio::test]
async fn a_body_of_several_mib_in_one_put_lands_byte_identical() {
    let server = TestServer::start().await;
    // Not a multiple of the chunk or batch size, so the last batch and chunk are short.
    let content: Vec<u8> = (0..7_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sealed = server.seal(&content);
    assert!(sealed.len() > 6 << 20);
    let id = server.create_upload(sealed.len()).await;
    let syncs = server.store.sync_count();
    let response = server.put_upload(&id, 0, sealed.clone()).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["offset"].as_u64().unwrap() as usize, sealed.len());
    // Written as it streams in and made durable once at the end (the body is under the
    // commit interval), not once per chunk or write.
    let used = server.store.sync_count() - syncs;
    assert_eq!(used, 1, "{used} syncs for {} bytes", sealed.len());
    assert_eq!(complete_and_export(&server, &id).await, sealed);
    server.stop().await;
}

#[tokio::test]
async fn a_body_cut_off_mid_batch_resumes_from_the_durable_offset() {
    let server = TestServer::start().await;
    let content: Vec<u8> = (0..6_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let sealed = server.seal(&content);
    let id = server.create_upload(sealed.len()).await;
    // Promise the whole body, send 3.3 MB (one full batch and part of the next), hang up.
    let sent = 3_300_001;
    server.put_cut_off(&id, &sealed, sent).await;
    let offset = server.wait_for_offset(&id, sent, 100).await;
    assert_eq!(offset, sent, "the bytes that arrived were kept");
    // A PUT at a stale offset is refused; at the durable offset it goes on.
    let stale = server.put_upload(&id, 0, sealed[..10].to_vec()).await;
    assert_eq!(stale.status(), 409);
    let resumed = server
        .put_upload(&id, offset, sealed[offset..].to_vec())
        .await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(complete_and_export(&server, &id).await, sealed);
    server.stop().await;
}

#[tokio::test]
async fn a_body_refused_midway_leaves_the_store_as_it_was() {
    let server = TestServer::start().await;
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i * 11 % 239) as u8).collect();
    let sealed = server.seal(&content);
    let id = server.create_upload(sealed.len()).await;
    let before = server.digest();
    // Chunked, so the length is unknown until the bytes arrive: several writes reach the
    // upload's file before the byte past the declared size does. That byte comes in a
    // chunk of its own at the very end, so the server has read the whole request when it
    // answers and the answer is not lost to a reset connection.
    let mut request = format!(
        "PUT /api/v1/institutions/{INSTITUTION}/uploads/{id}?offset=0 HTTP/1.1\r\nHost: x\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in sealed.chunks(100_000).chain([&[0u8][..]]) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let addr = server.addr;
    // Not `raw_exchange`: a client that closes its sending side is a client gone, and
    // the server would hang up without an answer.
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&request).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&response[..response.len().min(12)]).into_owned();
    assert_eq!(
        head,
        "HTTP/1.1 413",
        "{}",
        String::from_utf8_lossy(&response)
    );
    // Nothing was committed, so nothing of the refused body is left, not even a file.
    assert_eq!(
        server.digest(),
        before,
        "the refused body left bytes behind"
    );
    assert_eq!(server.upload_offset(&id).await, 0);
    // The upload still takes the right bytes.
    let response = server.put_upload(&id, 0, sealed.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(complete_and_export(&server, &id).await, sealed);
    server.stop().await;
}
