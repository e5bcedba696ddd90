//! Resumable, streamed uploads of sealed attachments: create with the declared sealed
//! size, `PUT` bytes at the current offset (streamed into store pieces, never buffered
//! whole), ask where it stands after an interruption, then complete (docs/api.md#uploads).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt as _;
use peluit_proto::ids::{InstitutionId, UploadId};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::SealedChunk;
use peluit_store::{MAX_CHUNKS_PER_APPEND, PIECE_LEN, UploadState};
use serde::{Deserialize, Serialize};

use crate::api::StrictJson;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, InstitutionState, today};

/// Header carrying the offset of a `PUT`, as an alternative to `?offset=`.
pub const OFFSET_HEADER: &str = "upload-offset";

/// Body of `POST …/uploads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Always 1.
    pub version: u64,
    /// The exact size of the sealed attachment in bytes.
    pub sealed_size: u64,
}

/// Where an upload stands.
#[derive(Debug, Serialize)]
pub struct UploadStatus {
    /// The upload id (a capability: whoever knows it may append).
    pub upload: String,
    /// The declared sealed size.
    pub sealed_size: u64,
    /// Bytes stored so far: the offset the next `PUT` must start at.
    pub offset: u64,
    /// Whether the upload was completed.
    pub complete: bool,
}

impl From<UploadState> for UploadStatus {
    fn from(state: UploadState) -> Self {
        Self {
            upload: state.id.to_string(),
            sealed_size: state.declared_len,
            offset: state.received,
            complete: state.complete,
        }
    }
}

/// Parses a URL id or answers 400.
pub fn parse_upload(text: &str) -> Result<UploadId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed upload id"))
}

/// `POST …/uploads`: opens an upload session for a declared sealed size.
pub async fn create_upload(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    StrictJson(request): StrictJson<CreateUpload>,
) -> Result<(StatusCode, Json<UploadStatus>), ApiError> {
    let institution = state.institution(&institution)?;
    if request.version != 1 {
        return Err(ApiError::bad_request("unsupported version"));
    }
    // There must be a manifest to check the first piece against.
    institution.current()?;
    // The smallest sealed attachment is a header and one tagged chunk; the largest is
    // the configured limit. docs/protocol.md#limits
    if request.sealed_size == 0 {
        return Err(ApiError::bad_request("empty upload"));
    }
    if request.sealed_size > state.limits().max_upload_bytes {
        return Err(ApiError::too_large("declared size over the upload limit"));
    }
    let id = institution.config.id.clone();
    let size = request.sealed_size;
    let day = today();
    // Creating uploads needs no credential, and each may fill up to the upload limit
    // until it expires: cap how many may be open at once, or anyone could fill the disk.
    // Concurrent creations may overshoot the cap by a few.
    let counted = id.clone();
    let open = state
        .store(move |store| store.open_uploads(&counted))
        .await?;
    if open >= state.limits().max_open_uploads {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            "too many open uploads",
        ));
    }
    let upload = state
        .store(move |store| {
            let upload = store.create_upload(&id, size, day)?;
            store.upload_state(&id, upload)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(upload.into())))
}

/// `GET …/uploads/{upload}`: where the upload stands (what a resuming client asks).
pub async fn get_upload(
    State(state): State<AppState>,
    Path((institution, upload)): Path<(String, String)>,
) -> Result<Json<UploadStatus>, ApiError> {
    let institution = state.institution(&institution)?;
    let upload = parse_upload(&upload)?;
    let id = institution.config.id.clone();
    let status = state
        .store(move |store| store.upload_state(&id, upload))
        .await?;
    Ok(Json(status.into()))
}

/// `POST …/uploads/{upload}/complete`: every declared byte arrived; the upload may now
/// be named by a report.
pub async fn complete_upload(
    State(state): State<AppState>,
    Path((institution, upload)): Path<(String, String)>,
) -> Result<Json<UploadStatus>, ApiError> {
    let institution = state.institution(&institution)?;
    let upload = parse_upload(&upload)?;
    let id = institution.config.id.clone();
    let status = state
        .store(move |store| {
            store.complete_upload(&id, upload)?;
            store.upload_state(&id, upload)
        })
        .await?;
    Ok(Json(status.into()))
}

