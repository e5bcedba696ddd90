//! Receipts: the ten words a reporter keeps, and the reply and mailbox keys derived from
//! them. Nothing else links a reporter to their report (docs/protocol.md#receipt).

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use rand::RngCore as _;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::auth::MailboxId;
use crate::ids::InstitutionId;
use crate::keys::{SealIdentity, SealRecipient, SigningKey, VerifyingKey};
use crate::wordlist::{BITS_PER_WORD, Language};

/// Words in a receipt.
pub const RECEIPT_WORDS: usize = 10;
/// Random bytes in a receipt: 104 bits, the whole of its strength against guessing.
pub const ENTROPY_LEN: usize = 13;
/// Checksum bits after the entropy: 10 × 11 − 104.
const CHECKSUM_BITS: usize = RECEIPT_WORDS * BITS_PER_WORD - 8 * ENTROPY_LEN;
/// A typed word may be shortened to this many letters (each list has unique prefixes of
/// this length).
pub const MIN_PREFIX_LEN: usize = 4;

const CHECKSUM_PREFIX: &[u8] = b"peluit/v1/receipt-checksum\n";
const SALT_PREFIX: &[u8] = b"peluit/v1/receipt\n";
const REPLY_KEY_INFO: &[u8] = b"peluit/v1/reply-key";
const MAILBOX_KEY_INFO: &[u8] = b"peluit/v1/mailbox-key";

/// Argon2id memory, in KiB. Small on purpose: the receipt's 104 random bits resist
/// guessing; the work factor only has to stay well under a second in a browser without
/// a JIT (docs/protocol.md#receipt).
pub const ARGON2_MEMORY_KIB: u32 = 256;
/// Argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 3;
/// Argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

const MAX_SUGGESTIONS: usize = 3;
const MAX_SUGGESTION_DISTANCE: usize = 2;

/// Why a typed receipt could not be read. Each message is one sentence a reporter can act
/// on, and none repeats the receipt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The receipt has the wrong number of words.
    #[error("a receipt has {expected} words; {found} were given")]
    WordCount {
        /// Words a receipt has.
        expected: usize,
        /// Words given.
        found: usize,
    },
    /// A word is on neither list (and is not the start of a word on one).
    #[error("word {position} is not a receipt word; {}", unknown_word_advice(.suggestions))]
    UnknownWord {
        /// 1-based position of the first unknown word.
        position: usize,
        /// Up to three list words close to what was typed, closest first.
        suggestions: Vec<&'static str>,
    },
    /// The words come from both lists, which a receipt never does.
    #[error(
        "word {position} is from a different word list than the others; check it against your receipt"
    )]
    MixedLanguages {
        /// 1-based position of the first word from the list most other words are not from.
        position: usize,
    },
    /// Every word is known but the checksum does not match.
    #[error("one word is wrong; check each word against your receipt")]
    Checksum,
}

fn unknown_word_advice(suggestions: &[&str]) -> String {
    match suggestions {
        [] => "check its spelling against your receipt".to_owned(),
        [one] => format!("did you mean {one}?"),
        [init @ .., last] => format!("did you mean {} or {last}?", init.join(", ")),
    }
}

impl From<ReceiptError> for crate::Error {
    fn from(error: ReceiptError) -> Self {
        Self::Receipt(error)
    }
}

/// A receipt: 104 random bits, shown to the reporter as ten words.
pub struct Receipt {
    entropy: Zeroizing<[u8; ENTROPY_LEN]>,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receipt([redacted])")
    }
}

/// The 6-bit checksum: the first bits of SHA-256("peluit/v1/receipt-checksum\n" ||
/// entropy). docs/protocol.md#receipt
fn checksum(entropy: &[u8; ENTROPY_LEN]) -> u8 {
    let digest = Sha256::new()
        .chain_update(CHECKSUM_PREFIX)
        .chain_update(entropy)
        .finalize();
    digest[0] >> (8 - CHECKSUM_BITS)
}

