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

/// The SHA-256 a report lists for each sealed attachment: of all its ciphertext, header
/// included (docs/protocol.md#sealing). [`StreamSealer`] keeps one as it seals; a caller
/// sealing with [`UnhashedStreamSealer`] feeds the same bytes, in the same order, to one of
/// its own, wherever it likes: the reporter's page hashes on a second core.
#[derive(Clone, Default)]
pub struct SealedDigest(Sha256);

impl std::fmt::Debug for SealedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedDigest").finish_non_exhaustive()
    }
}

impl SealedDigest {
    /// A digest of no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next ciphertext bytes.
    pub fn update(&mut self, sealed: &[u8]) {
        self.0.update(sealed);
    }

    /// The digest of every byte added so far.
    pub fn finalize(&self) -> [u8; 32] {
        self.0.clone().finalize().into()
    }
}

/// Seals a padded message of known length one chunk at a time: feed content with
/// [`push`](Self::push), then call [`next_tail`](Self::next_tail) until it returns `None`.
/// Each call returns the ciphertext produced so far; memory stays around one chunk. The
/// SHA-256 of the ciphertext is kept as it goes ([`sealed_sha256`](Self::sealed_sha256)).
#[derive(Debug)]
pub struct StreamSealer {
    inner: UnhashedStreamSealer,
    digest: SealedDigest,
}

impl StreamSealer {
    /// Starts sealing `content_len` bytes of content to `recipients`. The age header and
    /// the length prefix are ready in [`take_output`](Self::take_output).
    pub fn new(recipients: &[SealRecipient], content_len: u64) -> Result<Self> {
        Ok(Self {
            inner: UnhashedStreamSealer::new(recipients, content_len)?,
            digest: SealedDigest::new(),
        })
    }

    fn hashed(&mut self, out: Vec<u8>) -> Vec<u8> {
        self.digest.update(&out);
        out
    }

    /// Ciphertext produced so far and not yet returned.
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = self.inner.take_output();
        self.hashed(out)
    }

    /// Seals the next piece of content and returns the ciphertext that is ready.
    pub fn push(&mut self, content: &[u8]) -> Result<Vec<u8>> {
        let out = self.inner.push(content)?;
        Ok(self.hashed(out))
    }

    /// After all content is pushed: seals up to one chunk of padding, or the final chunk,
    /// and returns its ciphertext; `None` once the message is complete.
    pub fn next_tail(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.next_tail()?.map(|out| self.hashed(out)))
    }

    /// SHA-256 of all ciphertext returned so far; complete once [`next_tail`](Self::next_tail)
    /// has returned `None`. Reports list this digest for each attachment.
    pub fn sealed_sha256(&self) -> [u8; 32] {
        self.digest.finalize()
    }

    /// Bytes of ciphertext returned so far.
    pub fn sealed_len(&self) -> u64 {
        self.inner.sealed_len()
    }

    /// Bytes of ciphertext the whole message will have, known from the start: what an
    /// upload declares before its first byte is sealed.
    pub fn total_len(&self) -> u64 {
        self.inner.total_len()
    }
}

/// [`StreamSealer`] without the digest: the same ciphertext, for a caller that hashes it
/// elsewhere with a [`SealedDigest`] (the page does, on a second core, as SHA-256 costs
/// about as much as sealing).
pub struct UnhashedStreamSealer {
    writer: Option<age::stream::StreamWriter<Sink>>,
    sink: Sink,
    content_len: u64,
    pushed: u64,
    padding_left: u64,
    sealed_len: u64,
    total_len: u64,
}

impl std::fmt::Debug for UnhashedStreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnhashedStreamSealer")
            .field("content_len", &self.content_len)
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

impl UnhashedStreamSealer {
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
            sealed_len: 0,
            total_len: prefix_len + padded + chunks * (SEALED_CHUNK_SIZE - CHUNK_SIZE) as u64,
        })
    }

    /// Ciphertext produced so far and not yet returned.
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = self.sink.take();
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

    /// Bytes of ciphertext returned so far.
    pub fn sealed_len(&self) -> u64 {
        self.sealed_len
    }

    /// Bytes of ciphertext the whole message will have, known from the start.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }
}

