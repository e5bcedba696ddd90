//! `peluit-server`: the online drop box. It stores only ciphertext (through
//! `peluit-store`), serves the reporter page and the JSON API under `/api/v1`.
//!
//! Shape: [`router`] builds the whole app from an [`AppState`]; [`serve`] runs it on a
//! bound listener until a shutdown future completes (used by the binary and by tests on
//! port 0). The API is described in `docs/api.md` and served as OpenAPI 3.1.

pub mod api;
pub mod assets;
pub mod config;
pub mod demo;
pub mod error;
pub mod layers;
pub mod logging;
pub mod reload;
mod serve;
pub mod state;
pub mod token_requests;
pub mod tokens;

use axum::Router;

pub use crate::config::{Config, Limits};
pub use crate::error::{ApiError, ErrorCode};
pub use crate::serve::serve;
pub use crate::state::AppState;

/// The whole application: every route, the fallbacks, the request log, the concurrency
/// limit and, outermost, the header policy, so that every response carries it.
pub fn router(state: AppState) -> Router {
    let limits = state.limits().clone();
    let app = api::v1::routes(&limits)
        .fallback(api::v1::no_such_endpoint)
        .method_not_allowed_fallback(api::v1::method_not_allowed)
        .with_state(state);
    layers::with_outer_layers(app, limits.concurrency)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> (Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(peluit_store::SledStore::open(dir.path().join("store")).unwrap());
        let state =
            AppState::new(store, Vec::new(), Limits::default(), dir.path().to_owned()).unwrap();
        (router(state), dir)
    }

    async fn call(app: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        for (name, value) in layers::SECURITY_HEADERS {
            assert_eq!(response.headers()[*name], *value, "{name}");
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_json_codes_and_the_header_policy() {
        let (app, _dir) = app();
        let (status, body) = call(
            app.clone(),
            Request::get("/no/such/thing").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("no_such_endpoint"))
        );
        let (status, body) = call(
            app.clone(),
            Request::put("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, body) = call(
            app,
            Request::get("/api/v1/institutions/nobody/manifest")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }

    #[tokio::test]
    async fn bodies_over_the_route_limit_are_refused_before_parsing() {
        let (app, _dir) = app();
        let request = Request::post("/api/v1/institutions/x/mailbox/sessions")
            .body(Body::from(vec![b'{'; 20 * 1024]))
            .unwrap();
        let (status, body) = call(app, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "payload_too_large");
    }
}
