//! Tower layers every response passes through: the header policy, the privacy-preserving
//! request log, the concurrency limit, and timeouts (docs/api.md#headers).

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::error::{ApiError, ErrorCode};

/// The content security policy: only our own script (and its WebAssembly), no inline
/// script or style, no third party, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' \
     'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     worker-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Features no page of Peluit uses; denying them keeps a compromised script from asking.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
     display-capture=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), \
     hid=(), interest-cohort=(), magnetometer=(), microphone=(), midi=(), payment=(), \
     picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), serial=(), \
     usb=(), xr-spatial-tracking=()";

/// Every header of the policy, as (name, value). Tests assert these on every route.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
    ("x-frame-options", "DENY"),
];

/// Wraps the application in what every request passes through, in one layer (axum
/// clones a route's whole layer stack per request, so each extra layer costs every
/// request): outermost the header policy, so nothing inside can answer without it; then
/// the server-wide concurrency limit; then the request log.
pub fn with_outer_layers(router: Router, concurrency: usize) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(middleware::map_response(apply_header_policy))
            .layer(GlobalConcurrencyLimitLayer::new(concurrency))
            .layer(middleware::from_fn(log_request)),
    )
}

/// Sets the header policy on a response, errors and 404s included, replacing any value an
/// inner layer set, and removes `Server` and `Set-Cookie` should one ever add them.
async fn apply_header_policy(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.remove(header::SERVER);
    headers.remove(header::SET_COOKIE);
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// Logs one line per request: method, matched route template and status. Never the
/// client address, the User-Agent, the Referer, the query string or the body; the log
/// format carries no timestamp (see [`crate::logging`]).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let response = next.run(request).await;
    tracing::info!(
        target: "peluit::http",
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        "request"
    );
    response
}

/// A whole-request deadline for ordinary (non-streaming) routes.
pub fn with_request_timeout(router: Router, timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                ApiError::new(ErrorCode::Timeout, "request deadline passed").into_response()
            }))
            .timeout(timeout),
    )
}
