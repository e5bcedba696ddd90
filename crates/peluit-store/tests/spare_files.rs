//! Upload files start as spares from a pool the store fills at open and at each sweep, so
//! that a file's birth time is the pool's top-up, not its upload's (docs/storage.md#file-times).

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashMap;
use std::fs::{File, FileTimes};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use peluit_proto::day::Day;
use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::sealed::SealedChunk;
use peluit_store::{CiphertextStore, SPARE_UPLOAD_FILES, SledStore};

fn inst() -> InstitutionId {
    "itjen-kemenkeu".parse().unwrap()
}

fn other_inst() -> InstitutionId {
    "inspektorat-jabar".parse().unwrap()
}

fn day() -> Day {
    "2026-11-28".parse().unwrap()
}

fn pool(dir: &Path) -> PathBuf {
    dir.join("uploads").join(".spare")
}

fn folder(dir: &Path, institution: &InstitutionId) -> PathBuf {
    dir.join("uploads").join(institution.as_str())
}

fn file(dir: &Path, institution: &InstitutionId, upload: UploadId) -> PathBuf {
    folder(dir, institution).join(upload.to_string())
}

/// Inode number → birth time (`None` where the file system does not report one) of every
/// entry in the pool's folder.
fn spares(dir: &Path) -> HashMap<u64, Option<SystemTime>> {
    std::fs::read_dir(pool(dir))
        .unwrap()
        .map(|entry| {
            let meta = entry.unwrap().path().symlink_metadata().unwrap();
            (meta.ino(), meta.created().ok())
        })
        .collect()
}

/// Whether `name` is as the store names spares: 32 lowercase hex digits.
fn spare_named(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pool's entries, checked to be spares as the store makes them.
fn checked_spares(dir: &Path) -> Vec<PathBuf> {
    let meta = pool(dir).symlink_metadata().unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(pool(dir)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(spare_named(&name), "a spare's name");
        let meta = path.symlink_metadata().unwrap();
        assert!(meta.is_file() && meta.len() == 0);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            (meta.accessed().unwrap(), meta.modified().unwrap()),
            (UNIX_EPOCH, UNIX_EPOCH)
        );
        found.push(path);
    }
    found
}

/// Every file in the institutions' folders (not the pool's).
fn upload_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(dir.join("uploads")).unwrap() {
        let folder = folder.unwrap().path();
        if folder.file_name().unwrap() != ".spare" && folder.is_dir() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                found.push(entry.unwrap().path());
            }
        }
    }
    found
}

fn upload_with_bytes(store: &SledStore, institution: &InstitutionId, len: usize) -> UploadId {
    let upload = store.create_upload(institution, 200_000, day()).unwrap();
    store
        .append_upload(institution, upload, 0, &SealedChunk::new(vec![7; len]))
        .unwrap();
    upload
}

#[test]
fn a_new_upload_file_is_a_former_spare_with_the_pools_birth_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES);
    let before = spares(dir.path());
    let digest = store.content_digest().unwrap();

    let upload = store.create_upload(&inst(), 200_000, day()).unwrap();
    let sink = store.open_upload_sink(&inst(), upload, 0).unwrap();
    sink.write(&[SealedChunk::new(vec![1; 5000])]).unwrap();
    sink.commit().unwrap();
    drop(sink);
    assert_ne!(store.content_digest().unwrap(), digest);

    let meta = file(dir.path(), &inst(), upload)
        .symlink_metadata()
        .unwrap();
    let Some(birth) = before.get(&meta.ino()) else {
        panic!("the upload's file is not a former spare");
    };
    assert_eq!(&meta.created().ok(), birth, "the pool's birth time");
    assert_eq!(meta.len(), 5000);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        (meta.accessed().unwrap(), meta.modified().unwrap()),
        (UNIX_EPOCH, UNIX_EPOCH)
    );
    // Checked before the test lists the folder, which sets its access time.
    let pool_meta = pool(dir.path()).symlink_metadata().unwrap();
    assert_eq!(
        (pool_meta.accessed().unwrap(), pool_meta.modified().unwrap()),
        (UNIX_EPOCH, UNIX_EPOCH),
        "the pool's folder after a spare was taken"
    );
    let after = spares(dir.path());
    assert_eq!(after.len(), SPARE_UPLOAD_FILES - 1);
    assert!(!after.contains_key(&meta.ino()));

    // A new institution's first upload takes one too.
    let elsewhere = upload_with_bytes(&store, &other_inst(), 10);
    let meta = file(dir.path(), &other_inst(), elsewhere)
        .symlink_metadata()
        .unwrap();
    assert!(before.contains_key(&meta.ino()));
}

