//! Upload files and their folders keep no time of day: access and modification times are
//! the Unix epoch after every commit, removal, read and hourly sweep (docs/storage.md#file-times).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::fs::{File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use peluit_proto::day::Day;
use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::keys::SigningKey;
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use peluit_store::{
    CiphertextStore, Error, ExportItem, NewCase, PowHash, SPARE_UPLOAD_FILES, SledStore,
};
use sha2::{Digest, Sha256};

fn inst() -> InstitutionId {
    "itjen-kemenkeu".parse().unwrap()
}

fn other_inst() -> InstitutionId {
    "inspektorat-jabar".parse().unwrap()
}

fn day() -> Day {
    "2026-11-28".parse().unwrap()
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn chunks_of(content: &[u8]) -> Vec<SealedChunk> {
    content
        .chunks(SEALED_CHUNK_SIZE)
        .map(|piece| SealedChunk::new(piece.to_vec()))
        .collect()
}

fn new_case(seed: u8, attachments: Vec<UploadId>) -> NewCase {
    NewCase {
        day: day(),
        size_bucket: 4096,
        mailbox_key: SigningKey::generate().verifying_key(),
        envelope: SealedMessage::from_stored(bytes(seed, 4096)),
        attachments,
        pow_hash: PowHash::from_bytes(Sha256::digest([seed]).into()),
    }
}

fn root(dir: &Path) -> PathBuf {
    dir.join("uploads")
}

fn folder(dir: &Path, institution: &InstitutionId) -> PathBuf {
    root(dir).join(institution.as_str())
}

fn file(dir: &Path, institution: &InstitutionId, upload: UploadId) -> PathBuf {
    folder(dir, institution).join(upload.to_string())
}

/// The entry's (access, modification) times, without following a symlink.
fn times(path: &Path) -> (SystemTime, SystemTime) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.accessed().unwrap(), meta.modified().unwrap())
}

#[track_caller]
fn assert_epoch(path: &Path, what: &str) {
    assert_eq!(times(path), (UNIX_EPOCH, UNIX_EPOCH), "times of {what}");
}

/// Stamps the entry with the current time, as a write or a read would.
fn stamp_now(path: &Path) {
    let now = SystemTime::now();
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(now).set_modified(now))
        .unwrap();
    assert_ne!(times(path).1, UNIX_EPOCH);
}

/// Stores `content` as a complete upload attached to a fresh case; returns the case's
/// upload.
fn attached_upload(store: &SledStore, seed: u8, content: &[u8]) -> UploadId {
    let upload = store
        .create_upload(&inst(), content.len() as u64, day())
        .unwrap();
    store
        .append_upload_chunks(&inst(), upload, 0, &chunks_of(content))
        .unwrap();
    store.complete_upload(&inst(), upload).unwrap();
    store
        .submit_case(&inst(), new_case(seed, vec![upload]))
        .unwrap();
    upload
}

#[test]
fn committed_appends_leave_the_file_and_its_folders_at_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let content = bytes(1, 3 * SEALED_CHUNK_SIZE + 5);
    let upload = store
        .create_upload(&inst(), content.len() as u64, day())
        .unwrap();
    let sink = store.open_upload_sink(&inst(), upload, 0).unwrap();
    sink.write(&chunks_of(&content[..SEALED_CHUNK_SIZE]))
        .unwrap();
    // Written, not committed: the write dated the file.
    assert_ne!(times(&file(dir.path(), &inst(), upload)).1, UNIX_EPOCH);
    sink.commit().unwrap();
    assert_epoch(
        &file(dir.path(), &inst(), upload),
        "the file after a commit",
    );
    assert_epoch(&folder(dir.path(), &inst()), "the folder it was created in");
    assert_epoch(&root(dir.path()), "the uploads root, with a new folder");
    sink.write(&chunks_of(&content[SEALED_CHUNK_SIZE..]))
        .unwrap();
    sink.commit().unwrap();
    drop(sink);
    assert_epoch(
        &file(dir.path(), &inst(), upload),
        "the file after its last commit",
    );

    // The one-step append, on a second upload in the same folder.
    let second = attached_upload(&store, 2, &bytes(2, 1000));
    assert_epoch(&file(dir.path(), &inst(), second), "a one-step upload");
    assert_epoch(
        &folder(dir.path(), &inst()),
        "the folder after a second file",
    );
}

