//! `DELETE …/cases/{case}` (investigator token): removes a case's ciphertext after
//! retention, keeping only a tombstone with the day of deletion.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use peluit_proto::ids::CaseId;

use crate::api::v1::auth::require_investigator;
use crate::error::ApiError;
use crate::state::{AppState, today};

/// `DELETE …/cases/{case}`.
pub async fn delete_case(
    State(state): State<AppState>,
    Path((institution, case)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let institution = state.institution(&institution)?;
    require_investigator(&state, &institution, &headers).await?;
    let case: CaseId = case
        .parse()
        .map_err(|_| ApiError::bad_request("malformed case id"))?;
    let id = institution.config.id.clone();
    let day = today();
    state
        .store(move |store| {
            // Unknown ids are 404, not a silent success.
            store.case(&id, case)?;
            store.delete_case(&id, case, day)
        })
        .await?;
    institution.forget_case(case);
    Ok(StatusCode::NO_CONTENT)
}
