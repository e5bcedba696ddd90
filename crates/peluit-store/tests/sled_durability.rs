//! Durability of the sled store: group commit shares syncs, a failed sync turns the store
//! read-only, refused writes leave every tree and upload file byte-identical, no value
//! spills to sled's unsynced blob files, upload files are cut back to their acknowledged
//! length, and a process killed mid-write keeps every acknowledged case.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId, MessageId, UploadId};
use peluit_proto::keys::SigningKey;
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use peluit_store::{
    CiphertextStore, Error, ExportItem, ManifestBytes, NewCase, NewReply, PowHash,
    SealedReplyBytes, SledStore,
};
use sha2::{Digest, Sha256};

fn inst() -> InstitutionId {
    "itjen-kemenkeu".parse().unwrap()
}

fn day() -> Day {
    "2026-11-28".parse().unwrap()
}

/// Pseudo-random bytes from a seed (splitmix64), so a checker can rebuild what a writer
/// stored; cheap enough for debug builds.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn pow(seed: u64) -> PowHash {
    PowHash::from_bytes(Sha256::digest(seed.to_be_bytes()).into())
}

fn small_case(seed: u64, attachments: Vec<UploadId>) -> NewCase {
    NewCase {
        day: day(),
        size_bucket: 4096,
        mailbox_key: SigningKey::generate().verifying_key(),
        envelope: SealedMessage::from_stored(bytes(seed, 4096)),
        attachments,
        pow_hash: pow(seed),
    }
}

#[test]
fn concurrent_writers_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let threads = 32;
    let per_thread = 4;
    let before = store.sync_count();
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads as u64)
        .map(|thread| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for i in 0..per_thread {
                    store
                        .submit_case(&inst(), small_case(thread * 1000 + i, vec![]))
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let syncs = store.sync_count() - before;
    let writes = (threads * per_thread as usize) as u64;
    assert_eq!(store.export_cursor(&inst()).unwrap(), writes);
    assert!(
        syncs < writes,
        "{writes} concurrent acknowledged writes made {syncs} syncs: group commit did not group"
    );
}

#[test]
fn a_failed_sync_turns_the_store_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let manifest = ManifestBytes::new(b"{\"version\":1}".to_vec());
    store.put_manifest(&inst(), 1, &manifest).unwrap();

    store.dangerously_fail_next_sync();
    // The write whose sync failed is not acknowledged...
    assert!(matches!(
        store.put_manifest(&inst(), 2, &manifest),
        Err(Error::ReadOnly)
    ));
    assert!(store.is_read_only());
    // ...and every later write is refused before it touches the trees.
    let digest = store.content_digest().unwrap();
    assert!(matches!(
        store.create_upload(&inst(), 10, day()),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        store.submit_case(&inst(), small_case(1, vec![])),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(store.expire_uploads(day()), Err(Error::ReadOnly)));
    assert_eq!(store.content_digest().unwrap(), digest);
    // Reads go on: the server can still serve manifests and mailboxes.
    assert!(store.latest_manifest(&inst()).unwrap().is_some());

    // A restart recovers from the disk and accepts writes again.
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert!(!store.is_read_only());
    store.create_upload(&inst(), 10, day()).unwrap();
}

#[test]
fn waiting_writers_all_learn_of_a_failed_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    store.dangerously_fail_next_sync();
    let threads = 16;
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads as u64)
        .map(|seed| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                store.submit_case(&inst(), small_case(seed, vec![]))
            })
        })
        .collect();
    let outcomes: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // Whoever was not covered by a sync that finished before the failure hears of it; no
    // one is acknowledged by a sync that failed.
    assert!(outcomes.iter().any(|o| matches!(o, Err(Error::ReadOnly))));
    assert!(store.is_read_only());
}