#[test]
fn reading_an_upload_file_leaves_its_access_time_at_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let content = bytes(3, 2 * SEALED_CHUNK_SIZE + 7);
    let upload = {
        let store = SledStore::open(dir.path()).unwrap();
        let upload = attached_upload(&store, 3, &content);
        // relatime sets the access time on the first read after a write, here the epoch
        // modification time: only O_NOATIME keeps the reads below from dating the export.
        let mut read = Vec::new();
        for item in store.export_since(&inst(), 0).unwrap() {
            if let ExportItem::Attachment { case, upload, .. } = item.unwrap() {
                for chunk in store.attachment_chunks(&inst(), case, upload).unwrap() {
                    read.extend(chunk.unwrap().into_bytes());
                }
            }
        }
        assert!(read == content);
        // Checked before the store closes: opening it again resets every time anyway.
        assert_epoch(
            &file(dir.path(), &inst(), upload),
            "the file after export reads",
        );
        store.content_digest().unwrap();
        assert_epoch(
            &file(dir.path(), &inst(), upload),
            "the file after the digest",
        );
        assert_epoch(&folder(dir.path(), &inst()), "the folder after the digest");
        upload
    };
    // Opening lists every folder and file to recover them.
    let store = SledStore::open(dir.path()).unwrap();
    store.content_digest().unwrap();
    assert_epoch(&file(dir.path(), &inst(), upload), "the file after reads");
    assert_epoch(&folder(dir.path(), &inst()), "the folder after listings");
    assert_epoch(&root(dir.path()), "the uploads root after listings");
}

#[test]
fn removals_and_abandoned_sessions_leave_files_and_folders_at_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let kept = store.create_upload(&inst(), 200_000, day()).unwrap();
    store
        .append_upload(&inst(), kept, 0, &SealedChunk::new(bytes(4, 5000)))
        .unwrap();
    // An abandoned session cuts its file back, or removes a file it created.
    for (upload, at) in [
        (kept, 5000),
        (store.create_upload(&inst(), 200_000, day()).unwrap(), 0),
    ] {
        let sink = store.open_upload_sink(&inst(), upload, at).unwrap();
        sink.write(&chunks_of(&bytes(5, 100_000))).unwrap();
        drop(sink);
        assert_epoch(&folder(dir.path(), &inst()), "the folder after an abandon");
    }
    assert_epoch(&file(dir.path(), &inst(), kept), "a file cut back");

    let attached = attached_upload(&store, 6, &bytes(6, 1000));
    let case = store.upload_state(&inst(), attached).unwrap().attached_to;
    store.delete_case(&inst(), case.unwrap(), day()).unwrap();
    assert!(!file(dir.path(), &inst(), attached).exists());
    assert_epoch(&folder(dir.path(), &inst()), "the folder after a deletion");
    assert_eq!(
        store.expire_uploads("2026-11-29".parse().unwrap()).unwrap(),
        2
    );
    assert!(!file(dir.path(), &inst(), kept).exists());
    assert_epoch(&folder(dir.path(), &inst()), "the folder after an expiry");
}

/// Every upload file and institution folder under `dir`, every spare and the pool's
/// folder, then the uploads root.
fn every_entry(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(root(dir)).unwrap() {
        let folder = folder.unwrap().path();
        if folder.is_dir() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                found.push(entry.unwrap().path());
            }
            found.push(folder);
        }
    }
    found.push(root(dir));
    found
}

#[test]
fn the_sweep_resets_every_upload_file_and_folder() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    attached_upload(&store, 7, &bytes(7, 3000));
    attached_upload(&store, 8, &bytes(8, 70_000));
    let other = store.create_upload(&other_inst(), 10_000, day()).unwrap();
    store
        .append_upload(&other_inst(), other, 0, &SealedChunk::new(bytes(9, 10)))
        .unwrap();
    // Not the store's, even the file named like an institution: left alone.
    let foreign = [
        root(dir.path()).join("notes.txt"),
        root(dir.path()).join("catatan"),
    ];
    for path in &foreign {
        std::fs::write(path, b"x").unwrap();
        stamp_now(path);
    }
    let entries: Vec<PathBuf> = every_entry(dir.path())
        .into_iter()
        .filter(|path| !foreign.contains(path))
        .collect();
    // Three uploads took three spares.
    assert_eq!(entries.len(), 3 + 2 + (SPARE_UPLOAD_FILES - 3) + 1 + 1);
    for path in &entries {
        stamp_now(path);
    }
    let digest = store.content_digest().unwrap();

    let reset = store.reset_file_times().unwrap();
    // The sweep made three new spares first, and reset them too.
    assert_eq!((reset.reset, reset.failed), (entries.len() + 3, 0));
    for path in &entries {
        assert_epoch(path, "an entry after the sweep");
    }
    // Listed only now: a listing sets the folder's access time.
    let new_spares: Vec<PathBuf> = std::fs::read_dir(root(dir.path()).join(".spare"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !entries.contains(path))
        .collect();
    assert_eq!(new_spares.len(), 3);
    for path in &new_spares {
        assert_epoch(path, "a spare made by the sweep");
    }
    for path in &foreign {
        assert_ne!(times(path).1, UNIX_EPOCH);
    }
    assert_eq!(store.content_digest().unwrap(), digest);
}