fn requested_offset(query: Option<&str>, headers: &HeaderMap) -> Result<u64, ApiError> {
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("offset="))
            .map(str::to_owned)
    });
    let from_header = headers
        .get(OFFSET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => {
            return Err(ApiError::bad_request("offset in query and header differ"));
        }
        (Some(text), _) | (None, Some(text)) => text,
        (None, None) => return Err(ApiError::bad_request("missing offset")),
    };
    // Plain decimal digits only, so one offset has one spelling.
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::bad_request("malformed offset"));
    }
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed offset"))
}

/// `PUT …/uploads/{upload}?offset=N` (or `Upload-Offset: N`): appends the body at `N`,
/// which must be the current offset. The body is streamed into batches of chunks, each
/// batch durable before more is read; on an interrupted body what arrived is stored, and
/// the client resumes from `GET`'s offset.
pub async fn put_upload(
    State(state): State<AppState>,
    Path((institution, upload)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadStatus>, ApiError> {
    let institution = state.institution(&institution)?;
    let upload = parse_upload(&upload)?;
    let offset = requested_offset(query.as_deref(), &headers)?;
    let id = institution.config.id.clone();
    let current = state
        .store({
            let id = id.clone();
            move |store| store.upload_state(&id, upload)
        })
        .await?;
    if current.complete || current.attached_to.is_some() {
        return Err(ApiError::conflict("upload already complete"));
    }
    // Pieces are appended in order only; a client that lost track asks GET first.
    if offset != current.received {
        return Err(ApiError::conflict("offset is not the upload's current end"));
    }
    let remaining = current.declared_len - current.received;
    let declared_body = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_body.is_some_and(|len| len > remaining) {
        return Err(ApiError::too_large(
            "body longer than the upload's remaining size",
        ));
    }
    let received = stream_into_upload(&state, institution, upload, offset, remaining, body).await?;
    Ok(Json(UploadStatus {
        upload: upload.to_string(),
        sealed_size: current.declared_len,
        offset: received,
        complete: false,
    }))
}

/// Bytes per chunk handed to the store: the largest multiple of the store's piece length
/// that fits in one sealed STREAM chunk (65,536), so every chunk but a body's last splits
/// into whole pieces and no stub piece is written per chunk. docs/storage.md#why-4-kib
pub const CHUNK_LEN: usize = SEALED_CHUNK_SIZE / PIECE_LEN * PIECE_LEN;

/// Chunks per durable append (2 MiB): one store step and one sync per batch instead of
/// one per chunk, which is what lifts ingest from ~20 MB/s to sled's own pace, while a
/// stream holds at most one batch in memory. docs/storage.md#uploads
pub const BATCH_CHUNKS: usize = 32;

// A batch must fit in one store step.
const _: () = assert!(BATCH_CHUNKS <= MAX_CHUNKS_PER_APPEND && CHUNK_LEN <= SEALED_CHUNK_SIZE);

/// Streams `body` into the upload from `offset`, at most `remaining` bytes. Returns the
/// new offset. The body is gathered into a batch of up to [`BATCH_CHUNKS`] chunks of
/// [`CHUNK_LEN`] bytes, appended as one durable step when full, when the body ends, or
/// when it breaks off or stalls (so a resumed upload continues from the last durable
/// offset). Memory: one batch; no byte is read while a batch is being stored.
pub async fn stream_into_upload(
    state: &AppState,
    institution: &InstitutionState,
    upload: UploadId,
    mut offset: u64,
    remaining: u64,
    body: Body,
) -> Result<u64, ApiError> {
    let recipients = institution.current()?.seal_recipients().len();
    let idle = state.limits().upload_idle_timeout();
    let end = offset + remaining;
    let mut stream = body.into_data_stream();
    let mut batch = Batch::new(recipients);
    let id = institution.config.id.clone();
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                // Keep what arrived: the client resumes from the stored offset.
                batch.store(state, &id, upload, &mut offset).await?;
                return Err(ApiError::new(ErrorCode::Timeout, "upload idle too long"));
            }
        };
        let data = match next {
            None => break,
            Some(Ok(data)) => data,
            Some(Err(_)) => {
                // The client went away mid-body: store what we hold, so a resumed
                // upload continues where this one stopped.
                batch.store(state, &id, upload, &mut offset).await?;
                return Err(ApiError::bad_request("upload body interrupted"));
            }
        };
        // Refuse the whole read before buffering any of it: the bytes of a refused
        // request past the last durable batch are not stored.
        if offset + batch.len() + data.len() as u64 > end {
            return Err(ApiError::too_large("more bytes than the upload declared"));
        }
        let mut data = &data[..];
        while !data.is_empty() {
            data = batch.push(data, offset)?;
            if batch.is_full() {
                batch.store(state, &id, upload, &mut offset).await?;
            }
        }
    }
    batch.store(state, &id, upload, &mut offset).await?;
    Ok(offset)
}