#[test]
fn refused_writes_leave_every_tree_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let upload = store.create_upload(&inst(), 10_000, day()).unwrap();
    store
        .append_upload(&inst(), upload, 0, &SealedChunk::new(bytes(1, 5000)))
        .unwrap();
    let done = store.create_upload(&inst(), 100, day()).unwrap();
    store
        .append_upload(&inst(), done, 0, &SealedChunk::new(bytes(2, 100)))
        .unwrap();
    store.complete_upload(&inst(), done).unwrap();
    let case = store
        .submit_case(&inst(), small_case(7, vec![done]))
        .unwrap();
    let digest = store.content_digest().unwrap();

    let chunk = SealedChunk::new(bytes(3, 100));
    let refusals: Vec<Result<(), Error>> = vec![
        store.append_upload(&inst(), upload, 0, &chunk).map(drop),
        store.append_upload(&inst(), upload, 4999, &chunk).map(drop),
        store.append_upload(&inst(), upload, 5001, &chunk).map(drop),
        store
            .append_upload(&inst(), upload, 5000, &SealedChunk::new(bytes(3, 5001)))
            .map(drop),
        store.complete_upload(&inst(), upload),
        store.submit_case(&inst(), small_case(7, vec![])).map(drop),
        store
            .submit_case(&inst(), small_case(8, vec![upload]))
            .map(drop),
        store
            .submit_case(&inst(), small_case(8, vec![done]))
            .map(drop),
        store
            .submit_case(&inst(), small_case(8, vec![UploadId::random()]))
            .map(drop),
        store
            .add_replies(
                &inst(),
                vec![
                    NewReply {
                        case: case.id,
                        id: MessageId::random(),
                        day: day(),
                        reply: SealedReplyBytes::new(bytes(4, 100)),
                    },
                    NewReply {
                        case: CaseId::random(),
                        id: MessageId::random(),
                        day: day(),
                        reply: SealedReplyBytes::new(bytes(5, 100)),
                    },
                ],
            )
            .map(drop),
    ];
    for (index, refusal) in refusals.iter().enumerate() {
        assert!(refusal.is_err(), "request {index} was accepted");
    }
    assert_eq!(store.content_digest().unwrap(), digest);
}

fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).map_or(0, |entries| entries.count())
}

#[test]
fn large_values_never_spill_to_unsynced_blob_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // 4 MiB of attachment in full sealed STREAM chunks (into its file), a 1 MiB envelope
    // and a 4 MiB reply (into sled): with 64 KiB values sled 0.34 writes hundreds of blob
    // files for the last two.
    let content = bytes(9, 4 * 1024 * 1024);
    let upload = store
        .create_upload(&inst(), content.len() as u64, day())
        .unwrap();
    let mut offset = 0;
    for piece in content.chunks(SEALED_CHUNK_SIZE) {
        offset = store
            .append_upload(&inst(), upload, offset, &SealedChunk::new(piece.to_vec()))
            .unwrap();
    }
    store.complete_upload(&inst(), upload).unwrap();
    let mut case = small_case(10, vec![upload]);
    case.envelope = SealedMessage::from_stored(bytes(10, 1024 * 1024));
    let case = store.submit_case(&inst(), case).unwrap();
    store
        .add_replies(
            &inst(),
            vec![NewReply {
                case: case.id,
                id: MessageId::random(),
                day: day(),
                reply: SealedReplyBytes::new(bytes(11, 4 * 1024 * 1024)),
            }],
        )
        .unwrap();
    assert_eq!(blob_files(dir.path()), 0);
    let read: Vec<u8> = store
        .attachment_chunks(&inst(), case.id, upload)
        .unwrap()
        .flat_map(|chunk| chunk.unwrap().into_bytes())
        .collect();
    assert!(read == content);
    store.delete_case(&inst(), case.id, day()).unwrap();
    assert_eq!(blob_files(dir.path()), 0);
}

// --- Crash loop: a child process writes and reports each acknowledged case, the parent
// kills it with SIGKILL mid-write, reopens the store and checks every acknowledged case.

const CRASH_DIR: &str = "PELUIT_STORE_CRASH_DIR";
const CRASH_ROUND: &str = "PELUIT_STORE_CRASH_ROUND";

/// One acknowledged write of the child: the case and the seed its bytes come from. The
/// attachment goes through an append session, one chunk per commit, so a kill often
/// lands between a write and its commit and leaves an unacknowledged tail in the file.
fn crash_child_write(store: &SledStore, seed: u64) -> CaseId {
    let content = bytes(seed, 3 * SEALED_CHUNK_SIZE / 2);
    let upload = store
        .create_upload(&inst(), content.len() as u64, day())
        .unwrap();
    let sink = store.open_upload_sink(&inst(), upload, 0).unwrap();
    for piece in content.chunks(SEALED_CHUNK_SIZE) {
        sink.write(&[SealedChunk::new(piece.to_vec())]).unwrap();
        sink.commit().unwrap();
    }
    drop(sink);
    store.complete_upload(&inst(), upload).unwrap();
    store
        .submit_case(&inst(), small_case(seed, vec![upload]))
        .unwrap()
        .id
}