#[test]
fn the_sweep_refills_the_pool_without_changing_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    for _ in 0..5 {
        upload_with_bytes(&store, &inst(), 100);
    }
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES - 5);
    let kept = spares(dir.path());
    let digest = store.content_digest().unwrap();

    let reset = store.reset_file_times().unwrap();
    assert_eq!(reset.failed, 0);
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES);
    let refilled = spares(dir.path());
    assert!(kept.keys().all(|ino| refilled.contains_key(ino)));
    assert_eq!(store.content_digest().unwrap(), digest);

    // A full pool stays as it is.
    store.reset_file_times().unwrap();
    assert_eq!(spares(dir.path()), refilled);
}

#[test]
fn an_empty_or_missing_pool_still_takes_uploads_as_fresh_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let former = spares(dir.path());
    // Moved out, not removed, so that no fresh file can reuse a former spare's inode.
    let held = dir.path().join("held");
    std::fs::create_dir(&held).unwrap();
    for spare in checked_spares(dir.path()) {
        std::fs::rename(&spare, held.join(spare.file_name().unwrap())).unwrap();
    }
    let fresh = upload_with_bytes(&store, &inst(), 1000);
    let meta = file(dir.path(), &inst(), fresh).symlink_metadata().unwrap();
    assert!(!former.contains_key(&meta.ino()));
    assert_eq!(meta.len(), 1000);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.modified().unwrap(), UNIX_EPOCH);

    // No pool folder at all: the same, and the sweep makes it again.
    std::fs::remove_dir(pool(dir.path())).unwrap();
    let second = upload_with_bytes(&store, &inst(), 2000);
    assert_eq!(
        std::fs::read(file(dir.path(), &inst(), second)).unwrap(),
        vec![7; 2000]
    );
    assert_eq!(store.reset_file_times().unwrap().failed, 0);
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES);
    let refilled = spares(dir.path());
    let third = upload_with_bytes(&store, &inst(), 10);
    let meta = file(dir.path(), &inst(), third).symlink_metadata().unwrap();
    assert!(refilled.contains_key(&meta.ino()));
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES - 1);
}

#[test]
fn a_crash_between_taking_a_spare_and_recording_it_leaves_no_upload_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let (recorded, digest) = {
        let store = SledStore::open(dir.path()).unwrap();
        let kept = upload_with_bytes(&store, &inst(), 3000);
        let recorded = store.create_upload(&inst(), 200_000, day()).unwrap();
        let digest = store.content_digest().unwrap();
        assert_eq!(upload_files(dir.path()), [file(dir.path(), &inst(), kept)]);
        (recorded, digest)
    };
    // As a crash after the rename and its folder syncs, before sled recorded a byte: of an
    // upload with a record, of one whose record never became durable, and in a folder the
    // same crash left new.
    let mut taken = checked_spares(dir.path()).into_iter();
    let unrecorded = UploadId::random();
    std::fs::create_dir(folder(dir.path(), &other_inst())).unwrap();
    for target in [
        file(dir.path(), &inst(), recorded),
        file(dir.path(), &inst(), unrecorded),
        file(dir.path(), &other_inst(), UploadId::random()),
    ] {
        std::fs::rename(taken.next().unwrap(), target).unwrap();
    }
    assert_eq!(upload_files(dir.path()).len(), 4);

    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(upload_files(dir.path()).len(), 1);
    assert_eq!(store.upload_state(&inst(), recorded).unwrap().received, 0);
    assert!(store.upload_state(&inst(), unrecorded).is_err());
    assert_eq!(store.content_digest().unwrap(), digest);
    assert_eq!(checked_spares(dir.path()).len(), SPARE_UPLOAD_FILES);
    // The upload goes on as if nothing had happened.
    store
        .append_upload(&inst(), recorded, 0, &SealedChunk::new(vec![3; 100]))
        .unwrap();
    assert_eq!(
        std::fs::read(file(dir.path(), &inst(), recorded)).unwrap(),
        vec![3; 100]
    );
}

/// Stamps the entry (not a symlink's target) with the current time.
fn stamp_now(path: &Path) -> SystemTime {
    let now = SystemTime::now();
    File::open(path)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(now).set_modified(now))
        .unwrap();
    path.symlink_metadata().unwrap().modified().unwrap()
}

