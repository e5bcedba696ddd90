//! The store's one error type. Messages name what kind of thing failed, never a stored
//! byte, an id or a key, so they are safe to log and to map onto HTTP error codes.

/// Everything a [`crate::CiphertextStore`] call can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named thing (`"case"`, `"upload"`, `"token"`…) does not exist here.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request contradicts the stored state (replayed proof of work, wrong offset,
    /// serial that does not grow, upload already attached…); nothing was written.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The request is malformed in a way the store itself checks (empty upload,
    /// duplicate attachment id…); nothing was written.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// A value is over a protocol limit (see `peluit_proto::limits`); nothing was written.
    #[error("{0} exceeds its limit")]
    TooLarge(&'static str),
    /// An earlier flush or sync failed: the store refuses every write until the process
    /// restarts and the backend recovers from what is really on disk.
    #[error("the store is read-only after a failed sync")]
    ReadOnly,
    /// A stored record did not parse; names the record kind only.
    #[error("stored {0} record is corrupt")]
    Corrupt(&'static str),
    /// The backend failed (I/O, lock, internal error). The source never holds stored data.
    #[error("storage failure")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result with the store error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Self {
        Self::Storage(Box::new(error))
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Storage(Box::new(error))
    }
}
