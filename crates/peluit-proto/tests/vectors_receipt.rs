//! Receipt test vectors (docs/protocol.md#receipt): fixed entropy to words and keys, and
//! typed receipts that must be refused. Run `--ignored write_receipt_vectors` to rewrite.

// Integration tests are test code: this lets clippy's allow-unwrap-in-tests cover the
// helpers too.
#![cfg(test)]

mod pinned;
mod support;
mod vector_file;

use pinned::Vector;
use vector_file::VectorFile;

use std::collections::BTreeMap;

use peluit_proto::ids::InstitutionId;
use peluit_proto::receipt::{ENTROPY_LEN, Receipt, ReceiptError};
use peluit_proto::wordlist::Language;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const AREA: &str = "receipt";

fn entropy_of(label: &str) -> [u8; ENTROPY_LEN] {
    Sha256::digest(label.as_bytes())[..ENTROPY_LEN]
        .try_into()
        .unwrap()
}

fn receipt(entropy: &[u8; ENTROPY_LEN]) -> Receipt {
    Receipt::from_entropy(&Zeroizing::new(*entropy))
}

fn words(entropy: &[u8; ENTROPY_LEN], language: Language) -> Vec<String> {
    receipt(entropy)
        .words(language)
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn success(
    entropy: [u8; ENTROPY_LEN],
    institution: &str,
    language: Language,
    comment: &str,
    typed: String,
) -> Vector {
    let r = receipt(&entropy);
    let keys = r.derive(&institution.parse().unwrap());
    Vector::new("success")
        .with("comment", comment)
        .with("entropy", hex::encode(entropy))
        .with("institution", institution)
        .with("language", language.tag())
        .with("words id", r.words(Language::Id).as_str())
        .with("words en", r.words(Language::En).as_str())
        .with("reply recipient", keys.reply_recipient())
        .with("mailbox key", keys.mailbox_public_key())
        .with("mailbox id", keys.mailbox_id())
        .body(typed)
}

fn failure(error: &ReceiptError, comment: &str, typed: String) -> Vector {
    let vector = match error {
        ReceiptError::WordCount { found, .. } => Vector::new("word count").with("found", found),
        ReceiptError::UnknownWord {
            position,
            suggestions,
        } => Vector::new("unknown word")
            .with("position", position)
            .with("suggestions", suggestions.join(" ")),
        ReceiptError::MixedLanguages { position } => {
            Vector::new("mixed languages").with("position", position)
        }
        ReceiptError::Checksum => Vector::new("checksum"),
        other => panic!("no vector class for {other:?}"),
    };
    vector.with("comment", comment).body(typed)
}

/// Every vector, by file name, computed from the code under test.
fn generate() -> BTreeMap<&'static str, Vector> {
    let mut out = BTreeMap::new();
    let here = "itjen-contoh";
    let counting: [u8; ENTROPY_LEN] = core::array::from_fn(|i| i as u8);
    let fixed = entropy_of("peluit/v1 receipt vector");

    out.insert(
        "zeros_id",
        success(
            [0; ENTROPY_LEN],
            here,
            Language::Id,
            "all-zero entropy, typed exactly as shown",
            words(&[0; ENTROPY_LEN], Language::Id).join(" "),
        ),
    );
    out.insert(
        "ones_en",
        success(
            [0xff; ENTROPY_LEN],
            here,
            Language::En,
            "all-one entropy, English words",
            words(&[0xff; ENTROPY_LEN], Language::En).join(" "),
        ),
    );
    let typed = words(&counting, Language::Id)
        .iter()
        .map(|w| w.to_uppercase())
        .collect::<Vec<_>>()
        .join(" - ");
    out.insert(
        "counting_id_upper_hyphens",
        success(
            counting,
            here,
            Language::Id,
            "entropy 00 01 .. 0c, upper case, words joined by ' - '",
            format!("  {typed}.\n"),
        ),
    );
    let typed = words(&fixed, Language::En)
        .iter()
        .map(|w| w[..4].to_owned())
        .collect::<Vec<_>>()
        .join(",");
    out.insert(
        "fixed_en_prefixes",
        success(
            fixed,
            here,
            Language::En,
            "entropy = SHA-256('peluit/v1 receipt vector')[..13], four-letter prefixes, commas",
            typed,
        ),
    );
    out.insert(
        "fixed_id_other_institution",
        success(
            fixed,
            "kpk",
            Language::Id,
            "the same receipt at another institution derives other keys",
            words(&fixed, Language::Id).join("\t"),
        ),
    );

    // Failures, all built from the fixed receipt's Indonesian words.
    let list = words(&fixed, Language::Id);
    // A failure vector for `typed`, classed by the error the parser gives it.
    let refused = |comment: &str, typed: String| {
        let error = Receipt::parse(&typed).expect_err("a failure vector must fail");
        failure(&error, comment, typed)
    };

    let mut wrong = list.clone();
    let index = Language::Id.index_of(&list[4]).unwrap();
    wrong[4] = (1..2048)
        .map(|step| Language::Id.words()[(usize::from(index) + step) % 2048].to_owned())
        .find(|candidate| {
            let mut typed = list.clone();
            typed[4] = candidate.clone();
            matches!(
                Receipt::parse(&typed.join(" ")),
                Err(ReceiptError::Checksum)
            )
        })
        .unwrap();
    out.insert(
        "fail_checksum",
        refused(
            "word 5 replaced by the next list word that breaks the checksum",
            wrong.join(" "),
        ),
    );

    let mut typo = list.clone();
    let mut letters: Vec<char> = typo[2].chars().collect();
    letters[1] = if letters[1] == 'x' { 'q' } else { 'x' };
    typo[2] = letters.into_iter().collect();
    out.insert(
        "fail_unknown_word",
        refused("word 3 has its second letter changed", typo.join(" ")),
    );

    let mut short = list.clone();
    short[6] = short[6][..3].to_owned();
    out.insert(
        "fail_unknown_word_three_letters",
        refused(
            "word 7 shortened to three letters, below the four-letter minimum",
            short.join(" "),
        ),
    );

    out.insert(
        "fail_word_count_nine",
        refused("the last word is missing", list[..9].join(" ")),
    );
    out.insert(
        "fail_word_count_eleven",
        refused(
            "one word too many",
            format!("{} {}", list.join(" "), list[0]),
        ),
    );

    let en = words(&fixed, Language::En);
    let mut mixed = list.clone();
    let j = (0..10)
        .find(|&j| {
            let mut t = list.clone();
            t[j] = en[j].clone();
            matches!(
                Receipt::parse(&t.join(" ")),
                Err(ReceiptError::MixedLanguages { .. })
            )
        })
        .unwrap();
    mixed[j] = en[j].clone();
    out.insert(
        "fail_mixed_languages",
        refused("one English word among Indonesian ones", mixed.join(" ")),
    );
    out
}

