//! Proof-of-work stamps: anti-spam without IP addresses. Every submission carries a stamp
//! bound to the SHA-256 of its sealed envelope (docs/protocol.md#pow).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::{Version1, from_canonical_json, to_canonical_json};
use crate::{Error, Result};

/// Domain separation for stamp hashes. docs/protocol.md#pow
const POW_PREFIX: &[u8] = b"peluit/v1/pow\n";

/// Highest difficulty a stamp may claim: 2^40 hashes is already days of work in a browser,
/// so anything above it is a misconfiguration or an attack on the verifier's patience.
pub const MAX_BITS: u8 = 40;

/// Highest nonce a stamp may carry: 2^53 - 1, the largest integer a JavaScript number
/// holds exactly, so that the JSON means the same in every client.
pub const MAX_NONCE: u64 = (1 << 53) - 1;

/// A proof-of-work stamp: `nonce` makes SHA-256 of the stamp input start with at least
/// `bits` zero bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    version: Version1,
    bits: u8,
    nonce: u64,
}

/// The hash state after the fixed part of the input, reused for every nonce.
fn prefix_state(resource: &[u8; 32], bits: u8) -> Sha256 {
    Sha256::new()
        .chain_update(POW_PREFIX)
        .chain_update(resource)
        .chain_update([bits])
}

fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut zeros = 0;
    for byte in hash {
        zeros += byte.leading_zeros();
        if *byte != 0 {
            break;
        }
    }
    zeros
}

impl Stamp {
    /// Finds the first nonce from 0 that makes a valid stamp for `resource` (the SHA-256
    /// of the sealed envelope) at difficulty `bits`. A difficulty above [`MAX_BITS`] is
    /// treated as [`MAX_BITS`]: a stamp claiming more could never verify.
    pub fn mint(resource: &[u8; 32], bits: u8) -> Stamp {
        // At MAX_BITS, 2^53 nonces all failing has probability about e^-8192.
        Self::mint_from(resource, bits, 0, MAX_NONCE + 1)
            .unwrap_or_else(|| unreachable!("a stamp of at most 40 bits exists below 2^53"))
    }

    /// Tries the `count` nonces from `start` (stopping at [`MAX_NONCE`]) and returns the
    /// first valid stamp, if any. A browser calls this in slices to report progress and
    /// stay responsive; expected work is 2^bits hashes.
    pub fn mint_from(resource: &[u8; 32], bits: u8, start: u64, count: u64) -> Option<Stamp> {
        let bits = bits.min(MAX_BITS);
        let end = start.saturating_add(count).min(MAX_NONCE + 1);
        let state = prefix_state(resource, bits);
        (start..end)
            .find(|nonce| {
                let hash: [u8; 32] = state
                    .clone()
                    .chain_update(nonce.to_be_bytes())
                    .finalize()
                    .into();
                leading_zero_bits(&hash) >= u32::from(bits)
            })
            .map(|nonce| Stamp {
                version: Version1,
                bits,
                nonce,
            })
    }

    /// The difficulty the stamp claims.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// SHA-256("peluit/v1/pow\n" || resource || bits || nonce as 8 bytes big-endian).
    pub fn digest(&self, resource: &[u8; 32]) -> [u8; 32] {
        prefix_state(resource, self.bits)
            .chain_update(self.nonce.to_be_bytes())
            .finalize()
            .into()
    }

    /// Accepts the stamp for `resource` if it claims at least `min_bits` (the server's
    /// current difficulty) and its hash has as many leading zero bits as it claims.
    pub fn verify(&self, resource: &[u8; 32], min_bits: u8) -> Result<()> {
        // Bound the claim and keep the nonce exact in JavaScript. docs/protocol.md#pow
        if self.bits > MAX_BITS || self.nonce > MAX_NONCE {
            return Err(Error::Malformed("proof-of-work stamp"));
        }
        // A stamp minted for an easier difficulty is not enough. docs/protocol.md#pow
        if self.bits < min_bits {
            return Err(Error::IntegrityFailed(
                "proof of work below the required difficulty",
            ));
        }
        // The work itself. docs/protocol.md#pow
        if leading_zero_bits(&self.digest(resource)) < u32::from(self.bits) {
            return Err(Error::IntegrityFailed("proof of work"));
        }
        Ok(())
    }

