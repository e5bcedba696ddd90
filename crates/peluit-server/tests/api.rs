//! Every endpoint over a real socket and a real sled store: the good path, and bad inputs
//! that must each get a 4xx with its code and leave the store byte-for-byte unchanged.

mod common;

use common::{
    INSTITUTION, TestServer, bundle_payloads, expect_error, expect_refused, reply_bundle, send_json,
};
use peluit_proto::keys::SigningKey;
use serde_json::{Value, json};

#[tokio::test]
async fn health_institutions_and_openapi_answer() {
    let server = TestServer::start().await;
    let health = server.get_json(server.url("/healthz")).await;
    assert_eq!(health["status"], "ok");
    let list = server.get_json(server.url("/api/v1/institutions")).await;
    assert_eq!(list["institutions"][0]["id"], INSTITUTION);
    assert_eq!(list["institutions"][0]["manifest_serial"], 1);
    let doc = server.get_json(server.url("/api/v1/openapi.json")).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let page = server.get(server.url("/")).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    // Scripts only from the page's own files (the CSP forbids inline script), and a
    // no-script route to the bring-your-own-ciphertext form.
    for tag in page.split("<script").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(tag.contains(" src=\"/assets/"), "inline script: {tag}");
    }
    assert!(page.contains("<noscript>") && page.contains("href=\"/submit-file\""));
    let get = |path: &str| server.client.get(server.url(path));
    expect_refused(get("/assets/nope.js"), 404, "not_found").await;
    expect_refused(get("/api/v1/nothing"), 404, "no_such_endpoint").await;
    expect_refused(
        server.client.delete(server.url("/healthz")),
        405,
        "method_not_allowed",
    )
    .await;
    expect_refused(
        get("/api/v1/institutions/nobody/manifest"),
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
        .get(server.api("/manifest"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        current.as_ref() == server.desk.signed_manifest(&origin, 1).to_json(),
        "served as signed"
    );

    let before = server.digest();
    let publish = |body: Vec<u8>, token: Option<&str>| {
        let request = server.client.post(server.api("/manifests")).body(body);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let two = server.desk.signed_manifest(&origin, 2).to_json();
    // No token, a wrong token.
    expect_refused(publish(two.clone(), None), 401, "unauthorized").await;
    let wrong = peluit_server::tokens::IssuedToken::generate();
    expect_refused(
        publish(two.clone(), Some(wrong.expose_secret())),
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
    let token = Some(server.token.as_str());
    expect_refused(publish(forged, token), 422, "bad_signature").await;
    // Malformed and non-canonical JSON, wrong types.
    expect_refused(publish(b"{nope".to_vec(), token), 400, "bad_request").await;
    let mut spaced = b" ".to_vec();
    spaced.extend_from_slice(&two);
    expect_refused(publish(spaced, token), 400, "bad_request").await;
    let wrong_types = br#"{"manifest":1,"signature":2}"#.to_vec();
    expect_refused(publish(wrong_types, token), 400, "bad_request").await;
    // Oversize.
    expect_refused(
        publish(vec![b'{'; 300 * 1024], token),
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(
        server.digest(),
        before,
        "refused publishes changed the store"
    );

    let response = publish(two.clone(), token).send().await.unwrap();
    assert_eq!(response.status(), 201);
    // Re-publishing the same document is a retry.
    let again = publish(two.clone(), token).send().await.unwrap();
    assert_eq!(again.status(), 200);
    let after_two = server.digest();
    // Lower serial, and the same serial with other content.
    let one = server.desk.signed_manifest(&origin, 1).to_json();
    expect_refused(publish(one, token), 409, "conflict").await;
    let mut other = server.desk.manifest(&origin, 2);
    other.origins.push("https://lapor.example.go.id".into());
    let other_two = other.sign(&server.desk.manifest_key).to_json();
    expect_refused(publish(other_two, token), 409, "conflict").await;
    assert_eq!(server.digest(), after_two);

    let current = server
        .get(server.api("/manifest"))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        current.as_ref() == two.as_slice(),
        "the new manifest is current"
    );
    let history = server.get_json(server.api("/manifests")).await;
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
    };
    let before = server.digest();
    expect_refused(create(json!("big")), 400, "bad_request").await;
    expect_refused(create(json!(0)), 400, "bad_request").await;
    expect_refused(create(json!(u64::MAX)), 413, "payload_too_large").await;
    expect_refused(
        server.client.post(server.api("/uploads")).body("{"),
        400,
        "bad_request",
    )
    .await;
    expect_refused(
        server
            .client
            .post(server.api("/uploads"))
            .json(&json!({"version": 1, "sealed_size": 5, "name": "x.pdf"})),
        400,
        "bad_request",
    )
    .await;
    assert_eq!(server.digest(), before);

    let created = send_json(create(json!(sealed.len()))).await;
    let id = created["upload"].as_str().unwrap().to_owned();
    assert_eq!(created["offset"], 0);
    let put = |offset: Option<usize>, header: Option<usize>, body: Vec<u8>| {
        let url = match offset {
            Some(o) => server.api(&format!("/uploads/{id}?offset={o}")),
            None => server.api(&format!("/uploads/{id}")),
        };
        let request = server.client.put(url).body(body);
        match header {
            Some(h) => request.header("upload-offset", h.to_string()),
            None => request,
        }
    };
    let after_create = server.digest();
    // Non-age first piece, a first piece sealed to the wrong count, no offset, a wrong
    // (out-of-order) offset, more than declared, unknown and malformed ids.
    expect_refused(
        put(Some(0), None, vec![b'x'; 70_000]),
        400,
        "wrong_recipients",
    )
    .await;
    let two_of_three =
        peluit_proto::seal::seal_padded(&[1u8; 10], &server.desk.recipients()[..2]).unwrap();
    expect_refused(put(Some(0), None, two_of_three), 400, "wrong_recipients").await;
    expect_refused(put(None, None, sealed[..1000].to_vec()), 400, "bad_request").await;
    expect_refused(
        put(Some(5000), None, sealed[5000..9000].to_vec()),
        409,
        "conflict",
    )
    .await;
    expect_refused(
        put(Some(0), Some(1), sealed[..9000].to_vec()),
        400,
        "bad_request",
    )
    .await;
    let mut overlong = sealed.clone();
    overlong.push(0);
    expect_refused(put(Some(0), None, overlong), 413, "payload_too_large").await;
    let unknown = peluit_proto::ids::UploadId::random();
    expect_error(
        server.get(server.api(&format!("/uploads/{unknown}"))).await,
        404,
        "not_found",
    )
    .await;
    expect_error(
        server.get(server.api("/uploads/XYZ")).await,
        400,
        "bad_request",
    )
    .await;
    // Completing a truncated upload.
    expect_error(server.complete_upload(&id).await, 409, "conflict").await;
    assert_eq!(
        server.digest(),
        after_create,
        "refused pieces changed the store"
    );

    // First part by query offset, rest by header offset, then resume from GET.
    let split = 100_000;
    let first = send_json(put(Some(0), None, sealed[..split].to_vec())).await;
    assert_eq!(first["offset"], split);
    let state = server.get_json(server.api(&format!("/uploads/{id}"))).await;
    assert_eq!(state["offset"], split);
    assert_eq!(state["complete"], false);
    let rest = send_json(put(None, Some(split), sealed[split..].to_vec())).await;
    assert_eq!(rest["offset"], sealed.len());
    let done: Value = server.complete_upload(&id).await.json().await.unwrap();
    assert_eq!(done["complete"], true);
    expect_refused(put(Some(sealed.len()), None, vec![1]), 409, "conflict").await;
    server.stop().await;
}

#[tokio::test]
async fn an_interrupted_upload_keeps_what_arrived_and_resumes() {
    let server = TestServer::start().await;
    let sealed = server.seal(&vec![3u8; 500_000]);
    let id = server.create_upload(sealed.len()).await;
    // Promise the whole body, send a part, hang up.
    let sent = 200_000;
    server.put_cut_off(&id, &sealed, sent).await;
    let offset = server.wait_for_offset(&id, sent, 50).await;
    assert_eq!(offset, sent, "the bytes that arrived were kept");
    let resumed = server
        .put_upload(&id, offset, sealed[offset..].to_vec())
        .await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(server.complete_upload(&id).await.status(), 200);
    // The stored bytes are the sealed bytes: export them and compare.
    let mailbox = SigningKey::generate();
    let envelope = server.seal(b"laporan dengan lampiran");
    let (status, _) = server
        .submit_report(&envelope, std::slice::from_ref(&id), &mailbox)
        .await;
    assert_eq!(status, 201);
    let (_, attachments) = server.exported_payloads(1 << 20).await;
    assert!(!attachments.is_empty());
    for attachment in attachments {
        assert_eq!(attachment, sealed);
    }
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
    let body = server.report_body(&two, &[], &mailbox);
    server
        .expect_report_refused(&body, 400, "wrong_recipients")
        .await;
    let body = server.report_body(&vec![b'a'; 5000], &[], &mailbox);
    server
        .expect_report_refused(&body, 400, "wrong_recipients")
        .await;
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
    server
        .expect_report_refused(&body, 400, "bad_proof_of_work")
        .await;
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body["stamp"] = json!({"version": 1, "bits": 0, "nonce": 0});
    server
        .expect_report_refused(&body, 400, "bad_proof_of_work")
        .await;
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body.as_object_mut().unwrap().remove("stamp");
    server
        .expect_report_refused(&body, 400, "bad_request")
        .await;
    // Malformed JSON, wrong types, unknown fields, bad base64, bad mailbox key.
    expect_refused(
        server
            .client
            .post(server.api("/reports"))
            .body("{\"version\":"),
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
    server
        .expect_report_refused(&huge, 413, "payload_too_large")
        .await;
    let mut body = server.report_body(&envelope, &[], &mailbox);
    body["envelope"] = json!(peluit_proto::encoding::b64(&vec![0u8; (1 << 20) + 3]));
    server
        .expect_report_refused(&body, 413, "payload_too_large")
        .await;
    let ids: Vec<String> = (0..21)
        .map(|_| peluit_proto::ids::UploadId::random().to_string())
        .collect();
    let body = server.report_body(&envelope, &ids, &mailbox);
    server
        .expect_report_refused(&body, 413, "payload_too_large")
        .await;
    // Unknown attachment id; an incomplete upload.
    let unknown = vec![peluit_proto::ids::UploadId::random().to_string()];
    let body = server.report_body(&envelope, &unknown, &mailbox);
    server.expect_report_refused(&body, 404, "not_found").await;
    assert_eq!(server.digest(), before, "refused reports changed the store");

    let (status, answer) = server.submit_report(&envelope, &[], &mailbox).await;
    assert_eq!(status, 201);
    let case = answer["case"].as_str().unwrap().to_owned();
    assert_eq!(case.len(), 32);
    let after = server.digest();
    // The same envelope again, and the same mailbox with a new envelope.
    let body = server.report_body(&envelope, &[], &SigningKey::generate());
    server.expect_report_refused(&body, 409, "conflict").await;
    let body = server.report_body(&server.seal(b"lagi"), &[], &mailbox);
    server.expect_report_refused(&body, 409, "conflict").await;
    assert_eq!(server.digest(), after);
    server.stop().await;
}

#[tokio::test]
async fn attachments_must_be_complete_and_unattached() {
    let server = TestServer::start().await;
    let sealed = server.seal(&[9u8; 1000]);
    let incomplete = server.create_upload(sealed.len()).await;
    let before = server.digest();
    let body = server.report_body(&server.seal(b"a"), &[incomplete], &SigningKey::generate());
    server.expect_report_refused(&body, 409, "conflict").await;
    assert_eq!(server.digest(), before);
    let done = server.upload(&sealed).await;
    let (status, _) = server
        .submit_report(
            &server.seal(b"b"),
            std::slice::from_ref(&done),
            &SigningKey::generate(),
        )
        .await;
    assert_eq!(status, 201);
    let after = server.digest();
    let body = server.report_body(&server.seal(b"c"), &[done], &SigningKey::generate());
    server.expect_report_refused(&body, 409, "conflict").await;
    assert_eq!(server.digest(), after);
    server.stop().await;
}

#[tokio::test]
async fn mailbox_sessions_replies_and_follow_ups() {
    let server = TestServer::start().await;
    let mailbox = SigningKey::generate();
    let (status, answer) = server
        .submit_report(&server.seal(b"laporan"), &[], &mailbox)
        .await;
    assert_eq!(status, 201);
    let case: peluit_proto::ids::CaseId = answer["case"].as_str().unwrap().parse().unwrap();

    // A key with no case, a replayed response, a response for another nonce.
    let (status, _) = server.mailbox_session(&SigningKey::generate()).await;
    assert_eq!(status, 401);
    let open_session = |body: Vec<u8>| {
        server
            .client
            .post(server.api("/mailbox/sessions"))
            .body(body)
    };
    let challenge = server.challenge().await;
    let response = peluit_proto::auth::respond(&challenge, &mailbox).to_json();
    let first = open_session(response.clone()).send().await.unwrap();
    assert_eq!(first.status(), 201);
    expect_refused(open_session(response), 401, "unauthorized").await;
    let made_up = peluit_proto::auth::Challenge::new(INSTITUTION.parse().unwrap());
    let forged = peluit_proto::auth::respond(&made_up, &mailbox).to_json();
    expect_refused(open_session(forged), 401, "unauthorized").await;
    expect_refused(open_session(b"{}".to_vec()), 400, "bad_request").await;
    // Signed by another key than the one named.
    let challenge = server.challenge().await;
    let wrong = String::from_utf8(peluit_proto::auth::respond(&challenge, &mailbox).to_json())
        .unwrap()
        .replace(
            &mailbox.verifying_key().to_string(),
            &SigningKey::generate().verifying_key().to_string(),
        );
    expect_refused(open_session(wrong.into_bytes()), 401, "unauthorized").await;

    let (status, session) = server.mailbox_session(&mailbox).await;
    assert_eq!(status, 201);
    let session = session.unwrap();
    let auth = format!("Mailbox {session}");
    let messages = || server.client.get(server.api("/mailbox/messages"));
    expect_refused(messages(), 401, "unauthorized").await;
    expect_refused(
        messages().header("authorization", format!("Mailbox {}", "0".repeat(64))),
        401,
        "unauthorized",
    )
    .await;
    let list = server.mailbox_messages(&auth).await;
    assert_eq!(list["case"], case.to_string());
    assert_eq!(list["messages"].as_array().unwrap().len(), 0);

    // Follow-up: bad signature refused, good one stored.
    let sealed = server.seal(b"tambahan bukti");
    let sha = common::sha256(&sealed);
    let mailbox_id = peluit_proto::auth::MailboxId::of(&mailbox.verifying_key());
    let institution: peluit_proto::ids::InstitutionId = INSTITUTION.parse().unwrap();
    let good_sig = peluit_proto::auth::sign_follow_up(&mailbox, &institution, &mailbox_id, &sha);
    let bad_sig = peluit_proto::auth::sign_follow_up(
        &SigningKey::generate(),
        &institution,
        &mailbox_id,
        &sha,
    );
    let before = server.digest();
    expect_refused(
        server.follow_up_request(&auth, &bad_sig, &sealed),
        422,
        "bad_signature",
    )
    .await;
    expect_refused(
        server.follow_up_request(
            &auth,
            &good_sig,
            b"plain text, not age at all, definitely not age",
        ),
        400,
        "wrong_recipients",
    )
    .await;
    assert_eq!(server.digest(), before);
    let stored = send_json(server.follow_up_request(&auth, &good_sig, &sealed)).await;
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
    let seal_reply = |mailbox_key: &peluit_proto::keys::VerifyingKey, signer: &SigningKey| {
        peluit_proto::reply::seal_reply(
            &reply,
            &reporter.recipient(),
            mailbox_key,
            &institution,
            &server.desk.recipients(),
            signer,
        )
        .unwrap()
    };
    let sealed_reply = seal_reply(&mailbox.verifying_key(), &server.desk.reply_key);
    let forged_reply = seal_reply(&mailbox.verifying_key(), &SigningKey::generate());
    let other_mailbox = seal_reply(
        &SigningKey::generate().verifying_key(),
        &server.desk.reply_key,
    );
    let bundle =
        |replies: &[&peluit_proto::reply::SealedReply]| reply_bundle(&institution, replies);
    let token = server.token.as_str();
    let before = server.digest();
    expect_refused(
        server.import_request(bundle(&[&sealed_reply]), "nope"),
        401,
        "unauthorized",
    )
    .await;
    expect_refused(
        server.import_request(bundle(&[&sealed_reply, &forged_reply]), token),
        422,
        "bad_signature",
    )
    .await;
    expect_refused(
        server.import_request(bundle(&[&sealed_reply, &other_mailbox]), token),
        409,
        "conflict",
    )
    .await;
    expect_refused(
        server.import_request(b"PELUIT-BUNDLE\n2\ngarbage".to_vec(), token),
        400,
        "bad_request",
    )
    .await;
    let mut truncated = bundle(&[&sealed_reply]);
    truncated.truncate(truncated.len() - 10);
    expect_refused(server.import_request(truncated, token), 400, "bad_request").await;
    assert_eq!(server.digest(), before, "refused imports changed the store");
    let imported = send_json(server.import_request(bundle(&[&sealed_reply]), token)).await;
    assert_eq!(imported["replies"], 1);
    let after = server.digest();
    let again = server
        .import_request(bundle(&[&sealed_reply]), token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(server.digest(), after, "re-importing stored nothing new");

    let list = server.mailbox_messages(&auth).await;
    let messages = list["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    let reply_seq = messages.iter().find(|m| m["kind"] == "reply").unwrap()["seq"]
        .as_u64()
        .unwrap();
    let message = |seq: &str| {
        server
            .client
            .get(server.api(&format!("/mailbox/messages/{seq}")))
            .header("authorization", &auth)
    };
    let fetched = message(&reply_seq.to_string()).send().await.unwrap();
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
    let fetched = message(&follow_seq.to_string()).send().await.unwrap();
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), sealed.as_slice());
    expect_refused(message("999"), 404, "not_found").await;
    expect_refused(message("x1"), 400, "bad_request").await;
    server.stop().await;
}

#[tokio::test]
async fn export_streams_a_verifiable_bundle_and_delete_needs_a_token() {
    let server = TestServer::start().await;
    let attachment = server.seal(&vec![5u8; 200_000]);
    let upload = server.upload(&attachment).await;
    let envelope = server.seal(b"laporan");
    let mailbox = SigningKey::generate();
    let (_, answer) = server.submit_report(&envelope, &[upload], &mailbox).await;
    let case = answer["case"].as_str().unwrap().to_owned();

    let export = |query: &str, token: &str| {
        server
            .client
            .get(server.api(&format!("/export{query}")))
            .bearer_auth(token)
    };
    expect_refused(export("?since=0", "wrong"), 401, "unauthorized").await;
    expect_refused(
        server.client.get(server.api("/export")),
        401,
        "unauthorized",
    )
    .await;
    expect_refused(export("?since=-1", &server.token), 400, "bad_request").await;
    let response = export("?since=0", &server.token).send().await.unwrap();
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
    let (envelopes, _) = bundle_payloads(&bytes, 1 << 20);
    for exported in envelopes {
        assert_eq!(exported, envelope);
    }
    let later = export(&format!("?since={cursor}"), &server.token)
        .send()
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
    };
    let before = server.digest();
    expect_refused(delete(&case, "wrong"), 401, "unauthorized").await;
    let unknown = peluit_proto::ids::CaseId::random().to_string();
    expect_refused(delete(&unknown, &server.token), 404, "not_found").await;
    expect_refused(delete("not-a-case", &server.token), 400, "bad_request").await;
    assert_eq!(server.digest(), before);
    let deleted = delete(&case, &server.token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, _) = server.mailbox_session(&mailbox).await;
    assert_eq!(status, 401, "a deleted case has no mailbox");
    server.stop().await;
}

#[tokio::test]
async fn bring_your_own_ciphertext_small_large_and_wrong() {
    let server = TestServer::start().await;
    let form = server
        .get(server.url("/submit-file"))
        .await
        .text()
        .await
        .unwrap();
    assert!(form.contains("enctype=\"multipart/form-data\"") && !form.contains("<script"));
    assert!(form.contains(&server.desk.recipients()[0].to_string()));
    // Any age tool seals unpadded: the form tells the reporter what the size gives away.
    assert!(form.contains("The server sees the encrypted file's exact size"));
    let post = |bytes: Vec<u8>, institution: &'static str| {
        let file = reqwest::multipart::Part::bytes(bytes).file_name("laporan.age");
        server.submit_file(institution, file)
    };
    // Any age tool: unpadded age to the published recipients.
    let small =
        peluit_proto::seal::seal(b"laporan dari alat age lain", &server.desk.recipients()).unwrap();
    let large = peluit_proto::seal::seal(&vec![1u8; 3 << 20], &server.desk.recipients()).unwrap();
    let before = server.digest();
    let refused = post(b"this is not age".to_vec(), INSTITUTION).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("wrong_recipients"));
    let wrong_count =
        peluit_proto::seal::seal(&vec![1u8; 2 << 20], &server.desk.recipients()[..1]).unwrap();
    let refused = post(wrong_count, INSTITUTION).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(post(small.clone(), "nobody").await.status(), 404);
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
        let page = post(file.clone(), INSTITUTION).await;
        assert_eq!(page.status(), 201);
        assert!(page.text().await.unwrap().contains("id=\"case-id\""));
    }
    let (envelopes, attachments) = server.exported_payloads(8 << 20).await;
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
    let post =
        |bytes: Vec<u8>| server.submit_file(INSTITUTION, reqwest::multipart::Part::bytes(bytes));
    assert_eq!(post(small.clone()).await.status(), 201);
    let busy = post(small).await;
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
    };
    assert_eq!(create().send().await.unwrap().status(), 201);
    // A completed upload still holds disk until a case takes it.
    let sealed = server.seal(b"bukti");
    let attached = server.upload(&sealed).await;
    let before = server.digest();
    expect_refused(create(), 429, "too_many_requests").await;
    assert_eq!(server.digest(), before, "a refused upload changes nothing");
    // Submitting a case attaches the completed upload and frees its place.
    let (status, _) = server
        .submit_report(
            &server.seal(b"laporan"),
            &[attached],
            &SigningKey::generate(),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(create().send().await.unwrap().status(), 201);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_sync_turns_writes_into_read_only() {
    let server = TestServer::start().await;
    server.store.dangerously_fail_next_sync();
    for content in [b"a", b"b"] {
        let body = server.report_body(&server.seal(content), &[], &SigningKey::generate());
        server.expect_report_refused(&body, 503, "read_only").await;
    }
    // Reads still work.
    assert_eq!(server.get(server.api("/manifest")).await.status(), 200);
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
