//! Runs every bundle vector in `tests/vectors/bundle/` (docs/protocol.md#bundle) and, with
//! `--ignored`, rewrites them: `cargo test -p peluit-proto --test vectors_bundle -- --ignored`.
//!
//! Each vector is a pair: `<name>.bin`, the bundle byte for byte, and `<name>.txt`, its
//! expectation in the testkit style: `name: value` header lines (`expect:` first), a blank
//! line, then for a success one line per frame between Header and End:
//! `<frame metadata JSON> <payload length> <payload SHA-256 hex>`. Every vector is built
//! from fixed content, so the test also rebuilds each `.bin` in memory and requires the
//! committed bytes to be identical: neither the writer nor the files can drift silently.
//! The negative vectors are built by a second, independent encoder in this file, with
//! valid digests wherever the vector is about something else.

// Tests may unwrap; clippy's in-test allowance does not reach helper functions.
#![allow(clippy::unwrap_used)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use peluit_proto::Error;
use peluit_proto::bundle::{
    BundleError, BundleHeader, BundleKind, BundleReader, BundleWriter, FrameMeta, MAGIC,
};
use peluit_proto::ids::{CaseId, UploadId};
use peluit_proto::keys::SigningKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bundle")
}

fn header(kind: BundleKind) -> BundleHeader {
    BundleHeader {
        kind,
        institution: "itjen-contoh".parse().unwrap(),
        created: "2026-03-14".parse().unwrap(),
        cursor_from: match kind {
            BundleKind::Export => 100,
            BundleKind::Reply => 117,
        },
        cursor_to: 117,
    }
}

fn case(n: u8) -> CaseId {
    CaseId::from_bytes([0xc0 + n; 16])
}

/// Payloads are placeholders: the bundle layer never looks inside them.
fn export_frames() -> Vec<(FrameMeta, Vec<u8>)> {
    let mailbox_key = SigningKey::from_seed(&Zeroizing::new([0x54; 32])).verifying_key();
    vec![
        (
            FrameMeta::Manifest,
            b"{\"manifest\":\"signed manifest document placeholder\"}".to_vec(),
        ),
        (
            FrameMeta::Case {
                case: case(1),
                day: "2026-03-13".parse().unwrap(),
                mailbox_key,
                attachments: 1,
            },
            b"age-encryption.org/v1\n(sealed envelope placeholder)".to_vec(),
        ),
        (
            FrameMeta::Attachment {
                case: case(1),
                upload: UploadId::from_bytes([0xa1; 16]),
                index: 0,
            },
            (0..3000u32).map(|i| (i * 7 % 256) as u8).collect(),
        ),
        (
            FrameMeta::FollowUp {
                case: case(2),
                seq: 1,
            },
            b"age-encryption.org/v1\n(sealed follow-up placeholder)".to_vec(),
        ),
        (FrameMeta::Delete { case: case(3) }, Vec::new()),
    ]
}

fn reply_frames() -> Vec<(FrameMeta, Vec<u8>)> {
    vec![
        (
            FrameMeta::Manifest,
            b"{\"manifest\":\"next signed manifest placeholder\"}".to_vec(),
        ),
        (
            FrameMeta::Reply,
            b"{\"version\":1,\"sealed reply\":\"placeholder 1\"}".to_vec(),
        ),
        (
            FrameMeta::Reply,
            b"{\"version\":1,\"sealed reply\":\"placeholder 2\"}".to_vec(),
        ),
        (FrameMeta::Delete { case: case(3) }, Vec::new()),
    ]
}

fn write(kind: BundleKind, frames: &[(FrameMeta, Vec<u8>)]) -> Vec<u8> {
    let mut writer = BundleWriter::new(Vec::new(), &header(kind)).unwrap();
    for (meta, payload) in frames {
        writer.write_frame(meta, payload).unwrap();
    }
    writer.finish().unwrap()
}

// --- An independent encoder, straight from docs/protocol.md#bundle ---------------------

