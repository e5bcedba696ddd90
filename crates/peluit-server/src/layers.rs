//! Tower layers every response passes through: the header policy, the privacy-preserving
//! request log, timeouts and the concurrency limit (docs/api.md#headers).

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;

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

/// Adds the header policy to every response, errors and 404s included; it is the
/// outermost layer so nothing inside can answer without it. Removes `Server` and
/// `Set-Cookie` should any inner layer ever add them.
pub fn with_security_headers(router: Router) -> Router {
    let mut router = router.layer(middleware::from_fn(strip_identifying_headers));
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    router
}

async fn strip_identifying_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.remove(header::SERVER);
    headers.remove(header::SET_COOKIE);
    response
}

/// Logs one line per request: method, matched route template and status. Never the
/// client address, the User-Agent, the Referer, the query string or the body; the log
/// format carries no timestamp (see [`crate::logging`]).
pub async fn log_request(request: Request, next: Next) -> Response {
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

/// A server-wide limit on requests in progress; further requests wait their turn.
pub fn with_concurrency_limit(router: Router, limit: usize) -> Router {
    router.layer(GlobalConcurrencyLimitLayer::new(limit))
}
