//! `peluit-audit site`: the real server on loopback passes, directly and through a SOCKS5
//! proxy (`socks5h://`, as for an onion address); a proxy that alters the server's answers
//! shows that one byte changed in an asset, a manifest signed by another key, a history
//! whose serial goes backwards and a missing CSP each fail with a precise message.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use common::{Alter, INSTITUTION, Keys, Relayed, Server, audit, institution, start_proxy};
use peluit_proto::keys::SigningKey;
use peluit_store::{CiphertextStore, ManifestBytes, SledStore};

struct Site {
    _dir: tempfile::TempDir,
    _server: Server,
    keys: Keys,
    origins: Vec<String>,
    /// A listener whose port is in the manifest's origins, for a proxy.
    proxy_listener: Option<TcpListener>,
    hashes: PathBuf,
}

impl Site {
    fn base(&self) -> String {
        format!("{}/", self.origins[0])
    }

    fn key(&self) -> String {
        self.keys.manifest_key.verifying_key().to_string()
    }

    fn run(&self, url: &str, extra: &[&str]) -> peluit_audit::cli::Report {
        let key = self.key();
        let mut args = vec![
            "site",
            url,
            "--hashes",
            self.hashes.to_str().unwrap(),
            "--manifest-key",
            &key,
        ];
        args.extend(extra);
        audit(&args).unwrap()
    }

    /// Puts an altering proxy on the second listed origin; returns its page URL.
    fn altered(&mut self, alter: Arc<Alter>) -> String {
        let listener = self.proxy_listener.take().unwrap();
        start_proxy(listener, self.origins[0].clone(), alter);
        format!("{}/", self.origins[1])
    }
}

/// The real server with serials 1 and 2 published for two loopback origins (its own and
/// a proxy's), and the expected hashes of the page it embeds.
fn start() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let server_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origins: Vec<String> = [&server_listener, &proxy_listener]
        .iter()
        .map(|l| format!("http://127.0.0.1:{}", l.local_addr().unwrap().port()))
        .collect();
    let keys = Keys::generate();
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    for serial in [1, 2] {
        let signed = keys.manifest(serial, &origins, &keys.manifest_key);
        store
            .put_manifest(
                &institution(),
                serial,
                &ManifestBytes::new(signed.to_json()),
            )
            .unwrap();
    }
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let server = Server::start(
        server_listener,
        store,
        &keys,
        spool,
        peluit_server::Limits::default(),
    );
    // The auditor's own build: here, the hash list of the page this server embeds.
    let hashes = dir.path().join("expected.json");
    let list = peluit_server::assets::bundle_hashes();
    std::fs::write(
        &hashes,
        serde_json::json!({"version": list.version, "assets": list.assets}).to_string(),
    )
    .unwrap();
    Site {
        _dir: dir,
        _server: server,
        keys,
        origins,
        proxy_listener: Some(proxy_listener),
        hashes,
    }
}

