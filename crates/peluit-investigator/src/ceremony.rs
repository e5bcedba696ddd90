//! The key ceremony: new investigator, escrow and manifest keys, and manifests built,
//! signed, rotated and installed, each printed with the fingerprint words that posters
//! show (docs/desk.md#key-ceremony).

use std::path::Path;

use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SealIdentity, SigningKey, VerifyingKey};
use peluit_proto::manifest::{
    FormDefinition, Institution, MANIFEST_VERSION, Manifest, ManifestKey, Purpose, SignedManifest,
    VerifyPolicy, fingerprint_hex, fingerprint_words,
};
use peluit_proto::wordlist::Language;
use serde::Serialize;

use crate::desk::{Desk, manifest_error};
use crate::error::{DeskError, DeskResult};
use crate::fsutil;
use crate::keyfile::{self, InvestigatorKeys};
use crate::secrets::Passphrase;

/// A key's fingerprint in the forms people compare.
#[derive(Debug, Serialize)]
pub struct Fingerprint {
    /// The public key, base64.
    pub public: String,
    /// Eight Indonesian words.
    pub words_id: String,
    /// Eight English words.
    pub words_en: String,
    /// Hex groups.
    pub hex: String,
}

/// The fingerprint of a manifest key.
pub fn fingerprint(key: &VerifyingKey) -> Fingerprint {
    Fingerprint {
        public: key.to_string(),
        words_id: fingerprint_words(key, Language::Id).join(" "),
        words_en: fingerprint_words(key, Language::En).join(" "),
        hex: fingerprint_hex(key),
    }
}

/// The manifest entries for a new investigator, or the escrow, to give to whoever
/// builds the manifest (a JSON array of manifest keys).
pub fn public_entries(entries: &[ManifestKey]) -> Vec<u8> {
    let mut json = serde_json::to_vec_pretty(entries).unwrap_or_default();
    json.push(b'\n');
    json
}

/// Makes an investigator's keys, writes them passphrase-protected to `key_path` and
/// their public half to `<key_path>.public.json`.
pub fn keygen_investigator(
    holder: &str,
    key_path: &Path,
    passphrase: &Passphrase,
) -> DeskResult<Vec<ManifestKey>> {
    let keys = InvestigatorKeys {
        holder: holder.to_owned(),
        identity: SealIdentity::generate(),
        reply_key: SigningKey::generate(),
    };
    let entries = vec![
        ManifestKey {
            holder: holder.to_owned(),
            purpose: Purpose::Seal,
            public: keys.identity.recipient().to_string(),
        },
        ManifestKey {
            holder: holder.to_owned(),
            purpose: Purpose::ReplySigning,
            public: keys.reply_key.verifying_key().to_string(),
        },
    ];
    check_holder(holder)?;
    keyfile::write_investigator(key_path, &keys, passphrase)?;
    fsutil::write_atomic(&public_path(key_path), &public_entries(&entries))?;
    Ok(entries)
}

/// Makes the escrow identity, writes it passphrase-protected to `path` (for the safe)
/// and its public half to `<path>.public.json`.
pub fn keygen_escrow(path: &Path, passphrase: &Passphrase) -> DeskResult<Vec<ManifestKey>> {
    let identity = SealIdentity::generate();
    let entries = vec![ManifestKey {
        holder: "escrow".to_owned(),
        purpose: Purpose::EscrowSeal,
        public: identity.recipient().to_string(),
    }];
    keyfile::write_escrow(path, &identity, passphrase)?;
    fsutil::write_atomic(&public_path(path), &public_entries(&entries))?;
    Ok(entries)
}

/// Makes the institution's manifest key, writes it passphrase-protected to `path`.
pub fn keygen_manifest_key(path: &Path, passphrase: &Passphrase) -> DeskResult<Fingerprint> {
    let key = SigningKey::generate();
    keyfile::write_manifest_key(path, &key, passphrase)?;
    let print = fingerprint(&key.verifying_key());
    fsutil::write_atomic(&public_path(path), format!("{}\n", print.public).as_bytes())?;
    Ok(print)
}

fn public_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".public.json");
    path.with_file_name(name)
}

fn check_holder(holder: &str) -> DeskResult<()> {
    let ok = (1..=64).contains(&holder.len())
        && holder.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b':' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(DeskError::new(
            "bad-holder",
            format!("{holder:?} is not a valid key holder name"),
            "use lowercase letters, digits and _ . : -, for example investigator:ani",
        ))
    }
}

