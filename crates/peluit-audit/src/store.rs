//! `peluit-audit store DIR`: walks a copy of a server's data directory, every sled tree,
//! key and value, upload file and token request, and accounts for each byte (docs/storage.md).
//!
//! Each value must be sealed age data with the stanza count of its institution's manifest
//! on its day, a signed manifest, or one of the metadata records of docs/storage.md#records
//! in its exact canonical form; anything else is a finding naming the tree and key. The
//! audit never writes to the directory it audits: sled cannot open a database read-only,
//! so its files are copied to a temporary folder first and sled opens the copy. Upload
//! files and folders must carry epoch times (docs/storage.md#file-times); everything is
//! read with `O_NOATIME`, so the audit does not change an access time either.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::VerifyingKey;
use peluit_proto::manifest::{Purpose, SignedManifest, VerifyPolicy};
use peluit_proto::reply::SealedReply;
use peluit_store::PIECE_LEN;
use rustix::fs::{Dir, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;

use crate::error::{AuditError, AuditResult};
use crate::findings::{Finding, Place, display_key};
use crate::records::{
    self, CaseRec, CaseState, ExportKind, ExportRec, MailboxKind, MailboxRec, PowRec, TokenRec,
    TokenRequestKind, TokenRequestRec, UploadRec, UploadState,
};
use crate::scan::{AgeScanner, Expect, scan_message};

/// The trees of docs/storage.md#layout, in its order.
pub const TREES: [&str; 11] = [
    "manifests",
    "cases",
    "envelopes",
    "uploads",
    "mailbox",
    "mailbox_pieces",
    "export",
    "counters",
    "pow",
    "tokens",
    "purge",
];

/// The folder of token requests waiting for the server's next reload.
const TOKEN_REQUESTS: &str = "token-requests";
/// A token request file is a few hundred bytes.
const MAX_TOKEN_REQUEST: u64 = 4096;
/// sled's own tree, which the store never uses.
const SLED_DEFAULT_TREE: &str = "__sled__default";
const EXPORT_CURSOR: &[u8] = b"export_cursor";
/// Purge target codes (docs/storage.md#deletion).
const PURGE_ENVELOPE: u8 = 2;
const PURGE_FILE: u8 = 4;
const PURGE_MAILBOX: u8 = 6;
/// Read size for upload files.
const READ_BUF: usize = 1 << 20;
/// Per-tree cap on findings for a tree the layout does not have (the count is reported).
const MAX_UNKNOWN_KEYS: usize = 20;

/// How to audit.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Pinned manifest keys, per institution: stored manifests are then verified under
    /// them (signature and rules). Without one, manifests are checked for form and rules
    /// only.
    pub manifest_keys: Vec<(InstitutionId, VerifyingKey)>,
    /// Threads that scan upload files (0: as many as the machine has cores).
    pub threads: usize,
}

/// The outcome of a store audit.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreAudit {
    /// Every problem; empty for a clean store.
    pub findings: Vec<Finding>,
    /// What the server knows, in aggregate.
    pub exposure: BTreeMap<String, Exposure>,
    /// How much was read.
    pub scanned: Scanned,
    /// Remarks that are not findings (pending purges, unverified manifests).
    pub notes: Vec<String>,
}

impl StoreAudit {
    /// Whether the store passed.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Totals read by the audit.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scanned {
    /// sled keys walked.
    pub keys: u64,
    /// Metadata records parsed.
    pub records: u64,
    /// Sealed messages checked (envelopes, follow-ups, replies, upload files).
    pub sealed_items: u64,
    /// Bytes of sealed data checked, in sled and in upload files.
    pub sealed_bytes: u64,
    /// Upload files read.
    pub upload_files: u64,
}

/// The metadata one institution's store exposes, in aggregate: what an attacker who
/// copies the disk learns without any key.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Exposure {
    /// Manifests by serial: validity and recipient count.
    pub manifests: Vec<ManifestSummary>,
    /// Cases submitted per day: `[open, deleted]`.
    pub cases_per_day: BTreeMap<String, [u64; 2]>,
    /// Cases per padded size bucket (bytes).
    pub size_buckets: BTreeMap<u64, u64>,
    /// Uploads by state.
    pub uploads: BTreeMap<String, u64>,
    /// Uploads per declared sealed length (bytes): attachment sizes, padded before
    /// sealing, are visible to the server.
    pub upload_sizes: BTreeMap<u64, u64>,
    /// Mailbox messages per day: `[replies, follow-ups]`.
    pub mailbox_per_day: BTreeMap<String, [u64; 2]>,
    /// Spent proof-of-work stamps per day.
    pub stamps_per_day: BTreeMap<String, u64>,
    /// Investigator tokens: label and day of issue.
    pub tokens: Vec<(String, String)>,
}

/// One stored manifest, as the exposure report lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ManifestSummary {
    /// Its serial.
    pub serial: u64,
    /// First valid day.
    pub valid_from: String,
    /// Last valid day.
    pub valid_until: String,
    /// Seal and escrow recipients: the X25519 stanza count sealed data must have.
    pub recipients: usize,
    /// `verified` under the pinned key, or `not checked` without one.
    pub signature: &'static str,
}

/// What the audit keeps of one manifest to check sealed data against it.
#[derive(Clone, Debug)]
struct ManifestInfo {
    valid_from: Day,
    valid_until: Day,
    recipients: usize,
    reply_signers: Vec<VerifyingKey>,
}

type Inst = String;
type Id16 = [u8; 16];

/// Everything read from the trees, by institution and id.
#[derive(Default)]
struct State {
    findings: Vec<Finding>,
    notes: Vec<String>,
    scanned: Scanned,
    exposure: BTreeMap<Inst, Exposure>,
    manifests: HashMap<Inst, Vec<ManifestInfo>>,
    cases: HashMap<(Inst, Id16), CaseRec>,
    uploads: HashMap<(Inst, Id16), UploadRec>,
    mailbox: HashMap<(Inst, Id16, u64), MailboxRec>,
    /// Purge markers: (institution, target code, id) whose removal is still due.
    pending_purges: std::collections::HashSet<(Inst, u8, Id16)>,
    max_cursor: HashMap<Inst, u64>,
    /// Files and folders opened without `O_NOATIME` (see [`open_unseen`]).
    unseen: AtomicUsize,
}

