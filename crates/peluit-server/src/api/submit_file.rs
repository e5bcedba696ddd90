//! Bring your own ciphertext: a plain HTML form (no script, works at Tor Browser's Safest
//! level) that accepts a `.age` file made with any age tool to the published recipients,
//! checks it like an envelope and answers a page with the case id (docs/api.md#byo).

use std::io::{Read as _, Seek as _, Write as _};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::http::StatusCode;
use axum::response::Response;
use peluit_proto::keys::SigningKey;
use peluit_proto::limits::{MAX_ENVELOPE_LEN, MAX_HEADER_LEN};
use peluit_proto::manifest::fingerprint_words;
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use peluit_proto::wordlist::Language;
use peluit_store::{PowHash, UploadSink};
use sha2::{Digest, Sha256};

use crate::api::html::{escape, html, page};
use crate::api::v1::reports::{check_message, store_case};
use crate::api::v1::uploads::{CHUNK_LEN, COMMIT_BYTES, WRITE_CHUNKS};
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, InstitutionState, today};

fn institution_block(institution: &InstitutionState) -> String {
    let Some(manifest) = institution.current_opt() else {
        return String::new();
    };
    let recipients = manifest.seal_recipients();
    let flags: Vec<String> = recipients.iter().map(|r| format!("-r {r}")).collect();
    let words = fingerprint_words(&institution.config.manifest_key, Language::Id).join(" ");
    format!(
        "<section>\n<h2>{name}</h2>\n\
         <p>Kunci manifes / manifest key: <code>{words}</code></p>\n\
         <p>Enkripsi berkas Anda ke <strong>semua</strong> {n} penerima berikut (manifes nomor \
         {serial}) / Encrypt your file to <strong>all</strong> {n} recipients below:</p>\n\
         <pre><code>age -e {flags} -o laporan.age laporan.pdf</code></pre>\n</section>\n",
        name = escape(&institution.config.name),
        n = recipients.len(),
        serial = manifest.serial(),
        flags = escape(&flags.join(" ")),
    )
}

/// `GET /submit-file`: the form.
pub async fn get_form(State(state): State<AppState>) -> Response {
    let mut options = String::new();
    let mut blocks = String::new();
    for institution in state.institutions() {
        if institution.current_opt().is_none() {
            continue;
        }
        options.push_str(&format!(
            "<option value=\"{id}\">{name}</option>\n",
            id = escape(institution.config.id.as_str()),
            name = escape(&institution.config.name)
        ));
        blocks.push_str(&institution_block(&institution));
    }
    let body = format!(
        "<h1>Kirim berkas terenkripsi / Send an encrypted file</h1>\n\
         <p>Halaman ini bekerja tanpa JavaScript. Berkas harus sudah dienkripsi dengan age \
         di perangkat Anda sendiri; server hanya menerima berkas terenkripsi. Setelah \
         terkirim Anda mendapat nomor perkara. Balasan tidak dapat dikirim ke pelapor \
         melalui jalur ini.</p>\n\
         <p lang=\"en\">This page works without JavaScript. Encrypt the file with age on \
         your own device first; the server accepts only encrypted files. You get a case \
         number. Replies cannot reach you through this route.</p>\n\
         <p>Server melihat ukuran persis berkas terenkripsi, dan dari situ ukuran isinya. \
         Untuk menyamarkannya, masukkan berkas ke dalam arsip (zip) bersama berkas pengisi \
         sebelum dienkripsi.</p>\n\
         <p lang=\"en\">The server sees the encrypted file's exact size, and from it the size \
         of its content. To hide it, put the file in an archive (zip) with a filler file \
         before encrypting.</p>\n\
         {blocks}\
         <form method=\"post\" action=\"/submit-file\" enctype=\"multipart/form-data\">\n\
         <label for=\"institution\">Instansi / Institution</label>\n\
         <select id=\"institution\" name=\"institution\" required>\n{options}</select>\n\
         <label for=\"file\">Berkas .age / .age file</label>\n\
         <input id=\"file\" name=\"file\" type=\"file\" accept=\".age\" required>\n\
         <button type=\"submit\">Kirim / Send</button>\n</form>\n"
    );
    html(StatusCode::OK, page("Kirim berkas terenkripsi", &body))
}

