//! The air-gapped investigator desk: key ceremony, manifest signing, bundle import into
//! case folders, and replies sealed for the trip back. No network code, by design.
//!
//! Every operation is a library function (so that the story tests drive the real code)
//! and a `peluit-investigator` subcommand (see [`cli`]). Errors are [`DeskError`]s: one
//! line what happened, one line what to do next.

pub mod casefile;
pub mod ceremony;
pub mod cli;
pub mod desk;
pub mod error;
pub mod fsutil;
pub mod html;
pub mod import;
pub mod keyfile;
pub mod names;
pub mod replies;
pub mod secrets;

pub use error::{DeskError, DeskResult};