fn check(vector: &VectorFile) {
    let name = vector.name.as_str();
    let expect = vector.required("expect");
    let typed = std::str::from_utf8(&vector.body).expect("a typed receipt is text");
    if expect == "success" {
        let entropy: [u8; ENTROPY_LEN] = hex::decode(vector.required("entropy"))
            .unwrap()
            .try_into()
            .unwrap();
        let r = receipt(&entropy);
        assert_eq!(
            r.words(Language::Id).as_str(),
            vector.required("words id"),
            "{name}"
        );
        assert_eq!(
            r.words(Language::En).as_str(),
            vector.required("words en"),
            "{name}"
        );
        let (parsed, language) = Receipt::parse_with_language(typed).unwrap();
        assert_eq!(parsed.expose_entropy(), &entropy, "{name}");
        assert_eq!(language.tag(), vector.required("language"), "{name}");
        let institution: InstitutionId = vector.required("institution").parse().unwrap();
        let keys = parsed.derive(&institution);
        assert_eq!(
            keys.reply_recipient().to_string(),
            vector.required("reply recipient"),
            "{name}"
        );
        assert_eq!(
            keys.mailbox_public_key().to_string(),
            vector.required("mailbox key"),
            "{name}"
        );
        assert_eq!(
            keys.mailbox_id().to_string(),
            vector.required("mailbox id"),
            "{name}"
        );
        return;
    }
    let error = Receipt::parse(typed).expect_err(name);
    match (expect, &error) {
        ("word count", ReceiptError::WordCount { found, expected }) => {
            assert_eq!(*expected, 10);
            assert_eq!(found.to_string(), vector.required("found"), "{name}");
        }
        (
            "unknown word",
            ReceiptError::UnknownWord {
                position,
                suggestions,
            },
        ) => {
            assert_eq!(position.to_string(), vector.required("position"), "{name}");
            assert_eq!(
                suggestions.join(" "),
                vector.required("suggestions"),
                "{name}"
            );
        }
        ("mixed languages", ReceiptError::MixedLanguages { position }) => {
            assert_eq!(position.to_string(), vector.required("position"), "{name}");
        }
        ("checksum", ReceiptError::Checksum) => {}
        _ => panic!("{name}: expected {expect}, got {error:?}"),
    }
}

pinned::vector_tests! {
    area: AREA,
    at_least: 10,
    generate: generate,
    check: check,
    holds: every_receipt_vector_holds,
    pinned: receipt_vectors_are_pinned,
    rewrite: write_receipt_vectors,
}