/// Runs only as the child of `acknowledged_cases_survive_kill_9`.
#[test]
#[ignore = "runs as the child process of the crash test"]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else {
        return;
    };
    let round: u64 = std::env::var(CRASH_ROUND).unwrap().parse().unwrap();
    let store = Arc::new(SledStore::open(dir).unwrap());
    let workers: Vec<_> = (0..8u64)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0.. {
                    let seed = (round << 32) | (thread << 24) | i;
                    let case = crash_child_write(&store, seed);
                    // Printed only after the store acknowledged: the parent may rely on it.
                    println!("ACK {case} {seed}");
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
}

fn check_acknowledged(store: &SledStore, acknowledged: &[(CaseId, u64)]) {
    for &(case, seed) in acknowledged {
        let envelope = store.envelope(&inst(), case).unwrap();
        assert!(
            envelope.as_bytes() == bytes(seed, 4096),
            "case {case} changed"
        );
        let record = store.case(&inst(), case).unwrap();
        assert_eq!(record.attachments.len(), 1);
        let read: Vec<u8> = store
            .attachment_chunks(&inst(), case, record.attachments[0])
            .unwrap()
            .flat_map(|chunk| chunk.unwrap().into_bytes())
            .collect();
        assert!(
            read == bytes(seed, 3 * SEALED_CHUNK_SIZE / 2),
            "attachment of {case} changed"
        );
    }
    // No half-written case: everything visible reads back whole.
    for item in store.export_since(&inst(), 0).unwrap() {
        match item.unwrap() {
            ExportItem::Case { case, envelope, .. } => {
                assert_eq!(envelope.as_bytes().len() as u64, case.envelope_len);
            }
            ExportItem::Attachment {
                case, upload, len, ..
            } => {
                let read: u64 = store
                    .attachment_chunks(&inst(), case, upload)
                    .unwrap()
                    .map(|chunk| chunk.unwrap().as_bytes().len() as u64)
                    .sum();
                assert_eq!(read, len);
            }
            other => panic!("unexpected export item {other:?}"),
        }
    }
}

#[test]
fn acknowledged_cases_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(CaseId, u64)> = Vec::new();
    for round in 0..5u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env(CRASH_DIR, dir.path())
            .env(CRASH_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acked_this_round = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let (case, seed) = rest.split_once(' ').unwrap();
            acknowledged.push((case.parse().unwrap(), seed.parse().unwrap()));
            acked_this_round += 1;
            if acked_this_round >= 20 + 7 * round || Instant::now() > deadline {
                break;
            }
        }
        // SIGKILL while the other writers are mid-step.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(acked_this_round > 0, "the child acknowledged nothing");
        let store = SledStore::open(dir.path()).unwrap();
        check_acknowledged(&store, &acknowledged);
        assert_files_match_records(dir.path(), &store);
    }
}

/// Every upload file is exactly as long as its upload's acknowledged bytes, and every
/// file belongs to an upload that has some.
fn assert_files_match_records(dir: &Path, store: &SledStore) {
    let folder = dir.join("uploads").join(inst().as_str());
    for entry in std::fs::read_dir(&folder).unwrap() {
        let entry = entry.unwrap();
        let upload: UploadId = entry.file_name().to_str().unwrap().parse().unwrap();
        let received = store.upload_state(&inst(), upload).unwrap().received;
        assert!(
            received > 0,
            "a file for an upload with nothing acknowledged"
        );
        assert_eq!(
            entry.metadata().unwrap().len(),
            received,
            "file of {upload}"
        );
    }
}

fn upload_file(dir: &Path, upload: UploadId) -> std::path::PathBuf {
    dir.join("uploads")
        .join(inst().as_str())
        .join(upload.to_string())
}

