//! The desk's key files: an investigator's age identity with their reply-signing key, the
//! escrow identity, and the institution's manifest key, each passphrase-protected.
//!
//! Plaintext inside the age file: a line `peluit-desk-key/v1`, then `name: value` lines.
//! Proposed for `peluit-proto::keys` (see the report): the same with a typed API.

use std::path::Path;

use peluit_proto::encoding;
use peluit_proto::keys::{SealIdentity, SigningKey};
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::{DeskError, DeskResult};
use crate::secrets::{Passphrase, read_key_file, write_key_file};

const MAGIC_LINE: &str = "peluit-desk-key/v1";

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// An investigator: age identity and reply-signing key.
    Investigator,
    /// The escrow age identity, kept in a safe.
    Escrow,
    /// The institution's manifest-signing key.
    Manifest,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Investigator => "investigator",
            Self::Escrow => "escrow",
            Self::Manifest => "manifest",
        }
    }
}

/// An investigator's secrets, unlocked for one command. Not `Clone`; `Debug` is redacted.
pub struct InvestigatorKeys {
    /// Who holds them (as listed in the manifest).
    pub holder: String,
    /// Opens reports.
    pub identity: SealIdentity,
    /// Signs replies.
    pub reply_key: SigningKey,
}

impl std::fmt::Debug for InvestigatorKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvestigatorKeys")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

fn render(kind: KeyKind, fields: &[(&str, &str)]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(format!("{MAGIC_LINE}\nkind: {}\n", kind.as_str()));
    for (name, value) in fields {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push('\n');
    }
    text
}

/// Parsed key-file fields; values are wiped on drop.
struct Fields(Vec<(String, Zeroizing<String>)>);

impl Fields {
    fn parse(plaintext: &[u8], expected: KeyKind, path: &Path) -> DeskResult<Self> {
        let bad = || {
            DeskError::new(
                "not-a-key-file",
                format!("{} is not a {} key file", path.display(), expected.as_str()),
                "check the path; each command names the kind of key file it needs",
            )
        };
        let text = std::str::from_utf8(plaintext).map_err(|_| bad())?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC_LINE) {
            return Err(bad());
        }
        let mut fields = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(": ").ok_or_else(bad)?;
            fields.push((name.to_owned(), Zeroizing::new(value.to_owned())));
        }
        let this = Self(fields);
        if this.get("kind") != Some(expected.as_str()) {
            return Err(bad());
        }
        Ok(this)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str, path: &Path) -> DeskResult<&str> {
        self.get(name).ok_or_else(|| {
            DeskError::new(
                "not-a-key-file",
                format!("{} lacks its {name}", path.display()),
                "the key file is damaged: use your backup copy",
            )
        })
    }
}

fn seed_text(key: &SigningKey) -> Zeroizing<String> {
    let seed = key.expose_seed();
    Zeroizing::new(encoding::b64(seed.as_slice()))
}

fn parse_seed(text: &str, path: &Path) -> DeskResult<SigningKey> {
    let mut bytes = encoding::unb64_array::<32>(text, "seed").map_err(|_| {
        DeskError::new(
            "not-a-key-file",
            format!("{} holds a malformed signing key", path.display()),
            "the key file is damaged: use your backup copy",
        )
    })?;
    let seed = Zeroizing::new(bytes);
    // Clear intermediates
    bytes.zeroize();
    Ok(SigningKey::from_seed(&seed))
}

fn parse_identity(text: &str, path: &Path) -> DeskResult<SealIdentity> {
    SealIdentity::parse_secret(text).map_err(|_| {
        DeskError::new(
            "not-a-key-file",
            format!("{} holds a malformed age identity", path.display()),
            "the key file is damaged: use your backup copy",
        )
    })
}

/// Writes an investigator key file.
pub fn write_investigator(
    path: &Path,
    keys: &InvestigatorKeys,
    passphrase: &Passphrase,
) -> DeskResult<()> {
    let identity = keys.identity.expose_secret_string();
    let seed = seed_text(&keys.reply_key);
    let text = render(
        KeyKind::Investigator,
        &[
            ("holder", &keys.holder),
            ("age-identity", &identity),
            ("reply-seed", &seed),
        ],
    );
    write_key_file(path, text.as_bytes(), passphrase)
}

/// Reads an investigator key file.
pub fn read_investigator(path: &Path, passphrase: &Passphrase) -> DeskResult<InvestigatorKeys> {
    let plaintext = read_key_file(path, passphrase)?;
    let fields = Fields::parse(&plaintext, KeyKind::Investigator, path)?;
    Ok(InvestigatorKeys {
        holder: fields.require("holder", path)?.to_owned(),
        identity: parse_identity(fields.require("age-identity", path)?, path)?,
        reply_key: parse_seed(fields.require("reply-seed", path)?, path)?,
    })
}

/// Writes the escrow identity's key file.
pub fn write_escrow(
    path: &Path,
    identity: &SealIdentity,
    passphrase: &Passphrase,
) -> DeskResult<()> {
    let secret = identity.expose_secret_string();
    let text = render(KeyKind::Escrow, &[("age-identity", &secret)]);
    write_key_file(path, text.as_bytes(), passphrase)
}

/// Reads the escrow identity's key file.
pub fn read_escrow(path: &Path, passphrase: &Passphrase) -> DeskResult<SealIdentity> {
    let plaintext = read_key_file(path, passphrase)?;
    let fields = Fields::parse(&plaintext, KeyKind::Escrow, path)?;
    parse_identity(fields.require("age-identity", path)?, path)
}

/// Writes the manifest key's file.
pub fn write_manifest_key(
    path: &Path,
    key: &SigningKey,
    passphrase: &Passphrase,
) -> DeskResult<()> {
    let seed = seed_text(key);
    let text = render(KeyKind::Manifest, &[("manifest-seed", &seed)]);
    write_key_file(path, text.as_bytes(), passphrase)
}

/// Reads the manifest key's file.
pub fn read_manifest_key(path: &Path, passphrase: &Passphrase) -> DeskResult<SigningKey> {
    let plaintext = read_key_file(path, passphrase)?;
    let fields = Fields::parse(&plaintext, KeyKind::Manifest, path)?;
    parse_seed(fields.require("manifest-seed", path)?, path)
}
