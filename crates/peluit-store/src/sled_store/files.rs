//! Sealed attachment bytes in append-only files beside the sled trees, one file per upload
//! under its institution; sled records how many of a file's bytes are durable.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::SealedChunk;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The folder of the data directory that holds upload files (docs/storage.md#upload-files).
pub(crate) const UPLOADS_DIR: &str = "uploads";

/// `DIR/uploads/<institution>/<upload id, 32 lowercase hex digits>`.
#[derive(Debug)]
pub(crate) struct UploadFiles {
    root: PathBuf,
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
        Ok(Self { root })
    }

    fn institution_dir(&self, institution: &InstitutionId) -> PathBuf {
        self.root.join(institution.as_str())
    }

    fn path(&self, institution: &InstitutionId, upload: UploadId) -> PathBuf {
        self.institution_dir(institution).join(upload.to_string())
    }

    /// Opens the upload's file for writing after its `durable` bytes, creating it (and
    /// its institution's folder) with a durable directory entry if it is not there yet.
    /// Bytes past `durable` were never acknowledged and are cut off.
    pub(crate) fn open_append(
        &self,
        institution: &InstitutionId,
        upload: UploadId,
        durable: u64,
    ) -> Result<File> {
        let folder = self.institution_dir(institution);
        if create_private_dir(&folder)? {
            sync_dir(&self.root)?;
        }
        let path = folder.join(upload.to_string());
        let (file, created) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => (file, false),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let file = private_options().create_new(true).open(&path)?;
                (file, true)
            }
            Err(error) => return Err(error.into()),
        };
        let len = file.metadata()?.len();
        if len < durable {
            return Err(Error::Corrupt("attachment"));
        }
        if len > durable {
            file.set_len(durable)?;
        }
        if created {
            // The file must still be there after a crash once sled records its length.
            sync_dir(&folder)?;
        }
        Ok(file)
    }

    /// Removes the upload's file (gone already is fine) and makes the removal durable.
    pub(crate) fn remove(&self, institution: &InstitutionId, upload: UploadId) -> Result<()> {
        match std::fs::remove_file(self.path(institution, upload)) {
            Ok(()) => sync_dir(&self.institution_dir(institution)),
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
            match File::open(self.path(institution, upload)) {
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

    /// Every upload file, in institution then id order. The store never makes any other
    /// name here; one that someone else put there is left alone (an auditor reports it,
    /// docs/storage.md#layout) with a warning that names no stored data.
    pub(crate) fn list(&self) -> Result<Vec<FoundFile>> {
        let mut found = Vec::new();
        for folder in sorted_entries(&self.root)? {
            let Some(institution) = folder
                .to_str()
                .and_then(|name| name.parse::<InstitutionId>().ok())
                .filter(|id| folder.to_str() == Some(id.as_str()))
            else {
                tracing::warn!("a foreign entry sits in the store's uploads folder");
                continue;
            };
            for name in sorted_entries(&self.root.join(&folder))? {
                let Some(upload) = name
                    .to_str()
                    .and_then(|text| text.parse::<UploadId>().ok())
                    .filter(|id| name.to_str() == Some(id.to_string().as_str()))
                else {
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

    /// Feeds every upload file's path, length and bytes, in order, to `hasher`.
    pub(crate) fn digest_into(&self, hasher: &mut Sha256) -> Result<()> {
        let mut buffer = vec![0u8; 1 << 16];
        for found in self.list()? {
            let name = format!("{}/{}", found.institution, found.upload);
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update(found.len.to_be_bytes());
            let mut file = File::open(self.path(&found.institution, found.upload))?;
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

fn sorted_entries(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    names.sort();
    Ok(names)
}

fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    options
}

/// Creates `dir` (mode 0700) if missing; says whether it did.
fn create_private_dir(dir: &Path) -> Result<bool> {
    use std::os::unix::fs::DirBuilderExt as _;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Makes a folder's entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}
