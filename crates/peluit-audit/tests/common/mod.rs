//! What the audit tests share: an institution with real keys and a signed manifest, a
//! store filled through the real store API with data sealed by proto, a real server on
//! loopback, and a small HTTP proxy that alters what the server answers.

#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::{OsStr, OsString};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use peluit_proto::day::Day;
use peluit_proto::envelope::{
    Answer, AttachmentRef, FollowUp, Report, seal_follow_up, seal_report,
};
use peluit_proto::ids::{CaseId, InstitutionId, MessageId, UploadId};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::manifest::{
    FormDefinition, Institution, Manifest, ManifestKey, Purpose, SignedManifest, VerifiedManifest,
    VerifyPolicy,
};
use peluit_proto::receipt::Receipt;
use peluit_proto::reply::{Reply, ReplyKind, seal_reply_with_manifest};
use peluit_proto::seal::{StreamSealer, padded_len};
use peluit_proto::sealed::SealedChunk;
use peluit_proto::wordlist::Language;
use peluit_store::{
    CiphertextStore, ManifestBytes, NewCase, NewFollowUp, NewReply, PowHash, SealedReplyBytes,
    SledStore, TokenHash,
};
use rustix::fs::{Dir, Mode, OFlags};

pub const INSTITUTION: &str = "itjen-uji";

pub fn today() -> Day {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Day::from_unix_seconds(seconds as i64).unwrap()
}

fn day_offset(days: i64) -> Day {
    Day::from_unix_seconds((today().days_since_epoch() + days) * 86_400).unwrap()
}

/// The inspectorate's keys: two investigators and the escrow (three recipients).
pub struct Keys {
    pub manifest_key: SigningKey,
    pub investigators: Vec<SealIdentity>,
    pub escrow: SealIdentity,
    pub reply_keys: Vec<SigningKey>,
}

impl Keys {
    pub fn generate() -> Self {
        Self {
            manifest_key: SigningKey::generate(),
            investigators: vec![SealIdentity::generate(), SealIdentity::generate()],
            escrow: SealIdentity::generate(),
            reply_keys: vec![SigningKey::generate(), SigningKey::generate()],
        }
    }

    /// A manifest of these keys, signed by `signer`.
    pub fn manifest(&self, serial: u64, origins: &[String], signer: &SigningKey) -> SignedManifest {
        let mut keys = Vec::new();
        for (i, (identity, reply)) in self.investigators.iter().zip(&self.reply_keys).enumerate() {
            let holder = format!("investigator:{i}");
            keys.push(ManifestKey {
                holder: holder.clone(),
                purpose: Purpose::Seal,
                public: identity.recipient().to_string(),
            });
            keys.push(ManifestKey {
                holder,
                purpose: Purpose::ReplySigning,
                public: reply.verifying_key().to_string(),
            });
        }
        keys.push(ManifestKey {
            holder: "escrow".into(),
            purpose: Purpose::EscrowSeal,
            public: self.escrow.recipient().to_string(),
        });
        let manifest = Manifest {
            version: 1,
            institution: Institution {
                id: INSTITUTION.parse().unwrap(),
                name: "Inspektorat Uji".into(),
            },
            origins: origins.to_vec(),
            serial,
            valid_from: day_offset(-30),
            valid_until: day_offset(335),
            keys,
            form: FormDefinition::kws_default(),
        };
        manifest.check().unwrap();
        manifest.sign(signer)
    }

    pub fn verified(&self, signed: &SignedManifest) -> VerifiedManifest {
        signed
            .verify(&VerifyPolicy::new(
                self.manifest_key.verifying_key(),
                today(),
            ))
            .unwrap()
    }
}

pub fn institution() -> InstitutionId {
    INSTITUTION.parse().unwrap()
}

/// A store made through the store API, holding one of everything: two manifests, an
/// attached and a receiving upload (files), two open cases and a deleted one, a
/// follow-up, a signed reply, a token and spent stamps.
pub struct CleanStore {
    pub dir: tempfile::TempDir,
    pub keys: Keys,
    pub manifest: VerifiedManifest,
    pub case: CaseId,
    pub attachment: UploadId,
    pub receiving: UploadId,
}

impl CleanStore {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn open(&self) -> SledStore {
        SledStore::open(self.data()).unwrap()
    }
}

/// Seals `content` as an attachment stream; returns the sealed bytes and its reference.
pub fn seal_attachment(manifest: &VerifiedManifest, content: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let mut sealer = StreamSealer::new(&manifest.seal_recipients(), content.len() as u64).unwrap();
    let mut sealed = sealer.take_output();
    for chunk in content.chunks(65_536) {
        sealed.extend(sealer.push(chunk).unwrap());
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        sealed.extend(tail);
    }
    (sealed, sealer.sealed_sha256())
}