/// A frame as (its bytes, its bytes without the payload): the frame digest covers the
/// payload through the payload's SHA-256, the bundle digest everything but payloads.
fn raw_frame(meta: &str, payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut head = (meta.len() as u32).to_be_bytes().to_vec();
    head.extend_from_slice(meta.as_bytes());
    head.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    let mut digested = head.clone();
    digested.extend_from_slice(&Sha256::digest(payload));
    let digest = Sha256::digest(&digested);
    let mut frame = head.clone();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&digest);
    head.extend_from_slice(&digest);
    (frame, head)
}

fn raw_header(kind: &str) -> String {
    format!(
        "{{\"frame\":\"header\",\"version\":2,\"kind\":\"{kind}\",\"institution\":\"itjen-contoh\",\
         \"created\":\"2026-03-14\",\"cursor_from\":100,\"cursor_to\":117}}"
    )
}

/// Magic, then `frames` (the Header first), then an End frame with `count` and the digest
/// of everything before it.
fn raw_bundle(frames: &[(Vec<u8>, Vec<u8>)], count: Option<u64>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut bundle_hash = Sha256::new();
    bundle_hash.update(MAGIC);
    for (frame, without_payload) in frames {
        out.extend_from_slice(frame);
        bundle_hash.update(without_payload);
    }
    let end = format!(
        "{{\"frame\":\"end\",\"frames\":{},\"digest\":\"{}\"}}",
        count.unwrap_or(frames.len() as u64),
        hex::encode(bundle_hash.finalize())
    );
    out.extend_from_slice(&raw_frame(&end, b"").0);
    out
}

/// Offsets of every frame start in a bundle, then its length.
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        offsets.push(at);
        let meta_len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let len_at = at + 4 + meta_len;
        let payload_len = u64::from_be_bytes(bytes[len_at..len_at + 8].try_into().unwrap());
        at = len_at + 8 + payload_len as usize + 32;
    }
    offsets.push(bytes.len());
    offsets
}

// --- The vectors ------------------------------------------------------------------------

struct Built {
    name: &'static str,
    expect: &'static str,
    description: &'static str,
    bytes: Vec<u8>,
}

