//! `POST …/reports`: submits a sealed report envelope with its completed attachment
//! uploads, the reporter's mailbox public key and a proof-of-work stamp → a case id.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use peluit_proto::ids::UploadId;
use peluit_proto::keys::VerifyingKey;
use peluit_proto::limits::MAX_ENVELOPE_LEN;
use peluit_proto::pow::Stamp;
use peluit_proto::sealed::SealedMessage;
use peluit_store::{NewCase, PowHash};
use serde::{Deserialize, Serialize};

use crate::api::StrictJson;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, InstitutionState, today};

/// Body of `POST …/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitReport {
    /// Always 1.
    pub version: u64,
    /// The sealed envelope, canonical base64.
    pub envelope: String,
    /// Completed uploads to attach, in the envelope's attachment order.
    pub attachments: Vec<UploadId>,
    /// The reporter's mailbox public key (derived from the receipt).
    pub mailbox_key: VerifyingKey,
    /// Proof of work over the SHA-256 of the sealed envelope.
    pub stamp: Stamp,
}

/// What a submission answers.
#[derive(Debug, Serialize)]
pub struct Submitted {
    /// The new case's id.
    pub case: String,
}

/// Checks ciphertext for a whole message against the manifest's recipient count; any
/// failure (not age, other stanzas, wrong count) is `wrong_recipients`, except size.
/// docs/protocol.md#recipient-check
pub fn check_message(bytes: Vec<u8>, recipients: usize) -> Result<SealedMessage, ApiError> {
    SealedMessage::check(bytes, recipients, MAX_ENVELOPE_LEN).map_err(|error| match error {
        peluit_proto::Error::TooLarge(_) => {
            ApiError::from_library(ErrorCode::PayloadTooLarge, &error)
        }
        _ => ApiError::from_library(ErrorCode::WrongRecipients, &error),
    })
}

/// Decodes a base64 field holding at most `max` bytes, refusing oversize text before
/// decoding it.
pub fn decode_sealed_field(text: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    if text.len() > max.div_ceil(3) * 4 {
        return Err(ApiError::too_large("sealed field over its limit"));
    }
    peluit_proto::encoding::unb64(text, "sealed field")
        .map_err(|_| ApiError::bad_request("sealed field is not canonical base64"))
}

/// `POST …/reports`.
pub async fn submit_report(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    StrictJson(request): StrictJson<SubmitReport>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let institution = state.institution(&institution)?;
    if request.version != 1 {
        return Err(ApiError::bad_request("unsupported version"));
    }
    let manifest = institution.current()?;
    if request.attachments.len() > state.limits().max_attachments {
        return Err(ApiError::too_large("too many attachments"));
    }
    let bytes = decode_sealed_field(&request.envelope, MAX_ENVELOPE_LEN)?;
    let envelope = check_message(bytes, manifest.seal_recipients().len())?;
    let envelope_sha256 = envelope.sha256();
    // The stamp is bound to this envelope and must meet the configured difficulty.
    // docs/protocol.md#pow
    request
        .stamp
        .verify(&envelope_sha256, state.limits().pow_bits)
        .map_err(|error| ApiError::from_library(ErrorCode::BadProofOfWork, &error))?;
    let case = store_case(
        &state,
        &institution,
        envelope,
        request.attachments,
        request.mailbox_key,
        PowHash::from_bytes(envelope_sha256),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(Submitted {
            case: case.to_string(),
        }),
    ))
}

/// Records a case durably: reserves the mailbox key (one mailbox, one case), computes the
/// size bucket from the envelope and attachment sizes, and submits in one store step.
pub async fn store_case(
    state: &AppState,
    institution: &InstitutionState,
    envelope: SealedMessage,
    attachments: Vec<UploadId>,
    mailbox_key: VerifyingKey,
    pow_hash: PowHash,
) -> Result<peluit_proto::ids::CaseId, ApiError> {
    institution.reserve_mailbox(&mailbox_key)?;
    let id = institution.config.id.clone();
    let day = today();
    let result = state
        .store(move |store| {
            let mut total = envelope.as_bytes().len() as u64;
            for upload in &attachments {
                total = total.saturating_add(store.upload_state(&id, *upload)?.declared_len);
            }
            // The store keeps only a padded bucket of the total sealed size, so the
            // metadata leaks no more than the ciphertext lengths already do.
            let size_bucket = peluit_proto::seal::padded_len(total);
            store.submit_case(
                &id,
                NewCase {
                    day,
                    size_bucket,
                    mailbox_key,
                    envelope,
                    attachments,
                    pow_hash,
                },
            )
        })
        .await;
    match result {
        Ok(submitted) => {
            institution.release_mailbox(&mailbox_key, Some(submitted.id));
            Ok(submitted.id)
        }
        Err(error) => {
            institution.release_mailbox(&mailbox_key, None);
            Err(error)
        }
    }
}
