//! The conformance story every `CiphertextStore` backend must pass, run here on sled in a
//! temporary directory. A new backend adds one `#[test]` that calls `story` with its opener.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::fmt::Write as _;

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId, MessageId, UploadId};
use peluit_proto::keys::{SigningKey, VerifyingKey};
use peluit_proto::limits::{MAX_ATTACHMENTS, MAX_MANIFEST_LEN, SEALED_CHUNK_SIZE};
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use peluit_store::{
    CaseState, CiphertextStore, Error, ExportItem, MailboxKind, ManifestBytes, NewCase,
    NewFollowUp, NewReply, PowHash, SealedMailboxMessage, SealedReplyBytes, SledStore, TokenHash,
};
use sha2::{Digest, Sha256};

#[test]
fn sled_passes_the_conformance_story() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    story(|| SledStore::open(&path).unwrap());
}

fn institution(id: &str) -> InstitutionId {
    id.parse().unwrap()
}

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

/// Deterministic stand-in ciphertext: the store must keep any bytes exactly.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut out = b"age-encryption.org/v1\n".to_vec();
    out.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out.truncate(len);
    out
}

fn sealed(len: usize, seed: u8) -> SealedMessage {
    SealedMessage::from_stored(bytes(len, seed))
}

fn pow(seed: u8) -> PowHash {
    PowHash::from_bytes([seed; 32])
}

