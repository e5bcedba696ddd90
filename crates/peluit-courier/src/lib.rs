//! The courier, run on an online machine: pulls everything new from the server as one
//! verified export bundle onto the USB stick, and pushes the desk's reply bundles back.
//!
//! It holds no key that opens anything: bundles are sealed data. It checks each bundle's
//! framing with proto before it keeps or sends it. The access token comes from a file or
//! the environment, never from a command-line value (docs/desk.md#courier).

pub mod cli;
pub mod error;
pub mod transfer;

pub use error::{CourierError, CourierResult};
