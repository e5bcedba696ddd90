//! What the stories share: the real server, in-process on its own runtime thread, on a
//! listener the story bound to a loopback port, the manifest an inspectorate signs, and a
//! report sealed and sent as the page sends it.

use std::sync::Arc;

use peluit_proto::day::Day;
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution as ManifestInstitution, Manifest, ManifestKey, Purpose,
};

use peluit_proto::envelope::{Answer, AttachmentRef, Report, seal_report};
use peluit_proto::ids::UploadId;
use peluit_proto::manifest::VerifiedManifest;
use peluit_proto::pow::Stamp;
use peluit_proto::receipt::{Receipt, ReporterKeys};
use peluit_proto::seal::StreamSealer;
use peluit_proto::wordlist::Language;
use peluit_server::config::{Institution, Limits};
use peluit_server::state::{AppState, today};
use peluit_store::SledStore;
use serde_json::{Value, json};

/// A running server; dropping it stops it and waits for it to finish.
pub struct Server {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `institutions` from `store` on `listener` until dropped.
    pub fn start(
        listener: std::net::TcpListener,
        store: Arc<SledStore>,
        institutions: Vec<Institution>,
        limits: Limits,
        spool: std::path::PathBuf,
    ) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        listener
            .set_nonblocking(true)
            .expect("the listener goes non-blocking");
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime for the server");
            runtime.block_on(async move {
                let state =
                    AppState::new(store, institutions, limits, spool).expect("server state");
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                peluit_server::serve(listener, state, async {
                    let _ = rx.await;
                })
                .await
                .expect("the server runs until stopped");
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

/// A manifest for `institution` at `origin`, valid from yesterday for 30 days: one
/// investigator (seal and reply-signing key), the escrow key and the KWS form.
// Not every story signs its own manifest.
#[allow(dead_code)]
pub fn manifest_for(
    institution: &str,
    name: &str,
    origin: &str,
    desk: &SealIdentity,
    escrow: &SealIdentity,
    reply_key: &SigningKey,
) -> Manifest {
    let day = today();
    let shift = |days: i64| {
        Day::from_unix_seconds((day.days_since_epoch() + days) * 86_400).expect("a day near today")
    };
    Manifest {
        version: 1,
        institution: ManifestInstitution {
            id: institution.parse().expect("a valid institution id"),
            name: name.into(),
        },
        origins: vec![origin.to_owned()],
        serial: 1,
        valid_from: shift(-1),
        valid_until: shift(30),
        keys: vec![
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::Seal,
                public: desk.recipient().to_string(),
            },
            ManifestKey {
                holder: "escrow".into(),
                purpose: Purpose::EscrowSeal,
                public: escrow.recipient().to_string(),
            },
            ManifestKey {
                holder: "investigator:ani".into(),
                purpose: Purpose::ReplySigning,
                public: reply_key.verifying_key().to_string(),
            },
        ],
        form: FormDefinition::kws_default(),
    }
}

/// Seals `content` as the page does and uploads it in one piece through the resumable
/// upload API under `api` (`…/api/v1/institutions/{id}`); returns the report's reference.
#[allow(dead_code)] // the browser stories upload through the page itself
pub fn upload_attachment(
    http: &reqwest::blocking::Client,
    api: &str,
    manifest: &VerifiedManifest,
    name: &str,
    media_type: &str,
    content: &[u8],
) -> AttachmentRef {
    let mut sealer = StreamSealer::new(&manifest.seal_recipients(), content.len() as u64).unwrap();
    let mut sealed = sealer.take_output();
    for chunk in content.chunks(65_536) {
        sealed.extend(sealer.push(chunk).unwrap());
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        sealed.extend(tail);
    }
    let created: Value = http
        .post(format!("{api}/uploads"))
        .json(&json!({"version": 1, "sealed_size": sealed.len()}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = created["upload"].as_str().unwrap().to_owned();
    let put = http
        .put(format!("{api}/uploads/{id}?offset=0"))
        .body(sealed)
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let done = http
        .post(format!("{api}/uploads/{id}/complete"))
        .send()
        .unwrap();
    assert_eq!(done.status(), 200);
    AttachmentRef {
        upload: id.parse().unwrap(),
        name: name.to_owned(),
        media_type: media_type.to_owned(),
        size: content.len() as u64,
        sealed_sha256: sealer.sealed_sha256(),
    }
}

/// Seals a report (category "suap", `what_happened`, `attachments`) as the page does and
/// submits it under `api` with a proof-of-work stamp of `bits`; returns the case id and
/// the reporter's keys.
#[allow(dead_code)] // the browser stories submit through the page itself
pub fn submit_report(
    http: &reqwest::blocking::Client,
    api: &str,
    manifest: &VerifiedManifest,
    what_happened: &str,
    attachments: Vec<AttachmentRef>,
    bits: u8,
) -> (String, ReporterKeys) {
    let institution = manifest.institution_id().clone();
    let reporter = Receipt::generate().derive(&institution);
    let uploads: Vec<UploadId> = attachments.iter().map(|a| a.upload).collect();
    let report = Report {
        institution,
        language: Language::Id,
        date: today(),
        answers: vec![
            Answer::new("category", "suap"),
            Answer::new("what_happened", what_happened),
        ],
        attachments,
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };
    let envelope = seal_report(&report, manifest).unwrap();
    let stamp: Value =
        serde_json::from_slice(&Stamp::mint(&envelope.sha256(), bits).to_json()).unwrap();
    let answer = http
        .post(format!("{api}/reports"))
        .json(&json!({
            "version": 1,
            "envelope": peluit_proto::encoding::b64(envelope.as_bytes()),
            "attachments": uploads,
            "mailbox_key": reporter.mailbox_public_key().to_string(),
            "stamp": stamp,
        }))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 201);
    let body: Value = answer.json().unwrap();
    (body["case"].as_str().unwrap().to_owned(), reporter)
}
