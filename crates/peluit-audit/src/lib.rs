//! Peluit's auditor: checks, with no secret key, that a server's store holds only
//! ciphertext, that a site serves the published page and keys, and that a bundle is intact.
//!
//! Each check is a function returning findings (an empty list is a pass) and, for the
//! store, what the server's metadata exposes in aggregate. `docs/auditing.md` says what
//! an auditor can and cannot conclude from each.

pub mod bundle;
pub mod cli;
pub mod error;
pub mod findings;
mod records;
pub mod scan;
pub mod site;
pub mod store;

pub use error::{AuditError, AuditResult};
pub use findings::{Finding, Place};
