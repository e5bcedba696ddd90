//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of this API, kept beside the
//! code; a test checks that its paths and the router's routes agree.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document, embedded at build time.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /api/v1/openapi.json`.
pub async fn get_openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(OPENAPI_JSON),
    )
        .into_response()
}
