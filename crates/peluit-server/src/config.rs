//! Server configuration: a TOML file, `PELUIT_*` environment variables and flags, merged in
//! that order and validated at start with one-line errors that say what to do
//! (docs/operating.md#configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::VerifyingKey;
use peluit_proto::limits;
use serde::Deserialize;

/// Tunable limits. Every one may be made stricter than the protocol's, never looser.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest JSON body of an ordinary request (a report with its base64 envelope fits).
    pub max_json_body: usize,
    /// Largest declared sealed size of one attachment upload.
    pub max_upload_bytes: u64,
    /// Most attachments one report or follow-up may name.
    pub max_attachments: usize,
    /// Most upload sessions open (created, not yet attached) at once, server-wide.
    pub max_open_uploads: usize,
    /// Leading zero bits a proof-of-work stamp must have.
    pub pow_bits: u8,
    /// Seconds a whole ordinary request may take.
    pub request_timeout_secs: u64,
    /// Seconds a client may take to send its request headers.
    pub header_read_timeout_secs: u64,
    /// Seconds a streamed upload may go without sending a byte.
    pub upload_idle_timeout_secs: u64,
    /// Requests handled at once; more wait.
    pub concurrency: usize,
    /// Open connections at once; more are closed on accept.
    pub max_connections: usize,
    /// Largest reply bundle an investigator may import (read whole into memory before
    /// anything is stored, so keep it modest).
    pub max_reply_bundle: usize,
    /// Seconds a mailbox challenge stays valid.
    pub challenge_ttl_secs: u64,
    /// Seconds a mailbox session stays valid.
    pub mailbox_session_ttl_secs: u64,
    /// Bring-your-own-ciphertext submissions accepted per minute, server-wide (that form
    /// has no script, so no proof of work).
    pub byo_per_minute: u32,
    /// Days an unattached upload is kept before it is swept.
    pub upload_expiry_days: u16,
    /// Days a case is kept after the day it was submitted; older cases are deleted by the
    /// hourly sweep, leaving a tombstone. 0 keeps cases until the desk deletes them.
    pub retention_days: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_json_body: 2 * 1024 * 1024,
            max_upload_bytes: max_sealed_attachment(),
            max_attachments: limits::MAX_ATTACHMENTS,
            max_open_uploads: 10_000,
            pow_bits: 18,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            upload_idle_timeout_secs: 60,
            concurrency: 256,
            max_connections: 1024,
            max_reply_bundle: 64 * 1024 * 1024,
            challenge_ttl_secs: 300,
            mailbox_session_ttl_secs: 900,
            byo_per_minute: 30,
            upload_expiry_days: 7,
            retention_days: 0,
        }
    }
}

/// The largest sealed attachment the protocol allows: an age header, the 16-byte payload
/// nonce, the padded plaintext of the largest attachment and one 16-byte tag per chunk.
pub fn max_sealed_attachment() -> u64 {
    let padded = peluit_proto::seal::padded_len(limits::MAX_ATTACHMENT_LEN);
    let chunks = padded.div_ceil(limits::CHUNK_SIZE as u64);
    limits::MAX_HEADER_LEN as u64 + 16 + padded + chunks * 16
}

impl Limits {
    /// Refuses limits looser than the protocol's or that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_upload_bytes == 0 || self.max_upload_bytes > max_sealed_attachment() {
            bail!(
                "limits.max_upload_bytes must be between 1 and {} (the protocol's largest \
                 sealed attachment)",
                max_sealed_attachment()
            );
        }
        if self.max_attachments > limits::MAX_ATTACHMENTS {
            bail!(
                "limits.max_attachments must be at most {}",
                limits::MAX_ATTACHMENTS
            );
        }
        // The JSON body must hold a base64 envelope of the protocol's largest size, or
        // reporters with long reports could never submit.
        let min_json = limits::MAX_ENVELOPE_LEN.div_ceil(3) * 4 + 64 * 1024;
        if self.max_json_body < min_json {
            bail!("limits.max_json_body must be at least {min_json} bytes");
        }
        if self.pow_bits > 40 {
            bail!("limits.pow_bits must be at most 40");
        }
        if self.retention_days > 36_500 {
            bail!("limits.retention_days must be at most 36500 (0 keeps cases until deleted)");
        }
        for (name, value) in [
            ("request_timeout_secs", self.request_timeout_secs),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("upload_idle_timeout_secs", self.upload_idle_timeout_secs),
            ("challenge_ttl_secs", self.challenge_ttl_secs),
            ("mailbox_session_ttl_secs", self.mailbox_session_ttl_secs),
        ] {
            if value == 0 || value > 86_400 {
                bail!("limits.{name} must be between 1 and 86400 seconds");
            }
        }
        if self.concurrency == 0 || self.max_connections == 0 || self.max_open_uploads == 0 {
            bail!("limits.concurrency, max_connections and max_open_uploads must be positive");
        }
        // A bundle must fit one largest sealed reply with its framing.
        let min_bundle = peluit_proto::reply::MAX_SEALED_REPLY_JSON_LEN + 64 * 1024;
        if self.max_reply_bundle < min_bundle {
            bail!(
                "limits.max_reply_bundle must be at least {min_bundle} bytes (one largest reply)"
            );
        }
        Ok(())
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Header-read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// Upload idle timeout.
    pub fn upload_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_idle_timeout_secs)
    }
}

/// One inspectorate served by this deployment and the manifest key it pins.
#[derive(Clone, Debug)]
pub struct Institution {
    /// The institution's id (in URLs and store keys).
    pub id: InstitutionId,
    /// Its display name, for the plain HTML form.
    pub name: String,
    /// The manifest key's public half: only manifests signed by it are published.
    pub manifest_key: VerifyingKey,
}

