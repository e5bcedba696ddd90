//! Receipts and the reporter keys derived from them (docs/protocol.md#receipt).

/// Why a typed receipt could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt has the wrong number of words.
    #[error("a receipt has {expected} words; {found} were given")]
    WordCount {
        /// Words a receipt has.
        expected: usize,
        /// Words given.
        found: usize,
    },
}
