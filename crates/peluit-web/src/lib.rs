//! The reporter page's cryptography: `peluit-proto` behind a small interface that the page
//! calls from a Web Worker, compiled to WebAssembly (and, for browsers without it, to
//! JavaScript by binaryen's `wasm2js`). The browser and the desk share one implementation.

#[cfg(target_arch = "wasm32")]
mod abi;
mod error;
#[cfg(target_arch = "wasm32")]
mod rng;
pub mod session;

pub use error::WebError;
pub use session::{Op, Output, Session};
