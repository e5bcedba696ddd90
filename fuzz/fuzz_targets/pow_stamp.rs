//! Fuzzes the proof-of-work stamp that comes with every submission (`Stamp`,
//! docs/protocol.md#pow).
//!
//! Arbitrary bytes must never panic; an accepted stamp re-serializes to exactly its bytes,
//! and checking it (up to the largest difficulty) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_proto::pow::{MAX_BITS, Stamp};

fuzz_target!(|data: &[u8]| {
    if let Ok(stamp) = Stamp::from_json(data) {
        assert_eq!(stamp.to_json(), data);
        let resource = [0x5a; 32];
        for min_bits in [0, 1, stamp.bits(), MAX_BITS, u8::MAX] {
            let _ = stamp.verify(&resource, min_bits);
        }
    }
});
