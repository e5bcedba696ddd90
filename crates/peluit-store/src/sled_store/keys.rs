//! Key layout of the sled store: every key is `institution ‖ '/' ‖ fixed-width fields`,
//! integers big-endian so byte order is numeric order (docs/storage.md#layout).

use peluit_proto::ids::InstitutionId;

/// The trees, in the order they are opened and passed to every transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeId {
    Manifests = 0,
    Cases = 1,
    Envelopes = 2,
    Uploads = 3,
    Mailbox = 4,
    MailboxPieces = 5,
    Export = 6,
    Counters = 7,
    Pow = 8,
    Tokens = 9,
    Purge = 10,
}

impl TreeId {
    pub(crate) const ALL: [TreeId; 11] = [
        TreeId::Manifests,
        TreeId::Cases,
        TreeId::Envelopes,
        TreeId::Uploads,
        TreeId::Mailbox,
        TreeId::MailboxPieces,
        TreeId::Export,
        TreeId::Counters,
        TreeId::Pow,
        TreeId::Tokens,
        TreeId::Purge,
    ];

    /// The tree's name on disk; the auditor walks trees by these names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TreeId::Manifests => "manifests",
            TreeId::Cases => "cases",
            TreeId::Envelopes => "envelopes",
            TreeId::Uploads => "uploads",
            TreeId::Mailbox => "mailbox",
            TreeId::MailboxPieces => "mailbox_pieces",
            TreeId::Export => "export",
            TreeId::Counters => "counters",
            TreeId::Pow => "pow",
            TreeId::Tokens => "tokens",
            TreeId::Purge => "purge",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What a `purge` entry removes once its step is durable; the code is the entry's byte
/// after the institution (docs/storage.md#deletion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PurgeTarget {
    /// The pieces of a case's envelope in `envelopes`.
    Envelope = 2,
    /// An upload's file under `uploads/`.
    UploadFile = 4,
    /// The pieces of a case's mailbox messages in `mailbox_pieces`.
    MailboxPieces = 6,
}

impl PurgeTarget {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<PurgeTarget> {
        [
            PurgeTarget::Envelope,
            PurgeTarget::UploadFile,
            PurgeTarget::MailboxPieces,
        ]
        .into_iter()
        .find(|target| target.code() == code)
    }
}

/// Builds a key field by field.
#[derive(Clone, Debug)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    /// `institution ‖ '/'`. Institution ids never contain `/`, so this prefix of one
    /// institution is never a prefix of another's keys.
    pub(crate) fn institution(institution: &InstitutionId) -> Self {
        let mut key = Vec::with_capacity(institution.as_str().len() + 1 + 16 + 16 + 8 + 4);
        key.extend_from_slice(institution.as_str().as_bytes());
        key.push(b'/');
        Self(key)
    }

    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Splits a key into its institution and the rest.
pub(crate) fn split_institution(key: &[u8]) -> Option<(InstitutionId, &[u8])> {
    let slash = key.iter().position(|&b| b == b'/')?;
    let institution = std::str::from_utf8(&key[..slash]).ok()?.parse().ok()?;
    Some((institution, &key[slash + 1..]))
}

/// Reads a big-endian integer field from the end of a key.
pub(crate) fn trailing_u64(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// Reads a 16-byte id field at the start of `rest`.
pub(crate) fn leading_id(rest: &[u8]) -> Option<[u8; 16]> {
    rest.get(..16)?.try_into().ok()
}

/// The name of the export-cursor counter in the `counters` tree.
pub(crate) const EXPORT_CURSOR: &[u8] = b"export_cursor";