#[test]
fn a_failed_reset_in_the_sweep_is_counted_and_the_sweep_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    attached_upload(&store, 10, &bytes(10, 3000));
    attached_upload(&store, 11, &bytes(11, 3000));
    // A first sweep refills the pool, so the next ones find the same entries.
    store.reset_file_times().unwrap();
    let entries = every_entry(dir.path());
    assert_eq!(entries.len(), 2 + 1 + SPARE_UPLOAD_FILES + 1 + 1);
    for path in &entries {
        stamp_now(path);
    }
    let digest = store.content_digest().unwrap();
    store.dangerously_fail_next_time_reset();
    let reset = store.reset_file_times().unwrap();
    assert_eq!((reset.reset, reset.failed), (entries.len() - 1, 1));
    let dated = entries
        .iter()
        .filter(|path| times(path).1 != UNIX_EPOCH)
        .count();
    assert_eq!(dated, 1);
    assert_eq!(store.content_digest().unwrap(), digest);
    // The next sweep catches up.
    let reset = store.reset_file_times().unwrap();
    assert_eq!((reset.reset, reset.failed), (entries.len(), 0));
    for path in &entries {
        assert_epoch(path, "an entry after the second sweep");
    }
}

#[test]
fn a_failed_reset_refuses_the_append_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let upload = store.create_upload(&inst(), 200_000, day()).unwrap();
    store
        .append_upload(&inst(), upload, 0, &SealedChunk::new(bytes(12, 5000)))
        .unwrap();
    let fresh = store.create_upload(&inst(), 200_000, day()).unwrap();
    let elsewhere = store.create_upload(&other_inst(), 200_000, day()).unwrap();
    let digest = store.content_digest().unwrap();

    // At the commit of a session on a file that holds acknowledged bytes.
    let sink = store.open_upload_sink(&inst(), upload, 5000).unwrap();
    sink.write(&chunks_of(&bytes(13, 100_000))).unwrap();
    store.dangerously_fail_next_time_reset();
    assert!(matches!(sink.commit(), Err(Error::Storage(_))));
    assert_eq!(store.upload_state(&inst(), upload).unwrap().received, 5000);
    drop(sink);
    assert_eq!(store.content_digest().unwrap(), digest);
    assert_epoch(
        &file(dir.path(), &inst(), upload),
        "a file after a refused commit",
    );

    // At the creation of a file, and of an institution's folder.
    for (institution, upload) in [(inst(), fresh), (other_inst(), elsewhere)] {
        store.dangerously_fail_next_time_reset();
        let outcome =
            store.append_upload(&institution, upload, 0, &SealedChunk::new(bytes(14, 1000)));
        assert!(matches!(outcome, Err(Error::Storage(_))));
        assert_eq!(
            store.upload_state(&institution, upload).unwrap().received,
            0
        );
        assert!(!file(dir.path(), &institution, upload).exists());
        assert_eq!(store.content_digest().unwrap(), digest);
        assert_epoch(
            &root(dir.path()).join(".spare"),
            "the pool after a refused creation",
        );
    }
    assert_epoch(
        &folder(dir.path(), &inst()),
        "the folder after a refused creation",
    );
    assert!(!folder(dir.path(), &other_inst()).exists());

    // Nothing is stuck: the same appends go through now.
    store
        .append_upload(&inst(), upload, 5000, &SealedChunk::new(bytes(15, 1000)))
        .unwrap();
    store
        .append_upload(
            &other_inst(),
            elsewhere,
            0,
            &SealedChunk::new(bytes(16, 1000)),
        )
        .unwrap();
    assert_epoch(
        &file(dir.path(), &other_inst(), elsewhere),
        "a file after a retry",
    );
    assert_epoch(
        &folder(dir.path(), &other_inst()),
        "a new folder after a retry",
    );
    assert_epoch(&root(dir.path()), "the uploads root after a retry");
}
