//! HTTP handlers: the JSON API under `/api/v1`, the plain bring-your-own-ciphertext form,
//! and `/healthz`. Handlers are named by verb; every failure is an [`ApiError`].

pub mod health;
pub mod html;
pub mod poster;
pub mod submit_file;
pub mod v1;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, read within the route's body limit (a [`axum::extract::DefaultBodyLimit`]
/// layer) and parsed strictly. Parse errors are logged by category only: serde's messages
/// can quote the input, and no request byte may reach the log.
pub struct StrictJson<T>(pub T);

// Request bodies never reach a log, not even through `{:?}`.
impl<T> std::fmt::Debug for StrictJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrictJson([redacted])")
    }
}

impl<T, S> FromRequest<S> for StrictJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// A whole body read within the route's body limit; over-limit and unreadable bodies
/// become API errors (axum's own rejections are plain text).
pub struct LimitedBytes(pub Bytes);

impl std::fmt::Debug for LimitedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LimitedBytes({} bytes)", self.0.len())
    }
}

impl<S: Send + Sync> FromRequest<S> for LimitedBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_limited(request, state).await.map(Self)
    }
}

/// Reads a whole body within the route's body limit.
pub async fn read_limited<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("body over the route's limit")
            } else {
                ApiError::bad_request("body could not be read")
            }
        })
}

/// Parses JSON strictly into `T`; the error names only serde's category.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request(match error.classify() {
            serde_json::error::Category::Syntax => "json syntax error",
            serde_json::error::Category::Eof => "json ended early",
            serde_json::error::Category::Data => "json has wrong types, fields or values",
            serde_json::error::Category::Io => "json could not be read",
        })
    })
}