/// Every vector, built from fixed content.
fn build_all() -> Vec<Built> {
    let export = write(BundleKind::Export, &export_frames());
    let reply = write(BundleKind::Reply, &reply_frames());
    let eo = frame_offsets(&export);
    let ro = frame_offsets(&reply);
    let flip = |bytes: &[u8], at: usize| {
        let mut out = bytes.to_vec();
        out[at] ^= 0x01;
        out
    };
    let rframe = |i: usize| reply[ro[i]..ro[i + 1]].to_vec();
    let reordered = {
        let mut out = reply[..ro[1]].to_vec();
        for i in [1, 3, 2, 4, 5] {
            out.extend_from_slice(&rframe(i));
        }
        out
    };
    let mut after_end = reply.clone();
    after_end.extend_from_slice(b"\n");
    let mut v1 = reply.clone();
    v1[14] = b'1';
    let reply_json = b"{\"version\":1,\"sealed reply\":\"placeholder\"}";
    vec![
        Built {
            name: "export",
            expect: "success",
            description: "an export bundle with one frame of every export kind",
            bytes: export.clone(),
        },
        Built {
            name: "reply",
            expect: "success",
            description: "a reply bundle: manifest, two replies, a deletion",
            bytes: reply.clone(),
        },
        Built {
            name: "fail_truncated_mid_frame",
            expect: "truncated",
            description: "the export bundle cut in the middle of the attachment payload",
            bytes: export[..eo[3] + 1000].to_vec(),
        },
        Built {
            name: "fail_truncated_at_boundary",
            expect: "missing end",
            description: "the reply bundle cut cleanly before its End frame",
            bytes: reply[..ro[5]].to_vec(),
        },
        Built {
            name: "fail_meta_flipped",
            expect: "frame digest",
            description: "one bit flipped inside the case frame's mailbox key (still valid JSON)",
            bytes: {
                let meta = &export[eo[2]..eo[3]];
                let key_at = meta
                    .windows(14)
                    .position(|w| w == b"\"mailbox_key\":")
                    .unwrap();
                let mut out = export.clone();
                // 'n' <-> 'o': another valid base64 key text of the same length.
                out[eo[2] + key_at + 15] ^= 0x01;
                out
            },
        },
        Built {
            name: "fail_payload_flipped",
            expect: "frame digest",
            description: "one bit flipped in the attachment payload",
            bytes: flip(&export, eo[3] + 500),
        },
        Built {
            name: "fail_digest_flipped",
            expect: "frame digest",
            description: "one bit flipped in the follow-up frame's digest",
            bytes: flip(&export, eo[5] - 1),
        },
        Built {
            name: "fail_reordered",
            expect: "bundle digest",
            description: "the two reply frames swapped: each frame intact, the End digest differs",
            bytes: reordered,
        },
        Built {
            name: "fail_frame_dropped",
            expect: "frame count",
            description: "a reply frame dropped and the End frame kept",
            bytes: {
                let mut out = reply[..ro[2]].to_vec();
                for i in [3, 4, 5] {
                    out.extend_from_slice(&rframe(i));
                }
                out
            },
        },
        Built {
            name: "fail_data_after_end",
            expect: "data after end",
            description: "a newline appended after the End frame",
            bytes: after_end,
        },
        Built {
            name: "fail_reply_in_export",
            expect: "wrong frame",
            description: "a Reply frame in an export bundle, every digest valid",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("export"), b""),
                    raw_frame("{\"frame\":\"reply\"}", reply_json),
                ],
                None,
            ),
        },
        Built {
            name: "fail_case_in_reply",
            expect: "wrong frame",
            description: "a Delete then a FollowUp frame in a reply bundle, every digest valid",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("reply"), b""),
                    raw_frame(
                        &format!("{{\"frame\":\"delete\",\"case\":\"{}\"}}", case(3)),
                        b"",
                    ),
                    raw_frame(
                        &format!(
                            "{{\"frame\":\"follow-up\",\"case\":\"{}\",\"seq\":1}}",
                            case(2)
                        ),
                        b"sealed",
                    ),
                ],
                None,
            ),
        },
        Built {
            name: "fail_manifest_not_first",
            expect: "wrong frame",
            description: "a Manifest frame after a Reply frame",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("reply"), b""),
                    raw_frame("{\"frame\":\"reply\"}", reply_json),
                    raw_frame("{\"frame\":\"manifest\"}", b"{}"),
                ],
                None,
            ),
        },
        Built {
            name: "fail_unknown_kind",
            expect: "unknown frame kind",
            description: "a frame kind this version does not know, every digest valid",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("export"), b""),
                    raw_frame("{\"frame\":\"video\"}", b"data"),
                ],
                None,
            ),
        },
        Built {
            name: "fail_delete_with_payload",
            expect: "payload length",
            description: "a Delete frame with a payload",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("export"), b""),
                    raw_frame(
                        &format!("{{\"frame\":\"delete\",\"case\":\"{}\"}}", case(3)),
                        b"x",
                    ),
                ],
                None,
            ),
        },
        Built {
            name: "fail_meta_not_canonical",
            expect: "malformed",
            description: "frame metadata with a space: not the canonical JSON",
            bytes: raw_bundle(
                &[
                    raw_frame(&raw_header("reply"), b""),
                    raw_frame("{\"frame\": \"reply\"}", reply_json),
                ],
                None,
            ),
        },
        Built {
            name: "fail_no_header",
            expect: "wrong frame",
            description: "the first frame is not a Header",
            bytes: raw_bundle(&[raw_frame("{\"frame\":\"reply\"}", reply_json)], None),
        },
        Built {
            name: "fail_bad_magic",
            expect: "not a bundle",
            description: "an age file is not a bundle",
            bytes: b"age-encryption.org/v1\n-> X25519 placeholder\n".to_vec(),
        },
        Built {
            name: "fail_version_1",
            expect: "unsupported version",
            description: "magic with version 1, the format before payload digests",
            bytes: v1,
        },
    ]
}

