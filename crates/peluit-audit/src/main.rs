//! The `peluit-audit` command line: runs one audit and prints its report, or its error as
//! one line of what happened and one of what to do next.
//!
//! Exit status: 0 when the audit passed, 1 when it found problems, 2 when it could not run.

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use peluit_audit::AuditError;
use peluit_audit::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refuse_command_line(&error),
    };
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", report.json);
            } else {
                print!("{}", report.text);
            }
            if report.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            if cli.json {
                println!("{}", error.to_json());
            } else {
                eprintln!("{}", error.two_lines());
            }
            ExitCode::from(2)
        }
    }
}

/// Help and version go to stdout as clap prints them; anything else clap refused is an
/// error like the others (exit status 2).
fn refuse_command_line(error: &clap::Error) -> ExitCode {
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
    let refused = AuditError::usage(error);
    if json {
        println!("{}", refused.to_json());
    } else {
        if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            let _ = error.print();
            eprintln!();
        }
        eprintln!("{}", refused.two_lines());
    }
    ExitCode::from(2)
}
