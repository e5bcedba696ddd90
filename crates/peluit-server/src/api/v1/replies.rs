//! `POST …/replies` (investigator token): imports a reply bundle from the desk. Every
//! frame is read and every reply's signature, signer, recipient count and case binding
//! checked before anything is stored. Then come three durable steps in turn: the carried
//! manifest (if newer), all replies (one atomic step), each deletion. A failure between
//! steps only happens when the store turns read-only; after the restart that clears it,
//! importing the same bundle again completes it (reply ids are digests of the replies, and
//! the manifest is by then the current one, so it is skipped).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use peluit_proto::bundle::{BundleKind, BundleReader, FrameMeta};
use peluit_proto::ids::{CaseId, MessageId};
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_proto::reply::{MAX_SEALED_REPLY_JSON_LEN, SealedReply};
use peluit_store::{CaseState, ManifestBytes, NewReply, SealedReplyBytes};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::LimitedBytes;
use crate::api::v1::auth::require_investigator;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, today};

/// What an import answers.
#[derive(Debug, Serialize)]
pub struct Imported {
    /// Replies in the bundle (already stored ones count too: importing twice is harmless).
    pub replies: usize,
    /// Cases deleted.
    pub deleted: usize,
    /// The manifest serial now current, if the bundle carried a new manifest.
    pub manifest_serial: Option<u64>,
}

/// A reply's message id: derived from its bytes, so a re-imported bundle stores nothing
/// twice.
fn reply_id(json: &[u8]) -> MessageId {
    let digest = Sha256::new()
        .chain_update(b"peluit/v1/reply-id\n")
        .chain_update(json)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    MessageId::from_bytes(id)
}

struct ParsedBundle {
    manifest: Option<SignedManifest>,
    replies: Vec<(SealedReply, Vec<u8>)>,
    deletes: Vec<CaseId>,
}

fn parse_bundle(
    bytes: &[u8],
    institution: &peluit_proto::ids::InstitutionId,
) -> Result<ParsedBundle, ApiError> {
    // Any framing fault is a malformed bundle, whatever part of it broke.
    let malformed =
        |error: peluit_proto::Error| ApiError::from_library(ErrorCode::BadRequest, &error);
    let mut reader = BundleReader::new(bytes).map_err(malformed)?;
    if reader.header().kind != BundleKind::Reply || reader.header().institution != *institution {
        return Err(ApiError::bad_request(
            "not a reply bundle for this institution",
        ));
    }
    let mut parsed = ParsedBundle {
        manifest: None,
        replies: Vec::new(),
        deletes: Vec::new(),
    };
    while let Some(mut frame) = reader.next_frame().map_err(malformed)? {
        match frame.meta().clone() {
            FrameMeta::Manifest => {
                let payload = frame
                    .read_payload_to_end(peluit_proto::limits::MAX_MANIFEST_LEN)
                    .map_err(malformed)?;
                if parsed.manifest.is_some() {
                    return Err(ApiError::bad_request("more than one manifest in a bundle"));
                }
                parsed.manifest = Some(SignedManifest::from_json(&payload)?);
            }
            FrameMeta::Reply => {
                let payload = frame
                    .read_payload_to_end(MAX_SEALED_REPLY_JSON_LEN)
                    .map_err(malformed)?;
                let reply = SealedReply::from_json(&payload)?;
                parsed.replies.push((reply, payload));
            }
            FrameMeta::Delete { case } => parsed.deletes.push(case),
            _ => {
                return Err(ApiError::bad_request(
                    "frame kind not allowed in a reply bundle",
                ));
            }
        }
    }
    Ok(parsed)
}

/// `POST …/replies`: body is a reply bundle (`application/octet-stream`).
pub async fn import_replies(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes,
) -> Result<Json<Imported>, ApiError> {
    let institution = state.institution(&institution)?;
    require_investigator(&state, &institution, &headers).await?;
    let id = institution.config.id.clone();
    let parsed = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || parse_bundle(&body, &id))
            .await
            .map_err(|_| ApiError::internal("bundle task panicked"))??
    };
    let _publishing = institution.publish_lock().lock().await;
    // A carried manifest must be publishable (pinned key, valid today, serial not lower);
    // replies are then checked against it, else against the current one.
    let current = institution.current()?;
    let new_manifest: Option<VerifiedManifest> = match &parsed.manifest {
        Some(signed) => {
            let mut policy = VerifyPolicy::new(institution.config.manifest_key, today());
            policy.min_serial = Some(current.serial());
            policy.seen_sha256 = Some(current.manifest_sha256());
            let verified = signed
                .verify(&policy)
                .map_err(|error| ApiError::from_library(ErrorCode::BadSignature, &error))?;
            if verified.institution_id() != &id {
                return Err(ApiError::bad_request("manifest names another institution"));
            }
            (verified.serial() > current.serial()).then_some(verified)
        }
        None => None,
    };
    let authority = new_manifest.as_ref().unwrap_or(&current);
    let signers = authority.reply_signing_keys();
    // A reply is sealed to the reporter and to every inspectorate recipient.
    // docs/protocol.md#reply
    let recipients = 1 + authority.seal_recipients().len();
    for (reply, _) in &parsed.replies {
        if reply.institution() != &id {
            return Err(ApiError::bad_request("reply for another institution"));
        }
        reply.verify(&signers, recipients)?;
    }
    let replies: Vec<(CaseId, peluit_proto::keys::VerifyingKey, Vec<u8>)> = parsed
        .replies
        .into_iter()
        .map(|(reply, json)| (reply.case(), *reply.mailbox_key(), json))
        .collect();
    let deletes = parsed.deletes;
    let manifest_bytes = new_manifest
        .as_ref()
        .map(|m| (m.serial(), ManifestBytes::new(m.signed().to_json())));
    let day = today();
    let counts = (replies.len(), deletes.len());
    let store_id = id.clone();
    let deleted_cases = deletes.clone();
    state
        .store(move |store| {
            // Each reply must go to an open case whose mailbox key it names, so a reply
            // cannot be moved to another reporter's mailbox. docs/protocol.md#reply
            let mut new_replies = Vec::with_capacity(replies.len());
            for (case, mailbox_key, json) in replies {
                let record = store.case(&store_id, case)?;
                if record.state != CaseState::Open || record.mailbox_key != mailbox_key {
                    return Err(peluit_store::Error::Conflict(
                        "reply does not match its case",
                    ));
                }
                new_replies.push(NewReply {
                    case,
                    id: reply_id(&json),
                    day,
                    reply: SealedReplyBytes::new(json),
                });
            }
            for case in &deletes {
                store.case(&store_id, *case)?;
            }
            if let Some((serial, bytes)) = &manifest_bytes {
                store.put_manifest(&store_id, *serial, bytes)?;
            }
            if !new_replies.is_empty() {
                store.add_replies(&store_id, new_replies)?;
            }
            for case in deletes {
                store.delete_case(&store_id, case, day)?;
            }
            Ok(())
        })
        .await?;
    for case in deleted_cases {
        institution.forget_case(case);
    }
    let manifest_serial = new_manifest.as_ref().map(|m| m.serial());
    if let Some(manifest) = new_manifest {
        institution.set_current(manifest);
    }
    Ok(Json(Imported {
        replies: counts.0,
        deleted: counts.1,
        manifest_serial,
    }))
}