/// Uploads sealed bytes through the store API; `complete` marks it so.
pub fn upload(store: &SledStore, sealed: &[u8], upto: usize, complete: bool) -> UploadId {
    let inst = institution();
    let id = store
        .create_upload(&inst, sealed.len() as u64, today())
        .unwrap();
    let chunks: Vec<SealedChunk> = sealed[..upto]
        .chunks(SEALED_CHUNK_SIZE)
        .map(|c| SealedChunk::new(c.to_vec()))
        .collect();
    let mut offset = 0;
    for run in chunks.chunks(256) {
        offset = store.append_upload_chunks(&inst, id, offset, run).unwrap();
    }
    if complete {
        store.complete_upload(&inst, id).unwrap();
    }
    id
}

pub fn clean_store() -> CleanStore {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate();
    let origins = vec!["http://127.0.0.1:8080".to_owned()];
    let first = keys.manifest(1, &origins, &keys.manifest_key);
    let second = keys.manifest(2, &origins, &keys.manifest_key);
    let manifest = keys.verified(&second);
    let inst = institution();
    let store = SledStore::open(dir.path().join("data")).unwrap();
    store
        .put_manifest(&inst, 1, &ManifestBytes::new(first.to_json()))
        .unwrap();
    store
        .put_manifest(&inst, 2, &ManifestBytes::new(second.to_json()))
        .unwrap();

    let video: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (sealed, sealed_sha256) = seal_attachment(&manifest, &video);
    let attachment = upload(&store, &sealed, sealed.len(), true);
    let (partial, _) = seal_attachment(&manifest, &vec![1u8; 200_000]);
    let receiving = upload(&store, &partial, SEALED_CHUNK_SIZE + 100, false);

    let submit = |text: &str, attachments: Vec<AttachmentRef>, pow: u8| {
        let reporter = Receipt::generate().derive(&inst);
        let uploads: Vec<UploadId> = attachments.iter().map(|a| a.upload).collect();
        let total: u64 = attachments.iter().map(|a| a.size).sum();
        let report = Report {
            institution: inst.clone(),
            language: Language::Id,
            date: today(),
            answers: vec![
                Answer::new("category", "suap"),
                Answer::new("what_happened", text),
            ],
            attachments,
            reply_to: reporter.reply_recipient(),
            mailbox: reporter.mailbox_public_key(),
        };
        let envelope = seal_report(&report, &manifest).unwrap();
        let submitted = store
            .submit_case(
                &inst,
                NewCase {
                    day: today(),
                    size_bucket: padded_len(envelope.as_bytes().len() as u64 + total),
                    mailbox_key: reporter.mailbox_public_key(),
                    envelope,
                    attachments: uploads,
                    pow_hash: PowHash::from_bytes(sha(&[pow])),
                },
            )
            .unwrap();
        (submitted.id, reporter)
    };
    let (case, reporter) = submit(
        "Pejabat pengadaan meminta uang pelicin.",
        vec![AttachmentRef {
            upload: attachment,
            name: "rekaman.mp4".into(),
            media_type: "video/mp4".into(),
            size: video.len() as u64,
            sealed_sha256,
        }],
        1,
    );
    submit("Laporan kedua tanpa lampiran.", Vec::new(), 2);
    let (withdrawn, _) = submit("Laporan yang dihapus.", Vec::new(), 3);
    store.delete_case(&inst, withdrawn, today()).unwrap();

    let follow_up = seal_follow_up(
        &FollowUp {
            institution: inst.clone(),
            date: today(),
            text: "Ada bukti tambahan.".into(),
            attachments: Vec::new(),
        },
        &manifest,
    )
    .unwrap();
    store
        .add_follow_up(
            &inst,
            case,
            NewFollowUp {
                id: MessageId::random(),
                day: today(),
                message: follow_up,
            },
        )
        .unwrap();
    let reply = seal_reply_with_manifest(
        &Reply {
            case,
            seq: 0,
            date: today(),
            kind: ReplyKind::Message,
            text: "Terima kasih atas laporan Anda.".into(),
            attachments: Vec::new(),
        },
        &reporter.reply_recipient(),
        &reporter.mailbox_public_key(),
        &manifest,
        &keys.reply_keys[0],
    )
    .unwrap();
    store
        .add_replies(
            &inst,
            vec![NewReply {
                case,
                id: MessageId::random(),
                day: today(),
                reply: SealedReplyBytes::new(reply.to_json()),
            }],
        )
        .unwrap();
    store
        .put_token_hash(
            &inst,
            TokenHash::of_token(b"peluit_tok_uji"),
            "desk",
            today(),
        )
        .unwrap();
    drop(store);
    CleanStore {
        dir,
        keys,
        manifest,
        case,
        attachment,
        receiving,
    }
}

