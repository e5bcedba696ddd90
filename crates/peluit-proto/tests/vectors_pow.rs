//! Proof-of-work vectors (docs/protocol.md#pow): the first valid stamp for fixed resources
//! and difficulties, and stamps a server must refuse. Run `--ignored write_pow_vectors`
//! to rewrite.

// Integration tests are test code: this lets clippy's allow-unwrap-in-tests cover the
// helpers too.
#![cfg(test)]

mod pinned;
mod support;
mod vector_file;

use pinned::Vector;
use vector_file::VectorFile;

use std::collections::BTreeMap;

use peluit_proto::Error;
use peluit_proto::pow::{MAX_NONCE, Stamp};
use sha2::{Digest, Sha256};

const AREA: &str = "pow";

fn class(error: &Error) -> &'static str {
    match error {
        Error::IntegrityFailed(_) => "integrity failure",
        Error::Malformed(_) => "malformed",
        Error::UnsupportedVersion { .. } => "unsupported version",
        other => panic!("no vector class for {other:?}"),
    }
}

/// A fixed resource: SHA-256 of a label, standing in for the SHA-256 of a sealed envelope.
fn resource(label: &str) -> [u8; 32] {
    Sha256::digest(label.as_bytes()).into()
}

/// SHA-256("peluit/v1/pow\n" || resource || bits || nonce big-endian), spelled out here
/// independently of the crate.
fn stamp_hash(resource: &[u8; 32], bits: u8, nonce: u64) -> [u8; 32] {
    let mut input = b"peluit/v1/pow\n".to_vec();
    input.extend_from_slice(resource);
    input.push(bits);
    input.extend_from_slice(&nonce.to_be_bytes());
    Sha256::digest(&input).into()
}

fn vector(
    expect: &str,
    comment: &str,
    label: &str,
    min_bits: u8,
    bits: u8,
    nonce: u64,
    body: Option<String>,
) -> Vector {
    let resource = resource(label);
    Vector::new(expect)
        .with("comment", comment)
        .with("resource", hex::encode(resource))
        .with("min bits", min_bits)
        .with("hash", hex::encode(stamp_hash(&resource, bits, nonce)))
        .body(body.unwrap_or_else(|| format!(r#"{{"version":1,"bits":{bits},"nonce":{nonce}}}"#)))
}

/// Every vector, by file name, computed from the code under test.
fn generate() -> BTreeMap<&'static str, Vector> {
    let mut out = BTreeMap::new();
    let mut minted = |name, label: &str, bits| {
        let stamp = Stamp::mint(&resource(label), bits);
        let comment = format!("the first stamp from nonce 0 at {bits} bits for SHA-256('{label}')");
        out.insert(
            name,
            vector("success", &comment, label, bits, bits, stamp.nonce(), None),
        );
        stamp
    };
    minted("zero_bits", "peluit/v1 pow vector 0", 0);
    minted("eight_bits", "peluit/v1 pow vector 8", 8);
    let twelve = minted("twelve_bits", "peluit/v1 pow vector 12", 12);
    minted("sixteen_bits", "peluit/v1 pow vector 16", 16);

    let label = "peluit/v1 pow vector 12";
    let weak = (0..)
        .find(|&nonce| {
            let hash = stamp_hash(&resource(label), 12, nonce);
            u16::from_be_bytes([hash[0], hash[1]]) >> 4 != 0
        })
        .unwrap();
    out.insert(
        "fail_not_enough_zero_bits",
        vector(
            "integrity failure",
            "the hash has fewer leading zero bits than the stamp claims",
            label,
            12,
            12,
            weak,
            None,
        ),
    );
    out.insert(
        "fail_below_min_bits",
        vector(
            "integrity failure",
            "a valid 12-bit stamp where the server asks for 13",
            label,
            13,
            12,
            twelve.nonce(),
            None,
        ),
    );
    out.insert(
        "fail_other_resource",
        vector(
            "integrity failure",
            "a valid stamp for one envelope presented with another",
            "peluit/v1 pow vector 12, another envelope",
            12,
            12,
            twelve.nonce(),
            None,
        ),
    );
    out.insert(
        "fail_bits_over_max",
        vector(
            "malformed",
            "a stamp may claim at most 40 bits",
            label,
            0,
            41,
            0,
            None,
        ),
    );
    out.insert(
        "fail_nonce_over_max",
        vector(
            "malformed",
            "nonces stop at 2^53 - 1 so that JavaScript reads them exactly",
            label,
            0,
            0,
            MAX_NONCE + 1,
            None,
        ),
    );
    out.insert(
        "fail_whitespace",
        vector(
            "malformed",
            "a space after a colon: not canonical JSON",
            label,
            12,
            12,
            twelve.nonce(),
            Some(format!(
                r#"{{"version":1,"bits": 12,"nonce":{}}}"#,
                twelve.nonce()
            )),
        ),
    );
    out.insert(
        "fail_version_2",
        vector(
            "unsupported version",
            "version 2",
            label,
            12,
            12,
            twelve.nonce(),
            Some(format!(
                r#"{{"version":2,"bits":12,"nonce":{}}}"#,
                twelve.nonce()
            )),
        ),
    );
    out
}

fn check(vector: &VectorFile) {
    let name = vector.name.as_str();
    let expect = vector.required("expect");
    let resource: [u8; 32] = hex::decode(vector.required("resource"))
        .unwrap()
        .try_into()
        .unwrap();
    let min_bits: u8 = vector.required("min bits").parse().unwrap();
    let outcome = Stamp::from_json(&vector.body[..]).and_then(|stamp| {
        assert_eq!(
            hex::encode(stamp.digest(&resource)),
            vector.required("hash"),
            "{name}"
        );
        stamp.verify(&resource, min_bits).map(|()| stamp)
    });
    match outcome {
        Ok(stamp) => {
            assert_eq!(expect, "success", "{name}");
            // Minting counts from 0, so the pinned stamp is the first valid one.
            assert_eq!(Stamp::mint(&resource, stamp.bits()), stamp, "{name}");
            assert_eq!(stamp.to_json(), &vector.body[..], "{name}");
        }
        Err(error) => assert_eq!(class(&error), expect, "{name}: {error}"),
    }
}

pinned::vector_tests! {
    area: AREA,
    at_least: 10,
    generate: generate,
    check: check,
    holds: every_pow_vector_holds,
    pinned: pow_vectors_are_pinned,
    rewrite: write_pow_vectors,
}
