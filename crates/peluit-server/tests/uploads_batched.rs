//! Batched ingest: a body of several MiB in one `PUT` lands byte-identical, and a body
//! cut off mid-batch resumes from the last durable offset (docs/api.md#uploads).

#![allow(clippy::unwrap_used)]

mod common;

use common::{INSTITUTION, TestServer};
use peluit_proto::keys::SigningKey;
use serde_json::{Value, json};

async fn create(server: &TestServer, len: usize) -> String {
    let created: Value = server
        .client
        .post(server.api("/uploads"))
        .json(&json!({"version": 1, "sealed_size": len}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["upload"].as_str().unwrap().to_owned()
}

async fn offset_of(server: &TestServer, id: &str) -> usize {
    let state: Value = server
        .client
        .get(server.api(&format!("/uploads/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["offset"].as_u64().unwrap() as usize
}

/// Completes the upload, submits it with a report and returns the exported attachment.
async fn complete_and_export(server: &TestServer, id: &str) -> Vec<u8> {
    let done = server
        .client
        .post(server.api(&format!("/uploads/{id}/complete")))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let mailbox = SigningKey::generate();
    let envelope = server.seal(b"laporan dengan lampiran besar");
    let (status, _) = server
        .submit(&server.report_body(&envelope, &[id.to_owned()], &mailbox))
        .await;
    assert_eq!(status, 201);
    let bundle = server
        .client
        .get(server.api("/export?since=0"))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut reader = peluit_proto::bundle::BundleReader::new(&bundle[..]).unwrap();
    let mut found = None;
    while let Some(mut frame) = reader.next_frame().unwrap() {
        if let peluit_proto::bundle::FrameMeta::Attachment { .. } = frame.meta() {
            found = Some(frame.read_payload_to_end(64 << 20).unwrap());
        }
    }
    found.unwrap()
}

#[tokio::test]
async fn a_body_of_several_mib_in_one_put_lands_byte_identical() {
    let server = TestServer::start().await;
    // Not a multiple of the chunk or batch size, so the last batch and chunk are short.
    let content: Vec<u8> = (0..7_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sealed = server.seal(&content);
    assert!(sealed.len() > 6 << 20);
    let id = create(&server, sealed.len()).await;
    let syncs = server.store.sync_count();
    let response = server
        .client
        .put(server.api(&format!("/uploads/{id}?offset=0")))
        .body(sealed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["offset"].as_u64().unwrap() as usize, sealed.len());
    // One durable step per batch of 2 MiB, not one per 64 KiB chunk.
    let used = server.store.sync_count() - syncs;
    assert!(used <= 8, "{used} syncs for {} bytes", sealed.len());
    assert_eq!(complete_and_export(&server, &id).await, sealed);
    server.stop().await;
}

#[tokio::test]
async fn a_body_cut_off_mid_batch_resumes_from_the_durable_offset() {
    let server = TestServer::start().await;
    let content: Vec<u8> = (0..6_000_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let sealed = server.seal(&content);
    let id = create(&server, sealed.len()).await;
    // Promise the whole body, send 3.3 MB (one full batch and part of the next), hang up.
    let sent = 3_300_001;
    let mut request = format!(
        "PUT /api/v1/institutions/{INSTITUTION}/uploads/{id}?offset=0 HTTP/1.1\r\nHost: x\r\n\
         Content-Length: {}\r\n\r\n",
        sealed.len()
    )
    .into_bytes();
    request.extend_from_slice(&sealed[..sent]);
    let addr = server.addr;
    tokio::task::spawn_blocking(move || common::raw_exchange(addr, &request))
        .await
        .unwrap();
    let mut offset = 0;
    for _ in 0..100 {
        offset = offset_of(&server, &id).await;
        if offset == sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(offset, sent, "the bytes that arrived were kept");
    // A PUT at a stale offset is refused; at the durable offset it goes on.
    let stale = server
        .client
        .put(server.api(&format!("/uploads/{id}?offset=0")))
        .body(sealed[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let resumed = server
        .client
        .put(server.api(&format!("/uploads/{id}?offset={offset}")))
        .body(sealed[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    assert_eq!(complete_and_export(&server, &id).await, sealed);
    server.stop().await;
}
