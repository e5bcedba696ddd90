//! The command line: clap definitions and [`run`], which performs one audit and returns
//! what to print (a readable report, or JSON with `--json`). `main.rs` only prints.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::VerifyingKey;
use serde_json::json;

use crate::bundle::{BundleOptions, audit_bundle};
use crate::error::{AuditError, AuditResult};
use crate::findings::Finding;
use crate::site::{SiteOptions, audit_site, load_expected};
use crate::store::{StoreOptions, audit_store};

/// Peluit's auditor: checks a server's store, its live site, or a bundle, with no secret
/// key. Exit status 0: passed; 1: problems found; 2: the audit could not run.
#[derive(Debug, Parser)]
#[command(
    name = "peluit-audit",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 the audit passed, 1 it found problems, 2 it could not run.\nWhat each check can and cannot show: docs/auditing.md"
)]
pub struct Cli {
    /// Print the report (or the error) as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to audit.
    #[command(subcommand)]
    pub command: Command,
}

/// The audits.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Walk a server's data directory (a copy made while the server was stopped): every
    /// value must be ciphertext or an allowlisted metadata field.
    Store {
        /// The data directory. It is only read; sled opens a private copy.
        dir: PathBuf,
        /// The pinned manifest key of an institution, as INSTITUTION=KEY (base64), to
        /// verify its stored manifests; repeat for several institutions.
        #[arg(long = "manifest-key", value_name = "INSTITUTION=KEY")]
        manifest_keys: Vec<String>,
        /// Threads scanning upload files (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Check an export or reply bundle's framing, digests and signatures.
    Bundle {
        /// The bundle file.
        file: PathBuf,
        /// The institution's manifest key (base64), published out of band.
        #[arg(long, value_name = "KEY")]
        manifest_key: Option<String>,
        /// The institution's signed manifest, for a bundle that carries none.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// Fetch the live page, assets, hash list and manifests and check them.
    Site {
        /// The page's address, e.g. https://lapor.example.go.id/ or http://….onion/.
        url: String,
        /// The expected hashes: your own build's JSON list (the format of
        /// /.well-known/peluit-bundle.json) or its assets folder.
        #[arg(long, value_name = "FILE")]
        hashes: PathBuf,
        /// The institution's manifest key (base64), as published on its posters.
        #[arg(long, value_name = "KEY")]
        manifest_key: String,
        /// The institution to check, when the server serves several.
        #[arg(long, value_name = "ID")]
        institution: Option<String>,
        /// Send every request through this proxy (socks5h://127.0.0.1:9050 for Tor).
        #[arg(long, value_name = "URL")]
        proxy: Option<String>,
        /// Use this day instead of the system clock (YYYY-MM-DD) for manifest validity.
        #[arg(long, value_name = "DAY")]
        today: Option<String>,
        /// The highest manifest serial you saw in an earlier audit: a lower current
        /// serial is a rollback.
        #[arg(long, value_name = "SERIAL")]
        seen_serial: Option<u64>,
    },
}

/// What a command produced.
#[derive(Debug)]
pub struct Report {
    /// The readable report.
    pub text: String,
    /// The same as JSON.
    pub json: serde_json::Value,
    /// Whether the audit passed.
    pub clean: bool,
}

/// Runs one audit.
pub fn run(cli: &Cli) -> AuditResult<Report> {
    match &cli.command {
        Command::Store {
            dir,
            manifest_keys,
            threads,
        } => {
            let options = StoreOptions {
                manifest_keys: manifest_keys
                    .iter()
                    .map(|pair| parse_pinned_pair(pair))
                    .collect::<AuditResult<_>>()?,
                threads: *threads,
            };
            let audit = audit_store(dir, &options)?;
            let mut text = headline("Store", &dir.display().to_string(), &audit.findings);
            let s = &audit.scanned;
            let _ = writeln!(
                text,
                "Read {} keys, {} records, {} sealed items ({} bytes, {} upload files).",
                s.keys, s.records, s.sealed_items, s.sealed_bytes, s.upload_files
            );
            list_findings(&mut text, &audit.findings);
            let _ = writeln!(text, "\nWhat the server knows, in aggregate:");
            for (inst, e) in &audit.exposure {
                let _ = writeln!(text, "  {inst}");
                for m in &e.manifests {
                    let _ = writeln!(
                        text,
                        "    manifest serial {}: {} to {}, {} recipients, signature {}",
                        m.serial, m.valid_from, m.valid_until, m.recipients, m.signature
                    );
                }
                for (day, [open, deleted]) in &e.cases_per_day {
                    let _ = writeln!(text, "    cases on {day}: {open} open, {deleted} deleted");
                }
                for (bucket, n) in &e.size_buckets {
                    let _ = writeln!(text, "    cases of padded size {bucket} bytes: {n}");
                }
                for (state, n) in &e.uploads {
                    let _ = writeln!(text, "    uploads {state}: {n}");
                }
                for (size, n) in &e.upload_sizes {
                    let _ = writeln!(text, "    uploads of {size} sealed bytes: {n}");
                }
                for (day, [replies, follow_ups]) in &e.mailbox_per_day {
                    let _ = writeln!(
                        text,
                        "    mailbox on {day}: {replies} replies, {follow_ups} follow-ups"
                    );
                }
                for (day, n) in &e.stamps_per_day {
                    let _ = writeln!(text, "    proof-of-work stamps spent on {day}: {n}");
                }
                for (label, created) in &e.tokens {
                    let _ = writeln!(text, "    investigator token {label:?}, issued {created}");
                }
            }
            list_notes(&mut text, &audit.notes);
            Ok(Report {
                json: json!({"ok": true, "clean": audit.clean(), "store": audit}),
                clean: audit.clean(),
                text,
            })
        }
        Command::Bundle {
            file,
            manifest_key,
            manifest,
        } => {
            let options = BundleOptions {
                manifest_key: manifest_key.as_deref().map(parse_key).transpose()?,
                manifest: manifest
                    .as_ref()
                    .map(|p| std::fs::read(p).map_err(|e| AuditError::io("read", p, &e)))
                    .transpose()?,
            };
            let audit = audit_bundle(file, &options)?;
            let mut text = headline("Bundle", &file.display().to_string(), &audit.findings);
            if let (Some(kind), Some(inst), Some(created)) =
                (&audit.kind, &audit.institution, &audit.created)
            {
                let _ = writeln!(text, "A {kind} bundle for {inst}, written on {created}.");
            }
            let frames: Vec<String> = audit
                .frames
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = writeln!(
                text,
                "Frames: {}; {} payload bytes.",
                frames.join(", "),
                audit.payload_bytes
            );
            if let Some(digest) = &audit.digest {
                let _ = writeln!(text, "End digest: {digest}");
            }
            list_findings(&mut text, &audit.findings);
            list_notes(&mut text, &audit.notes);
            Ok(Report {
                json: json!({"ok": true, "clean": audit.clean(), "bundle": audit}),
                clean: audit.clean(),
                text,
            })
        }
        Command::Site {
            url,
            hashes,
            manifest_key,
            institution,
            proxy,
            today,
            seen_serial,
        } => {
            let options = SiteOptions {
                url: url.clone(),
                expected: load_expected(hashes)?,
                manifest_key: parse_key(manifest_key)?,
                institution: institution.clone(),
                proxy: proxy.clone(),
                seen_serial: *seen_serial,
                today: match today {
                    Some(day) => day.parse().map_err(|_| {
                        AuditError::new(
                            "bad-day",
                            format!("{day} is not a day"),
                            "write it as YYYY-MM-DD",
                        )
                    })?,
                    None => system_today()?,
                },
            };
            let audit = audit_site(&options)?;
            let mut text = headline("Site", &audit.origin, &audit.findings);
            let _ = writeln!(
                text,
                "Fetched {} URLs; pinned manifest key fingerprint {}.",
                audit.fetched.len(),
                audit.manifest_key_fingerprint
            );
            if let (Some(inst), Some(serial)) = (&audit.institution, audit.manifest_serial) {
                let _ = writeln!(
                    text,
                    "Manifest history of {inst} verified; current serial {serial}."
                );
            }
            list_findings(&mut text, &audit.findings);
            let _ = writeln!(
                text,
                "\nThis shows what this vantage point was served, now; see docs/auditing.md for what it cannot show."
            );
            Ok(Report {
                json: json!({"ok": true, "clean": audit.clean(), "site": audit}),
                clean: audit.clean(),
                text,
            })
        }
    }
}

fn headline(what: &str, subject: &str, findings: &[Finding]) -> String {
    if findings.is_empty() {
        format!("{what} audit of {subject}: PASSED\n")
    } else {
        format!(
            "{what} audit of {subject}: FAILED, {} findings\n",
            findings.len()
        )
    }
}

fn list_findings(text: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(text, "\nFindings:");
    for finding in findings {
        let _ = writeln!(text, "  {finding}");
    }
}

fn list_notes(text: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(text, "\nNotes:");
    for note in notes {
        let _ = writeln!(text, "  {note}");
    }
}

fn parse_key(text: &str) -> AuditResult<VerifyingKey> {
    text.trim().parse().map_err(|_| {
        AuditError::new(
            "bad-key",
            "the manifest key is not a base64 Ed25519 public key",
            "copy the key as the institution published it (44 characters of base64)",
        )
    })
}

fn parse_pinned_pair(pair: &str) -> AuditResult<(InstitutionId, VerifyingKey)> {
    let (inst, key) = pair.split_once('=').ok_or_else(|| {
        AuditError::new(
            "bad-key",
            format!("--manifest-key {pair} is not INSTITUTION=KEY"),
            "write e.g. --manifest-key itjen-contoh=<base64 key>",
        )
    })?;
    let inst = inst.parse().map_err(|_| {
        AuditError::new(
            "bad-key",
            format!("{inst} is not an institution id"),
            "use the id the server lists, e.g. itjen-contoh",
        )
    })?;
    Ok((inst, parse_key(key)?))
}

fn system_today() -> AuditResult<Day> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Day::from_unix_seconds(i64::try_from(seconds).unwrap_or_default()).map_err(|_| {
        AuditError::new(
            "bad-clock",
            "the system clock gives no valid day",
            "pass --today YYYY-MM-DD",
        )
    })
}
