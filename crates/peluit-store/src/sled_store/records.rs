//! Metadata records of the sled store: canonical JSON (`serde_json::to_vec`, fields in
//! struct order) with `"version": 1`, parsed strictly (docs/storage.md#records).

use peluit_proto::day::Day;
use peluit_proto::ids::{CaseId, MessageId, UploadId};
use peluit_proto::keys::VerifyingKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The only record version this build writes and reads.
pub(crate) const VERSION: u8 = 1;

pub(crate) trait Record: Serialize + DeserializeOwned {
    /// Names the record kind in errors; never its content.
    const WHAT: &'static str;
    fn version(&self) -> u8;

    fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|error| Error::Storage(Box::new(error)))
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let record: Self = serde_json::from_slice(bytes).map_err(|_| Error::Corrupt(Self::WHAT))?;
        // Refuse a record from a future layout rather than misread it.
        // docs/storage.md#records
        if record.version() != VERSION {
            return Err(Error::Corrupt(Self::WHAT));
        }
        Ok(record)
    }
}

macro_rules! record {
    ($name:ident, $what:literal) => {
        impl Record for $name {
            const WHAT: &'static str = $what;
            fn version(&self) -> u8 {
                self.version
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CaseStateRec {
    Open,
    Deleted,
}

/// `cases` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseRec {
    pub(crate) version: u8,
    pub(crate) day: Day,
    pub(crate) size_bucket: u64,
    pub(crate) mailbox_key: VerifyingKey,
    pub(crate) state: CaseStateRec,
    pub(crate) attachments: Vec<UploadId>,
    pub(crate) envelope_len: u64,
    pub(crate) cursor: u64,
    pub(crate) deleted_on: Option<Day>,
}
record!(CaseRec, "case");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UploadStateRec {
    Receiving,
    Complete,
    Attached,
}

/// `uploads` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadRec {
    pub(crate) version: u8,
    pub(crate) created: Day,
    pub(crate) declared_len: u64,
    /// Bytes of the upload's file that are durable: the only ones that exist.
    pub(crate) received: u64,
    /// Sealed chunks appended so far.
    pub(crate) chunks: u64,
    pub(crate) state: UploadStateRec,
    pub(crate) case: Option<CaseId>,
    pub(crate) cursor: Option<u64>,
}
record!(UploadRec, "upload");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MailboxKindRec {
    Reply,
    FollowUp,
}

/// `mailbox` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MailboxRec {
    pub(crate) version: u8,
    pub(crate) id: MessageId,
    pub(crate) kind: MailboxKindRec,
    pub(crate) day: Day,
    pub(crate) len: u64,
    pub(crate) cursor: Option<u64>,
}
record!(MailboxRec, "mailbox");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ExportKindRec {
    Case,
    Attachment,
    FollowUp,
}

/// `export` value: what the cursor points at.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRec {
    pub(crate) version: u8,
    pub(crate) kind: ExportKindRec,
    pub(crate) case: CaseId,
    pub(crate) upload: Option<UploadId>,
    pub(crate) seq: Option<u64>,
}
record!(ExportRec, "export");

/// `pow` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PowRec {
    pub(crate) version: u8,
    pub(crate) day: Day,
}
record!(PowRec, "proof-of-work");

/// `tokens` value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRec {
    pub(crate) version: u8,
    pub(crate) label: String,
    pub(crate) created: Day,
}
record!(TokenRec, "token");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_canonical_json_and_parse_strictly() {
        let upload = UploadRec {
            version: VERSION,
            created: "2026-11-28".parse().unwrap(),
            declared_len: 70_000,
            received: 4096,
            chunks: 1,
            state: UploadStateRec::Receiving,
            case: None,
            cursor: None,
        };
        let bytes = upload.to_bytes().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"version":1,"created":"2026-11-28","declared_len":70000,"received":4096,"chunks":1,"state":"receiving","case":null,"cursor":null}"#
        );
        assert_eq!(UploadRec::from_bytes(&bytes).unwrap().received, 4096);
        let unknown = br#"{"version":1,"created":"2026-11-28","declared_len":1,"received":0,"chunks":0,"state":"receiving","case":null,"cursor":null,"ip":"1.2.3.4"}"#;
        assert!(matches!(
            UploadRec::from_bytes(unknown),
            Err(Error::Corrupt("upload"))
        ));
        let future = br#"{"version":2,"day":"2026-11-28"}"#;
        assert!(matches!(PowRec::from_bytes(future), Err(Error::Corrupt(_))));
    }
}
