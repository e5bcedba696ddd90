//! Key-free checks of one stored age message, fed in pieces: a canonical header with the
//! expected stanza count, STREAM framing, and bytes that look like ciphertext throughout.

use peluit_proto::header::inspect_header;
use peluit_proto::limits::{MAX_HEADER_LEN, SEALED_CHUNK_SIZE};

/// The payload nonce that follows the header (https://c2sp.org/age#payload).
const NONCE_LEN: usize = 16;
/// The Poly1305 tag that ends every STREAM chunk.
const TAG_LEN: usize = 16;
/// Chunks shorter than this are too short for a meaningful byte-frequency test; every
/// padded Peluit message has at least one chunk of 4,112 bytes (docs/protocol.md#padding).
const MIN_TESTED_CHUNK: usize = 2048;
/// Chi-square (255 degrees of freedom) above which a chunk is not ciphertext. Ciphertext
/// gives 255 ± 23; this is about 16 standard deviations out, where a false alarm has a
/// probability near 10^-30 per chunk. Text, JSON, base64 or hex score in the thousands.
const CHI_SQUARE_LIMIT: f64 = 620.0;
/// Chunks from this length up to [`MIN_TESTED_CHUNK`] get the printable-bytes test.
const MIN_PRINTABLE_TESTED: usize = 64;
/// Share of printable bytes (ASCII 0x20–0x7E, tab, line feed, carriage return) above
/// which a short chunk is text: ciphertext has about 38 % (98 of 256 values), and at 64
/// bytes 90 % is more than 8 standard deviations away.
const PRINTABLE_LIMIT: f64 = 0.9;

/// What a stored message is expected to be.
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// The whole message is present.
    Complete {
        /// Acceptable X25519 stanza counts (from the manifests that applied that day).
        counts: &'a [usize],
    },
    /// Only a prefix is present (an upload still receiving).
    Prefix {
        /// Acceptable X25519 stanza counts.
        counts: &'a [usize],
    },
}

impl Expect<'_> {
    fn counts(&self) -> &[usize] {
        match self {
            Expect::Complete { counts } | Expect::Prefix { counts } => counts,
        }
    }
}

/// What the scan learned about a message that passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageSummary {
    /// X25519 stanzas in the header.
    pub x25519_stanzas: usize,
    /// Bytes scanned.
    pub len: u64,
}

/// Incremental checker: [`feed`](Self::feed) the bytes in order, then
/// [`finish`](Self::finish). Memory is one header window and a byte histogram.
#[derive(Debug)]
pub struct AgeScanner<'a> {
    expect: Expect<'a>,
    head: Vec<u8>,
    header_len: Option<usize>,
    stanzas: usize,
    /// Bytes of nonce still to skip after the header.
    nonce_left: usize,
    chunk: ByteCounts,
    chunk_index: u64,
    len: u64,
    failure: Option<String>,
}

impl<'a> AgeScanner<'a> {
    /// A scanner for one message.
    pub fn new(expect: Expect<'a>) -> Self {
        Self {
            expect,
            head: Vec::with_capacity(MAX_HEADER_LEN),
            header_len: None,
            stanzas: 0,
            nonce_left: NONCE_LEN,
            chunk: ByteCounts::default(),
            chunk_index: 0,
            len: 0,
            failure: None,
        }
    }

    /// Scans the next bytes of the message.
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        self.len += data.len() as u64;
        if self.header_len.is_none() {
            let take = (MAX_HEADER_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.head.len() < MAX_HEADER_LEN {
                // The header may end within what we have; try it once the window is full
                // or at the end.
                return;
            }
            let head = std::mem::take(&mut self.head);
            self.parse_header(&head);
            if self.failure.is_some() {
                return;
            }
            let after = head
                .get(self.header_len.unwrap_or(head.len())..)
                .unwrap_or_default();
            self.payload(after);
        }
        self.payload(data);
    }

    fn parse_header(&mut self, head: &[u8]) {
        // Enforce a canonical header with the manifest's stanza count.
        // docs/protocol.md#recipient-check
        match inspect_header(head) {
            Err(error) => self.failure = Some(format!("not a canonical age header ({error})")),
            Ok(summary) => {
                self.stanzas = summary.x25519_stanzas;
                self.header_len = Some(summary.header_len);
                let counts = self.expect.counts();
                if summary.grease_stanzas > 1 {
                    self.failure = Some("age header has more than one grease stanza".into());
                } else if !counts.contains(&summary.x25519_stanzas) {
                    self.failure = Some(format!(
                        "age header has {} X25519 stanzas; the manifest expects {}",
                        summary.x25519_stanzas,
                        describe_counts(counts)
                    ));
                }
            }
        }
    }

