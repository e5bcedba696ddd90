//! Every shell command of `README.md` and `docs/*.md` runs here, in its doc's order, against
//! the built binaries and a real server on loopback; what cannot run here is listed with why.
//!
//! Rules. A fence tagged `sh`, `bash`, `shell` or `console` holds commands: in `console`,
//! the lines starting with `$ `; in the others, every line that is not blank or a `#`
//! comment. A line ending in `\` continues on the next; a trailing ` # comment` is not part
//! of the command. Any other fence (untagged, `text`, `toml`…) must not start a line with a
//! command word (see [`COMMAND_WORDS`]): tag it `sh` so that it runs.
//!
//! A section whose heading's anchor starts with `#panduan` or `#ringkasan` is an Indonesian
//! guide to the English text that follows it: its commands are not run again, but each must
//! be a command the same doc runs, so that the two languages cannot drift apart.
//!
//! Each doc runs in its own scratch folder, one command after the other as in one terminal
//! session (exports and `cd` carry over). System paths (`/etc/`, `/var/`…) are moved under
//! a scratch root, and placeholders take the values of [`PLACEHOLDERS`]. A command either
//! runs and must succeed, or is in [`NOT_RUN`] with its reason; an entry of either table
//! that no doc uses any more fails the test, so neither list can rot.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::SigningKey;
use peluit_proto::manifest::{SignedManifest, VerifiedManifest, VerifyPolicy};
use peluit_server::config::{Institution, Limits};
use peluit_server::state::today;
use peluit_server::tokens::IssuedToken;
use peluit_store::{CiphertextStore, ManifestBytes, SledStore, TokenHash};
use serde_json::Value;
use sha2::Digest as _;

mod common;

/// Where the server of the desk's story keeps its store: the documented `data_dir`, under
/// the scratch root.
const STORE: &str = "root/var/lib/peluit/store";

/// Fence tags whose content is shell commands.
const SHELL_FENCES: &[&str] = &["sh", "bash", "shell", "console"];

/// Words that start a command. A line of a fence not tagged as shell that starts with one
/// of them (followed by a space and an argument) is a command hidden from this test.
const COMMAND_WORDS: &[&str] = &[
    "peluit-server",
    "peluit-investigator",
    "peluit-courier",
    "peluit-audit",
    "cargo",
    "systemctl",
    "apt-get",
    "apt",
    "install",
    "sudo",
    "export",
    "deploy/",
    "./",
];

/// The passphrase of every key file the desk commands make (they read it from
/// `$PELUIT_PASSPHRASE`, the desk's documented non-terminal input).
const PASSPHRASE: &str = "kuda hijau makan rumput pagi";

