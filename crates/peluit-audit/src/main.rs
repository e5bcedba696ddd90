//! The `peluit-audit` command line: runs one audit and prints its report, or its error as
//! one line of what happened and one of what to do next.
//!
//! Exit status: 0 when the audit passed, 1 when it found problems, 2 when it could not run.

use std::process::ExitCode;

use clap::Parser as _;
use peluit_audit::AuditError;
use peluit_audit::cli::{Cli, run};
use peluit_cli::ShownError as _;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return peluit_cli::refuse_command_line(
                &error,
                &AuditError::usage(&error),
                ExitCode::from(2),
            );
        }
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