impl State {
    fn find(&mut self, tree: &str, key: &[u8], why: impl Into<String>) {
        self.findings.push(Finding::key(tree, key, why));
    }

    fn exposure(&mut self, inst: &str) -> &mut Exposure {
        self.exposure.entry(inst.to_owned()).or_default()
    }

    fn cursor_seen(&mut self, inst: &str, cursor: u64) {
        let max = self.max_cursor.entry(inst.to_owned()).or_default();
        *max = (*max).max(cursor);
    }

    /// X25519 stanza counts acceptable for sealed data of `day`: the counts of the
    /// manifests valid that day (a day of slack either side, for a reporter's clock near
    /// midnight); if none was, every manifest's, since the server seals against its
    /// latest manifest whatever its dates.
    fn counts_for(&self, inst: &str, day: Day) -> Vec<usize> {
        let Some(manifests) = self.manifests.get(inst) else {
            return Vec::new();
        };
        let d = day.days_since_epoch();
        let mut counts: Vec<usize> = manifests
            .iter()
            .filter(|m| {
                m.valid_from.days_since_epoch() - 1 <= d
                    && d <= m.valid_until.days_since_epoch() + 1
            })
            .map(|m| m.recipients)
            .collect();
        if counts.is_empty() {
            counts = manifests.iter().map(|m| m.recipients).collect();
        }
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    /// Every stanza count the institution's manifests allow, for data whose day is gone.
    fn counts_for_any(&self, inst: &str) -> Vec<usize> {
        let mut counts: Vec<usize> = self
            .manifests
            .get(inst)
            .map(|ms| ms.iter().map(|m| m.recipients).collect())
            .unwrap_or_default();
        counts.sort_unstable();
        counts.dedup();
        counts
    }

    fn reply_signers(&self, inst: &str) -> Vec<VerifyingKey> {
        self.manifests
            .get(inst)
            .map(|ms| ms.iter().flat_map(|m| m.reply_signers.clone()).collect())
            .unwrap_or_default()
    }
}

/// Audits the data directory `dir`. Returns `Err` only when the audit cannot run (no
/// such folder, no sled database, a file that cannot be read); every problem with the
/// content is a finding.
pub fn audit_store(dir: &Path, options: &StoreOptions) -> AuditResult<StoreAudit> {
    let mut state = State::default();
    let meta = fs::metadata(dir).map_err(|e| AuditError::io("read the data directory", dir, &e))?;
    if !meta.is_dir() {
        return Err(AuditError::new(
            "not-a-directory",
            format!("{} is not a folder", dir.display()),
            "give the server's data directory (data_dir in its configuration)",
        ));
    }
    check_layout(dir, &mut state)?;
    let copy = copy_sled_files(dir, &state.unseen)?;
    {
        let db = sled::Config::new()
            .path(copy.path())
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                AuditError::new(
                    "not-a-store",
                    format!("the copy of {} does not open as a sled database: {e}", dir.display()),
                    "check that this is a Peluit data directory, copied while the server was stopped",
                )
            })?;
        walk_trees(&db, options, &mut state)?;
    }
    scan_upload_files(dir, options, &mut state)?;
    cross_check(&mut state);
    let unseen = state.unseen.into_inner();
    if unseen > 0 {
        state.notes.push(format!(
            "{unseen} files or folders were read without O_NOATIME, which the kernel grants \
             only to their owner: reading them may have set their access times, so a second \
             audit of this copy would report upload files and folders; audit as the copy's \
             owner or as root"
        ));
    }
    let mut findings = state.findings;
    findings.sort_by_key(|f| f.place.to_string());
    findings.dedup();
    Ok(StoreAudit {
        findings,
        exposure: state.exposure,
        scanned: state.scanned,
        notes: state.notes,
    })
}

/// docs/storage.md#layout: `conf`, `db`, `snap.*`, an empty `blobs/`, `uploads/` and
/// `token-requests/`.
fn check_layout(dir: &Path, state: &mut State) -> AuditResult<()> {
    for entry in read_dir(dir, &state.unseen)? {
        let name = entry.name.to_string_lossy().into_owned();
        match (name.as_str(), entry.meta.is_dir()) {
            ("conf" | "db", false) => {}
            (n, false) if n.starts_with("snap.") => {}
            ("blobs", true) => {
                for blob in read_dir(&entry.path, &state.unseen)? {
                    state.findings.push(Finding::file(
                        format!("blobs/{}", blob.name.to_string_lossy()),
                        "a sled blob file: the store keeps every value inline, so a blob is \
                         data written outside the store's path",
                    ));
                }
            }
            ("uploads", true) => {}
            (TOKEN_REQUESTS, true) => check_token_requests(&entry.path, state)?,
            _ => state.findings.push(Finding::file(
                name,
                "not part of the store layout (docs/storage.md#layout)",
            )),
        }
    }
    Ok(())
}

