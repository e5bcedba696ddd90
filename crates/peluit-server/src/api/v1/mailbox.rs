//! The reporter's mailbox: a fresh challenge, a response signed with the mailbox key
//! (derived from the receipt) that opens a short session, then the sealed replies and
//! follow-ups of the case, and posting a sealed follow-up signed by the same key.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use peluit_proto::auth::{
    Challenge, ChallengeResponse, MailboxId, verify_follow_up, verify_response,
};
use peluit_proto::ids::MessageId;
use peluit_proto::keys::Signature;
use peluit_proto::limits::MAX_ENVELOPE_LEN;
use peluit_store::{MailboxKind, NewFollowUp, SealedMailboxMessage};
use serde::{Deserialize, Serialize};

use crate::api::LimitedBytes;
use crate::api::StrictJson;
use crate::api::v1::auth::require_mailbox;
use crate::api::v1::reports::{check_message, decode_sealed_field};
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, today};

/// `POST …/mailbox/challenges`: a fresh challenge (proto's canonical JSON). The server
/// keeps the nonce for a few minutes and accepts it once.
pub async fn create_challenge(
    State(state): State<AppState>,
    Path(institution): Path<String>,
) -> Result<Response, ApiError> {
    let institution = state.institution(&institution)?;
    let challenge = Challenge::new(institution.config.id.clone());
    state.remember_challenge(&institution.config.id, *challenge.nonce())?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(challenge.to_json()),
    )
        .into_response())
}

