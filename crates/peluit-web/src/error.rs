//! The one error a page call can answer: a stable code for the page to translate, the
//! rule that was broken where there is one, and proto's message (never input content).

use peluit_proto::Error;
use serde::Serialize;

/// A refused call, answered to the page as JSON.
#[derive(Debug, Serialize)]
pub struct WebError {
    /// Stable, snake_case: what kind of failure.
    pub code: &'static str,
    /// For refused manifests and reports, the broken rule's code (docs/protocol.md).
    pub detail: Option<&'static str>,
    /// An English sentence for logs and the page's "details" line.
    pub message: String,
}

impl WebError {
    /// A call that needs a verified manifest came first.
    pub fn no_manifest() -> Self {
        Self::plain("no_manifest", "no verified manifest yet")
    }

    /// A reply came before the manifest history it is checked against.
    pub fn no_history() -> Self {
        Self::plain("no_history", "no verified manifest history yet")
    }

    /// A call that needs the reporter's keys came before a receipt.
    pub fn no_receipt() -> Self {
        Self::plain("no_receipt", "no receipt opened yet")
    }

    fn plain(code: &'static str, message: &str) -> Self {
        Self {
            code,
            detail: None,
            message: message.to_owned(),
        }
    }

    /// The request could not be read.
    pub fn bad_request(what: &'static str) -> Self {
        Self::plain("bad_request", &format!("unreadable request: {what}"))
    }

    /// Calls came in an order the session does not allow.
    pub fn invalid_use(what: &'static str) -> Self {
        Self::plain("invalid_use", what)
    }

    /// The answer as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"code\":\"internal\"}".to_vec())
    }
}

impl From<Error> for WebError {
    fn from(error: Error) -> Self {
        let (code, detail) = match &error {
            Error::ManifestRejected(rejection) => ("manifest_rejected", Some(rejection.code())),
            Error::ReportRefused(problem) => ("report_refused", Some(problem.code())),
            Error::Receipt(_) => ("receipt", None),
            Error::BadSignature => ("bad_signature", None),
            Error::DecryptionFailed | Error::NoMatchingKey | Error::IntegrityFailed(_) => {
                ("not_authentic", None)
            }
            Error::TooLarge(_) => ("too_large", None),
            Error::Malformed(_) | Error::UnsupportedVersion { .. } => ("malformed", None),
            _ => ("invalid_use", None),
        };
        Self {
            code,
            detail,
            message: error.to_string(),
        }
    }
}