/// The receipt's 110 bits (entropy then checksum) as a big-endian integer.
fn packed_bits(entropy: &[u8; ENTROPY_LEN]) -> Zeroizing<u128> {
    let mut bits = Zeroizing::new(0u128);
    for byte in entropy {
        *bits = (*bits << 8) | u128::from(*byte);
    }
    *bits = (*bits << CHECKSUM_BITS) | u128::from(checksum(entropy));
    bits
}

/// The entropy of ten word indices, or `None` if the checksum does not match.
fn unpack(indices: &[u16; RECEIPT_WORDS]) -> Option<Zeroizing<[u8; ENTROPY_LEN]>> {
    let mut bits = Zeroizing::new(0u128);
    for index in indices {
        *bits = (*bits << BITS_PER_WORD) | u128::from(*index);
    }
    let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
    for (i, byte) in entropy.iter_mut().enumerate() {
        let shift = CHECKSUM_BITS + 8 * (ENTROPY_LEN - 1 - i);
        *byte = (*bits >> shift) as u8;
    }
    let typed_checksum = (*bits & ((1 << CHECKSUM_BITS) - 1)) as u8;
    // Catches 63 of 64 typos that happen to give another list word.
    // docs/protocol.md#receipt
    (typed_checksum == checksum(&entropy)).then_some(entropy)
}

/// Separators between typed words. docs/protocol.md#receipt
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | ',' | '.')
}

/// The list index of a typed token: the word itself, or a prefix of at least
/// [`MIN_PREFIX_LEN`] letters of exactly one word (prefixes are unique per list).
fn lookup(language: Language, token: &str) -> Option<u16> {
    let words = language.words();
    if token.len() < MIN_PREFIX_LEN {
        return None;
    }
    // The first word not below the token is the only one it can be a prefix of.
    let at = words.partition_point(|word| *word < token);
    let word = words.get(at)?;
    word.starts_with(token).then_some(at as u16)
}

/// Optimal string alignment distance (insertions, deletions, substitutions and swaps of
/// neighbours), or `None` when it is over `max`.
fn edit_distance(a: &[char], b: &[char], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut rows = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in rows.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[(i - 1) * width + j] + 1)
                .min(rows[i * width + j - 1] + 1)
                .min(rows[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[(i - 2) * width + j - 2] + 1);
            }
            rows[i * width + j] = best;
        }
    }
    let distance = rows[a.len() * width + b.len()];
    // Clear intermediates
    rows.zeroize();
    (distance <= max).then_some(distance)
}

/// Up to three list words closest to `token` (by whole word, or by the start of the word
/// when the token was shortened), with the best distance found.
fn suggestions(language: Language, token: &str) -> (Option<usize>, Vec<&'static str>) {
    let typed: Zeroizing<Vec<char>> = Zeroizing::new(token.chars().collect());
    let mut scored: Vec<(usize, usize)> = Vec::new();
    for (index, word) in language.words().iter().enumerate() {
        let letters: Vec<char> = word.chars().collect();
        let whole = edit_distance(&typed, &letters, MAX_SUGGESTION_DISTANCE);
        let start = (typed.len() >= MIN_PREFIX_LEN && typed.len() < letters.len())
            .then(|| edit_distance(&typed, &letters[..typed.len()], MAX_SUGGESTION_DISTANCE))
            .flatten();
        if let Some(distance) = whole.into_iter().chain(start).min() {
            scored.push((distance, index));
        }
    }
    scored.sort_unstable();
    let best = scored.first().map(|(distance, _)| *distance);
    let words = scored
        .iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, index)| language.words()[*index])
        .collect();
    (best, words)
}

impl Receipt {
    /// A fresh receipt from the operating system's random source.
    pub fn generate() -> Self {
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        OsRng.fill_bytes(entropy.as_mut_slice());
        Self { entropy }
    }

    /// The receipt with these 13 random bytes (for test vectors and for restoring a
    /// receipt kept in another form).
    pub fn from_entropy(entropy: &Zeroizing<[u8; ENTROPY_LEN]>) -> Self {
        Self {
            entropy: Zeroizing::new(**entropy),
        }
    }

