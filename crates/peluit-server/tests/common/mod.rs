//! A real server on a loopback port over a real sled store in a temp dir, with fixed-shape
//! keys and helpers to seal, stamp and submit like a reporter's page would.

// Test helpers: any failed step should stop the test loudly, as in a #[test] body.
#![allow(dead_code, missing_debug_implementations, clippy::unwrap_used)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use peluit_proto::bundle::{BundleHeader, BundleKind, BundleReader, BundleWriter, FrameMeta};
use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SealIdentity, SealRecipient, Signature, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution as ManifestInstitution, Manifest, ManifestKey, Purpose,
    SignedManifest,
};
use peluit_proto::pow::Stamp;
use peluit_proto::reply::SealedReply;
use peluit_proto::sealed::SealedMessage;
use peluit_server::config::{Institution, Limits};
use peluit_server::state::{AppState, today};
use peluit_server::tokens::IssuedToken;
use peluit_store::{CiphertextStore, ManifestBytes, SledStore, TokenHash};
use serde_json::{Value, json};

pub const INSTITUTION: &str = "itjen-uji";
pub const POW_BITS: u8 = 6;

/// Everything the server writes to its log, for the privacy checks.
pub fn captured_log() -> Vec<u8> {
    log_buffer().lock().unwrap().clone()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_log() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let buffer = log_buffer().clone();
        let _ = peluit_server::logging::init(move || LogWriter(buffer.clone()));
    });
}

pub struct Desk {
    pub investigators: Vec<SealIdentity>,
    pub escrow: SealIdentity,
    pub reply_key: SigningKey,
    /// Reply-signing keys of the other investigators (only the first signs in tests).
    pub other_reply_keys: Vec<SigningKey>,
    pub manifest_key: SigningKey,
}

impl Desk {
    pub fn new(investigators: usize) -> Self {
        Self {
            investigators: (0..investigators)
                .map(|_| SealIdentity::generate())
                .collect(),
            escrow: SealIdentity::generate(),
            reply_key: SigningKey::generate(),
            other_reply_keys: (1..investigators).map(|_| SigningKey::generate()).collect(),
            manifest_key: SigningKey::generate(),
        }
    }

    pub fn recipients(&self) -> Vec<SealRecipient> {
        let mut out: Vec<_> = self.investigators.iter().map(|i| i.recipient()).collect();
        out.push(self.escrow.recipient());
        out
    }

    pub fn manifest(&self, origin: &str, serial: u64) -> Manifest {
        self.manifest_for(INSTITUTION, "Inspektorat Uji", origin, serial)
    }

    /// The manifest of another institution, for servers that serve several.
    pub fn manifest_for(&self, id: &str, name: &str, origin: &str, serial: u64) -> Manifest {
        let mut keys = Vec::new();
        for (i, identity) in self.investigators.iter().enumerate() {
            keys.push(ManifestKey {
                holder: format!("investigator:{i}"),
                purpose: Purpose::Seal,
                public: identity.recipient().to_string(),
            });
            // Only the first investigator signs replies in these tests; the others need
            // keys too, since every seal holder must have one.
            let reply = if i == 0 {
                self.reply_key.verifying_key()
            } else {
                self.other_reply_keys[i - 1].verifying_key()
            };
            keys.push(ManifestKey {
                holder: format!("investigator:{i}"),
                purpose: Purpose::ReplySigning,
                public: reply.to_string(),
            });
        }
        keys.push(ManifestKey {
            holder: "escrow".into(),
            purpose: Purpose::EscrowSeal,
            public: self.escrow.recipient().to_string(),
        });
        let today = today();
        Manifest {
            version: 1,
            institution: ManifestInstitution {
                id: id.parse().unwrap(),
                name: name.into(),
            },
            origins: vec![origin.to_owned()],
            serial,
            valid_from: today,
            valid_until: Day::from_unix_seconds((today.days_since_epoch() + 30) * 86_400).unwrap(),
            keys,
            form: FormDefinition::kws_default(),
        }
    }

