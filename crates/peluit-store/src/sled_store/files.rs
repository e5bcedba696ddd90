//! Sealed attachment bytes in append-only files beside the sled trees, one file per upload
//! under its institution, and the pool of spare files they start as; sled records how
//! many of a file's bytes are durable.

use std::ffi::{OsStr, OsString};
use std::fs::{File, FileTimes, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::SealedChunk;
use rustix::fs::{AtFlags, CWD, Dir, Mode, OFlags, RenameFlags, Timespec, Timestamps};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::{Error, Result, TimesReset};

/// The folder of the data directory that holds upload files (docs/storage.md#upload-files).
pub(crate) const UPLOADS_DIR: &str = "uploads";

/// The folder of `uploads/` that holds the pool of spare files (docs/storage.md#spare-files).
pub(crate) const SPARE_DIR: &str = ".spare";

/// How many spare files the pool holds after each top-up: more uploads than this between
/// two sweeps start as fresh files, with their own birth times.
pub const SPARE_UPLOAD_FILES: usize = 64;

/// `DIR/uploads/<institution>/<upload id, 32 lowercase hex digits>`, and the spares in
/// `DIR/uploads/.spare/<32 random lowercase hex digits>`.
#[derive(Debug)]
pub(crate) struct UploadFiles {
    root: PathBuf,
    spares: PathBuf,
    /// A test asked the next time reset to fail (`SledStore::dangerously_fail_next_time_reset`).
    fail_next_time_reset: AtomicBool,
}

/// One upload file found on disk.
pub(crate) struct FoundFile {
    pub(crate) institution: InstitutionId,
    pub(crate) upload: UploadId,
    pub(crate) len: u64,
}

impl UploadFiles {
    /// Opens (or creates, mode 0700, durably) `dir/uploads`.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let root = dir.join(UPLOADS_DIR);
        if create_private_dir(&root)? {
            sync_dir(dir)?;
        }
        Ok(Self {
            spares: root.join(SPARE_DIR),
            root,
            fail_next_time_reset: AtomicBool::new(false),
        })
    }

    pub(crate) fn fail_next_time_reset(&self) {
        self.fail_next_time_reset.store(true, Ordering::SeqCst);
    }

    fn take_injected_failure(&self) -> io::Result<()> {
        if self.fail_next_time_reset.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected time reset failure"));
        }
        Ok(())
    }

    /// Sets an open upload file's access and modification times to the Unix epoch, so
    /// that they cannot date its upload. docs/storage.md#file-times
    pub(crate) fn reset_file_times(&self, file: &File) -> io::Result<()> {
        self.take_injected_failure()?;
        file.set_times(
            FileTimes::new()
                .set_accessed(UNIX_EPOCH)
                .set_modified(UNIX_EPOCH),
        )
    }

    /// The same for a path (a folder, or a file the sweep finds), never following a
    /// symlink and never opening the entry, so a foreign entry cannot block or redirect it.
    fn reset_path_times(&self, path: &Path) -> io::Result<()> {
        self.take_injected_failure()?;
        let epoch = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(CWD, path, &epoch, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    /// Resets a folder's times after an entry in it was removed; the removal stands
    /// either way, and the hourly sweep retries a failure.
    fn reset_folder_times_after_removal(&self, folder: &Path) {
        if let Err(error) = self.reset_path_times(folder) {
            tracing::warn!(%error, "could not reset an uploads folder's times after a removal");
        }
    }

    fn institution_dir(&self, institution: &InstitutionId) -> PathBuf {
        self.root.join(institution.as_str())
    }

    fn path(&self, institution: &InstitutionId, upload: UploadId) -> PathBuf {
        self.institution_dir(institution).join(upload.to_string())
    }

    /// Opens the upload's file for writing after its `durable` bytes, making it (and its
    /// institution's folder) with a durable directory entry if it is not there yet: from a
    /// spare of the pool, so that its birth time is the pool's, or, with the pool empty, as
    /// a fresh file. Bytes past `durable` were never acknowledged and are cut off. A file
    /// this call made is removed again if the call fails, so a failed write changes nothing.
    pub(crate) fn open_append(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        durable: u64,
    ) -> Result<File> {
        let folder = self.institution_dir(institution);
        if create_private_dir(&folder)? {
            // A new folder is an entry in the root: the root's times must not date it.
            let recorded = self
                .reset_path_times(&self.root)
                .and_then(|()| sync_dir(&self.root));
            if let Err(error) = recorded {
                // Taken away again, so that a retry creates it and resets the root.
                if std::fs::remove_dir(&folder).is_ok() {
                    self.reset_folder_times_after_removal(&self.root);
                }
                return Err(error.into());
            }
        }
        let path = folder.join(upload.to_string());
        let (file, made) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => (file, Made::No),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if self.take_spare(&path)? {
                    match private_options().open(&path) {
                        Ok(file) => (file, Made::FromSpare),
                        Err(error) => {
                            self.remove_made(&path, &folder, Made::FromSpare);
                            return Err(error.into());
                        }
                    }
                } else {
                    let file = private_options().create_new(true).open(&path)?;
                    (file, Made::Fresh)
                }
            }
            Err(error) => return Err(error.into()),
        };
        match self.prepare_append(&file, &folder, durable, made) {
            Ok(()) => Ok(file),
            Err(error) => {
                drop(file);
                self.remove_made(&path, &folder, made);
                Err(error)
            }
        }
    }

    /// Takes a file this call made away again after a failure.
    fn remove_made(&self, path: &Path, folder: &Path, made: Made) {
        if made == Made::No {
            return;
        }
        if std::fs::remove_file(path).is_ok() {
            self.reset_folder_times_after_removal(folder);
        }
        if made == Made::FromSpare {
            // The rename dated the pool's folder; a failed reset is left to the sweep.
            self.reset_folder_times_after_removal(&self.spares);
        }
    }

    /// Moves a spare to `path` (never over an existing file): the inode, and with it the
    /// birth time of the pool's last top-up, becomes the upload's. Says whether it did;
    /// an empty or unusable pool says no, and the caller makes a fresh file.
    fn take_spare(&self, path: &Path) -> Result<bool> {
        for name in self.spare_entries() {
            let from = self.spares.join(&name);
            if !is_spare(&name, &from) {
                continue;
            }
            match rustix::fs::renameat_with(CWD, &from, CWD, path, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(true),
                // Another upload took this one meanwhile.
                Err(Errno::NOENT) => continue,
                // As `create_new` would: the upload's file appeared meanwhile.
                Err(Errno::EXIST) => return Err(io::Error::from(Errno::EXIST).into()),
                Err(error) => {
                    tracing::warn!(
                        error = %io::Error::from(error),
                        "could not take a spare upload file; making a fresh one"
                    );
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// The names in the pool's folder; none when it is missing or not a real folder (the
    /// sweep reports that).
    fn spare_entries(&self) -> Vec<OsString> {
        if !is_real_dir(&self.spares) {
            return Vec::new();
        }
        sorted_entries(&self.spares).unwrap_or_default()
    }

    /// Fills the pool up to [`SPARE_UPLOAD_FILES`] empty files (mode 0600, epoch access and
    /// modification times), creating its folder (mode 0700) if missing, with one folder
    /// sync for the lot; returns how many it made. Entries that are not spares are left
    /// alone and do not count. A pool path that is not a real folder is an error: uploads
    /// then start as fresh files.
    pub(crate) fn top_up_spares(&self) -> io::Result<usize> {
        if create_private_dir(&self.spares)? {
            sync_dir(&self.root)?;
        }
        if !is_real_dir(&self.spares) {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "the pool of spare upload files is not a folder",
            ));
        }
        let present = sorted_entries(&self.spares)?
            .iter()
            .filter(|name| is_spare(name, &self.spares.join(name)))
            .count();
        let mut made = 0;
        let mut failure = None;
        while present + made < SPARE_UPLOAD_FILES {
            match self.make_spare() {
                Ok(()) => made += 1,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if made > 0 {
            sync_dir(&self.spares)?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(made),
        }
    }

    fn make_spare(&self) -> io::Result<()> {
        loop {
            let name = hex::encode(rand::random::<[u8; 16]>());
            match private_options()
                .create_new(true)
                .open(self.spares.join(name))
            {
                Ok(file) => {
                    return file.set_times(
                        FileTimes::new()
                            .set_accessed(UNIX_EPOCH)
                            .set_modified(UNIX_EPOCH),
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
    }

    fn prepare_append(&self, file: &File, folder: &Path, durable: u64, made: Made) -> Result<()> {
        let len = file.metadata()?.len();
        if len < durable {
            return Err(Error::Corrupt("attachment"));
        }
        if len > durable {
            file.set_len(durable)?;
        }
        if made != Made::No {
            // The folders' times must not date the new file, and the file must still be
            // there after a crash once sled records its length: one sync per folder covers
            // both. A crash before sled records it leaves an upload file with nothing
            // acknowledged, which recovery at open removes.
            self.reset_path_times(folder)?;
            if made == Made::FromSpare {
                self.reset_path_times(&self.spares)?;
            }
            sync_dir(folder)?;
            if made == Made::FromSpare {
                sync_dir(&self.spares)?;
            }
        }
        Ok(())
    }

    /// Removes the upload's file (gone already is fine) and makes the removal durable.
    pub(crate) fn remove(&self, institution: &InstitutionId, upload: UploadId) -> Result<()> {
        match std::fs::remove_file(self.path(institution, upload)) {
            Ok(()) => {
                let folder = self.institution_dir(institution);
                self.reset_folder_times_after_removal(&folder);
                Ok(sync_dir(&folder)?)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Cuts the file back to `len` bytes, durably; removes it when `len` is 0, so that only
    /// uploads with acknowledged bytes have a file.
    pub(crate) fn cut_back(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        len: u64,
    ) -> Result<()> {
        if len == 0 {
            return self.remove(institution, upload);
        }
        let file = OpenOptions::new()
            .write(true)
            .open(self.path(institution, upload))?;
        file.set_len(len)?;
        if let Err(error) = self.reset_file_times(&file) {
            tracing::warn!(%error, "could not reset an upload file's times after cutting it back");
        }
        file.sync_data()?;
        Ok(())
    }

    /// Streams the first `len` bytes of an upload's file.
    pub(crate) fn reader(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        len: u64,
    ) -> Result<FileChunks> {
        let file = if len == 0 {
            None
        } else {
            match open_unseen(&self.path(institution, upload), OFlags::empty()) {
                Ok(file) => Some(file),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::Corrupt("attachment"));
                }
                Err(error) => return Err(error.into()),
            }
        };
        Ok(FileChunks {
            file,
            len,
            position: 0,
        })
    }

    /// Every upload file, in institution then id order; the pool of spares is not listed.
    /// The store never makes any other name here; one that someone else put there is left
    /// alone (an auditor reports it, docs/storage.md#layout) with a warning that names no
    /// stored data.
    pub(crate) fn list(&self) -> Result<Vec<FoundFile>> {
        let mut found = Vec::new();
        for folder in sorted_entries(&self.root)? {
            if folder == SPARE_DIR && is_real_dir(&self.spares) {
                // The pool is no part of what the store holds: a pool that cannot be read
                // only goes unused, it never stops the store from opening.
                match sorted_entries(&self.spares) {
                    Ok(names) => {
                        for name in names {
                            if !is_spare(&name, &self.spares.join(&name)) {
                                tracing::warn!(
                                    "a foreign entry sits in the pool of spare upload files"
                                );
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list the pool of spare upload files");
                    }
                }
                continue;
            }
            let Some(institution) = institution_named(&folder).filter(|_| {
                std::fs::symlink_metadata(self.root.join(&folder)).is_ok_and(|meta| meta.is_dir())
            }) else {
                tracing::warn!("a foreign entry sits in the store's uploads folder");
                continue;
            };
            for name in sorted_entries(&self.root.join(&folder))? {
                let Some(upload) = upload_named(&name) else {
                    tracing::warn!("a foreign entry sits in an institution's uploads folder");
                    continue;
                };
                let len = std::fs::metadata(self.path(&institution, upload))?.len();
                found.push(FoundFile {
                    institution: institution.clone(),
                    upload,
                    len,
                });
            }
        }
        Ok(found)
    }

    /// Feeds every upload file's path, length and bytes, in order, to `hasher`; the pool of
    /// spares is not part of it.
    pub(crate) fn digest_into(&self, hasher: &mut Sha256) -> Result<()> {
        let mut buffer = vec![0u8; 1 << 16];
        for found in self.list()? {
            let name = format!("{}/{}", found.institution, found.upload);
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update(found.len.to_be_bytes());
            let mut file = open_unseen(
                &self.path(&found.institution, found.upload),
                OFlags::empty(),
            )?;
            loop {
                let n = file.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
        }
        Ok(())
    }

    /// Every upload file, every spare, then every institution folder, the pool's folder,
    /// then the uploads root: what the sweep resets, and how many folders could not be
    /// listed (each one logged). Foreign entries are left out, as in [`UploadFiles::list`];
    /// a folder that vanished while being listed is simply empty.
    pub(crate) fn sweep_paths(&self) -> (Vec<PathBuf>, usize) {
        let mut files = Vec::new();
        let mut folders = Vec::new();
        let mut pool = Vec::new();
        let mut failed = 0;
        let mut listed = |folder: &Path| {
            sorted_entries(folder).unwrap_or_else(|error| {
                tracing::warn!(%error, "could not list an uploads folder to reset its times");
                failed += 1;
                Vec::new()
            })
        };
        for name in listed(&self.root) {
            let folder = self.root.join(&name);
            let is_folder = std::fs::symlink_metadata(&folder).is_ok_and(|meta| meta.is_dir());
            if institution_named(&name).is_none() || !is_folder {
                continue;
            }
            for name in listed(&folder) {
                if upload_named(&name).is_some() {
                    files.push(folder.join(name));
                }
            }
            folders.push(folder);
        }
        if is_real_dir(&self.spares) {
            for name in listed(&self.spares) {
                let path = self.spares.join(&name);
                if is_spare(&name, &path) {
                    files.push(path);
                }
            }
            pool.push(self.spares.clone());
        }
        files.append(&mut folders);
        files.append(&mut pool);
        files.push(self.root.clone());
        (files, failed)
    }

    /// Sets the access and modification times of each path to the epoch. A path gone
    /// meanwhile (an upload deleted or expired while the sweep ran) is skipped; any other
    /// failure is logged, without the path, and the sweep goes on.
    pub(crate) fn reset_times_of(&self, paths: &[PathBuf]) -> TimesReset {
        let mut outcome = TimesReset::default();
        for path in paths {
            match self.reset_path_times(path) {
                Ok(()) => outcome.reset += 1,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(%error, "could not reset an upload file's or folder's times");
                    outcome.failed += 1;
                }
            }
        }
        outcome
    }
}

/// Reads an upload file as sealed chunks of at most one STREAM chunk, so memory stays at
/// one chunk whatever the attachment's size. A file shorter than its recorded length is
/// reported as corrupt, never as a shorter attachment.
pub(crate) struct FileChunks {
    file: Option<File>,
    len: u64,
    position: u64,
}

impl Iterator for FileChunks {
    type Item = Result<SealedChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let file = self.file.as_ref()?;
        if self.position == self.len {
            return None;
        }
        let want = (self.len - self.position).min(SEALED_CHUNK_SIZE as u64) as usize;
        let mut chunk = vec![0u8; want];
        let outcome = match file.read_exact_at(&mut chunk, self.position) {
            Ok(()) => {
                self.position += want as u64;
                Ok(SealedChunk::new(chunk))
            }
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                Err(Error::Corrupt("attachment"))
            }
            Err(error) => Err(error.into()),
        };
        if outcome.is_err() {
            self.file = None;
        }
        Some(outcome)
    }
}

/// How an append found its upload's file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    /// It was there already.
    No,
    /// A spare of the pool became it.
    FromSpare,
    /// Created now, the pool being empty.
    Fresh,
}

/// Whether the pool entry `name` at `path` is a spare: named as the store names them, an
/// empty regular file (never followed if a symlink). Anything else there is foreign.
fn is_spare(name: &OsStr, path: &Path) -> bool {
    upload_named(name).is_some()
        && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.len() == 0)
}

/// Whether `path` is a folder itself, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// The institution an uploads folder belongs to, if its name is exactly an id.
fn institution_named(name: &OsStr) -> Option<InstitutionId> {
    name.to_str()
        .and_then(|text| text.parse::<InstitutionId>().ok())
        .filter(|id| name.to_str() == Some(id.as_str()))
}

/// The upload a file belongs to, if its name is exactly an id in canonical form.
fn upload_named(name: &OsStr) -> Option<UploadId> {
    name.to_str()
        .and_then(|text| text.parse::<UploadId>().ok())
        .filter(|id| name.to_str() == Some(id.to_string().as_str()))
}

/// A folder's names, sorted. The folder is read with `O_NOATIME`, so listing it does not
/// set its access time.
fn sorted_entries(dir: &Path) -> io::Result<Vec<OsString>> {
    let folder = match open_unseen(dir, OFlags::DIRECTORY) {
        Ok(folder) => folder,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut names = Vec::new();
    for entry in Dir::new(folder).map_err(io::Error::from)? {
        let entry = entry.map_err(io::Error::from)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens `path` read-only with `O_NOATIME`, so that reading an upload file or listing a
/// folder never sets its access time (relatime would, on the first read after a write).
/// The kernel grants `O_NOATIME` only to the owner: anyone else gets a plain open.
fn open_unseen(path: &Path, flags: OFlags) -> io::Result<File> {
    let open = |flags: OFlags| {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | flags,
            Mode::empty(),
        )
    };
    let fd = match open(flags | OFlags::NOATIME) {
        Err(Errno::PERM) => open(flags)?,
        other => other?,
    };
    Ok(File::from(fd))
}

fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    options
}

/// Creates `dir` (mode 0700) if missing; says whether it did.
fn create_private_dir(dir: &Path) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error),
    }
}

/// Makes a folder's entries (files created, renamed or removed in it) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;

    fn modified(path: &Path) -> SystemTime {
        std::fs::symlink_metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn entries_that_vanish_during_the_sweep_are_skipped_without_error() {
        let dir = tempfile::tempdir().unwrap();
        let files = UploadFiles::open(dir.path()).unwrap();
        let institutions: Vec<InstitutionId> = ["itjen-kemenkeu", "inspektorat-jabar"]
            .iter()
            .map(|id| id.parse().unwrap())
            .collect();
        for institution in &institutions {
            for _ in 0..2 {
                files
                    .open_append(institution, UploadId::random(), 0)
                    .unwrap();
            }
        }
        let (paths, failed) = files.sweep_paths();
        assert_eq!((paths.len(), failed), (4 + 2 + 1, 0));
        // Between the listing and the resets: a file is deleted, and a whole folder goes.
        let kept = files.root.join(institutions[0].as_str());
        let deleted = paths.iter().find(|path| path.parent() == Some(&kept));
        std::fs::remove_file(deleted.unwrap()).unwrap();
        let gone = files.root.join(institutions[1].as_str());
        std::fs::remove_dir_all(&gone).unwrap();
        let left: Vec<&PathBuf> = paths.iter().filter(|path| path.exists()).collect();
        assert_eq!(left.len(), 3);
        let outcome = files.reset_times_of(&paths);
        assert_eq!((outcome.reset, outcome.failed), (3, 0));
        for path in left {
            assert_eq!(modified(path), UNIX_EPOCH);
        }
        // A root gone altogether lists as nothing but itself.
        std::fs::remove_dir_all(&files.root).unwrap();
        let (paths, failed) = files.sweep_paths();
        assert_eq!(
            (paths.as_slice(), failed),
            ([files.root.clone()].as_slice(), 0)
        );
        assert_eq!(files.reset_times_of(&paths), TimesReset::default());
    }
}