fn error_page(code: ErrorCode) -> String {
    let advice = match code {
        ErrorCode::WrongRecipients => {
            "Berkas bukan berkas age yang dienkripsi ke semua penerima yang diterbitkan. \
             / The file is not age-encrypted to exactly the published recipients."
        }
        ErrorCode::PayloadTooLarge => "Berkas terlalu besar. / The file is too large.",
        ErrorCode::TooManyRequests => {
            "Server sedang sibuk; coba lagi beberapa menit lagi. / The server is busy; try \
             again in a few minutes."
        }
        _ => "Pengiriman gagal; tidak ada yang disimpan. / The upload failed; nothing was kept.",
    };
    page(
        "Gagal / Failed",
        &format!(
            "<h1>Gagal / Failed</h1>\n<p class=\"error\" id=\"error-code\">{}</p>\n<p>{}</p>\n\
             <p><a href=\"/submit-file\">Kembali / Back</a></p>",
            code.as_str(),
            advice
        ),
    )
}

/// `POST /submit-file` (multipart: `institution`, then `file`).
pub async fn post_file(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    match receive(&state, multipart).await {
        Ok(case) => {
            let body = format!(
                "<h1>Terkirim / Sent</h1>\n\
                 <p>Nomor perkara Anda / Your case number:</p>\n\
                 <p class=\"case-id\" id=\"case-id\">{case}</p>\n\
                 <p>Simpan nomor ini. / Keep this number.</p>"
            );
            html(StatusCode::CREATED, page("Terkirim / Sent", &body))
        }
        Err(error) => error.into_html_response(error_page),
    }
}

async fn receive(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<peluit_proto::ids::CaseId, ApiError> {
    let mut multipart = multipart.map_err(|_| ApiError::bad_request("not a multipart form"))?;
    state.take_byo_slot()?;
    // The institution must come first: it fixes the recipient count the file is
    // checked against before its bytes are accepted.
    let field = next_field(&mut multipart).await?;
    if field.name() != Some("institution") {
        return Err(ApiError::bad_request("first field must be institution"));
    }
    let id = field
        .bytes()
        .await
        .map_err(|_| ApiError::bad_request("institution field unreadable"))?;
    let id = std::str::from_utf8(&id).map_err(|_| ApiError::bad_request("institution not text"))?;
    let institution = state.institution(id)?;
    let manifest = institution.current()?;
    let recipients = manifest.seal_recipients();
    let field = next_field(&mut multipart).await?;
    if field.name() != Some("file") {
        return Err(ApiError::bad_request("second field must be file"));
    }
    let received = receive_file(state, field, recipients.len()).await?;
    let mailbox = SigningKey::generate().verifying_key();
    match received {
        Received::Small(bytes) => {
            let envelope = check_message(bytes, recipients.len())?;
            let pow = PowHash::from_bytes(envelope.sha256());
            store_case(state, &institution, envelope, Vec::new(), mailbox, pow).await
        }
        Received::Spooled { file, len, sha256 } => {
            let upload = store_spooled(state, &institution, file, len).await?;
            // The case's envelope is an empty padded message sealed by the server to the
            // same recipients; the file itself is the case's only attachment.
            let empty = peluit_proto::seal::seal_padded(b"", &recipients)?;
            let envelope = SealedMessage::check(empty, recipients.len(), MAX_ENVELOPE_LEN)?;
            store_case(
                state,
                &institution,
                envelope,
                vec![upload],
                mailbox,
                PowHash::from_bytes(sha256),
            )
            .await
        }
    }
}

async fn next_field<'a>(multipart: &'a mut Multipart) -> Result<Field<'a>, ApiError> {
    multipart
        .next_field()
        .await
        .map_err(|_| ApiError::bad_request("multipart body malformed"))?
        .ok_or_else(|| ApiError::bad_request("missing form field"))
}

enum Received {
    Small(Vec<u8>),
    Spooled {
        file: std::fs::File,
        len: u64,
        sha256: [u8; 32],
    },
}

async fn next_chunk(state: &AppState, field: &mut Field<'_>) -> Result<Option<Bytes>, ApiError> {
    match tokio::time::timeout(state.limits().upload_idle_timeout(), field.chunk()).await {
        Err(_) => Err(ApiError::new(ErrorCode::Timeout, "upload idle too long")),
        Ok(Err(_)) => Err(ApiError::bad_request("upload body interrupted")),
        Ok(Ok(chunk)) => Ok(chunk),
    }
}

