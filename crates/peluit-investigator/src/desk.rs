//! The desk folder: its configuration (institution and pinned manifest key), import
//! state, the manifests it has verified, the case folders and the outbox of replies.
//!
//! Layout (docs/desk.md#layout): `desk.json`, `state.json`, `keys/`, `manifests/`,
//! `cases/<case>/`, `outbox/`, `index.html`.

use std::path::{Path, PathBuf};

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId};
use peluit_proto::keys::VerifyingKey;
use peluit_proto::limits::MAX_MANIFEST_LEN;
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use serde::{Deserialize, Serialize};

use crate::error::{DeskError, DeskResult, describe_proto};
use crate::fsutil;

/// Version of the desk's own JSON files.
pub const DESK_FORMAT_VERSION: u64 = 1;

/// `desk.json`: which institution this desk serves and the manifest key it pins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// Always [`DESK_FORMAT_VERSION`].
    pub version: u64,
    /// The institution.
    pub institution: InstitutionId,
    /// The institution's manifest key, compared with the poster's fingerprint at `init`.
    pub manifest_key: VerifyingKey,
}

/// `state.json`: what has been imported and what the server is known to hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskState {
    /// Always [`DESK_FORMAT_VERSION`].
    pub version: u64,
    /// The highest `cursor_to` of an imported export bundle.
    pub cursor_to: u64,
    /// Digests (hex) of export bundles imported.
    pub imported: Vec<String>,
    /// The highest manifest serial seen in an export bundle (what the server serves).
    pub server_serial: u64,
}

/// An open desk folder.
#[derive(Debug, Clone)]
pub struct Desk {
    root: PathBuf,
    config: DeskConfig,
}

impl Desk {
    /// Creates a desk folder for `institution`, pinning `manifest_key`.
    pub fn init(
        root: &Path,
        institution: InstitutionId,
        manifest_key: VerifyingKey,
    ) -> DeskResult<Self> {
        let config_path = root.join("desk.json");
        if config_path.exists() {
            return Err(DeskError::new(
                "exists",
                format!("{} is already a desk", root.display()),
                "use it as it is, or choose another folder with --desk",
            ));
        }
        for dir in ["keys", "manifests", "cases", "outbox", "outbox/sent"] {
            fsutil::create_dir(&root.join(dir))?;
        }
        let config = DeskConfig {
            version: DESK_FORMAT_VERSION,
            institution,
            manifest_key,
        };
        fsutil::write_atomic(&config_path, &to_json(&config))?;
        let desk = Self {
            root: root.to_owned(),
            config,
        };
        desk.save_state(&DeskState {
            version: DESK_FORMAT_VERSION,
            ..DeskState::default()
        })?;
        Ok(desk)
    }

