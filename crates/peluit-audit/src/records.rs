//! The metadata records the store may hold, as docs/storage.md#records lists them: the
//! audit's allowlist. A value is allowed only if it parses strictly and re-serializes to
//! exactly its bytes, so no extra field, spacing or spelling can carry anything.

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, InstitutionId, MessageId, UploadId};
use peluit_proto::keys::VerifyingKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Case state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Submitted, not deleted.
    Open,
    /// A tombstone.
    Deleted,
}

/// `cases` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRec {
    pub version: u8,
    pub day: Day,
    pub size_bucket: u64,
    pub mailbox_key: VerifyingKey,
    pub state: CaseState,
    pub attachments: Vec<UploadId>,
    pub envelope_len: u64,
    pub cursor: u64,
    pub deleted_on: Option<Day>,
}

/// Upload state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Bytes still arriving.
    Receiving,
    /// Every declared byte arrived.
    Complete,
    /// Attached to a case.
    Attached,
}

/// `uploads` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRec {
    pub version: u8,
    pub created: Day,
    pub declared_len: u64,
    pub received: u64,
    pub chunks: u64,
    pub state: UploadState,
    pub case: Option<CaseId>,
    pub cursor: Option<u64>,
}

/// Mailbox message kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// A signed reply from the desk.
    Reply,
    /// A reporter's sealed follow-up.
    FollowUp,
}

/// `mailbox` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxRec {
    pub version: u8,
    pub id: MessageId,
    pub kind: MailboxKind,
    pub day: Day,
    pub len: u64,
    pub cursor: Option<u64>,
}

/// Export entry kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// A case's envelope.
    Case,
    /// An attachment.
    Attachment,
    /// A follow-up.
    FollowUp,
}

/// `export` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRec {
    pub version: u8,
    pub kind: ExportKind,
    pub case: CaseId,
    pub upload: Option<UploadId>,
    pub seq: Option<u64>,
}

/// `pow` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowRec {
    pub version: u8,
    pub day: Day,
}

/// `tokens` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRec {
    pub version: u8,
    pub label: String,
    pub created: Day,
}

/// Token request kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRequestKind {
    /// Store a token's hash.
    Issue,
    /// Remove a token's hash.
    Revoke,
}

/// A file in `token-requests/`: a token command's request, waiting for the server's next
/// reload (docs/storage.md#layout). `label` and `created` for an issue only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestRec {
    pub version: u8,
    pub kind: TokenRequestKind,
    pub institution: InstitutionId,
    pub hash: String,
    pub label: Option<String>,
    pub created: Option<Day>,
}

/// Parses a record strictly: known fields only, version 1, and the exact bytes the store
/// writes (`serde_json::to_vec`). The error says what is wrong without quoting the value.
pub fn parse<R: Serialize + DeserializeOwned>(bytes: &[u8], what: &str) -> Result<R, String> {
    let record: R = serde_json::from_slice(bytes).map_err(|error| {
        let text = if bytes.first() == Some(&b'{') {
            format!(
                "not a valid {what} record ({})",
                classify_json_error(&error)
            )
        } else {
            format!("not a {what} record (not JSON)")
        };
        format!("{text}; {}", looks_like(bytes))
    })?;
    let again =
        serde_json::to_vec(&record).map_err(|_| format!("{what} record cannot be re-encoded"))?;
    if again != bytes {
        return Err(format!(
            "{what} record is not in canonical form (extra spacing, escapes or field order)"
        ));
    }
    let version: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| format!("not a valid {what} record"))?;
    if version.get("version").and_then(serde_json::Value::as_u64) != Some(1) {
        return Err(format!("{what} record has a version other than 1"));
    }
    Ok(record)
}

/// serde's message names the field and the expectation; a value it quotes (between
/// double quotes) is cut out so that the report never repeats stored content.
fn classify_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text
        .find(" at line ")
        .map_or(text.as_str(), |at| &text[..at]);
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// A hint at what a refused value is, for the auditor's report: its length and whether it
/// is printable text, without repeating its content.
pub fn looks_like(bytes: &[u8]) -> String {
    let printable = bytes
        .iter()
        .filter(|&&b| b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
        .count();
    if !bytes.is_empty() && printable * 10 >= bytes.len() * 9 {
        format!("{} bytes of readable text", bytes.len())
    } else {
        format!("{} bytes", bytes.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn records_pass_only_in_their_exact_canonical_form() {
        let good = br#"{"version":1,"day":"2026-11-27"}"#;
        assert!(parse::<PowRec>(good, "proof-of-work").is_ok());
        let precise = br#"{"version":1,"day":"2026-11-27T09:41:07Z"}"#;
        let why = parse::<PowRec>(precise, "proof-of-work").unwrap_err();
        assert!(why.contains("not a valid proof-of-work record"), "{why}");
        assert!(!why.contains("09:41"), "the value is not repeated: {why}");
        let extra = br#"{"version":1,"day":"2026-11-27","ip":"10.0.0.1"}"#;
        assert!(
            parse::<PowRec>(extra, "proof-of-work")
                .unwrap_err()
                .contains("unknown field")
        );
        let spaced = br#"{"version":1, "day":"2026-11-27"}"#;
        assert!(
            parse::<PowRec>(spaced, "proof-of-work")
                .unwrap_err()
                .contains("canonical")
        );
        let future = br#"{"version":2,"day":"2026-11-27"}"#;
        assert!(
            parse::<PowRec>(future, "proof-of-work")
                .unwrap_err()
                .contains("version")
        );
    }
}
