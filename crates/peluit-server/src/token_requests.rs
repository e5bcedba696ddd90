//! Token requests: `token issue|revoke` run while a server holds the store spool one file
//! each in `DATA_DIR/token-requests/`; the server applies them at start and on every reload.
//!
//! A request holds only what the store itself would hold: the institution, the token's
//! SHA-256, and for an issue its label and day. Never the token. Each file is written
//! whole (temporary file, fsync, rename) and applied whole through the store's token API
//! (durable on return), then removed; a file that does not parse is left where it is and
//! named in the log, so that nothing is ever applied in part (docs/operating.md#tokens,
//! docs/storage.md#layout).

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::limits::MAX_SHORT_TEXT;
use peluit_store::{CiphertextStore, TokenHash};
use serde::{Deserialize, Serialize};

/// The spool folder's name inside the data directory.
pub const DIR_NAME: &str = "token-requests";
/// A request file is a few hundred bytes; anything longer is not one.
pub const MAX_FILE_LEN: u64 = 4096;
/// Prefix of a request file still being written by a `token` command.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Why a request cannot be made or a request file cannot be read. Messages never quote
/// the file's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// The label is empty or over 256 bytes.
    #[error("the label must be 1 to 256 bytes")]
    Label,
    /// The file is not a request record in its exact canonical form.
    #[error("not a token request record ({0})")]
    Malformed(&'static str),
    /// The file's name does not match the request inside it.
    #[error("its name does not match the request inside it")]
    Misnamed,
}

/// One spooled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRequest {
    /// Store a newly issued token's hash.
    Issue {
        /// The institution the token is for.
        institution: InstitutionId,
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// The operator's label for it.
        label: String,
        /// The day it was issued.
        created: Day,
    },
    /// Remove a token's hash.
    Revoke {
        /// The institution the token is for.
        institution: InstitutionId,
        /// SHA-256 of the token.
        hash: [u8; 32],
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Issue,
    Revoke,
}

/// The file's JSON: `serde_json::to_vec` of this, fields in this order, `"version": 1`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u8,
    kind: Kind,
    institution: InstitutionId,
    hash: String,
    label: Option<String>,
    created: Option<Day>,
}

const VERSION: u8 = 1;

/// The label rule `token issue` has always applied.
pub fn check_label(label: &str) -> Result<(), RequestError> {
    if label.is_empty() || label.len() > MAX_SHORT_TEXT {
        return Err(RequestError::Label);
    }
    Ok(())
}

impl TokenRequest {
    /// A request to store a token's hash; the label must pass [`check_label`].
    pub fn issue(
        institution: InstitutionId,
        hash: [u8; 32],
        label: &str,
        created: Day,
    ) -> Result<Self, RequestError> {
        check_label(label)?;
        Ok(Self::Issue {
            institution,
            hash,
            label: label.to_owned(),
            created,
        })
    }

    /// The institution the request is for.
    pub fn institution(&self) -> &InstitutionId {
        match self {
            Self::Issue { institution, .. } | Self::Revoke { institution, .. } => institution,
        }
    }

    fn hash(&self) -> &[u8; 32] {
        match self {
            Self::Issue { hash, .. } | Self::Revoke { hash, .. } => hash,
        }
    }

    /// `issue-<hash hex>.json` or `revoke-<hash hex>.json`: one file per token and action,
    /// so a repeated revocation replaces its own file.
    pub fn file_name(&self) -> String {
        let kind = match self {
            Self::Issue { .. } => "issue",
            Self::Revoke { .. } => "revoke",
        };
        format!("{kind}-{}.json", hex::encode(self.hash()))
    }

    fn record(&self) -> Record {
        let (kind, label, created) = match self {
            Self::Issue { label, created, .. } => {
                (Kind::Issue, Some(label.clone()), Some(*created))
            }
            Self::Revoke { .. } => (Kind::Revoke, None, None),
        };
        Record {
            version: VERSION,
            kind,
            institution: self.institution().clone(),
            hash: hex::encode(self.hash()),
            label,
            created,
        }
    }

