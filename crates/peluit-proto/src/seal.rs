//! Sealing and opening with age to X25519 recipients: whole messages, and a
//! chunk-at-a-time sealer/opener whose memory does not grow with the message, so that a
//! browser can seal a 1 GiB video. Padded messages hide their length in size buckets
//! (docs/protocol.md#sealing and #padding).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{SealIdentity, SealRecipient};
use crate::limits::{CHUNK_SIZE, MAX_RECIPIENTS, SEALED_CHUNK_SIZE};
use crate::{Error, Result};

/// Smallest padded size: every padded message is at least this long.
pub const MIN_BUCKET: u64 = 4096;
/// Length of the big-endian content length that starts every padded plaintext.
const LEN_PREFIX: u64 = 8;

/// The padded plaintext size for `content_len` bytes of content: the 8-byte length prefix
/// plus content, rounded up with Padmé (at most 12 % overhead, leaking O(log log n) bits),
/// and never below [`MIN_BUCKET`]. See docs/protocol.md#padding.
pub fn padded_len(content_len: u64) -> u64 {
    padme(content_len.saturating_add(LEN_PREFIX)).max(MIN_BUCKET)
}

/// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
/// Communication with PURBs", 2019): keep the top ⌊log2 E⌋+1 bits of the length.
fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = u64::from(63 - len.leading_zeros());
    let s = u64::from(64 - e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    len.saturating_add(mask) & !mask
}

fn encryptor(recipients: &[SealRecipient]) -> Result<age::Encryptor> {
    if recipients.is_empty() {
        return Err(Error::WrongRecipients("no recipients"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::TooLarge("recipient list"));
    }
    for (i, r) in recipients.iter().enumerate() {
        if recipients[..i].contains(r) {
            return Err(Error::WrongRecipients("duplicate recipient"));
        }
    }
    age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age() as &dyn age::Recipient))
        .map_err(|_| Error::WrongRecipients("age refused the recipients"))
}

fn decryptor<R: Read>(
    ciphertext: R,
    identities: &[SealIdentity],
) -> Result<age::stream::StreamReader<R>> {
    unlock(age::Decryptor::new(ciphertext), identities)
}

/// Whole messages in memory take age's buffered header parser (much faster for small
/// messages) after the canonical-encoding check of docs/protocol.md#sealing.
fn decryptor_for_slice<'a>(
    ciphertext: &'a [u8],
    identities: &[SealIdentity],
) -> Result<age::stream::StreamReader<&'a [u8]>> {
    crate::header::check_canonical_encoding(ciphertext).map_err(|_| Error::DecryptionFailed)?;
    unlock(age::Decryptor::new_buffered(ciphertext), identities)
}

fn unlock<R: Read>(
    decryptor: std::result::Result<age::Decryptor<R>, age::DecryptError>,
    identities: &[SealIdentity],
) -> Result<age::stream::StreamReader<R>> {
    let decryptor = decryptor.map_err(map_decrypt_error)?;
    if decryptor.is_scrypt() {
        return Err(Error::NoMatchingKey);
    }
    decryptor
        .decrypt(identities.iter().map(|i| i.as_age() as &dyn age::Identity))
        .map_err(map_decrypt_error)
}

fn map_decrypt_error(error: age::DecryptError) -> Error {
    match error {
        age::DecryptError::NoMatchingKeys => Error::NoMatchingKey,
        _ => Error::DecryptionFailed,
    }
}

/// Seals `plaintext` as-is (no padding) to every recipient. Used where the plaintext
/// length is already fixed by the protocol; reports and replies use [`seal_padded`].
pub fn seal(plaintext: &[u8], recipients: &[SealRecipient]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + 512);
    let mut writer = encryptor(recipients)?
        .wrap_output(&mut out)
        .map_err(|_| Error::InvalidUse("age writer"))?;
    writer
        .write_all(plaintext)
        .map_err(|_| Error::InvalidUse("age writer"))?;
    writer
        .finish()
        .map_err(|_| Error::InvalidUse("age writer"))?;
    Ok(out)
}

/// Opens an age message sealed to one of `identities`, whatever tool made it. Nothing is
/// returned unless the whole message authenticates: a truncated or altered message
/// releases no plaintext.
pub fn open(
    ciphertext: &[u8],
    identities: &[SealIdentity],
    max_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let reader = decryptor_for_slice(ciphertext, identities)?;
    read_all(reader, max_len, ciphertext.len())
}

