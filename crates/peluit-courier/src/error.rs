//! The courier's error: what happened, in one line, and what to do next, with a stable
//! code for `--json`.

use std::fmt;

/// A failure shown to the person carrying the stick.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct CourierError {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// One line: what happened.
    pub what: String,
    /// One line: what to do next.
    pub next: String,
}

impl fmt::Display for CourierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl CourierError {
    /// An error with its code and both lines.
    pub fn new(code: &'static str, what: impl Into<String>, next: impl Into<String>) -> Self {
        Self {
            code,
            what: what.into(),
            next: next.into(),
        }
    }

    /// A file-system failure.
    pub fn io(action: &str, path: &std::path::Path, error: &std::io::Error) -> Self {
        Self::new(
            "io",
            format!("could not {action} {}: {}", path.display(), error.kind()),
            "check the USB stick (mounted, writable, not full) and try again",
        )
    }
}

/// Result with the courier error.
pub type CourierResult<T> = Result<T, CourierError>;

impl CourierError {
    /// A command line clap refused (code `usage`), in the two-line shape.
    pub fn usage(error: &clap::Error) -> Self {
        let (what, next) = peluit_cli::usage_lines(error, "peluit-courier");
        Self::new("usage", what, next)
    }
}

impl peluit_cli::ShownError for CourierError {
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
