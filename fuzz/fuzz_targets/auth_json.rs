//! Fuzzes the mailbox login wire structures the server parses from any browser
//! (`Challenge` and `ChallengeResponse`, docs/protocol.md#mailbox-auth).
//!
//! Arbitrary bytes must never panic; an accepted document re-serializes to exactly its
//! bytes, and verifying a parsed response against a parsed challenge never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_proto::auth::{Challenge, ChallengeResponse, verify_response};

fuzz_target!(|data: &[u8]| {
    let challenge = Challenge::from_json(data);
    if let Ok(challenge) = &challenge {
        assert_eq!(challenge.to_json(), data);
    }
    if let Ok(response) = ChallengeResponse::from_json(data) {
        assert_eq!(response.to_json(), data);
        // A response checked against the challenge of the same nonce: never a panic.
        let issued =
            Challenge::from_issued("kws".parse().expect("institution id"), *response.nonce());
        let _ = verify_response(&issued, &response);
    }
    // A document is one structure or the other, never both.
    assert!(challenge.is_err() || ChallengeResponse::from_json(data).is_err());
});
