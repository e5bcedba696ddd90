//! Protocol limits, enforced by every party (docs/protocol.md#limits). A server may be
//! configured stricter, never looser.

/// Plaintext chunk of the age STREAM; attachments are fed and stored in chunks this size.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Size of one sealed STREAM chunk: plaintext chunk plus the Poly1305 tag.
pub const SEALED_CHUNK_SIZE: usize = CHUNK_SIZE + 16;
/// Largest age header Peluit accepts (stanzas for at most [`MAX_RECIPIENTS`]).
pub const MAX_HEADER_LEN: usize = 4096;
/// Most age recipients one manifest may list.
pub const MAX_RECIPIENTS: usize = 16;
/// Largest sealed report envelope or follow-up, in bytes of ciphertext.
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;
/// Largest sealed reply (investigator message with its inline attachments).
pub const MAX_REPLY_LEN: usize = 16 * 1024 * 1024;
/// Largest single attachment plaintext.
pub const MAX_ATTACHMENT_LEN: u64 = 4 * 1024 * 1024 * 1024;
/// Most attachments in one report or follow-up.
pub const MAX_ATTACHMENTS: usize = 20;
/// Longest answer to one form question, in bytes of UTF-8.
pub const MAX_ANSWER_LEN: usize = 32 * 1024;
/// Longest short text (names, labels, media types, attachment names).
pub const MAX_SHORT_TEXT: usize = 256;
/// Most questions a form definition may hold.
pub const MAX_QUESTIONS: usize = 64;
/// Largest signed manifest document.
pub const MAX_MANIFEST_LEN: usize = 256 * 1024;
