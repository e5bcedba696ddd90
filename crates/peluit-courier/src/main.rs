//! The `peluit-courier` command line: runs one command and prints its result, or its
//! error as one line of what happened and one of what to do next.

use std::process::ExitCode;

use clap::Parser as _;
use peluit_cli::ShownError as _;
use peluit_courier::cli::{Cli, run};
use peluit_courier::error::CourierError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            return peluit_cli::refuse_command_line(
                &error,
                &CourierError::usage(&error),
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
            ExitCode::SUCCESS
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