    /// Opens an existing desk folder.
    pub fn open(root: &Path) -> DeskResult<Self> {
        let path = root.join("desk.json");
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                DeskError::new(
                    "no-desk",
                    format!("{} is not a desk folder (no desk.json)", root.display()),
                    "create one with `peluit-investigator init`, or point --desk at it",
                )
            } else {
                DeskError::io("read", &path, &e)
            }
        })?;
        let config: DeskConfig = parse_json(&bytes, &path)?;
        Ok(Self {
            root: root.to_owned(),
            config,
        })
    }

    /// The desk folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration.
    pub fn config(&self) -> &DeskConfig {
        &self.config
    }

    /// The folder of all cases.
    pub fn cases_dir(&self) -> PathBuf {
        self.root.join("cases")
    }

    /// The folder of one case.
    pub fn case_dir(&self, case: CaseId) -> PathBuf {
        self.cases_dir().join(case.to_string())
    }

    /// The outbox of sealed replies waiting for a reply bundle.
    pub fn outbox_dir(&self) -> PathBuf {
        self.root.join("outbox")
    }

    /// The default investigator key file.
    pub fn investigator_key_path(&self) -> PathBuf {
        self.root.join("keys").join("investigator.key")
    }

    /// Reads `state.json`.
    pub fn state(&self) -> DeskResult<DeskState> {
        let path = self.root.join("state.json");
        parse_json(&fsutil::read(&path)?, &path)
    }

    /// Writes `state.json` atomically.
    pub fn save_state(&self, state: &DeskState) -> DeskResult<()> {
        fsutil::write_atomic(&self.root.join("state.json"), &to_json(state))
    }

    fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// Every manifest this desk has verified, oldest serial first. Each is re-verified
    /// against the pinned key on every read (its dates are checked by the caller).
    pub fn manifest_history(&self) -> DeskResult<Vec<SignedManifest>> {
        let dir = self.manifests_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| DeskError::io("read", &dir, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| DeskError::io("read", &dir, &e))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = fsutil::read(&path)?;
            let signed = SignedManifest::from_json(&bytes).map_err(|e| manifest_error(&e))?;
            self.verify_signature_and_rules(&signed)?;
            out.push(signed);
        }
        out.sort_by_key(|m| m.manifest().serial);
        Ok(out)
    }

    /// The newest manifest, verified for `today`.
    pub fn current_manifest(&self, today: Day) -> DeskResult<VerifiedManifest> {
        let history = self.manifest_history()?;
        let newest = history.last().ok_or_else(|| {
            DeskError::new(
                "no-manifest",
                "this desk has no manifest yet",
                "install the signed manifest with `peluit-investigator manifest install FILE`",
            )
        })?;
        newest
            .verify(&VerifyPolicy::new(self.config.manifest_key, today))
            .map_err(|e| {
                let mut error = manifest_error(&e);
                error.next = "sign a new manifest (`manifest rotate`), install it, and send it \
                              to the server in the next reply bundle"
                    .to_owned();
                error
            })
    }

    /// Verifies signature and self-consistency, whatever the day: old manifests stay
    /// usable for the form checks of reports sealed under them.
    pub fn verify_signature_and_rules(
        &self,
        signed: &SignedManifest,
    ) -> DeskResult<VerifiedManifest> {
        // The policy's day is the manifest's own first day, so that only the signature and
        // the manifest's rules decide here. docs/protocol.md#manifest
        let policy = VerifyPolicy::new(self.config.manifest_key, signed.manifest().valid_from);
        let verified = signed.verify(&policy).map_err(|e| manifest_error(&e))?;
        if verified.institution_id() != &self.config.institution {
            return Err(DeskError::new(
                "wrong-institution",
                format!(
                    "the manifest is for {}, this desk for {}",
                    verified.institution_id(),
                    self.config.institution
                ),
                "use the manifest of this desk's institution",
            ));
        }
        Ok(verified)
    }

    /// Stores a verified manifest in the history. Refuses a different manifest with a
    /// serial already held (docs/protocol.md#manifest, serials only grow).
    pub fn store_manifest(&self, signed: &SignedManifest) -> DeskResult<bool> {
        let verified = self.verify_signature_and_rules(signed)?;
        let path = self
            .manifests_dir()
            .join(format!("{:016}.json", verified.serial()));
        if path.exists() {
            let held = fsutil::read(&path)?;
            if held == signed.to_json() {
                return Ok(false);
            }
            return Err(DeskError::new(
                "serial-reused",
                format!(
                    "a different manifest with serial {} is already installed",
                    verified.serial()
                ),
                "a new manifest needs a higher serial: sign it with `manifest rotate`",
            ));
        }
        fsutil::write_atomic(&path, &signed.to_json())?;
        Ok(true)
    }

    /// Lists the ids of every case folder.
    pub fn case_ids(&self) -> DeskResult<Vec<CaseId>> {
        let dir = self.cases_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| DeskError::io("read", &dir, &e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| DeskError::io("read", &dir, &e))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Finds a case by its full id or a unique prefix of at least 4 hex digits.
    pub fn resolve_case(&self, text: &str) -> DeskResult<CaseId> {
        let ids = self.case_ids()?;
        let text = text.trim().to_ascii_lowercase();
        let matches: Vec<_> = if text.len() >= 4 {
            ids.iter()
                .filter(|id| id.to_string().starts_with(&text))
                .collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => Ok(**one),
            [] => Err(DeskError::new(
                "no-such-case",
                format!("no case {text} on this desk"),
                "list the cases with `peluit-investigator cases list`",
            )),
            _ => Err(DeskError::new(
                "ambiguous-case",
                format!("{text} matches several cases"),
                "type more digits of the case id",
            )),
        }
    }

    /// Removes temporary folders and files a crashed import left behind.
    pub fn clean_temporaries(&self) {
        if let Ok(entries) = std::fs::read_dir(self.cases_dir()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

/// Reads the manifest file a command names.
pub fn read_signed_manifest(path: &Path) -> DeskResult<SignedManifest> {
    let bytes = fsutil::read(path)?;
    if bytes.len() > MAX_MANIFEST_LEN {
        return Err(DeskError::new(
            "too-large",
            format!("{} is larger than any manifest", path.display()),
            "check the path",
        ));
    }
    SignedManifest::from_json(&bytes).map_err(|e| manifest_error(&e))
}

/// A manifest refusal, with the rule it broke.
pub fn manifest_error(error: &peluit_proto::Error) -> DeskError {
    let (code, what) = describe_proto(error);
    DeskError::new(
        code,
        what,
        "use the manifest signed with this institution's manifest key (compare the \
         fingerprint words with the poster)",
    )
}

/// Canonical JSON of a desk file.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Parses a desk JSON file strictly.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> DeskResult<T> {
    serde_json::from_slice(bytes).map_err(|_| {
        DeskError::new(
            "damaged-desk-file",
            format!("{} could not be read", path.display()),
            "restore it from the desk's backup; do not edit desk files by hand",
        )
    })
}