/// The chunks of one upload stream not yet appended: at most [`BATCH_CHUNKS`] chunks.
struct Batch {
    chunks: Vec<SealedChunk>,
    open: Vec<u8>,
    len: u64,
    recipients: usize,
}

impl Batch {
    fn new(recipients: usize) -> Self {
        Self {
            chunks: Vec::with_capacity(BATCH_CHUNKS),
            open: Vec::new(),
            len: 0,
            recipients,
        }
    }

    /// Bytes held, closed chunks and the open one.
    fn len(&self) -> u64 {
        self.len
    }

    fn is_full(&self) -> bool {
        self.chunks.len() == BATCH_CHUNKS
    }

    /// Takes bytes from `data` into the open chunk, closing it when it reaches
    /// [`CHUNK_LEN`]; returns what is left of `data` (non-empty only when the batch is
    /// full). `offset` is the durable offset the batch starts at.
    fn push<'a>(&mut self, data: &'a [u8], offset: u64) -> Result<&'a [u8], ApiError> {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(CHUNK_LEN);
        }
        let take = data.len().min(CHUNK_LEN - self.open.len());
        self.open.extend_from_slice(&data[..take]);
        self.len += take as u64;
        if self.open.len() == CHUNK_LEN {
            self.close(offset)?;
        }
        Ok(&data[take..])
    }

    /// Turns the open bytes into a chunk. The first chunk of an upload must hold an age
    /// header sealed to the manifest's recipient count, checked before anything is
    /// stored. docs/protocol.md#recipient-check
    fn close(&mut self, offset: u64) -> Result<(), ApiError> {
        if self.open.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.open);
        let chunk = if offset == 0 && self.chunks.is_empty() {
            SealedChunk::check_first(bytes, self.recipients)
                .map_err(|error| ApiError::from_library(ErrorCode::WrongRecipients, &error))?
        } else {
            SealedChunk::new(bytes)
        };
        self.chunks.push(chunk);
        Ok(())
    }

    /// Appends the held chunks at `offset` as one durable step and advances it; the
    /// offset moves only once the store has synced. docs/storage.md#guarantee
    async fn store(
        &mut self,
        state: &AppState,
        institution: &InstitutionId,
        upload: UploadId,
        offset: &mut u64,
    ) -> Result<(), ApiError> {
        self.close(*offset)?;
        if self.chunks.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::replace(&mut self.chunks, Vec::with_capacity(BATCH_CHUNKS));
        self.len = 0;
        let id = institution.clone();
        let at = *offset;
        *offset = state
            .store(move |store| store.append_upload_chunks(&id, upload, at, &chunks))
            .await?;
        Ok(())
    }
}