    pub fn signed_manifest(&self, origin: &str, serial: u64) -> SignedManifest {
        self.manifest(origin, serial).sign(&self.manifest_key)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub desk: Desk,
    pub token: String,
    pub store: Arc<SledStore>,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Limits)) -> Self {
        init_log();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let desk = Desk::new(2);
        let id: InstitutionId = INSTITUTION.parse().unwrap();
        let signed = desk.signed_manifest(&format!("http://127.0.0.1:{}", addr.port()), 1);
        store
            .put_manifest(&id, 1, &ManifestBytes::new(signed.to_json()))
            .unwrap();
        let token = IssuedToken::generate();
        store
            .put_token_hash(
                &id,
                TokenHash::from_bytes(token.hash()),
                "test desk",
                today(),
            )
            .unwrap();
        let mut limits = Limits {
            pow_bits: POW_BITS,
            ..Limits::default()
        };
        tune(&mut limits);
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let institutions = vec![Institution {
            id,
            name: "Inspektorat Uji".into(),
            manifest_key: desk.manifest_key.verifying_key(),
        }];
        let state = AppState::new(store.clone(), institutions, limits, spool).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                peluit_server::serve(listener, state, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            }
        });
        Self {
            addr,
            base,
            desk,
            token: token.expose_secret().to_owned(),
            store,
            state,
            dir,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn api(&self, rest: &str) -> String {
        format!("{}/api/v1/institutions/{INSTITUTION}{rest}", self.base)
    }

    pub fn digest(&self) -> [u8; 32] {
        self.store.content_digest().unwrap()
    }

    /// A well-formed sealed envelope around `content`.
    pub fn seal(&self, content: &[u8]) -> Vec<u8> {
        peluit_proto::seal::seal_padded(content, &self.desk.recipients()).unwrap()
    }

    pub fn report_body(
        &self,
        envelope: &[u8],
        attachments: &[String],
        mailbox: &SigningKey,
    ) -> Value {
        report_body(&self.desk, envelope, attachments, mailbox)
    }

    /// Submits a report; returns (status, body).
    pub async fn submit(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.api("/reports"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a GET to `url`.
    pub async fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::Response {
        self.client.get(url).send().await.unwrap()
    }

    /// Sends a GET to `url` and parses the answer as JSON.
    pub async fn get_json(&self, url: impl reqwest::IntoUrl) -> Value {
        self.get(url).await.json().await.unwrap()
    }

    /// Submits a report of `envelope` with `attachments` for `mailbox`; returns (status, body).
    pub async fn submit_report(
        &self,
        envelope: &[u8],
        attachments: &[String],
        mailbox: &SigningKey,
    ) -> (u16, Value) {
        self.submit(&self.report_body(envelope, attachments, mailbox))
            .await
    }

    /// Submits `body` and asserts the refusal: status and machine code.
    pub async fn expect_report_refused(&self, body: &Value, status: u16, code: &str) {
        let (got, answer) = self.submit(body).await;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)));
    }

    /// Declares an upload of `sealed_size` bytes; returns its id.
    pub async fn create_upload(&self, sealed_size: usize) -> String {
        let created = send_json(
            self.client
                .post(self.api("/uploads"))
                .json(&json!({"version": 1, "sealed_size": sealed_size})),
        )
        .await;
        created["upload"].as_str().unwrap().to_owned()
    }

    /// Sends `body` as the upload's bytes from `offset` on (the offset in the query).
    pub async fn put_upload(&self, id: &str, offset: usize, body: Vec<u8>) -> reqwest::Response {
        self.client
            .put(self.api(&format!("/uploads/{id}?offset={offset}")))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Asks the server to complete the upload.
    pub async fn complete_upload(&self, id: &str) -> reqwest::Response {
        self.client
            .post(self.api(&format!("/uploads/{id}/complete")))
            .send()
            .await
            .unwrap()
    }

    /// The upload's durable offset, as its state answers it.
    pub async fn upload_offset(&self, id: &str) -> usize {
        let state = self.get_json(self.api(&format!("/uploads/{id}"))).await;
        state["offset"].as_u64().unwrap() as usize
    }

    /// Sends, over a raw socket, a PUT of the upload that promises all of `sealed` from
    /// offset 0 but carries only its first `sent` bytes, then hangs up.
    pub async fn put_cut_off(&self, id: &str, sealed: &[u8], sent: usize) {
        let mut request = format!(
            "PUT /api/v1/institutions/{INSTITUTION}/uploads/{id}?offset=0 HTTP/1.1\r\nHost: x\r\n\
             Content-Length: {}\r\n\r\n",
            sealed.len()
        )
        .into_bytes();
        request.extend_from_slice(&sealed[..sent]);
        let addr = self.addr;
        tokio::task::spawn_blocking(move || raw_exchange(addr, &request))
            .await
            .unwrap();
    }

    /// Polls the upload's offset every 50 ms, at most `attempts` times, until it is
    /// `expected`; returns the last offset read.
    pub async fn wait_for_offset(&self, id: &str, expected: usize, attempts: usize) -> usize {
        let mut offset = 0;
        for _ in 0..attempts {
            offset = self.upload_offset(id).await;
            if offset == expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        offset
    }

    /// Uploads `bytes` as a complete attachment; returns its id.
    pub async fn upload(&self, bytes: &[u8]) -> String {
        let id = self.create_upload(bytes.len()).await;
        assert_eq!(self.put_upload(&id, 0, bytes.to_vec()).await.status(), 200);
        assert_eq!(self.complete_upload(&id).await.status(), 200);
        id
    }

    /// The export bundle since cursor 0, fetched with the desk's token.
    pub async fn export_bundle(&self) -> bytes::Bytes {
        self.client
            .get(self.api("/export?since=0"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    /// The case envelopes and attachments of the export since cursor 0, as
    /// [`bundle_payloads`] reads them.
    pub async fn exported_payloads(&self, attachment_limit: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        bundle_payloads(&self.export_bundle().await, attachment_limit)
    }

    /// Posts a bring-your-own-ciphertext form naming `institution`, with `file` as its file.
    pub async fn submit_file(
        &self,
        institution: &str,
        file: reqwest::multipart::Part,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .text("institution", institution.to_owned())
            .part("file", file);
        self.client
            .post(self.url("/submit-file"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// A fresh mailbox challenge from the server.
    pub async fn challenge(&self) -> peluit_proto::auth::Challenge {
        let challenge = self
            .client
            .post(self.api("/mailbox/challenges"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        peluit_proto::auth::Challenge::from_json(&challenge).unwrap()
    }

    /// Opens a mailbox session for `key`; returns the session handle.
    pub async fn mailbox_session(&self, key: &SigningKey) -> (u16, Option<String>) {
        let response = peluit_proto::auth::respond(&self.challenge().await, key);
        let answer = self
            .client
            .post(self.api("/mailbox/sessions"))
            .body(response.to_json())
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        (status, body["session"].as_str().map(str::to_owned))
    }

    /// The mailbox's message list, read with the session's `authorization` value.
    pub async fn mailbox_messages(&self, authorization: &str) -> Value {
        send_json(
            self.client
                .get(self.api("/mailbox/messages"))
                .header("authorization", authorization),
        )
        .await
    }

    /// A follow-up of the sealed `message` with its mailbox `signature`, ready to send.
    pub fn follow_up_request(
        &self,
        authorization: &str,
        signature: &Signature,
        message: &[u8],
    ) -> reqwest::RequestBuilder {
        self.client
            .post(self.api("/mailbox/follow-ups"))
            .header("authorization", authorization)
            .json(&json!({
                "version": 1,
                "message": peluit_proto::encoding::b64(message),
                "signature": serde_json::to_value(signature).unwrap(),
            }))
    }

    /// An import of the reply bundle `body` with `token`, ready to send.
    pub fn import_request(&self, body: Vec<u8>, token: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.api("/replies"))
            .bearer_auth(token)
            .body(body)
    }
}

/// A report request around `envelope` for `desk`'s institution, stamped at [`POW_BITS`].
pub fn report_body(
    desk: &Desk,
    envelope: &[u8],
    attachments: &[String],
    mailbox: &SigningKey,
) -> Value {
    let sha = SealedMessage::check(envelope.to_vec(), desk.recipients().len(), 1 << 20)
        .map(|m| m.sha256())
        .unwrap_or_else(|_| sha256(envelope));
    let stamp: Value = serde_json::from_slice(&Stamp::mint(&sha, POW_BITS).to_json()).unwrap();
    json!({
        "version": 1,
        "envelope": peluit_proto::encoding::b64(envelope),
        "attachments": attachments,
        "mailbox_key": mailbox.verifying_key().to_string(),
        "stamp": stamp,
    })
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// A reply bundle for `institution` carrying `replies`, as the desk writes one.
pub fn reply_bundle(institution: &InstitutionId, replies: &[&SealedReply]) -> Vec<u8> {
    let header = BundleHeader {
        kind: BundleKind::Reply,
        institution: institution.clone(),
        created: today(),
        cursor_from: 0,
        cursor_to: 0,
    };
    let mut writer = BundleWriter::new(Vec::new(), &header).unwrap();
    for reply in replies {
        writer
            .write_frame(&FrameMeta::Reply, &reply.to_json())
            .unwrap();
    }
    writer.finish().unwrap()
}

/// The case envelopes and the attachments of an export bundle, each in bundle order:
/// envelopes read up to 1 MiB, attachments up to `attachment_limit` bytes.
pub fn bundle_payloads(bundle: &[u8], attachment_limit: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut reader = BundleReader::new(bundle).unwrap();
    let (mut envelopes, mut attachments) = (Vec::new(), Vec::new());
    while let Some(mut frame) = reader.next_frame().unwrap() {
        match frame.meta() {
            FrameMeta::Case { .. } => envelopes.push(frame.read_payload_to_end(1 << 20).unwrap()),
            FrameMeta::Attachment { .. } => {
                attachments.push(frame.read_payload_to_end(attachment_limit).unwrap())
            }
            _ => {}
        }
    }
    (envelopes, attachments)
}

/// Sends `request` and parses the answer as JSON.
pub async fn send_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Sends `request` and asserts an API error: status and machine code.
pub async fn expect_refused(request: reqwest::RequestBuilder, status: u16, code: &str) {
    expect_error(request.send().await.unwrap(), status, code).await;
}

/// Asserts an API error: status and machine code.
pub async fn expect_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status for expected {code}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
}

/// Writes raw bytes to the server over TCP and returns whatever it answers before closing.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}
