//! The `peluit-investigator` command line: parses arguments, runs the command, and prints
//! its result, or its error as one line of what happened and one of what to do next.

use std::process::ExitCode;

use clap::Parser as _;
use peluit_cli::ShownError as _;
use peluit_investigator::cli::{Cli, run};
use peluit_investigator::error::DeskError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return peluit_cli::refuse_command_line(
                &error,
                &DeskError::usage(&error),
                ExitCode::FAILURE,
            );
        }
    };
    match run(&cli) {
        Ok(output) => {
            if cli.json {
                println!("{}", output.json);
            } else {
                print!("{}", output.text);
            }
            if output.partial {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            if cli.json {
                println!("{}", error.to_json());
            } else {
                eprintln!("{}", error.two_lines());
            }
            ExitCode::FAILURE
        }
    }
}