/// Reads manifest-key entries written by `keygen` (JSON arrays), in order.
pub fn read_key_entries(paths: &[std::path::PathBuf]) -> DeskResult<Vec<ManifestKey>> {
    let mut keys = Vec::new();
    for path in paths {
        let bytes = fsutil::read(path)?;
        let mut entries: Vec<ManifestKey> = serde_json::from_slice(&bytes).map_err(|_| {
            DeskError::new(
                "bad-key-list",
                format!("{} is not a list of manifest keys", path.display()),
                "pass the .public.json files that `keygen` wrote",
            )
        })?;
        keys.append(&mut entries);
    }
    Ok(keys)
}

/// What a new manifest is made of.
#[derive(Debug)]
pub struct ManifestPlan {
    /// The institution.
    pub institution: InstitutionId,
    /// Its display name.
    pub name: String,
    /// Origins the page may be served from.
    pub origins: Vec<String>,
    /// The serial.
    pub serial: u64,
    /// First valid day.
    pub valid_from: Day,
    /// Last valid day.
    pub valid_until: Day,
    /// Seal, escrow and reply-signing keys.
    pub keys: Vec<ManifestKey>,
    /// The form; the KWS default when `None`.
    pub form: Option<FormDefinition>,
}

/// Builds and checks an unsigned manifest.
pub fn build_manifest(plan: ManifestPlan) -> DeskResult<Manifest> {
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        institution: Institution {
            id: plan.institution,
            name: plan.name,
        },
        origins: plan.origins,
        serial: plan.serial,
        valid_from: plan.valid_from,
        valid_until: plan.valid_until,
        keys: plan.keys,
        form: plan.form.unwrap_or_else(FormDefinition::kws_default),
    };
    check_unsigned(&manifest)?;
    Ok(manifest)
}

fn check_unsigned(manifest: &Manifest) -> DeskResult<()> {
    manifest.check().map_err(|e| {
        let mut error = manifest_error(&e);
        error.next = "fix the keys, origins or dates and build the manifest again".to_owned();
        error
    })
}

/// Reads an unsigned manifest (as `manifest new` writes it).
pub fn read_unsigned(path: &Path) -> DeskResult<Manifest> {
    let bytes = fsutil::read(path)?;
    serde_json::from_slice(&bytes).map_err(|_| {
        DeskError::new(
            "bad-manifest-file",
            format!("{} is not an unsigned manifest", path.display()),
            "make one with `peluit-investigator manifest new`",
        )
    })
}

/// Signs a checked manifest with the manifest key and verifies the result.
pub fn sign_manifest(manifest: Manifest, key: &SigningKey) -> DeskResult<SignedManifest> {
    check_unsigned(&manifest)?;
    let valid_from = manifest.valid_from;
    let signed = manifest.sign(key);
    signed
        .verify(&VerifyPolicy::new(key.verifying_key(), valid_from))
        .map_err(|e| manifest_error(&e))?;
    Ok(signed)
}

/// The next manifest after `previous`: serial + 1, valid from `today` for `days` days,
/// with `keys` replacing the old keys when given.
pub fn rotate(
    previous: &SignedManifest,
    keys: Option<Vec<ManifestKey>>,
    today: Day,
    days: u32,
) -> DeskResult<Manifest> {
    let mut next = previous.manifest().clone();
    next.serial += 1;
    next.valid_from = today;
    next.valid_until = add_days(today, days)?;
    if let Some(keys) = keys {
        next.keys = keys;
    }
    check_unsigned(&next)?;
    Ok(next)
}

/// `day` plus `days`.
pub fn add_days(day: Day, days: u32) -> DeskResult<Day> {
    Day::from_unix_seconds((day.days_since_epoch() + i64::from(days)) * 86_400).map_err(|_| {
        DeskError::new(
            "bad-date",
            "the validity period runs past year 9999",
            "choose fewer --valid-days",
        )
    })
}

/// Installs a signed manifest on the desk after checking it against the pinned key,
/// today's date and the serials already held.
pub fn install(desk: &Desk, signed: &SignedManifest, today: Day) -> DeskResult<u64> {
    let history = desk.manifest_history()?;
    let mut policy = VerifyPolicy::new(desk.config().manifest_key, today);
    if let Some(newest) = history.last() {
        policy.min_serial = Some(newest.manifest().serial);
        policy.seen_sha256 = Some(newest.manifest_sha256());
    }
    let verified = signed.verify(&policy).map_err(|e| manifest_error(&e))?;
    desk.store_manifest(signed)?;
    Ok(verified.serial())
}