/// Opens an unpadded age message as a stream, whatever age tool sealed it: `Read` yields
/// the plaintext. Each chunk is authenticated before its bytes are released; a truncated,
/// altered or over-long message is an error at the chunk where it shows, and every read
/// after an error fails again. The message as a whole is verified only when `read`
/// returns 0: callers must treat what they read as provisional until then (the desk
/// writes it to a temporary file and removes that file on any error).
/// docs/protocol.md#sealing
pub struct UnpaddedStreamOpener<R: Read> {
    reader: age::stream::StreamReader<R>,
    released: u64,
    failed: bool,
}

impl<R: Read> std::fmt::Debug for UnpaddedStreamOpener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnpaddedStreamOpener")
            .field("released", &self.released)
            .finish_non_exhaustive()
    }
}

impl<R: Read> UnpaddedStreamOpener<R> {
    /// Reads the age header and unwraps the file key with one of `identities`; no payload
    /// is read yet.
    pub fn new(ciphertext: R, identities: &[SealIdentity]) -> Result<Self> {
        Ok(Self::from_reader(decryptor(ciphertext, identities)?))
    }

    fn from_reader(reader: age::stream::StreamReader<R>) -> Self {
        Self {
            reader,
            released: 0,
            failed: false,
        }
    }

    /// Plaintext bytes released so far; the message's length once `read` has returned 0.
    pub fn released_len(&self) -> u64 {
        self.released
    }

    /// Marks the stream failed, for a rule a layer above it enforces, and returns the
    /// error to hand out.
    fn refuse(&mut self, kind: io::ErrorKind, what: &'static str) -> io::Error {
        self.failed = true;
        io::Error::new(kind, what)
    }
}

