//! Interoperability with the reference Go `age` CLI (Debian package `age`): what proto seals,
//! `age -d` opens to the same bytes, and what `age`/`age-keygen` make, proto opens.
//!
//! "Bring your own ciphertext" (docs/protocol.md#sealing) promises that any age tool works
//! both ways; these tests hold proto to it. They fail, not skip, when `age` is missing: run
//! `./tests/run.sh`, which installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use peluit_proto::keys::{SealIdentity, SealRecipient};
use peluit_proto::seal::{open, open_padded, padded_len, seal, seal_padded};

/// Content sizes around the STREAM chunk boundary (64 KiB) and a multi-chunk one.
const SIZES: [usize; 5] = [0, 1, 64 * 1024, 64 * 1024 + 1, 1024 * 1024];
const MAX: usize = 4 << 20;

/// Runs an age tool; panics with the next step if the tool is not installed.
fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{name}` ({e}): the Go age CLI is required for these tests; \
                 run ./tests/run.sh, which installs the Debian package `age`"
            )
        })
}

fn tool_ok(name: &str, args: &[&str]) -> Vec<u8> {
    let out = tool(name, args);
    assert!(
        out.status.success(),
        "`{name} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic, incompressible-looking content of `len` bytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64: varied bytes, so a misplaced chunk cannot go unnoticed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

struct Desk {
    dir: tempfile::TempDir,
}