fn chunks_of(content: &[u8]) -> Vec<SealedChunk> {
    content
        .chunks(SEALED_CHUNK_SIZE)
        .map(|piece| SealedChunk::new(piece.to_vec()))
        .collect()
}

#[test]
fn upload_bytes_live_in_one_file_per_upload_cut_back_to_the_acknowledged_length() {
    let dir = tempfile::tempdir().unwrap();
    let content = bytes(21, 5 * SEALED_CHUNK_SIZE + 3);
    let (upload, orphan) = {
        let store = SledStore::open(dir.path()).unwrap();
        let upload = store
            .create_upload(&inst(), content.len() as u64, day())
            .unwrap();
        assert!(!upload_file(dir.path(), upload).exists());
        let sink = store.open_upload_sink(&inst(), upload, 0).unwrap();
        sink.write(&chunks_of(&content[..2 * SEALED_CHUNK_SIZE]))
            .unwrap();
        sink.commit().unwrap();
        drop(sink);
        assert_eq!(
            std::fs::read(upload_file(dir.path(), upload)).unwrap(),
            &content[..2 * SEALED_CHUNK_SIZE]
        );
        // What a crash between a write and its commit leaves: a tail past the recorded
        // length, and a file whose upload record never became durable.
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .open(upload_file(dir.path(), upload))
            .unwrap()
            .write_all(&content[2 * SEALED_CHUNK_SIZE..3 * SEALED_CHUNK_SIZE])
            .unwrap();
        let orphan = UploadId::random();
        std::fs::write(upload_file(dir.path(), orphan), b"unacknowledged").unwrap();
        // Not the store's: left alone, and no reason to refuse to open.
        std::fs::write(dir.path().join("uploads/notes.txt"), b"x").unwrap();
        (upload, orphan)
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        std::fs::metadata(upload_file(dir.path(), upload))
            .unwrap()
            .len(),
        2 * SEALED_CHUNK_SIZE as u64
    );
    assert!(!upload_file(dir.path(), orphan).exists());
    assert!(dir.path().join("uploads/notes.txt").exists());
    assert_files_match_records(dir.path(), &store);
    // The upload resumes at its acknowledged end and reads back whole.
    let at = store.upload_state(&inst(), upload).unwrap().received;
    store
        .append_upload_chunks(&inst(), upload, at, &chunks_of(&content[at as usize..]))
        .unwrap();
    store.complete_upload(&inst(), upload).unwrap();
    let case = store
        .submit_case(&inst(), small_case(21, vec![upload]))
        .unwrap();
    let read: Vec<u8> = store
        .attachment_chunks(&inst(), case.id, upload)
        .unwrap()
        .flat_map(|chunk| chunk.unwrap().into_bytes())
        .collect();
    assert!(read == content);
    // A file cut short behind the store's back is reported, never read as shorter.
    std::fs::OpenOptions::new()
        .write(true)
        .open(upload_file(dir.path(), upload))
        .unwrap()
        .set_len(100)
        .unwrap();
    let outcome: Result<Vec<_>, Error> = store
        .attachment_chunks(&inst(), case.id, upload)
        .unwrap()
        .collect();
    assert!(matches!(outcome, Err(Error::Corrupt(_))));
}

#[test]
fn deleting_a_case_or_expiring_an_upload_removes_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let attached = store.create_upload(&inst(), 1000, day()).unwrap();
    store
        .append_upload(&inst(), attached, 0, &SealedChunk::new(bytes(31, 1000)))
        .unwrap();
    store.complete_upload(&inst(), attached).unwrap();
    let case = store
        .submit_case(&inst(), small_case(31, vec![attached]))
        .unwrap();
    let stale = store
        .create_upload(&inst(), 1000, "2026-01-01".parse().unwrap())
        .unwrap();
    store
        .append_upload(&inst(), stale, 0, &SealedChunk::new(bytes(32, 10)))
        .unwrap();
    assert!(upload_file(dir.path(), attached).exists());
    assert!(upload_file(dir.path(), stale).exists());
    store.delete_case(&inst(), case.id, day()).unwrap();
    assert!(!upload_file(dir.path(), attached).exists());
    assert_eq!(store.expire_uploads(day()).unwrap(), 1);
    assert!(!upload_file(dir.path(), stale).exists());
}

