//! Snapshots of the auditor's `--help` texts and of the errors that stop an audit, through
//! the real binary.

use std::path::Path;
use std::process::Command;

fn audit(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_peluit-audit"))
        .current_dir(dir)
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

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, args) in [
        ("help", vec!["--help"]),
        ("help_store", vec!["store", "--help"]),
        ("help_bundle", vec!["bundle", "--help"]),
        ("help_site", vec!["site", "--help"]),
    ] {
        insta::assert_snapshot!(name, audit(&args, dir.path()));
    }
}

#[test]
fn errors_that_stop_an_audit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::create_dir(d.join("empty")).expect("mkdir");
    std::fs::write(d.join("list.json"), "{}").expect("write");
    let key = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=";
    for (name, args) in [
        ("error_unknown_command", vec!["stor", "x"]),
        ("error_not_a_store", vec!["store", "empty"]),
        ("error_not_a_store_json", vec!["--json", "store", "empty"]),
        (
            "error_bad_pin",
            vec!["store", "empty", "--manifest-key", "itjen-uji"],
        ),
        (
            "error_bad_key",
            vec!["bundle", "list.json", "--manifest-key", "not-a-key"],
        ),
        (
            "error_bad_hashes",
            vec![
                "site",
                "http://127.0.0.1:9/",
                "--hashes",
                "list.json",
                "--manifest-key",
                key,
            ],
        ),
        (
            "error_bad_url",
            vec!["site", "lapor", "--hashes", "empty", "--manifest-key", key],
        ),
    ] {
        insta::assert_snapshot!(name, audit(&args, d));
    }
}