/// Reads the file field: up to the envelope limit in memory, beyond that into an
/// anonymous temporary file (ciphertext only, unlinked at once, never named).
async fn receive_file(
    state: &AppState,
    mut field: Field<'_>,
    recipients: usize,
) -> Result<Received, ApiError> {
    let mut head: Vec<u8> = Vec::new();
    let mut header_checked = false;
    while let Some(chunk) = next_chunk(state, &mut field).await? {
        head.extend_from_slice(&chunk);
        if !header_checked && head.len() >= MAX_HEADER_LEN {
            // Refuse non-age or wrongly sealed files before reading them whole.
            // docs/protocol.md#recipient-check
            peluit_proto::header::check_sealed_to(&head, recipients)
                .map_err(|error| ApiError::from_library(ErrorCode::WrongRecipients, &error))?;
            header_checked = true;
        }
        if head.len() > MAX_ENVELOPE_LEN {
            break;
        }
    }
    if head.len() <= MAX_ENVELOPE_LEN {
        return Ok(Received::Small(head));
    }
    let max = state.limits().max_upload_bytes;
    let file = tempfile::tempfile_in(state.spool_dir())
        .map_err(|_| ApiError::internal("cannot create spool file"))?;
    let mut spool = Spool::new(file);
    let mut len = head.len() as u64;
    spool.push(head).await?;
    while let Some(chunk) = next_chunk(state, &mut field).await? {
        len += chunk.len() as u64;
        if len > max {
            return Err(ApiError::too_large("file over the upload limit"));
        }
        spool.push_slice(&chunk).await?;
    }
    let (file, sha256) = spool.finish().await?;
    Ok(Received::Spooled { file, len, sha256 })
}

/// Bytes gathered before one spool write: one blocking-pool task per write, while the
/// next write's bytes are read from the socket.
const SPOOL_WRITE: usize = 512 * 1024;

type Task<T> = tokio::task::JoinHandle<T>;

/// The spool file being written. Writing and hashing run on the blocking pool, never on
/// the async runtime: a write into the page cache can sleep for as long as the kernel
/// throttles dirty pages, and hashing a large file costs seconds of CPU; either would
/// stall every other request on the same runtime thread. They run beside each other on
/// the same bytes, at most one of each in flight, so memory stays at two buffers
/// whatever the file's size.
struct Spool {
    /// The file and the hash when no write or hashing is in flight.
    file: Option<std::fs::File>,
    hasher: Option<Sha256>,
    writing: Option<Task<std::io::Result<std::fs::File>>>,
    hashing: Option<Task<Sha256>>,
    gathering: Vec<u8>,
}

impl Spool {
    fn new(file: std::fs::File) -> Self {
        Self {
            file: Some(file),
            hasher: Some(Sha256::new()),
            writing: None,
            hashing: None,
            gathering: Vec::new(),
        }
    }

    async fn push(&mut self, bytes: Vec<u8>) -> Result<(), ApiError> {
        if self.gathering.is_empty() && bytes.len() >= SPOOL_WRITE {
            return self.write(Bytes::from(bytes)).await;
        }
        self.push_slice(&bytes).await
    }

    async fn push_slice(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        if self.gathering.capacity() == 0 {
            self.gathering.reserve_exact(SPOOL_WRITE);
        }
        self.gathering.extend_from_slice(bytes);
        if self.gathering.len() >= SPOOL_WRITE {
            let full = std::mem::take(&mut self.gathering);
            self.write(Bytes::from(full)).await?;
        }
        Ok(())
    }

    /// Waits for the write and the hashing in flight, then hands `bytes` to the next.
    async fn write(&mut self, bytes: Bytes) -> Result<(), ApiError> {
        let (mut file, mut hasher) = self.wait().await?;
        let hashed = bytes.clone();
        self.hashing = Some(tokio::task::spawn_blocking(move || {
            hasher.update(&hashed);
            hasher
        }));
        self.writing = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&bytes)?;
            Ok(file)
        }));
        Ok(())
    }

    async fn wait(&mut self) -> Result<(std::fs::File, Sha256), ApiError> {
        let panicked = |_| ApiError::internal("spool task panicked");
        if let Some(hashing) = self.hashing.take() {
            self.hasher = Some(hashing.await.map_err(panicked)?);
        }
        if let Some(writing) = self.writing.take() {
            let file = writing
                .await
                .map_err(panicked)?
                .map_err(|_| ApiError::internal("cannot write spool file"))?;
            self.file = Some(file);
        }
        match (self.file.take(), self.hasher.take()) {
            (Some(file), Some(hasher)) => Ok((file, hasher)),
            _ => Err(ApiError::internal("spool file lost")),
        }
    }

    /// Writes what is gathered and returns the file with the SHA-256 of all its bytes.
    async fn finish(mut self) -> Result<(std::fs::File, [u8; 32]), ApiError> {
        if !self.gathering.is_empty() {
            let rest = std::mem::take(&mut self.gathering);
            self.write(Bytes::from(rest)).await?;
        }
        let (file, hasher) = self.wait().await?;
        Ok((file, hasher.finalize().into()))
    }
}