    fn payload(&mut self, mut data: &[u8]) {
        if self.nonce_left > 0 {
            let skip = self.nonce_left.min(data.len());
            self.nonce_left -= skip;
            data = &data[skip..];
        }
        while !data.is_empty() && self.failure.is_none() {
            let room = SEALED_CHUNK_SIZE - self.chunk.total();
            let take = room.min(data.len());
            self.chunk.add(&data[..take]);
            data = &data[take..];
            if self.chunk.total() == SEALED_CHUNK_SIZE {
                self.end_chunk();
            }
        }
    }

    fn end_chunk(&mut self) {
        let n = self.chunk.total();
        if n >= MIN_TESTED_CHUNK {
            let score = self.chunk.chi_square();
            if score > CHI_SQUARE_LIMIT {
                self.failure = Some(format!(
                    "STREAM chunk {} ({n} bytes) does not look like ciphertext (byte-frequency \
                     chi-square {score:.0}, ciphertext gives about 255)",
                    self.chunk_index
                ));
            }
        } else if n >= MIN_PRINTABLE_TESTED {
            let share = self.chunk.printable() as f64 / n as f64;
            if share > PRINTABLE_LIMIT {
                self.failure = Some(format!(
                    "STREAM chunk {} ({n} bytes) does not look like ciphertext ({:.0} % \
                     printable bytes, ciphertext has about 38 %)",
                    self.chunk_index,
                    share * 100.0
                ));
            }
        }
        self.chunk = ByteCounts::default();
        self.chunk_index += 1;
    }

    /// Ends the scan: the verdict on everything fed.
    pub fn finish(mut self) -> Result<MessageSummary, String> {
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        if self.header_len.is_none() {
            let head = std::mem::take(&mut self.head);
            self.parse_header(&head);
            if let Some(failure) = self.failure.take() {
                return Err(failure);
            }
            let after = head
                .get(self.header_len.unwrap_or(head.len())..)
                .unwrap_or_default();
            self.payload(after);
        }
        let last = self.chunk.total();
        if last > 0 {
            self.end_chunk();
        }
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        let header_len = self.header_len.unwrap_or_default() as u64;
        if let Expect::Complete { .. } = self.expect {
            let payload = self.len.saturating_sub(header_len + NONCE_LEN as u64);
            check_stream_length(payload)?;
        }
        Ok(MessageSummary {
            x25519_stanzas: self.stanzas,
            len: self.len,
        })
    }
}

/// Scans one whole message held in memory.
pub fn scan_message(bytes: &[u8], counts: &[usize]) -> Result<MessageSummary, String> {
    let mut scanner = AgeScanner::new(Expect::Complete { counts });
    scanner.feed(bytes);
    scanner.finish()
}

/// A complete payload is whole STREAM chunks of 65,552 bytes and one last chunk of 17 to
/// 65,552 bytes, or a lone 16-byte tag for an empty message (https://c2sp.org/age#payload).
/// Padding is not required: bring-your-own ciphertext from any age tool is not padded.
fn check_stream_length(payload: u64) -> Result<(), String> {
    let sealed = SEALED_CHUNK_SIZE as u64;
    let chunks = payload.div_ceil(sealed);
    let last = payload - (chunks.saturating_sub(1)) * sealed;
    let empty = payload == TAG_LEN as u64;
    if payload == 0 || (last <= TAG_LEN as u64 && !empty) {
        return Err(format!(
            "payload of {payload} bytes is not a whole age STREAM (truncated or cut)"
        ));
    }
    Ok(())
}

fn describe_counts(counts: &[usize]) -> String {
    match counts {
        [] => "none (no manifest applies)".to_owned(),
        [one] => one.to_string(),
        many => {
            let list: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("one of {}", list.join(", "))
        }
    }
}

/// Byte frequencies of one chunk, in four interleaved tables so that consecutive bytes
/// rarely increment the same counter (which would serialise on one memory location).
#[derive(Debug, Clone)]
struct ByteCounts {
    tables: Box<[[u32; 256]; 4]>,
    total: usize,
}

impl Default for ByteCounts {
    fn default() -> Self {
        Self {
            tables: Box::new([[0; 256]; 4]),
            total: 0,
        }
    }
}

impl ByteCounts {
    fn total(&self) -> usize {
        self.total
    }

