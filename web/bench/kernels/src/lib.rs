//! Bench-only WebAssembly kernels: each hashes or seals the first `len` bytes of one buffer
//! the page fills, so web/bench/seal.mjs can time the primitives under the page's sealer.
#![allow(unsafe_code)]

use std::cell::RefCell;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

// age's STREAM chunk: docs/protocol.md#sealing.
const CHUNK: usize = 64 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_buffer(len: usize, f: impl FnOnce(&mut [u8]) -> u32) -> u32 {
    BUFFER.with_borrow_mut(|buffer| {
        let len = len.min(buffer.len());
        f(&mut buffer[..len])
    })
}

/// Room for `len` bytes; returns where the page writes them.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_buffer(len: usize) -> *mut u8 {
    BUFFER.with_borrow_mut(|buffer| {
        buffer.resize(len, 0);
        buffer.as_mut_ptr()
    })
}

/// SHA-256 with sha2 0.10 (what proto's sealer uses), fed 64 KiB at a time.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_sha256_v10(len: usize) -> u32 {
    use sha2_10::Digest;
    with_buffer(len, |data| {
        let mut hash = sha2_10::Sha256::new();
        for chunk in data.chunks(CHUNK) {
            hash.update(chunk);
        }
        u32::from(hash.finalize()[0])
    })
}

/// SHA-256 with sha2 0.11 (a simd128 backend when the module is built with it).
#[unsafe(no_mangle)]
pub extern "C" fn kernel_sha256_v11(len: usize) -> u32 {
    use sha2_11::Digest;
    with_buffer(len, |data| {
        let mut hash = sha2_11::Sha256::new();
        for chunk in data.chunks(CHUNK) {
            hash.update(chunk);
        }
        u32::from(hash.finalize()[0])
    })
}

/// ChaCha20-Poly1305 in place, one 64 KiB chunk per nonce, as age's STREAM seals.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_chacha20poly1305(len: usize) -> u32 {
    let aead = ChaCha20Poly1305::new(Key::from_slice(&[7; 32]));
    with_buffer(len, |data| {
        let mut nonce = [0u8; 12];
        let mut last = 0;
        for (i, chunk) in data.chunks_mut(CHUNK).enumerate() {
            nonce[3..11].copy_from_slice(&(i as u64).to_be_bytes());
            match aead.encrypt_in_place_detached(Nonce::from_slice(&nonce), &[], chunk) {
                Ok(tag) => last = u32::from(tag[0]),
                Err(_) => return u32::MAX,
            }
        }
        last
    })
}

/// The ChaCha20 keystream alone, chacha20 0.9 (under chacha20poly1305 0.10).
#[unsafe(no_mangle)]
pub extern "C" fn kernel_chacha20_v09(len: usize) -> u32 {
    use chacha20_09::cipher::{KeyIvInit, StreamCipher};
    let mut cipher = chacha20_09::ChaCha20::new(&[7; 32].into(), &[0; 12].into());
    with_buffer(len, |data| {
        cipher.apply_keystream(data);
        u32::from(data.first().copied().unwrap_or(0))
    })
}

/// The ChaCha20 keystream alone, chacha20 0.10 (its generator: the lock has it without
/// the `cipher` feature; same block function and backends).
#[unsafe(no_mangle)]
pub extern "C" fn kernel_chacha20_v10(len: usize) -> u32 {
    use rand_core_10::{Rng, SeedableRng};
    let mut rng = chacha20_10::ChaCha20Rng::from_seed([7; 32]);
    with_buffer(len, |data| {
        rng.fill_bytes(data);
        u32::from(data.first().copied().unwrap_or(0))
    })
}

/// Clearing with zeroize (volatile byte stores), as the module clears its buffers.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_zeroize(len: usize) -> u32 {
    use zeroize::Zeroize;
    with_buffer(len, |data| {
        data.zeroize();
        u32::from(data.first().copied().unwrap_or(0))
    })
}

/// Copying within the module (the cost of one more copy of the data).
#[unsafe(no_mangle)]
pub extern "C" fn kernel_copy(len: usize) -> u32 {
    with_buffer(len, |data| {
        let half = data.len() / 2;
        data.copy_within(..half, half);
        u32::from(data.last().copied().unwrap_or(0))
    })
}

/// proto's `StreamSealer`, as the page's module drives it (64 KiB pushes, then the tail),
/// to one fixed recipient: sealing as a whole, without the page's JavaScript around it.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_stream_sealer(len: usize) -> u32 {
    use peluit_proto::keys::SealRecipient;
    use peluit_proto::seal::StreamSealer;
    let Ok(recipient) =
        "age12r6vqy4y5ymudrnnl46p98vvy30yfsnrrax52ywltypkwyzyqensdpg8g3".parse::<SealRecipient>()
    else {
        return u32::MAX;
    };
    with_buffer(len, |data| {
        let Ok(mut sealer) = StreamSealer::new(&[recipient], data.len() as u64) else {
            return u32::MAX;
        };
        let mut sealed = sealer.take_output().len();
        for chunk in data.chunks(CHUNK) {
            match sealer.push(chunk) {
                Ok(out) => sealed += out.len(),
                Err(_) => return u32::MAX,
            }
        }
        while let Ok(Some(out)) = sealer.next_tail() {
            sealed += out.len();
        }
        sealed as u32 ^ u32::from(sealer.sealed_sha256()[0])
    })
}

// Sealing draws its file key from getrandom: a counter is enough for timing.
fn counter_bytes(dest: &mut [u8]) -> Result<(), getrandom::Error> {
    for (i, byte) in dest.iter_mut().enumerate() {
        *byte = i as u8;
    }
    Ok(())
}

getrandom::register_custom_getrandom!(counter_bytes);