/// Doc commands that do not run here, each matched exactly, with the reason.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "systemctl reload peluit-server",
        "needs systemd as PID 1 and the installed server; crates/peluit-server/tests/reload.rs \
         sends SIGHUP to the real binary and checks what a reload applies, token requests \
         included",
    ),
    (
        "curl -fsS http://127.0.0.1:8080/healthz",
        "needs the installed server on 127.0.0.1:8080; the server's route tests check /healthz",
    ),
    (
        "systemctl show -p ActiveState -p NRestarts peluit-server",
        "needs systemd running as PID 1",
    ),
    (
        "grep -E '^ ?(WARN|ERROR) ' /var/log/peluit/server.log",
        "reads the log of a server run by the unit (and exits 1 when the log is clean); the \
         log's lines are the server's own (crates/peluit-server/src/logging.rs)",
    ),
    (
        "grep -o 'route=[^ ]* status=[0-9]*' /var/log/peluit/server.log.1 | sort | uniq -c",
        "reads yesterday's log, rotated by logrotate on the installed system",
    ),
    (
        "curl -fsS http://127.0.0.1:8080/api/v1/institutions/itjen-contoh/manifest | grep -o '\"valid_until\":\"[0-9-]*\"'",
        "needs the installed server on 127.0.0.1:8080 with a published manifest",
    ),
    (
        "./tests/run.sh",
        "the whole test command: it runs this test, so running it here would recurse",
    ),
    (
        "cargo build --locked --release -p peluit-server",
        "a release build takes minutes on the 2-core machine; this test builds the same \
         binaries with `cargo build` (debug) first and runs those",
    ),
    (
        "systemd-sysusers && systemd-tmpfiles --create",
        "creates the peluit user and folders on the real system; deploy/check.sh checks the \
         unit files with systemd-analyze",
    ),
    (
        "systemctl daemon-reload && systemctl enable --now peluit-server",
        "needs systemd running as PID 1; deploy/check.sh runs the server under the unit's \
         restrictions instead",
    ),
    (
        "systemd-analyze security peluit-server",
        "needs the unit loaded by a running systemd; deploy/check.sh runs `systemd-analyze \
         security --offline=true` on deploy/systemd/peluit-server.service",
    ),
    (
        "systemctl stop peluit-server",
        "needs systemd running as PID 1; where this test runs a server (the desk's and the \
         auditor's story) it stops that server instead",
    ),
    (
        "systemctl start peluit-server",
        "needs systemd running as PID 1; where this test runs a server (the desk's and the \
         auditor's story) it starts that server again instead",
    ),
    (
        "peluit-audit site http://<56>.onion/ --proxy socks5h://127.0.0.1:9050 --hashes crates/peluit-server/assets --manifest-key <manifest key>",
        "needs Tor and a published onion service; its flags are parsed with --help",
    ),
    (
        "apt-get install nginx libnginx-mod-http-headers-more-filter",
        "installs system packages; deploy/check.sh installs them when missing",
    ),
    (
        "editor /etc/nginx/nginx.conf",
        "an interactive edit of server_name and the Onion-Location address",
    ),
    (
        "nginx -t && systemctl reload nginx",
        "needs the certificate in /etc/peluit/tls and a running nginx; deploy/check.sh runs \
         `nginx -t -c` on the file with a throwaway certificate, then starts it for real",
    ),
    (
        "apt-get install tor",
        "installs a system package; deploy/check.sh installs it when missing",
    ),
    (
        "systemctl restart tor",
        "needs systemd running as PID 1; deploy/check.sh runs `tor --verify-config` on the file",
    ),
    (
        "cat /var/lib/tor/peluit/hostname",
        "tor writes the file when it first starts the onion service",
    ),
    (
        "lvcreate --snapshot --size 5G --name peluit-snap /dev/vg0/var",
        "needs an LVM volume group and root on the real system",
    ),
    (
        "mount -o ro /dev/vg0/peluit-snap /mnt/peluit-snap",
        "needs the LVM snapshot of the line before",
    ),
    (
        "deploy/backup.sh --data-dir /mnt/peluit-snap/lib/peluit/store --out /backup/peluit-$(date +%F).tar",
        "reads the LVM snapshot, which cannot be made here; the same script runs on the \
         stopped store just above",
    ),
    (
        "umount /mnt/peluit-snap && lvremove -y /dev/vg0/peluit-snap",
        "needs the LVM snapshot made above",
    ),
];

/// Doc commands that serve until stopped: started, asked for the page they print, then
/// stopped with SIGTERM. Each runs as the command given with it, for the reason given.
const SERVES: &[(&str, &str, &str)] = &[(
    "cargo run --locked --release -p peluit-server -- demo",
    "peluit-server demo --listen 127.0.0.1:0",
    "the binary cargo test built (a release build takes minutes), on a port the system \
     picks since 8080 may be taken on a shared machine",
)];