    /// The 13 random bytes.
    pub fn expose_entropy(&self) -> &[u8; ENTROPY_LEN] {
        &self.entropy
    }

    /// The receipt as ten lowercase words of `language`, separated by single spaces.
    pub fn words(&self, language: Language) -> Zeroizing<String> {
        let bits = packed_bits(&self.entropy);
        let list = language.words();
        let mut text = Zeroizing::new(String::with_capacity(RECEIPT_WORDS * 9));
        for i in 0..RECEIPT_WORDS {
            // Word i carries bits 11i..11i+11 of the 110, counted from the most
            // significant. docs/protocol.md#receipt
            let shift = BITS_PER_WORD * (RECEIPT_WORDS - 1 - i);
            let index = ((*bits >> shift) & ((1 << BITS_PER_WORD) - 1)) as usize;
            if i > 0 {
                text.push(' ');
            }
            text.push_str(list[index]);
        }
        text
    }

    /// Reads a receipt as a reporter typed it (see [`Receipt::parse_with_language`]).
    pub fn parse(text: &str) -> Result<Self, ReceiptError> {
        Self::parse_with_language(text).map(|(receipt, _)| receipt)
    }

    /// Reads a receipt as a reporter typed it, and says which list its words came from.
    /// Case does not matter; runs of spaces, `-`, `,` and `.` separate words; a word may
    /// be shortened to its first four letters or more.
    pub fn parse_with_language(text: &str) -> Result<(Self, Language), ReceiptError> {
        let lowered = Zeroizing::new(text.to_lowercase());
        // Split on any run of separators; leading and trailing ones give empty pieces.
        // docs/protocol.md#receipt
        let tokens: Vec<&str> = lowered
            .split(is_separator)
            .filter(|token| !token.is_empty())
            .collect();
        if tokens.len() != RECEIPT_WORDS {
            return Err(ReceiptError::WordCount {
                expected: RECEIPT_WORDS,
                found: tokens.len(),
            });
        }
        let mut id = Zeroizing::new([None::<u16>; RECEIPT_WORDS]);
        let mut en = Zeroizing::new([None::<u16>; RECEIPT_WORDS]);
        for (i, token) in tokens.iter().enumerate() {
            id[i] = lookup(Language::Id, token);
            en[i] = lookup(Language::En, token);
        }

        // A word found in one list only says which list the receipt is from.
        // docs/protocol.md#receipt
        let only_id: Vec<usize> = (0..RECEIPT_WORDS)
            .filter(|&i| id[i].is_some() && en[i].is_none())
            .collect();
        let only_en: Vec<usize> = (0..RECEIPT_WORDS)
            .filter(|&i| en[i].is_some() && id[i].is_none())
            .collect();
        let language = match (only_id.first(), only_en.first()) {
            // Mixing lists is refused; the odd word out is the one reported (ties
            // favour Indonesian, the default). docs/protocol.md#receipt
            (Some(_), Some(&first_en)) if only_id.len() >= only_en.len() => {
                return Err(ReceiptError::MixedLanguages {
                    position: first_en + 1,
                });
            }
            (Some(&first_id), Some(_)) => {
                return Err(ReceiptError::MixedLanguages {
                    position: first_id + 1,
                });
            }
            (Some(_), None) => Some(Language::Id),
            (None, Some(_)) => Some(Language::En),
            (None, None) => None,
        };

        // Report the first word that is on neither list, with suggestions from the
        // receipt's list (or, when no word tells the list, from the closer one).
        // docs/protocol.md#receipt
        let columns = |language| match language {
            Language::Id => &id,
            Language::En => &en,
        };
        let unknown = match language {
            Some(language) => (0..RECEIPT_WORDS).find(|&i| columns(language)[i].is_none()),
            None => (0..RECEIPT_WORDS).find(|&i| id[i].is_none() && en[i].is_none()),
        };
        if let Some(i) = unknown {
            let suggestions = match language {
                Some(language) => suggestions(language, tokens[i]).1,
                None => {
                    let (best_id, in_id) = suggestions(Language::Id, tokens[i]);
                    let (best_en, in_en) = suggestions(Language::En, tokens[i]);
                    match (best_id, best_en) {
                        (Some(d_id), Some(d_en)) if d_en < d_id => in_en,
                        (None, Some(_)) => in_en,
                        _ => in_id,
                    }
                }
            };
            return Err(ReceiptError::UnknownWord {
                position: i + 1,
                suggestions,
            });
        }

        // Every word is known. If no word told the list apart (all ten are on both),
        // the checksum decides, trying Indonesian first. docs/protocol.md#receipt
        let candidates: &[Language] = match language {
            Some(Language::Id) => &[Language::Id],
            Some(Language::En) => &[Language::En],
            None => &[Language::Id, Language::En],
        };
        for &candidate in candidates {
            let mut indices = Zeroizing::new([0u16; RECEIPT_WORDS]);
            for (slot, found) in indices.iter_mut().zip(columns(candidate).iter()) {
                *slot = found.unwrap_or_default();
            }
            if let Some(entropy) = unpack(&indices) {
                return Ok((Self { entropy }, candidate));
            }
        }
        Err(ReceiptError::Checksum)
    }