/// docs/storage.md#layout: each file is one request of a `token` command waiting
/// for the server's next reload, named `issue-<hash>.json` or `revoke-<hash>.json` after
/// the token's SHA-256 it holds, in its exact canonical form. Nothing else: a temporary
/// file left by an interrupted command is a finding too (remove it).
fn check_token_requests(dir: &Path, state: &mut State) -> AuditResult<()> {
    for entry in read_dir(dir, &state.unseen)? {
        let name = entry.name.to_string_lossy().into_owned();
        let rel = format!("{TOKEN_REQUESTS}/{name}");
        let named = ["issue-", "revoke-"].iter().find_map(|kind| {
            let hash = name.strip_prefix(kind)?.strip_suffix(".json")?;
            let hex = hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            hex.then_some((*kind, hash.to_owned()))
        });
        let Some((kind, hash)) = named.filter(|_| entry.meta.is_file()) else {
            state.findings.push(Finding::file(
                rel,
                "not a token request file (issue-<64 hex>.json or revoke-<64 hex>.json)",
            ));
            continue;
        };
        let len = entry.meta.len();
        if len > MAX_TOKEN_REQUEST {
            state.findings.push(Finding::file(
                rel,
                format!("a token request of {len} bytes; a real one is a few hundred"),
            ));
            continue;
        }
        let mut bytes = Vec::new();
        open_unseen(&entry.path, OFlags::empty(), &state.unseen)?
            .read_to_end(&mut bytes)
            .map_err(|e| AuditError::io("read", &entry.path, &e))?;
        state.scanned.records += 1;
        let record = match records::parse::<TokenRequestRec>(&bytes, "token request") {
            Ok(record) => record,
            Err(why) => {
                state.findings.push(Finding::file(rel, why));
                continue;
            }
        };
        let fits = match (record.kind, &record.label, record.created) {
            (TokenRequestKind::Issue, Some(_), Some(_)) => kind == "issue-",
            (TokenRequestKind::Revoke, None, None) => kind == "revoke-",
            _ => false,
        };
        if !fits || record.hash != hash {
            state.findings.push(Finding::file(
                rel,
                "token request whose fields do not fit its kind, or whose name does not match \
                 the kind and hash inside it",
            ));
            continue;
        }
        if let Some(label) = &record.label {
            if label.is_empty() || label.len() > 256 {
                state.findings.push(Finding::file(
                    rel,
                    "token label empty or longer than 256 bytes",
                ));
                continue;
            }
            if label_looks_identifying(label) {
                state.findings.push(Finding::file(
                    rel,
                    "token label holds a time of day or an IP address",
                ));
                continue;
            }
        }
        state.notes.push(match (&record.label, record.created) {
            (Some(label), Some(day)) => format!(
                "{rel}: a token for {} (label {label:?}, issued {day}) waits for the server's \
                 next reload",
                record.institution
            ),
            _ => format!(
                "{rel}: a revocation of a token of {} waits for the server's next reload",
                record.institution
            ),
        });
    }
    Ok(())
}

/// One entry of a folder, with its metadata as `lstat` gives it (a symlink is a symlink).
struct Listed {
    name: OsString,
    path: PathBuf,
    meta: fs::Metadata,
}

/// A folder's entries in name order. The folder is listed through an `O_NOATIME` open and
/// each entry's metadata read before anything opens it, so the times seen are the ones
/// the server left, and listing changes none of them.
fn read_dir(dir: &Path, unseen: &AtomicUsize) -> AuditResult<Vec<Listed>> {
    let folder = open_unseen(dir, OFlags::DIRECTORY, unseen)?;
    let listing = |e: Errno| AuditError::io("list", dir, &e.into());
    let mut names = Vec::new();
    for entry in Dir::new(folder).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let meta =
                fs::symlink_metadata(&path).map_err(|e| AuditError::io("read", &path, &e))?;
            Ok(Listed { name, path, meta })
        })
        .collect()
}

/// Copies sled's files to a private temporary folder, so that opening sled (which
/// recovers and writes) never touches the audited directory.
fn copy_sled_files(dir: &Path, unseen: &AtomicUsize) -> AuditResult<tempfile::TempDir> {
    let copy = tempfile::Builder::new()
        .prefix("peluit-audit-")
        .tempdir()
        .map_err(|e| AuditError::io("create a temporary folder in", &std::env::temp_dir(), &e))?;
    if !dir.join("db").is_file() || !dir.join("conf").is_file() {
        return Err(AuditError::new(
            "not-a-store",
            format!("{} has no sled database (conf and db)", dir.display()),
            "give the server's data directory (data_dir in its configuration)",
        ));
    }
    for entry in read_dir(dir, unseen)? {
        let text = entry.name.to_string_lossy();
        if text == "conf" || text == "db" || text.starts_with("snap.") {
            copy_unseen(&entry.path, &copy.path().join(&entry.name), unseen)?;
        } else if text == "blobs" && entry.meta.is_dir() {
            let to = copy.path().join("blobs");
            fs::create_dir_all(&to).map_err(|e| AuditError::io("create", &to, &e))?;
            for blob in read_dir(&entry.path, unseen)? {
                copy_unseen(&blob.path, &to.join(&blob.name), unseen)?;
            }
        }
    }
    Ok(copy)
}

fn copy_unseen(from: &Path, to: &Path, unseen: &AtomicUsize) -> AuditResult<()> {
    let mut source = open_unseen(from, OFlags::empty(), unseen)?;
    let mut target = fs::File::create(to).map_err(|e| AuditError::io("create", to, &e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| AuditError::io("copy", from, &e))?;
    Ok(())
}

/// One key split into institution and the rest, or a finding.
fn split_key<'k>(tree: &str, key: &'k [u8], state: &mut State) -> Option<(Inst, &'k [u8])> {
    let slash = key.iter().position(|&b| b == b'/');
    let parsed = slash.and_then(|at| {
        let inst = std::str::from_utf8(&key[..at]).ok()?;
        inst.parse::<InstitutionId>().ok()?;
        Some((inst.to_owned(), &key[at + 1..]))
    });
    if parsed.is_none() {
        state.find(
            tree,
            key,
            "key does not start with an institution id and '/'",
        );
    }
    parsed
}

/// A 16-byte id or 32-byte hash that is all printable ASCII is text, not random: a
/// random 16 bytes are all printable with probability about 10^-7.
fn looks_like_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..0x7f).contains(b))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(buf)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(buf)
}

fn id_at(bytes: &[u8], at: usize) -> Id16 {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[at..at + 16]);
    id
}

/// Checks a key's fixed-width layout; `false` (with a finding) if it does not fit.
fn key_fits(
    tree: &str,
    key: &[u8],
    rest: &[u8],
    len: usize,
    ids: &[(usize, usize)],
    state: &mut State,
) -> bool {
    if rest.len() != len {
        state.find(
            tree,
            key,
            format!(
                "key has {} bytes after the institution; the layout has {len}",
                rest.len()
            ),
        );
        return false;
    }
    for &(at, n) in ids {
        if looks_like_text(&rest[at..at + n]) {
            state.find(
                tree,
                key,
                "an id or hash in this key is printable text, not random bytes",
            );
            return false;
        }
    }
    true
}

