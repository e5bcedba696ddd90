//! The JSON API, version 1: one module per resource, handlers named by verb. Route
//! templates here and the paths of `openapi.json` must agree (a test checks it).

pub mod auth;
pub mod cases;
pub mod export;
pub mod institutions;
pub mod mailbox;
pub mod manifests;
pub mod openapi;
pub mod replies;
pub mod reports;
pub mod uploads;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse as _;
use axum::routing::{MethodRouter, delete, get, post, put};
use tower::ServiceBuilder;

use crate::api::{health, submit_file};
use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Every route: (method, template). The OpenAPI document must list exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/"),
    ("get", "/i/{institution}"),
    ("get", "/.well-known/peluit-bundle.json"),
    ("get", "/assets/{name}"),
    ("get", "/poster/{institution}"),
    ("get", "/submit-file"),
    ("post", "/submit-file"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/institutions"),
    ("get", "/api/v1/institutions/{institution}/manifest"),
    ("get", "/api/v1/institutions/{institution}/manifests"),
    ("post", "/api/v1/institutions/{institution}/manifests"),
    ("post", "/api/v1/institutions/{institution}/uploads"),
    ("get", "/api/v1/institutions/{institution}/uploads/{upload}"),
    ("put", "/api/v1/institutions/{institution}/uploads/{upload}"),
    (
        "post",
        "/api/v1/institutions/{institution}/uploads/{upload}/complete",
    ),
    ("post", "/api/v1/institutions/{institution}/reports"),
    (
        "post",
        "/api/v1/institutions/{institution}/mailbox/challenges",
    ),
    (
        "post",
        "/api/v1/institutions/{institution}/mailbox/sessions",
    ),
    ("get", "/api/v1/institutions/{institution}/mailbox/messages"),
    (
        "get",
        "/api/v1/institutions/{institution}/mailbox/messages/{seq}",
    ),
    (
        "post",
        "/api/v1/institutions/{institution}/mailbox/follow-ups",
    ),
    ("get", "/api/v1/institutions/{institution}/export"),
    ("post", "/api/v1/institutions/{institution}/replies"),
    ("delete", "/api/v1/institutions/{institution}/cases/{case}"),
];

/// Applies the whole-request deadline and a body limit to an ordinary route.
fn quick(
    route: MethodRouter<AppState>,
    timeout: Duration,
    body_limit: usize,
) -> MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::new(ErrorCode::Timeout, "request deadline passed").into_response()
                }))
                .timeout(timeout),
        )
}

/// A streaming route: no whole-request deadline (a 1 GiB upload over Tor takes long),
/// no buffered body; the handler enforces an idle timeout and the size it declared.
fn streaming(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer::<_, std::convert::Infallible>(DefaultBodyLimit::disable())
}

/// The API's routes, before state, fallbacks and the outer layers.
pub fn routes(limits: &Limits) -> Router<AppState> {
    let t = limits.request_timeout();
    let small = 16 * 1024;
    let json = limits.max_json_body;
    let manifest = peluit_proto::limits::MAX_MANIFEST_LEN + 1024;
    let p = "/api/v1/institutions/{institution}";
    Router::new()
        .route("/healthz", quick(get(health::get_healthz), t, small))
        .route("/", quick(get(crate::assets::get_index), t, small))
        .route(
            "/i/{institution}",
            quick(get(crate::assets::get_index), t, small),
        )
        .route(
            "/.well-known/peluit-bundle.json",
            quick(get(crate::assets::get_bundle_hashes), t, small),
        )
        .route(
            "/assets/{name}",
            quick(get(crate::assets::get_asset), t, small),
        )
        .route(
            "/poster/{institution}",
            quick(get(crate::api::poster::get_poster), t, small),
        )
        .route(
            "/submit-file",
            quick(get(submit_file::get_form), t, small)
                .merge(streaming(post(submit_file::post_file))),
        )
        .route(
            "/api/v1/openapi.json",
            quick(get(openapi::get_openapi), t, small),
        )
        .route(
            "/api/v1/institutions",
            quick(get(institutions::list_institutions), t, small),
        )
        .route(
            &format!("{p}/manifest"),
            quick(get(manifests::get_current), t, small),
        )
        .route(
            &format!("{p}/manifests"),
            quick(
                get(manifests::list_history).post(manifests::publish_manifest),
                t,
                manifest,
            ),
        )
        .route(
            &format!("{p}/uploads"),
            quick(post(uploads::create_upload), t, small),
        )
        .route(
            &format!("{p}/uploads/{{upload}}"),
            quick(get(uploads::get_upload), t, small).merge(streaming(put(uploads::put_upload))),
        )
        .route(
            &format!("{p}/uploads/{{upload}}/complete"),
            quick(post(uploads::complete_upload), t, small),
        )
        .route(
            &format!("{p}/reports"),
            quick(post(reports::submit_report), t, json),
        )
        .route(
            &format!("{p}/mailbox/challenges"),
            quick(post(mailbox::create_challenge), t, small),
        )
        .route(
            &format!("{p}/mailbox/sessions"),
            quick(post(mailbox::open_session), t, small),
        )
        .route(
            &format!("{p}/mailbox/messages"),
            quick(get(mailbox::list_messages), t, small),
        )
        .route(
            &format!("{p}/mailbox/messages/{{seq}}"),
            quick(get(mailbox::get_message), t, small),
        )
        .route(
            &format!("{p}/mailbox/follow-ups"),
            quick(post(mailbox::post_follow_up), t, json),
        )
        .route(
            &format!("{p}/export"),
            quick(get(export::get_export), t, small),
        )
        .route(
            &format!("{p}/replies"),
            quick(
                post(replies::import_replies),
                t * 10,
                limits.max_reply_bundle,
            ),
        )
        .route(
            &format!("{p}/cases/{{case}}"),
            quick(delete(cases::delete_case), t, small),
        )
}

/// Fallback for paths no route matches.
pub async fn no_such_endpoint() -> ApiError {
    ApiError::new(ErrorCode::NoSuchEndpoint, "no route matched")
}

/// Fallback for a known path with an unsupported method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed")
}