impl Desk {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    /// Writes `identity` as an age identity file, as the desk keeps it.
    fn identity_file(&self, name: &str, identity: &SealIdentity) -> PathBuf {
        let text = format!("# test identity\n{}\n", &*identity.expose_secret_string());
        self.write(name, text.as_bytes())
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn keys(n: usize) -> (Vec<SealIdentity>, Vec<SealRecipient>) {
    let ids: Vec<_> = (0..n).map(|_| SealIdentity::generate()).collect();
    let rs = ids.iter().map(SealIdentity::recipient).collect();
    (ids, rs)
}

/// `age -d -i identity` on `sealed`, returning the plaintext.
fn age_decrypt(desk: &Desk, sealed: &[u8], identity: &Path) -> Vec<u8> {
    let input = desk.write("message.age", sealed);
    tool_ok("age", &["-d", "-i", s(identity), s(&input)])
}

#[test]
fn proto_sealed_messages_open_with_age_cli() {
    let desk = Desk::new();
    for n in [1, 3] {
        let (ids, rs) = keys(n);
        let id_files: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| desk.identity_file(&format!("id{n}_{i}.txt"), id))
            .collect();
        for (k, &size) in SIZES.iter().enumerate() {
            let data = content(size, (n * 10 + k) as u64);

            let raw = seal(&data, &rs).expect("seal");
            let padded = seal_padded(&data, &rs).expect("seal_padded");
            for id_file in &id_files {
                let opened = age_decrypt(&desk, &raw, id_file);
                assert!(opened == data, "seal: {n} recipients, {size} bytes");

                // The padded form: length prefix, content, zeros, P(L) bytes in all
                // (docs/protocol.md#padding).
                let opened = age_decrypt(&desk, &padded, id_file);
                let len = size as u64;
                assert_eq!(
                    opened.len() as u64,
                    padded_len(len),
                    "padded length, {size}"
                );
                assert_eq!(opened[..8], len.to_be_bytes(), "length prefix, {size}");
                assert!(opened[8..8 + size] == data, "padded content, {size}");
                assert!(opened[8 + size..].iter().all(|&b| b == 0), "zero padding");
            }
        }
        // Someone outside the recipients gets nothing.
        let (stranger, _) = keys(1);
        let stranger_file = desk.identity_file("stranger.txt", &stranger[0]);
        let sealed = seal_padded(b"laporan", &rs).expect("seal_padded");
        let input = desk.write("stranger.age", &sealed);
        let out = tool("age", &["-d", "-i", s(&stranger_file), s(&input)]);
        assert!(!out.status.success() && out.stdout.is_empty());
    }
}

/// Generates a key with `age-keygen` and reads it as the desk would.
fn keygen(desk: &Desk, name: &str) -> (SealIdentity, String) {
    let path = desk.path(name);
    tool_ok("age-keygen", &["-o", s(&path)]);
    let text = std::fs::read_to_string(&path).expect("key file");
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("age-keygen wrote a secret key line");
    let identity = SealIdentity::parse_secret(secret).expect("proto parses age-keygen's key");
    let recipient = String::from_utf8(tool_ok("age-keygen", &["-y", s(&path)]))
        .expect("UTF-8 recipient")
        .trim()
        .to_owned();
    (identity, recipient)
}

#[test]
fn age_cli_messages_open_with_proto() {
    let desk = Desk::new();
    let keys: Vec<_> = (0..3)
        .map(|i| keygen(&desk, &format!("key{i}.txt")))
        .collect();
    for (identity, recipient) in &keys {
        // One key, two spellings: proto derives the same recipient age-keygen prints.
        assert_eq!(identity.recipient().to_string(), *recipient);
        assert_eq!(
            recipient.parse::<SealRecipient>().expect("parses"),
            identity.recipient()
        );
    }
    for (k, &size) in SIZES.iter().enumerate() {
        let data = content(size, 100 + k as u64);
        let plain = desk.write("plain.bin", &data);
        for n in [1, 3] {
            let out = desk.path("cli.age");
            let mut args = vec!["-e"];
            for (_, recipient) in &keys[..n] {
                args.extend(["-r", recipient.as_str()]);
            }
            args.extend(["-o", s(&out), s(&plain)]);
            tool_ok("age", &args);
            let sealed = std::fs::read(&out).expect("age output");
            for (identity, _) in &keys[..n] {
                let opened = open(&sealed, std::slice::from_ref(identity), MAX)
                    .unwrap_or_else(|e| panic!("open: {n} recipients, {size} bytes: {e}"));
                assert!(*opened == data, "{n} recipients, {size} bytes");
            }
            // The server-side check counts Go age's stanzas (it adds no grease).
            let summary = peluit_proto::header::inspect_header(&sealed).expect("header");
            assert_eq!(summary.x25519_stanzas, n);
        }

        // A padded plaintext written by hand and sealed by Go age opens with open_padded:
        // bring-your-own ciphertext may follow the padding format too.
        let len = size as u64;
        let mut padded = len.to_be_bytes().to_vec();
        padded.extend_from_slice(&data);
        padded.resize(padded_len(len) as usize, 0);
        let plain = desk.write("padded.bin", &padded);
        let out = desk.path("padded.age");
        tool_ok("age", &["-r", &keys[0].1, "-o", s(&out), s(&plain)]);
        let sealed = std::fs::read(&out).expect("age output");
        let opened = open_padded(&sealed, std::slice::from_ref(&keys[0].0), MAX)
            .unwrap_or_else(|e| panic!("open_padded of Go-sealed {size} bytes: {e}"));
        assert!(*opened == data, "open_padded, {size} bytes");
    }
}

#[test]
fn age_cli_recipients_file_and_identity_file_interoperate() {
    // The desk writes an identity file; `age-keygen -y` turns it into a recipients file
    // that Go age seals to, and proto opens the result with the same identity.
    let desk = Desk::new();
    let (ids, _) = keys(2);
    let id_file = desk.identity_file("desk.txt", &ids[1]);
    let recipients = desk.path("recipients.txt");
    tool_ok("age-keygen", &["-y", "-o", s(&recipients), s(&id_file)]);
    let plain = desk.write("tip.txt", b"ada dugaan korupsi di dinas");
    let out = desk.path("tip.age");
    tool_ok("age", &["-R", s(&recipients), "-o", s(&out), s(&plain)]);
    let sealed = std::fs::read(&out).expect("age output");
    assert_eq!(
        &open(&sealed, &ids, MAX).expect("open")[..],
        b"ada dugaan korupsi di dinas"
    );
    assert!(matches!(
        open(&sealed, &ids[..1], MAX),
        Err(peluit_proto::Error::NoMatchingKey)
    ));
}
