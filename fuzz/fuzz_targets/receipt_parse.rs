//! Fuzzes the receipt reader, which takes whatever a reporter types on the follow-up page
//! (`Receipt::parse_with_language`, docs/protocol.md#receipt).
//!
//! Arbitrary text must never panic. An accepted receipt, written back in its canonical
//! spelling (ten full lowercase words), must read back to the same entropy and language.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_proto::receipt::Receipt;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((receipt, language)) = Receipt::parse_with_language(text) {
        let words = receipt.words(language);
        let (again, again_language) =
            Receipt::parse_with_language(&words).expect("canonical words parse");
        assert_eq!(again.expose_entropy(), receipt.expose_entropy());
        assert_eq!(again_language, language);
        assert_eq!(*again.words(language), *words);
    }
});
