//! Runs the C2SP age testkit (`../shared/testdata/age-testkit/`, from C2SP/CCTV `age/testdata`)
//! through proto's opener and asserts the exact outcome class of every vector proto supports.
//!
//! Each vector is opened with `peluit_proto::seal::dangerously_classify_open` using the
//! vector's X25519 identities, and the outcome must be the `expect:` class exactly: success
//! with the `payload:` SHA-256, `header failure`, `HMAC failure`, `no match` or
//! `payload failure`. `peluit_proto::seal::open` must agree on success versus failure (and
//! report `NoMatchingKey` exactly for `no match`).
//!
//! Skipped vectors, by reason (the counts are asserted, so a new vector is never skipped
//! silently; a vector that fits no reason and cannot be run fails the test):
//! - **armored** (`armored: yes`, 33 vectors, names `armor_*`): proto reads binary age only;
//!   Peluit never produces or accepts ASCII armor.
//! - **scrypt** (a `passphrase:` header, 25 vectors, names `scrypt*`): Peluit never seals to
//!   a passphrase and proto refuses passphrase files before trying any key.
//! - **mlkem768x25519 hybrid** (an `AGE-SECRET-KEY-PQ-1…` identity, 18 vectors, names
//!   `hybrid*`): proto's identities are X25519 only.
//!
//! That leaves 67 vectors run: `x25519*`, `stanza_*`, `stream_*`, `hmac_*`, `header_crlf`,
//! `version_unsupported` and `empty`, each with exactly the testkit's outcome (proto refuses
//! the legacy stanza encoding the `age` crate still accepts, so the two `stanza_missing_*`
//! vectors fail as the testkit expects).

mod vector_file;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use vector_file::{VectorFile, read_dir};

use peluit_proto::Error;
use peluit_proto::keys::SealIdentity;
use peluit_proto::seal::{FailureClass, dangerously_classify_open, open};
use sha2::{Digest, Sha256};

/// Vectors in the pinned testkit commit (SOURCE.txt), and how many each rule handles.
const TOTAL: usize = 143;
const RUN: usize = 67;
const SKIPPED_ARMORED: usize = 33;
const SKIPPED_SCRYPT: usize = 25;
const SKIPPED_HYBRID: usize = 18;

fn testkit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/age-testkit")
}

