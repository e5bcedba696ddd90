//! Identifiers. Case, upload and message ids are random 128-bit values written as 32
//! lowercase hex digits; institution ids are short lowercase slugs (docs/protocol.md#ids).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::{Error, Result, encoding};

macro_rules! random_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A random 128-bit ", $what, " id.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh id from the operating system's random source.
            pub fn random() -> Self {
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// The id from its 16 bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The id's 16 bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                encoding::unhex_array::<16>(s, concat!($what, " id")).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(D::Error::custom)
            }
        }
    };
}

random_id!(CaseId, "case");
random_id!(UploadId, "upload");
random_id!(MessageId, "message");

/// An institution's id: 1 to 64 characters of `a-z`, `0-9` and `-`, not starting or
/// ending with `-`. It appears in URLs, store keys and signed manifests.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct InstitutionId(String);

impl InstitutionId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for InstitutionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::Malformed("institution id"))
        }
    }
}

impl fmt::Display for InstitutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for InstitutionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstitutionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_bad_text() {
        let id = CaseId::random();
        assert_eq!(id.to_string().parse::<CaseId>().unwrap(), id);
        assert_ne!(CaseId::random(), CaseId::random());
        assert!("00".parse::<CaseId>().is_err());
        assert!(
            "0123456789ABCDEF0123456789abcdef"
                .parse::<CaseId>()
                .is_err()
        );
        assert!("itjen-kemenkeu".parse::<InstitutionId>().is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "a b", &"a".repeat(65)] {
            assert!(bad.parse::<InstitutionId>().is_err(), "{bad}");
        }
    }
}
