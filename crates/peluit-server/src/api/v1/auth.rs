//! Who may call what: investigators by bearer token (stored hashed, compared in constant
//! time), reporters by a mailbox session opened with a signed challenge
//! (docs/api.md#authentication).

use axum::http::HeaderMap;
use peluit_store::{TokenHash, TokenRecord};

use crate::error::ApiError;
use crate::state::{AppState, InstitutionState, MailboxSession};
use crate::tokens::{bearer, hashes_match, token_hash};

/// Checks `Authorization: Bearer <token>` against the institution's stored token hashes.
/// Every failure looks the same to the client.
pub async fn require_investigator(
    state: &AppState,
    institution: &InstitutionState,
    headers: &HeaderMap,
) -> Result<TokenRecord, ApiError> {
    let presented = bearer(headers)
        .map(token_hash)
        .ok_or_else(|| ApiError::unauthorized("missing or malformed bearer token"))?;
    let id = institution.config.id.clone();
    let record = state
        .store(move |store| store.find_token_hash(&id, &TokenHash::from_bytes(presented)))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    // The lookup is by hash; compare the whole hash again in constant time so that no
    // backend's lookup shortcut can leak how much of a guess matched.
    if !hashes_match(&presented, record.hash.as_bytes()) {
        return Err(ApiError::unauthorized("unknown token"));
    }
    Ok(record)
}

/// Prefix of a mailbox session handle in `Authorization`.
pub const MAILBOX_SCHEME: &str = "Mailbox ";

/// Checks `Authorization: Mailbox <session>` for a live session of this institution.
pub fn require_mailbox(
    state: &AppState,
    institution: &InstitutionState,
    headers: &HeaderMap,
) -> Result<MailboxSession, ApiError> {
    let handle = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(MAILBOX_SCHEME))
        .map(str::trim)
        .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::unauthorized("missing or malformed mailbox session"))?;
    state
        .session(&institution.config.id, handle)
        .ok_or_else(|| ApiError::unauthorized("unknown or expired mailbox session"))
}