/// Copies a spooled file into a completed upload through one append session, as a
/// streamed upload is stored: writes of [`WRITE_CHUNKS`] chunks, a commit every
/// [`COMMIT_BYTES`] running beside the writes (so the disk flushes one stretch while the
/// next is copied), and a last commit at the end (docs/api.md#byo). A failure drops the session, which cuts the
/// upload's file back to its last commit; the upload is never completed, so no case can
/// name it, and it expires like any abandoned upload.
async fn store_spooled(
    state: &AppState,
    institution: &InstitutionState,
    mut file: std::fs::File,
    len: u64,
) -> Result<peluit_proto::ids::UploadId, ApiError> {
    let id = institution.config.id.clone();
    let recipients = institution.current()?.seal_recipients().len();
    let day = today();
    state
        .store(move |store| {
            file.rewind().map_err(spool_unreadable)?;
            let upload = store.create_upload(&id, len, day)?;
            let sink = store.open_upload_sink(&id, upload, 0)?;
            copy_spool(&mut file, len, recipients, sink.as_ref())?;
            // The session must end before completion: completing checks the durable length.
            drop(sink);
            store.complete_upload(&id, upload)?;
            Ok(upload)
        })
        .await
}

fn spool_unreadable(_: std::io::Error) -> peluit_store::Error {
    peluit_store::Error::Invalid("spool file unreadable")
}

/// Writes the first `len` bytes of `file` into `sink` and commits them all. The first
/// chunk must hold an age header sealed to the manifest's recipient count (the header was
/// checked as the file arrived; this keeps the store's own rule for a first chunk).
/// docs/protocol.md#recipient-check
fn copy_spool(
    file: &mut std::fs::File,
    len: u64,
    recipients: usize,
    sink: &dyn UploadSink,
) -> peluit_store::Result<()> {
    type Commit<'scope> = std::thread::ScopedJoinHandle<'scope, peluit_store::Result<u64>>;
    let joined = |handle: Commit<'_>| {
        handle.join().map_err(|_| {
            peluit_store::Error::Storage(Box::new(std::io::Error::other("upload commit panicked")))
        })?
    };
    std::thread::scope(|scope| {
        let mut committing: Option<Commit<'_>> = None;
        let mut committed_at = 0u64;
        let mut offset = 0u64;
        let mut chunks: Vec<SealedChunk> = Vec::with_capacity(WRITE_CHUNKS);
        // Buffers of written chunks, reused so the copy does not churn the allocator.
        let mut spare: Vec<Vec<u8>> = Vec::with_capacity(WRITE_CHUNKS);
        while offset < len {
            while chunks.len() < WRITE_CHUNKS && offset < len {
                let want = (len - offset).min(CHUNK_LEN as u64) as usize;
                let mut bytes = spare.pop().unwrap_or_default();
                bytes.resize(want, 0);
                file.read_exact(&mut bytes).map_err(spool_unreadable)?;
                let chunk = if offset == 0 {
                    SealedChunk::check_first(bytes, recipients).map_err(|_| {
                        peluit_store::Error::Invalid("first piece is not sealed right")
                    })?
                } else {
                    SealedChunk::new(bytes)
                };
                offset += want as u64;
                chunks.push(chunk);
            }
            sink.write(&chunks)?;
            spare.extend(chunks.drain(..).map(SealedChunk::into_bytes));
            let idle = committing.as_ref().is_none_or(|c| c.is_finished());
            if idle && offset - committed_at >= COMMIT_BYTES {
                if let Some(previous) = committing.take() {
                    joined(previous)?;
                }
                // Covers every write so far: they all returned before it starts.
                committed_at = offset;
                committing = Some(scope.spawn(|| sink.commit()));
            }
        }
        if let Some(previous) = committing.take() {
            joined(previous)?;
        }
        sink.commit()?;
        Ok(())
    })
}