    /// The canonical JSON, e.g. `{"version":1,"bits":20,"nonce":1234}`.
    pub fn to_json(&self) -> Vec<u8> {
        to_canonical_json(self)
    }

    /// Parses canonical stamp JSON (the work is checked by [`Stamp::verify`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        from_canonical_json(bytes, "proof-of-work stamp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bits: u8, nonce: u64) -> Stamp {
        Stamp {
            version: Version1,
            bits,
            nonce,
        }
    }

    #[test]
    fn counts_leading_zero_bits() {
        let mut hash = [0u8; 32];
        assert_eq!(leading_zero_bits(&hash), 256);
        hash[0] = 0x80;
        assert_eq!(leading_zero_bits(&hash), 0);
        hash[0] = 0;
        hash[1] = 0x10;
        assert_eq!(leading_zero_bits(&hash), 11);
    }

    #[test]
    fn minted_stamps_verify_and_are_bound_to_their_resource() {
        let resource = [3u8; 32];
        for bits in [0, 1, 8, 12] {
            let stamp = Stamp::mint(&resource, bits);
            assert_eq!(stamp.bits(), bits);
            stamp.verify(&resource, bits).unwrap();
            assert!(leading_zero_bits(&stamp.digest(&resource)) >= u32::from(bits));
            // Every earlier nonce fails: mint counts from 0.
            for nonce in 0..stamp.nonce() {
                assert!(raw(bits, nonce).verify(&resource, bits).is_err());
            }
        }
        let stamp = Stamp::mint(&resource, 12);
        assert!(stamp.verify(&[4u8; 32], 12).is_err(), "other resource");
        assert!(
            stamp.verify(&resource, 13).is_err(),
            "below the required difficulty"
        );
        stamp.verify(&resource, 8).unwrap();
        // Relabelling a stamp to claim more work changes its hash.
        assert!(raw(16, stamp.nonce()).verify(&resource, 12).is_err());
    }

    #[test]
    fn minting_in_slices_finds_the_same_stamp() {
        let resource = [5u8; 32];
        let whole = Stamp::mint(&resource, 10);
        let mut start = 0;
        let sliced = loop {
            if let Some(found) = Stamp::mint_from(&resource, 10, start, 100) {
                break found;
            }
            start += 100;
        };
        assert_eq!(sliced, whole);
        assert_eq!(Stamp::mint_from(&resource, 10, 0, 0), None);
        assert_eq!(Stamp::mint_from(&resource, 0, MAX_NONCE + 1, 10), None);
        assert_eq!(
            Stamp::mint_from(&resource, 0, MAX_NONCE, u64::MAX).map(|s| s.nonce()),
            Some(MAX_NONCE)
        );
    }

    #[test]
    fn out_of_range_stamps_are_refused() {
        let resource = [0u8; 32];
        assert!(matches!(
            raw(41, 0).verify(&resource, 0),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            raw(0, MAX_NONCE + 1).verify(&resource, 0),
            Err(Error::Malformed(_))
        ));
        raw(0, MAX_NONCE).verify(&resource, 0).unwrap();
        assert_eq!(Stamp::mint_from(&resource, 200, 0, 0), None);
    }

    #[test]
    fn json_is_canonical() {
        let s = raw(20, 1234);
        assert_eq!(s.to_json(), br#"{"version":1,"bits":20,"nonce":1234}"#);
        assert_eq!(Stamp::from_json(&s.to_json()).unwrap(), s);
        for bad in [
            r#"{"version":1,"bits":20,"nonce":1234,"x":0}"#,
            r#"{"version":1, "bits":20,"nonce":1234}"#,
            r#"{"version":1,"nonce":1234,"bits":20}"#,
            r#"{"version":1,"bits":20,"nonce":1234.0}"#,
            r#"{"version":1,"bits":20,"nonce":01234}"#,
            r#"{"version":1,"bits":256,"nonce":1}"#,
            r#"{"version":1,"bits":-1,"nonce":1}"#,
        ] {
            assert!(Stamp::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(matches!(
            Stamp::from_json(br#"{"version":2,"bits":20,"nonce":1234}"#),
            Err(Error::UnsupportedVersion { version: 2, .. })
        ));
    }
}
