//! Bring your own ciphertext: a plain HTML form (no script, works at Tor Browser's Safest
//! level) that accepts a `.age` file made with any age tool to the published recipients,
//! checks it like an envelope and answers a page with the case id (docs/api.md#byo).

use std::io::{Read as _, Seek as _, Write as _};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use peluit_proto::keys::SigningKey;
use peluit_proto::limits::{MAX_ENVELOPE_LEN, MAX_HEADER_LEN, SEALED_CHUNK_SIZE};
use peluit_proto::manifest::fingerprint_words;
use peluit_proto::sealed::{SealedChunk, SealedMessage};
use peluit_proto::wordlist::Language;
use peluit_store::PowHash;
use sha2::{Digest, Sha256};

use crate::api::v1::reports::{check_message, store_case};
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, InstitutionState, today};

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/assets/style.css\">\n</head>\n\
         <body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

fn html(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        text,
    )
        .into_response()
}

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
        blocks.push_str(&institution_block(institution));
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
            store_case(state, institution, envelope, Vec::new(), mailbox, pow).await
        }
        Received::Spooled { file, len, sha256 } => {
            let upload = store_spooled(state, institution, file, len).await?;
            // The case's envelope is an empty padded message sealed by the server to the
            // same recipients; the file itself is the case's only attachment.
            let empty = peluit_proto::seal::seal_padded(b"", &recipients)?;
            let envelope = SealedMessage::check(empty, recipients.len(), MAX_ENVELOPE_LEN)?;
            store_case(
                state,
                institution,
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
    let mut file = tempfile::tempfile_in(state.spool_dir())
        .map_err(|_| ApiError::internal("cannot create spool file"))?;
    let mut hasher = Sha256::new();
    let mut len = head.len() as u64;
    hasher.update(&head);
    file.write_all(&head)
        .map_err(|_| ApiError::internal("cannot write spool file"))?;
    drop(head);
    while let Some(chunk) = next_chunk(state, &mut field).await? {
        len += chunk.len() as u64;
        if len > max {
            return Err(ApiError::too_large("file over the upload limit"));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|_| ApiError::internal("cannot write spool file"))?;
    }
    Ok(Received::Spooled {
        file,
        len,
        sha256: hasher.finalize().into(),
    })
}

/// Copies a spooled file into a completed upload, piece by piece.
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
            let io = |_| peluit_store::Error::Invalid("spool file unreadable");
            file.rewind().map_err(io)?;
            let upload = store.create_upload(&id, len, day)?;
            let mut offset = 0u64;
            let mut piece = vec![0u8; SEALED_CHUNK_SIZE];
            while offset < len {
                let want = (len - offset).min(SEALED_CHUNK_SIZE as u64) as usize;
                file.read_exact(&mut piece[..want]).map_err(io)?;
                let bytes = piece[..want].to_vec();
                let chunk = if offset == 0 {
                    SealedChunk::check_first(bytes, recipients).map_err(|_| {
                        peluit_store::Error::Invalid("first piece is not sealed right")
                    })?
                } else {
                    SealedChunk::new(bytes)
                };
                offset = store.append_upload(&id, upload, offset, &chunk)?;
            }
            store.complete_upload(&id, upload)?;
            Ok(upload)
        })
        .await
}
