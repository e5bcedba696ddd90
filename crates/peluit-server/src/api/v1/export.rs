//! `GET …/export?since=N` (investigator token): every case, attachment and follow-up
//! whose export cursor is above `N`, as a bundle (docs/protocol.md#bundle) streamed to
//! the courier while it is written: memory does not grow with the export.

use std::collections::HashMap;
use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use peluit_proto::bundle::{BundleHeader, BundleKind, BundleWriter, FrameMeta};
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_store::{CiphertextStore, ExportItem};
use tokio::sync::mpsc;

use crate::api::v1::auth::require_investigator;
use crate::error::ApiError;
use crate::state::{AppState, today};

/// Header carrying the cursor to ask for next time.
pub const CURSOR_HEADER: &str = "peluit-cursor-to";

/// Sends written bytes to the response body in pieces; a dropped receiver (the client
/// went away) turns into a write error that stops the export.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

const PIECE: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(PIECE),
        ));
        self.sender
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

/// Reads a store iterator of chunks as one byte stream.
struct ChunkReader {
    chunks: peluit_store::SealedChunks,
    current: Vec<u8>,
    position: usize,
}

impl io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.next() {
                None => return Ok(0),
                Some(Ok(chunk)) => {
                    self.current = chunk.into_bytes();
                    self.position = 0;
                }
                Some(Err(error)) => return Err(io::Error::other(error)),
            }
        }
        let n = out.len().min(self.current.len() - self.position);
        out[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

fn parse_since(query: Option<&str>) -> Result<u64, ApiError> {
    let Some(text) = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("since="))) else {
        return Ok(0);
    };
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::bad_request("malformed since"));
    }
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed since"))
}

/// `GET …/export?since=N`.
pub async fn get_export(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let institution = state.institution(&institution)?;
    require_investigator(&state, &institution, &headers).await?;
    let since = parse_since(query.as_deref())?;
    let id = institution.config.id.clone();
    // Fix the upper cursor before writing: the header comes first, and items that arrive
    // during the export go into the next one.
    let cursor_to = {
        let id = id.clone();
        state.store(move |store| store.export_cursor(&id)).await?
    }
    .max(since);
    let manifest = institution.current_opt().map(|m| m.signed().to_json());
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let store = state.store_handle();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(PIECE),
        };
        if let Err(error) = write_export(store.as_ref(), &id, since, cursor_to, manifest, writer) {
            // The body ends with an error, so the client sees a broken transfer and the
            // bundle has no End frame: the desk refuses it.
            tracing::error!(%error, "export failed midway");
            let _ = sender.blocking_send(Err(io::Error::other("export failed")));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let cursor = HeaderValue::from_str(&cursor_to.to_string())
        .map_err(|_| ApiError::internal("cursor header"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (HeaderName::from_static(CURSOR_HEADER), cursor),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Writes the export bundle; runs on a blocking thread.
fn write_export(
    store: &dyn CiphertextStore,
    institution: &InstitutionId,
    since: u64,
    cursor_to: u64,
    manifest: Option<Vec<u8>>,
    out: ChannelWriter,
) -> anyhow::Result<()> {
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: institution.clone(),
        created: today(),
        cursor_from: since,
        cursor_to,
    };
    let mut writer = BundleWriter::new(out, &header)?;
    if let Some(manifest) = manifest {
        writer.write_frame(&FrameMeta::Manifest, &manifest)?;
    }
    let mut attachment_lists: HashMap<CaseId, Vec<UploadId>> = HashMap::new();
    for item in store.export_since(institution, since)? {
        let item = item?;
        if item.cursor() > cursor_to {
            break;
        }
        match item {
            ExportItem::Case { case, envelope, .. } => {
                let meta = FrameMeta::Case {
                    case: case.id,
                    day: case.day,
                    mailbox_key: case.mailbox_key,
                    attachments: u32::try_from(case.attachments.len())?,
                };
                writer.write_frame(&meta, envelope.as_bytes())?;
                attachment_lists.insert(case.id, case.attachments);
            }
            ExportItem::Attachment {
                case, upload, len, ..
            } => {
                let list = match attachment_lists.get(&case) {
                    Some(list) => list.clone(),
                    None => store.case(institution, case)?.attachments,
                };
                let index = list
                    .iter()
                    .position(|u| *u == upload)
                    .ok_or_else(|| anyhow::anyhow!("attachment not listed in its case"))?;
                let meta = FrameMeta::Attachment {
                    case,
                    upload,
                    index: u32::try_from(index)?,
                };
                let reader = ChunkReader {
                    chunks: store.attachment_chunks(institution, case, upload)?,
                    current: Vec::new(),
                    position: 0,
                };
                writer.write_frame_streamed(&meta, len, reader)?;
            }
            ExportItem::FollowUp {
                case,
                entry,
                message,
                ..
            } => {
                let meta = FrameMeta::FollowUp {
                    case,
                    seq: u32::try_from(entry.seq)?,
                };
                writer.write_frame(&meta, message.as_bytes())?;
            }
            _ => anyhow::bail!("unknown export item"),
        }
    }
    let mut out = writer.finish()?;
    out.flush()?;
    Ok(())
}
