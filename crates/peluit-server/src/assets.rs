//! The reporter page's static files, embedded in the binary so that what is served is
//! exactly what was built (auditors compare hashes). A placeholder until peluit-web lands.

use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file: URL name, media type, bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../assets/index.html"),
    },
    Asset {
        name: "style.css",
        media_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/style.css"),
    },
];

fn respond(asset: &Asset) -> Response {
    (
        [(header::CONTENT_TYPE, asset.media_type)],
        Body::from(asset.bytes),
    )
        .into_response()
}

/// `GET /`: the reporter page.
pub async fn get_index() -> Response {
    respond(&ASSETS[0])
}

/// `GET /assets/{name}`: one embedded file.
pub async fn get_asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(respond)
        .ok_or_else(|| ApiError::not_found("no such asset"))
}

/// Names of every embedded asset, for tests and the OpenAPI agreement check.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|asset| asset.name)
}