#[test]
fn refused_or_abandoned_appends_leave_every_upload_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let started = store.create_upload(&inst(), 200_000, day()).unwrap();
    store
        .append_upload(&inst(), started, 0, &SealedChunk::new(bytes(41, 5000)))
        .unwrap();
    let fresh = store.create_upload(&inst(), 200_000, day()).unwrap();
    let digest = store.content_digest().unwrap();
    for (upload, at) in [(started, 5000), (fresh, 0)] {
        let sink = store.open_upload_sink(&inst(), upload, at).unwrap();
        sink.write(&chunks_of(&bytes(42, 100_000))).unwrap();
        assert!(sink.write(&chunks_of(&bytes(43, 150_000))).is_err());
        drop(sink);
        assert_eq!(store.content_digest().unwrap(), digest);
    }
    assert!(!upload_file(dir.path(), fresh).exists());
    // The digest reads the files: a flipped byte shows.
    let path = upload_file(dir.path(), started);
    let mut stored = std::fs::read(&path).unwrap();
    stored[4000] ^= 1;
    std::fs::write(&path, &stored).unwrap();
    assert_ne!(store.content_digest().unwrap(), digest);
}

#[test]
fn a_failed_upload_file_sync_turns_the_store_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let upload = store.create_upload(&inst(), 10_000, day()).unwrap();
    let sink = store.open_upload_sink(&inst(), upload, 0).unwrap();
    sink.write(&[SealedChunk::new(bytes(51, 5000))]).unwrap();
    store.dangerously_fail_next_sync();
    assert!(matches!(sink.commit(), Err(Error::ReadOnly)));
    assert!(store.is_read_only());
    assert!(matches!(
        sink.write(&[SealedChunk::new(bytes(52, 10))]),
        Err(Error::ReadOnly)
    ));
    drop(sink);
    assert_eq!(store.upload_state(&inst(), upload).unwrap().received, 0);
    assert!(matches!(
        store.create_upload(&inst(), 10, day()),
        Err(Error::ReadOnly)
    ));
}

// --- Measurement, run by hand:
// cargo test --release -p peluit-store --test sled_durability -- --ignored --nocapture durable_small

#[test]
#[ignore = "a measurement, not a check; run by hand in release mode"]
fn durable_small_submissions_from_64_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let threads = 64u64;
    let per_thread = 100u64;
    let start = Arc::new(Barrier::new(threads as usize + 1));
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let cases: Vec<NewCase> = (0..per_thread)
                    .map(|i| small_case(thread * 1_000_000 + i, vec![]))
                    .collect();
                start.wait();
                let mut latencies = Vec::with_capacity(per_thread as usize);
                for case in cases {
                    let begun = Instant::now();
                    store.submit_case(&inst(), case).unwrap();
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let syncs_before = store.sync_count();
    start.wait();
    let begun = Instant::now();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect();
    let elapsed = begun.elapsed();
    latencies.sort();
    let total = latencies.len();
    let percentile = |p: usize| latencies[(total * p / 100).min(total - 1)];
    println!(
        "{total} durable 4 KiB submissions from {threads} threads in {:.2} s: {:.0}/s, \
         p50 {:.1} ms, p99 {:.1} ms, {} syncs",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        percentile(50).as_secs_f64() * 1e3,
        percentile(99).as_secs_f64() * 1e3,
        store.sync_count() - syncs_before,
    );
}

#[test]
#[ignore = "a measurement, not a check; run by hand in release mode"]
fn durable_upload_ingest() {
    let total = 256 * 1024 * 1024usize;
    let chunk = SealedChunk::new(bytes(1, SEALED_CHUNK_SIZE));
    for per_step in [1, 16, 64, 256] {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let upload = store.create_upload(&inst(), total as u64, day()).unwrap();
        let run = vec![chunk.clone(); per_step];
        let begun = Instant::now();
        let mut offset = 0u64;
        while (offset as usize) + per_step * SEALED_CHUNK_SIZE <= total {
            offset = store
                .append_upload_chunks(&inst(), upload, offset, &run)
                .unwrap();
        }
        let elapsed = begun.elapsed().as_secs_f64();
        println!(
            "{} MiB in durable steps of {per_step} sealed chunks: {:.1} MB/s",
            offset >> 20,
            offset as f64 / elapsed / 1e6,
        );
    }
}