fn walk_trees(db: &sled::Db, options: &StoreOptions, state: &mut State) -> AuditResult<()> {
    let storage = |e: sled::Error| {
        AuditError::new(
            "unreadable-store",
            format!("sled could not read the copied database: {e}"),
            "copy the data directory again while the server is stopped, then audit the copy",
        )
    };
    let mut names: Vec<String> = db
        .tree_names()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .collect();
    names.sort();
    for name in &names {
        if name == SLED_DEFAULT_TREE || TREES.contains(&name.as_str()) {
            continue;
        }
        let tree = db.open_tree(name).map_err(storage)?;
        let count = tree.len();
        state.findings.push(Finding {
            place: Place::TreeName { tree: name.clone() },
            why: format!("a tree the store layout does not have, with {count} keys"),
        });
        for item in tree.iter().take(MAX_UNKNOWN_KEYS) {
            let (key, _) = item.map_err(storage)?;
            state.find(name, &key, "a key in a tree the store layout does not have");
        }
    }
    for item in db.iter() {
        let (key, _) = item.map_err(storage)?;
        state.find(
            SLED_DEFAULT_TREE,
            &key,
            "sled's default tree must stay empty",
        );
    }
    let open = |name: &str| db.open_tree(name).map_err(storage);
    // Manifests first: every sealed item is checked against them.
    walk_manifests(&open("manifests")?, options, state).map_err(storage)?;
    walk_cases(&open("cases")?, state).map_err(storage)?;
    walk_uploads(&open("uploads")?, state).map_err(storage)?;
    walk_mailbox(&open("mailbox")?, state).map_err(storage)?;
    walk_purge(&open("purge")?, state).map_err(storage)?;
    walk_envelopes(&open("envelopes")?, state).map_err(storage)?;
    walk_mailbox_pieces(&open("mailbox_pieces")?, state).map_err(storage)?;
    walk_export(&open("export")?, state).map_err(storage)?;
    walk_pow(&open("pow")?, state).map_err(storage)?;
    walk_tokens(&open("tokens")?, state).map_err(storage)?;
    walk_counters(&open("counters")?, state).map_err(storage)?;
    Ok(())
}

/// Pieces of one item: `prefix ‖ index (u32)`, in key order.
struct Item {
    inst: Inst,
    prefix: Vec<u8>,
    first_key: Vec<u8>,
    bytes: Vec<u8>,
    broken: Option<String>,
    next_index: u32,
    last_short: bool,
}

/// Groups a piece tree into items; `prefix_len` is the length of the key after the
/// institution, without the piece index. Calls `each` with every complete item.
fn walk_pieces(
    tree: &sled::Tree,
    name: &str,
    prefix_len: usize,
    id_fields: &[(usize, usize)],
    state: &mut State,
    mut each: impl FnMut(&mut State, Item),
) -> sled::Result<()> {
    let mut current: Option<Item> = None;
    for entry in tree.iter() {
        let (key, value) = entry?;
        state.scanned.keys += 1;
        let Some((inst, rest)) = split_key(name, &key, state) else {
            continue;
        };
        if !key_fits(name, &key, rest, prefix_len + 4, id_fields, state) {
            continue;
        }
        let prefix = key[..key.len() - 4].to_vec();
        let index = u32_at(rest, prefix_len);
        if current.as_ref().is_some_and(|item| item.prefix != prefix)
            && let Some(done) = current.take()
        {
            each(state, done);
        }
        let item = current.get_or_insert_with(|| Item {
            inst,
            prefix,
            first_key: key.to_vec(),
            bytes: Vec::new(),
            broken: None,
            next_index: 0,
            last_short: false,
        });
        if item.broken.is_none() {
            if index != item.next_index {
                item.broken = Some(format!(
                    "pieces are not numbered from 0 without a gap (piece {index} where {} was due)",
                    item.next_index
                ));
            } else if item.last_short {
                item.broken =
                    Some("a piece other than the last is shorter than 4,096 bytes".into());
            } else if value.len() > PIECE_LEN || value.is_empty() {
                item.broken = Some(format!(
                    "a piece of {} bytes (pieces are 1 to 4,096)",
                    value.len()
                ));
            }
        }
        item.last_short = value.len() < PIECE_LEN;
        item.next_index = index.saturating_add(1);
        item.bytes.extend_from_slice(&value);
    }
    if let Some(done) = current {
        each(state, done);
    }
    Ok(())
}

fn walk_manifests(
    tree: &sled::Tree,
    options: &StoreOptions,
    state: &mut State,
) -> sled::Result<()> {
    walk_pieces(tree, "manifests", 8, &[], state, |state, item| {
        let serial = u64_at(&item.prefix, item.prefix.len() - 8);
        if let Some(why) = item.broken {
            state.find("manifests", &item.first_key, why);
            return;
        }
        let signed = match SignedManifest::from_json(&item.bytes) {
            Ok(signed) => signed,
            Err(error) => {
                state.find(
                    "manifests",
                    &item.first_key,
                    format!(
                        "not a signed manifest in canonical form ({error}); {}",
                        records::looks_like(&item.bytes)
                    ),
                );
                return;
            }
        };
        let m = signed.manifest();
        if m.institution.id.as_str() != item.inst || m.serial != serial {
            state.find(
                "manifests",
                &item.first_key,
                "the manifest's institution or serial differs from its key",
            );
            return;
        }
        let pinned = options
            .manifest_keys
            .iter()
            .find(|(inst, _)| inst.as_str() == item.inst)
            .map(|(_, key)| *key);
        let signature = match pinned {
            Some(key) => {
                // Dates are not the point here: a stored manifest may have expired.
                let policy = VerifyPolicy::new(key, m.valid_from);
                if let Err(error) = signed.verify(&policy) {
                    state.find(
                        "manifests",
                        &item.first_key,
                        format!("the manifest does not verify under the pinned key ({error})"),
                    );
                    return;
                }
                "verified"
            }
            None => {
                if let Err(error) = m.check() {
                    state.find(
                        "manifests",
                        &item.first_key,
                        format!("the manifest breaks a manifest rule ({error})"),
                    );
                    return;
                }
                "not checked"
            }
        };
        let recipients = m
            .keys
            .iter()
            .filter(|k| matches!(k.purpose, Purpose::Seal | Purpose::EscrowSeal))
            .count();
        let reply_signers = m
            .keys
            .iter()
            .filter(|k| k.purpose == Purpose::ReplySigning)
            .filter_map(|k| k.public.parse().ok())
            .collect();
        state
            .manifests
            .entry(item.inst.clone())
            .or_default()
            .push(ManifestInfo {
                valid_from: m.valid_from,
                valid_until: m.valid_until,
                recipients,
                reply_signers,
            });
        state.exposure(&item.inst).manifests.push(ManifestSummary {
            serial,
            valid_from: m.valid_from.to_string(),
            valid_until: m.valid_until.to_string(),
            recipients,
            signature,
        });
    })?;
    let unpinned = state
        .exposure
        .iter()
        .filter(|(_, e)| e.manifests.iter().any(|m| m.signature == "not checked"))
        .map(|(inst, _)| inst.clone())
        .collect::<Vec<_>>();
    for inst in unpinned {
        state.notes.push(format!(
            "{inst}: manifest signatures were not checked; pass --manifest-key {inst}=KEY to verify them"
        ));
    }
    Ok(())
}

