//! The `peluit-investigator` command line: parses arguments, runs the command, and prints
//! its result, or its error as one line of what happened and one of what to do next.

use std::process::ExitCode;

use clap::Parser as _;
use peluit_investigator::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