/// A complete, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The store's data directory.
    pub data_dir: PathBuf,
    /// Institutions served.
    pub institutions: Vec<Institution>,
    /// Limits.
    pub limits: Limits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    institution: Vec<FileInstitution>,
    #[serde(default)]
    limits: Limits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInstitution {
    id: String,
    name: String,
    manifest_key: String,
}

/// Values given on the command line; they win over the environment and the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Reads `path` (if given), then `PELUIT_LISTEN`, `PELUIT_DATA_DIR` and
    /// `PELUIT_POW_BITS` from `env`, then `flags`; validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> anyhow::Result<Self> {
        let mut file: FileConfig = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "cannot read the config file {}; check the path given to --config",
                        path.display()
                    )
                })?;
                Self::parse_file(&text)
                    .with_context(|| format!("the config file {} is not valid", path.display()))?
            }
            None => FileConfig::default(),
        };
        if let Some(listen) = env("PELUIT_LISTEN") {
            file.listen = Some(listen);
        }
        if let Some(dir) = env("PELUIT_DATA_DIR") {
            file.data_dir = Some(dir.into());
        }
        if let Some(bits) = env("PELUIT_POW_BITS") {
            file.limits.pow_bits = bits
                .parse()
                .context("PELUIT_POW_BITS must be a whole number from 0 to 40")?;
        }
        if let Some(listen) = &flags.listen {
            file.listen = Some(listen.clone());
        }
        if let Some(dir) = &flags.data_dir {
            file.data_dir = Some(dir.clone());
        }
        Self::from_file(file)
    }

    fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))
    }

    fn from_file(file: FileConfig) -> anyhow::Result<Self> {
        let listen_text = file.listen.context(
            "no listen address: set `listen = \"127.0.0.1:8080\"`, PELUIT_LISTEN or --listen",
        )?;
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("the listen address {listen_text:?} is not IP:PORT, e.g. 127.0.0.1:8080")
        })?;
        let data_dir = file.data_dir.context(
            "no data directory: set `data_dir = \"/var/lib/peluit\"`, PELUIT_DATA_DIR or --data-dir",
        )?;
        if file.institution.is_empty() {
            bail!(
                "no institution configured: add an [[institution]] with id, name and \
                 manifest_key (see docs/operating.md)"
            );
        }
        let mut institutions = Vec::new();
        for entry in file.institution {
            let id: InstitutionId = entry.id.parse().map_err(|_| {
                anyhow::anyhow!(
                    "institution id {:?} is not 1-64 characters of a-z, 0-9 and -",
                    entry.id
                )
            })?;
            let manifest_key: VerifyingKey = entry.manifest_key.parse().map_err(|_| {
                anyhow::anyhow!(
                    "manifest_key of institution {id} is not a base64 Ed25519 public key; \
                     copy it from the desk's `manifest key` output"
                )
            })?;
            if institutions.iter().any(|i: &Institution| i.id == id) {
                bail!("institution {id} is configured twice; keep one [[institution]] entry");
            }
            if entry.name.is_empty() || entry.name.len() > limits::MAX_SHORT_TEXT {
                bail!(
                    "institution {id} needs a name of 1 to {} bytes",
                    limits::MAX_SHORT_TEXT
                );
            }
            institutions.push(Institution {
                id,
                name: entry.name,
                manifest_key,
            });
        }
        file.limits.validate()?;
        Ok(Self {
            listen,
            data_dir,
            institutions,
            limits: file.limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    fn load(text: &str, env: &[(&str, &str)], flags: &Overrides) -> anyhow::Result<Config> {
        let file = Config::parse_file(text)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut merged = file;
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if let Some(l) = lookup("PELUIT_LISTEN") {
            merged.listen = Some(l);
        }
        if let Some(l) = &flags.listen {
            merged.listen = Some(l.clone());
        }
        Config::from_file(merged)
    }

    #[test]
    fn a_complete_file_loads_and_flags_win() {
        let text = format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/tmp/x\"\n[[institution]]\nid = \"itjen\"\n\
             name = \"Itjen\"\nmanifest_key = \"{KEY}\"\n[limits]\npow_bits = 8\n"
        );
        let flags = Overrides {
            listen: Some("127.0.0.1:3".into()),
            data_dir: None,
        };
        let config = load(&text, &[("PELUIT_LISTEN", "127.0.0.1:2")], &flags).unwrap();
        assert_eq!(config.listen.port(), 3);
        assert_eq!(config.limits.pow_bits, 8);
        let config = load(
            &text,
            &[("PELUIT_LISTEN", "127.0.0.1:2")],
            &Overrides::default(),
        );
        assert_eq!(config.unwrap().listen.port(), 2);
    }

    #[test]
    fn errors_say_what_to_do() {
        let err = load("data_dir = \"/x\"", &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        let err = load(
            "listen = \"nope\"\ndata_dir = \"/x\"",
            &[],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("IP:PORT"), "{err}");
        let err = Config::parse_file("lisen = 1").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let text = "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\n[[institution]]\nid = \"A\"\n\
                    name = \"n\"\nmanifest_key = \"k\"\n";
        let err = load(text, &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("a-z"), "{err}");
        let text = format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/x\"\n[[institution]]\nid = \"a\"\n\
             name = \"n\"\nmanifest_key = \"{KEY}\"\n[limits]\nmax_attachments = 99\n"
        );
        let err = load(&text, &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("max_attachments"), "{err}");
    }
}