/// Walks a tree of one record per key.
fn walk_records<R: serde::Serialize + serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    name: &str,
    what: &str,
    key_len: usize,
    id_fields: &[(usize, usize)],
    state: &mut State,
    mut each: impl FnMut(&mut State, &Inst, &[u8], &[u8], R),
) -> sled::Result<()> {
    for entry in tree.iter() {
        let (key, value) = entry?;
        state.scanned.keys += 1;
        let Some((inst, rest)) = split_key(name, &key, state) else {
            continue;
        };
        if !key_fits(name, &key, rest, key_len, id_fields, state) {
            continue;
        }
        match records::parse::<R>(&value, what) {
            Ok(record) => {
                state.scanned.records += 1;
                each(state, &inst, &key, rest, record);
            }
            Err(why) => state.find(name, &key, why),
        }
    }
    Ok(())
}

/// A size bucket is a padded length: `P(L) = max(4096, padmé(L + 8))` for some L
/// (docs/protocol.md#padding); anything else is an exact size or another number.
fn is_padded_length(bucket: u64) -> bool {
    bucket >= 4096 && peluit_proto::seal::padded_len(bucket - 8) == bucket
}

fn walk_cases(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<CaseRec>(
        tree,
        "cases",
        "case",
        16,
        &[(0, 16)],
        state,
        |state, inst, key, rest, case| {
            let deleted = case.state == CaseState::Deleted;
            let consistent = if deleted {
                case.attachments.is_empty() && case.envelope_len == 0 && case.deleted_on.is_some()
            } else {
                case.deleted_on.is_none()
            };
            if !consistent {
                state.find(
                    "cases",
                    key,
                    "case record's state, attachments, envelope length and deletion day disagree",
                );
            }
            if !is_padded_length(case.size_bucket) {
                state.find(
                    "cases",
                    key,
                    format!(
                        "size_bucket {} is not a padded length: it would reveal an exact size",
                        case.size_bucket
                    ),
                );
            }
            state.cursor_seen(inst, case.cursor);
            let exposure = state.exposure(inst);
            exposure
                .cases_per_day
                .entry(case.day.to_string())
                .or_default()[usize::from(deleted)] += 1;
            *exposure.size_buckets.entry(case.size_bucket).or_default() += 1;
            state.cases.insert((inst.clone(), id_at(rest, 0)), case);
        },
    )
}

fn walk_uploads(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<UploadRec>(
        tree,
        "uploads",
        "upload",
        16,
        &[(0, 16)],
        state,
        |state, inst, key, rest, upload| {
            let ok = upload.received <= upload.declared_len
                && match upload.state {
                    UploadState::Receiving => upload.case.is_none() && upload.cursor.is_none(),
                    UploadState::Complete => {
                        upload.received == upload.declared_len
                            && upload.case.is_none()
                            && upload.cursor.is_none()
                    }
                    UploadState::Attached => {
                        upload.received == upload.declared_len
                            && upload.case.is_some()
                            && upload.cursor.is_some()
                    }
                };
            if !ok {
                state.find(
                    "uploads",
                    key,
                    "upload record's state, lengths, case and cursor disagree",
                );
            }
            if let Some(cursor) = upload.cursor {
                state.cursor_seen(inst, cursor);
            }
            let label = match upload.state {
                UploadState::Receiving => "receiving",
                UploadState::Complete => "complete",
                UploadState::Attached => "attached",
            };
            let exposure = state.exposure(inst);
            *exposure.uploads.entry(label.to_owned()).or_default() += 1;
            *exposure
                .upload_sizes
                .entry(upload.declared_len)
                .or_default() += 1;
            state.uploads.insert((inst.clone(), id_at(rest, 0)), upload);
        },
    )
}

fn walk_mailbox(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<MailboxRec>(
        tree,
        "mailbox",
        "mailbox",
        24,
        &[(0, 16)],
        state,
        |state, inst, key, rest, record| {
            let case = id_at(rest, 0);
            let seq = u64_at(rest, 16);
            if !state.cases.contains_key(&(inst.clone(), case)) {
                state.find(
                    "mailbox",
                    key,
                    "mailbox record of a case that has no case record",
                );
            }
            let cursor_ok = match record.kind {
                MailboxKind::Reply => record.cursor.is_none(),
                MailboxKind::FollowUp => record.cursor.is_some(),
            };
            if !cursor_ok {
                state.find("mailbox", key, "mailbox record's kind and cursor disagree");
            }
            if let Some(cursor) = record.cursor {
                state.cursor_seen(inst, cursor);
            }
            let slot = usize::from(record.kind == MailboxKind::FollowUp);
            state
                .exposure(inst)
                .mailbox_per_day
                .entry(record.day.to_string())
                .or_default()[slot] += 1;
            state.mailbox.insert((inst.clone(), case, seq), record);
        },
    )
}