fn read_all(reader: impl Read, max_len: usize, expected: usize) -> Result<Zeroizing<Vec<u8>>> {
    // Reserve the whole output up front: a growing Vec would leave unwiped copies of
    // plaintext behind in freed memory each time it reallocates.
    let mut plaintext = Zeroizing::new(Vec::with_capacity(expected.min(max_len) + 1));
    // One byte more than allowed tells an oversize message from one exactly at the limit.
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    match reader.take(limit).read_to_end(&mut plaintext) {
        Ok(n) if n > max_len => Err(Error::TooLarge("sealed message")),
        Ok(_) => Ok(plaintext),
        // `plaintext` is zeroized as it drops: partial output never leaves this function.
        Err(_) => Err(Error::DecryptionFailed),
    }
}

/// Seals `content` padded to its size bucket.
pub fn seal_padded(content: &[u8], recipients: &[SealRecipient]) -> Result<Vec<u8>> {
    let mut sealer = StreamSealer::new(recipients, content.len() as u64)?;
    let mut out = sealer.take_output();
    for chunk in content.chunks(CHUNK_SIZE) {
        out.extend_from_slice(&sealer.push(chunk)?);
    }
    while let Some(tail) = sealer.next_tail()? {
        out.extend_from_slice(&tail);
    }
    Ok(out)
}

/// Opens a padded message whole. As with [`open`], nothing is released unless the whole
/// message authenticates and its padding is exactly as [`padded_len`] prescribes.
pub fn open_padded(
    ciphertext: &[u8],
    identities: &[SealIdentity],
    max_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let opener = StreamOpener::from_reader(decryptor_for_slice(ciphertext, identities)?)?;
    if opener.content_len() > max_len as u64 {
        return Err(Error::TooLarge("sealed message"));
    }
    let content_len = usize::try_from(opener.content_len()).unwrap_or(max_len);
    read_all(opener, max_len, content_len)
}

/// A `Write` target whose bytes the sealer hands back after each step.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Seals a padded message of known length one chunk at a time: feed content with
/// [`push`](Self::push), then call [`next_tail`](Self::next_tail) until it returns `None`.
/// Each call returns the ciphertext produced so far; memory stays around one chunk.
pub struct StreamSealer {
    writer: Option<age::stream::StreamWriter<Sink>>,
    sink: Sink,
    content_len: u64,
    pushed: u64,
    padding_left: u64,
    digest: Sha256,
    sealed_len: u64,
    total_len: u64,
}

impl std::fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSealer")
            .field("content_len", &self.content_len)
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl StreamSealer {
    /// Starts sealing `content_len` bytes of content to `recipients`. The age header and
    /// the length prefix are ready in [`take_output`](Self::take_output).
    pub fn new(recipients: &[SealRecipient], content_len: u64) -> Result<Self> {
        // Also keeps `padded_len` far from overflow. docs/protocol.md#limits
        if content_len > crate::limits::MAX_ATTACHMENT_LEN {
            return Err(Error::TooLarge("sealed message"));
        }
        let sink = Sink::default();
        let mut writer = encryptor(recipients)?
            .wrap_output(sink.clone())
            .map_err(|_| Error::InvalidUse("age writer"))?;
        // age writes its header and payload nonce at once; the payload adds a 16-byte tag
        // to every chunk of up to CHUNK_SIZE bytes of the padded plaintext.
        // docs/protocol.md#sealing
        let prefix_len = sink.len() as u64;
        writer
            .write_all(&content_len.to_be_bytes())
            .map_err(|_| Error::InvalidUse("age writer"))?;
        let padded = padded_len(content_len);
        let chunks = padded.div_ceil(CHUNK_SIZE as u64);
        Ok(Self {
            writer: Some(writer),
            sink,
            content_len,
            pushed: 0,
            padding_left: padded - LEN_PREFIX - content_len,
            digest: Sha256::new(),
            sealed_len: 0,
            total_len: prefix_len + padded + chunks * (SEALED_CHUNK_SIZE - CHUNK_SIZE) as u64,
        })
    }

    /// Ciphertext produced so far and not yet returned.
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = self.sink.take();
        self.digest.update(&out);
        self.sealed_len += out.len() as u64;
        out
    }

    /// Seals the next piece of content and returns the ciphertext that is ready.
    pub fn push(&mut self, content: &[u8]) -> Result<Vec<u8>> {
        let total = self.pushed.checked_add(content.len() as u64);
        if total.is_none_or(|t| t > self.content_len) {
            return Err(Error::InvalidUse("more content than declared"));
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or(Error::InvalidUse("sealer already finished"))?;
        writer
            .write_all(content)
            .map_err(|_| Error::InvalidUse("age writer"))?;
        self.pushed += content.len() as u64;
        Ok(self.take_output())
    }

    /// After all content is pushed: seals up to one chunk of padding, or the final chunk,
    /// and returns its ciphertext; `None` once the message is complete.
    pub fn next_tail(&mut self) -> Result<Option<Vec<u8>>> {
        if self.pushed != self.content_len {
            return Err(Error::InvalidUse("less content than declared"));
        }
        let Some(writer) = self.writer.as_mut() else {
            return Ok(None);
        };
        if self.padding_left > 0 {
            static ZEROS: [u8; CHUNK_SIZE] = [0; CHUNK_SIZE];
            let n = self.padding_left.min(CHUNK_SIZE as u64);
            writer
                .write_all(&ZEROS[..n as usize])
                .map_err(|_| Error::InvalidUse("age writer"))?;
            self.padding_left -= n;
        } else if let Some(writer) = self.writer.take() {
            writer
                .finish()
                .map_err(|_| Error::InvalidUse("age writer"))?;
        }
        Ok(Some(self.take_output()))
    }

    /// SHA-256 of all ciphertext returned so far; complete once [`next_tail`](Self::next_tail)
    /// has returned `None`. Reports list this digest for each attachment.
    pub fn sealed_sha256(&self) -> [u8; 32] {
        self.digest.clone().finalize().into()
    }

    /// Bytes of ciphertext returned so far.
    pub fn sealed_len(&self) -> u64 {
        self.sealed_len
    }

    /// Bytes of ciphertext the whole message will have, known from the start: what an
    /// upload declares before its first byte is sealed.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }
}

