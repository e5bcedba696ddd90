//! The one error type of the protocol crate. Crypto failures are deliberately coarse:
//! a caller learns that opening failed, never which check failed.

/// Everything that can go wrong while parsing, sealing, opening or verifying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ciphertext did not authenticate, was truncated or was not well-formed age.
    #[error("decryption failed")]
    DecryptionFailed,
    /// None of the given identities can open this ciphertext.
    #[error("no identity matches this message")]
    NoMatchingKey,
    /// A structure could not be parsed; the text names the structure, never its content.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A versioned structure carries a version this build does not speak.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which structure.
        what: &'static str,
        /// The version found.
        version: u64,
    },
    /// A signature did not verify, or was made by a key that is not allowed to sign this.
    #[error("signature verification failed")]
    BadSignature,
    /// A value is over its documented limit (see [`crate::limits`]).
    #[error("{0} exceeds its limit")]
    TooLarge(&'static str),
    /// A sealed message does not have the recipient stanzas the manifest requires.
    #[error("wrong recipients: {0}")]
    WrongRecipients(&'static str),
    /// A digest over sealed data did not match.
    #[error("integrity check failed: {0}")]
    IntegrityFailed(&'static str),
    /// A key manifest was refused; the rejection says which rule it broke.
    #[error("manifest rejected: {0}")]
    ManifestRejected(crate::manifest::Rejection),
    /// A report or follow-up breaks a rule of its form or of the protocol; the problem
    /// names the question or attachment position, never the content.
    #[error("report refused: {0}")]
    ReportRefused(crate::envelope::ReportProblem),
    /// A receipt could not be read; the error says how to correct it.
    #[error("{0}")]
    Receipt(crate::receipt::ReceiptError),
    /// A sealing or streaming call was made out of order or with inconsistent lengths.
    #[error("invalid use: {0}")]
    InvalidUse(&'static str),
    /// A bundle was refused or could not be read or written; the error says which rule
    /// it broke (docs/protocol.md#bundle).
    #[error("bundle rejected: {0}")]
    Bundle(crate::bundle::BundleError),
}

/// Result with the protocol error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
