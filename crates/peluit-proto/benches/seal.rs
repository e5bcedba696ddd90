//! Sealing and opening speed of peluit-proto, side by side with the bare `age` crate doing
//! the same work in the same run: 1 GiB streamed in 64 KiB pieces, and 10,000 small messages.
//!
//! Run with `cargo bench -p peluit-proto` (five to eight minutes on two idle cores).
//! Targets: proto's streamed seal and open at least 90 % of bare age's throughput; at least
//! 10,000 padded 4 KiB messages sealed per second to one recipient. `seal_age_sha256` is bare
//! age plus the SHA-256 of the ciphertext that proto's sealer computes for `sealed_sha256`.
//! The 1 GiB is never held in memory: the content is one 64 KiB buffer pushed 16,384 times,
//! sealing writes to a counting sink, and opening reads a sealed file (made once, kept in the
//! OS page cache) through a 64 KiB buffer.

use std::fs::File;
use std::hint::black_box;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use peluit_proto::keys::{SealIdentity, SealRecipient};
use peluit_proto::limits::CHUNK_SIZE;
use peluit_proto::seal::{StreamOpener, StreamSealer, open_padded, seal_padded};
use sha2::{Digest, Sha256};

const GIB: u64 = 1 << 30;
const PIECES: u64 = GIB / CHUNK_SIZE as u64;
const SMALL_LEN: usize = 4096;
const SMALL_COUNT: usize = 10_000;
/// Distinct sealed messages the open benchmarks cycle through.
const SMALL_POOL: usize = 100;
const RECIPIENT_COUNTS: [usize; 2] = [1, 5];

/// A `Write` that only counts, so output costs nothing and holds nothing.
#[derive(Default)]
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A counting sink that also hashes, as proto's sealer does for `sealed_sha256`: bare age
/// plus this digest is the same work as proto's streamed sealing.
#[derive(Default)]
struct HashingSink(CountingSink, Sha256);

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.1.update(buf);
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One 64 KiB piece of varied content, reused for every piece of the 1 GiB.
fn piece() -> Vec<u8> {
    (0..CHUNK_SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

struct Keys {
    proto_ids: Vec<SealIdentity>,
    proto_rs: Vec<SealRecipient>,
    age_ids: Vec<age::x25519::Identity>,
    age_rs: Vec<age::x25519::Recipient>,
}

impl Keys {
    fn new(n: usize) -> Self {
        let proto_ids: Vec<_> = (0..n).map(|_| SealIdentity::generate()).collect();
        let age_ids: Vec<_> = (0..n).map(|_| age::x25519::Identity::generate()).collect();
        Self {
            proto_rs: proto_ids.iter().map(SealIdentity::recipient).collect(),
            age_rs: age_ids
                .iter()
                .map(age::x25519::Identity::to_public)
                .collect(),
            proto_ids,
            age_ids,
        }
    }

    /// The identity of the last recipient: an opener tries every stanza before it.
    fn proto_opener(&self) -> &[SealIdentity] {
        std::slice::from_ref(self.proto_ids.last().expect("at least one key"))
    }

    fn age_opener(&self) -> &age::x25519::Identity {
        self.age_ids.last().expect("at least one key")
    }

    fn age_encryptor(&self) -> age::Encryptor {
        age::Encryptor::with_recipients(self.age_rs.iter().map(|r| r as &dyn age::Recipient))
            .expect("age accepts the recipients")
    }
}

/// proto: 1 GiB of content through `StreamSealer` in 64 KiB pieces; returns bytes written.
fn proto_seal_stream(keys: &Keys, piece: &[u8], out: &mut impl Write) -> u64 {
    let mut sealer = StreamSealer::new(&keys.proto_rs, GIB).expect("sealer");
    out.write_all(&sealer.take_output()).expect("write");
    for _ in 0..PIECES {
        out.write_all(&sealer.push(piece).expect("push"))
            .expect("write");
    }
    while let Some(tail) = sealer.next_tail().expect("tail") {
        out.write_all(&tail).expect("write");
    }
    sealer.sealed_len()
}

/// Bare age: the same 1 GiB through `StreamWriter`.
fn age_seal_stream(keys: &Keys, piece: &[u8], out: impl Write) {
    let mut writer = keys.age_encryptor().wrap_output(out).expect("age writer");
    for _ in 0..PIECES {
        writer.write_all(piece).expect("write");
    }
    writer.finish().expect("finish");
}

/// Reads `reader` to its end through a 64 KiB buffer; returns the bytes read.
fn drain(mut reader: impl Read) -> u64 {
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf).expect("read") {
            0 => return total,
            n => total += black_box(n) as u64,
        }
    }
}

fn proto_open_stream(keys: &Keys, path: &Path) -> u64 {
    let file = BufReader::new(File::open(path).expect("sealed file"));
    drain(StreamOpener::new(file, keys.proto_opener()).expect("opener"))
}