pub fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// One entry of a [`snapshot`]: path, SHA-256 of its bytes (of nothing for a folder),
/// modification and access times.
pub type Entry = (PathBuf, [u8; 32], SystemTime, SystemTime);

/// Every file and folder under `dir` with its bytes' hash and its modification and access
/// times, read as the audit reads (times first, then `O_NOATIME`), so taking it changes
/// none: equal before and after means the audit wrote nothing and set no access time.
pub fn snapshot(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for name in list_unseen(&d) {
            let path = d.join(name);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let times = (meta.modified().unwrap(), meta.accessed().unwrap());
            let bytes = if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                read_unseen(&path)
            };
            out.push((path, sha(&bytes), times.0, times.1));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Copies a data directory as `cp -a` does for times: each copy gets its original's
/// access and modification times, and the originals are read with `O_NOATIME`.
pub fn copy_dir(from: &Path, to: &Path) {
    let meta = std::fs::symlink_metadata(from).unwrap();
    std::fs::create_dir_all(to).unwrap();
    for name in list_unseen(from) {
        let (source, target) = (from.join(&name), to.join(&name));
        let times = std::fs::symlink_metadata(&source).unwrap();
        if times.is_dir() {
            copy_dir(&source, &target);
        } else {
            std::fs::write(&target, read_unseen(&source)).unwrap();
            set_times(
                &target,
                times.accessed().unwrap(),
                times.modified().unwrap(),
            );
        }
    }
    set_times(to, meta.accessed().unwrap(), meta.modified().unwrap());
}

/// Sets a file's or folder's access and modification times.
pub fn set_times(path: &Path, accessed: SystemTime, modified: SystemTime) {
    std::fs::File::open(path)
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_accessed(accessed)
                .set_modified(modified),
        )
        .unwrap();
}

/// Sets both times to the epoch, as the store does.
pub fn set_epoch(path: &Path) {
    set_times(path, UNIX_EPOCH, UNIX_EPOCH);
}

fn open_unseen(path: &Path, flags: OFlags) -> std::fs::File {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOATIME | flags;
    std::fs::File::from(rustix::fs::open(path, flags, Mode::empty()).unwrap())
}

fn read_unseen(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    open_unseen(path, OFlags::empty())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn list_unseen(dir: &Path) -> Vec<OsString> {
    Dir::new(open_unseen(dir, OFlags::DIRECTORY))
        .unwrap()
        .map(|entry| OsStr::from_bytes(entry.unwrap().file_name().to_bytes()).to_os_string())
        .filter(|name| name != "." && name != "..")
        .collect()
}

/// The real server, on its own runtime thread, until dropped.
pub struct Server {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(
        listener: TcpListener,
        store: Arc<SledStore>,
        keys: &Keys,
        spool: PathBuf,
        limits: peluit_server::Limits,
    ) -> Self {
        let institutions = vec![peluit_server::config::Institution {
            id: institution(),
            name: "Inspektorat Uji".into(),
            manifest_key: keys.manifest_key.verifying_key(),
        }];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let state =
                    peluit_server::AppState::new(store, institutions, limits, spool).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                peluit_server::serve(listener, state, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            });
        });
        Self {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response as the proxy passes it on.
pub struct Relayed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub type Alter = dyn Fn(&str, &mut Relayed) + Send + Sync;

/// An HTTP/1.1 proxy in front of `upstream` that lets `alter` change each answer: the
/// attacker between a reporter and the real server. One request per connection.
pub fn start_proxy(listener: TcpListener, upstream: String, alter: Arc<Alter>) {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let client = client.clone();
            let upstream = upstream.clone();
            let alter = alter.clone();
            std::thread::spawn(move || {
                let _ = relay(stream, &client, &upstream, alter.as_ref());
            });
        }
    });
}

fn relay(
    mut stream: TcpStream,
    client: &reqwest::blocking::Client,
    upstream: &str,
    alter: &Alter,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let response = client.get(format!("{upstream}{path}")).send().unwrap();
    let mut answer = Relayed {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect(),
        body: response.bytes().unwrap().to_vec(),
    };
    alter(&path, &mut answer);
    let mut out = format!("HTTP/1.1 {} X\r\n", answer.status);
    for (name, value) in &answer.headers {
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        answer.body.len()
    ));
    stream.write_all(out.as_bytes())?;
    stream.write_all(&answer.body)?;
    stream.flush()
}

/// Runs the auditor's command line in-process.
pub fn audit(args: &[&str]) -> Result<peluit_audit::cli::Report, peluit_audit::AuditError> {
    use clap::Parser as _;
    let mut argv = vec!["peluit-audit"];
    argv.extend(args);
    peluit_audit::cli::run(&peluit_audit::cli::Cli::try_parse_from(argv).unwrap())
}