    fn add(&mut self, data: &[u8]) {
        let [t0, t1, t2, t3] = &mut *self.tables;
        let mut quads = data.chunks_exact(4);
        for q in &mut quads {
            t0[q[0] as usize] += 1;
            t1[q[1] as usize] += 1;
            t2[q[2] as usize] += 1;
            t3[q[3] as usize] += 1;
        }
        for &b in quads.remainder() {
            t0[b as usize] += 1;
        }
        self.total += data.len();
    }

    /// Bytes that are printable ASCII, tab, line feed or carriage return.
    fn printable(&self) -> u64 {
        (0x20..0x7f)
            .chain([b'\t', b'\n', b'\r'])
            .map(|b: u8| {
                self.tables
                    .iter()
                    .map(|t| u64::from(t[b as usize]))
                    .sum::<u64>()
            })
            .sum()
    }

    /// Pearson's chi-square against the uniform distribution over 256 byte values.
    fn chi_square(&self) -> f64 {
        let expected = self.total as f64 / 256.0;
        (0..256)
            .map(|i| {
                let observed: u32 = self.tables.iter().map(|t| t[i]).sum();
                let d = f64::from(observed) - expected;
                d * d / expected
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use peluit_proto::keys::SealIdentity;

    fn sealed(content_len: usize, recipients: usize) -> Vec<u8> {
        let recipients: Vec<_> = (0..recipients)
            .map(|_| SealIdentity::generate().recipient())
            .collect();
        peluit_proto::seal::seal_padded(&vec![7u8; content_len], &recipients).unwrap()
    }

    #[test]
    fn real_ciphertext_passes_whole_and_fed_byte_by_byte() {
        let bytes = sealed(200_000, 3);
        assert_eq!(scan_message(&bytes, &[3]).unwrap().x25519_stanzas, 3);
        let mut scanner = AgeScanner::new(Expect::Complete { counts: &[3] });
        for piece in bytes.chunks(999) {
            scanner.feed(piece);
        }
        assert_eq!(scanner.finish().unwrap().len, bytes.len() as u64);
    }

    #[test]
    fn wrong_count_plaintext_and_truncation_fail() {
        let bytes = sealed(10, 3);
        let why = scan_message(&bytes, &[2]).unwrap_err();
        assert!(
            why.contains("3 X25519 stanzas; the manifest expects 2"),
            "{why}"
        );
        let why = scan_message(b"Laporan: pejabat menerima suap", &[3]).unwrap_err();
        assert!(why.contains("not a canonical age header"), "{why}");
        let cut = bytes.len() - 4096 - 5;
        let why = scan_message(&bytes[..cut], &[3]).unwrap_err();
        assert!(why.contains("not a whole age STREAM"), "{why}");
    }

    #[test]
    fn plaintext_behind_a_valid_header_fails() {
        let mut bytes = sealed(100_000, 1);
        let header_len = inspect_header(&bytes).unwrap().header_len;
        let text = b"Pejabat itu menerima uang pelicin di ruang rapat lantai tiga. ";
        for (i, b) in bytes[header_len + 16 + SEALED_CHUNK_SIZE..]
            .iter_mut()
            .enumerate()
        {
            *b = text[i % text.len()];
        }
        let why = scan_message(&bytes, &[1]).unwrap_err();
        assert!(why.contains("STREAM chunk 1"), "{why}");
    }

    #[test]
    fn a_short_unpadded_message_passes_and_short_text_behind_a_header_fails() {
        let recipients = [SealIdentity::generate().recipient()];
        let short = peluit_proto::seal::seal(b"laporan singkat", &recipients).unwrap();
        assert!(scan_message(&short, &[1]).is_ok());
        let long = peluit_proto::seal::seal(&[9u8; 300], &recipients).unwrap();
        assert!(scan_message(&long, &[1]).is_ok());
        let header_len = inspect_header(&long).unwrap().header_len;
        let mut planted = long.clone();
        let text = b"Kepala dinas menerima amplop. ";
        for (i, b) in planted[header_len + 16..].iter_mut().enumerate() {
            *b = text[i % text.len()];
        }
        let why = scan_message(&planted, &[1]).unwrap_err();
        assert!(why.contains("printable bytes"), "{why}");
    }

    #[test]
    fn a_prefix_needs_no_whole_stream() {
        let bytes = sealed(200_000, 2);
        let mut scanner = AgeScanner::new(Expect::Prefix { counts: &[2] });
        scanner.feed(&bytes[..70_000]);
        assert!(scanner.finish().is_ok());
    }
}