    /// The file's bytes (canonical JSON).
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, integers and days always serializes.
        serde_json::to_vec(&self.record()).unwrap_or_default()
    }

    /// Reads a request file: strict JSON with only the record's fields, version 1, exactly
    /// the bytes [`Self::to_json`] writes, a well-formed hash and label, under the name
    /// [`Self::file_name`] gives it.
    pub fn parse(file_name: &str, bytes: &[u8]) -> Result<Self, RequestError> {
        let record: Record = serde_json::from_slice(bytes)
            .map_err(|_| RequestError::Malformed("not the record's JSON"))?;
        if record.version != VERSION {
            return Err(RequestError::Malformed("unknown version"));
        }
        let hash = peluit_proto::encoding::unhex_array::<32>(&record.hash, "token hash")
            .map_err(|_| RequestError::Malformed("the hash is not 64 lowercase hex digits"))?;
        let request = match (record.kind, record.label, record.created) {
            (Kind::Issue, Some(label), Some(created)) => {
                Self::issue(record.institution, hash, &label, created)?
            }
            (Kind::Revoke, None, None) => Self::Revoke {
                institution: record.institution,
                hash,
            },
            _ => return Err(RequestError::Malformed("fields do not fit its kind")),
        };
        if request.to_json() != bytes {
            return Err(RequestError::Malformed("not in canonical form"));
        }
        if request.file_name() != file_name {
            return Err(RequestError::Misnamed);
        }
        Ok(request)
    }
}

/// The spool folder of the store in `data_dir`.
pub fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR_NAME)
}

