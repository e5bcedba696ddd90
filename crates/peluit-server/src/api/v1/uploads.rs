//! Resumable, streamed uploads of sealed attachments: create with the declared sealed
//! size, `PUT` bytes at the current offset (streamed into the upload's file, never
//! buffered whole), ask where it stands after an interruption, then complete (docs/api.md#uploads).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt as _;
use peluit_proto::ids::UploadId;
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::sealed::SealedChunk;
use peluit_store::{MAX_CHUNKS_PER_APPEND, UploadSink, UploadState};
use serde::{Deserialize, Serialize};

use crate::api::StrictJson;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, InstitutionState, store_error, today};

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
    let received =
        stream_into_upload(&state, &institution, upload, offset, remaining, body).await?;
    Ok(Json(UploadStatus {
        upload: upload.to_string(),
        sealed_size: current.declared_len,
        offset: received,
        complete: false,
    }))
}

/// Bytes per chunk handed to the store: 64 KiB, within one sealed STREAM chunk (65,552).
pub const CHUNK_LEN: usize = 64 * 1024;

/// Chunks per file write (512 KiB): one blocking-pool task per write, while the next
/// write's bytes are read from the socket. A stream holds at most two of these: the one
/// being filled and the one being written. docs/api.md#uploads
pub const WRITE_CHUNKS: usize = 8;

/// Bytes written between commits (each an `fdatasync` plus one store step) while a body
/// streams in: what a crash or a broken connection can cost a client, which resumes from
/// the last commit. A commit runs beside the writes, so the disk flushes while the
/// socket is read. docs/storage.md#upload-files
pub const COMMIT_BYTES: u64 = 64 << 20;

// A write must fit in one store call.
const _: () = assert!(WRITE_CHUNKS <= MAX_CHUNKS_PER_APPEND && CHUNK_LEN <= SEALED_CHUNK_SIZE);

type Task<T> = tokio::task::JoinHandle<peluit_store::Result<T>>;

/// Waits for a store task and maps its outcome.
async fn joined<T>(task: Task<T>) -> Result<T, ApiError> {
    task.await
        .map_err(|_| ApiError::internal("store task panicked"))?
        .map_err(store_error)
}

/// Streams `body` into the upload from `offset`, at most `remaining` bytes, and returns
/// the new durable offset. The bytes go to the upload's file through one append session
/// as they arrive, in writes of [`WRITE_CHUNKS`] chunks of [`CHUNK_LEN`] bytes; every
/// [`COMMIT_BYTES`] a commit makes what was written durable, and the end of the body (or
/// its breaking off or stalling) commits the rest, so a resumed upload continues from the
/// last durable offset. A body refused midway (more bytes than declared, a first chunk
/// that is not age to the manifest's recipients) keeps what was committed before and
/// drops the rest. Memory: two writes' worth of chunks, whatever the upload's size.
pub async fn stream_into_upload(
    state: &AppState,
    institution: &InstitutionState,
    upload: UploadId,
    offset: u64,
    remaining: u64,
    body: Body,
) -> Result<u64, ApiError> {
    let recipients = institution.current()?.seal_recipients().len();
    let idle = state.limits().upload_idle_timeout();
    let end = offset + remaining;
    let id = institution.config.id.clone();
    let sink = state
        .store(move |store| store.open_upload_sink(&id, upload, offset))
        .await?;
    let mut upload = Upload::new(sink, recipients, offset);
    match receive(&mut upload, body, end, idle).await {
        Ok(None) => upload.finish().await,
        Ok(Some(stopped)) => {
            // Keep what arrived: the client resumes from the stored offset.
            upload.finish().await?;
            Err(stopped)
        }
        Err(refused) => {
            // Answer only once the refused bytes are gone.
            upload.abandon().await;
            Err(refused)
        }
    }
}

/// Feeds the body into the session. `Ok(None)`: the body ended; `Ok(Some(error))`: it
/// broke off or stalled, and what arrived is to be kept; `Err`: it was refused.
async fn receive(
    upload: &mut Upload,
    body: Body,
    end: u64,
    idle: std::time::Duration,
) -> Result<Option<ApiError>, ApiError> {
    let mut stream = body.into_data_stream();
    loop {
        let data = match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => {
                return Ok(Some(ApiError::new(
                    ErrorCode::Timeout,
                    "upload idle too long",
                )));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Ok(data))) => data,
            // The client went away mid-body.
            Ok(Some(Err(_))) => return Ok(Some(ApiError::bad_request("upload body interrupted"))),
        };
        // Refuse the whole read before taking any of it; bytes written since the last
        // commit are dropped with the session.
        if upload.received() + data.len() as u64 > end {
            return Err(ApiError::too_large("more bytes than the upload declared"));
        }
        upload.push(&data).await?;
    }
}

