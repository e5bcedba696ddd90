//! The reporter page's static files, embedded in the binary so that what is served is
//! exactly what was built, and their SHA-256 list for auditors (docs/web.md#bundle).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// One embedded file: URL name, media type, bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $media_type:literal),* $(,)?) => {
        &[$(Asset {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }),*]
    };
}

/// Every file of `crates/peluit-server/assets/`; a test checks that none is missing.
/// `index.html` comes first: it is also the page at `/`.
const ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "worker.js" => "text/javascript; charset=utf-8",
    "peluit.wasm" => "application/wasm",
    "peluit-nowasm.js" => "text/javascript; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "i18n-id.json" => "application/json",
    "i18n-en.json" => "application/json",
};

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

/// The published list: every URL path that serves an embedded file, with the file's
/// SHA-256 in lowercase hex.
#[derive(Debug, Serialize)]
pub struct BundleHashes {
    /// Format version, 1.
    pub version: u64,
    /// URL path → SHA-256.
    pub assets: BTreeMap<String, String>,
}

/// The hashes of what this binary serves, computed once.
pub fn bundle_hashes() -> &'static BundleHashes {
    static HASHES: OnceLock<BundleHashes> = OnceLock::new();
    HASHES.get_or_init(|| {
        let digest = |asset: &Asset| hex::encode(Sha256::digest(asset.bytes));
        let mut assets: BTreeMap<String, String> = ASSETS
            .iter()
            .map(|asset| (format!("/assets/{}", asset.name), digest(asset)))
            .collect();
        assets.insert("/".to_owned(), digest(&ASSETS[0]));
        BundleHashes { version: 1, assets }
    })
}

/// `GET /.well-known/peluit-bundle.json`.
pub async fn get_bundle_hashes() -> axum::Json<&'static BundleHashes> {
    axum::Json(bundle_hashes())
}
