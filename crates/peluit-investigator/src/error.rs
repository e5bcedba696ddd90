//! The desk's one error type: what happened, in one line, and what to do next, in
//! another, with a stable code for `--json`. Every failure a user can see is one of these.

use std::fmt;
use std::io;
use std::path::Path;

/// A failure shown to the investigator: `what` happened; `next` says what to do now.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct DeskError {
    /// Stable kebab-case code, for scripts (`--json`).
    pub code: &'static str,
    /// One line: what happened. Never holds plaintext or a secret.
    pub what: String,
    /// One line: what to do next.
    pub next: String,
}

impl fmt::Display for DeskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl DeskError {
    /// An error with its code, its one-line description and its next step.
    pub fn new(code: &'static str, what: impl Into<String>, next: impl Into<String>) -> Self {
        Self {
            code,
            what: what.into(),
            next: next.into(),
        }
    }

    /// A file-system failure on `path` while doing `action` ("write", "read", …).
    pub fn io(action: &str, path: &Path, error: &io::Error) -> Self {
        let next = match error.kind() {
            io::ErrorKind::NotFound => "check the path; use --desk to point at the desk folder",
            io::ErrorKind::PermissionDenied => "check the folder's permissions and try again",
            io::ErrorKind::StorageFull => "free some disk space and try again",
            io::ErrorKind::AlreadyExists => "move the existing file away or choose another path",
            _ => "check the disk and the path, then try again",
        };
        Self::new(
            "io",
            format!("could not {action} {}: {}", path.display(), error.kind()),
            next,
        )
    }
}

/// Result with the desk error.
pub type DeskResult<T> = Result<T, DeskError>;

impl DeskError {
    /// A command line clap refused (code `usage`), in the two-line shape.
    pub fn usage(error: &clap::Error) -> Self {
        let (what, next) = peluit_cli::usage_lines(error, "peluit-investigator");
        Self::new("usage", what, next)
    }
}

/// Names a protocol failure in plain words, without saying which crypto check failed.
pub fn describe_proto(error: &peluit_proto::Error) -> (&'static str, String) {
    use peluit_proto::Error as E;
    match error {
        E::NoMatchingKey => (
            "not-for-this-desk",
            "it is not sealed to this desk's key".to_owned(),
        ),
        E::DecryptionFailed => (
            "decryption-failed",
            "it could not be decrypted (damaged or altered)".to_owned(),
        ),
        E::BadSignature => ("bad-signature", "a signature does not verify".to_owned()),
        E::ManifestRejected(rejection) => (
            "manifest-rejected",
            format!("the manifest was refused: {rejection}"),
        ),
        E::ReportRefused(problem) => (
            "report-refused",
            format!("the report breaks a protocol rule: {problem}"),
        ),
        E::IntegrityFailed(what) => ("integrity", format!("integrity check failed: {what}")),
        E::Bundle(problem) => ("bad-bundle", format!("the bundle is unusable: {problem}")),
        E::TooLarge(what) => ("too-large", format!("{what} is over its limit")),
        other => ("protocol", other.to_string()),
    }
}

impl peluit_cli::ShownError for DeskError {
    fn code(&self) -> &str {
        self.code
    }

    fn what(&self) -> &str {
        &self.what
    }

    fn next(&self) -> &str {
        &self.next
    }
}
