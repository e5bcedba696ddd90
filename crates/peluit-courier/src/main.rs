//! The `peluit-courier` command line: runs one command and prints its result, or its
//! error as one line of what happened and one of what to do next.

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use peluit_courier::cli::{Cli, run};
use peluit_courier::error::CourierError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refuse_command_line(&error),
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

/// Help and version go to stdout as clap prints them; anything else clap refused is an
/// error like the others: two lines (or JSON with `--json`), exit status 1.
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
    let refused = CourierError::usage(error);
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
    ExitCode::FAILURE
}
