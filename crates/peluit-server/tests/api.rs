//! Every endpoint over a real socket and a real sled store: the good path, and bad inputs
//! that must each get a 4xx with its code and leave the store byte-for-byte unchanged.

mod common;

use common::{INSTITUTION, TestServer, expect_error};
use peluit_proto::keys::SigningKey;
use serde_json::{Value, json};

#[tokio::test]
async fn health_institutions_and_openapi_answer() {
    let server = TestServer::start().await;
    let health: Value = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let list: Value = server
        .client
        .get(server.url("/api/v1/institutions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["institutions"][0]["id"], INSTITUTION);
    assert_eq!(list["institutions"][0]["manifest_serial"], 1);
    let doc: Value = server
        .client
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    // Scripts only from the page's own files (the CSP forbids inline script), and a
    // no-script route to the bring-your-own-ciphertext form.
    for tag in page.split("<script").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(tag.contains(" src=\"/assets/"), "inline script: {tag}");
    }
    assert!(page.contains("<noscript>") && page.contains("href=\"/submit-file\""));
    expect_error(
        server
            .client
            .get(server.url("/assets/nope.js"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.url("/api/v1/nothing"))
            .send()
            .await
            .unwrap(),
        404,
        "no_such_endpoint",
    )
    .await;
    expect_error(
        server
            .client
            .delete(server.url("/healthz"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.url("/api/v1/institutions/nobody/manifest"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn manifests_are_served_and_published_only_when_signed_and_growing() {
    let server = TestServer::start().await;
    let origin = format!("http://127.0.0.1:{}", server.addr.port());
    let current = server
        .client
        .get(server.api("/manifest"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        current.as_ref() == server.desk.signed_manifest(&origin, 1).to_json(),
        "served as signed"
    );

    let before = server.digest();
    let publish = |body: Vec<u8>, token: Option<&str>| {
        let mut request = server.client.post(server.api("/manifests")).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let two = server.desk.signed_manifest(&origin, 2).to_json();
    // No token, a wrong token.
    expect_error(
        publish(two.clone(), None).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let wrong = peluit_server::tokens::IssuedToken::generate();
    expect_error(
        publish(two.clone(), Some(wrong.expose_secret()))
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // Signed by another key.
    let forged = server
        .desk
        .manifest(&origin, 2)
        .sign(&SigningKey::generate())
        .to_json();
    expect_error(
        publish(forged, Some(&server.token)).await.unwrap(),
        422,
        "bad_signature",
    )
    .await;
    // Malformed and non-canonical JSON, wrong types.
    expect_error(
        publish(b"{nope".to_vec(), Some(&server.token))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    let mut spaced = b" ".to_vec();
    spaced.extend_from_slice(&two);
    expect_error(
        publish(spaced, Some(&server.token)).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        publish(
            br#"{"manifest":1,"signature":2}"#.to_vec(),
            Some(&server.token),
        )
        .await
        .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // Oversize.
    expect_error(
        publish(vec![b'{'; 300 * 1024], Some(&server.token))
            .await
            .unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(
        server.digest(),
        before,
        "refused publishes changed the store"
    );

    let response = publish(two.clone(), Some(&server.token)).await.unwrap();
    assert_eq!(response.status(), 201);
    // Re-publishing the same document is a retry.
    assert_eq!(
        publish(two.clone(), Some(&server.token))
            .await
            .unwrap()
            .status(),
        200
    );
    let after_two = server.digest();
    // Lower serial, and the same serial with other content.
    let one = server.desk.signed_manifest(&origin, 1).to_json();
    expect_error(
        publish(one, Some(&server.token)).await.unwrap(),
        409,
        "conflict",
    )
    .await;
    let mut other = server.desk.manifest(&origin, 2);
    other.origins.push("https://lapor.example.go.id".into());
    let other_two = other.sign(&server.desk.manifest_key).to_json();
    expect_error(
        publish(other_two, Some(&server.token)).await.unwrap(),
        409,
        "conflict",
    )
    .await;
    assert_eq!(server.digest(), after_two);

    let current = server
        .client
        .get(server.api("/manifest"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        current.as_ref() == two.as_slice(),
        "the new manifest is current"
    );
    let history: Value = server
        .client
        .get(server.api("/manifests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let serials: Vec<u64> = history["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manifest"]["serial"].as_u64().unwrap())
        .collect();
    assert_eq!(serials, [1, 2]);
    server.stop().await;
}

#[tokio::test]
async fn uploads_stream_resume_and_refuse_bad_pieces() {
    let server = TestServer::start().await;
    let sealed = server.seal(&vec![7u8; 300_000]);
    let create = |size: Value| {
        server
            .client
            .post(server.api("/uploads"))
            .json(&json!({"version": 1, "sealed_size": size}))
            .send()
    };
    let before = server.digest();
    expect_error(create(json!("big")).await.unwrap(), 400, "bad_request").await;
    expect_error(create(json!(0)).await.unwrap(), 400, "bad_request").await;
    expect_error(
        create(json!(u64::MAX)).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    expect_error(
        server
            .client
            .post(server.api("/uploads"))
            .body("{")
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        server
            .client
            .post(server.api("/uploads"))
            .json(&json!({"version": 1, "sealed_size": 5, "name": "x.pdf"}))
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_eq!(server.digest(), before);

    let created: Value = create(json!(sealed.len()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upload"].as_str().unwrap().to_owned();
    assert_eq!(created["offset"], 0);
    let put = |offset: Option<usize>, header: Option<usize>, body: Vec<u8>| {
        let url = match offset {
            Some(o) => server.api(&format!("/uploads/{id}?offset={o}")),
            None => server.api(&format!("/uploads/{id}")),
        };
        let mut request = server.client.put(url).body(body);
        if let Some(h) = header {
            request = request.header("upload-offset", h.to_string());
        }
        request.send()
    };
    let after_create = server.digest();
    // Non-age first piece, a first piece sealed to the wrong count, no offset, a wrong
    // (out-of-order) offset, more than declared, unknown and malformed ids.
    expect_error(
        put(Some(0), None, vec![b'x'; 70_000]).await.unwrap(),
        400,
        "wrong_recipients",
    )
    .await;
    let two_of_three =
        peluit_proto::seal::seal_padded(&[1u8; 10], &server.desk.recipients()[..2]).unwrap();
    expect_error(
        put(Some(0), None, two_of_three).await.unwrap(),
        400,
        "wrong_recipients",
    )
    .await;
    expect_error(
        put(None, None, sealed[..1000].to_vec()).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        put(Some(5000), None, sealed[5000..9000].to_vec())
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    expect_error(
        put(Some(0), Some(1), sealed[..9000].to_vec())
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    let mut overlong = sealed.clone();
    overlong.push(0);
    expect_error(
        put(Some(0), None, overlong).await.unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    let unknown = peluit_proto::ids::UploadId::random();
    expect_error(
        server
            .client
            .get(server.api(&format!("/uploads/{unknown}")))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.api("/uploads/XYZ"))
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // Completing a truncated upload.
    expect_error(
        server
            .client
            .post(server.api(&format!("/uploads/{id}/complete")))
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        server.digest(),
        after_create,
        "refused pieces changed the store"
    );

    // First part by query offset, rest by header offset, then resume from GET.
    let split = 100_000;
    let first: Value = put(Some(0), None, sealed[..split].to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["offset"], split);
    let state: Value = server
        .client
        .get(server.api(&format!("/uploads/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["offset"], split);
    assert_eq!(state["complete"], false);
    let rest: Value = put(None, Some(split), sealed[split..].to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["offset"], sealed.len());
    let done: Value = server
        .client
        .post(server.api(&format!("/uploads/{id}/complete")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["complete"], true);
    expect_error(
        put(Some(sealed.len()), None, vec![1]).await.unwrap(),
        409,
        "conflict",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn an_interrupted_upload_keeps_what_arrived_and_resumes() {
    let server = TestServer::start().await;
    let sealed = server.seal(&vec![3u8; 500_000]);
    let created: Value = server
        .client
        .post(server.api("/uploads"))
        .json(&json!({"version": 1, "sealed_size": sealed.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upload"].as_str().unwrap().to_owned();
    // Promise the whole body, send a part, hang up.
    let sent = 200_000;
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
    for _ in 0..50 {
        let state: Value = server
            .client
            .get(server.api(&format!("/uploads/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        offset = state["offset"].as_u64().unwrap() as usize;
        if offset == sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(offset, sent, "the bytes that arrived were kept");
    let resumed = server
        .client
        .put(server.api(&format!("/uploads/{id}?offset={offset}")))
        .body(sealed[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let done = server
        .client
        .post(server.api(&format!("/uploads/{id}/complete")))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    // The stored bytes are the sealed bytes: export them and compare.
    let mailbox = SigningKey::generate();
    let envelope = server.seal(b"laporan dengan lampiran");
    let (status, _) = server
        .submit(&server.report_body(&envelope, std::slice::from_ref(&id), &mailbox))
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
    let mut found = false;
    while let Some(mut frame) = reader.next_frame().unwrap() {
        if let peluit_proto::bundle::FrameMeta::Attachment { .. } = frame.meta() {
            assert_eq!(frame.read_payload_to_end(1 << 20).unwrap(), sealed);
            found = true;
        }
    }
    assert!(found);
    server.stop().await;
}

#[tokio::test]
async fn reports_need_right_recipients_work_and_fresh_ids() {
    let server = TestServer::start().await;
    let mailbox = SigningKey::generate();
    let envelope = server.seal(b"isi laporan");
    let before = server.digest();

    // Wrong stanza count, non-age ciphertext.
    let two = peluit_proto::seal::seal_padded(b"isi", &server.desk.recipients()[..2]).unwrap();
    let (status, body) = server
        .submit(&server.report_body(&two, &[], &mailbox))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("wrong_recipients"))
    );
    let (status, body) = server
        .submit(&server.report_body(&vec![b'a'; 5000], &[], &mailbox))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("wrong_recipients"))
    );
    // Bad proof of work: a stamp for another envelope, too few bits, missing.
    let mut body = server.report_body(&envelope, &[], &mailbox);
    // At test difficulty a stamp for another envelope meets this one's with probability
    // 2^-POW_BITS; take one that does not.
    let envelope_sha256: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&envelope).into();
    body["stamp"] = (0u32..)
        .map(|i| {
            let other = server.seal(format!("lain {i}").as_bytes());
            server.report_body(&other, &[], &mailbox)["stamp"].clone()
        })
        .find(|stamp| {
            serde_json::from_value::<peluit_proto::pow::Stamp>(stamp.clone())
                .is_ok_and(|s| s.verify(&envelope_sha256, common::POW_BITS).is_err())
        })
        .unwrap();
    let (status, answer) = server.submit(&body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("bad_proof_of_work"))
    );
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body["stamp"] = json!({"version": 1, "bits": 0, "nonce": 0});
    let (status, answer) = server.submit(&body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("bad_proof_of_work"))
    );
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body.as_object_mut().unwrap().remove("stamp");
    let (status, answer) = server.submit(&body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("bad_request"))
    );
    // Malformed JSON, wrong types, unknown fields, bad base64, bad mailbox key.
    expect_error(
        server
            .client
            .post(server.api("/reports"))
            .body("{\"version\":")
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    for (field, value) in [
        ("version", json!("1")),
        ("attachments", json!("none")),
        ("mailbox_key", json!("AAAA")),
        ("envelope", json!("not base64!")),
        ("extra", json!(1)),
    ] {
        let mut body = server.report_body(&envelope, &[], &mailbox);
        body[field] = value;
        let (status, answer) = server.submit(&body).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("bad_request")),
            "{field}"
        );
    }
    // Oversize: the whole body, the envelope field, the attachment list.
    let huge = json!({"version": 1, "envelope": "A".repeat(3 * 1024 * 1024)});
    let (status, answer) = server.submit(&huge).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body["envelope"] = json!(peluit_proto::encoding::b64(&vec![0u8; (1 << 20) + 3]));
    let (status, answer) = server.submit(&body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let ids: Vec<String> = (0..21)
        .map(|_| peluit_proto::ids::UploadId::random().to_string())
        .collect();
    let (status, answer) = server
        .submit(&server.report_body(&envelope, &ids, &mailbox))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    // Unknown attachment id; an incomplete upload.
    let unknown = vec![peluit_proto::ids::UploadId::random().to_string()];
    let (status, answer) = server
        .submit(&server.report_body(&envelope, &unknown, &mailbox))
        .await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    assert_eq!(server.digest(), before, "refused reports changed the store");

    let (status, answer) = server
        .submit(&server.report_body(&envelope, &[], &mailbox))
        .await;
    assert_eq!(status, 201);
    let case = answer["case"].as_str().unwrap().to_owned();
    assert_eq!(case.len(), 32);
    let after = server.digest();
    // The same envelope again, and the same mailbox with a new envelope.
    let (status, answer) = server
        .submit(&server.report_body(&envelope, &[], &SigningKey::generate()))
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("conflict")));
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"lagi"), &[], &mailbox))
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("conflict")));
    assert_eq!(server.digest(), after);
    server.stop().await;
}

#[tokio::test]
async fn attachments_must_be_complete_and_unattached() {
    let server = TestServer::start().await;
    let sealed = server.seal(&[9u8; 1000]);
    let created: Value = server
        .client
        .post(server.api("/uploads"))
        .json(&json!({"version": 1, "sealed_size": sealed.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incomplete = created["upload"].as_str().unwrap().to_owned();
    let before = server.digest();
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"a"), &[incomplete], &SigningKey::generate()))
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("conflict")));
    assert_eq!(server.digest(), before);
    let done = server.upload(&sealed).await;
    let (status, _) = server
        .submit(&server.report_body(
            &server.seal(b"b"),
            std::slice::from_ref(&done),
            &SigningKey::generate(),
        ))
        .await;
    assert_eq!(status, 201);
    let after = server.digest();
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"c"), &[done], &SigningKey::generate()))
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("conflict")));
    assert_eq!(server.digest(), after);
    server.stop().await;
}

#[tokio::test]
async fn mailbox_sessions_replies_and_follow_ups() {
    let server = TestServer::start().await;
    let mailbox = SigningKey::generate();
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"laporan"), &[], &mailbox))
        .await;
    assert_eq!(status, 201);
    let case: peluit_proto::ids::CaseId = answer["case"].as_str().unwrap().parse().unwrap();

    // A key with no case, a replayed response, a response for another nonce.
    let (status, _) = server.mailbox_session(&SigningKey::generate()).await;
    assert_eq!(status, 401);
    let challenge = server
        .client
        .post(server.api("/mailbox/challenges"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let challenge = peluit_proto::auth::Challenge::from_json(&challenge).unwrap();
    let response = peluit_proto::auth::respond(&challenge, &mailbox).to_json();
    let first = server
        .client
        .post(server.api("/mailbox/sessions"))
        .body(response.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    expect_error(
        server
            .client
            .post(server.api("/mailbox/sessions"))
            .body(response)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let made_up = peluit_proto::auth::Challenge::new(INSTITUTION.parse().unwrap());
    let forged = peluit_proto::auth::respond(&made_up, &mailbox).to_json();
    expect_error(
        server
            .client
            .post(server.api("/mailbox/sessions"))
            .body(forged)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        server
            .client
            .post(server.api("/mailbox/sessions"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // Signed by another key than the one named.
    let challenge = server
        .client
        .post(server.api("/mailbox/challenges"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let challenge = peluit_proto::auth::Challenge::from_json(&challenge).unwrap();
    let wrong = String::from_utf8(peluit_proto::auth::respond(&challenge, &mailbox).to_json())
        .unwrap()
        .replace(
            &mailbox.verifying_key().to_string(),
            &SigningKey::generate().verifying_key().to_string(),
        );
    expect_error(
        server
            .client
            .post(server.api("/mailbox/sessions"))
            .body(wrong)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;

    let (status, session) = server.mailbox_session(&mailbox).await;
    assert_eq!(status, 201);
    let session = session.unwrap();
    let auth = format!("Mailbox {session}");
    expect_error(
        server
            .client
            .get(server.api("/mailbox/messages"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.api("/mailbox/messages"))
            .header("authorization", format!("Mailbox {}", "0".repeat(64)))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let list: Value = server
        .client
        .get(server.api("/mailbox/messages"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["case"], case.to_string());
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);

    // Follow-up: bad signature refused, good one stored.
    let sealed = server.seal(b"tambahan bukti");
    let sha = common::sha256(&sealed);
    let mailbox_id = peluit_proto::auth::MailboxId::of(&mailbox.verifying_key());
    let good_sig = peluit_proto::auth::sign_follow_up(
        &mailbox,
        &INSTITUTION.parse().unwrap(),
        &mailbox_id,
        &sha,
    );
    let bad_sig = peluit_proto::auth::sign_follow_up(
        &SigningKey::generate(),
        &INSTITUTION.parse().unwrap(),
        &mailbox_id,
        &sha,
    );
    let follow = |sig: &peluit_proto::keys::Signature, message: &[u8]| {
        server
            .client
            .post(server.api("/mailbox/follow-ups"))
            .header("authorization", &auth)
            .json(&json!({"version": 1, "message": peluit_proto::encoding::b64(message), "signature": serde_json::to_value(sig).unwrap()}))
            .send()
    };
    let before = server.digest();
    expect_error(
        follow(&bad_sig, &sealed).await.unwrap(),
        422,
        "bad_signature",
    )
    .await;
    expect_error(
        follow(&good_sig, b"plain text, not age at all, definitely not age")
            .await
            .unwrap(),
        400,
        "wrong_recipients",
    )
    .await;
    assert_eq!(server.digest(), before);
    let stored: Value = follow(&good_sig, &sealed)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let follow_seq = stored["seq"].as_u64().unwrap();

    // A reply bundle from the desk.
    let reply = peluit_proto::reply::Reply {
        case,
        seq: 1,
        date: peluit_server::state::today(),
        kind: peluit_proto::reply::ReplyKind::Message,
        text: "Terima kasih, laporan sedang ditelaah.".into(),
        attachments: Vec::new(),
    };
    let reporter = peluit_proto::keys::SealIdentity::generate();
    let institution: peluit_proto::ids::InstitutionId = INSTITUTION.parse().unwrap();
    let sealed_reply = peluit_proto::reply::seal_reply(
        &reply,
        &reporter.recipient(),
        &mailbox.verifying_key(),
        &institution,
        &server.desk.recipients(),
        &server.desk.reply_key,
    )
    .unwrap();
    let forged_reply = peluit_proto::reply::seal_reply(
        &reply,
        &reporter.recipient(),
        &mailbox.verifying_key(),
        &institution,
        &server.desk.recipients(),
        &SigningKey::generate(),
    )
    .unwrap();
    let other_mailbox = peluit_proto::reply::seal_reply(
        &reply,
        &reporter.recipient(),
        &SigningKey::generate().verifying_key(),
        &institution,
        &server.desk.recipients(),
        &server.desk.reply_key,
    )
    .unwrap();
    let bundle = |replies: &[&peluit_proto::reply::SealedReply]| {
        let header = peluit_proto::bundle::BundleHeader {
            kind: peluit_proto::bundle::BundleKind::Reply,
            institution: institution.clone(),
            created: peluit_server::state::today(),
            cursor_from: 0,
            cursor_to: 0,
        };
        let mut writer = peluit_proto::bundle::BundleWriter::new(Vec::new(), &header).unwrap();
        for reply in replies {
            writer
                .write_frame(&peluit_proto::bundle::FrameMeta::Reply, &reply.to_json())
                .unwrap();
        }
        writer.finish().unwrap()
    };
    let import = |body: Vec<u8>, token: &str| {
        server
            .client
            .post(server.api("/replies"))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    let before = server.digest();
    expect_error(
        import(bundle(&[&sealed_reply]), "nope").await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        import(bundle(&[&sealed_reply, &forged_reply]), &server.token)
            .await
            .unwrap(),
        422,
        "bad_signature",
    )
    .await;
    expect_error(
        import(bundle(&[&sealed_reply, &other_mailbox]), &server.token)
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;
    expect_error(
        import(b"PELUIT-BUNDLE\n2\ngarbage".to_vec(), &server.token)
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    let mut truncated = bundle(&[&sealed_reply]);
    truncated.truncate(truncated.len() - 10);
    expect_error(
        import(truncated, &server.token).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_eq!(server.digest(), before, "refused imports changed the store");
    let imported: Value = import(bundle(&[&sealed_reply]), &server.token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(imported["replies"], 1);
    let after = server.digest();
    let again = import(bundle(&[&sealed_reply]), &server.token)
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(server.digest(), after, "re-importing stored nothing new");

    let list: Value = server
        .client
        .get(server.api("/mailbox/messages"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = list["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let reply_seq = messages.iter().find(|m| m["kind"] == "reply").unwrap()["seq"]
        .as_u64()
        .unwrap();
    let fetched = server
        .client
        .get(server.api(&format!("/mailbox/messages/{reply_seq}")))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.headers()["peluit-message-kind"], "reply");
    let fetched =
        peluit_proto::reply::SealedReply::from_json(&fetched.bytes().await.unwrap()).unwrap();
    let opened = peluit_proto::reply::open_reply(
        &fetched,
        &reporter,
        &[server.desk.reply_key.verifying_key()],
    )
    .unwrap();
    assert_eq!(opened.text, "Terima kasih, laporan sedang ditelaah.");
    let fetched = server
        .client
        .get(server.api(&format!("/mailbox/messages/{follow_seq}")))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), sealed.as_slice());
    expect_error(
        server
            .client
            .get(server.api("/mailbox/messages/999"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.api("/mailbox/messages/x1"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn export_streams_a_verifiable_bundle_and_delete_needs_a_token() {
    let server = TestServer::start().await;
    let attachment = server.seal(&vec![5u8; 200_000]);
    let upload = server.upload(&attachment).await;
    let envelope = server.seal(b"laporan");
    let mailbox = SigningKey::generate();
    let (_, answer) = server
        .submit(&server.report_body(&envelope, &[upload], &mailbox))
        .await;
    let case = answer["case"].as_str().unwrap().to_owned();

    let export = |query: &str, token: &str| {
        server
            .client
            .get(server.api(&format!("/export{query}")))
            .bearer_auth(token)
            .send()
    };
    expect_error(
        export("?since=0", "wrong").await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        server
            .client
            .get(server.api("/export"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        export("?since=-1", &server.token).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    let response = export("?since=0", &server.token).await.unwrap();
    assert_eq!(response.status(), 200);
    let cursor: u64 = response.headers()["peluit-cursor-to"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = response.bytes().await.unwrap();
    let summary = peluit_proto::bundle::BundleReader::verify(&bytes[..]).unwrap();
    assert_eq!(
        (summary.cases, summary.attachments, summary.manifests),
        (1, 1, 1)
    );
    assert_eq!(summary.header.cursor_to, cursor);
    let mut reader = peluit_proto::bundle::BundleReader::new(&bytes[..]).unwrap();
    while let Some(mut frame) = reader.next_frame().unwrap() {
        if let peluit_proto::bundle::FrameMeta::Case { .. } = frame.meta() {
            assert_eq!(frame.read_payload_to_end(1 << 20).unwrap(), envelope);
        }
    }
    let later = export(&format!("?since={cursor}"), &server.token)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let summary = peluit_proto::bundle::BundleReader::verify(&later[..]).unwrap();
    assert_eq!((summary.cases, summary.attachments), (0, 0));

    let delete = |case: &str, token: &str| {
        server
            .client
            .delete(server.api(&format!("/cases/{case}")))
            .bearer_auth(token)
            .send()
    };
    let before = server.digest();
    expect_error(delete(&case, "wrong").await.unwrap(), 401, "unauthorized").await;
    expect_error(
        delete(
            &peluit_proto::ids::CaseId::random().to_string(),
            &server.token,
        )
        .await
        .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        delete("not-a-case", &server.token).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert_eq!(server.digest(), before);
    assert_eq!(delete(&case, &server.token).await.unwrap().status(), 204);
    let (status, _) = server.mailbox_session(&mailbox).await;
    assert_eq!(status, 401, "a deleted case has no mailbox");
    server.stop().await;
}

#[tokio::test]
async fn bring_your_own_ciphertext_small_large_and_wrong() {
    let server = TestServer::start().await;
    let form = server
        .client
        .get(server.url("/submit-file"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("enctype=\"multipart/form-data\"") && !form.contains("<script"));
    assert!(form.contains(&server.desk.recipients()[0].to_string()));
    let post = |bytes: Vec<u8>, institution: &str| {
        let form = reqwest::multipart::Form::new()
            .text("institution", institution.to_owned())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("laporan.age"),
            );
        server
            .client
            .post(server.url("/submit-file"))
            .multipart(form)
            .send()
    };
    // Any age tool: unpadded age to the published recipients.
    let small =
        peluit_proto::seal::seal(b"laporan dari alat age lain", &server.desk.recipients()).unwrap();
    let large = peluit_proto::seal::seal(&vec![1u8; 3 << 20], &server.desk.recipients()).unwrap();
    let before = server.digest();
    let refused = post(b"this is not age".to_vec(), INSTITUTION)
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("wrong_recipients"));
    let wrong_count =
        peluit_proto::seal::seal(&vec![1u8; 2 << 20], &server.desk.recipients()[..1]).unwrap();
    let refused = post(wrong_count, INSTITUTION).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(post(small.clone(), "nobody").await.unwrap().status(), 404);
    let no_form = server
        .client
        .post(server.url("/submit-file"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(no_form.status(), 400);
    assert_eq!(server.digest(), before);

    for file in [&small, &large] {
        let page = post(file.clone(), INSTITUTION).await.unwrap();
        assert_eq!(page.status(), 201);
        assert!(page.text().await.unwrap().contains("id=\"case-id\""));
    }
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
    let (mut envelopes, mut attachments) = (Vec::new(), Vec::new());
    while let Some(mut frame) = reader.next_frame().unwrap() {
        match frame.meta() {
            peluit_proto::bundle::FrameMeta::Case { .. } => {
                envelopes.push(frame.read_payload_to_end(1 << 20).unwrap())
            }
            peluit_proto::bundle::FrameMeta::Attachment { .. } => {
                attachments.push(frame.read_payload_to_end(8 << 20).unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(envelopes.len(), 2);
    assert!(envelopes.contains(&small));
    assert_eq!(attachments, vec![large]);
    // The large file's case has an empty envelope the desk can open.
    let empty = envelopes.iter().find(|e| **e != small).unwrap();
    let opened =
        peluit_proto::seal::open_padded(empty, &server.desk.investigators[..1], 1 << 20).unwrap();
    assert!(opened.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn bring_your_own_is_rate_limited() {
    let server = TestServer::start_with(|limits| limits.byo_per_minute = 1).await;
    let small = peluit_proto::seal::seal(b"satu", &server.desk.recipients()).unwrap();
    let post = |bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("institution", INSTITUTION)
            .part("file", reqwest::multipart::Part::bytes(bytes));
        server
            .client
            .post(server.url("/submit-file"))
            .multipart(form)
            .send()
    };
    assert_eq!(post(small.clone()).await.unwrap().status(), 201);
    let busy = post(small).await.unwrap();
    assert_eq!(busy.status(), 429);
    assert!(busy.text().await.unwrap().contains("too_many_requests"));
    server.stop().await;
}

#[tokio::test]
async fn open_uploads_are_capped() {
    let server = TestServer::start_with(|limits| limits.max_open_uploads = 2).await;
    let create = || {
        server
            .client
            .post(server.api("/uploads"))
            .json(&json!({"version": 1, "sealed_size": 1000}))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 201);
    // A completed upload still holds disk until a case takes it.
    let sealed = server.seal(b"bukti");
    let attached = server.upload(&sealed).await;
    let before = server.digest();
    expect_error(create().await.unwrap(), 429, "too_many_requests").await;
    assert_eq!(server.digest(), before, "a refused upload changes nothing");
    // Submitting a case attaches the completed upload and frees its place.
    let body = server.report_body(
        &server.seal(b"laporan"),
        &[attached],
        &SigningKey::generate(),
    );
    assert_eq!(server.submit(&body).await.0, 201);
    assert_eq!(create().await.unwrap().status(), 201);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_sync_turns_writes_into_read_only() {
    let server = TestServer::start().await;
    server.store.dangerously_fail_next_sync();
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"a"), &[], &SigningKey::generate()))
        .await;
    assert_eq!((status, answer["code"].as_str()), (503, Some("read_only")));
    let (status, answer) = server
        .submit(&server.report_body(&server.seal(b"b"), &[], &SigningKey::generate()))
        .await;
    assert_eq!((status, answer["code"].as_str()), (503, Some("read_only")));
    // Reads still work.
    assert_eq!(
        server
            .client
            .get(server.api("/manifest"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let server = TestServer::start_with(|limits| limits.header_read_timeout_secs = 1).await;
    let addr = server.addr;
    let started = std::time::Instant::now();
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).is_ok()
    })
    .await
    .unwrap();
    assert!(closed, "the server closed the connection");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    server.stop().await;
}