/// What opening a session answers.
#[derive(Serialize)]
pub struct SessionOpened {
    /// The session handle for `Authorization: Mailbox <session>`.
    pub session: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

// The handle is a credential: it must never reach a log through `{:?}`.
impl std::fmt::Debug for SessionOpened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOpened")
            .field("session", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// `POST …/mailbox/sessions`: body is proto's `ChallengeResponse` JSON. The nonce must be
/// one this server issued for this institution, unused and unexpired; the signature must
/// verify under the response's mailbox key; the key must have a case.
/// docs/protocol.md#mailbox-auth
pub async fn open_session(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    LimitedBytes(body): LimitedBytes,
) -> Result<(StatusCode, Json<SessionOpened>), ApiError> {
    let institution = state.institution(&institution)?;
    let response = ChallengeResponse::from_json(&body)?;
    // Take the nonce out first: a replayed or guessed response burns nothing but itself.
    if !state.take_challenge(&institution.config.id, response.nonce()) {
        return Err(ApiError::unauthorized("challenge unknown, used or expired"));
    }
    let challenge = Challenge::from_issued(institution.config.id.clone(), *response.nonce());
    verify_response(&challenge, &response)
        .map_err(|_| ApiError::unauthorized("challenge response does not verify"))?;
    let key = *response.mailbox_key();
    let case = institution
        .case_of_mailbox(&key)
        .ok_or_else(|| ApiError::unauthorized("no case for this mailbox"))?;
    let handle = state.open_session(&institution.config.id, key, case)?;
    Ok((
        StatusCode::CREATED,
        Json(SessionOpened {
            session: hex::encode(handle),
            expires_in: state.limits().mailbox_session_ttl_secs,
        }),
    ))
}

/// One mailbox message as listed.
#[derive(Debug, Serialize)]
pub struct MessageSummary {
    /// Position in the mailbox (fetch it by this).
    pub seq: u64,
    /// The message id.
    pub id: String,
    /// `reply` or `follow-up`.
    pub kind: &'static str,
    /// The day it was stored.
    pub day: String,
    /// Sealed length in bytes.
    pub len: u64,
}

/// The mailbox listing.
#[derive(Debug, Serialize)]
pub struct MessageList {
    /// The case (so the page can show it).
    pub case: String,
    /// Messages in seq order.
    pub messages: Vec<MessageSummary>,
}

fn kind_name(kind: MailboxKind) -> &'static str {
    match kind {
        MailboxKind::Reply => "reply",
        _ => "follow-up",
    }
}

/// `GET …/mailbox/messages` (mailbox session).
pub async fn list_messages(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    headers: HeaderMap,
) -> Result<Json<MessageList>, ApiError> {
    let institution = state.institution(&institution)?;
    let session = require_mailbox(&state, &institution, &headers)?;
    let id = institution.config.id.clone();
    let case = session.case;
    let entries = state.store(move |store| store.mailbox(&id, case)).await?;
    Ok(Json(MessageList {
        case: case.to_string(),
        messages: entries
            .into_iter()
            .map(|e| MessageSummary {
                seq: e.seq,
                id: e.id.to_string(),
                kind: kind_name(e.kind),
                day: e.day.to_string(),
                len: e.len,
            })
            .collect(),
    }))
}

/// Header naming what a fetched mailbox message is.
pub const KIND_HEADER: &str = "peluit-message-kind";

/// `GET …/mailbox/messages/{seq}` (mailbox session): a reply as proto's `SealedReply`
/// JSON, a follow-up as its age ciphertext.
pub async fn get_message(
    State(state): State<AppState>,
    Path((institution, seq)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let institution = state.institution(&institution)?;
    let session = require_mailbox(&state, &institution, &headers)?;
    if seq.is_empty() || seq.len() > 19 || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::bad_request("malformed seq"));
    }
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::bad_request("malformed seq"))?;
    let id = institution.config.id.clone();
    let case = session.case;
    let message = state
        .store(move |store| store.mailbox_message(&id, case, seq))
        .await?;
    let (kind, media_type, bytes) = match message {
        SealedMailboxMessage::Reply(reply) => ("reply", "application/json", reply.into_bytes()),
        SealedMailboxMessage::FollowUp(sealed) => {
            ("follow-up", "application/octet-stream", sealed.into_bytes())
        }
        _ => return Err(ApiError::internal("unknown mailbox message kind")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, media_type),
            (
                KIND_HEADER
                    .parse()
                    .map_err(|_| ApiError::internal("header"))?,
                kind,
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// Body of `POST …/mailbox/follow-ups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostFollowUp {
    /// Always 1.
    pub version: u64,
    /// The sealed follow-up, canonical base64.
    pub message: String,
    /// The mailbox key's follow-up signature over the sealed bytes' SHA-256.
    pub signature: Signature,
}

/// What posting a follow-up answers.
#[derive(Debug, Serialize)]
pub struct FollowUpStored {
    /// Its position in the mailbox.
    pub seq: u64,
    /// Its id.
    pub id: String,
}

/// `POST …/mailbox/follow-ups` (mailbox session): the sealed follow-up must pass the
/// recipient check and carry the mailbox key's signature. docs/protocol.md#follow-up
pub async fn post_follow_up(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    headers: HeaderMap,
    StrictJson(request): StrictJson<PostFollowUp>,
) -> Result<(StatusCode, Json<FollowUpStored>), ApiError> {
    let institution = state.institution(&institution)?;
    let session = require_mailbox(&state, &institution, &headers)?;
    if request.version != 1 {
        return Err(ApiError::bad_request("unsupported version"));
    }
    let manifest = institution.current()?;
    let bytes = decode_sealed_field(&request.message, MAX_ENVELOPE_LEN)?;
    let message = check_message(bytes, manifest.seal_recipients().len())?;
    // Only the mailbox's owner may add to it, and the signature binds these exact bytes.
    // docs/protocol.md#mailbox-auth
    verify_follow_up(
        &session.mailbox_key,
        &institution.config.id,
        &MailboxId::of(&session.mailbox_key),
        &message.sha256(),
        &request.signature,
    )
    .map_err(|error| ApiError::from_library(ErrorCode::BadSignature, &error))?;
    let id = institution.config.id.clone();
    let case = session.case;
    let entry = state
        .store(move |store| {
            store.add_follow_up(
                &id,
                case,
                NewFollowUp {
                    id: MessageId::random(),
                    day: today(),
                    message,
                },
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(FollowUpStored {
            seq: entry.seq,
            id: entry.id.to_string(),
        }),
    ))
}
