//! Fuzzes the report envelope and follow-up parsers behind the desk's openers
//! (`open_report`, `open_follow_up`, docs/protocol.md#envelope and #follow-up).
//!
//! The first input byte picks the structure (even: report, odd: follow-up); the rest is
//! the plaintext JSON, sealed inside the target to the fixture manifest's recipients so
//! that the parser behind the opener sees arbitrary bytes. Nothing may panic, and what
//! opens and passes the sealer's checks must re-seal and re-open to an equal value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_fuzz as fixtures;
use peluit_proto::envelope::{open_follow_up, open_report, seal_follow_up, seal_report};
use peluit_proto::limits::MAX_ENVELOPE_LEN;
use peluit_proto::seal::seal_padded;
use peluit_proto::sealed::SealedMessage;

fuzz_target!(|data: &[u8]| {
    let Some((mode, plaintext)) = fixtures::mode(data) else {
        return;
    };
    let manifest = fixtures::manifest();
    let recipients = fixtures::inspectorate();
    let Ok(ciphertext) = seal_padded(plaintext, &recipients) else {
        return;
    };
    let Ok(sealed) = SealedMessage::check(ciphertext, recipients.len(), MAX_ENVELOPE_LEN) else {
        return;
    };
    let investigator = [fixtures::investigator()];
    let escrow = [fixtures::escrow()];
    if mode % 2 == 0 {
        let Ok(report) = open_report(&sealed, &investigator) else {
            return;
        };
        let _ = report.check_against(manifest.form());
        if let Ok(again) = seal_report(&report, manifest) {
            let reopened = open_report(&again, &escrow).expect("a re-sealed report opens");
            assert!(reopened == report, "report round trip");
        }
    } else {
        let Ok(follow_up) = open_follow_up(&sealed, &investigator) else {
            return;
        };
        if let Ok(again) = seal_follow_up(&follow_up, manifest) {
            let reopened = open_follow_up(&again, &escrow).expect("a re-sealed follow-up opens");
            assert!(reopened == follow_up, "follow-up round trip");
        }
    }
});
