//! What an audit found: each finding names where (tree and key, file, URL or frame) and
//! why, in words an auditor can act on; the same data goes to `--json`.

use std::fmt;

use serde::Serialize;

/// One problem found by an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Where: `tree cases, key itjen-uji/…`, `file uploads/…`, a URL or a frame.
    pub place: Place,
    /// Why it fails the audit.
    pub why: String,
}

/// Where a finding is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Place {
    /// A key of a sled tree.
    Tree {
        /// The tree's name.
        tree: String,
        /// The key: institution, `/`, then the rest in hex.
        key: String,
    },
    /// A whole sled tree.
    TreeName {
        /// The tree's name.
        tree: String,
    },
    /// A file or folder under the data directory (relative path).
    File {
        /// The path relative to the data directory.
        path: String,
    },
    /// A URL fetched by the site check.
    Url {
        /// The URL.
        url: String,
    },
    /// A frame of a bundle (0 is the header frame).
    Frame {
        /// Its position.
        index: u64,
        /// Its kind.
        frame: String,
    },
    /// The thing audited as a whole.
    Whole,
}

impl Finding {
    /// A finding on a tree key.
    pub fn key(tree: &str, key: &[u8], why: impl Into<String>) -> Self {
        Self {
            place: Place::Tree {
                tree: tree.to_owned(),
                key: display_key(key),
            },
            why: why.into(),
        }
    }

    /// A finding on a file (path relative to the audited folder).
    pub fn file(path: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            place: Place::File { path: path.into() },
            why: why.into(),
        }
    }

    /// A finding on a URL.
    pub fn url(url: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            place: Place::Url { url: url.into() },
            why: why.into(),
        }
    }

    /// A finding on the audited thing as a whole.
    pub fn whole(why: impl Into<String>) -> Self {
        Self {
            place: Place::Whole,
            why: why.into(),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Tree { tree, key } => write!(f, "tree {tree}, key {key}"),
            Place::TreeName { tree } => write!(f, "tree {tree}"),
            Place::File { path } => write!(f, "file {path}"),
            Place::Url { url } => write!(f, "{url}"),
            Place::Frame { index, frame } => write!(f, "frame {index} ({frame})"),
            Place::Whole => f.write_str("overall"),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.why)
    }
}

/// A key as an auditor reads it: the institution id (when the key starts with a valid
/// one and `/`), then the fixed-width fields in hex; otherwise the whole key in hex.
pub fn display_key(key: &[u8]) -> String {
    if let Some(slash) = key.iter().position(|&b| b == b'/')
        && let Ok(institution) = std::str::from_utf8(&key[..slash])
        && institution
            .parse::<peluit_proto::ids::InstitutionId>()
            .is_ok()
    {
        return format!("{institution}/{}", hex::encode(&key[slash + 1..]));
    }
    format!("0x{}", hex::encode(key))
}
