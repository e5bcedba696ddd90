//! Property tests of sealing: round trips for random content and random piece sizes, no
//! plaintext from any altered or truncated message, and the shape of the padding buckets.
//!
//! Failing cases are kept by proptest in `proptest-regressions/seal_props.txt` (committed).

use std::io::Read;

use peluit_proto::keys::{SealIdentity, SealRecipient};
use peluit_proto::limits::{CHUNK_SIZE, MAX_ATTACHMENT_LEN};
use peluit_proto::seal::{
    MIN_BUCKET, StreamOpener, StreamSealer, open, open_padded, padded_len, seal, seal_padded,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use sha2::{Digest, Sha256};

const MAX: usize = 1 << 20;

/// `cases` per property, sized for a few seconds of `cargo test`; a deeper run sets
/// `PROPTEST_CASES` (e.g. `PROPTEST_CASES=2000 cargo test --release --test seal_props`). Failing cases go to
/// `crates/peluit-proto/proptest-regressions/` (tests run in the package folder; proptest's
/// default looks for a `lib.rs` beside the test file and finds none).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/seal_props.txt",
        ))),
        ..ProptestConfig::default()
    }
}

fn keys(n: usize) -> (Vec<SealIdentity>, Vec<SealRecipient>) {
    let ids: Vec<_> = (0..n).map(|_| SealIdentity::generate()).collect();
    let rs = ids.iter().map(SealIdentity::recipient).collect();
    (ids, rs)
}

/// Seals `content` through the streaming API, cutting it into pieces of the given sizes
/// (cycled; zero-sized pushes included).
fn seal_in_pieces(content: &[u8], pieces: &[usize], recipients: &[SealRecipient]) -> Vec<u8> {
    let mut sealer = StreamSealer::new(recipients, content.len() as u64).expect("sealer");
    let mut sealed = sealer.take_output();
    let mut rest = content;
    for &size in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.min(rest.len()));
        sealed.extend(sealer.push(piece).expect("push"));
        rest = after;
    }
    while let Some(tail) = sealer.next_tail().expect("tail") {
        sealed.extend(tail);
    }
    assert_eq!(sealer.sealed_len(), sealed.len() as u64);
    assert_eq!(sealer.total_len(), sealed.len() as u64);
    assert_eq!(
        sealer.sealed_sha256(),
        <[u8; 32]>::from(Sha256::digest(&sealed))
    );
    sealed
}