/// One streamed body's append session: the chunks being filled, the write and the
/// commit in flight.
struct Upload {
    sink: Arc<dyn UploadSink>,
    recipients: usize,
    /// Where the body started (the first chunk of an upload is checked).
    start: u64,
    /// Bytes handed to writes so far.
    handed: u64,
    /// `handed` when the last commit was started.
    committed_at: u64,
    chunks: Vec<SealedChunk>,
    open: Vec<u8>,
    /// Buffers of finished writes, reused so the allocator is not churned per chunk.
    spare: Vec<Vec<u8>>,
    writing: Option<Task<Vec<SealedChunk>>>,
    committing: Option<Task<u64>>,
}

impl Upload {
    fn new(sink: Arc<dyn UploadSink>, recipients: usize, start: u64) -> Self {
        Self {
            sink,
            recipients,
            start,
            handed: start,
            committed_at: start,
            chunks: Vec::with_capacity(WRITE_CHUNKS),
            open: Vec::new(),
            spare: Vec::new(),
            writing: None,
            committing: None,
        }
    }

    /// Every byte taken from the body so far, written or not.
    fn received(&self) -> u64 {
        self.handed
            + self
                .chunks
                .iter()
                .map(|c| c.as_bytes().len() as u64)
                .sum::<u64>()
            + self.open.len() as u64
    }

    async fn push(&mut self, mut data: &[u8]) -> Result<(), ApiError> {
        while !data.is_empty() {
            if self.open.capacity() == 0 {
                self.open = self.spare.pop().unwrap_or_default();
                self.open.clear();
                self.open.reserve_exact(CHUNK_LEN);
            }
            let take = data.len().min(CHUNK_LEN - self.open.len());
            self.open.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.open.len() == CHUNK_LEN {
                self.close()?;
                if self.chunks.len() == WRITE_CHUNKS {
                    self.write().await?;
                }
            }
        }
        Ok(())
    }

    /// Turns the open bytes into a chunk. The first chunk of an upload must hold an age
    /// header sealed to the manifest's recipient count, checked before anything is
    /// written. docs/protocol.md#recipient-check
    fn close(&mut self) -> Result<(), ApiError> {
        if self.open.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.open);
        let first = self.start == 0 && self.handed == 0 && self.chunks.is_empty();
        let chunk = if first {
            SealedChunk::check_first(bytes, self.recipients)
                .map_err(|error| ApiError::from_library(ErrorCode::WrongRecipients, &error))?
        } else {
            SealedChunk::new(bytes)
        };
        self.chunks.push(chunk);
        Ok(())
    }

    /// Hands the closed chunks to a blocking write, once the previous write is done, and
    /// starts a commit when enough was written since the last one and none is running.
    async fn write(&mut self) -> Result<(), ApiError> {
        self.wait_for_write().await?;
        if self.chunks.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::replace(&mut self.chunks, Vec::with_capacity(WRITE_CHUNKS));
        self.handed += chunks
            .iter()
            .map(|c| c.as_bytes().len() as u64)
            .sum::<u64>();
        let sink = self.sink.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            sink.write(&chunks)?;
            Ok(chunks)
        }));
        let commit_done = self.committing.as_ref().is_none_or(|c| c.is_finished());
        if commit_done && self.handed - self.committed_at >= COMMIT_BYTES {
            if let Some(previous) = self.committing.take() {
                joined(previous).await?;
            }
            // This commit covers the writes finished before it starts; the one just
            // handed over may or may not be among them.
            self.wait_for_write().await?;
            self.committed_at = self.handed;
            let sink = self.sink.clone();
            self.committing = Some(tokio::task::spawn_blocking(move || sink.commit()));
        }
        Ok(())
    }

    async fn wait_for_write(&mut self) -> Result<(), ApiError> {
        if let Some(writing) = self.writing.take() {
            for chunk in joined(writing).await? {
                if self.spare.len() < WRITE_CHUNKS {
                    self.spare.push(chunk.into_bytes());
                }
            }
        }
        Ok(())
    }

    /// Ends a refused session: waits for the write and commit in flight, then drops the
    /// session on a blocking thread, which cuts the file back to its last commit.
    async fn abandon(mut self) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        if let Some(committing) = self.committing.take() {
            let _ = committing.await;
        }
        let sink = self.sink;
        let _ = tokio::task::spawn_blocking(move || drop(sink)).await;
    }

    /// Writes what is held and commits everything written; returns the durable offset.
    /// The session ends on a blocking thread, where dropping it may touch the file.
    async fn finish(mut self) -> Result<u64, ApiError> {
        self.close()?;
        self.write().await?;
        self.wait_for_write().await?;
        if let Some(committing) = self.committing.take() {
            joined(committing).await?;
        }
        let sink = self.sink;
        joined(tokio::task::spawn_blocking(move || {
            let offset = sink.commit();
            drop(sink);
            offset
        }))
        .await
    }
}
