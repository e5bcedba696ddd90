//! The institution's signed key manifest: the current one, the history, and publishing a
//! new one (signed by the pinned manifest key, serial strictly growing).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use peluit_proto::manifest::{Rejection, SignedManifest, VerifyPolicy};
use peluit_store::ManifestBytes;
use serde::Serialize;

use crate::api::LimitedBytes;
use crate::api::v1::auth::require_investigator;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, today};

/// `GET …/manifest`: the current signed manifest, byte for byte as signed.
pub async fn get_current(
    State(state): State<AppState>,
    Path(institution): Path<String>,
) -> Result<Response, ApiError> {
    let institution = state.institution(&institution)?;
    let current = institution.current()?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(current.signed().to_json()),
    )
        .into_response())
}

/// `GET …/manifests`: every published manifest, oldest first, as a JSON array of the
/// signed documents (each byte for byte as signed).
pub async fn list_history(
    State(state): State<AppState>,
    Path(institution): Path<String>,
) -> Result<Response, ApiError> {
    let id = state.institution(&institution)?.config.id.clone();
    let history = state.store(move |store| store.manifests(&id)).await?;
    let mut body = Vec::from(&b"{\"manifests\":["[..]);
    for (i, entry) in history.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(entry.manifest.as_bytes());
    }
    body.extend_from_slice(b"]}");
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response())
}

/// What a publish answers.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The serial now current.
    pub serial: u64,
}

/// `POST …/manifests` (investigator token): publishes a signed manifest. It must verify
/// under the institution's pinned manifest key, be valid today, name this institution
/// and carry a serial greater than the current one (docs/protocol.md#manifest).
pub async fn publish_manifest(
    State(state): State<AppState>,
    Path(institution): Path<String>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let institution = state.institution(&institution)?;
    require_investigator(&state, &institution, &headers).await?;
    let signed = SignedManifest::from_json(&body)?;
    let _publishing = institution.publish_lock().lock().await;
    let current = institution.current_opt();
    let mut policy = VerifyPolicy::new(institution.config.manifest_key, today());
    policy.min_serial = current.as_ref().map(|m| m.serial());
    policy.seen_sha256 = current.as_ref().map(|m| m.manifest_sha256());
    let verified = signed.verify(&policy).map_err(|error| {
        let code = match &error {
            peluit_proto::Error::ManifestRejected(
                Rejection::SerialRollback { .. } | Rejection::SerialReused { .. },
            ) => ErrorCode::Conflict,
            peluit_proto::Error::ManifestRejected(Rejection::BadSignature) => {
                ErrorCode::BadSignature
            }
            _ => ErrorCode::BadRequest,
        };
        ApiError::from_library(code, &error)
    })?;
    if verified.institution_id() != &institution.config.id {
        return Err(ApiError::bad_request("manifest names another institution"));
    }
    // Re-publishing the current manifest is a retry: answer as if it worked.
    if let Some(current) = &current
        && current.manifest_sha256() == verified.manifest_sha256()
    {
        return Ok((
            StatusCode::OK,
            Json(Published {
                serial: current.serial(),
            }),
        ));
    }
    // Serials only grow: equal is a conflict too. docs/protocol.md#manifest
    if current
        .as_ref()
        .is_some_and(|c| verified.serial() <= c.serial())
    {
        return Err(ApiError::conflict("serial does not grow"));
    }
    let id = institution.config.id.clone();
    let serial = verified.serial();
    let bytes = ManifestBytes::new(verified.signed().to_json());
    state
        .store(move |store| store.put_manifest(&id, serial, &bytes))
        .await?;
    institution.set_current(verified);
    tracing::info!(institution = %institution.config.id, serial, "manifest published");
    Ok((StatusCode::CREATED, Json(Published { serial })))
}