#[test]
fn foreign_entries_in_the_pool_are_left_alone_and_never_taken() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::write(&target, b"").unwrap();
    let pool = pool(dir.path());
    let (digest, foreign) = {
        let store = SledStore::open(dir.path()).unwrap();
        upload_with_bytes(&store, &inst(), 100);
        let digest = store.content_digest().unwrap();
        // Emptied, so that opening refills the pool beside the foreign entries.
        for spare in checked_spares(dir.path()) {
            std::fs::remove_file(spare).unwrap();
        }
        // Not the store's: another name, a spare's name on a non-empty file, on a folder,
        // on a symlink to an empty file elsewhere.
        let named = |n: u8| pool.join(format!("{n:032x}"));
        std::fs::write(pool.join("notes.txt"), b"x").unwrap();
        std::fs::write(named(1), b"x").unwrap();
        std::fs::create_dir(named(2)).unwrap();
        std::os::unix::fs::symlink(&target, named(3)).unwrap();
        let foreign: Vec<PathBuf> = vec![pool.join("notes.txt"), named(1), named(2), named(3)];
        (digest, foreign)
    };
    let stamped: Vec<SystemTime> = foreign.iter().take(3).map(|path| stamp_now(path)).collect();
    let identity = |path: &PathBuf| {
        let meta = path.symlink_metadata().unwrap();
        (meta.ino(), meta.len(), meta.file_type())
    };
    let before: Vec<_> = foreign.iter().map(identity).collect();

    // Opening reports them and fills the pool beside them.
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.content_digest().unwrap(), digest);
    let inodes: Vec<u64> = before.iter().map(|(ino, _, _)| *ino).collect();
    let real: Vec<u64> = spares(dir.path())
        .into_keys()
        .filter(|ino| !inodes.contains(ino))
        .collect();
    assert_eq!(real.len(), SPARE_UPLOAD_FILES);

    // Uploads take only real spares, whatever the order of names.
    for _ in 0..SPARE_UPLOAD_FILES + 2 {
        let upload = upload_with_bytes(&store, &inst(), 10);
        let ino = file(dir.path(), &inst(), upload)
            .symlink_metadata()
            .unwrap()
            .ino();
        assert!(!inodes.contains(&ino));
    }
    assert_eq!(store.reset_file_times().unwrap().failed, 0);
    assert_eq!(foreign.iter().map(identity).collect::<Vec<_>>(), before);
    for (path, stamp) in foreign.iter().zip(&stamped) {
        assert_eq!(path.symlink_metadata().unwrap().modified().unwrap(), *stamp);
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn a_pool_path_that_is_not_a_folder_disables_the_pool_and_uploads_go_on() {
    let outside = tempfile::tempdir().unwrap();
    for make in ["a file", "a symlink to a folder", "a dangling symlink"] {
        let dir = tempfile::tempdir().unwrap();
        {
            SledStore::open(dir.path()).unwrap();
        }
        let pool = pool(dir.path());
        std::fs::remove_dir_all(&pool).unwrap();
        match make {
            "a file" => std::fs::write(&pool, b"not a folder").unwrap(),
            "a symlink to a folder" => std::os::unix::fs::symlink(outside.path(), &pool).unwrap(),
            _ => std::os::unix::fs::symlink(outside.path().join("gone"), &pool).unwrap(),
        }
        let store = SledStore::open(dir.path()).unwrap();
        let reset = store.reset_file_times().unwrap();
        assert_eq!(reset.failed, 1, "{make}: the pool counts as one failure");
        let upload = upload_with_bytes(&store, &inst(), 500);
        assert_eq!(
            std::fs::read(file(dir.path(), &inst(), upload)).unwrap(),
            vec![7; 500],
            "{make}"
        );
        assert_eq!(upload_files(dir.path()).len(), 1, "{make}");
        if make == "a file" {
            assert_eq!(std::fs::read(&pool).unwrap(), b"not a folder");
        }
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{make}"
        );
    }
}

/// First writes that start at the same moment each take a different spare (the rename is
/// atomic; a loser moves on to the next), and sweeps running meanwhile neither fail nor
/// disturb them.
#[test]
fn concurrent_first_writes_take_distinct_spares_while_sweeps_run() {
    use std::sync::{Arc, Barrier};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let racers = SPARE_UPLOAD_FILES * 3 / 4;
    let uploads: Vec<UploadId> = (0..racers)
        .map(|_| store.create_upload(&inst(), 1000, day()).unwrap())
        .collect();
    let start = Arc::new(Barrier::new(racers));
    let threads: Vec<_> = uploads
        .iter()
        .map(|&upload| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                store
                    .append_upload(&inst(), upload, 0, &SealedChunk::new(vec![1; 10]))
                    .unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut inodes: Vec<u64> = uploads
        .iter()
        .map(|&upload| {
            std::fs::metadata(file(dir.path(), &inst(), upload))
                .unwrap()
                .ino()
        })
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    assert_eq!(inodes.len(), racers, "two uploads share a file");
    assert_eq!(spares(dir.path()).len(), SPARE_UPLOAD_FILES - racers);

    let more: Vec<UploadId> = (0..SPARE_UPLOAD_FILES / 4)
        .map(|_| store.create_upload(&inst(), 1000, day()).unwrap())
        .collect();
    let sweeper = {
        let store = store.clone();
        std::thread::spawn(move || {
            for _ in 0..5 {
                assert_eq!(store.reset_file_times().unwrap().failed, 0);
            }
        })
    };
    for &upload in &more {
        store
            .append_upload(&inst(), upload, 0, &SealedChunk::new(vec![2; 10]))
            .unwrap();
    }
    sweeper.join().unwrap();
    for upload in uploads.iter().chain(&more) {
        assert_eq!(
            std::fs::metadata(file(dir.path(), &inst(), *upload))
                .unwrap()
                .len(),
            10
        );
    }
}