fn class(error: &Error) -> &'static str {
    match error {
        Error::Bundle(e) => match e {
            BundleError::NotABundle => "not a bundle",
            BundleError::Truncated => "truncated",
            BundleError::MissingEnd => "missing end",
            BundleError::DataAfterEnd => "data after end",
            BundleError::UnknownFrameKind { .. } => "unknown frame kind",
            BundleError::WrongFrame { .. } => "wrong frame",
            BundleError::PayloadLength { .. } => "payload length",
            BundleError::FrameDigest { .. } => "frame digest",
            BundleError::FrameCount { .. } => "frame count",
            BundleError::BundleDigest => "bundle digest",
            other => panic!("unexpected bundle error {other:?}"),
        },
        Error::UnsupportedVersion { .. } => "unsupported version",
        Error::Malformed(_) => "malformed",
        Error::TooLarge(_) => "too large",
        other => panic!("unexpected error {other:?}"),
    }
}

/// The expectation file for a bundle, from what a reader makes of it.
fn expectation(b: &Built) -> String {
    let mut lines = vec![
        format!("expect: {}", b.expect),
        format!("description: {}", b.description),
        format!("sha256: {}", hex::encode(Sha256::digest(&b.bytes))),
    ];
    let mut body = String::new();
    if b.expect == "success" {
        let mut reader = BundleReader::new(&b.bytes[..]).unwrap();
        let h = reader.header().clone();
        lines.push(format!("kind: {}", h.kind.as_str()));
        lines.push(format!("institution: {}", h.institution));
        lines.push(format!("created: {}", h.created));
        lines.push(format!("cursor from: {}", h.cursor_from));
        lines.push(format!("cursor to: {}", h.cursor_to));
        let offsets = frame_offsets(&b.bytes);
        while let Some(mut frame) = reader.next_frame().unwrap() {
            let at = offsets[frame.index() as usize];
            let meta_len = u32::from_be_bytes(b.bytes[at..at + 4].try_into().unwrap()) as usize;
            let meta = std::str::from_utf8(&b.bytes[at + 4..at + 4 + meta_len]).unwrap();
            let payload = frame.read_payload_to_end(usize::MAX).unwrap();
            body.push_str(&format!(
                "{meta} {} {}\n",
                payload.len(),
                hex::encode(Sha256::digest(&payload))
            ));
        }
        let summary = reader.summary().unwrap();
        lines.push(format!("frames: {}", summary.frames));
        lines.push(format!("digest: {}", hex::encode(summary.digest)));
    }
    format!("{}\n\n{body}", lines.join("\n"))
}

#[test]
fn every_bundle_vector_has_its_expected_outcome() {
    let built = build_all();
    let mut names: Vec<_> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors/bundle exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected_names: Vec<_> = built
        .iter()
        .flat_map(|b| [format!("{}.bin", b.name), format!("{}.txt", b.name)])
        .collect();
    expected_names.sort();
    assert_eq!(
        names, expected_names,
        "vector files differ from the built set"
    );
    for b in &built {
        let bin = std::fs::read(vectors_dir().join(format!("{}.bin", b.name))).unwrap();
        let txt = std::fs::read_to_string(vectors_dir().join(format!("{}.txt", b.name))).unwrap();
        assert!(
            bin == b.bytes,
            "{}: the committed bundle differs from what the writer builds",
            b.name
        );
        assert_eq!(txt, expectation(b), "{}: expectation file differs", b.name);
        assert_eq!(
            b.expect == "success",
            !b.name.starts_with("fail_"),
            "{}",
            b.name
        );
        let first_line = txt.lines().next().unwrap();
        assert_eq!(first_line, format!("expect: {}", b.expect));
        let outcome = match BundleReader::verify(&bin[..]) {
            Ok(summary) => {
                assert!(txt.contains(&format!("digest: {}", hex::encode(summary.digest))));
                "success"
            }
            Err(e) => class(&e),
        };
        assert_eq!(outcome, b.expect, "{}", b.name);
    }
}