fn walk_envelopes(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_pieces(tree, "envelopes", 16, &[(0, 16)], state, |state, item| {
        let key = item.first_key.clone();
        if let Some(why) = item.broken {
            state.find("envelopes", &key, why);
            return;
        }
        let case_id = id_at(&item.prefix, item.prefix.len() - 16);
        if state
            .pending_purges
            .contains(&(item.inst.clone(), PURGE_ENVELOPE, case_id))
        {
            // Still sealed data until the purge finishes: check it as such.
            let counts = state.counts_for_any(&item.inst);
            check_sealed(state, "envelopes", &key, &item.bytes, &counts);
            return;
        }
        let Some(case) = state.cases.get(&(item.inst.clone(), case_id)) else {
            state.find(
                "envelopes",
                &key,
                format!("envelope of no case; {}", records::looks_like(&item.bytes)),
            );
            return;
        };
        if case.state != CaseState::Open || case.envelope_len != item.bytes.len() as u64 {
            state.find(
                "envelopes",
                &key,
                format!(
                    "envelope of {} bytes where the case record says {} ({:?})",
                    item.bytes.len(),
                    case.envelope_len,
                    case.state
                ),
            );
            return;
        }
        let counts = state.counts_for(&item.inst, case.day);
        check_sealed(state, "envelopes", &key, &item.bytes, &counts);
    })
}

fn check_sealed(state: &mut State, tree: &str, key: &[u8], bytes: &[u8], counts: &[usize]) {
    state.scanned.sealed_items += 1;
    state.scanned.sealed_bytes += bytes.len() as u64;
    if counts.is_empty() {
        state.find(
            tree,
            key,
            "no stored manifest for this institution: the stanza count cannot be checked",
        );
        return;
    }
    if let Err(why) = scan_message(bytes, counts) {
        state.find(tree, key, format!("{why}; {}", records::looks_like(bytes)));
    }
}

fn walk_mailbox_pieces(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_pieces(
        tree,
        "mailbox_pieces",
        24,
        &[(0, 16)],
        state,
        |state, item| {
            let key = item.first_key.clone();
            if let Some(why) = item.broken {
                state.find("mailbox_pieces", &key, why);
                return;
            }
            let at = item.prefix.len() - 24;
            let case_id = id_at(&item.prefix, at);
            let seq = u64_at(&item.prefix, at + 16);
            if state
                .pending_purges
                .contains(&(item.inst.clone(), PURGE_MAILBOX, case_id))
            {
                // Its record is gone already; it must still be sealed data or a sealed reply.
                let counts = state.counts_for_any(&item.inst);
                if SealedReply::from_json(&item.bytes).is_ok() {
                    check_reply(state, &item.inst, case_id, &key, &item.bytes, &counts);
                } else {
                    check_sealed(state, "mailbox_pieces", &key, &item.bytes, &counts);
                }
                return;
            }
            let Some(record) = state
                .mailbox
                .get(&(item.inst.clone(), case_id, seq))
                .cloned()
            else {
                state.find(
                    "mailbox_pieces",
                    &key,
                    format!(
                        "message with no mailbox record; {}",
                        records::looks_like(&item.bytes)
                    ),
                );
                return;
            };
            if record.len != item.bytes.len() as u64 {
                state.find(
                    "mailbox_pieces",
                    &key,
                    format!(
                        "message of {} bytes where its record says {}",
                        item.bytes.len(),
                        record.len
                    ),
                );
                return;
            }
            let counts = state.counts_for(&item.inst, record.day);
            match record.kind {
                MailboxKind::FollowUp => {
                    check_sealed(state, "mailbox_pieces", &key, &item.bytes, &counts)
                }
                MailboxKind::Reply => {
                    check_reply(state, &item.inst, case_id, &key, &item.bytes, &counts)
                }
            }
        },
    )
}

/// A reply is proto's sealed reply JSON: signed by a reply-signing key of a stored
/// manifest, sealed to the reporter plus the manifest's recipients (docs/protocol.md#reply).
fn check_reply(
    state: &mut State,
    inst: &str,
    case_id: Id16,
    key: &[u8],
    bytes: &[u8],
    counts: &[usize],
) {
    let reply = match SealedReply::from_json(bytes) {
        Ok(reply) => reply,
        Err(error) => {
            state.find(
                "mailbox_pieces",
                key,
                format!(
                    "not a sealed reply ({error}); {}",
                    records::looks_like(bytes)
                ),
            );
            return;
        }
    };
    if reply.institution().as_str() != inst || *reply.case().as_bytes() != case_id {
        state.find(
            "mailbox_pieces",
            key,
            "sealed reply names another institution or case than its key",
        );
        return;
    }
    let signers = state.reply_signers(inst);
    let mut verdict = Err("no stored manifest for this institution".to_owned());
    for count in counts {
        match reply.verify(&signers, count + 1) {
            Ok(()) => {
                verdict = Ok(());
                break;
            }
            Err(error) => verdict = Err(error.to_string()),
        }
    }
    if let Err(error) = verdict {
        state.find(
            "mailbox_pieces",
            key,
            format!("sealed reply does not verify against the stored manifests ({error})"),
        );
        return;
    }
    let plus_reporter: Vec<usize> = counts.iter().map(|c| c + 1).collect();
    check_sealed(
        state,
        "mailbox_pieces",
        key,
        reply.ciphertext(),
        &plus_reporter,
    );
}

fn walk_export(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<ExportRec>(
        tree,
        "export",
        "export entry",
        8,
        &[],
        state,
        |state, inst, key, rest, entry| {
            let cursor = u64_at(rest, 0);
            state.cursor_seen(inst, cursor);
            let inst = inst.clone();
            let points = match entry.kind {
                ExportKind::Case => {
                    entry.upload.is_none()
                        && entry.seq.is_none()
                        && state
                            .cases
                            .get(&(inst.clone(), *entry.case.as_bytes()))
                            .is_some_and(|c| c.cursor == cursor)
                }
                ExportKind::Attachment => {
                    entry.seq.is_none()
                        && entry.upload.is_some_and(|u| {
                            state
                                .uploads
                                .get(&(inst.clone(), *u.as_bytes()))
                                .is_some_and(|r| r.cursor == Some(cursor))
                        })
                }
                ExportKind::FollowUp => {
                    entry.upload.is_none()
                        && entry.seq.is_some_and(|seq| {
                            state
                                .mailbox
                                .get(&(inst.clone(), *entry.case.as_bytes(), seq))
                                .is_some_and(|r| r.cursor == Some(cursor))
                        })
                }
            };
            if !points {
                state.find(
                    "export",
                    key,
                    "export entry does not point at an item with this cursor",
                );
            }
        },
    )
}

