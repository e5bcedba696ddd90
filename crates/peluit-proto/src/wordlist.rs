//! The two committed word lists (2048 words each, 11 bits per word) used for receipts and
//! for key fingerprints. Sources, licences and the selection rules are in
//! `crates/peluit-proto/wordlists/README.md`; docs/protocol.md#word-lists pins their hashes.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Words in each list.
pub const WORDS: usize = 2048;
/// Bits carried by one word.
pub const BITS_PER_WORD: usize = 11;

/// A language with a word list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Bahasa Indonesia, the default.
    Id,
    /// English.
    En,
}

impl Language {
    /// The language's word list, sorted, 2048 lowercase ASCII words.
    pub fn words(self) -> &'static [&'static str] {
        static ID: OnceLock<Vec<&'static str>> = OnceLock::new();
        static EN: OnceLock<Vec<&'static str>> = OnceLock::new();
        let (cell, text) = match self {
            Self::Id => (&ID, include_str!("../wordlists/id.txt")),
            Self::En => (&EN, include_str!("../wordlists/en.txt")),
        };
        cell.get_or_init(|| text.lines().collect())
    }

    /// The index of `word` in this language's list.
    pub fn index_of(self, word: &str) -> Option<u16> {
        self.words().binary_search(&word).ok().map(|i| i as u16)
    }

    /// The BCP 47 tag.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::En => "en",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_distinct_and_full() {
        for lang in [Language::Id, Language::En] {
            let words = lang.words();
            assert_eq!(words.len(), WORDS);
            assert!(words.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
            assert!(
                words.iter().all(
                    |w| (4..=8).contains(&w.len()) && w.bytes().all(|c| c.is_ascii_lowercase())
                )
            );
            let mut prefixes: Vec<_> = words.iter().map(|w| &w[..4]).collect();
            prefixes.dedup();
            assert_eq!(prefixes.len(), WORDS, "unique four-letter prefixes");
            assert_eq!(lang.index_of(words[1234]), Some(1234));
        }
    }

    #[test]
    fn lists_match_the_hashes_pinned_in_the_spec() {
        use sha2::{Digest, Sha256};
        // docs/protocol.md#word-lists
        let pinned = [
            (
                include_str!("../wordlists/id.txt"),
                "f0253cff2a04b41aa4cf152aba0ed02581721a1464bc32b47fe8025d2fc264ea",
            ),
            (
                include_str!("../wordlists/en.txt"),
                "ecbb520fde473f4270ed9a4068272a199d0bc8275c8f50e7695575e851a0c309",
            ),
        ];
        for (text, hash) in pinned {
            assert_eq!(hex::encode(Sha256::digest(text.as_bytes())), hash);
        }
    }
}
