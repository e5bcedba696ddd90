//! The courier's command line: clap definitions and [`run`], which returns what to print.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peluit_proto::ids::InstitutionId;
use serde_json::{Value, json};

use crate::error::{CourierError, CourierResult};
use crate::transfer::{self, Token};

/// Carries sealed bundles between a Peluit server and the desk's USB stick. It holds no
/// key that opens anything.
#[derive(Debug, Parser)]
#[command(name = "peluit-courier", version, about, long_about = None)]
pub struct Cli {
    /// Print results and errors as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download everything new since the last pull as one verified bundle.
    Pull {
        /// The server, e.g. https://lapor.contoh.go.id
        #[arg(long)]
        server: String,
        /// The institution id.
        #[arg(long)]
        institution: String,
        /// Read the investigator token from this file (else $PELUIT_TOKEN).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// The folder on the USB stick.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Upload a reply bundle written by the desk.
    Push {
        /// The reply bundle.
        bundle: PathBuf,
        /// The server.
        #[arg(long)]
        server: String,
        /// The institution id.
        #[arg(long)]
        institution: String,
        /// Read the investigator token from this file (else $PELUIT_TOKEN).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    /// For people.
    pub text: String,
    /// For scripts.
    pub json: Value,
}

fn institution(text: &str) -> CourierResult<InstitutionId> {
    text.parse().map_err(|_| {
        CourierError::new(
            "bad-institution",
            format!("{text:?} is not an institution id"),
            "use the id from the manifest, e.g. itjen-contoh",
        )
    })
}

fn progress(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("[{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs one command.
pub fn run(cli: &Cli) -> CourierResult<Output> {
    match &cli.command {
        Command::Pull {
            server,
            institution: id,
            token_file,
            out,
        } => {
            let id = institution(id)?;
            let token = Token::obtain(token_file.as_deref())?;
            if !out.is_dir() {
                return Err(CourierError::new(
                    "no-folder",
                    format!("{} is not a folder", out.display()),
                    "mount the USB stick and name a folder on it with --out",
                ));
            }
            let pulled = transfer::pull(server, &id, &token, out, &progress(cli.json))?;
            let text = match &pulled.bundle {
                Some(path) => format!(
                    "Bundle written to {} ({} case(s), {} attachment(s), {} follow-up(s)), \
                     verified.\nCarry it to the desk: `peluit-investigator import {}`.\n",
                    path.display(),
                    pulled.cases,
                    pulled.attachments,
                    pulled.follow_ups,
                    path.display()
                ),
                None => "Nothing new on the server.\n".to_owned(),
            };
            Ok(Output {
                text,
                json: json!({"ok": true, "pull": pulled}),
            })
        }
        Command::Push {
            bundle,
            server,
            institution: id,
            token_file,
        } => {
            let id = institution(id)?;
            let token = Token::obtain(token_file.as_deref())?;
            let pushed = transfer::push(server, &id, &token, bundle, &progress(cli.json))?;
            Ok(Output {
                text: format!(
                    "The server took {} repl{}{}.\n",
                    pushed.replies,
                    if pushed.replies == 1 { "y" } else { "ies" },
                    pushed
                        .manifest_serial
                        .map(|s| format!(" and manifest serial {s}"))
                        .unwrap_or_default()
                ),
                json: json!({"ok": true, "push": pushed}),
            })
        }
    }
}