/// Opens a padded message as a stream: `Read` yields the content only. Each chunk is
/// authenticated before it is released; the message as a whole (its end, its padding) is
/// verified when `read` returns 0. Callers must treat what they read as provisional until
/// then: the desk writes it to a temporary file and renames it only after the end.
pub struct StreamOpener<R: Read> {
    reader: age::stream::StreamReader<R>,
    content_len: u64,
    content_left: u64,
    finished: bool,
}

impl<R: Read> std::fmt::Debug for StreamOpener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOpener")
            .field("content_len", &self.content_len)
            .finish_non_exhaustive()
    }
}

impl<R: Read> StreamOpener<R> {
    /// Reads the header and the first chunk (which carries the content length).
    pub fn new(ciphertext: R, identities: &[SealIdentity]) -> Result<Self> {
        Self::from_reader(decryptor(ciphertext, identities)?)
    }

    fn from_reader(mut reader: age::stream::StreamReader<R>) -> Result<Self> {
        let mut prefix = [0u8; LEN_PREFIX as usize];
        reader
            .read_exact(&mut prefix)
            .map_err(|_| Error::DecryptionFailed)?;
        let content_len = u64::from_be_bytes(prefix);
        Ok(Self {
            reader,
            content_len,
            content_left: content_len,
            finished: false,
        })
    }

    /// The content length the sealer declared (authenticated with the first chunk).
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Reads the padding to the end, checking that it is all zeros and as long as the
    /// bucket requires (docs/protocol.md#padding).
    fn finish(&mut self) -> io::Result<()> {
        let mut buf = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
        let mut padding = 0u64;
        loop {
            let n = self.reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "non-zero padding",
                ));
            }
            padding += n as u64;
        }
        if LEN_PREFIX + self.content_len + padding != padded_len(self.content_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "wrong padding length",
            ));
        }
        self.finished = true;
        Ok(())
    }
}

impl<R: Read> Read for StreamOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.content_left == 0 {
            if !self.finished {
                self.finish()?;
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.content_left).unwrap_or(usize::MAX));
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].zeroize();
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "content shorter than declared",
            ));
        }
        self.content_left -= n as u64;
        Ok(n)
    }
}

/// How an age message failed to open, in the categories of the C2SP age testkit. Only
/// for conformance tests: users are shown the coarse [`Error`], never this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The header did not parse or broke a structural rule.
    Header,
    /// The header MAC did not verify.
    Hmac,
    /// No identity matched a stanza.
    NoMatch,
    /// The payload did not authenticate or was truncated.
    Payload,
}

