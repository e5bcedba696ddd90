//! The one error type of the HTTP API: a stable machine code and a generic message for the
//! client, details only to the internal log (docs/api.md#errors).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Stable machine codes. A client branches on these; they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a wrong type, a bad id or encoding.
    BadRequest,
    /// The named institution, case, upload or reply does not exist.
    NotFound,
    /// No endpoint answers this path.
    NoSuchEndpoint,
    /// The endpoint exists but not for this method.
    MethodNotAllowed,
    /// The request conflicts with stored state (wrong offset, serial not growing, replay).
    Conflict,
    /// A body or field is over its limit.
    PayloadTooLarge,
    /// Ciphertext is not age sealed to exactly the manifest's recipients.
    WrongRecipients,
    /// The proof-of-work stamp is missing, too weak or does not match the envelope.
    BadProofOfWork,
    /// Missing or wrong bearer token or mailbox session.
    Unauthorized,
    /// A signature (manifest, reply, follow-up, mailbox response) did not verify.
    BadSignature,
    /// The body has a media type this endpoint does not take.
    UnsupportedMediaType,
    /// The server is too busy for this request now; retry later.
    TooManyRequests,
    /// The client was too slow.
    Timeout,
    /// The store refuses writes after a failed durable commit.
    ReadOnly,
    /// Anything else; details are in the server's log only.
    Internal,
}

impl ErrorCode {
    /// The machine code as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::NoSuchEndpoint => "no_such_endpoint",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::WrongRecipients => "wrong_recipients",
            Self::BadProofOfWork => "bad_proof_of_work",
            Self::Unauthorized => "unauthorized",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests => "too_many_requests",
            Self::Timeout => "timeout",
            Self::ReadOnly => "read_only",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::BadProofOfWork | Self::WrongRecipients => {
                StatusCode::BAD_REQUEST
            }
            Self::NotFound | Self::NoSuchEndpoint => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadSignature => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::ReadOnly => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The generic message: says what kind of thing went wrong, never which input.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "the request is malformed",
            Self::NotFound => "not found",
            Self::NoSuchEndpoint => "no such endpoint",
            Self::MethodNotAllowed => "method not allowed on this endpoint",
            Self::Conflict => "the request conflicts with the stored state",
            Self::PayloadTooLarge => "the request or one of its fields is too large",
            Self::WrongRecipients => {
                "the ciphertext is not age sealed to exactly the published recipients"
            }
            Self::BadProofOfWork => "the proof-of-work stamp is missing or invalid",
            Self::Unauthorized => "missing or invalid credentials",
            Self::BadSignature => "a signature did not verify",
            Self::UnsupportedMediaType => "unsupported media type",
            Self::TooManyRequests => "the server is busy; try again later",
            Self::Timeout => "the request took too long",
            Self::ReadOnly => "the server is read-only after a storage failure; try later",
            Self::Internal => "internal error",
        }
    }
}

/// An API failure: what the client sees (code, message) and a static detail for the log.
/// The detail is always a fixed text or a library error that names no input, so that no
/// request byte ever reaches the log.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: std::borrow::Cow<'static, str>,
}

impl ApiError {
    /// An error with a fixed detail for the log.
    pub fn new(code: ErrorCode, detail: &'static str) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// An error whose log detail is a library error's text. Only for errors whose
    /// `Display` names no request content (peluit-proto's and peluit-store's do not).
    pub fn from_library(code: ErrorCode, error: &dyn std::fmt::Display) -> Self {
        Self {
            code,
            detail: error.to_string().into(),
        }
    }

    /// The machine code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Shorthand for a malformed request.
    pub fn bad_request(detail: &'static str) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    /// Shorthand for an unknown entity.
    pub fn not_found(detail: &'static str) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    /// Shorthand for a state conflict.
    pub fn conflict(detail: &'static str) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    /// Shorthand for an oversize body or field.
    pub fn too_large(detail: &'static str) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, detail)
    }

    /// Shorthand for missing or wrong credentials.
    pub fn unauthorized(detail: &'static str) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }

    /// Shorthand for a server-side fault.
    pub fn internal(detail: &'static str) -> Self {
        Self::new(ErrorCode::Internal, detail)
    }
}

/// The JSON body of every error response.
#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    fn log(&self) {
        if self.code.status().is_server_error() {
            tracing::error!(code = self.code.as_str(), detail = %self.detail, "request failed");
        } else {
            tracing::info!(code = self.code.as_str(), detail = %self.detail, "request refused");
        }
    }

    /// The error as an HTML page (for the script-free form), logged like the JSON form.
    pub fn into_html_response(self, render: impl FnOnce(ErrorCode) -> String) -> Response {
        self.log();
        let page = render(self.code);
        (
            self.code.status(),
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            page,
        )
            .into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = ErrorBody {
            code: self.code.as_str(),
            message: self.code.message(),
        };
        (self.code.status(), Json(body)).into_response()
    }
}

/// Maps a protocol error to the API code a client should see.
impl From<peluit_proto::Error> for ApiError {
    fn from(error: peluit_proto::Error) -> Self {
        use peluit_proto::Error as E;
        let code = match &error {
            E::WrongRecipients(_) => ErrorCode::WrongRecipients,
            E::TooLarge(_) => ErrorCode::PayloadTooLarge,
            E::BadSignature
            | E::ManifestRejected(peluit_proto::manifest::Rejection::BadSignature) => {
                ErrorCode::BadSignature
            }
            E::Malformed(_) | E::UnsupportedVersion { .. } | E::IntegrityFailed(_) => {
                ErrorCode::BadRequest
            }
            _ => ErrorCode::BadRequest,
        };
        Self::from_library(code, &error)
    }
}