/// Reads a stream opener with reads of the given sizes (cycled).
fn read_in_pieces(mut opener: impl Read, reads: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for &size in reads.iter().cycle() {
        let mut buf = vec![0u8; size];
        let n = opener.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
    unreachable!("cycle never ends")
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn streamed_seal_round_trips_for_any_piece_sizes(
        content in prop::collection::vec(any::<u8>(), 0..150_000),
        pieces in prop::collection::vec(0usize..100_000, 1..8)
            .prop_filter("some piece makes progress", |p| p.iter().any(|&s| s > 0)),
        reads in prop::collection::vec(1usize..100_000, 1..8),
        recipients in 1usize..4,
    ) {
        let (ids, rs) = keys(recipients);
        let sealed = seal_in_pieces(&content, &pieces, &rs);

        // Only the bucket shows: header, nonce, then P(L) bytes in 64 KiB STREAM chunks,
        // each with its 16-byte tag (docs/protocol.md#padding).
        let header_len = peluit_proto::header::inspect_header(&sealed).expect("header").header_len;
        let padded = padded_len(content.len() as u64);
        let chunks = padded.div_ceil(CHUNK_SIZE as u64);
        prop_assert_eq!((sealed.len() - header_len - 16) as u64, padded + 16 * chunks);

        // Every recipient opens it, streamed with any read sizes and whole.
        for id in &ids {
            let one = std::slice::from_ref(id);
            let opener = StreamOpener::new(&sealed[..], one).expect("opener");
            prop_assert_eq!(opener.content_len(), content.len() as u64);
            prop_assert_eq!(&read_in_pieces(opener, &reads).expect("streamed open"), &content);
            prop_assert_eq!(&open_padded(&sealed, one, MAX).expect("open_padded")[..], &content[..]);
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn whole_messages_round_trip(
        content in prop::collection::vec(any::<u8>(), 0..6_000),
        recipients in 1usize..4,
        opener in 0usize..3,
    ) {
        let (ids, rs) = keys(recipients);
        let id = std::slice::from_ref(&ids[opener % recipients]);
        let raw = seal(&content, &rs).expect("seal");
        prop_assert_eq!(&open(&raw, id, MAX).expect("open")[..], &content[..]);
        let padded = seal_padded(&content, &rs).expect("seal_padded");
        prop_assert_eq!(&open_padded(&padded, id, MAX).expect("open_padded")[..], &content[..]);
        // seal_padded is the streaming sealer fed in 64 KiB pieces: the same payload length
        // (headers differ in length: the age crate adds a grease stanza of random size).
        let payload_len = |m: &[u8]| {
            m.len() - peluit_proto::header::inspect_header(m).expect("header").header_len
        };
        prop_assert_eq!(
            payload_len(&padded),
            payload_len(&seal_in_pieces(&content, &[CHUNK_SIZE], &rs))
        );
    }

}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn any_flipped_byte_or_truncation_releases_nothing(
        content in prop::collection::vec(any::<u8>(), 0..140_000),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let (ids, rs) = keys(2);
        let sealed = seal_padded(&content, &rs).expect("seal_padded");
        for (at, mask) in &flips {
            let mut bad = sealed.clone();
            let pos = at.index(bad.len());
            bad[pos] ^= mask;
            prop_assert!(open_padded(&bad, &ids, MAX).is_err(), "flip {mask:#04x} at {pos}");
        }
        for at in &cuts {
            let cut = at.index(sealed.len());
            prop_assert!(open_padded(&sealed[..cut], &ids, MAX).is_err(), "cut at {cut}");
        }
        // Trailing bytes after the final chunk are refused too.
        let mut long = sealed.clone();
        long.push(0);
        prop_assert!(open_padded(&long, &ids, MAX).is_err(), "trailing byte");
    }
}

/// Content lengths a party can ever seal, with room to spare: four times the largest
/// attachment. (Near `u64::MAX` the saturating arithmetic of `padded_len` stops rounding
/// up; no protocol limit comes close.)
const LEN_RANGE: std::ops::RangeInclusive<u64> = 0..=4 * MAX_ATTACHMENT_LEN;

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn padded_len_is_monotonic(a in LEN_RANGE, b in LEN_RANGE) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(padded_len(lo) <= padded_len(hi), "P({lo}) > P({hi})");
        // Neighbours too: monotonic step by step, not only between random pairs.
        prop_assert!(padded_len(lo) <= padded_len(lo + 1));
    }

    #[test]
    fn padded_len_holds_the_content_and_its_prefix(n in LEN_RANGE) {
        let p = padded_len(n);
        prop_assert!(p >= n + 8, "P({n}) = {p}");
        prop_assert!(p >= MIN_BUCKET);
    }

    #[test]
    fn padded_len_overhead_is_at_most_12_percent_above_4_kib(n in 4096u64..=*LEN_RANGE.end()) {
        let p = padded_len(n);
        // (p - n) / n <= 12 %, in integers.
        prop_assert!(u128::from(p) * 100 <= u128::from(n) * 112, "P({n}) = {p}");
    }
}

#[test]
fn padded_len_properties_hold_at_every_bucket_edge() {
    // Random sampling rarely lands on a bucket edge; walk every edge up to 1 TiB.
    let mut n = 0u64;
    while n < 1 << 40 {
        let p = padded_len(n);
        assert!(p >= n + 8 && p >= MIN_BUCKET, "P({n}) = {p}");
        if n >= 4096 {
            assert!(u128::from(p) * 100 <= u128::from(n) * 112, "P({n}) = {p}");
        }
        // The last content length that fits this bucket, and the first of the next one.
        let last = p - 8;
        assert_eq!(padded_len(last), p, "{last} belongs to the bucket of {n}");
        assert!(padded_len(last + 1) > p, "bucket after {last}");
        n = last + 1;
    }
}