/// What a placeholder of the docs becomes.
enum Becomes {
    /// This text, with `{root}`, `{bin}`, `{server}`, `{uid}` and `{gid}` filled in.
    Text(&'static str),
    /// Computed from what the commands before it made.
    From(fn(&mut World) -> Result<String, String>),
}

/// A placeholder: the text in the docs, what it becomes, and why.
struct Placeholder {
    text: &'static str,
    value: Becomes,
    why: &'static str,
}

/// Placeholders, tried in this order at each position of a command (the first that
/// matches wins; one pass, so a value is never substituted again). Texts starting with `/`
/// match only at the start of a word.
const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder {
        text: "/backup/peluit-2026-11-28.tar",
        value: Becomes::Text("{root}/backup/peluit-$(date +%F).tar"),
        why: "the backup the block before made today",
    },
    Placeholder {
        text: "target/release/",
        value: Becomes::Text("{bin}/"),
        why: "the binaries this test built (debug profile)",
    },
    Placeholder {
        text: "/etc/",
        value: Becomes::Text("{root}/etc/"),
        why: "system paths go under the scratch root",
    },
    Placeholder {
        text: "/usr/",
        value: Becomes::Text("{root}/usr/"),
        why: "system paths go under the scratch root",
    },
    Placeholder {
        text: "/var/",
        value: Becomes::Text("{root}/var/"),
        why: "system paths go under the scratch root",
    },
    Placeholder {
        text: "/backup/",
        value: Becomes::Text("{root}/backup/"),
        why: "the backup disk, under the scratch root",
    },
    Placeholder {
        text: "/srv/",
        value: Becomes::Text("{root}/srv/"),
        why: "the auditor's folder, under the scratch root",
    },
    Placeholder {
        text: "/media/",
        value: Becomes::Text("{root}/media/"),
        why: "the USB stick and the safe, under the scratch root",
    },
    Placeholder {
        text: "runuser -u peluit -- ",
        value: Becomes::Text(""),
        why: "there is no peluit user here (systemd-sysusers makes it): the command runs as \
              the test's user",
    },
    Placeholder {
        text: "-g peluit ",
        value: Becomes::Text(""),
        why: "there is no peluit group here (systemd-sysusers makes it)",
    },
    Placeholder {
        text: "--owner peluit:peluit",
        value: Becomes::Text("--owner {uid}:{gid}"),
        why: "there is no peluit user here: the restored store goes to the test's user",
    },
    Placeholder {
        text: "https://lapor.contoh.go.id",
        value: Becomes::Text("{server}"),
        why: "the real server this test runs on a loopback port",
    },
    Placeholder {
        text: "http://<56>.onion",
        value: Becomes::Text(
            "http://peluitcontohonionaddressforthedocstestaaaaaaaaaaaaaaaaaa.onion",
        ),
        why: "a well-formed v3 onion address (56 base32 characters)",
    },
    Placeholder {
        text: "<base64>",
        value: Becomes::From(World::manifest_public_key),
        why: "the public key `keygen manifest-key` printed",
    },
    Placeholder {
        text: "<manifest key>",
        value: Becomes::From(World::manifest_public_key),
        why: "the public key `keygen manifest-key` printed (what the poster publishes)",
    },
    Placeholder {
        text: "<hex from list>",
        value: Becomes::From(World::listed_token_hash),
        why: "a hash `token list` printed: the token that is not in courier.token, which the \
              next line revokes",
    },
    Placeholder {
        text: "<case>",
        value: Becomes::From(World::case_prefix),
        why: "the first 8 hex digits of the case the desk imported",
    },
];

/// Docs that go on in another doc's scratch folder, right after it, and why.
const CONTINUES: &[(&str, &str, &str)] = &[(
    "docs/auditing.md",
    "docs/desk.md",
    "the auditor checks the server, the USB stick and the store of the desk's story",
)];

/// Files the docs expect the reader to have written, made in each scratch folder.
const FILES: &[(&str, &str)] = &[
    ("balasan.txt", "Terima kasih. Laporan Anda kami terima.\n"),
    (
        "penerusan.txt",
        "Laporan Anda kami teruskan ke Inspektorat Jenderal.\n",
    ),
    (
        "surat-panggilan.pdf",
        "%PDF-1.4 a letter for the reporter\n",
    ),
];

/// Folders a Debian system has, made under the scratch root.
const ROOT_DIRS: &[&str] = &[
    "usr/local/bin",
    "usr/lib/sysusers.d",
    "usr/lib/tmpfiles.d",
    "etc/systemd/system",
    "etc/logrotate.d",
    "etc/nginx",
    "etc/tor",
    "var/lib/peluit",
    "backup",
    "media/usb",
    "media/safe",
];

/// Folders of the checkout a doc names, linked into each scratch folder.
const CHECKOUT: &[&str] = &["deploy", "crates"];

/// `editor` and `$EDITOR` in the scratch folder: makes the edit each doc asks for, and
/// refuses a file it has no edit for, so that a new `editor` line fails until taught here.
const EDITOR: &str = r#"#!/bin/sh
# The edits the docs' comments ask for.
set -eu
case "$1" in
  */etc/peluit/peluit.toml)
    sed -i "s|REPLACE_WITH_THE_MANIFEST_KEY_FROM_THE_DESK|$DOCS_TEST_MANIFEST_KEY|" "$1" ;;
  *peluit-desk/.tmp-*-draft.txt)
    printf 'Mohon kirimkan salinan kontraknya.\n# a comment line the desk drops\n' >"$1" ;;
  *)
    echo "the docs test's editor has no edit for $1" >&2; exit 1 ;;
esac
"#;