impl<R: Read> Read for UnpaddedStreamOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A stream that failed once stays failed, whatever the reader below would do
        // next: no later read may look like a clean end.
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the sealed stream already failed",
            ));
        }
        match self.reader.read(buf) {
            Ok(n) => {
                self.released += n as u64;
                Ok(n)
            }
            // age retries interrupted reads itself; kept apart all the same, as a retry
            // is not a failure.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Opens a padded message as a stream: `Read` yields the content only. It reads through
/// an [`UnpaddedStreamOpener`] (chunk authentication, failure handling) and adds the
/// length prefix and padding rules of docs/protocol.md#padding. The message as a whole
/// (its end, its padding) is verified when `read` returns 0. Callers must treat what they
/// read as provisional until then: the desk writes it to a temporary file and renames it
/// only after the end.
pub struct StreamOpener<R: Read> {
    inner: UnpaddedStreamOpener<R>,
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
        Self::from_unpadded(UnpaddedStreamOpener::new(ciphertext, identities)?)
    }

    fn from_reader(reader: age::stream::StreamReader<R>) -> Result<Self> {
        Self::from_unpadded(UnpaddedStreamOpener::from_reader(reader))
    }

    fn from_unpadded(mut inner: UnpaddedStreamOpener<R>) -> Result<Self> {
        let mut prefix = [0u8; LEN_PREFIX as usize];
        inner
            .read_exact(&mut prefix)
            .map_err(|_| Error::DecryptionFailed)?;
        let content_len = u64::from_be_bytes(prefix);
        Ok(Self {
            inner,
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
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(self
                    .inner
                    .refuse(io::ErrorKind::InvalidData, "non-zero padding"));
            }
            padding += n as u64;
        }
        if LEN_PREFIX + self.content_len + padding != padded_len(self.content_len) {
            return Err(self
                .inner
                .refuse(io::ErrorKind::InvalidData, "wrong padding length"));
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
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].zeroize();
            return Err(self.inner.refuse(
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
    fn unhashed_sealing_with_a_digest_kept_apart_matches() {
        let (ids, rs) = keys(3);
        let content: Vec<u8> = (0..150_000u32).map(|i| (i * 7) as u8).collect();
        let mut sealer = UnhashedStreamSealer::new(&rs, content.len() as u64).unwrap();
        let mut digest = SealedDigest::new();
        let mut sealed = Vec::new();
        let mut keep = |out: Vec<u8>| {
            digest.update(&out);
            sealed.extend(out);
        };
        keep(sealer.take_output());
        for chunk in content.chunks(CHUNK_SIZE) {
            keep(sealer.push(chunk).unwrap());
        }
        assert!(sealer.push(b"x").is_err(), "more than declared");
        while let Some(tail) = sealer.next_tail().unwrap() {
            keep(tail);
        }
        assert!(sealer.next_tail().unwrap().is_none(), "stays complete");
        assert!(sealer.push(b"").is_err(), "finished");
        assert_eq!(digest.finalize(), <[u8; 32]>::from(Sha256::digest(&sealed)));
        assert_eq!(sealer.sealed_len(), sealed.len() as u64);
        assert_eq!(sealer.total_len(), sealed.len() as u64);
        let mut opened = Vec::new();
        StreamOpener::new(&sealed[..], &ids[2..])
            .unwrap()
            .read_to_end(&mut opened)
            .unwrap();
        assert_eq!(opened, content);

        assert!(matches!(
            UnhashedStreamSealer::new(&rs, u64::MAX - 3),
            Err(Error::TooLarge(_))
        ));
        let mut short = UnhashedStreamSealer::new(&rs, 10).unwrap();
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

    /// Varied bytes, so that a chunk released out of place cannot go unnoticed.
    fn varied(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Reads `opener` in odd-sized pieces until it ends or fails: what it released, and
    /// the error if it failed.
    fn drain(opener: &mut impl Read) -> (Vec<u8>, Option<io::Error>) {
        let mut released = Vec::new();
        let mut buf = [0u8; 10_007];
        loop {
            match opener.read(&mut buf) {
                Ok(0) => return (released, None),
                Ok(n) => released.extend_from_slice(&buf[..n]),
                Err(e) => return (released, Some(e)),
            }
        }
    }

    /// Seals `plaintext` with the Go `age` CLI (`age -r … -r …`, stdin to stdout).
    fn seal_with_go_age(plaintext: &[u8], recipients: &[SealRecipient]) -> Vec<u8> {
        use std::process::{Command, Stdio};
        let mut command = Command::new("age");
        for r in recipients {
            command.arg("-r").arg(r.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `age` ({e}): the Go age CLI is required for this test; \
                     run ./tests/run.sh, which installs the Debian package `age`"
                )
            });
        let mut stdin = child.stdin.take().unwrap();
        let input = plaintext.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "age -r failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Where the payload chunks of an unpadded message of `plain_len` bytes start.
    fn payload_start(sealed_len: usize, plain_len: usize) -> usize {
        let chunks = plain_len.div_ceil(CHUNK_SIZE).max(1);
        sealed_len - plain_len - chunks * (SEALED_CHUNK_SIZE - CHUNK_SIZE)
    }

    #[test]
    fn unpadded_stream_opens_what_the_go_age_cli_seals() {
        let (ids, rs) = keys(3);
        for len in [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 5] {
            let plaintext = varied(len);
            let sealed = seal_with_go_age(&plaintext, &rs);
            for id in &ids {
                let mut opener =
                    UnpaddedStreamOpener::new(&sealed[..], std::slice::from_ref(id)).unwrap();
                let (released, error) = drain(&mut opener);
                assert!(error.is_none(), "{len}: {error:?}");
                assert!(released == plaintext, "{len} bytes differ");
                assert_eq!(opener.released_len(), len as u64);
            }
        }
    }

    #[test]
    fn unpadded_stream_refuses_a_truncated_file_at_the_cut() {
        let (ids, rs) = keys(2);
        let plaintext = varied(3 * CHUNK_SIZE + 1000);
        let sealed = seal(&plaintext, &rs).unwrap();
        let start = payload_start(sealed.len(), plaintext.len());
        // Cut inside the last chunk, at each chunk boundary (a whole final chunk gone,
        // which no chunk's length gives away), inside the first chunk and in the header.
        let mut cuts = vec![sealed.len() - 1, start + 10, 100];
        cuts.extend((1..=3).map(|k| start + k * SEALED_CHUNK_SIZE));
        for cut in cuts {
            let Ok(mut opener) = UnpaddedStreamOpener::new(&sealed[..cut], &ids) else {
                assert!(cut < start, "cut at {cut}: the header was whole");
                continue;
            };
            let (released, error) = drain(&mut opener);
            assert!(error.is_some(), "cut at {cut} went unnoticed");
            // Only whole chunks before the cut, each authenticated, were released.
            let whole = (cut - start) / SEALED_CHUNK_SIZE;
            assert!(released.len() <= whole * CHUNK_SIZE, "cut at {cut}");
            assert!(plaintext.starts_with(&released));
            // The failure sticks: no later read pretends the stream ended well.
            assert!(opener.read(&mut [0u8; 16]).is_err());
        }
    }

    #[test]
    fn unpadded_stream_releases_nothing_of_an_altered_chunk() {
        let (ids, rs) = keys(1);
        let plaintext = varied(3 * CHUNK_SIZE + 1000);
        let sealed = seal(&plaintext, &rs).unwrap();
        let start = payload_start(sealed.len(), plaintext.len());
        for chunk in 0..4 {
            let at = start + chunk * SEALED_CHUNK_SIZE + 77;
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            let mut opener = UnpaddedStreamOpener::new(&bad[..], &ids).unwrap();
            let (released, error) = drain(&mut opener);
            assert!(error.is_some(), "flip in chunk {chunk} went unnoticed");
            assert_eq!(released.len(), chunk * CHUNK_SIZE, "chunk {chunk}");
            assert!(plaintext.starts_with(&released));
            assert!(opener.read(&mut [0u8; 16]).is_err());
        }
        // A flipped byte in the header (its MAC) opens nothing at all.
        let mut bad = sealed.clone();
        bad[start - 20] ^= 0x01;
        assert!(UnpaddedStreamOpener::new(&bad[..], &ids).is_err());
        // Bytes appended after the last chunk are an error too.
        let mut longer = sealed.clone();
        longer.extend_from_slice(b"tail");
        let (_, error) = drain(&mut UnpaddedStreamOpener::new(&longer[..], &ids).unwrap());
        assert!(error.is_some(), "trailing bytes went unnoticed");
    }

    #[test]
    fn unpadded_stream_needs_a_recipient_identity() {
        let (_, rs) = keys(2);
        let (stranger, _) = keys(1);
        let sealed = seal(&varied(1000), &rs).unwrap();
        assert!(matches!(
            UnpaddedStreamOpener::new(&sealed[..], &stranger),
            Err(Error::NoMatchingKey)
        ));
        assert!(matches!(
            UnpaddedStreamOpener::new(&b"not an age file"[..], &stranger),
            Err(Error::DecryptionFailed)
        ));
    }

    #[test]
    fn padded_stream_failures_stick() {
        let (ids, rs) = keys(1);
        // Non-zero padding after declared content: refused, and refused again.
        let mut forged = 3u64.to_be_bytes().to_vec();
        forged.extend_from_slice(b"abc");
        forged.resize(4096, 1);
        let sealed = seal(&forged, &rs).unwrap();
        let mut opener = StreamOpener::new(&sealed[..], &ids).unwrap();
        let (released, error) = drain(&mut opener);
        assert_eq!(released, b"abc");
        assert!(error.is_some());
        assert!(opener.read(&mut [0u8; 16]).is_err());
    }
}