/// Inflates a `compressed: zlib` body in place; other compressions fail the test.
fn decompress(vector: &mut VectorFile) {
    match vector.optional("compressed") {
        None => {}
        Some("zlib") => {
            let mut body = Vec::new();
            flate2::read::ZlibDecoder::new(&vector.body[..])
                .read_to_end(&mut body)
                .unwrap_or_else(|e| panic!("{}: bad zlib body: {e}", vector.name));
            vector.body = body;
        }
        Some(other) => panic!("{}: unknown compression {other}", vector.name),
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Skip {
    Armored,
    Scrypt,
    Hybrid,
}

fn skip_reason(vector: &VectorFile) -> Option<Skip> {
    if vector.optional("armored") == Some("yes") {
        return Some(Skip::Armored);
    }
    if vector.all("passphrase").next().is_some() {
        return Some(Skip::Scrypt);
    }
    if vector
        .all("identity")
        .any(|i| i.starts_with("AGE-SECRET-KEY-PQ-1"))
    {
        return Some(Skip::Hybrid);
    }
    None
}

fn load_vectors() -> Vec<VectorFile> {
    let dir = testkit_dir();
    assert!(
        dir.is_dir(),
        "the C2SP age testkit is missing at {}; it lives in shared/testdata/age-testkit \
         beside the repository (copy shared/ next to the checkout)",
        dir.display()
    );
    let mut vectors = read_dir(&dir, &["SOURCE.txt"]);
    vectors.iter_mut().for_each(decompress);
    vectors
}

/// Opens one supported vector through both openers. Returns the classified outcome
/// (the payload's SHA-256 in hex on success) or a description of a disagreement.
fn run_vector(vector: &VectorFile) -> Result<Result<String, FailureClass>, String> {
    let identities: Vec<SealIdentity> = vector
        .all("identity")
        .map(|text| {
            assert!(
                text.starts_with("AGE-SECRET-KEY-1"),
                "{}: identity kind proto cannot run and no skip rule covers",
                vector.name
            );
            SealIdentity::parse_secret(text)
                .unwrap_or_else(|e| panic!("{}: identity does not parse: {e}", vector.name))
        })
        .collect();
    let classified = dangerously_classify_open(&vector.body, &identities)
        .map(|plaintext| hex::encode(Sha256::digest(&plaintext[..])));
    // The user-facing opener must agree: the same plaintext on success, an error otherwise,
    // and `NoMatchingKey` exactly when no identity matched.
    let opened = open(&vector.body, &identities, usize::MAX - 1)
        .map(|plaintext| hex::encode(Sha256::digest(&plaintext[..])));
    match (&classified, opened) {
        (Ok(a), Ok(b)) if *a == b => {}
        (Err(FailureClass::NoMatch), Err(Error::NoMatchingKey)) => {}
        (Err(FailureClass::NoMatch), Err(e)) => {
            return Err(format!("open: expected NoMatchingKey, got {e:?}"));
        }
        (Err(_), Err(Error::DecryptionFailed)) => {}
        (classified, opened) => {
            return Err(format!("open disagrees: {classified:?} vs {opened:?}"));
        }
    }
    Ok(classified)
}

/// Checks one supported vector against its `expect:` header (or its known deviation).
fn check(vector: &VectorFile) -> Result<(), String> {
    let expect = vector.required("expect");
    let payload = || {
        vector
            .optional("payload")
            .unwrap_or_else(|| panic!("{}: success without payload", vector.name))
            .to_owned()
    };
    let expected: Result<String, FailureClass> = match expect {
        "success" => Ok(payload()),
        "header failure" => Err(FailureClass::Header),
        "HMAC failure" => Err(FailureClass::Hmac),
        "no match" => Err(FailureClass::NoMatch),
        "payload failure" => Err(FailureClass::Payload),
        other => panic!("{}: unknown expectation {other}", vector.name),
    };
    let got = run_vector(vector)?;
    if got != expected {
        return Err(format!("expected {expected:?}, got {got:?}"));
    }
    Ok(())
}

#[test]
fn c2sp_age_testkit() {
    let vectors = load_vectors();
    let mut skipped: BTreeMap<Skip, Vec<&str>> = BTreeMap::new();
    let mut to_run = Vec::new();
    for vector in &vectors {
        match skip_reason(vector) {
            Some(reason) => skipped.entry(reason).or_default().push(&vector.name),
            None => to_run.push(vector),
        }
    }
    // A few vectors are 16 MiB streams; spread them over the cores.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = to_run
            .iter()
            .map(|vector| {
                scope.spawn(|| check(vector).map_err(|why| format!("{}: {why}", vector.name)))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("vector thread").err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "testkit mismatches:\n{}",
        failures.join("\n")
    );

    let count = |reason| skipped.get(&reason).map_or(0, Vec::len);
    assert_eq!(
        vectors.len(),
        TOTAL,
        "the testkit changed: review the new vectors and update the counts in this file"
    );
    assert_eq!(to_run.len(), RUN, "vectors run");
    assert_eq!(count(Skip::Armored), SKIPPED_ARMORED, "{skipped:?}");
    assert_eq!(count(Skip::Scrypt), SKIPPED_SCRYPT, "{skipped:?}");
    assert_eq!(count(Skip::Hybrid), SKIPPED_HYBRID, "{skipped:?}");
    // Each skip reason covers only the vectors its name family says.
    for (reason, prefix) in [
        (Skip::Armored, "armor_"),
        (Skip::Scrypt, "scrypt"),
        (Skip::Hybrid, "hybrid"),
    ] {
        for name in &skipped[&reason] {
            assert!(name.starts_with(prefix), "{name} skipped as {reason:?}");
        }
    }
}