fn age_open_stream(keys: &Keys, path: &Path) -> u64 {
    let file = BufReader::new(File::open(path).expect("sealed file"));
    let decryptor = age::Decryptor::new_buffered(file).expect("age header");
    let identity = keys.age_opener() as &dyn age::Identity;
    drain(
        decryptor
            .decrypt(std::iter::once(identity))
            .expect("age key"),
    )
}

fn stream_1gib(c: &mut Criterion) {
    let piece = piece();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("stream_1gib");
    group
        .throughput(Throughput::Bytes(GIB))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for n in RECIPIENT_COUNTS {
        let keys = Keys::new(n);
        group.bench_function(BenchmarkId::new("seal_proto", n), |b| {
            b.iter(|| proto_seal_stream(&keys, &piece, &mut CountingSink::default()))
        });
        group.bench_function(BenchmarkId::new("seal_age", n), |b| {
            b.iter(|| {
                let mut sink = CountingSink::default();
                age_seal_stream(&keys, &piece, &mut sink);
                sink.0
            })
        });
        group.bench_function(BenchmarkId::new("seal_age_sha256", n), |b| {
            b.iter(|| {
                let mut sink = HashingSink::default();
                age_seal_stream(&keys, &piece, &mut sink);
                <[u8; 32]>::from(sink.1.finalize())
            })
        });

        // Seal once to files (the OS page cache holds them), then time the opening.
        let proto_path = dir.path().join(format!("proto{n}.age"));
        let age_path = dir.path().join(format!("age{n}.age"));
        let mut file = BufWriter::new(File::create(&proto_path).expect("create"));
        proto_seal_stream(&keys, &piece, &mut file);
        file.flush().expect("flush");
        let mut file = BufWriter::new(File::create(&age_path).expect("create"));
        age_seal_stream(&keys, &piece, &mut file);
        file.flush().expect("flush");
        assert_eq!(proto_open_stream(&keys, &proto_path), GIB);
        assert_eq!(age_open_stream(&keys, &age_path), GIB);

        group.bench_function(BenchmarkId::new("open_proto", n), |b| {
            b.iter(|| proto_open_stream(&keys, &proto_path))
        });
        group.bench_function(BenchmarkId::new("open_age", n), |b| {
            b.iter(|| age_open_stream(&keys, &age_path))
        });
        std::fs::remove_file(&proto_path).expect("remove");
        std::fs::remove_file(&age_path).expect("remove");
    }
    group.finish();
}

fn age_seal_small(keys: &Keys, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 512);
    let mut writer = keys
        .age_encryptor()
        .wrap_output(&mut out)
        .expect("age writer");
    writer.write_all(content).expect("write");
    writer.finish().expect("finish");
    out
}

fn age_open_small(keys: &Keys, sealed: &[u8]) -> Vec<u8> {
    let decryptor = age::Decryptor::new_buffered(sealed).expect("age header");
    let identity = keys.age_opener() as &dyn age::Identity;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity))
        .expect("age key");
    let mut out = Vec::with_capacity(sealed.len());
    reader.read_to_end(&mut out).expect("read");
    out
}

fn small_4kib(c: &mut Criterion) {
    let content: Vec<u8> = piece()[..SMALL_LEN].to_vec();
    let mut group = c.benchmark_group("small_4kib");
    group
        .throughput(Throughput::Elements(SMALL_COUNT as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for n in RECIPIENT_COUNTS {
        let keys = Keys::new(n);
        group.bench_function(BenchmarkId::new("seal_proto", n), |b| {
            b.iter(|| {
                for _ in 0..SMALL_COUNT {
                    black_box(seal_padded(&content, &keys.proto_rs).expect("seal"));
                }
            })
        });
        group.bench_function(BenchmarkId::new("seal_age", n), |b| {
            b.iter(|| {
                for _ in 0..SMALL_COUNT {
                    black_box(age_seal_small(&keys, &content));
                }
            })
        });

        let proto_pool: Vec<_> = (0..SMALL_POOL)
            .map(|_| seal_padded(&content, &keys.proto_rs).expect("seal"))
            .collect();
        let age_pool: Vec<_> = (0..SMALL_POOL)
            .map(|_| age_seal_small(&keys, &content))
            .collect();
        group.bench_function(BenchmarkId::new("open_proto", n), |b| {
            b.iter(|| {
                for sealed in proto_pool.iter().cycle().take(SMALL_COUNT) {
                    black_box(open_padded(sealed, keys.proto_opener(), 1 << 20).expect("open"));
                }
            })
        });
        group.bench_function(BenchmarkId::new("open_age", n), |b| {
            b.iter(|| {
                for sealed in age_pool.iter().cycle().take(SMALL_COUNT) {
                    black_box(age_open_small(&keys, sealed));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stream_1gib, small_4kib);
criterion_main!(benches);