fn walk_pow(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<PowRec>(
        tree,
        "pow",
        "proof-of-work",
        32,
        &[(0, 32)],
        state,
        |state, inst, _, _, record| {
            *state
                .exposure(inst)
                .stamps_per_day
                .entry(record.day.to_string())
                .or_default() += 1;
        },
    )
}

fn walk_tokens(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    walk_records::<TokenRec>(
        tree,
        "tokens",
        "token",
        32,
        &[(0, 32)],
        state,
        |state, inst, key, _, record| {
            if record.label.len() > 256 {
                state.find("tokens", key, "token label longer than 256 bytes");
            } else if label_looks_identifying(&record.label) {
                state.find(
                    "tokens",
                    key,
                    "token label holds a time of day or an IP address",
                );
            }
            state
                .exposure(inst)
                .tokens
                .push((record.label, record.created.to_string()));
        },
    )
}

/// Operators choose labels; a time of day (`09:41`) or a dotted address in one is the
/// kind of metadata the store must never hold.
fn label_looks_identifying(label: &str) -> bool {
    let b = label.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let time =
        (0..b.len()).any(|i| b[i] == b':' && i > 0 && digit(i - 1) && digit(i + 1) && digit(i + 2));
    let dotted = label
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|word| {
            word.split('.')
                .filter(|p| !p.is_empty() && p.len() <= 3)
                .count()
                == 4
                && word.matches('.').count() == 3
        });
    time || dotted
}

fn walk_purge(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    for entry in tree.iter() {
        let (key, value) = entry?;
        state.scanned.keys += 1;
        let Some((inst, rest)) = split_key("purge", &key, state) else {
            continue;
        };
        if !key_fits("purge", &key, rest, 17, &[(1, 16)], state) {
            continue;
        }
        if !value.is_empty() {
            state.find(
                "purge",
                &key,
                format!("purge marker with a value; {}", records::looks_like(&value)),
            );
            continue;
        }
        if ![PURGE_ENVELOPE, PURGE_FILE, PURGE_MAILBOX].contains(&rest[0]) {
            state.find(
                "purge",
                &key,
                format!("purge marker with unknown target code {}", rest[0]),
            );
            continue;
        }
        state
            .pending_purges
            .insert((inst.clone(), rest[0], id_at(rest, 1)));
        state.notes.push(format!(
            "{}: a deletion was interrupted and will finish when the server next opens the store",
            display_key(&key)
        ));
    }
    Ok(())
}

fn walk_counters(tree: &sled::Tree, state: &mut State) -> sled::Result<()> {
    for entry in tree.iter() {
        let (key, value) = entry?;
        state.scanned.keys += 1;
        let Some((inst, rest)) = split_key("counters", &key, state) else {
            continue;
        };
        if rest != EXPORT_CURSOR {
            state.find("counters", &key, "a counter other than export_cursor");
            continue;
        }
        if value.len() != 8 {
            state.find(
                "counters",
                &key,
                format!(
                    "counter value of {} bytes (8 expected); {}",
                    value.len(),
                    records::looks_like(&value)
                ),
            );
            continue;
        }
        let counter = u64_at(&value, 0);
        let max = state.max_cursor.get(&inst).copied().unwrap_or(0);
        if counter < max {
            state.find(
                "counters",
                &key,
                format!("export cursor {counter} is below a cursor in use ({max})"),
            );
        }
    }
    Ok(())
}

/// One upload file to scan.
struct FileJob {
    rel: String,
    path: PathBuf,
    counts: Vec<usize>,
    complete: bool,
    received: u64,
}

/// The folder of spare upload files the store keeps ready under `uploads/`.
const SPARE_DIR: &str = ".spare";

