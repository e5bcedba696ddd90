//! Peluit's wire format and cryptography, shared by the reporter's browser, the server,
//! the air-gapped desk and the auditor. No I/O, no async, no clock: callers pass dates.
//!
//! Every format here is specified byte by byte in `docs/protocol.md`; checks in the code
//! cite the section they enforce.

pub mod auth;
pub mod bundle;
pub mod day;
pub mod encoding;
pub mod envelope;
mod error;
pub mod header;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod pow;
pub mod receipt;
pub mod reply;
pub mod seal;
pub mod sealed;
pub mod wordlist;

pub use error::{Error, Result};
