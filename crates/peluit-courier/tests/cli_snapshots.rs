//! Snapshots of the courier's `--help` texts and main error messages, through the real
//! binary. Network errors use a loopback port nobody listens on.

use std::path::Path;
use std::process::Command;

fn courier(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_peluit-courier"))
        .current_dir(dir)
        .env_remove("PELUIT_TOKEN")
        .args(args)
        .output()
        .expect("the binary runs");
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .replace(&dir.display().to_string(), "[DIR]")
}

/// A loopback port that was free a moment ago: connecting to it is refused.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, args) in [
        ("help", vec!["--help"]),
        ("help_pull", vec!["pull", "--help"]),
        ("help_push", vec!["push", "--help"]),
    ] {
        insta::assert_snapshot!(name, courier(&args, dir.path()));
    }
}

#[test]
fn main_error_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("token"), "peluit_tok_0000").expect("write");
    std::fs::write(d.join("not-a-bundle"), "hello").expect("write");
    let server = format!("http://127.0.0.1:{}", closed_port());
    let common = ["--server", server.as_str(), "--institution", "itjen-contoh"];
    let with = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(common.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        courier(&refs, d).replace(&server, "[SERVER]")
    };
    insta::assert_snapshot!("error_no_token", run(with(&["pull", "--out", "."])));
    insta::assert_snapshot!(
        "error_unreachable",
        run(with(&["pull", "--out", ".", "--token-file", "token"]))
    );
    insta::assert_snapshot!(
        "error_no_folder",
        run(with(&["pull", "--out", "missing", "--token-file", "token"]))
    );
    insta::assert_snapshot!(
        "error_not_a_bundle",
        run(with(&["push", "not-a-bundle", "--token-file", "token"]))
    );
    insta::assert_snapshot!(
        "error_not_a_bundle_json",
        run(with(&[
            "--json",
            "push",
            "not-a-bundle",
            "--token-file",
            "token"
        ]))
    );
}

#[test]
fn usage_errors_have_the_two_line_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, args) in [
        ("usage_missing_arguments", vec!["pull"]),
        ("usage_unknown_command", vec!["pul"]),
        ("usage_json", vec!["push", "--json", "x.bundle"]),
    ] {
        let out = courier(&args, dir.path());
        assert!(out.starts_with("status: 1\n"), "{out}");
        insta::assert_snapshot!(name, out);
    }
}