    /// Derives the reporter's keys for `institution`: the same receipt gives unrelated
    /// keys at another institution. Takes a fraction of a second (Argon2id).
    pub fn derive(&self, institution: &InstitutionId) -> ReporterKeys {
        // The salt binds the keys to the institution. docs/protocol.md#receipt
        let mut salt = Vec::with_capacity(SALT_PREFIX.len() + institution.as_str().len());
        salt.extend_from_slice(SALT_PREFIX);
        salt.extend_from_slice(institution.as_str().as_bytes());
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, Some(32))
            .unwrap_or_else(|_| unreachable!("the receipt's Argon2 parameters are valid"));
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut seed = Zeroizing::new([0u8; 32]);
        argon2
            .hash_password_into(self.entropy.as_slice(), &salt, seed.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("13-byte password and short salt are in range"));

        // Two independent keys from the one seed. hkdf 0.12 cannot wipe its PRK; it
        // lives on the stack of this call only.
        let hkdf = Hkdf::<Sha256>::new(None, seed.as_slice());
        let mut reply_secret = Zeroizing::new([0u8; 32]);
        let mut mailbox_seed = Zeroizing::new([0u8; 32]);
        hkdf.expand(REPLY_KEY_INFO, reply_secret.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        hkdf.expand(MAILBOX_KEY_INFO, mailbox_seed.as_mut_slice())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));

        let reply_identity = SealIdentity::from_secret_bytes(&reply_secret);
        let mailbox_key = SigningKey::from_seed(&mailbox_seed);
        let mailbox_id = MailboxId::of(&mailbox_key.verifying_key());
        // Clear intermediates
        seed.zeroize();
        reply_secret.zeroize();
        mailbox_seed.zeroize();
        ReporterKeys {
            reply_identity,
            mailbox_key,
            mailbox_id,
        }
    }
}

/// The keys a receipt gives a reporter at one institution: an age identity that opens
/// replies, and the Ed25519 key that owns the reporter's mailbox.
pub struct ReporterKeys {
    reply_identity: SealIdentity,
    mailbox_key: SigningKey,
    mailbox_id: MailboxId,
}

impl ReporterKeys {
    /// The identity that opens sealed replies.
    pub fn reply_identity(&self) -> &SealIdentity {
        &self.reply_identity
    }

    /// The recipient replies are sealed to (sent inside the sealed report envelope).
    pub fn reply_recipient(&self) -> SealRecipient {
        self.reply_identity.recipient()
    }

    /// The key that signs mailbox challenges and follow-ups.
    pub fn mailbox_key(&self) -> &SigningKey {
        &self.mailbox_key
    }

    /// The mailbox public key, the only reporter key the server learns.
    pub fn mailbox_public_key(&self) -> VerifyingKey {
        self.mailbox_key.verifying_key()
    }