fn mailbox_key() -> VerifyingKey {
    SigningKey::generate().verifying_key()
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Everything the trait lets a caller see about the ids the story knows, as text: two
/// equal observations mean no observable change.
#[derive(Default)]
struct Known {
    institutions: Vec<InstitutionId>,
    uploads: Vec<UploadId>,
    cases: Vec<CaseId>,
    tokens: Vec<TokenHash>,
}

fn observe<S: CiphertextStore>(store: &S, known: &Known) -> String {
    let mut out = String::new();
    writeln!(out, "institutions {:?}", store.institutions()).unwrap();
    for inst in &known.institutions {
        writeln!(out, "== {inst}").unwrap();
        for manifest in store.manifests(inst).unwrap() {
            let hash = digest(manifest.manifest.as_bytes());
            writeln!(out, "manifest {} {hash}", manifest.serial).unwrap();
        }
        let latest = store.latest_manifest(inst).unwrap().map(|m| m.serial);
        writeln!(out, "latest {latest:?}").unwrap();
        for upload in &known.uploads {
            writeln!(
                out,
                "upload {upload} {:?}",
                store.upload_state(inst, *upload)
            )
            .unwrap();
        }
        for case in &known.cases {
            writeln!(out, "case {case} {:?}", store.case(inst, *case)).unwrap();
            let envelope = store.envelope(inst, *case).map(|e| digest(e.as_bytes()));
            writeln!(out, "  envelope {envelope:?}").unwrap();
            let mailbox = store.mailbox(inst, *case);
            writeln!(out, "  mailbox {mailbox:?}").unwrap();
            for entry in mailbox.unwrap_or_default() {
                let message = match store.mailbox_message(inst, *case, entry.seq).unwrap() {
                    SealedMailboxMessage::Reply(reply) => digest(reply.as_bytes()),
                    SealedMailboxMessage::FollowUp(message) => digest(message.as_bytes()),
                    other => panic!("unknown mailbox message {other:?}"),
                };
                writeln!(out, "  message {} {message}", entry.seq).unwrap();
            }
            for upload in &known.uploads {
                if let Ok(chunks) = store.attachment_chunks(inst, *case, *upload) {
                    let all: Vec<u8> = chunks.flat_map(|c| c.unwrap().into_bytes()).collect();
                    writeln!(out, "  attachment {upload} {}", digest(&all)).unwrap();
                }
            }
        }
        writeln!(out, "cursor {:?}", store.export_cursor(inst)).unwrap();
        for item in store.export_since(inst, 0).unwrap() {
            writeln!(out, "export {}", describe(&item.unwrap())).unwrap();
        }
        let retention = store.cases_before(inst, day("9999-12-31"));
        writeln!(out, "open cases {retention:?}").unwrap();
        writeln!(out, "tokens {:?}", store.tokens(inst)).unwrap();
        for token in &known.tokens {
            writeln!(
                out,
                "token {token:?} {:?}",
                store.find_token_hash(inst, token)
            )
            .unwrap();
        }
    }
    out
}

fn describe(item: &ExportItem) -> String {
    match item {
        ExportItem::Case {
            cursor,
            case,
            envelope,
        } => format!("{cursor} case {} {}", case.id, digest(envelope.as_bytes())),
        ExportItem::Attachment {
            cursor,
            case,
            upload,
            len,
        } => format!("{cursor} attachment {case} {upload} {len}"),
        ExportItem::FollowUp {
            cursor,
            case,
            entry,
            message,
        } => format!(
            "{cursor} follow-up {case} {} {}",
            entry.seq,
            digest(message.as_bytes())
        ),
        other => panic!("unknown export item {other:?}"),
    }
}

/// Asserts that `$call` fails with `$pattern` and that nothing observable changed.
macro_rules! refused {
    ($store:expr, $known:expr, $call:expr, $pattern:pat) => {{
        let before = observe($store, $known);
        let outcome = $call;
        assert!(
            matches!(outcome, Err($pattern)),
            "{} gave {:?}",
            stringify!($call),
            outcome.map(|_| ())
        );
        assert_eq!(
            observe($store, $known),
            before,
            "{} changed the store",
            stringify!($call)
        );
    }};
}

fn attachment<S: CiphertextStore>(
    store: &S,
    inst: &InstitutionId,
    case: CaseId,
    upload: UploadId,
) -> Vec<u8> {
    let mut all = Vec::new();
    for chunk in store.attachment_chunks(inst, case, upload).unwrap() {
        let chunk = chunk.unwrap();
        // Memory stays at one sealed STREAM chunk whatever the attachment's size.
        assert!(chunk.as_bytes().len() <= SEALED_CHUNK_SIZE);
        all.extend_from_slice(chunk.as_bytes());
    }
    all
}

fn upload_whole<S: CiphertextStore>(
    store: &S,
    inst: &InstitutionId,
    content: &[u8],
    created: Day,
) -> UploadId {
    let upload = store
        .create_upload(inst, content.len() as u64, created)
        .unwrap();
    let mut offset = 0;
    for piece in content.chunks(SEALED_CHUNK_SIZE) {
        let chunk = SealedChunk::new(piece.to_vec());
        offset = store.append_upload(inst, upload, offset, &chunk).unwrap();
    }
    store.complete_upload(inst, upload).unwrap();
    upload
}

/// The story. `make` opens the backend on the same storage each time it is called; the
/// story drops the store and calls it again to check that acknowledged writes survive.
fn story<S: CiphertextStore>(make: impl Fn() -> S) {
    let store = make();
    let inst = institution("itjen-kemenkeu");
    let other = institution("inspektorat-jabar");
    let mut known = Known {
        institutions: vec![inst.clone(), other.clone()],
        ..Known::default()
    };
    let d0 = day("2026-11-20");
    let d1 = day("2026-11-27");
    let d2 = day("2026-11-28");

    // --- Manifests: append-only history, serial strictly grows.
    assert_eq!(store.latest_manifest(&inst).unwrap(), None);
    assert!(store.institutions().unwrap().is_empty());
    let m1 = ManifestBytes::new(bytes(10_000, 1));
    let m5 = ManifestBytes::new(bytes(300, 5));
    store.put_manifest(&inst, 1, &m1).unwrap();
    refused!(
        &store,
        &known,
        store.put_manifest(&inst, 1, &m5),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.put_manifest(&inst, 0, &m5),
        Error::Conflict(_)
    );
    store.put_manifest(&inst, 5, &m5).unwrap();
    refused!(
        &store,
        &known,
        store.put_manifest(&inst, 3, &m5),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.put_manifest(&inst, 9, &ManifestBytes::new(Vec::new())),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.put_manifest(
            &inst,
            9,
            &ManifestBytes::new(bytes(MAX_MANIFEST_LEN + 1, 0))
        ),
        Error::TooLarge(_)
    );
    let history = store.manifests(&inst).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].serial, &history[0].manifest), (1, &m1));
    assert_eq!((history[1].serial, &history[1].manifest), (5, &m5));
    assert_eq!(store.latest_manifest(&inst).unwrap().unwrap().manifest, m5);
    // Institutions are separate: another one starts its own history at any serial.
    store.put_manifest(&other, 1, &m5).unwrap();
    assert_eq!(
        store.institutions().unwrap(),
        vec![other.clone(), inst.clone()]
    );

    // --- Uploads: create, append at the end only, complete.
    let content1 = bytes(3 * SEALED_CHUNK_SIZE + 1000, 11);
    let upload1 = store
        .create_upload(&inst, content1.len() as u64, d1)
        .unwrap();
    known.uploads.push(upload1);
    assert_eq!(store.open_uploads(&inst).unwrap(), 1);
    assert_eq!(store.open_uploads(&other).unwrap(), 0);
    let state = store.upload_state(&inst, upload1).unwrap();
    assert_eq!(
        (state.received, state.complete, state.created),
        (0, false, d1)
    );
    let chunk = |from: usize, to: usize| SealedChunk::new(content1[from..to].to_vec());
    let first = SEALED_CHUNK_SIZE;
    assert_eq!(
        store
            .append_upload(&inst, upload1, 0, &chunk(0, first))
            .unwrap(),
        first as u64
    );
    // Overlapping, repeated, gapped, oversize and empty appends change nothing.
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, 0, &chunk(0, first)),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, 100, &chunk(100, first + 100)),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(
            &inst,
            upload1,
            first as u64 + 10,
            &chunk(first + 10, first + 20)
        ),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, first as u64, &chunk(first, 2 * first + 1)),
        Error::TooLarge(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, first as u64, &SealedChunk::new(Vec::new())),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.complete_upload(&inst, upload1),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(&inst, UploadId::random(), 0, &chunk(0, 10)),
        Error::NotFound(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload(&other, upload1, first as u64, &chunk(first, 2 * first)),
        Error::NotFound(_)
    );
    // A restarted client asks where it stopped and goes on from there.
    let mut offset = store.upload_state(&inst, upload1).unwrap().received;
    assert_eq!(offset, first as u64);
    while (offset as usize) < content1.len() - 1000 {
        let from = offset as usize;
        offset = store
            .append_upload(
                &inst,
                upload1,
                offset,
                &chunk(from, from + SEALED_CHUNK_SIZE),
            )
            .unwrap();
    }
    let rest = SealedChunk::new([&content1[offset as usize..], b"extra"].concat());
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, offset, &rest),
        Error::Conflict(_)
    );
    let end = content1.len();
    store
        .append_upload(&inst, upload1, offset, &chunk(offset as usize, end))
        .unwrap();
    store.complete_upload(&inst, upload1).unwrap();
    // A retried completion is harmless; appending after it is not allowed.
    store.complete_upload(&inst, upload1).unwrap();
    refused!(
        &store,
        &known,
        store.append_upload(&inst, upload1, end as u64, &chunk(0, 1)),
        Error::Conflict(_)
    );
    let state = store.upload_state(&inst, upload1).unwrap();
    assert_eq!(state.received, content1.len() as u64);
    assert_eq!(state.declared_len, content1.len() as u64);
    assert!(state.complete && state.attached_to.is_none() && state.chunks > 0);
    refused!(
        &store,
        &known,
        store.create_upload(&inst, 0, d1),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.create_upload(&inst, u64::MAX, d1),
        Error::TooLarge(_)
    );

    // A run of chunks is one step: all appended, or none.
    let content5 = bytes(2 * SEALED_CHUNK_SIZE + 7, 55);
    let upload5 = store
        .create_upload(&inst, content5.len() as u64, d1)
        .unwrap();
    known.uploads.push(upload5);
    let run = |from: usize, to: usize| -> Vec<SealedChunk> {
        content5[from..to]
            .chunks(SEALED_CHUNK_SIZE)
            .map(|piece| SealedChunk::new(piece.to_vec()))
            .collect()
    };
    refused!(
        &store,
        &known,
        store.append_upload_chunks(&inst, upload5, 0, &[]),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.append_upload_chunks(
            &inst,
            upload5,
            0,
            &[
                run(0, 2 * SEALED_CHUNK_SIZE),
                vec![SealedChunk::new(bytes(100, 1))]
            ]
            .concat()
        ),
        Error::Conflict(_)
    );
    let at = store
        .append_upload_chunks(&inst, upload5, 0, &run(0, 2 * SEALED_CHUNK_SIZE))
        .unwrap();
    assert_eq!(at, 2 * SEALED_CHUNK_SIZE as u64);
    refused!(
        &store,
        &known,
        store.append_upload_chunks(&inst, upload5, 0, &run(0, 7)),
        Error::Conflict(_)
    );
    store
        .append_upload_chunks(&inst, upload5, at, &run(at as usize, content5.len()))
        .unwrap();
    store.complete_upload(&inst, upload5).unwrap();

    // --- Append sessions: bytes count once committed; one session per upload.
    let content6 = bytes(3 * SEALED_CHUNK_SIZE + 11, 66);
    let upload6 = store
        .create_upload(&inst, content6.len() as u64, d1)
        .unwrap();
    known.uploads.push(upload6);
    let piece6 = |from: usize, to: usize| -> Vec<SealedChunk> {
        content6[from..to]
            .chunks(SEALED_CHUNK_SIZE)
            .map(|piece| SealedChunk::new(piece.to_vec()))
            .collect()
    };
    refused!(
        &store,
        &known,
        store.open_upload_sink(&inst, upload6, 1).map(drop),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store
            .open_upload_sink(&inst, UploadId::random(), 0)
            .map(drop),
        Error::NotFound(_)
    );
    // Written but never committed: dropped with the session, the store unchanged.
    let before = observe(&store, &known);
    {
        let sink = store.open_upload_sink(&inst, upload6, 0).unwrap();
        assert!(matches!(
            store.open_upload_sink(&inst, upload6, 0).map(drop),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            store.append_upload(&inst, upload6, 0, &piece6(0, 10)[0]),
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            sink.write(&piece6(0, SEALED_CHUNK_SIZE)).unwrap(),
            SEALED_CHUNK_SIZE as u64
        );
        assert_eq!(store.upload_state(&inst, upload6).unwrap().received, 0);
        assert!(matches!(
            sink.write(&[SealedChunk::new(bytes(content6.len(), 1))]),
            Err(Error::TooLarge(_))
        ));
        assert!(matches!(sink.write(&[]), Err(Error::Invalid(_))));
    }
    assert_eq!(observe(&store, &known), before);
    // Committed in two steps, with a write past the declared length refused in between.
    let sink = store.open_upload_sink(&inst, upload6, 0).unwrap();
    sink.write(&piece6(0, 2 * SEALED_CHUNK_SIZE)).unwrap();
    assert_eq!(sink.commit().unwrap(), 2 * SEALED_CHUNK_SIZE as u64);
    assert_eq!(
        store.upload_state(&inst, upload6).unwrap().received,
        2 * SEALED_CHUNK_SIZE as u64
    );
    assert!(matches!(
        sink.write(
            &[
                piece6(2 * SEALED_CHUNK_SIZE, content6.len()),
                vec![SealedChunk::new(bytes(1, 2))]
            ]
            .concat()
        ),
        Err(Error::Conflict(_))
    ));
    sink.write(&piece6(2 * SEALED_CHUNK_SIZE, content6.len()))
        .unwrap();
    // A commit with nothing new written is a no-op that reports the same offset.
    assert_eq!(sink.commit().unwrap(), content6.len() as u64);
    assert_eq!(sink.commit().unwrap(), content6.len() as u64);
    drop(sink);
    store.complete_upload(&inst, upload6).unwrap();
    refused!(
        &store,
        &known,
        store
            .open_upload_sink(&inst, upload6, content6.len() as u64)
            .map(drop),
        Error::Conflict(_)
    );

    let content2 = bytes(5000, 22);
    let upload2 = upload_whole(&store, &inst, &content2, d1);
    let upload3 = store.create_upload(&inst, 100, d0).unwrap();
    store
        .append_upload(&inst, upload3, 0, &SealedChunk::new(bytes(50, 3)))
        .unwrap();
    known.uploads.extend([upload2, upload3]);

    // --- Submit: atomic, all checks before any write.
    let envelope1 = sealed(20_000, 41);
    let key1 = mailbox_key();
    let new_case = |envelope: &SealedMessage, attachments: Vec<UploadId>, pow_seed: u8| NewCase {
        day: d1,
        size_bucket: 65_536,
        mailbox_key: key1,
        envelope: envelope.clone(),
        attachments,
        pow_hash: pow(pow_seed),
    };
    let open_before = store.open_uploads(&inst).unwrap();
    let case1 = store
        .submit_case(&inst, new_case(&envelope1, vec![upload1, upload2], 1))
        .unwrap();
    assert_eq!(case1.cursor, 1);
    // Attached uploads no longer count as open.
    assert_eq!(store.open_uploads(&inst).unwrap(), open_before - 2);
    known.cases.push(case1.id);
    refused!(
        &store,
        &known,
        store.submit_case(&inst, new_case(&envelope1, vec![], 1)),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.submit_case(&inst, new_case(&envelope1, vec![upload3], 2)),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.submit_case(&inst, new_case(&envelope1, vec![UploadId::random()], 2)),
        Error::NotFound(_)
    );
    refused!(
        &store,
        &known,
        store.submit_case(&inst, new_case(&envelope1, vec![upload1], 2)),
        Error::Conflict(_)
    );
    let upload4 = upload_whole(&store, &inst, &bytes(10, 4), d1);
    known.uploads.push(upload4);
    refused!(
        &store,
        &known,
        store.submit_case(&inst, new_case(&envelope1, vec![upload4, upload4], 2)),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.submit_case(
            &inst,
            new_case(
                &envelope1,
                (0..=MAX_ATTACHMENTS).map(|_| UploadId::random()).collect(),
                2
            )
        ),
        Error::TooLarge(_)
    );
    refused!(
        &store,
        &known,
        store.submit_case(
            &inst,
            new_case(&SealedMessage::from_stored(Vec::new()), vec![], 2)
        ),
        Error::Invalid(_)
    );
    // A refused submission did not spend its proof of work.
    let envelope2 = sealed(3000, 42);
    let case2 = store
        .submit_case(&inst, new_case(&envelope2, vec![upload4, upload5], 2))
        .unwrap();
    assert_eq!(case2.cursor, 4);
    known.cases.push(case2.id);
    // The same stamp is fine for another institution; replay protection is per institution.
    let case_other = store
        .submit_case(&other, new_case(&envelope2, vec![], 2))
        .unwrap();
    assert_eq!(case_other.cursor, 1);

    // --- Read back, byte for byte.
    let record = store.case(&inst, case1.id).unwrap();
    assert_eq!(record.id, case1.id);
    assert_eq!(record.day, d1);
    assert_eq!(record.size_bucket, 65_536);
    assert_eq!(record.mailbox_key, key1);
    assert_eq!(record.state, CaseState::Open);
    assert_eq!(record.attachments, vec![upload1, upload2]);
    assert_eq!(record.envelope_len, 20_000);
    assert_eq!(record.cursor, 1);
    assert_eq!(record.deleted_on, None);
    assert_eq!(store.envelope(&inst, case1.id).unwrap(), envelope1);
    assert_eq!(attachment(&store, &inst, case1.id, upload1), content1);
    assert_eq!(attachment(&store, &inst, case1.id, upload2), content2);
    assert_eq!(
        store.upload_state(&inst, upload1).unwrap().attached_to,
        Some(case1.id)
    );
    // An upload is only readable through the case it is attached to.
    assert!(matches!(
        store.attachment_chunks(&inst, case2.id, upload1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.attachment_chunks(&inst, case1.id, upload3),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.case(&inst, CaseId::random()),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.case(&other, case1.id),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.envelope(&other, case1.id),
        Err(Error::NotFound(_))
    ));

    // --- Export since a cursor.
    let exported: Vec<String> = store
        .export_since(&inst, 0)
        .unwrap()
        .map(|item| describe(&item.unwrap()))
        .collect();
    assert_eq!(
        exported,
        vec![
            format!("1 case {} {}", case1.id, digest(envelope1.as_bytes())),
            format!("2 attachment {} {upload1} {}", case1.id, content1.len()),
            format!("3 attachment {} {upload2} {}", case1.id, content2.len()),
            format!("4 case {} {}", case2.id, digest(envelope2.as_bytes())),
            format!("5 attachment {} {upload4} 10", case2.id),
            format!("6 attachment {} {upload5} {}", case2.id, content5.len()),
        ]
    );
    let since: Vec<u64> = store
        .export_since(&inst, 3)
        .unwrap()
        .map(|item| item.unwrap().cursor())
        .collect();
    assert_eq!(since, vec![4, 5, 6]);
    assert_eq!(store.export_since(&inst, u64::MAX).unwrap().count(), 0);
    assert_eq!(store.export_cursor(&inst).unwrap(), 6);
    assert_eq!(store.export_since(&other, 0).unwrap().count(), 1);

    // --- Mailbox: replies in a batch, follow-ups, in order, idempotent re-import.
    let reply = |case: CaseId, id: MessageId, len: usize, seed: u8| NewReply {
        case,
        id,
        day: d2,
        reply: SealedReplyBytes::new(bytes(len, seed)),
    };
    let (r1, r2, r3) = (
        MessageId::random(),
        MessageId::random(),
        MessageId::random(),
    );
    let entries = store
        .add_replies(
            &inst,
            vec![
                reply(case1.id, r1, 9000, 51),
                reply(case1.id, r2, 100, 52),
                reply(case2.id, r3, 200, 53),
            ],
        )
        .unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 1]);
    assert!(
        entries
            .iter()
            .all(|e| e.kind == MailboxKind::Reply && e.cursor.is_none())
    );
    let f1 = MessageId::random();
    let follow_up = sealed(7000, 61);
    let entry = store
        .add_follow_up(
            &inst,
            case1.id,
            NewFollowUp {
                id: f1,
                day: d2,
                message: follow_up.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        (entry.seq, entry.cursor, entry.kind),
        (3, Some(7), MailboxKind::FollowUp)
    );
    // Re-importing the same reply or re-posting the same follow-up stores nothing new.
    let before = observe(&store, &known);
    let again = store
        .add_replies(&inst, vec![reply(case1.id, r1, 9000, 51)])
        .unwrap();
    assert_eq!(again, vec![entries[0]]);
    let again = store
        .add_follow_up(
            &inst,
            case1.id,
            NewFollowUp {
                id: f1,
                day: d2,
                message: follow_up.clone(),
            },
        )
        .unwrap();
    assert_eq!(again, entry);
    assert_eq!(observe(&store, &known), before);
    // A reused id with other bytes, an unknown case or an in-batch duplicate refuses the
    // whole batch.
    let r4 = MessageId::random();
    refused!(
        &store,
        &known,
        store.add_replies(
            &inst,
            vec![reply(case1.id, r4, 10, 1), reply(case1.id, r1, 10, 9)]
        ),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.add_replies(
            &inst,
            vec![
                reply(case1.id, r4, 10, 1),
                reply(CaseId::random(), r4, 10, 1)
            ]
        ),
        Error::NotFound(_)
    );
    refused!(
        &store,
        &known,
        store.add_replies(
            &inst,
            vec![reply(case1.id, r4, 10, 1), reply(case1.id, r4, 10, 1)]
        ),
        Error::Invalid(_)
    );
    refused!(
        &store,
        &known,
        store.add_follow_up(
            &inst,
            case1.id,
            NewFollowUp {
                id: r1,
                day: d2,
                message: follow_up.clone()
            }
        ),
        Error::Conflict(_)
    );
    let mailbox = store.mailbox(&inst, case1.id).unwrap();
    let order: Vec<(u64, MessageId, MailboxKind)> =
        mailbox.iter().map(|e| (e.seq, e.id, e.kind)).collect();
    assert_eq!(
        order,
        vec![
            (1, r1, MailboxKind::Reply),
            (2, r2, MailboxKind::Reply),
            (3, f1, MailboxKind::FollowUp)
        ]
    );
    match store.mailbox_message(&inst, case1.id, 1).unwrap() {
        SealedMailboxMessage::Reply(bytes_back) => {
            assert_eq!(bytes_back.as_bytes(), bytes(9000, 51))
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    match store.mailbox_message(&inst, case1.id, 3).unwrap() {
        SealedMailboxMessage::FollowUp(message) => assert_eq!(message, follow_up),
        other => panic!("expected a follow-up, got {other:?}"),
    }
    assert!(matches!(
        store.mailbox_message(&inst, case1.id, 4),
        Err(Error::NotFound(_))
    ));
    let new_items: Vec<String> = store
        .export_since(&inst, 6)
        .unwrap()
        .map(|item| describe(&item.unwrap()))
        .collect();
    assert_eq!(
        new_items,
        vec![format!(
            "7 follow-up {} 3 {}",
            case1.id,
            digest(follow_up.as_bytes())
        )]
    );

    // --- Investigator tokens: hashes only, found by hash, revocable.
    let h1 = TokenHash::of_token(b"token one");
    let h2 = TokenHash::of_token(b"token two");
    known.tokens.extend([h1, h2]);
    store.put_token_hash(&inst, h1, "desk-1", d1).unwrap();
    refused!(
        &store,
        &known,
        store.put_token_hash(&inst, h1, "desk-1 again", d2),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.put_token_hash(&inst, h2, &"x".repeat(1000), d2),
        Error::TooLarge(_)
    );
    store.put_token_hash(&inst, h2, "desk-2", d2).unwrap();
    let found = store.find_token_hash(&inst, &h1).unwrap().unwrap();
    assert!(found.hash.ct_eq(&h1));
    assert_eq!((found.label.as_str(), found.created), ("desk-1", d1));
    assert_eq!(store.find_token_hash(&other, &h1).unwrap(), None);
    assert_eq!(store.tokens(&inst).unwrap().len(), 2);
    store.revoke_token(&inst, &h1).unwrap();
    assert_eq!(store.find_token_hash(&inst, &h1).unwrap(), None);
    refused!(
        &store,
        &known,
        store.revoke_token(&inst, &h1),
        Error::NotFound(_)
    );

    // --- Retention and deletion: a tombstone stays, the ciphertext goes.
    assert_eq!(store.cases_before(&inst, d1).unwrap(), Vec::<CaseId>::new());
    let mut due = store.cases_before(&inst, d2).unwrap();
    due.sort();
    let mut expected = vec![case1.id, case2.id];
    expected.sort();
    assert_eq!(due, expected);
    store.delete_case(&inst, case1.id, d2).unwrap();
    let tombstone = store.case(&inst, case1.id).unwrap();
    assert_eq!(tombstone.state, CaseState::Deleted);
    assert_eq!(tombstone.deleted_on, Some(d2));
    assert!(tombstone.attachments.is_empty());
    assert_ne!(
        tombstone.mailbox_key, key1,
        "a tombstone must not keep the reporter's mailbox key"
    );
    assert!(matches!(
        store.envelope(&inst, case1.id),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.attachment_chunks(&inst, case1.id, upload1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.mailbox(&inst, case1.id),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.mailbox_message(&inst, case1.id, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.upload_state(&inst, upload1),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.cases_before(&inst, d2).unwrap(), vec![case2.id]);
    let left: Vec<u64> = store
        .export_since(&inst, 0)
        .unwrap()
        .map(|item| item.unwrap().cursor())
        .collect();
    assert_eq!(left, vec![4, 5, 6]);
    // The cursor never goes back, even though the deleted items are gone.
    assert_eq!(store.export_cursor(&inst).unwrap(), 7);
    store.delete_case(&inst, case1.id, d2).unwrap();
    refused!(
        &store,
        &known,
        store.add_follow_up(
            &inst,
            case1.id,
            NewFollowUp {
                id: MessageId::random(),
                day: d2,
                message: follow_up.clone()
            }
        ),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.add_replies(&inst, vec![reply(case1.id, MessageId::random(), 10, 1)]),
        Error::Conflict(_)
    );
    refused!(
        &store,
        &known,
        store.delete_case(&inst, CaseId::random(), d2),
        Error::NotFound(_)
    );

    // --- Expiry of uploads never attached; attached ones stay.
    let late = store.create_upload(&inst, 10, d2).unwrap();
    known.uploads.push(late);
    assert_eq!(store.expire_uploads(d1).unwrap(), 1); // upload3, created on d0
    assert!(matches!(
        store.upload_state(&inst, upload3),
        Err(Error::NotFound(_))
    ));
    assert!(store.upload_state(&inst, late).is_ok());
    assert_eq!(
        store.upload_state(&inst, upload4).unwrap().attached_to,
        Some(case2.id)
    );
    assert_eq!(store.expire_uploads(d1).unwrap(), 0);

    // --- Proof-of-work hashes are forgotten by day.
    assert_eq!(store.forget_pow_hashes(d1).unwrap(), 0);
    let used_again = NewCase {
        day: d2,
        size_bucket: 1024,
        mailbox_key: key1,
        envelope: envelope2.clone(),
        attachments: vec![],
        pow_hash: pow(2),
    };
    refused!(
        &store,
        &known,
        store.submit_case(&inst, used_again),
        Error::Conflict(_)
    );
    assert_eq!(store.forget_pow_hashes(d2).unwrap(), 3);

    // --- The hourly reset of file times changes no stored byte, and can run again.
    let before = observe(&store, &known);
    for _ in 0..2 {
        assert_eq!(store.reset_file_times().unwrap().failed, 0);
    }
    assert_eq!(observe(&store, &known), before);

    // --- Everything acknowledged survives closing and reopening.
    let before = observe(&store, &known);
    assert!(before.contains("token"));
    drop(store);
    let store = make();
    assert_eq!(observe(&store, &known), before);
    assert_eq!(attachment(&store, &inst, case2.id, upload4), bytes(10, 4));
    assert_eq!(attachment(&store, &inst, case2.id, upload5), content5);
    // And the reopened store goes on where it stopped.
    let case3 = store
        .submit_case(&inst, new_case(&envelope2, vec![], 9))
        .unwrap();
    assert_eq!(case3.cursor, 8);
}
