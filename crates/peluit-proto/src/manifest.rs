//! The signed key manifest (docs/protocol.md#manifest).

/// Why a manifest was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The signature does not verify under the pinned manifest key.
    #[error("the signature does not verify under the pinned manifest key")]
    BadSignature,
}