    /// The mailbox id.
    pub fn mailbox_id(&self) -> MailboxId {
        self.mailbox_id
    }
}

impl fmt::Debug for ReporterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReporterKeys([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn institution(name: &str) -> InstitutionId {
        name.parse().unwrap()
    }

    fn fixed(byte: u8) -> Receipt {
        Receipt::from_entropy(&Zeroizing::new([byte; ENTROPY_LEN]))
    }

    #[test]
    fn derivation_is_deterministic_and_bound_to_the_institution() {
        let receipt = Receipt::generate();
        let here = institution("itjen-contoh");
        let a = receipt.derive(&here);
        let b = Receipt::parse(&receipt.words(Language::En))
            .unwrap()
            .derive(&here);
        assert_eq!(a.reply_recipient(), b.reply_recipient());
        assert_eq!(a.mailbox_public_key(), b.mailbox_public_key());
        assert_eq!(a.mailbox_id(), b.mailbox_id());
        assert_eq!(a.mailbox_id(), MailboxId::of(&a.mailbox_public_key()));
        assert_eq!(a.mailbox_key().verifying_key(), a.mailbox_public_key());
        assert_eq!(a.reply_identity().recipient(), a.reply_recipient());

        let elsewhere = receipt.derive(&institution("itjen-lain"));
        assert_ne!(a.reply_recipient(), elsewhere.reply_recipient());
        assert_ne!(a.mailbox_public_key(), elsewhere.mailbox_public_key());
        assert_ne!(a.mailbox_id(), elsewhere.mailbox_id());
    }

    #[test]
    fn distinct_receipts_derive_distinct_keys() {
        let here = institution("itjen-contoh");
        let (mut recipients, mut keys, mut ids) = (HashSet::new(), HashSet::new(), HashSet::new());
        let count = 64;
        for _ in 0..count {
            let keys_of = Receipt::generate().derive(&here);
            recipients.insert(keys_of.reply_recipient().to_string());
            keys.insert(keys_of.mailbox_public_key().to_bytes());
            ids.insert(keys_of.mailbox_id());
        }
        // Also receipts one bit apart.
        for bit in 0..8 * ENTROPY_LEN {
            let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
            entropy[bit / 8] = 1 << (bit % 8);
            let keys_of = Receipt::from_entropy(&entropy).derive(&here);
            recipients.insert(keys_of.reply_recipient().to_string());
            keys.insert(keys_of.mailbox_public_key().to_bytes());
            ids.insert(keys_of.mailbox_id());
        }
        let total = count + 8 * ENTROPY_LEN;
        assert_eq!(recipients.len(), total);
        assert_eq!(keys.len(), total);
        assert_eq!(ids.len(), total);
        // The reply key and the mailbox key are unrelated halves.
        let one = fixed(1).derive(&here);
        assert_ne!(one.reply_identity().expose_secret_string().as_str(), "");
        assert_ne!(*one.mailbox_key().expose_seed(), [0u8; 32]);
    }

    #[test]
    fn words_carry_the_bits_big_endian() {
        // All ones: nine words of index 2047, then five one bits and the checksum.
        let ones = fixed(0xff);
        let words = ones.words(Language::En);
        let list: Vec<&str> = words.split(' ').collect();
        let last = Language::En.words().last().unwrap();
        assert!(list[..9].iter().all(|w| w == last));
        let tenth = Language::En.index_of(list[9]).unwrap();
        assert_eq!(tenth >> 6, 0b11111);
        assert_eq!(
            u8::try_from(tenth & 0x3f).unwrap(),
            checksum(&[0xff; ENTROPY_LEN])
        );
        // All zeros: nine words of index 0.
        let zeros = fixed(0).words(Language::Id);
        assert!(
            zeros
                .split(' ')
                .take(9)
                .all(|w| w == Language::Id.words()[0])
        );
    }

    #[test]
    fn round_trips_in_both_languages() {
        for _ in 0..32 {
            let receipt = Receipt::generate();
            for language in [Language::Id, Language::En] {
                let words = receipt.words(language);
                assert_eq!(words.split(' ').count(), RECEIPT_WORDS);
                let (parsed, found) = Receipt::parse_with_language(&words).unwrap();
                assert_eq!(found, language);
                assert_eq!(parsed.expose_entropy(), receipt.expose_entropy());
            }
        }
    }

    #[test]
    fn typing_is_forgiving() {
        let receipt = fixed(0x5a);
        let words = receipt.words(Language::Id);
        let list: Vec<&str> = words.split(' ').collect();
        let short: Vec<&str> = list.iter().map(|w| &w[..MIN_PREFIX_LEN]).collect();
        let typed = [
            words.to_uppercase(),
            list.join("-"),
            list.join(", "),
            list.join(" . "),
            list.join("\t\n"),
            format!("  -- {} ..\n", list.join("  ")),
            short.join(" "),
            list.iter()
                .enumerate()
                .map(|(i, w)| {
                    if i % 2 == 0 {
                        w.to_string()
                    } else {
                        w[..5.min(w.len())].to_uppercase()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        ];
        for text in typed {
            let parsed = Receipt::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(parsed.expose_entropy(), receipt.expose_entropy());
        }
        // Three letters are not enough to name a word.
        let mut three: Vec<&str> = list.clone();
        three[4] = &list[4][..3];
        assert!(matches!(
            Receipt::parse(&three.join(" ")),
            Err(ReceiptError::UnknownWord { position: 5, .. })
        ));
        // A word with extra letters is not a prefix of anything.
        let longer = format!("{}x", list[0]);
        let mut extra = list.clone();
        extra[0] = &longer;
        let err = Receipt::parse(&extra.join(" ")).unwrap_err();
        let ReceiptError::UnknownWord {
            position: 1,
            suggestions,
        } = err
        else {
            panic!("{err:?}")
        };
        // The closest word comes first; others within two edits may follow.
        assert_eq!(suggestions.first(), Some(&list[0]));
    }

    #[test]
    fn wrong_counts_are_reported() {
        let words = fixed(9).words(Language::Id);
        let list: Vec<&str> = words.split(' ').collect();
        for (text, found) in [
            (list[..9].join(" "), 9),
            (format!("{} {}", words.as_str(), list[0]), 11),
            (String::new(), 0),
            (" - , . ".to_owned(), 0),
        ] {
            let err = Receipt::parse(&text).unwrap_err();
            assert_eq!(
                err,
                ReceiptError::WordCount {
                    expected: 10,
                    found
                }
            );
        }
        assert_eq!(
            ReceiptError::WordCount {
                expected: 10,
                found: 9
            }
            .to_string(),
            "a receipt has 10 words; 9 were given"
        );
    }

    #[test]
    fn unknown_words_get_suggestions_from_the_receipts_list() {
        let receipt = fixed(0x33);
        let words = receipt.words(Language::En);
        let list: Vec<&str> = words.split(' ').collect();
        // One letter changed in word 3.
        let original = list[2];
        let mut typo: Vec<char> = original.chars().collect();
        typo[1] = if typo[1] == 'q' { 'z' } else { 'q' };
        let typo: String = typo.into_iter().collect();
        let mut typed = list.clone();
        typed[2] = &typo;
        match Receipt::parse(&typed.join(" ")).unwrap_err() {
            ReceiptError::UnknownWord {
                position,
                suggestions,
            } => {
                assert_eq!(position, 3);
                assert!(suggestions.contains(&original), "{suggestions:?}");
                assert!(suggestions.len() <= 3);
                assert!(
                    suggestions
                        .iter()
                        .all(|s| Language::En.index_of(s).is_some())
                );
            }
            other => panic!("{other:?}"),
        }
        // Two letters swapped count as one edit.
        let swapped: String = {
            let mut c: Vec<char> = list[7].chars().collect();
            c.swap(2, 3);
            c.into_iter().collect()
        };
        let mut typed = list.clone();
        typed[7] = &swapped;
        if swapped != list[7] {
            let err = Receipt::parse(&typed.join(" ")).unwrap_err();
            let ReceiptError::UnknownWord {
                position: 8,
                suggestions,
            } = err
            else {
                panic!("{err:?}")
            };
            assert_eq!(suggestions[0], list[7]);
        }
        // Nothing close: no suggestion, and advice to check the spelling.
        let mut typed = list.clone();
        typed[9] = "qqqqqqqqqqqqqq";
        let err = Receipt::parse(&typed.join(" ")).unwrap_err();
        assert_eq!(
            err,
            ReceiptError::UnknownWord {
                position: 10,
                suggestions: vec![]
            }
        );
        assert_eq!(
            err.to_string(),
            "word 10 is not a receipt word; check its spelling against your receipt"
        );
        // The message never repeats the receipt.
        for word in &list {
            assert!(!err.to_string().contains(word));
        }
        let three = ReceiptError::UnknownWord {
            position: 2,
            suggestions: vec!["a", "b", "c"],
        };
        assert_eq!(
            three.to_string(),
            "word 2 is not a receipt word; did you mean a, b or c?"
        );
        let one = ReceiptError::UnknownWord {
            position: 2,
            suggestions: vec!["a"],
        };
        assert_eq!(
            one.to_string(),
            "word 2 is not a receipt word; did you mean a?"
        );
        // A shortened word with a typo is matched against the start of list words.
        let short_typo = format!("{}q", &list[0][..3]);
        let mut typed = list.clone();
        typed[0] = &short_typo;
        let ReceiptError::UnknownWord { suggestions, .. } =
            Receipt::parse(&typed.join(" ")).unwrap_err()
        else {
            panic!()
        };
        assert!(!suggestions.is_empty());
        // Every word unknown: suggestions come from the closer list.
        let en_typos: Vec<String> = list.iter().map(|w| format!("{w}q")).collect();
        let ReceiptError::UnknownWord {
            position: 1,
            suggestions,
        } = Receipt::parse(&en_typos.join(" ")).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(suggestions[0], list[0]);
    }

    #[test]
    fn mixed_lists_are_refused() {
        let receipt = fixed(0x77);
        let id_words = receipt.words(Language::Id);
        let en_words = receipt.words(Language::En);
        let id: Vec<&str> = id_words.split(' ').collect();
        let en: Vec<&str> = en_words.split(' ').collect();
        let only_en =
            |w: &str| Language::Id.index_of(w).is_none() && lookup(Language::Id, w).is_none();
        let only_id =
            |w: &str| Language::En.index_of(w).is_none() && lookup(Language::En, w).is_none();
        // Mostly Indonesian with one English word: the English one is reported.
        let j = (0..RECEIPT_WORDS).rev().find(|&j| only_en(en[j])).unwrap();
        let mut typed = id.clone();
        typed[j] = en[j];
        assert!(id.iter().enumerate().any(|(i, w)| i != j && only_id(w)));
        let err = Receipt::parse(&typed.join(" ")).unwrap_err();
        assert_eq!(err, ReceiptError::MixedLanguages { position: j + 1 });
        assert_eq!(
            err.to_string(),
            format!(
                "word {} is from a different word list than the others; check it against your receipt",
                j + 1
            )
        );
        // Mostly English with one Indonesian word.
        let k = (0..RECEIPT_WORDS).find(|&k| only_id(id[k])).unwrap();
        let mut typed = en.clone();
        typed[k] = id[k];
        assert_eq!(
            Receipt::parse(&typed.join(" ")).unwrap_err(),
            ReceiptError::MixedLanguages { position: k + 1 }
        );
    }

    #[test]
    fn a_wrong_but_listed_word_fails_the_checksum() {
        let receipt = fixed(0x42);
        let words = receipt.words(Language::Id);
        let list: Vec<&str> = words.split(' ').collect();
        let index = Language::Id.index_of(list[4]).unwrap();
        let mut failures = 0;
        for other in 0..64u16 {
            let replacement = Language::Id.words()[usize::from((index + 1 + other) % 2048)];
            let mut typed = list.clone();
            typed[4] = replacement;
            match Receipt::parse(&typed.join(" ")) {
                Err(err) => {
                    assert_eq!(err, ReceiptError::Checksum);
                    failures += 1;
                }
                Ok(parsed) => assert_ne!(parsed.expose_entropy(), receipt.expose_entropy()),
            }
        }
        // About 63 in 64 wrong words are caught.
        assert!(failures >= 56, "{failures}");
        assert_eq!(
            ReceiptError::Checksum.to_string(),
            "one word is wrong; check each word against your receipt"
        );
        let wrapped: crate::Error = ReceiptError::Checksum.into();
        assert_eq!(wrapped.to_string(), ReceiptError::Checksum.to_string());
    }

    /// A receipt whose ten words, shortened to four letters, are on both lists.
    fn ambiguous_receipt(language: Language) -> Zeroizing<String> {
        let other = match language {
            Language::Id => Language::En,
            Language::En => Language::Id,
        };
        let shared: Vec<u16> = (0..2048u16)
            .filter(|&i| lookup(other, &language.words()[usize::from(i)][..4]).is_some())
            .collect();
        for &last in &shared {
            let mut indices = [0u16; RECEIPT_WORDS];
            for (slot, i) in indices.iter_mut().zip(shared.iter().skip(7)) {
                *slot = *i;
            }
            indices[9] = last;
            let Some(entropy) = unpack(&indices) else {
                continue;
            };
            let typed: Vec<&str> = indices
                .iter()
                .map(|&i| &language.words()[usize::from(i)][..4])
                .collect();
            let other_indices: Vec<u16> = typed.iter().map(|t| lookup(other, t).unwrap()).collect();
            if unpack(&other_indices.try_into().unwrap()).is_some() {
                continue;
            }
            let receipt = Receipt::from_entropy(&entropy);
            assert_eq!(
                receipt
                    .words(language)
                    .split(' ')
                    .map(|w| &w[..4])
                    .collect::<Vec<_>>(),
                typed
            );
            return Zeroizing::new(typed.join(" "));
        }
        panic!("no ambiguous receipt found")
    }

    #[test]
    fn when_every_word_is_on_both_lists_the_checksum_decides() {
        for language in [Language::Id, Language::En] {
            let typed = ambiguous_receipt(language);
            let (_, found) = Receipt::parse_with_language(&typed).unwrap();
            assert_eq!(found, language);
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let receipt = fixed(1);
        assert_eq!(format!("{receipt:?}"), "Receipt([redacted])");
        let keys = receipt.derive(&institution("a"));
        assert_eq!(format!("{keys:?}"), "ReporterKeys([redacted])");
    }

    fn separator() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(' '),
                Just('-'),
                Just(','),
                Just('.'),
                Just('\t'),
                Just('\n')
            ],
            1..4,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_entropy_round_trips_however_it_is_typed(
            entropy in any::<[u8; ENTROPY_LEN]>(),
            english in any::<bool>(),
            upper in proptest::collection::vec(any::<bool>(), RECEIPT_WORDS),
            cut in proptest::collection::vec(0usize..5, RECEIPT_WORDS),
            seps in proptest::collection::vec(separator(), RECEIPT_WORDS + 1),
        ) {
            let language = if english { Language::En } else { Language::Id };
            let receipt = Receipt::from_entropy(&Zeroizing::new(entropy));
            let words = receipt.words(language);
            let mut typed = seps[0].clone();
            for (i, word) in words.split(' ').enumerate() {
                // Shorten by up to four letters, never below four.
                let keep = word.len().saturating_sub(cut[i]).max(MIN_PREFIX_LEN);
                let part = &word[..keep];
                typed.push_str(&if upper[i] { part.to_uppercase() } else { part.to_owned() });
                typed.push_str(&seps[i + 1]);
            }
            let (parsed, found) = Receipt::parse_with_language(&typed).unwrap();
            prop_assert_eq!(parsed.expose_entropy(), &entropy);
            // Shortened words may all be on both lists; then either answer is the receipt.
            if found != language {
                prop_assert_eq!(parsed.words(found), receipt.words(found));
            }
        }
    }
}
