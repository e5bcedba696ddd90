//! The binary as a user runs it: the README's `demo` command comes up and describes
//! itself in demo.json; `serve` refuses bad configuration with a clear next step; tokens
//! are issued, listed and revoked against a real store.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_peluit-server");

#[test]
fn demo_serves_the_page_and_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut page_line = None;
    while started.elapsed() < Duration::from_secs(60) {
        match lines.next() {
            Some(Ok(line)) if line.contains("reporter page:") => {
                page_line = Some(line);
                break;
            }
            Some(Ok(_)) => continue,
            _ => break,
        }
    }
    let description: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("demo.json")).unwrap()).unwrap();
    let page = description["page_url"].as_str().unwrap().to_owned();
    assert!(page_line.unwrap().contains(&page));
    assert_eq!(description["demo"], true);
    assert_eq!(
        description["manifest_key_fingerprint_words"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    for key in [
        "desk_identity",
        "reply_signing_key",
        "manifest",
        "token",
        "escrow_identity",
    ] {
        let path = description["files"][key].as_str().unwrap();
        assert!(std::path::Path::new(path).exists(), "{key}");
    }
    let token = std::fs::read_to_string(description["files"]["token"].as_str().unwrap()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let html = client.get(&page).send().await.unwrap();
        assert_eq!(html.status(), 200);
        let manifest = client
            .get(format!(
                "{}institutions/demo-inspektorat/manifest",
                description["api_url"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let on_disk = std::fs::read(description["files"]["manifest"].as_str().unwrap()).unwrap();
        assert!(
            manifest.as_ref() == on_disk.as_slice(),
            "the served manifest is the one on disk"
        );
        let export = client
            .get(format!(
                "{}institutions/demo-inspektorat/export",
                description["api_url"].as_str().unwrap()
            ))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(export.status(), 200, "the demo token works");
    });
    child.kill().unwrap();
    let _ = child.wait();
}

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("PELUIT_CONFIG")
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("utf-8 output"),
        String::from_utf8(output.stderr).expect("utf-8 errors"),
    )
}

#[test]
fn bad_configuration_is_refused_with_a_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let (ok, _, err) = run(&["serve", "--config", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("cannot read the config file") && err.contains("--config"),
        "{err}"
    );
    let config = dir.path().join("peluit.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ndata_dir = \"x\"\nlisten_port = 3\n",
    )
    .unwrap();
    let (ok, _, err) = run(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("unknown field"), "{err}");
    let (ok, _, err) = run(&[
        "demo",
        "--listen",
        "0.0.0.0:0",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("loopback") && err.contains("serve --config"),
        "{err}"
    );
}

#[test]
fn tokens_are_issued_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let key = peluit_proto::keys::SigningKey::generate().verifying_key();
    let config = dir.path().join("peluit.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[[institution]]\nid = \"itjen\"\n\
             name = \"Itjen\"\nmanifest_key = \"{key}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (ok, token, err) = run(&[
        "token",
        "issue",
        "--config",
        config,
        "--institution",
        "itjen",
        "--label",
        "meja-1",
    ]);
    assert!(ok, "{err}");
    let token = token.trim();
    assert!(
        token.starts_with("peluit_tok_") && token.len() == 75,
        "{token}"
    );
    let list_tokens = || {
        run(&[
            "token",
            "list",
            "--config",
            config,
            "--institution",
            "itjen",
        ])
    };
    let (ok, list, _) = list_tokens();
    assert!(ok);
    let hash = hex::encode(peluit_server::tokens::token_hash(token));
    assert!(list.contains(&hash) && list.contains("meja-1"), "{list}");
    assert!(!list.contains(token));
    let (ok, _, err) = run(&[
        "token",
        "issue",
        "--config",
        config,
        "--institution",
        "other",
        "--label",
        "x",
    ]);
    assert!(!ok && err.contains("not in the configuration"), "{err}");
    let revoke = || {
        run(&[
            "token",
            "revoke",
            "--config",
            config,
            "--institution",
            "itjen",
            "--hash",
            &hash,
        ])
    };
    let (ok, _, err) = revoke();
    assert!(ok, "{err}");
    let (_, list, _) = list_tokens();
    assert!(!list.contains(&hash));
    let (ok, _, err) = revoke();
    assert!(!ok && err.contains("token list"), "{err}");
}

#[test]
fn institution_add_appends_only_a_configuration_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    let first = peluit_proto::keys::SigningKey::generate().verifying_key();
    let second = peluit_proto::keys::SigningKey::generate().verifying_key();
    let path = dir.path().join("peluit.toml");
    let original = format!(
        "# the inspectorate's server\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\
         [[institution]]\nid = \"itjen\"\nname = \"Itjen\"\nmanifest_key = \"{first}\"\n",
        dir.path().join("store").display()
    );
    std::fs::write(&path, &original).unwrap();
    let config = path.to_str().unwrap();
    let add = |id: &str, name: &str, key: &str| {
        run(&[
            "institution",
            "add",
            "--config",
            config,
            "--id",
            id,
            "--name",
            name,
            "--manifest-key",
            key,
        ])
    };

    // Refused: a duplicate id, a bad key, a bad id, a two-line name. Nothing changes.
    for (id, name, key, why) in [
        ("itjen", "Lagi", second.to_string(), "configured twice"),
        (
            "dinas-pu",
            "Dinas PU",
            "bukan-kunci".to_owned(),
            "not added",
        ),
        ("Dinas PU", "Dinas PU", second.to_string(), "not added"),
        ("dinas-pu", "Dinas\nPU", second.to_string(), "one line"),
    ] {
        let (ok, _, err) = add(id, name, &key);
        assert!(!ok && err.contains(why), "{id}: {err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    }
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left");

    let (ok, out, err) = add("dinas-pu", "Dinas \"PU\" Kabupaten", &second.to_string());
    assert!(ok, "{err}");
    assert!(out.contains("dinas-pu") && out.contains("restart"), "{out}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&original), "the file is only appended to");
    let loaded =
        peluit_server::config::Config::load(Some(&path), |_| None, &Default::default()).unwrap();
    let ids: Vec<&str> = loaded.institutions.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["itjen", "dinas-pu"]);
    assert_eq!(loaded.institutions[1].name, "Dinas \"PU\" Kabupaten");
    assert_eq!(loaded.institutions[1].manifest_key, second);
    // The new institution is usable at once by the other commands.
    let (ok, token, err) = run(&[
        "token",
        "issue",
        "--config",
        config,
        "--institution",
        "dinas-pu",
        "--label",
        "meja-pu",
    ]);
    assert!(ok && token.trim().starts_with("peluit_tok_"), "{err}");
}
