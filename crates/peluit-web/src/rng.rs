//! Randomness inside the WebAssembly module: a ChaCha generator reseeded before every
//! call with 32 bytes the page takes from `crypto.getRandomValues`.
//!
//! WebAssembly has no random source of its own and the module imports nothing, so the
//! page hands fresh randomness in with each call (`src/abi.rs`); getrandom, and so age
//! and every key generator, draws from here.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Replaces the generator with one seeded by `seed`.
pub fn reseed(seed: [u8; 32]) {
    RNG.with_borrow_mut(|rng| *rng = Some(StdRng::from_seed(seed)));
}

/// Fills `dest` from the generator; fails before the first seed.
fn fill(dest: &mut [u8]) -> Result<(), getrandom::Error> {
    RNG.with_borrow_mut(|rng| match rng {
        Some(rng) => {
            rng.fill_bytes(dest);
            Ok(())
        }
        None => Err(getrandom::Error::UNSUPPORTED),
    })
}

getrandom::register_custom_getrandom!(fill);