fn url_findings(report: &peluit_audit::cli::Report) -> Vec<(String, String)> {
    report.json["site"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["place"]["url"].as_str().unwrap_or("").to_owned(),
                f["why"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_real_server_passes_directly_and_through_socks5h() {
    let site = start();
    let report = site.run(&site.base(), &[]);
    assert!(report.clean, "{}", report.text);
    assert_eq!(report.json["site"]["manifest_serial"], 2);
    assert_eq!(report.json["site"]["institution"], INSTITUTION);
    // Every embedded file, the page, the list, the form and the three API documents.
    assert!(report.json["site"]["fetched"].as_array().unwrap().len() >= 13);
    // An auditor who saw serial 3 last time sees the server roll back to 2.
    let report = site.run(&site.base(), &["--seen-serial", "3"]);
    assert!(
        report
            .text
            .contains("the serial 2 is lower than 3, which was already seen"),
        "{}",
        report.text
    );

    let socks = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("socks5h://127.0.0.1:{}", socks.local_addr().unwrap().port());
    let connects = start_socks5(socks);
    let report = site.run(&site.base(), &["--proxy", &proxy]);
    assert!(report.clean, "{}", report.text);
    assert!(
        *connects.lock().unwrap() > 0,
        "requests went through the SOCKS proxy"
    );
}

#[test]
fn a_manifest_for_another_origin_fails() {
    let site = start();
    // The same server under a name its manifest does not list.
    let url = site.base().replace("127.0.0.1", "localhost");
    let report = site.run(&url, &[]);
    let found = url_findings(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].0.ends_with("/manifests"), "{}", found[0].0);
    let origin = url.trim_end_matches('/');
    assert!(
        found[0]
            .1
            .contains(&format!("this manifest is not for \"{origin}\"")),
        "{}",
        found[0].1
    );
}

#[test]
fn one_changed_byte_in_a_served_asset_fails_naming_it() {
    let mut site = start();
    let url = site.altered(Arc::new(|path: &str, answer: &mut Relayed| {
        if path == "/assets/app.js" {
            answer.body[100] ^= 0x01;
        }
    }));
    let report = site.run(&url, &[]);
    let found = url_findings(&report);
    let asset = format!("{}/assets/app.js", site.origins[1]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, asset);
    assert!(
        found[0].1.starts_with("served bytes have SHA-256 "),
        "{}",
        found[0].1
    );
    assert!(
        found[0].1.contains("the expected build has"),
        "{}",
        found[0].1
    );
}

#[test]
fn a_manifest_signed_by_another_key_fails() {
    let mut site = start();
    let forged = site
        .keys
        .manifest(3, &site.origins, &SigningKey::generate())
        .to_json();
    let url = site.altered(Arc::new(move |path: &str, answer: &mut Relayed| {
        if path.ends_with("/manifest") {
            answer.body = forged.clone();
        } else if path.ends_with("/manifests") {
            let mut body = b"{\"manifests\":[".to_vec();
            body.extend_from_slice(&forged);
            body.extend_from_slice(b"]}");
            answer.body = body;
        }
    }));
    let report = site.run(&url, &[]);
    let found = url_findings(&report);
    let history = format!(
        "{}/api/v1/institutions/{INSTITUTION}/manifests",
        site.origins[1]
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].0, history);
    assert!(
        found[0]
            .1
            .contains("the signature does not verify under the pinned manifest key"),
        "{}",
        found[0].1
    );
}

#[test]
fn a_history_whose_serial_goes_backwards_fails() {
    let mut site = start();
    let url = site.altered(Arc::new(|path: &str, answer: &mut Relayed| {
        if path.ends_with("/manifests") {
            // Swap the two entries: serial 2, then 1.
            let text = String::from_utf8(answer.body.clone()).unwrap();
            let inner = &text["{\"manifests\":[".len()..text.len() - 2];
            let split = inner.find("},{\"manifest\"").unwrap() + 1;
            answer.body = format!(
                "{{\"manifests\":[{},{}]}}",
                &inner[split + 1..],
                &inner[..split]
            )
            .into_bytes();
        }
    }));
    let report = site.run(&url, &[]);
    let found = url_findings(&report);
    assert!(
        found.iter().any(|(u, why)| u.ends_with("/manifests")
            && why.contains("the serial 1 is lower than 2, which was already seen")),
        "{found:#?}"
    );
}

#[test]
fn a_missing_csp_fails_naming_the_response() {
    let mut site = start();
    let url = site.altered(Arc::new(|path: &str, answer: &mut Relayed| {
        if path == "/" {
            answer
                .headers
                .retain(|(name, _)| name != "content-security-policy");
            answer
                .headers
                .push(("server".into(), "nginx/1.18.0".into()));
        }
    }));
    let report = site.run(&url, &[]);
    let found = url_findings(&report);
    let page = format!("{}/", site.origins[1]);
    assert_eq!(
        found,
        vec![
            (page.clone(), "no Content-Security-Policy header".to_owned()),
            (
                page,
                "carries a server header: a server banner names the software and its version"
                    .to_owned()
            ),
        ]
    );
    assert!(
        report.text.contains("FAILED, 2 findings"),
        "{}",
        report.text
    );
}

#[test]
fn the_header_policy_is_the_servers() {
    assert_eq!(
        peluit_audit::site::CONTENT_SECURITY_POLICY,
        peluit_server::layers::CONTENT_SECURITY_POLICY
    );
    for pair in peluit_audit::site::POLICY_HEADERS {
        assert!(
            peluit_server::layers::SECURITY_HEADERS.contains(pair),
            "{pair:?}"
        );
    }
}

#[test]
fn expected_hashes_come_from_a_list_or_a_built_assets_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), b"<!doctype html>").unwrap();
    std::fs::write(dir.path().join("app.js"), b"").unwrap();
    let expected = peluit_audit::site::load_expected(dir.path()).unwrap();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["/", "/assets/app.js", "/assets/index.html"]
    );
    assert_eq!(
        expected["/assets/app.js"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let bad = dir.path().join("app.js");
    assert_eq!(
        peluit_audit::site::load_expected(&bad).unwrap_err().code,
        "bad-hashes"
    );
}

#[test]
fn an_unreachable_site_cannot_be_audited() {
    let site = start();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/", closed.local_addr().unwrap().port());
    drop(closed);
    let key = site.key();
    let error = audit(&[
        "site",
        &url,
        "--hashes",
        site.hashes.to_str().unwrap(),
        "--manifest-key",
        &key,
    ])
    .unwrap_err();
    assert_eq!(error.code, "unreachable");
}

/// A minimal SOCKS5 server (no authentication, CONNECT only, domain or IPv4 targets), as
/// Tor's SOCKS port behaves for `socks5h://`; counts the connections it relayed.
fn start_socks5(listener: TcpListener) -> Arc<std::sync::Mutex<u32>> {
    let count = Arc::new(std::sync::Mutex::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 262];
                client.read_exact(&mut buf[..2]).unwrap();
                let methods = buf[1] as usize;
                client.read_exact(&mut buf[..methods]).unwrap();
                client.write_all(&[5, 0]).unwrap();
                client.read_exact(&mut buf[..4]).unwrap();
                let host = match buf[3] {
                    1 => {
                        client.read_exact(&mut buf[..4]).unwrap();
                        format!("{}.{}.{}.{}", buf[0], buf[1], buf[2], buf[3])
                    }
                    3 => {
                        client.read_exact(&mut buf[..1]).unwrap();
                        let n = buf[0] as usize;
                        client.read_exact(&mut buf[..n]).unwrap();
                        String::from_utf8(buf[..n].to_vec()).unwrap()
                    }
                    other => panic!("address type {other}"),
                };
                client.read_exact(&mut buf[..2]).unwrap();
                let port = u16::from_be_bytes([buf[0], buf[1]]);
                let upstream = TcpStream::connect((host.as_str(), port)).unwrap();
                *counter.lock().unwrap() += 1;
                client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
                let (mut a, mut b) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
                let (mut c, mut d) = (upstream, client);
                let _ = std::io::copy(&mut c, &mut d);
                let _ = d.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    count
}
