//! What Peluit's command-line tools (desk, courier, auditor) share: a command line that clap
//! refused becomes an error of the same two-line shape as every other error.

use std::process::ExitCode;

use clap::error::ErrorKind;

/// A tool's error as it is shown: two lines for a terminal, an object for `--json`.
pub trait ShownError {
    /// Stable kebab-case code.
    fn code(&self) -> &str;
    /// One line: what happened.
    fn what(&self) -> &str;
    /// One line: what to do next.
    fn next(&self) -> &str;

    /// "error: what happened" and "next: what to do", for a terminal.
    fn two_lines(&self) -> String {
        format!("error: {}\nnext:  {}", self.what(), self.next())
    }

    /// The `--json` form.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": false,
            "error": {"code": self.code(), "message": self.what(), "next": self.next()},
        })
    }
}

/// Answers a command line clap refused: help and version go to stdout as clap prints them
/// (success); anything else prints `refused` in two lines, or as JSON when `--json` was
/// given, and returns `failure`.
pub fn refuse_command_line(
    error: &clap::Error,
    refused: &impl ShownError,
    failure: ExitCode,
) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let json = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if json {
        println!("{}", refused.to_json());
    } else {
        if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            // The help lists the commands to choose from.
            let _ = error.print();
            eprintln!();
        }
        eprintln!("{}", refused.two_lines());
    }
    failure
}

/// Turns a command line that clap refused into the two lines of every other error: what
/// was wrong (clap's words) and the next step (clap's tip, or the usage it printed).
/// `bin` is the program's name, for when clap printed no usage.
pub fn usage_lines(error: &clap::Error, bin: &str) -> (String, String) {
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
