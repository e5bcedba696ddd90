//! Institutions added to a running `peluit-server serve`: `institution add` plus SIGHUP
//! serves a second institution beside the first, each filing its own cases, and reloads
//! that cannot be applied live leave the served configuration exactly as it was. Tokens
//! issued and revoked while it runs take effect at the next SIGHUP, and bad token requests
//! change nothing.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use peluit_proto::bundle::{BundleReader, FrameMeta};
use peluit_proto::keys::SigningKey;
use peluit_proto::manifest::fingerprint_words;
use peluit_proto::wordlist::Language;
use serde_json::Value;

use common::{Desk, POW_BITS, report_body};

const BIN: &str = env!("CARGO_BIN_EXE_peluit-server");
const DEADLINE: Duration = Duration::from_secs(30);

const A: &str = "itjen-a";
const A_NAME: &str = "Inspektorat A";
const B: &str = "dinas-b";
const B_NAME: &str = "Inspektorat Dinas B";

fn institution_entry(id: &str, name: &str, key: &SigningKey) -> String {
    format!(
        "\n[[institution]]\nid = \"{id}\"\nname = \"{name}\"\nmanifest_key = \"{}\"\n",
        key.verifying_key()
    )
}

fn head(data_dir: &Path) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[limits]\npow_bits = {POW_BITS}\n",
        data_dir.display()
    )
}

/// A configuration file's text: `data_dir` and the institutions `(id, name, manifest key)`.
fn config_text(data_dir: &Path, institutions: &[(&str, &str, &SigningKey)]) -> String {
    let mut text = head(data_dir);
    for (id, name, key) in institutions {
        text.push_str(&institution_entry(id, name, key));
    }
    text
}

/// The arguments of `token issue` for `id`, labelled `label`.
fn token_issue<'a>(config: &'a str, id: &'a str, label: &'a str) -> [&'a str; 8] {
    [
        "token",
        "issue",
        "--config",
        config,
        "--institution",
        id,
        "--label",
        label,
    ]
}

/// Runs `institution add` for `id` against `config`, expecting success; returns its output.
fn add_institution(config: &str, id: &str, name: &str, key: &SigningKey) -> String {
    cli(&[
        "institution",
        "add",
        "--config",
        config,
        "--id",
        id,
        "--name",
        name,
        "--manifest-key",
        &key.verifying_key().to_string(),
    ])
}

fn cli_output(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PELUIT_CONFIG")
        .env_remove("PELUIT_DATA_DIR")
        .output()
        .unwrap()
}

