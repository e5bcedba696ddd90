//! Reading and writing vector files in the C2SP age testkit style (`name: value` header
//! lines, the first being `expect`, a blank line, then the body), shared by the vector tests.

use std::path::PathBuf;

/// One vector file: `name: value` header lines, a blank line, then the body to the end
/// of the file (C2SP age testkit style).
pub struct Vector {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Vector {
    pub fn new(expect: &str) -> Self {
        Self {
            headers: vec![("expect".into(), expect.into())],
            body: String::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.headers.push((key.into(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.headers {
            text.push_str(&format!("{key}: {value}\n"));
        }
        text.push('\n');
        text.push_str(&self.body);
        text
    }

    pub fn parse(text: &str) -> Self {
        let (head, body) = text
            .split_once("\n\n")
            .expect("a blank line after the header");
        let headers = head
            .lines()
            .map(|line| {
                let (key, value) = line.split_once(": ").expect("a `name: value` header line");
                (key.to_owned(), value.to_owned())
            })
            .collect::<Vec<_>>();
        assert_eq!(headers[0].0, "expect", "the first header is `expect`");
        Self {
            headers,
            body: body.to_owned(),
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("missing header {key}"))
    }
}

/// The folder of one area's vectors.
pub fn dir(area: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(area)
}

/// Runs `check` on every committed vector of `area`; at least `min` must exist.
pub fn check_committed(area: &str, min: usize, check: impl Fn(&str, &Vector)) {
    let mut seen = 0;
    for entry in std::fs::read_dir(dir(area)).expect("the vector directory exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        check(
            &name,
            &Vector::parse(&std::fs::read_to_string(&path).unwrap()),
        );
        seen += 1;
    }
    assert!(seen >= min, "only {seen} {area} vectors");
}

/// Fails if a committed vector of `area` differs from what the code generates now.
pub fn assert_pinned<'a>(area: &str, generated: impl IntoIterator<Item = (&'a str, Vector)>) {
    for (name, vector) in generated {
        let on_disk = std::fs::read_to_string(dir(area).join(name))
            .unwrap_or_else(|_| panic!("{name} is missing; run --ignored write_{area}_vectors"));
        assert_eq!(
            on_disk,
            vector.render(),
            "{name} differs from the code; if the change is intended, rewrite with --ignored write_{area}_vectors"
        );
    }
}

/// Checks and writes every generated vector of `area` (the `--ignored` rewrite).
pub fn write_all<'a>(
    area: &str,
    generated: impl IntoIterator<Item = (&'a str, Vector)>,
    check: impl Fn(&str, &Vector),
) {
    std::fs::create_dir_all(dir(area)).unwrap();
    for (name, vector) in generated {
        check(name, &vector);
        std::fs::write(dir(area).join(name), vector.render()).unwrap();
    }
}