/// A shell command of a doc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DocCommand {
    file: String,
    line: usize,
    text: String,
    /// In an Indonesian guide section (see the module's rules).
    translated: bool,
}

/// Anchors that open an Indonesian guide section.
const TRANSLATION_ANCHORS: &[&str] = &["{#panduan", "{#ringkasan"];

/// The level of a markdown heading line (`## …` is 2), if it is one.
fn heading_level(line: &str) -> Option<usize> {
    let level = line.chars().take_while(|&c| c == '#').count();
    (level > 0 && line[level..].starts_with(' ')).then_some(level)
}

/// Every command of `markdown` (named `file`), and every line of a non-shell fence that
/// looks like a command.
fn extract(file: &str, markdown: &str) -> (Vec<DocCommand>, Vec<String>) {
    let mut commands = Vec::new();
    let mut hidden = Vec::new();
    let mut fence: Option<(String, String)> = None; // (indent, tag)
    let mut pending: Option<(usize, String)> = None;
    // The level of the heading that opened the Indonesian guide section we are in.
    let mut translation: Option<usize> = None;
    for (index, raw) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start();
        if fence.is_none()
            && let Some(level) = heading_level(raw)
        {
            if translation.is_some_and(|open| level <= open) {
                translation = None;
            }
            if translation.is_none() && TRANSLATION_ANCHORS.iter().any(|a| raw.contains(a)) {
                translation = Some(level);
            }
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            match fence {
                None => {
                    let indent = raw[..raw.len() - trimmed.len()].to_owned();
                    let tag = info.split_whitespace().next().unwrap_or("").to_owned();
                    fence = Some((indent, tag));
                }
                Some(_) => {
                    if let Some((line, text)) = pending.take() {
                        hidden.push(format!(
                            "{file}:{line}: the fence ends after a `\\`: {text}"
                        ));
                    }
                    fence = None;
                }
            }
            continue;
        }
        let Some((indent, tag)) = &fence else {
            continue;
        };
        let line = raw
            .strip_prefix(indent.as_str())
            .unwrap_or(raw.trim_start());
        if !SHELL_FENCES.contains(&tag.as_str()) {
            let word_line = line.trim_start();
            let word_line = word_line.strip_prefix("$ ").unwrap_or(word_line);
            if looks_like_command(word_line) {
                hidden.push(format!(
                    "{file}:{number}: a command in a fence tagged {tag:?}: tag the fence `sh` \
                     so that it runs: {word_line}"
                ));
            }
            continue;
        }
        let line = if let Some((start, mut text)) = pending.take() {
            text.push(' ');
            text.push_str(line.trim());
            (start, text)
        } else {
            let body = if tag == "console" {
                match line.trim_start().strip_prefix("$ ") {
                    Some(body) => body,
                    None => continue,
                }
            } else {
                line
            };
            let body = body.trim();
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            (number, body.to_owned())
        };
        let (start, text) = line;
        let text = strip_comment(&text);
        if let Some(continued) = text.strip_suffix('\\') {
            pending = Some((start, continued.trim_end().to_owned()));
        } else {
            commands.push(DocCommand {
                file: file.to_owned(),
                line: start,
                text,
                translated: translation.is_some(),
            });
        }
    }
    (commands, hidden)
}

fn looks_like_command(line: &str) -> bool {
    COMMAND_WORDS.iter().any(|word| {
        line.strip_prefix(word).is_some_and(|rest| {
            let rest = if word.ends_with('/') {
                rest.split_once(' ').map_or("", |(_, r)| r)
            } else {
                rest.strip_prefix(' ').unwrap_or("")
            };
            rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '-' || c == '.')
                || (word.ends_with('/') && !line.contains(' '))
        })
    })
}

/// The command without a trailing ` # comment` (a `#` after a blank, outside quotes).
fn strip_comment(text: &str) -> String {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return text[..at].trim_end().to_owned(),
            _ => {}
        }
        previous = c;
    }
    text.trim_end().to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The docs, README first, then `docs/*.md` by name.
