//! Small file-system helpers for atomic writes: write a temporary file beside the target,
//! flush it to disk, then rename it into place, so a reader never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use peluit_proto::ids::UploadId;

use crate::error::{DeskError, DeskResult};

/// A fresh temporary name beside `path`, hidden and unguessable.
pub fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", UploadId::random()))
}

fn write_then_rename(path: &Path, bytes: &[u8], private: bool) -> DeskResult<()> {
    let temp = temp_beside(path);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(DeskError::io("write", path, &e));
    }
    sync_parent(path);
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> DeskResult<()> {
    write_then_rename(path, bytes, false)
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> DeskResult<()> {
    write_then_rename(path, bytes, true)
}

/// Writes a new file without flushing it: for files inside a case's temporary folder,
/// which one [`sync_filesystem`] makes durable before the folder is renamed into place.
pub fn write_new(path: &Path, bytes: &[u8]) -> DeskResult<()> {
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(bytes));
    result.map_err(|e| DeskError::io("write", path, &e))
}

/// Flushes everything written on the file system holding `dir` (one `syncfs` instead of
/// one `fsync` per file: an import of 10,000 cases would otherwise wait on 50,000).
pub fn sync_filesystem(dir: &Path) -> DeskResult<()> {
    let handle = File::open(dir).map_err(|e| DeskError::io("open", dir, &e))?;
    #[cfg(target_os = "linux")]
    let result = rustix::fs::syncfs(&handle).map_err(std::io::Error::from);
    #[cfg(not(target_os = "linux"))]
    let result = handle.sync_all();
    result.map_err(|e| DeskError::io("flush to disk", dir, &e))
}

/// Flushes a directory entry change (a rename) to disk, where the platform allows it.
pub fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
}

/// Flushes a directory to disk, where the platform allows it; failures are not fatal
/// (the data itself was synced).
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> DeskResult<()> {
    fs::create_dir_all(path).map_err(|e| DeskError::io("create the folder", path, &e))
}

/// Reads a whole (small) file.
pub fn read(path: &Path) -> DeskResult<Vec<u8>> {
    fs::read(path).map_err(|e| DeskError::io("read", path, &e))
}
