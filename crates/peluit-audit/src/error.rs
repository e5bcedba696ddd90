//! The auditor's error, for when an audit cannot run at all: what happened, in one line,
//! and what to do next, with a stable code for `--json`. Problems found are findings.

use std::fmt;
use std::path::Path;

/// A failure that stopped an audit.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuditError {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// One line: what happened.
    pub what: String,
    /// One line: what to do next.
    pub next: String,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for AuditError {}

impl AuditError {
    /// An error with its code and both lines.
    pub fn new(code: &'static str, what: impl Into<String>, next: impl Into<String>) -> Self {
        Self {
            code,
            what: what.into(),
            next: next.into(),
        }
    }

    /// A file-system failure.
    pub fn io(action: &str, path: &Path, error: &std::io::Error) -> Self {
        Self::new(
            "io",
            format!("could not {action} {}: {}", path.display(), error.kind()),
            "check the path and your permissions, then run the audit again",
        )
    }

    /// A command line clap refused.
    pub fn usage(error: &clap::Error) -> Self {
        let rendered = error.render().to_string();
        let what = rendered
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or("the command line is not valid")
            .to_owned();
        // clap's own tip (a similar command or option) is the most useful next step.
        let next = rendered
            .lines()
            .find_map(|line| line.trim().strip_prefix("tip: "))
            .map_or_else(
                || "run `peluit-audit --help` for the commands and their options".to_owned(),
                |tip| format!("{tip}; `peluit-audit --help` lists the commands"),
            );
        Self::new("usage", what, next)
    }
}

/// Result with the audit error.
pub type AuditResult<T> = Result<T, AuditError>;

impl peluit_cli::ShownError for AuditError {
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
