//! The command line: clap definitions and [`run`], which performs one command and returns
//! what to print (text, or JSON with `--json`). `main.rs` only prints.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SealIdentity, VerifyingKey};
use peluit_proto::reply::ReplyKind;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::casefile::{CaseMeta, NOT_RECEIVED, category_label};
use crate::ceremony::{self, ManifestPlan};
use crate::desk::{Desk, read_signed_manifest};
use crate::error::{DeskError, DeskResult};
use crate::html;
use crate::import::import_bundle;
use crate::keyfile::{self, InvestigatorKeys};
use crate::replies;
use crate::secrets::{Passphrase, PassphraseSource};

/// The air-gapped investigator desk of Peluit. It never uses the network.
#[derive(Debug, Parser)]
#[command(name = "peluit-investigator", version, about, long_about = None)]
pub struct Cli {
    /// The desk folder.
    #[arg(
        long,
        global = true,
        env = "PELUIT_DESK",
        default_value = "peluit-desk"
    )]
    pub desk: PathBuf,
    /// Print results and errors as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Read the key file's passphrase from this file (else $PELUIT_PASSPHRASE, else the
    /// terminal).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Use this day instead of the system clock (YYYY-MM-DD), for a desk whose clock
    /// cannot be trusted.
    #[arg(long, global = true, value_name = "DAY")]
    pub today: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a desk folder for an institution, pinning its manifest key.
    Init {
        /// The institution id, e.g. itjen-contoh.
        #[arg(long)]
        institution: String,
        /// The manifest key (base64), as `keygen manifest-key` printed it; compare its
        /// fingerprint words with the poster.
        #[arg(long)]
        manifest_key: String,
    },
    /// Make new keys (passphrase-protected).
    #[command(subcommand)]
    Keygen(Keygen),
    /// Build, sign, rotate and install key manifests.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Verify an export bundle and import its new cases.
    Import {
        /// The bundle file from the courier's USB stick.
        bundle: PathBuf,
        /// The investigator key file (default: the desk's keys/investigator.key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Open with the escrow key file instead of an investigator's.
        #[arg(long, value_name = "FILE", conflicts_with = "key")]
        escrow: Option<PathBuf>,
    },
    /// List and show cases.
    #[command(subcommand)]
    Cases(CasesCommand),
    /// Write a reply to the reporter of a case (in $EDITOR, or from a file).
    Reply {
        /// The case id (or a unique prefix).
        case: String,
        /// Read the reply text from this file instead of opening $EDITOR.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Attach a file (repeatable).
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// The investigator key file (default: the desk's keys/investigator.key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Change a case's status as the reporter sees it, with an optional message.
    Status {
        /// The case id (or a unique prefix).
        case: String,
        /// received, in-review, forwarded or closed.
        status: String,
        /// A short note to the reporter.
        #[arg(long, conflicts_with = "file")]
        message: Option<String>,
        /// Read the note from this file.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The investigator key file (default: the desk's keys/investigator.key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Gather the outbox into a reply bundle for the courier.
    Bundle {
        /// Where to write the bundle (on the USB stick).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `keygen` subcommands.
#[derive(Debug, Subcommand)]
pub enum Keygen {
    /// An investigator's age identity and reply-signing key.
    Investigator {
        /// The holder name used in the manifest, e.g. investigator:ani.
        #[arg(long)]
        holder: String,
        /// Where to write the key file (default: the desk's keys/investigator.key).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The escrow identity, exported passphrase-protected for the safe.
    Escrow {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// The institution's manifest-signing key.
    ManifestKey {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Build an unsigned manifest from keygen's .public.json files.
    New {
        /// The institution id.
        #[arg(long)]
        institution: String,
        /// The institution's display name.
        #[arg(long)]
        name: String,
        /// An origin the page may be served from (repeatable).
        #[arg(long, required = true)]
        origin: Vec<String>,
        /// A .public.json file from keygen (repeatable).
        #[arg(long, required = true, value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// The serial.
        #[arg(long, default_value_t = 1)]
        serial: u64,
        /// Days of validity from today.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// A form definition (JSON); the KWS form by default.
        #[arg(long, value_name = "FILE")]
        form: Option<PathBuf>,
        /// Where to write the unsigned manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign an unsigned manifest with the manifest key.
    Sign {
        /// The unsigned manifest.
        unsigned: PathBuf,
        /// The manifest key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signed manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make and sign the next manifest (serial + 1), optionally with new keys.
    Rotate {
        /// The current signed manifest.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The manifest key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Replace the keys with these .public.json files (repeatable).
        #[arg(long, value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// Days of validity from today.
        #[arg(long, default_value_t = 365)]
        valid_days: u32,
        /// Where to write the signed manifest.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Install a signed manifest on this desk.
    Install {
        /// The signed manifest.
        signed: PathBuf,
    },
    /// Show the desk's current manifest and the pinned key's fingerprint.
    Show,
}

/// `cases` subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// List every case.
    List,
    /// Show one case (and mark its follow-ups read).
    Show {
        /// The case id (or a unique prefix).
        case: String,
    },
}

/// What a command printed: text for people, JSON for scripts, and whether part of it
/// failed (exit status 2).
#[derive(Debug)]
pub struct Output {
    /// Human-readable text.
    pub text: String,
    /// The `--json` form.
    pub json: Value,
    /// Part of the work failed (some cases were not imported).
    pub partial: bool,
}

impl Output {
    fn new(text: String, json: Value) -> Self {
        Self {
            text,
            json,
            partial: false,
        }
    }
}

fn today(cli: &Cli) -> DeskResult<Day> {
    match &cli.today {
        Some(text) => text.parse().map_err(|_| {
            DeskError::new(
                "bad-date",
                format!("{text:?} is not a day"),
                "write the day as YYYY-MM-DD",
            )
        }),
        None => {
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            Day::from_unix_seconds(seconds).map_err(|_| {
                DeskError::new(
                    "bad-clock",
                    "the system clock is not set",
                    "set the clock, or pass --today YYYY-MM-DD",
                )
            })
        }
    }
}

fn passphrases(cli: &Cli) -> PassphraseSource {
    PassphraseSource {
        file: cli.passphrase_file.clone(),
        allow_env: true,
    }
}

fn progress(cli: &Cli) -> ProgressBar {
    if cli.json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn unlock_investigator(cli: &Cli, desk: &Desk, key: Option<&Path>) -> DeskResult<InvestigatorKeys> {
    let path = key.map_or_else(|| desk.investigator_key_path(), Path::to_path_buf);
    let passphrase = passphrases(cli).existing("the investigator key")?;
    keyfile::read_investigator(&path, &passphrase)
}

fn parse_institution(text: &str) -> DeskResult<InstitutionId> {
    text.parse().map_err(|_| {
        DeskError::new(
            "bad-institution",
            format!("{text:?} is not an institution id"),
            "use lowercase letters, digits and -, as in the manifest",
        )
    })
}

fn write_new_file(path: &Path, bytes: &[u8]) -> DeskResult<()> {
    if path.exists() {
        return Err(DeskError::new(
            "exists",
            format!("{} already exists", path.display()),
            "choose another --out path or move the old file away",
        ));
    }
    crate::fsutil::write_atomic(path, bytes)
}

fn read_text(path: &Path) -> DeskResult<Zeroizing<String>> {
    let bytes = Zeroizing::new(crate::fsutil::read(path)?);
    std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.trim_end().to_owned()))
        .map_err(|_| {
            DeskError::new(
                "not-text",
                format!("{} is not UTF-8 text", path.display()),
                "save the text as UTF-8 and try again",
            )
        })
}

/// Opens `$VISUAL` or `$EDITOR` on a file inside the desk and returns what was written.
fn compose_in_editor(desk: &Desk) -> DeskResult<Zeroizing<String>> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .map_err(|_| {
            DeskError::new(
                "no-editor",
                "no editor to write the reply in ($EDITOR is not set)",
                "set EDITOR (e.g. EDITOR=nano) or pass the text with --file",
            )
        })?;
    // The draft stays inside the desk folder, never in a shared temporary directory.
    let draft = crate::fsutil::temp_beside(&desk.root().join("draft.txt"));
    crate::fsutil::write_atomic_private(
        &draft,
        b"\n# Tulis balasan di atas. Baris yang diawali # diabaikan.\n# Write the reply above. Lines starting with # are ignored.\n",
    )?;
    let status = std::process::Command::new(&editor).arg(&draft).status();
    let text = read_text(&draft);
    // Clear intermediates
    if let Ok(len) = std::fs::metadata(&draft).map(|m| m.len()) {
        let _ = std::fs::write(&draft, vec![0u8; len as usize]);
    }
    let _ = std::fs::remove_file(&draft);
    if !status.is_ok_and(|s| s.success()) {
        return Err(DeskError::new(
            "editor-failed",
            format!("the editor {editor:?} did not finish cleanly"),
            "check EDITOR, or pass the text with --file",
        ));
    }
    let text = text?;
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    Ok(Zeroizing::new(kept.join("\n").trim().to_owned()))
}

/// Runs one command.
pub fn run(cli: &Cli) -> DeskResult<Output> {
    let today = today(cli)?;
    match &cli.command {
        Command::Init {
            institution,
            manifest_key,
        } => {
            let institution = parse_institution(institution)?;
            let key: VerifyingKey = manifest_key.parse().map_err(|_| {
                DeskError::new(
                    "bad-key",
                    "the manifest key is not a base64 Ed25519 public key",
                    "copy it exactly as `keygen manifest-key` printed it",
                )
            })?;
            let desk = Desk::init(&cli.desk, institution.clone(), key)?;
            html::write_index(&desk, None)?;
            let print = ceremony::fingerprint(&key);
            Ok(Output::new(
                format!(
                    "Desk created in {} for {institution}.\nManifest key fingerprint \
                     (compare with the poster):\n  {}\n  {}\n  {}\n",
                    cli.desk.display(),
                    print.words_id,
                    print.words_en,
                    print.hex
                ),
                json!({"ok": true, "desk": cli.desk, "institution": institution, "fingerprint": print}),
            ))
        }
        Command::Keygen(keygen) => run_keygen(cli, keygen),
        Command::Manifest(command) => run_manifest(cli, command, today),
        Command::Import {
            bundle,
            key,
            escrow,
        } => {
            let desk = Desk::open(&cli.desk)?;
            let identity: SealIdentity = match escrow {
                Some(path) => {
                    let passphrase = passphrases(cli).existing("the escrow key")?;
                    keyfile::read_escrow(path, &passphrase)?
                }
                None => unlock_investigator(cli, &desk, key.as_deref())?.identity,
            };
            let bar = progress(cli);
            let outcome =
                import_bundle(&desk, std::slice::from_ref(&identity), bundle, today, &bar)?;
            let mut text = format!(
                "Bundle {} verified.\n{} new case(s), {} already on the desk, {} follow-up(s), \
                 {} attachment(s).\n",
                &outcome.bundle_digest[..16],
                outcome.new_cases.len(),
                outcome.known_cases,
                outcome.new_follow_ups,
                outcome.new_attachments
            );
            if outcome.already_imported {
                text.push_str("This bundle had been imported before.\n");
            }
            if let Some(serial) = outcome.installed_manifest {
                text.push_str(&format!(
                    "Installed the bundle's manifest, serial {serial}.\n"
                ));
            }
            for case in &outcome.new_cases {
                text.push_str(&format!("  new case {case}\n"));
            }
            for case in &outcome.withdrawn {
                text.push_str(&format!("  case {case} was withdrawn on the server\n"));
            }
            for warning in &outcome.warnings {
                text.push_str(&format!("warning: {warning}\n"));
            }
            for f in &outcome.failures {
                text.push_str(&format!(
                    "error: case {} was not imported: {}\nnext:  nothing of it was written; \
                     keep the bundle and tell the server's operator\n",
                    f.case, f.what
                ));
            }
            text.push_str(&format!(
                "Open {} in a browser for the case list.\n",
                desk.root().join("index.html").display()
            ));
            let partial = !outcome.failures.is_empty();
            Ok(Output {
                text,
                json: json!({"ok": !partial, "import": outcome}),
                partial,
            })
        }
        Command::Cases(CasesCommand::List) => {
            let desk = Desk::open(&cli.desk)?;
            let form = desk
                .manifest_history()?
                .last()
                .map(|m| m.manifest().form.clone());
            let mut rows = Vec::new();
            let mut text = String::new();
            for id in desk.case_ids()? {
                let meta = CaseMeta::load(&desk.case_dir(id))?;
                let category = match (&meta.category, &form) {
                    (Some(c), Some(f)) => category_label(f, c),
                    (Some(c), None) => c.clone(),
                    _ => "-".to_owned(),
                };
                text.push_str(&format!(
                    "{}  {}  {:<12} unread {}  files {}  {}\n",
                    meta.case,
                    meta.received,
                    meta.status,
                    meta.unread_follow_ups,
                    meta.attachments_summary(),
                    category
                ));
                rows.push(json!({
                    "case": meta.case, "received": meta.received, "reported": meta.reported,
                    "category": meta.category, "status": meta.status,
                    "unread_follow_ups": meta.unread_follow_ups,
                    "attachments": meta.attachments.len(),
                    "attachments_not_received": meta.not_received(),
                    "withdrawn": meta.withdrawn,
                }));
            }
            if rows.is_empty() {
                text.push_str("No cases yet. Import a bundle with `peluit-investigator import`.\n");
            }
            Ok(Output::new(text, json!({"ok": true, "cases": rows})))
        }
        Command::Cases(CasesCommand::Show { case }) => {
            let desk = Desk::open(&cli.desk)?;
            let case = desk.resolve_case(case)?;
            let dir = desk.case_dir(case);
            let mut meta = CaseMeta::load(&dir)?;
            let report = read_text(&dir.join("report.txt"))?;
            let mut text = format!(
                "{}\n\nStatus: {}\n",
                report.as_str(),
                html::status_label(&meta.status)
            );
            let mut files = Vec::new();
            if !meta.attachments.is_empty() {
                text.push_str("\nLampiran / Attachments:\n");
            }
            for a in &meta.attachments {
                let path = dir.join("attachments").join(&a.file);
                text.push_str(&format!(
                    "  {} ({}, {}) {}\n",
                    a.original_name,
                    a.size_label(),
                    a.media_type,
                    if a.stored {
                        path.display().to_string()
                    } else {
                        NOT_RECEIVED.to_owned()
                    }
                ));
                if let Some(warning) = a.warning() {
                    text.push_str(&format!("    warning: {warning}\n"));
                }
                files.push(json!({
                    "name": a.original_name, "received": a.stored,
                    "file": a.stored.then(|| path.clone()),
                    "size": a.known_size(), "media_type": a.media_type, "warning": a.warning(),
                }));
            }
            let mut messages = Vec::new();
            for m in &meta.messages {
                let body = read_text(&dir.join("messages").join(&m.file))?;
                text.push_str(&format!(
                    "\n--- {} #{} ({}) ---\n{}\n",
                    m.kind,
                    m.seq,
                    m.date,
                    body.as_str()
                ));
                messages.push(json!({"kind": m.kind, "seq": m.seq, "date": m.date, "file": dir.join("messages").join(&m.file)}));
            }
            if meta.unread_follow_ups > 0 {
                meta.unread_follow_ups = 0;
                meta.save(&dir)?;
                let form = desk
                    .manifest_history()?
                    .last()
                    .map(|m| m.manifest().form.clone());
                html::write_case_page(&dir, &meta, form.as_ref())?;
                html::write_index(&desk, form.as_ref())?;
            }
            Ok(Output::new(
                text,
                json!({
                    "ok": true, "case": case, "status": meta.status, "received": meta.received,
                    "reported": meta.reported, "report_file": dir.join("report.txt"),
                    "attachments": files, "messages": messages,
                }),
            ))
        }
        Command::Reply {
            case,
            file,
            attach,
            key,
        } => {
            let desk = Desk::open(&cli.desk)?;
            let case = desk.resolve_case(case)?;
            let text = match file {
                Some(path) => read_text(path)?,
                None => compose_in_editor(&desk)?,
            };
            if text.is_empty() && attach.is_empty() {
                return Err(DeskError::new(
                    "empty-reply",
                    "the reply is empty",
                    "write some text (or attach a file) and try again; nothing was sent",
                ));
            }
            let attachments = replies::read_attachments(attach)?;
            let keys = unlock_investigator(cli, &desk, key.as_deref())?;
            let sealed = replies::seal_for_case(
                &desk,
                &keys,
                case,
                ReplyKind::Message,
                text,
                attachments,
                today,
            )?;
            Ok(sealed_output(&sealed, "Reply"))
        }
        Command::Status {
            case,
            status,
            message,
            file,
            key,
        } => {
            let desk = Desk::open(&cli.desk)?;
            let status = replies::parse_status(status)?;
            let case = desk.resolve_case(case)?;
            let text = match (message, file) {
                (Some(m), _) => Zeroizing::new(m.clone()),
                (None, Some(path)) => read_text(path)?,
                (None, None) => Zeroizing::new(String::new()),
            };
            let keys = unlock_investigator(cli, &desk, key.as_deref())?;
            let sealed = replies::seal_for_case(
                &desk,
                &keys,
                case,
                ReplyKind::Status(status),
                text,
                Vec::new(),
                today,
            )?;
            Ok(sealed_output(&sealed, "Status change"))
        }
        Command::Bundle { out } => {
            let desk = Desk::open(&cli.desk)?;
            let written = replies::write_reply_bundle(&desk, out, today)?;
            Ok(Output::new(
                format!(
                    "Reply bundle written to {} ({} repl{}{}).\nCarry it to the courier: \
                     `peluit-courier push {}`.\n",
                    written.path.display(),
                    written.replies,
                    if written.replies == 1 { "y" } else { "ies" },
                    written
                        .manifest_serial
                        .map(|s| format!(", manifest serial {s}"))
                        .unwrap_or_default(),
                    written.path.display()
                ),
                json!({"ok": true, "bundle": written}),
            ))
        }
    }
}

fn sealed_output(sealed: &replies::Sealed, what: &str) -> Output {
    Output::new(
        format!(
            "{what} #{} for case {} sealed and signed; it is in the outbox.\nWrite the reply \
             bundle with `peluit-investigator bundle --out FILE`.\n",
            sealed.seq, sealed.case
        ),
        json!({"ok": true, "case": sealed.case, "seq": sealed.seq, "outbox_file": sealed.outbox_file}),
    )
}

fn run_keygen(cli: &Cli, keygen: &Keygen) -> DeskResult<Output> {
    match keygen {
        Keygen::Investigator { holder, out } => {
            let path = match out {
                Some(path) => path.clone(),
                None => Desk::open(&cli.desk)?.investigator_key_path(),
            };
            let passphrase = passphrases(cli).new_passphrase("the new investigator key")?;
            let entries = ceremony::keygen_investigator(holder, &path, &passphrase)?;
            keys_output(&path, &entries)
        }
        Keygen::Escrow { out } => {
            let passphrase = passphrases(cli).new_passphrase("the new escrow key")?;
            let entries = ceremony::keygen_escrow(out, &passphrase)?;
            keys_output(out, &entries)
        }
        Keygen::ManifestKey { out } => {
            let passphrase: Passphrase = passphrases(cli).new_passphrase("the new manifest key")?;
            let print = ceremony::keygen_manifest_key(out, &passphrase)?;
            Ok(Output::new(
                format!(
                    "Manifest key written to {} (passphrase-protected).\nPublic key: {}\n\
                     Fingerprint for posters:\n  {}\n  {}\n  {}\n",
                    out.display(),
                    print.public,
                    print.words_id,
                    print.words_en,
                    print.hex
                ),
                json!({"ok": true, "key_file": out, "fingerprint": print}),
            ))
        }
    }
}

fn keys_output(path: &Path, entries: &[peluit_proto::manifest::ManifestKey]) -> DeskResult<Output> {
    let mut text = format!(
        "Key file written to {} (passphrase-protected).\nPublic keys for the manifest \
         (also in {}.public.json):\n",
        path.display(),
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    for e in entries {
        text.push_str(&format!("  {} {} {}\n", e.holder, e.purpose, e.public));
    }
    Ok(Output::new(
        text,
        json!({"ok": true, "key_file": path, "public": entries}),
    ))
}

fn run_manifest(cli: &Cli, command: &ManifestCommand, today: Day) -> DeskResult<Output> {
    match command {
        ManifestCommand::New {
            institution,
            name,
            origin,
            keys,
            serial,
            valid_days,
            form,
            out,
        } => {
            let form = match form {
                Some(path) => Some(serde_json::from_slice(&crate::fsutil::read(path)?).map_err(|_| {
                    DeskError::new(
                        "bad-form",
                        format!("{} is not a form definition", path.display()),
                        "write the form as the manifest's \"form\" member (see docs/protocol.md#manifest)",
                    )
                })?),
                None => None,
            };
            let manifest = ceremony::build_manifest(ManifestPlan {
                institution: parse_institution(institution)?,
                name: name.clone(),
                origins: origin.clone(),
                serial: *serial,
                valid_from: today,
                valid_until: ceremony::add_days(today, *valid_days)?,
                keys: ceremony::read_key_entries(keys)?,
                form,
            })?;
            write_new_file(out, &manifest.canonical_json())?;
            Ok(Output::new(
                format!(
                    "Unsigned manifest (serial {serial}) written to {}.\nSign it on the \
                     manifest-key desk: `peluit-investigator manifest sign {} --key FILE --out FILE`.\n",
                    out.display(),
                    out.display()
                ),
                json!({"ok": true, "unsigned": out, "serial": serial}),
            ))
        }
        ManifestCommand::Sign { unsigned, key, out } => {
            let manifest = ceremony::read_unsigned(unsigned)?;
            let passphrase = passphrases(cli).existing("the manifest key")?;
            let key = keyfile::read_manifest_key(key, &passphrase)?;
            let signed = ceremony::sign_manifest(manifest, &key)?;
            write_new_file(out, &signed.to_json())?;
            signed_output(out, &signed, &key.verifying_key())
        }
        ManifestCommand::Rotate {
            from,
            key,
            keys,
            valid_days,
            out,
        } => {
            let previous = read_signed_manifest(from)?;
            let new_keys = if keys.is_empty() {
                None
            } else {
                Some(ceremony::read_key_entries(keys)?)
            };
            let next = ceremony::rotate(&previous, new_keys, today, *valid_days)?;
            let passphrase = passphrases(cli).existing("the manifest key")?;
            let key = keyfile::read_manifest_key(key, &passphrase)?;
            let signed = ceremony::sign_manifest(next, &key)?;
            write_new_file(out, &signed.to_json())?;
            signed_output(out, &signed, &key.verifying_key())
        }
        ManifestCommand::Install { signed } => {
            let desk = Desk::open(&cli.desk)?;
            let signed = read_signed_manifest(signed)?;
            let serial = ceremony::install(&desk, &signed, today)?;
            html::write_index(&desk, Some(&signed.manifest().form))?;
            Ok(Output::new(
                format!(
                    "Manifest serial {serial} installed. If the server does not have it yet, \
                     the next reply bundle carries it.\n"
                ),
                json!({"ok": true, "serial": serial}),
            ))
        }
        ManifestCommand::Show => {
            let desk = Desk::open(&cli.desk)?;
            let print = ceremony::fingerprint(&desk.config().manifest_key);
            let current = desk.current_manifest(today)?;
            let m = current.manifest();
            let mut text = format!(
                "{} ({}), serial {}, valid {} to {}\nOrigins: {}\nManifest key fingerprint:\n  \
                 {}\n  {}\n  {}\nKeys:\n",
                m.institution.name,
                m.institution.id,
                m.serial,
                m.valid_from,
                m.valid_until,
                m.origins.join(", "),
                print.words_id,
                print.words_en,
                print.hex
            );
            for k in &m.keys {
                text.push_str(&format!("  {} {} {}\n", k.holder, k.purpose, k.public));
            }
            Ok(Output::new(
                text,
                json!({"ok": true, "serial": m.serial, "valid_from": m.valid_from,
                       "valid_until": m.valid_until, "fingerprint": print}),
            ))
        }
    }
}

fn signed_output(
    out: &Path,
    signed: &peluit_proto::manifest::SignedManifest,
    key: &VerifyingKey,
) -> DeskResult<Output> {
    let print = ceremony::fingerprint(key);
    let m = signed.manifest();
    Ok(Output::new(
        format!(
            "Signed manifest serial {} (valid {} to {}) written to {}.\nManifest key \
             fingerprint for posters:\n  {}\n  {}\n  {}\n",
            m.serial,
            m.valid_from,
            m.valid_until,
            out.display(),
            print.words_id,
            print.words_en,
            print.hex
        ),
        json!({"ok": true, "signed": out, "serial": m.serial, "fingerprint": print}),
    ))
}