/// Writes `request` into the spool of the store in `data_dir` (folder 0700, file 0600):
/// a temporary file, fsync, rename, fsync of the folder. Refuses, writing nothing, when run
/// by another user than the data directory's owner, whose server could not read the file.
pub fn spool(data_dir: &Path, request: &TokenRequest) -> io::Result<PathBuf> {
    let dir = spool_dir(data_dir);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => File::open(data_dir)?.sync_all()?,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        if file.metadata()?.uid() != fs::metadata(data_dir)?.uid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "this user does not own the data directory, so the server could not read the \
                 request",
            ));
        }
        file.write_all(&request.to_json())?;
        file.sync_all()?;
        let path = dir.join(request.file_name());
        fs::rename(&temp, &path)?;
        File::open(&dir)?.sync_all()?;
        Ok(path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// How many request files wait in the spool (0 when there is none).
pub fn pending(data_dir: &Path) -> io::Result<usize> {
    match fs::read_dir(spool_dir(data_dir)) {
        Ok(entries) => Ok(entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .count()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// What one pass over the spool did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Tokens stored.
    pub issued: usize,
    /// Tokens removed.
    pub revoked: usize,
    /// One line per file not applied (or applied with a remark), naming the file and why,
    /// never its content.
    pub problems: Vec<String>,
}

impl Applied {
    /// One line for the log, e.g. `token requests: 1 issued, 0 revoked, 1 not applied`.
    pub fn describe(&self) -> String {
        format!(
            "token requests: {} issued, {} revoked, {} not applied",
            self.issued,
            self.revoked,
            self.problems.len()
        )
    }

    /// Whether there was nothing to report.
    pub fn is_empty(&self) -> bool {
        self.issued == 0 && self.revoked == 0 && self.problems.is_empty()
    }

    /// Logs one line per problem and one summary line, nothing when there was nothing.
    pub fn log(&self) {
        for problem in &self.problems {
            tracing::warn!("{problem}");
        }
        if !self.is_empty() {
            tracing::info!("{}", self.describe());
        }
    }
}

fn read_request(dir: &Path, name: &str) -> Result<TokenRequest, String> {
    let path = dir.join(name);
    let meta = fs::symlink_metadata(&path).map_err(|e| format!("cannot read it ({e})"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(RequestError::Malformed("too long").to_string());
    }
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|file| file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read it ({e})"))?;
    TokenRequest::parse(name, &bytes).map_err(|e| e.to_string())
}

/// Applies every request waiting in the spool of the store in `data_dir`, for the
/// institutions in `served`: issues first, then revocations, so a token issued and
/// revoked between two reloads ends revoked. Each applied request is durable in the store
/// before its file is removed; a crash in between applies it again harmlessly (an issue
/// already stored, a revocation already done). Files that do not parse, requests for an
/// institution not served (yet) and requests the store refuses stay in place and are
/// reported; a revocation of a token the store does not have is reported and removed.
pub fn apply_pending(
    data_dir: &Path,
    store: &dyn CiphertextStore,
    served: &[InstitutionId],
) -> Applied {
    let dir = spool_dir(data_dir);
    let mut applied = Applied::default();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return applied,
        Err(error) => {
            applied.problems.push(format!(
                "cannot list the token requests in {} ({error}); they wait for the next reload",
                dir.display()
            ));
            return applied;
        }
    };
    let mut requests = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                applied.problems.push(format!(
                    "cannot list the token requests in {} ({error}); the rest wait for the \
                     next reload",
                    dir.display()
                ));
                break;
            }
        };
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            applied.problems.push(
                "a file in token-requests/ whose name is not UTF-8 is not a token request; \
                 left in place"
                    .to_owned(),
            );
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            // Being written by a `token` command right now, or left by one that was
            // interrupted: never a request until it is renamed.
            continue;
        }
        match read_request(&dir, &name) {
            Ok(request) => requests.push((name, request)),
            Err(why) => applied.problems.push(format!(
                "token request file {name} not applied and left in place: {why}; remove it and \
                 run the token command again"
            )),
        }
    }
    requests.sort_by_key(|(name, request)| {
        (matches!(request, TokenRequest::Revoke { .. }), name.clone())
    });
    let mut removed = false;
    for (name, request) in requests {
        if !served.contains(request.institution()) {
            applied.problems.push(format!(
                "token request {name} waits: institution {} is not served; it is applied by \
                 the reload that serves it",
                request.institution()
            ));
            continue;
        }
        let outcome = match &request {
            TokenRequest::Issue {
                institution,
                hash,
                label,
                created,
            } => match store.put_token_hash(
                institution,
                TokenHash::from_bytes(*hash),
                label,
                *created,
            ) {
                Ok(()) => {
                    applied.issued += 1;
                    Ok(())
                }
                // Stored by an earlier pass that stopped before removing the file.
                Err(peluit_store::Error::Conflict(_)) => Ok(()),
                Err(error) => Err(error),
            },
            TokenRequest::Revoke { institution, hash } => {
                match store.revoke_token(institution, &TokenHash::from_bytes(*hash)) {
                    Ok(()) => {
                        applied.revoked += 1;
                        Ok(())
                    }
                    Err(peluit_store::Error::NotFound(_)) => {
                        applied.problems.push(format!(
                            "token request {name}: institution {institution} has no such token \
                             (already revoked, or a mistyped hash: check `token list`); removed"
                        ));
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
        };
        if let Err(error) = outcome {
            applied.problems.push(format!(
                "token request {name} not applied: the store refused it ({error}); left in \
                 place for the next reload"
            ));
            continue;
        }
        match fs::remove_file(dir.join(&name)) {
            Ok(()) => removed = true,
            Err(error) => applied.problems.push(format!(
                "token request {name} was applied but its file cannot be removed ({error}); \
                 applying it again changes nothing"
            )),
        }
    }
    if removed && let Err(error) = File::open(&dir).and_then(|d| d.sync_all()) {
        applied.problems.push(format!(
            "cannot sync {} after removing applied requests ({error}); applying them again \
             changes nothing",
            dir.display()
        ));
    }
    applied
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use peluit_store::SledStore;

    use super::*;

    fn id(text: &str) -> InstitutionId {
        text.parse().unwrap()
    }

    fn day() -> Day {
        Day::new(2026, 11, 28).unwrap()
    }

    #[test]
    fn the_file_format_is_pinned() {
        let issue = TokenRequest::issue(id("dinas-b"), [0xab; 32], "meja 1", day()).unwrap();
        let ab = "ab".repeat(32);
        assert_eq!(issue.file_name(), format!("issue-{ab}.json"));
        assert_eq!(
            String::from_utf8(issue.to_json()).unwrap(),
            format!(
                r#"{{"version":1,"kind":"issue","institution":"dinas-b","hash":"{ab}","label":"meja 1","created":"2026-11-28"}}"#
            )
        );
        let revoke = TokenRequest::Revoke {
            institution: id("dinas-b"),
            hash: [0xab; 32],
        };
        assert_eq!(revoke.file_name(), format!("revoke-{ab}.json"));
        assert_eq!(
            String::from_utf8(revoke.to_json()).unwrap(),
            format!(
                r#"{{"version":1,"kind":"revoke","institution":"dinas-b","hash":"{ab}","label":null,"created":null}}"#
            )
        );
        for request in [issue, revoke] {
            let parsed = TokenRequest::parse(&request.file_name(), &request.to_json()).unwrap();
            assert_eq!(parsed, request);
        }
    }

    #[test]
    fn anything_but_the_exact_record_under_its_name_is_refused() {
        let issue = TokenRequest::issue(id("dinas-b"), [7; 32], "meja", day()).unwrap();
        let name = issue.file_name();
        let json = String::from_utf8(issue.to_json()).unwrap();
        let malformed = |text: &str| {
            let error = TokenRequest::parse(&name, text.as_bytes()).unwrap_err();
            assert!(
                matches!(error, RequestError::Malformed(_)),
                "{text}: {error}"
            );
        };
        malformed("");
        malformed("peluit_tok_0123");
        malformed(&json.replace('}', r#","token":"peluit_tok_00"}"#));
        malformed(&json.replace(r#""version":1"#, r#""version":2"#));
        malformed(&json.replace(r#""version":1,"#, r#""version":1, "#));
        malformed(&json.replace(&"07".repeat(32), &"07".repeat(31)));
        malformed(&json.replace(&"07".repeat(32), &"0A".repeat(32)));
        malformed(&json.replace(r#""kind":"issue""#, r#""kind":"revoke""#));
        malformed(&json.replace("dinas-b", "Dinas B"));
        assert_eq!(
            TokenRequest::parse(&name, json.replace("meja", "").as_bytes()),
            Err(RequestError::Label)
        );
        let long = "x".repeat(257);
        assert_eq!(
            TokenRequest::parse(&name, json.replace("meja", &long).as_bytes()),
            Err(RequestError::Label)
        );
        assert_eq!(
            TokenRequest::parse(&name.replace("issue", "revoke"), json.as_bytes()),
            Err(RequestError::Misnamed)
        );
        assert_eq!(
            TokenRequest::issue(id("dinas-b"), [7; 32], "", day()),
            Err(RequestError::Label)
        );
    }

    #[test]
    fn spooled_files_are_private_whole_and_hold_no_token() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("store");
        fs::create_dir(&data).unwrap();
        let token = crate::tokens::IssuedToken::generate();
        let request = TokenRequest::issue(id("dinas-b"), token.hash(), "meja", day()).unwrap();
        let path = spool(&data, &request).unwrap();
        let folder = spool_dir(&data);
        assert_eq!(path, folder.join(request.file_name()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&path), 0o600);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes, request.to_json());
        let secret = token.expose_secret();
        assert!(!String::from_utf8(bytes).unwrap().contains(&secret[11..]));
        let names: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [request.file_name().as_str()]);
        assert_eq!(pending(&data).unwrap(), 1);
        assert_eq!(pending(&dir.path().join("elsewhere")).unwrap(), 0);
        // A store that does not exist has no spool to write into.
        assert!(spool(&dir.path().join("missing"), &request).is_err());
    }

    #[test]
    fn pending_requests_apply_whole_and_bad_ones_stay_unapplied() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("store");
        let store = Arc::new(SledStore::open(&data).unwrap());
        let (b, c) = (id("dinas-b"), id("dinas-c"));
        let served = [id("itjen"), b.clone()];
        // Nothing to do without a spool folder.
        assert_eq!(
            apply_pending(&data, store.as_ref(), &served),
            Applied::default()
        );

        let kept = TokenRequest::issue(b.clone(), [1; 32], "meja-1", day()).unwrap();
        let dropped = TokenRequest::issue(b.clone(), [2; 32], "meja-2", day()).unwrap();
        let revoke_dropped = TokenRequest::Revoke {
            institution: b.clone(),
            hash: [2; 32],
        };
        let unknown = TokenRequest::issue(c.clone(), [3; 32], "meja-c", day()).unwrap();
        let no_such = TokenRequest::Revoke {
            institution: b.clone(),
            hash: [4; 32],
        };
        for request in [&revoke_dropped, &kept, &dropped, &unknown, &no_such] {
            spool(&data, request).unwrap();
        }
        let folder = spool_dir(&data);
        let corrupt = format!("issue-{}.json", "05".repeat(32));
        fs::write(folder.join(&corrupt), b"{\"version\":1,\"kind\":").unwrap();
        fs::write(folder.join("notes.txt"), b"hello").unwrap();
        fs::write(folder.join(".tmp-0011223344556677"), b"{").unwrap();

        let applied = apply_pending(&data, store.as_ref(), &served);
        assert_eq!((applied.issued, applied.revoked), (2, 1), "{applied:?}");
        let problems = applied.problems.join("\n");
        assert_eq!(applied.problems.len(), 4, "{problems}");
        assert!(problems.contains(&format!("{corrupt} not applied and left in place")));
        assert!(problems.contains("notes.txt not applied and left in place"));
        assert!(problems.contains("institution dinas-c is not served"));
        assert!(problems.contains(&format!(
            "token request {}: institution dinas-b has no such token",
            no_such.file_name()
        )));
        assert!(!problems.contains("\"version\""), "content never quoted");
        assert_eq!(
            applied.describe(),
            "token requests: 2 issued, 1 revoked, 4 not applied"
        );

        let stored: Vec<_> = store
            .tokens(&b)
            .unwrap()
            .into_iter()
            .map(|t| (t.hash.as_bytes().to_vec(), t.label))
            .collect();
        assert_eq!(stored, [(vec![1; 32], "meja-1".to_owned())]);
        assert!(store.tokens(&c).unwrap().is_empty());
        let mut left: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".tmp-0011223344556677".to_owned(),
                unknown.file_name(),
                corrupt.clone(),
                "notes.txt".to_owned()
            ]
        );

        // Once the institution is served, its waiting request applies; the bad files stay.
        let applied = apply_pending(&data, store.as_ref(), &[b.clone(), c.clone()]);
        assert_eq!((applied.issued, applied.revoked), (1, 0));
        assert_eq!(applied.problems.len(), 2, "{:?}", applied.problems);
        assert_eq!(store.tokens(&c).unwrap().len(), 1);

        // Applying a request again after a crash that kept its file changes nothing.
        spool(&data, &kept).unwrap();
        let applied = apply_pending(&data, store.as_ref(), &served);
        assert_eq!((applied.issued, applied.revoked), (0, 0));
        assert_eq!(store.tokens(&b).unwrap().len(), 1);
        assert!(!folder.join(kept.file_name()).exists());
    }
}