/// Opens `ciphertext` and, on failure, says which class of check failed. For the
/// conformance tests in `tests/`; never surface this to a user.
pub fn dangerously_classify_open(
    ciphertext: &[u8],
    identities: &[SealIdentity],
) -> std::result::Result<Zeroizing<Vec<u8>>, FailureClass> {
    // Whatever stops the header from being read, including a cut-short header or nonce,
    // is a header failure, as is any key-unwrapping error other than these two.
    let class = |e: age::DecryptError| match e {
        age::DecryptError::InvalidMac => FailureClass::Hmac,
        age::DecryptError::NoMatchingKeys => FailureClass::NoMatch,
        _ => FailureClass::Header,
    };
    crate::header::check_canonical_encoding(ciphertext).map_err(|_| FailureClass::Header)?;
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(class)?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_age() as &dyn age::Identity))
        .map_err(class)?;
    read_all(reader, usize::MAX - 1, ciphertext.len()).map_err(|_| FailureClass::Payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> (Vec<SealIdentity>, Vec<SealRecipient>) {
        let ids: Vec<_> = (0..n).map(|_| SealIdentity::generate()).collect();
        let rs = ids.iter().map(SealIdentity::recipient).collect();
        (ids, rs)
    }

    #[test]
    fn padme_buckets_are_documented_values() {
        assert_eq!(padded_len(0), 4096);
        assert_eq!(padded_len(4088), 4096);
        assert_eq!(padded_len(4089), 4352);
        assert_eq!(padded_len(1_000_000), 1_015_808);
        for n in [0u64, 1, 100, 5000, 65_536, 1 << 20, (1 << 30) + 7] {
            let p = padded_len(n);
            assert!(p >= n + 8);
            assert!(p <= (n + 8).max(4096) * 112 / 100 + 1, "{n} -> {p}");
        }
    }

    #[test]
    fn whole_and_padded_round_trip_to_every_recipient() {
        let (ids, rs) = keys(3);
        let sealed = seal_padded(b"laporan", &rs).unwrap();
        for id in &ids {
            assert_eq!(
                &open_padded(&sealed, std::slice::from_ref(id), 1 << 20).unwrap()[..],
                b"laporan"
            );
        }
        let raw = seal(b"raw", &rs).unwrap();
        assert_eq!(&open(&raw, &ids[1..2], 10).unwrap()[..], b"raw");
        assert!(matches!(open(&raw, &ids[1..2], 2), Err(Error::TooLarge(_))));
        let (other, _) = keys(1);
        assert!(matches!(
            open_padded(&sealed, &other, 1 << 20),
            Err(Error::NoMatchingKey)
        ));
    }

    #[test]
    fn streamed_sealing_matches_declared_length() {
        let (ids, rs) = keys(1);
        let content: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut sealer = StreamSealer::new(&rs, content.len() as u64).unwrap();
        let mut sealed = sealer.take_output();
        for chunk in content.chunks(10_000) {
            sealed.extend(sealer.push(chunk).unwrap());
        }
        assert!(sealer.push(b"x").is_err(), "more than declared");
        while let Some(tail) = sealer.next_tail().unwrap() {
            sealed.extend(tail);
        }
        assert_eq!(
            sealer.sealed_sha256(),
            <[u8; 32]>::from(Sha256::digest(&sealed))
        );
        assert_eq!(sealer.sealed_len(), sealed.len() as u64);
        assert_eq!(sealer.total_len(), sealed.len() as u64);
        let mut opened = Vec::new();
        StreamOpener::new(&sealed[..], &ids)
            .unwrap()
            .read_to_end(&mut opened)
            .unwrap();
        assert_eq!(opened, content);

        assert!(matches!(
            StreamSealer::new(&rs, u64::MAX - 3),
            Err(Error::TooLarge(_))
        ));
        let mut short = StreamSealer::new(&rs, 10).unwrap();
        short.push(b"abc").unwrap();
        assert!(short.next_tail().is_err(), "less than declared");
    }

    #[test]
    fn truncated_or_flipped_messages_release_nothing() {
        let (ids, rs) = keys(2);
        let sealed = seal_padded(&[42u8; 150_000], &rs).unwrap();
        for cut in [sealed.len() - 1, sealed.len() - 17, sealed.len() / 2, 200] {
            assert!(
                open_padded(&sealed[..cut], &ids, 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
        for pos in [100, sealed.len() / 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[pos] ^= 1;
            assert!(open_padded(&bad, &ids, 1 << 20).is_err(), "flip at {pos}");
        }
        let raw = seal(&[1u8; 100_000], &rs).unwrap();
        assert!(open(&raw[..raw.len() - 1], &ids, 1 << 20).is_err());
    }

    #[test]
    fn padding_must_be_exact() {
        let (ids, rs) = keys(1);
        // A message whose declared length leaves the wrong amount of padding.
        let mut forged = 3u64.to_be_bytes().to_vec();
        forged.extend_from_slice(b"abc");
        let sealed = seal(&forged, &rs).unwrap();
        assert!(open_padded(&sealed, &ids, 100).is_err());
        // Non-zero padding.
        forged.resize(4096, 1);
        let sealed = seal(&forged, &rs).unwrap();
        assert!(open_padded(&sealed, &ids, 100).is_err());
    }
}
