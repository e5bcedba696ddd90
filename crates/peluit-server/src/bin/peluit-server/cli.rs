//! Command-line arguments of `peluit-server` (clap derive): `demo`, `serve`, `token` and
//! `institution`, each with the configuration flags it needs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Peluit's online drop box: stores only ciphertext and serves the reporter page.
#[derive(Debug, Parser)]
#[command(name = "peluit-server", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try Peluit: make (or reuse) a demo institution with demo desk keys in DIR and
    /// serve it on 127.0.0.1.
    Demo {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Folder for the demo keys, manifest, token and store.
        #[arg(long, default_value = "./demo")]
        dir: PathBuf,
    },
    /// Serve for real, configured by file, PELUIT_* environment variables and flags.
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Issue, list or revoke investigator access tokens (while a server runs, issue and
    /// revoke take effect at its next reload; list needs the server stopped).
    Token {
        /// Token action.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Register another institution in the configuration file (then `systemctl reload
    /// peluit-server`, or SIGHUP, serves it without a restart).
    Institution {
        /// Institution action.
        #[command(subcommand)]
        action: InstitutionAction,
    },
}

/// Institution actions.
#[derive(Debug, Subcommand)]
pub enum InstitutionAction {
    /// Append an [[institution]] entry to the configuration file, after checking that the
    /// whole configuration still loads with it.
    Add {
        #[command(flatten)]
        config: ConfigArgs,
        /// Its id: 1 to 64 characters of a-z, 0-9 and -.
        #[arg(long)]
        id: String,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// Its manifest key (base64 Ed25519, from the desk's key ceremony).
        #[arg(long)]
        manifest_key: String,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The TOML configuration file.
    #[arg(long, env = "PELUIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the file and PELUIT_LISTEN).
    #[arg(long)]
    pub listen: Option<String>,
    /// The store's data directory (overrides the file and PELUIT_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Token actions.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Issue a new token; prints it once (the store keeps only its SHA-256).
    Issue {
        #[command(flatten)]
        config: ConfigArgs,
        /// The institution the token is for.
        #[arg(long)]
        institution: String,
        /// A label to recognise the token by (e.g. the desk's name).
        #[arg(long)]
        label: String,
    },
    /// List the institution's tokens (hash, day issued, label).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// The institution.
        #[arg(long)]
        institution: String,
    },
    /// Revoke a token, given the token itself or its hash (hex, as `token list` prints it).
    Revoke {
        #[command(flatten)]
        config: ConfigArgs,
        /// The institution.
        #[arg(long)]
        institution: String,
        /// The token text (read from this file; `-` for standard input).
        #[arg(long, conflicts_with = "hash")]
        token_file: Option<PathBuf>,
        /// The token's SHA-256 in hex.
        #[arg(long)]
        hash: Option<String>,
    },
}
