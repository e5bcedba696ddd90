//! One vector file in the C2SP age testkit layout (`name: value` header lines, `expect`
//! first, a blank line, then the body): parsing and header look-ups for every vector test.

use std::path::Path;

/// One parsed vector file; a header name may repeat (`identity`, `seal recipient`, …).
pub struct VectorFile {
    pub name: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl VectorFile {
    /// Splits `bytes` at the first blank line into header lines and the body, panicking
    /// with the file's name on a header that is not UTF-8 `name: value` lines.
    pub fn parse(name: &str, bytes: &[u8]) -> Self {
        let split = bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .unwrap_or_else(|| panic!("{name}: no blank line after the header"));
        let header = std::str::from_utf8(&bytes[..split])
            .unwrap_or_else(|_| panic!("{name}: header is not UTF-8"));
        let headers: Vec<(String, String)> = header
            .lines()
            .map(|line| {
                let (key, value) = line
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("{name}: bad header line {line:?}"));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        assert_eq!(
            headers[0].0, "expect",
            "{name}: the first header is `expect`"
        );
        Self {
            name: name.to_owned(),
            headers,
            body: bytes[split + 2..].to_vec(),
        }
    }

    /// Every value of header `key`, in file order.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of header `key` if the file has it; panics if it is given twice.
    pub fn optional(&self, key: &str) -> Option<&str> {
        let mut values = self.all(key);
        let first = values.next();
        assert!(
            values.next().is_none(),
            "{}: `{key}` given twice",
            self.name
        );
        first
    }

    /// The value of header `key`, which the file must give exactly once.
    pub fn required(&self, key: &str) -> &str {
        self.optional(key)
            .unwrap_or_else(|| panic!("{}: no `{key}` header", self.name))
    }
}

/// Every file in `dir` but those named in `except`, parsed, in name order.
pub fn read_dir(dir: &Path, except: &[&str]) -> Vec<VectorFile> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("no vector folder at {} ({e})", dir.display()));
    let mut vectors: Vec<VectorFile> = entries
        .map(|entry| entry.expect("a readable vector folder").path())
        .filter_map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 vector name")
                .to_owned();
            if except.contains(&name.as_str()) {
                return None;
            }
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            Some(VectorFile::parse(&name, &bytes))
        })
        .collect();
    vectors.sort_by(|a, b| a.name.cmp(&b.name));
    vectors
}
