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

    /// Both lines, for a terminal.
    pub fn two_lines(&self) -> String {
        format!("error: {}\nnext:  {}", self.what, self.next)
    }

    /// The `--json` form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": false,
            "error": {"code": self.code, "message": self.what, "next": self.next},
        })
    }
}

/// Result with the courier error.
pub type CourierResult<T> = Result<T, CourierError>;

impl CourierError {
    /// A command line clap refused (code `usage`), in the two-line shape.
    pub fn usage(error: &clap::Error) -> Self {
        let (what, next) = usage_lines(error, "peluit-courier");
        Self::new("usage", what, next)
    }
}

/// Turns a command line that clap refused into the two lines of every other error: what
/// was wrong (clap's words) and the next step (clap's tip, or the usage it printed).
/// `bin` is the program's name, for when clap printed no usage.
pub fn usage_lines(error: &clap::Error, bin: &str) -> (String, String) {
    use clap::error::ErrorKind;

    let rendered = error.render().to_string();
    let mut what = Vec::new();
    let mut details = Vec::new();
    let mut tips = Vec::new();
    let mut usage = None;
    for line in rendered.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("error: ") {
            what.push(rest);
        } else if let Some(rest) = line.strip_prefix("tip: ") {
            tips.push(rest);
        } else if let Some(rest) = line.strip_prefix("Usage: ") {
            usage.get_or_insert(rest);
        } else if !line.is_empty()
            && !line.starts_with("For more information")
            && !what.is_empty()
            && tips.is_empty()
            && usage.is_none()
        {
            details.push(line);
        }
    }
    // The command the usage is for: the words before its first option or argument.
    let command = usage.map_or_else(
        || bin.to_owned(),
        |usage| {
            usage
                .split_whitespace()
                .take_while(|word| !word.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    let kind = error.kind();
    let what = if kind == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        format!("`{command}` needs a command")
    } else if details.is_empty() {
        what.join(" ")
    } else {
        format!("{} {}", what.join(" "), details.join(", "))
    };
    let choose = matches!(
        kind,
        ErrorKind::InvalidSubcommand
            | ErrorKind::MissingSubcommand
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    let next = match usage {
        _ if !tips.is_empty() => format!(
            "{}; `{command} --help` lists the commands and options",
            tips.join("; ")
        ),
        _ if choose => format!("choose one of the commands `{command} --help` lists"),
        Some(usage) => format!("write it as `{usage}`; `{command} --help` explains each part"),
        None => format!("`{command} --help` lists the commands and options"),
    };
    (what, next)
}