#[test]
fn the_independent_encoder_agrees_with_the_writer() {
    // The reply bundle, rebuilt frame by frame from the spec.
    let frames: Vec<_> = std::iter::once(raw_frame(
        &raw_header("reply").replace("\"cursor_from\":100", "\"cursor_from\":117"),
        b"",
    ))
    .chain(reply_frames().iter().map(|(meta, payload)| {
        let json = match meta {
            FrameMeta::Manifest => "{\"frame\":\"manifest\"}".to_owned(),
            FrameMeta::Reply => "{\"frame\":\"reply\"}".to_owned(),
            FrameMeta::Delete { case } => format!("{{\"frame\":\"delete\",\"case\":\"{case}\"}}"),
            other => panic!("not in a reply bundle: {other:?}"),
        };
        raw_frame(&json, payload)
    }))
    .collect();
    assert_eq!(
        raw_bundle(&frames, None),
        write(BundleKind::Reply, &reply_frames())
    );
}

#[test]
#[ignore = "rewrites tests/vectors/bundle; run with --ignored and commit the result"]
fn write_bundle_vectors() {
    std::fs::create_dir_all(vectors_dir()).unwrap();
    for entry in std::fs::read_dir(vectors_dir()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for b in build_all() {
        std::fs::write(vectors_dir().join(format!("{}.bin", b.name)), &b.bytes).unwrap();
        std::fs::write(
            vectors_dir().join(format!("{}.txt", b.name)),
            expectation(&b),
        )
        .unwrap();
    }
}

// --- Constant memory ----------------------------------------------------------------------

/// Generates `left` bytes of a repeating pattern without holding them.
struct Generated {
    left: u64,
    offset: usize,
    pattern: Vec<u8>,
}

impl Generated {
    fn new(left: u64) -> Self {
        // A prime period, so the pattern never lines up with 64 KiB pieces.
        let pattern = (0..65_521u32).map(|i| (i * 31 % 256) as u8).collect();
        Self {
            left,
            offset: 0,
            pattern,
        }
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.left as usize)
            .min(self.pattern.len() - self.offset);
        buf[..n].copy_from_slice(&self.pattern[self.offset..self.offset + n]);
        self.offset = (self.offset + n) % self.pattern.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// Peak resident memory of this process, in KiB (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_200_mb_streamed_attachment_verifies_in_bounded_memory() {
    const LEN: u64 = 200 * 1000 * 1000;
    let before = peak_rss_kib();
    // Writer and verifier run at the same time over an OS pipe: the bundle never exists
    // whole anywhere.
    let (pipe_reader, pipe_writer) = io::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let mut bundle = BundleWriter::new(pipe_writer, &header(BundleKind::Export)).unwrap();
        let (meta, payload) = &export_frames()[1];
        bundle.write_frame(meta, payload).unwrap();
        let meta = FrameMeta::Attachment {
            case: case(1),
            upload: UploadId::from_bytes([0xa1; 16]),
            index: 0,
        };
        bundle
            .write_frame_streamed(&meta, LEN, Generated::new(LEN))
            .unwrap();
        bundle.finish().unwrap();
    });
    let summary = BundleReader::verify(io::BufReader::new(pipe_reader)).unwrap();
    writer.join().unwrap();
    assert_eq!(summary.attachments, 1);
    assert!(summary.payload_bytes > LEN);
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        // Other tests of this binary are small; 200 MB held anywhere would show.
        assert!(
            after.saturating_sub(before) < 32 * 1024,
            "peak memory grew by {} KiB",
            after - before
        );
    }
}
