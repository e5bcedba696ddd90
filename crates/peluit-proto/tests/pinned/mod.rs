//! Vectors generated from fixed inputs: building and rendering them, failing when a committed
//! file differs from the code, and rewriting them on purpose (`--ignored write_<area>_vectors`).

use crate::support::{assert_named_for_outcome, dir};
use crate::vector_file::VectorFile;

/// A vector as the generator builds it: header lines in order (`expect` first), then the body.
pub struct Vector {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Vector {
    /// A vector whose first header is `expect: <expect>`.
    pub fn new(expect: &str) -> Self {
        Self {
            headers: vec![("expect".into(), expect.into())],
            body: Vec::new(),
        }
    }

    /// Appends the header line `key: value`.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.headers.push((key.into(), value.to_string()));
        self
    }

    /// Sets the body, written byte for byte after the blank line.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The file's exact bytes.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.headers {
            out.extend_from_slice(format!("{key}: {value}\n").as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }
}

/// Fails if a committed vector of `area` differs from what the code generates now.
pub fn assert_pinned<N: AsRef<str>>(area: &str, generated: impl IntoIterator<Item = (N, Vector)>) {
    for (name, vector) in generated {
        let name = name.as_ref();
        let on_disk = std::fs::read(dir(area).join(name))
            .unwrap_or_else(|_| panic!("{name} is missing; run --ignored write_{area}_vectors"));
        let generated = vector.render();
        assert!(
            on_disk == generated,
            "{name} differs from the code; if the change is intended, rewrite with --ignored \
             write_{area}_vectors and review the diff\n--- committed\n{}\n--- generated\n{}",
            String::from_utf8_lossy(&on_disk),
            String::from_utf8_lossy(&generated)
        );
    }
}

/// Checks, as read back, and writes every generated vector of `area` (the `--ignored` rewrite).
pub fn write_all<N: AsRef<str>>(
    area: &str,
    generated: impl IntoIterator<Item = (N, Vector)>,
    check: impl Fn(&VectorFile),
) {
    std::fs::create_dir_all(dir(area)).expect("the vector folder can be made");
    for (name, vector) in generated {
        let bytes = vector.render();
        let read_back = VectorFile::parse(name.as_ref(), &bytes);
        assert_named_for_outcome(&read_back);
        check(&read_back);
        std::fs::write(dir(area).join(name.as_ref()), bytes).expect("the vector can be written");
    }
}

/// The three tests of a generated area: every committed file holds, every file is what the
/// code generates, and the ignored rewrite.
macro_rules! vector_tests {
    (
        area: $area:expr,
        at_least: $min:expr,
        generate: $generate:path,
        check: $check:path,
        holds: $holds:ident,
        pinned: $pinned:ident,
        rewrite: $rewrite:ident $(,)?
    ) => {
        #[test]
        fn $holds() {
            for vector in crate::support::committed($area, $min) {
                $check(&vector);
            }
        }

        #[test]
        fn $pinned() {
            crate::pinned::assert_pinned($area, $generate());
        }

        #[test]
        #[ignore = "rewrites the committed vectors; run on purpose and review the diff"]
        fn $rewrite() {
            crate::pinned::write_all($area, $generate(), $check);
        }
    };
}
pub(crate) use vector_tests;
