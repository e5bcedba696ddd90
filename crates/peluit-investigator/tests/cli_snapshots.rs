//! Snapshots of the desk's `--help` texts and of its main error messages, run through the
//! real binary: what an investigator reads must not change by accident.

use std::path::Path;
use std::process::Command;

fn desk(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_peluit-investigator"))
        .current_dir(dir)
        .env_remove("PELUIT_DESK")
        .env_remove("PELUIT_PASSPHRASE")
        .env("PELUIT_DANGEROUSLY_LOW_KDF_COST", "1")
        .args(["--today", "2026-03-14"])
        .args(args)
        .output()
        .expect("the binary runs");
    let text = format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    text.replace(&dir.display().to_string(), "[DIR]")
}

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, args) in [
        ("help", vec!["--help"]),
        ("help_import", vec!["import", "--help"]),
        ("help_keygen", vec!["keygen", "--help"]),
        ("help_manifest", vec!["manifest", "--help"]),
        ("help_reply", vec!["reply", "--help"]),
        ("help_status", vec!["status", "--help"]),
    ] {
        insta::assert_snapshot!(name, desk(&args, dir.path()));
    }
}

#[test]
fn main_error_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    std::fs::write(d.join("pass"), "kuda hijau makan rumput pagi").expect("write");
    std::fs::write(d.join("wrong"), "bukan passphrase yang benar").expect("write");
    std::fs::write(d.join("short"), "pendek").expect("write");
    std::fs::write(d.join("not-a-bundle"), "age-encryption.org/v1\n").expect("write");
    insta::assert_snapshot!("error_no_desk", desk(&["cases", "list"], d));
    insta::assert_snapshot!(
        "error_weak_passphrase",
        desk(
            &[
                "--passphrase-file",
                "short",
                "keygen",
                "escrow",
                "--out",
                "e.key"
            ],
            d
        )
    );
    let made = desk(
        &[
            "--passphrase-file",
            "pass",
            "keygen",
            "manifest-key",
            "--out",
            "m.key",
        ],
        d,
    );
    let public = std::fs::read_to_string(d.join("m.key.public.json")).expect("public key");
    assert!(made.starts_with("status: 0"), "{made}");
    let init = desk(
        &[
            "--desk",
            "desk",
            "init",
            "--institution",
            "itjen-contoh",
            "--manifest-key",
            public.trim(),
        ],
        d,
    );
    assert!(init.starts_with("status: 0"), "{init}");
    insta::assert_snapshot!(
        "error_no_manifest",
        desk(&["--desk", "desk", "manifest", "show"], d)
    );
    insta::assert_snapshot!(
        "error_no_key_file",
        desk(
            &[
                "--desk",
                "desk",
                "--passphrase-file",
                "pass",
                "import",
                "not-a-bundle"
            ],
            d
        )
    );
    let made = desk(
        &[
            "--desk",
            "desk",
            "--passphrase-file",
            "pass",
            "keygen",
            "investigator",
            "--holder",
            "investigator:ani",
        ],
        d,
    );
    assert!(made.starts_with("status: 0"), "{made}");
    insta::assert_snapshot!(
        "error_wrong_passphrase",
        desk(
            &[
                "--desk",
                "desk",
                "--passphrase-file",
                "wrong",
                "import",
                "not-a-bundle"
            ],
            d
        )
    );
    insta::assert_snapshot!(
        "error_not_a_bundle",
        desk(
            &[
                "--desk",
                "desk",
                "--passphrase-file",
                "pass",
                "import",
                "not-a-bundle"
            ],
            d
        )
    );
    insta::assert_snapshot!(
        "error_not_a_bundle_json",
        desk(
            &[
                "--desk",
                "desk",
                "--json",
                "--passphrase-file",
                "pass",
                "import",
                "not-a-bundle"
            ],
            d
        )
    );
    insta::assert_snapshot!(
        "error_no_such_case",
        desk(&["--desk", "desk", "status", "abcd1234", "closed"], d)
    );
    insta::assert_snapshot!(
        "error_bad_status",
        desk(&["--desk", "desk", "status", "abcd", "done"], d)
    );
}

#[test]
fn usage_errors_have_the_two_line_shape() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    for (name, args) in [
        ("usage_missing_argument", vec!["import"]),
        ("usage_unknown_command", vec!["imprt", "x.bundle"]),
        ("usage_unknown_option", vec!["--bogus", "cases", "list"]),
        ("usage_missing_value", vec!["cases", "list", "--desk"]),
        ("usage_missing_command", vec!["manifest"]),
        ("usage_json", vec!["--json", "status", "abcd"]),
    ] {
        let out = desk(&args, d);
        assert!(out.starts_with("status: 1\n"), "{out}");
        insta::assert_snapshot!(name, out);
    }
    assert!(
        !d.join("peluit-desk").exists(),
        "a refused command line changes nothing"
    );
}