fn cli(args: &[&str]) -> String {
    let output = cli_output(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// The server's log lines as they arrive, and a signal for each new one (or the end).
type Log = Arc<(Mutex<Vec<String>>, Condvar)>;

/// `peluit-server serve` as a child process, with its log collected line by line.
struct Server {
    child: Child,
    log: Log,
    base: String,
}

impl Server {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("PELUIT_CONFIG")
            .env_remove("PELUIT_LISTEN")
            .env_remove("PELUIT_DATA_DIR")
            .env_remove("PELUIT_POW_BITS")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log: Log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log.0.lock().unwrap().push(line);
                    log.1.notify_all();
                }
                // The server closed its log: it exited. Wake the waiters to say so.
                log.0.lock().unwrap().push(String::from("<log closed>"));
                log.1.notify_all();
            }
        });
        let mut server = Self {
            child,
            log,
            base: String::new(),
        };
        let line = server.wait_for_line("serving", 1);
        let addr = line
            .split("listen=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next();
        server.base = format!("http://{}", addr.unwrap());
        server
    }

    /// Waits, up to the deadline, until the log holds `count` lines containing `needle`;
    /// returns the last of them.
    fn wait_for_line(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + DEADLINE;
        let (lines, arrived) = &*self.log;
        let mut lines = lines.lock().unwrap();
        loop {
            let found: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= count {
                return found[count - 1].clone();
            }
            assert!(
                lines.last().is_none_or(|l| l != "<log closed>"),
                "the server exited; log: {lines:?}"
            );
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {count}× {needle:?} in the log: {lines:?}"
            );
            lines = arrived.wait_timeout(lines, left).unwrap().0;
        }
    }

    fn hangup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn api(&self, id: &str, rest: &str) -> String {
        format!("{}/api/v1/institutions/{id}{rest}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn institutions(client: &reqwest::Client, server: &Server) -> Value {
    client
        .get(format!("{}/api/v1/institutions", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn ids(list: &Value) -> Vec<String> {
    list["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Publishes `desk`'s first manifest for `id` and expects it accepted.
async fn publish(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    name: &str,
    desk: &Desk,
    token: &str,
) {
    let status = publish_status(client, server, id, name, desk, token).await;
    assert_eq!(status, 201, "publishing {id}'s manifest");
}

/// Submits a report of `content` to `id`; returns the case id and the sealed envelope.
async fn submit(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    desk: &Desk,
    content: &[u8],
) -> (String, Vec<u8>) {
    let envelope = peluit_proto::seal::seal_padded(content, &desk.recipients()).unwrap();
    let body = report_body(desk, &envelope, &[], &SigningKey::generate());
    let response = client
        .post(server.api(id, "/reports"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{id}");
    let answer: Value = response.json().await.unwrap();
    (answer["case"].as_str().unwrap().to_owned(), envelope)
}

/// Fetches the institution's export since cursor 0 with `token`.
async fn export(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    token: &str,
) -> reqwest::Response {
    client
        .get(server.api(id, "/export?since=0"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The cases in the institution's export bundle, with their envelopes.
async fn exported_cases(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    token: &str,
) -> Vec<(String, Vec<u8>)> {
    let response = export(client, server, id, token).await;
    assert_eq!(response.status(), 200, "{id}");
    let bytes = response.bytes().await.unwrap();
    BundleReader::verify(&bytes[..]).unwrap();
    let mut reader = BundleReader::new(&bytes[..]).unwrap();
    let mut cases = Vec::new();
    while let Some(mut frame) = reader.next_frame().unwrap() {
        if let FrameMeta::Case { case, .. } = frame.meta() {
            let case = case.to_string();
            cases.push((case, frame.read_payload_to_end(1 << 20).unwrap()));
        }
    }
    cases
}

fn write_config(path: &PathBuf, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_institution_is_served_after_sighup_and_bad_reloads_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("store");
    let (desk_a, desk_b) = (Desk::new(1), Desk::new(1));
    let config = dir.path().join("peluit.toml");
    let served_a = config_text(&data_dir, &[(A, A_NAME, &desk_a.manifest_key)]);
    // Both desks' tokens are issued with the store free, before the server starts (from a
    // file that already names B); tokens issued while it runs are the next test's story.
    let with_b = config_text(
        &data_dir,
        &[
            (A, A_NAME, &desk_a.manifest_key),
            (B, B_NAME, &desk_b.manifest_key),
        ],
    );
    let desk_config = dir.path().join("desk.toml");
    write_config(&desk_config, &with_b);
    let desk = desk_config.to_str().unwrap();
    let token = |id: &str| cli(&token_issue(desk, id, "meja")).trim().to_owned();
    let (token_a, token_b) = (token(A), token(B));

    write_config(&config, &served_a);
    let mut server = Server::start(&config);
    let client = reqwest::Client::new();
    publish(&client, &server, A, A_NAME, &desk_a, &token_a).await;
    assert_eq!(ids(&institutions(&client, &server).await), [A]);
    let unknown = client.get(server.api(B, "/manifest")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // B is added to the file and served after SIGHUP, without a restart.
    let added = add_institution(config.to_str().unwrap(), B, B_NAME, &desk_b.manifest_key);
    assert!(added.contains("systemctl reload peluit-server"), "{added}");
    server.hangup();
    let line = server.wait_for_line("configuration reloaded", 1);
    assert!(
        line.ends_with(&format!("configuration reloaded: added {B}")),
        "{line}"
    );
    let list = institutions(&client, &server).await;
    assert_eq!(ids(&list), [A, B]);
    let b = &list["institutions"][1];
    assert_eq!(b["name"], B_NAME);
    assert_eq!(
        b["manifest_key"],
        desk_b.manifest_key.verifying_key().to_string()
    );
    assert_eq!(b["manifest_serial"], Value::Null);

    // B's desk publishes its first manifest; A's token is no good for B.
    let wrong = client
        .post(server.api(B, "/manifests"))
        .bearer_auth(&token_a)
        .body(
            desk_b
                .manifest_for(B, B_NAME, &server.base, 1)
                .sign(&desk_b.manifest_key)
                .to_json(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    publish(&client, &server, B, B_NAME, &desk_b, &token_b).await;
    let poster = client
        .get(format!("{}/poster/{B}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(poster.status(), 200);
    let poster = poster.text().await.unwrap();
    let words = fingerprint_words(&desk_b.manifest_key.verifying_key(), Language::Id).join(" ");
    assert!(poster.contains(B_NAME) && poster.contains(&words));

    // Both receive a report in the same run; each case is filed under its own institution.
    let (case_a, envelope_a) = submit(&client, &server, A, &desk_a, b"laporan untuk A").await;
    let (case_b, envelope_b) = submit(&client, &server, B, &desk_b, b"laporan untuk B").await;
    assert_eq!(
        exported_cases(&client, &server, A, &token_a).await,
        [(case_a, envelope_a)]
    );
    assert_eq!(
        exported_cases(&client, &server, B, &token_b).await,
        [(case_b, envelope_b)]
    );
    let cross = export(&client, &server, A, &token_b).await;
    assert_eq!(cross.status(), 401);

    // Reloads that cannot be applied live: each is refused, the server keeps serving
    // exactly what it served, and keeps running.
    let good = std::fs::read_to_string(&config).unwrap();
    let before = institutions(&client, &server).await;
    let other_key = SigningKey::generate();
    let refusals = [
        ("broken file", format!("{good}\nlisten = ")),
        (
            "A removed",
            config_text(&data_dir, &[(B, B_NAME, &desk_b.manifest_key)]),
        ),
        (
            "A's key changed",
            config_text(
                &data_dir,
                &[(A, A_NAME, &other_key), (B, B_NAME, &desk_b.manifest_key)],
            ),
        ),
        (
            "a new institution with a start-only limit changed",
            format!(
                "{}\n[[institution]]\nid = \"dinas-c\"\nname = \"C\"\nmanifest_key = \"{}\"\n",
                good.replace("[limits]\n", "[limits]\nconcurrency = 8\n"),
                other_key.verifying_key()
            ),
        ),
    ];
    for (n, (what, text)) in refusals.iter().enumerate() {
        write_config(&config, text);
        server.hangup();
        let line = server.wait_for_line("configuration reload refused", n + 1);
        assert!(line.contains("previous configuration"), "{what}: {line}");
        assert_eq!(institutions(&client, &server).await, before, "{what}");
        let manifest = client.get(server.api(A, "/manifest")).send().await.unwrap();
        assert_eq!(manifest.status(), 200, "{what}");
        assert!(server.child.try_wait().unwrap().is_none(), "{what}");
    }
    assert_eq!(server.count("configuration reloaded"), 1);
    submit(&client, &server, A, &desk_a, b"masih berjalan").await;
    submit(&client, &server, B, &desk_b, b"masih berjalan").await;
}

/// The names in the data directory's token request spool, sorted.
fn spooled(data_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir.join("token-requests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Publishes `desk`'s first manifest for `id`; returns the HTTP status.
async fn publish_status(
    client: &reqwest::Client,
    server: &Server,
    id: &str,
    name: &str,
    desk: &Desk,
    token: &str,
) -> u16 {
    let manifest = desk
        .manifest_for(id, name, &server.base, 1)
        .sign(&desk.manifest_key);
    let response = client
        .post(server.api(id, "/manifests"))
        .bearer_auth(token)
        .body(manifest.to_json())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_and_revoked_while_serving_apply_at_the_next_reload() {
    use peluit_store::CiphertextStore as _;
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("store");
    let (desk_a, desk_b, desk_c) = (Desk::new(1), Desk::new(1), Desk::new(1));
    let config = dir.path().join("peluit.toml");
    let config_arg = config.to_str().unwrap().to_owned();
    write_config(
        &config,
        &config_text(&data_dir, &[(A, A_NAME, &desk_a.manifest_key)]),
    );
    let issue = |config: &str, id: &str| cli_output(&token_issue(config, id, "meja-1"));
    // With the server stopped the store is free: the token is stored at once.
    let output = issue(&config_arg, A);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("valid now"));
    let token_a = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let server = Server::start(&config);
    let client = reqwest::Client::new();
    publish(&client, &server, A, A_NAME, &desk_a, &token_a).await;
    add_institution(&config_arg, B, B_NAME, &desk_b.manifest_key);
    server.hangup();
    server.wait_for_line("configuration reloaded", 1);

    // B's desk token, issued while the server holds the store: printed once, spooled as
    // its hash only, and not valid before the next reload.
    let output = issue(&config_arg, B);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("valid at the next `systemctl reload peluit-server`"),
        "{said}"
    );
    let token_b = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(token_b.starts_with("peluit_tok_"));
    let hash_b = hex::encode(peluit_server::tokens::token_hash(&token_b));
    let request = format!("issue-{hash_b}.json");
    assert_eq!(spooled(&data_dir), std::slice::from_ref(&request));
    let spool = data_dir.join("token-requests");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&spool), mode(&spool.join(&request))), (0o700, 0o600));
    let bytes = std::fs::read_to_string(spool.join(&request)).unwrap();
    assert!(!bytes.contains(&token_b["peluit_tok_".len()..]), "{bytes}");
    assert_eq!(
        publish_status(&client, &server, B, B_NAME, &desk_b, &token_b).await,
        401
    );
    // `token list` reads the store, which the server holds: refused, saying why.
    let list = cli_output(&["token", "list", "--config", &config_arg, "--institution", B]);
    let why = String::from_utf8_lossy(&list.stderr);
    assert!(!list.status.success());
    assert!(
        why.contains("the running server holds the store (1 token request(s) wait"),
        "{why}"
    );

    server.hangup();
    let line = server.wait_for_line("configuration reloaded", 2);
    assert!(
        line.ends_with("configuration reloaded: nothing changed"),
        "{line}"
    );
    assert_eq!(
        server.count("token requests: 1 issued, 0 revoked, 0 not applied"),
        1
    );
    assert!(spooled(&data_dir).is_empty());
    // B's token now publishes B's first manifest and pulls B's export.
    publish(&client, &server, B, B_NAME, &desk_b, &token_b).await;
    let (case_b, envelope_b) = submit(&client, &server, B, &desk_b, b"laporan untuk B").await;
    assert_eq!(
        exported_cases(&client, &server, B, &token_b).await,
        [(case_b, envelope_b)]
    );

    // One reload carries a configuration change, B's revocation and three bad requests:
    // one for an institution the server does not serve, a corrupt file and a stray file.
    let desk_config = dir.path().join("desk.toml");
    let served = std::fs::read_to_string(&config).unwrap();
    write_config(
        &desk_config,
        &format!(
            "{served}{}",
            institution_entry("dinas-c", "C", &desk_c.manifest_key)
        ),
    );
    let output = issue(desk_config.to_str().unwrap(), "dinas-c");
    assert!(output.status.success());
    let token_c = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let corrupt = format!("issue-{}.json", "05".repeat(32));
    std::fs::write(spool.join(&corrupt), format!("{{\"label\":\"{token_c}\"")).unwrap();
    std::fs::write(spool.join("catatan.txt"), "rahasia").unwrap();
    let token_file = dir.path().join("b.token");
    std::fs::write(&token_file, &token_b).unwrap();
    let output = cli_output(&[
        "token",
        "revoke",
        "--config",
        &config_arg,
        "--institution",
        B,
        "--token-file",
        token_file.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(said.contains("works until then"), "{said}");
    // Until the reload, the token still works.
    assert_eq!(exported_cases(&client, &server, B, &token_b).await.len(), 1);
    write_config(&config, &served.replace(A_NAME, "Inspektorat A Baru"));

    server.hangup();
    let line = server.wait_for_line("configuration reloaded", 3);
    assert!(
        line.ends_with(&format!("configuration reloaded: renamed {A}")),
        "{line}"
    );
    assert_eq!(
        server.count("token requests: 0 issued, 1 revoked, 3 not applied"),
        1
    );
    assert_eq!(
        server.count(&format!("{corrupt} not applied and left in place")),
        1
    );
    assert_eq!(server.count("catatan.txt not applied and left in place"), 1);
    assert_eq!(server.count("institution dinas-c is not served"), 1);
    assert_eq!(server.count("rahasia") + server.count(&token_c[11..]), 0);
    let list = institutions(&client, &server).await;
    assert_eq!(list["institutions"][0]["name"], "Inspektorat A Baru");
    let refused = export(&client, &server, B, &token_b).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        publish_status(&client, &server, B, B_NAME, &desk_b, &token_b).await,
        401
    );
    let hash_c = hex::encode(peluit_server::tokens::token_hash(&token_c));
    let c_request = format!("issue-{hash_c}.json");
    let mut left = vec!["catatan.txt".to_owned(), c_request, corrupt];
    left.sort();
    assert_eq!(spooled(&data_dir), left);
    // A's token, stored before the server started, was never touched.
    assert_eq!(exported_cases(&client, &server, A, &token_a).await.len(), 0);
    drop(server);

    // Nothing was half-applied: with the server stopped, the store holds A's token only.
    let store = peluit_store::SledStore::open(&data_dir).unwrap();
    let count = |id: &str| store.tokens(&id.parse().unwrap()).unwrap().len();
    assert_eq!((count(A), count(B), count("dinas-c")), (1, 0, 0));
    drop(store);

    // A server that starts serving C applies C's waiting request before it serves.
    let server = Server::start(&desk_config);
    assert_eq!(
        server.count("token requests: 1 issued, 0 revoked, 2 not applied"),
        1
    );
    publish(&client, &server, "dinas-c", "C", &desk_c, &token_c).await;
    drop(server);
    // With the server stopped, `token list` reads the store itself.
    let listed = cli(&[
        "token",
        "list",
        "--config",
        desk_config.to_str().unwrap(),
        "--institution",
        "dinas-c",
    ]);
    assert!(listed.starts_with(&hash_c), "{listed}");
    assert_eq!(spooled(&data_dir).len(), 2);
}

/// A stop sent as soon as the server says it is serving ends it cleanly (exit status 0,
/// `shutting down` in the log), for SIGTERM (systemd's stop) and SIGINT (Ctrl-C).
#[test]
fn a_stop_right_after_serving_is_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("peluit.toml");
    let desk = Desk::new(1);
    let data_dir = dir.path().join("store");
    write_config(
        &config,
        &config_text(&data_dir, &[(A, A_NAME, &desk.manifest_key)]),
    );
    for which in ["-TERM", "-INT"] {
        let mut server = Server::start(&config);
        server.signal(which);
        let status = server.child.wait().unwrap();
        assert!(status.success(), "{which}: {status}");
        server.wait_for_line("shutting down", 1);
    }
}
