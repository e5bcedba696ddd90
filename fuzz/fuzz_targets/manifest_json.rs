//! Fuzzes the signed key manifest parser every page, server and desk runs on a served
//! manifest (`SignedManifest::from_json`, docs/protocol.md#manifest).
//!
//! Arbitrary bytes must never panic, and an accepted document re-serializes to exactly its
//! bytes. Since a mutated manifest rarely keeps a valid signature, each accepted manifest
//! is also re-signed with the fixture manifest key and verified, so that every rule of
//! verification sees fuzzed input; what verifies must round-trip too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_fuzz as fixtures;
use peluit_proto::manifest::{SignedManifest, VerifyPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = SignedManifest::from_json(data) else {
        return;
    };
    assert_eq!(signed.to_json(), data, "canonical re-serialization");
    let key = fixtures::manifest_key();
    let policy = VerifyPolicy::new(key.verifying_key(), fixtures::today());
    let _ = signed.verify(&policy);

    let resigned = signed.manifest().clone().sign(&key);
    let json = resigned.to_json();
    let reparsed = SignedManifest::from_json(&json).expect("a re-signed manifest parses");
    assert_eq!(reparsed, resigned);
    if let Ok(verified) = resigned.verify(&policy) {
        assert_eq!(verified.signed().to_json(), json);
        assert_eq!(verified.manifest_sha256(), resigned.manifest_sha256());
        let _ = (verified.seal_recipients(), verified.reply_signing_keys());
    }
});