/// docs/storage.md#upload-files and #file-times: `uploads/` holds institution folders of
/// upload files (and the spare pool), each with epoch access and modification times; every
/// file's content is then scanned as sealed data. Each entry's times are read (`lstat`)
/// before it is listed or read, and folders and files are opened with `O_NOATIME`, so the
/// audit sees the times the server left and leaves them as they were.
fn scan_upload_files(dir: &Path, options: &StoreOptions, state: &mut State) -> AuditResult<()> {
    let uploads = dir.join("uploads");
    let root_meta = match fs::symlink_metadata(&uploads) {
        Ok(meta) if meta.is_dir() => meta,
        // check_layout already named an `uploads` that is not a folder.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::io("read", &uploads, &e)),
    };
    check_times(&root_meta, "uploads", state);
    let mut jobs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for folder in read_dir(&uploads, &state.unseen)? {
        let inst = folder.name.to_string_lossy().into_owned();
        let rel_inst = format!("uploads/{inst}");
        if inst == SPARE_DIR {
            check_spare_pool(&folder, state)?;
            continue;
        }
        if !folder.meta.is_dir() || inst.parse::<InstitutionId>().is_err() {
            state
                .findings
                .push(Finding::file(rel_inst, "not an institution folder"));
            continue;
        }
        check_times(&folder.meta, &rel_inst, state);
        for file in read_dir(&folder.path, &state.unseen)? {
            let name = file.name.to_string_lossy().into_owned();
            let rel = format!("{rel_inst}/{name}");
            let Some(id) = hex_id_named(&name).filter(|_| file.meta.is_file()) else {
                state.findings.push(Finding::file(
                    rel,
                    "not an upload file name (32 lowercase hex digits)",
                ));
                continue;
            };
            check_times(&file.meta, &rel, state);
            seen.insert((inst.clone(), id));
            let Some(record) = state.uploads.get(&(inst.clone(), id)) else {
                if !state
                    .pending_purges
                    .contains(&(inst.clone(), PURGE_FILE, id))
                {
                    state.findings.push(Finding::file(
                        rel,
                        "an upload file without an upload record",
                    ));
                }
                continue;
            };
            let len = file.meta.len();
            if len != record.received {
                state.findings.push(Finding::file(
                    rel,
                    format!(
                        "file of {len} bytes where its record says {} were received",
                        record.received
                    ),
                ));
                continue;
            }
            jobs.push(FileJob {
                rel,
                path: file.path,
                counts: state.counts_for(&inst, record.created),
                complete: record.state != UploadState::Receiving,
                received: record.received,
            });
        }
    }
    for ((inst, id), record) in &state.uploads {
        if record.received > 0 && !seen.contains(&(inst.clone(), *id)) {
            state.findings.push(Finding::file(
                format!("uploads/{inst}/{}", hex::encode(id)),
                format!(
                    "missing: its upload record says {} bytes were received",
                    record.received
                ),
            ));
        }
    }
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        options.threads
    };
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let failed = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()).max(1) {
            scope.spawn(|| {
                let mut buf = vec![0u8; READ_BUF];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    match scan_file(job, &mut buf, &state.unseen) {
                        Ok(outcome) => results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((i, outcome)),
                        Err(error) => {
                            *failed
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(error);
    }
    for (job_index, outcome) in results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        let job = &jobs[job_index];
        state.scanned.upload_files += 1;
        state.scanned.sealed_items += 1;
        state.scanned.sealed_bytes += job.received;
        if job.counts.is_empty() {
            state.findings.push(Finding::file(
                job.rel.clone(),
                "no stored manifest for this institution: the stanza count cannot be checked",
            ));
        } else if let Err(why) = outcome {
            state.findings.push(Finding::file(job.rel.clone(), why));
        }
    }
    Ok(())
}

/// The id an upload file (or a spare file) is named by: 32 lowercase hex digits.
fn hex_id_named(name: &str) -> Option<Id16> {
    let hex = name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.then(|| hex::decode(name).ok())
        .flatten()
        .and_then(|bytes| <Id16>::try_from(bytes.as_slice()).ok())
}

/// `uploads/.spare/` (docs/storage.md#spare-files): a folder of empty regular files,
/// named as upload files are, that the store renames into place when an upload starts.
/// The folder and every file carry epoch times, like upload files, since taking a spare
/// file is when an upload begins. Spare files are never opened.
fn check_spare_pool(pool: &Listed, state: &mut State) -> AuditResult<()> {
    let rel_pool = format!("uploads/{SPARE_DIR}");
    if !pool.meta.is_dir() {
        state.findings.push(Finding::file(
            rel_pool,
            "not a folder: the spare-file pool is a folder of empty files",
        ));
        return Ok(());
    }
    check_times(&pool.meta, &rel_pool, state);
    for spare in read_dir(&pool.path, &state.unseen)? {
        let name = spare.name.to_string_lossy().into_owned();
        let rel = format!("{rel_pool}/{name}");
        if hex_id_named(&name).is_none() || !spare.meta.is_file() {
            state.findings.push(Finding::file(
                rel,
                "not a spare file (an empty file named by 32 lowercase hex digits)",
            ));
        } else if spare.meta.len() != 0 {
            state.findings.push(Finding::file(
                rel,
                format!(
                    "a spare file of {} bytes: spare files are empty until they become an upload",
                    spare.meta.len()
                ),
            ));
        } else {
            check_times(&spare.meta, &rel, state);
        }
    }
    Ok(())
}

/// docs/storage.md#file-times: the server sets every upload file's and folder's access
/// and modification times to the Unix epoch, to the nanosecond, so that none dates an
/// upload. The finding never repeats the time it saw: it is the metadata to protect.
fn check_times(meta: &fs::Metadata, rel: &str, state: &mut State) {
    use std::os::unix::fs::MetadataExt as _;
    let modified = meta.mtime() != 0 || meta.mtime_nsec() != 0;
    let accessed = meta.atime() != 0 || meta.atime_nsec() != 0;
    let which = match (modified, accessed) {
        (false, false) => return,
        (true, false) => "a modification time",
        (false, true) => "an access time",
        (true, true) => "a modification and an access time",
    };
    state.findings.push(Finding::file(
        rel,
        format!(
            "carries {which} of day where the server keeps 1970-01-01 00:00:00 UTC: the \
             server resets upload files' and folders' times (docs/storage.md#file-times), \
             and resets a store written before it did so at its next start or hourly sweep; \
             copy the store again after that, keeping times (cp -a)"
        ),
    ));
}

/// Opens `path` read-only with `O_NOATIME`, so reading a file or listing a folder does not
/// set its access time. The kernel grants the flag only to the owner (or root); anyone
/// else gets a plain open, counted in `unseen`.
fn open_unseen(path: &Path, flags: OFlags, unseen: &AtomicUsize) -> AuditResult<fs::File> {
    let open = |flags: OFlags| {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | flags,
            Mode::empty(),
        )
    };
    let fd = match open(flags | OFlags::NOATIME) {
        Err(Errno::PERM) => {
            unseen.fetch_add(1, Ordering::Relaxed);
            open(flags)
        }
        other => other,
    }
    .map_err(|e| AuditError::io("open", path, &e.into()))?;
    Ok(fs::File::from(fd))
}

fn scan_file(
    job: &FileJob,
    buf: &mut [u8],
    unseen: &AtomicUsize,
) -> AuditResult<Result<(), String>> {
    let mut file = open_unseen(&job.path, OFlags::empty(), unseen)?;
    let expect = if job.complete {
        Expect::Complete {
            counts: &job.counts,
        }
    } else {
        Expect::Prefix {
            counts: &job.counts,
        }
    };
    let mut scanner = AgeScanner::new(expect);
    let mut left = job.received;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| AuditError::io("read", &job.path, &e))?;
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n]);
        left -= n as u64;
    }
    Ok(scanner.finish().map(|_| ()))
}

/// Links between trees: every attachment a case lists is an attached upload of that case.
fn cross_check(state: &mut State) {
    let mut problems = Vec::new();
    for ((inst, case_id), case) in &state.cases {
        for upload in &case.attachments {
            let attached = state
                .uploads
                .get(&(inst.clone(), *upload.as_bytes()))
                .is_some_and(|u| {
                    u.state == UploadState::Attached
                        && u.case.is_some_and(|c| c.as_bytes() == case_id)
                });
            if !attached {
                let mut key = format!("{inst}/").into_bytes();
                key.extend_from_slice(case_id);
                problems.push(Finding::key(
                    "cases",
                    &key,
                    "the case lists an attachment that is not an upload attached to it",
                ));
            }
        }
    }
    state.findings.extend(problems);
}