fn docs() -> Vec<(String, String)> {
    let repo = repo();
    let mut names: Vec<String> = std::fs::read_dir(repo.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    names.sort();
    names.insert(0, "README.md".into());
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(repo.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// Builds the four binaries (debug profile, the target dir this test runs from) and
/// returns their folder. Another package's binaries are not built for this package's
/// tests, and a stale one would test old code.
fn binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo())
        .args(["build", "--quiet"])
        .args(["-p", "peluit-server", "--bin", "peluit-server"])
        .args(["-p", "peluit-investigator", "--bin", "peluit-investigator"])
        .args(["-p", "peluit-courier", "--bin", "peluit-courier"])
        .args(["-p", "peluit-audit", "--bin", "peluit-audit"])
        .status()
        .unwrap();
    assert!(status.success(), "cargo build of the four binaries failed");
    // target/debug/deps/docs_commands-… → target/debug
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned();
    for name in [
        "peluit-server",
        "peluit-investigator",
        "peluit-courier",
        "peluit-audit",
    ] {
        assert!(
            dir.join(name).is_file(),
            "{name} is not in {}",
            dir.display()
        );
    }
    dir
}

/// One doc's scratch world: its folder, a root for system paths, a loopback port, the
/// server when a command needs one, and what every command printed.
struct World {
    /// Stops before the folder goes.
    server: Option<common::Server>,
    listener: Option<TcpListener>,
    /// What the server serves, once it was set up: it can be stopped and started again.
    institutions: Option<Vec<Institution>>,
    base: String,
    bin: PathBuf,
    manifest_key: String,
    ran: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl World {
    fn new(bin: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path();
        for (name, text) in FILES {
            std::fs::write(scratch.join(name), text).unwrap();
        }
        for sub in ROOT_DIRS {
            std::fs::create_dir_all(scratch.join("root").join(sub)).unwrap();
        }
        std::fs::create_dir_all(scratch.join("bin")).unwrap();
        let editor = scratch.join("bin/editor");
        std::fs::write(&editor, EDITOR).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in CHECKOUT {
            std::os::unix::fs::symlink(repo().join(name), scratch.join(name)).unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        // The shell session's state: the environment every command starts from.
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            scratch.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let manifest_key = SigningKey::generate().verifying_key().to_string();
        let state = [
            ("PATH", path),
            ("HOME", scratch.display().to_string()),
            ("PELUIT_PASSPHRASE", PASSPHRASE.into()),
            ("PELUIT_DANGEROUSLY_LOW_KDF_COST", "1".into()),
            ("EDITOR", editor.display().to_string()),
            ("DOCS_TEST_MANIFEST_KEY", manifest_key.clone()),
            // The installed configuration names /var/lib/peluit/store.
            (
                "PELUIT_DATA_DIR",
                scratch
                    .join("root/var/lib/peluit/store")
                    .display()
                    .to_string(),
            ),
        ];
        let mut session = String::new();
        for (name, value) in state {
            session.push_str(&format!("export {name}={}\n", shell_quote(&value)));
        }
        session.push_str(&format!(
            "cd {}\n",
            shell_quote(&scratch.display().to_string())
        ));
        std::fs::write(scratch.join(".session"), session).unwrap();
        World {
            server: None,
            listener: Some(listener),
            institutions: None,
            base,
            bin: bin.to_owned(),
            manifest_key,
            ran: Vec::new(),
            dir,
        }
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn fill(&self, text: &str) -> String {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(self.scratch()).unwrap();
        text.replace("{root}", &self.scratch().join("root").display().to_string())
            .replace("{bin}", &self.bin.display().to_string())
            .replace("{server}", &self.base)
            .replace("{uid}", &meta.uid().to_string())
            .replace("{gid}", &meta.gid().to_string())
    }

    /// The command with every placeholder replaced.
    fn substitute(&mut self, command: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut at = 0;
        'scan: while at < command.len() {
            let rest = &command[at..];
            let word_start = at == 0
                || command[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_whitespace() || matches!(c, '=' | '"' | '\''));
            for placeholder in PLACEHOLDERS {
                if rest.starts_with(placeholder.text)
                    && (word_start || !placeholder.text.starts_with('/'))
                {
                    let value = match &placeholder.value {
                        Becomes::Text(text) => self.fill(text),
                        Becomes::From(compute) => compute(self)?,
                    };
                    out.push_str(&value);
                    at += placeholder.text.len();
                    continue 'scan;
                }
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            at += c.len_utf8();
        }
        Ok(out)
    }

    /// Runs `command` in the session; why it failed.
    fn run(&mut self, at: &str, command: &str) -> Result<(), String> {
        let failed = |e: String| format!("{at}: `{command}`: {e}");
        if command.contains("peluit-courier ") {
            self.start_server().map_err(failed)?;
        }
        let text = self.substitute(command).map_err(failed)?;
        let session = self.scratch().join(".session");
        let script = format!(
            ". {session}\n{text}\nstatus=$?\n{{ export -p; echo \"cd $(printf %q \"$PWD\")\"; }} >{session}\nexit $status\n",
            session = shell_quote(&session.display().to_string()),
        );
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c", &script])
            .current_dir(self.scratch())
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("bash did not start: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(format!(
                "{at}: `{text}` failed ({}):\n{}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        eprint!("$ {text}\n{stdout}");
        self.ran.push((command.to_owned(), stdout));
        Ok(())
    }

    /// Starts a command that serves, asks it for its page, stops it with SIGTERM.
    fn serve(&mut self, doc: &str, command: &str) -> Result<(), String> {
        let session = self.scratch().join(".session");
        let script = format!(
            ". {}\nexec {command}\n",
            shell_quote(&session.display().to_string())
        );
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .current_dir(self.scratch())
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{doc}: `{command}` did not start: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let page = lines.by_ref().map_while(Result::ok).find_map(|line| {
            line.trim()
                .strip_prefix("reporter page:")
                .map(|url| url.trim().to_owned())
        });
        let answer = page.as_ref().map(|url| {
            reqwest::blocking::get(url)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    let status = r.status();
                    r.text().map(|t| (status, t)).map_err(|e| e.to_string())
                })
        });
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        // Whether it ends cleanly on SIGTERM is deploy/check.sh's check; here it only has
        // to serve its page.
        child.wait().map_err(|e| e.to_string())?;
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        let fail = |what: String| Err(format!("{doc}: `{command}`: {what}\n{stderr}"));
        match answer {
            None => return fail("printed no `reporter page:` line".into()),
            Some(Err(e)) => return fail(format!("its page did not answer: {e}")),
            Some(Ok((code, body))) if code != 200 || !body.contains("<html") => {
                return fail(format!("its page answered {code}"));
            }
            Some(Ok(_)) => {}
        }
        Ok(())
    }

    fn manifest_public_key(&mut self) -> Result<String, String> {
        self.output_of("peluit-investigator keygen manifest-key")?
            .lines()
            .find_map(|l| l.strip_prefix("Public key: "))
            .map(str::to_owned)
            .ok_or_else(|| "`keygen manifest-key` printed no `Public key:` line".into())
    }

    fn listed_token_hash(&mut self) -> Result<String, String> {
        let list = self.output_of("peluit-server token list")?;
        let held = std::fs::read_to_string(self.scratch().join("courier.token"))
            .map_err(|e| format!("courier.token: {e}"))?;
        let held = hex(&sha2::Sha256::digest(held.trim().as_bytes()));
        list.lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|hash| *hash != held)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("`token list` printed no other token than courier.token's:\n{list}")
            })
    }

    fn case_prefix(&mut self) -> Result<String, String> {
        let cases = self.scratch().join("peluit-desk/cases");
        let mut names: Vec<String> = std::fs::read_dir(&cases)
            .map_err(|e| format!("{}: {e}", cases.display()))?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .first()
            .map(|n| n[..8].to_owned())
            .ok_or_else(|| "the desk holds no case".into())
    }

    fn output_of(&self, prefix: &str) -> Result<String, String> {
        self.ran
            .iter()
            .rev()
            .find(|(command, _)| command.starts_with(prefix))
            .map(|(_, out)| out.clone())
            .ok_or_else(|| format!("no `{prefix}` ran before"))
    }

    /// The server of the desk's story: the institution the desk made, its signed manifest
    /// published, the courier's token in `courier.token`, and one report with an
    /// attachment sealed by proto as the page seals it.
    fn start_server(&mut self) -> Result<(), String> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let scratch = self.scratch().to_owned();
        let desk: Value = serde_json::from_slice(
            &std::fs::read(scratch.join("peluit-desk/desk.json"))
                .map_err(|e| format!("no desk to serve: {e}"))?,
        )
        .map_err(|e| e.to_string())?;
        let id: InstitutionId = desk["institution"].as_str().unwrap().parse().unwrap();
        let key = self.manifest_public_key()?;
        let manifest_key = key.parse().unwrap();
        let signed = SignedManifest::from_json(
            &std::fs::read(scratch.join("manifest.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let mut policy = VerifyPolicy::new(manifest_key, today());
        policy.origin = Some(self.base.clone());
        let manifest = signed.verify(&policy).map_err(|e| e.to_string())?;
        let store = Arc::new(SledStore::open(scratch.join(STORE)).unwrap());
        store
            .put_manifest(&id, 1, &ManifestBytes::new(signed.to_json()))
            .unwrap();
        let token = IssuedToken::generate();
        store
            .put_token_hash(&id, TokenHash::from_bytes(token.hash()), "kurir", today())
            .unwrap();
        std::fs::write(scratch.join("courier.token"), token.expose_secret()).unwrap();
        self.institutions = Some(vec![Institution {
            id: id.clone(),
            name: "Inspektorat".into(),
            manifest_key,
        }]);
        self.launch(listener, store);
        submit_report(&self.base, &id, &manifest);
        Ok(())
    }

    fn launch(&mut self, listener: TcpListener, store: Arc<SledStore>) {
        let spool = self.scratch().join(format!("{STORE}.spool"));
        std::fs::create_dir_all(&spool).unwrap();
        let limits = Limits {
            pow_bits: 6,
            ..Limits::default()
        };
        let institutions = self.institutions.clone().unwrap();
        self.server = Some(common::Server::start(
            listener,
            store,
            institutions,
            limits,
            spool,
        ));
    }

    /// `systemctl stop|start peluit-server` where this test runs a server: stops it, or
    /// starts it again on the same port and store.
    fn systemctl(&mut self, command: &str) -> Option<Result<(), String>> {
        self.institutions.as_ref()?;
        match command {
            "systemctl stop peluit-server" => {
                self.server = None;
                Some(Ok(()))
            }
            "systemctl start peluit-server" => Some(
                TcpListener::bind(self.base.trim_start_matches("http://"))
                    .map_err(|e| format!("the port again: {e}"))
                    .and_then(|listener| {
                        let store = SledStore::open(self.scratch().join(STORE))
                            .map_err(|e| format!("the store again: {e}"))?;
                        self.launch(listener, Arc::new(store));
                        Ok(())
                    }),
            ),
            _ => None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Seals and sends one report with one attachment, as the page does.
fn submit_report(base: &str, id: &InstitutionId, manifest: &VerifiedManifest) {
    let http = reqwest::blocking::Client::new();
    let api = format!("{base}/api/v1/institutions/{id}");
    let content = b"rekaman rapat pengadaan".repeat(100);
    let attachment =
        common::upload_attachment(&http, &api, manifest, "rapat.txt", "text/plain", &content);
    common::submit_report(
        &http,
        &api,
        manifest,
        "Pejabat meminta uang pelicin.",
        vec![attachment],
        6,
    );
}

/// The `toml` fence of docs/operating.md#configuration, written as `peluit.toml` in its
/// scratch folder, so that the token commands beside it load the documented file.
fn write_documented_config(world: &World, markdown: &str) {
    let start = markdown
        .find("```toml\n")
        .expect("docs/operating.md shows the configuration file in a toml fence")
        + "```toml\n".len();
    let end = start + markdown[start..].find("```").unwrap();
    let text = markdown[start..end]
        .replace(
            "\"/var/lib/peluit/store\"",
            &format!(
                "\"{}\"",
                world.scratch().join("root/var/lib/peluit/store").display()
            ),
        )
        .replace(
            "base64 Ed25519 public key from the desk's key ceremony",
            &world.manifest_key,
        );
    std::fs::write(world.scratch().join("peluit.toml"), text).unwrap();
}

#[test]
fn every_command_in_the_docs_runs_or_is_listed_with_its_reason() {
    let bin = binaries();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut ran = 0;
    let mut docs = docs();
    // A doc that continues another runs right after it.
    for (follower, leader, _) in CONTINUES {
        let at = docs.iter().position(|(n, _)| n == follower);
        let at = at.unwrap_or_else(|| panic!("CONTINUES names {follower}, which is gone"));
        let moved = docs.remove(at);
        let after = docs.iter().position(|(n, _)| n == leader);
        let after = after.unwrap_or_else(|| panic!("CONTINUES names {leader}, which is gone"));
        docs.insert(after + 1, moved);
    }
    let mut world = None;
    for (doc, markdown) in &docs {
        let (commands, hidden) = extract(doc, markdown);
        problems.extend(hidden);
        if commands.is_empty() {
            continue;
        }
        if !CONTINUES.iter().any(|(follower, _, _)| follower == doc) {
            world = Some(World::new(&bin));
        }
        let world = world.as_mut().unwrap();
        if doc == "docs/operating.md" {
            write_documented_config(world, markdown);
        }
        let (translated, commands): (Vec<DocCommand>, Vec<DocCommand>) =
            commands.into_iter().partition(|c| c.translated);
        for command in &translated {
            if !commands.iter().any(|c| c.text == command.text) {
                problems.push(format!(
                    "{}:{}: the Indonesian guide's command is not one the doc runs in its \
                     English text: copy it from there: {}",
                    command.file, command.line, command.text
                ));
            }
        }
        for command in commands {
            seen.insert(command.text.clone());
            let at = format!("{}:{}", command.file, command.line);
            if let Some(done) = world.systemctl(&command.text) {
                match done {
                    Ok(()) => ran += 1,
                    Err(e) => problems.push(format!("{at}: `{}`: {e}", command.text)),
                }
                continue;
            }
            if NOT_RUN.iter().any(|(text, _)| *text == command.text) {
                // What cannot run still has its exact flags parsed.
                if command.text.starts_with("peluit-") {
                    match world.run(&at, &format!("{} --help", command.text)) {
                        Ok(()) => {}
                        Err(e) => problems.push(e),
                    }
                }
                continue;
            }
            if let Some((_, instead, _)) = SERVES.iter().find(|(t, _, _)| *t == command.text) {
                match world.serve(&at, instead) {
                    Ok(()) => ran += 1,
                    Err(e) => problems.push(e),
                }
                continue;
            }
            let started = std::time::Instant::now();
            let result = world.run(&at, &command.text);
            eprintln!("{at}: {:.2} s", started.elapsed().as_secs_f64());
            match result {
                Ok(()) => ran += 1,
                Err(e) => problems.push(e),
            }
        }
    }
    for (text, _) in NOT_RUN {
        if !seen.contains(*text) {
            problems.push(format!(
                "NOT_RUN lists `{text}`, which no doc holds any more: remove it"
            ));
        }
    }
    for (text, _, _) in SERVES {
        if !seen.contains(*text) {
            problems.push(format!(
                "SERVES lists `{text}`, which no doc holds any more: remove it"
            ));
        }
    }
    for placeholder in PLACEHOLDERS {
        if !seen.iter().any(|text| text.contains(placeholder.text)) {
            problems.push(format!(
                "PLACEHOLDERS lists `{}` ({}), which no command uses any more: remove it",
                placeholder.text, placeholder.why
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} doc command(s) ran; problems:\n\n{}",
        ran,
        problems.join("\n\n")
    );
    assert!(ran >= 30, "only {ran} doc commands ran");
}

#[test]
fn extraction_follows_the_rules() {
    let markdown = "\
text
```sh
# a comment line
peluit-server token list --config a.toml   # trailing comment
peluit-investigator manifest new --name \"a # b\" \\
    --origin x \\
    --out y

```
   ```console
   $ peluit-courier pull --server URL
   Bundle written to …
   ```
```
peluit-audit store /copy
peluit-server ──▶ peluit-store
desk/
```
```toml
install = 1
```
";
    let (commands, hidden) = extract("t.md", markdown);
    let texts: Vec<(usize, &str)> = commands.iter().map(|c| (c.line, c.text.as_str())).collect();
    assert_eq!(
        texts,
        vec![
            (4, "peluit-server token list --config a.toml"),
            (
                5,
                "peluit-investigator manifest new --name \"a # b\" --origin x --out y"
            ),
            (11, "peluit-courier pull --server URL"),
        ]
    );
    assert_eq!(hidden.len(), 1, "{hidden:?}");
    assert!(hidden[0].starts_with("t.md:15: "), "{hidden:?}");
}

#[test]
fn an_indonesian_guide_section_is_marked_until_the_next_heading_of_its_level() {
    let markdown = "\
# Doc
## Panduan (Bahasa Indonesia) {#panduan}
```sh
peluit-server token list --config a.toml
```
### Langkah {#panduan-langkah}
```sh
# komentar
peluit-audit store /copy
```
## Tokens {#tokens}
```sh
peluit-server token list --config a.toml
```
";
    let (commands, hidden) = extract("t.md", markdown);
    assert!(hidden.is_empty(), "{hidden:?}");
    let marks: Vec<(usize, bool)> = commands.iter().map(|c| (c.line, c.translated)).collect();
    assert_eq!(marks, vec![(4, true), (9, true), (13, false)]);
}
