//! `peluit-audit site URL`: fetches the reporter page, every asset, the published hash list
//! and the manifest history as any visitor would, and checks them against the auditor's
//! own build, the pinned manifest key and the header policy (docs/api.md#headers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use peluit_proto::day::Day;
use peluit_proto::keys::VerifyingKey;
use peluit_proto::manifest::{SignedManifest, VerifyPolicy, fingerprint_hex, verify_history};
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, AuditResult};
use crate::findings::Finding;

/// The content security policy of docs/api.md#headers, directive by directive.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' \
     'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     worker-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The other headers every response carries, with their exact values.
pub const POLICY_HEADERS: &[(&str, &str)] = &[
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

/// Headers no response may carry: a version banner, a cookie, a clock reading.
pub const FORBIDDEN_HEADERS: &[(&str, &str)] = &[
    (
        "server",
        "a server banner names the software and its version",
    ),
    (
        "set-cookie",
        "a cookie can follow a reporter from visit to visit",
    ),
    ("date", "a clock reading leaves the server"),
];

/// Largest body fetched (the WebAssembly module is a few MiB).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// The published list format, `/.well-known/peluit-bundle.json` (docs/web.md#build).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleHashes {
    /// Format version, 1.
    pub version: u64,
    /// URL path → lowercase hex SHA-256.
    pub assets: BTreeMap<String, String>,
}

/// How to check a site.
#[derive(Clone, Debug)]
pub struct SiteOptions {
    /// The page's address (`https://…/`, `http://….onion/`).
    pub url: String,
    /// The expected SHA-256 of every served path, from the auditor's own build.
    pub expected: BTreeMap<String, String>,
    /// The institution's manifest key, as published out of band.
    pub manifest_key: VerifyingKey,
    /// Which institution, when the server serves several.
    pub institution: Option<String>,
    /// A proxy for every request, e.g. `socks5h://127.0.0.1:9050` for an onion service.
    pub proxy: Option<String>,
    /// The auditor's day, for manifest validity.
    pub today: Day,
    /// The highest serial an earlier audit saw: the current manifest must not be lower.
    pub seen_serial: Option<u64>,
}

/// The outcome of a site check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteAudit {
    /// Every problem; empty for a site that passed.
    pub findings: Vec<Finding>,
    /// The origin checked.
    pub origin: String,
    /// Each URL fetched with its status and the SHA-256 of its body.
    pub fetched: Vec<Fetched>,
    /// The institution whose manifest was checked.
    pub institution: Option<String>,
    /// The serial of the verified current manifest.
    pub manifest_serial: Option<u64>,
    /// The pinned key's fingerprint (hex), to compare with the poster.
    pub manifest_key_fingerprint: String,
}

impl SiteAudit {
    /// Whether the site passed.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One fetched URL.
#[derive(Clone, Debug, Serialize)]
pub struct Fetched {
    /// The URL.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// SHA-256 of the body, hex.
    pub sha256: String,
}

/// Reads the expected hashes: a JSON file in the format of
/// `/.well-known/peluit-bundle.json`, or a folder of built assets (each file `NAME` is
/// served at `/assets/NAME`, and `index.html` also at `/`).
pub fn load_expected(path: &Path) -> AuditResult<BTreeMap<String, String>> {
    if path.is_dir() {
        let mut out = BTreeMap::new();
        let entries = std::fs::read_dir(path).map_err(|e| AuditError::io("list", path, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| AuditError::io("list", path, &e))?;
            if !entry.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path())
                .map_err(|e| AuditError::io("read", &entry.path(), &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = hex::encode(Sha256::digest(&bytes));
            if name == "index.html" {
                out.insert("/".to_owned(), digest.clone());
            }
            out.insert(format!("/assets/{name}"), digest);
        }
        return Ok(out);
    }
    let bytes = std::fs::read(path).map_err(|e| AuditError::io("read", path, &e))?;
    let list: BundleHashes = serde_json::from_slice(&bytes).map_err(|e| {
        AuditError::new(
            "bad-hashes",
            format!("{} is not a hash list ({e})", path.display()),
            "give the JSON list of your own build ({\"version\":1,\"assets\":{…}}) or its assets folder",
        )
    })?;
    Ok(list.assets)
}

/// Checks the site.
pub fn audit_site(options: &SiteOptions) -> AuditResult<SiteAudit> {
    let url = reqwest::Url::parse(&options.url).map_err(|e| {
        AuditError::new(
            "bad-url",
            format!("{} is not a URL ({e})", options.url),
            "give the page's address, e.g. https://lapor.example.go.id/",
        )
    })?;
    let origin = url.origin().ascii_serialization();
    let mut builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120));
    if let Some(proxy) = &options.proxy {
        let proxy = reqwest::Proxy::all(proxy).map_err(|e| {
            AuditError::new(
                "bad-proxy",
                format!("{proxy} is not a proxy address ({e})"),
                "give e.g. socks5h://127.0.0.1:9050 for Tor",
            )
        })?;
        builder = builder.proxy(proxy);
    }
    let client = builder.build().map_err(|e| {
        AuditError::new(
            "http-client",
            format!("could not set up the HTTP client ({e})"),
            "check the proxy option",
        )
    })?;
    let mut site = Site {
        client,
        origin: origin.clone(),
        audit: SiteAudit {
            origin: origin.clone(),
            manifest_key_fingerprint: fingerprint_hex(&options.manifest_key),
            ..SiteAudit::default()
        },
    };

    // The page, the published list, then every path either names.
    let page = site.get("/")?;
    let mut paths: BTreeSet<String> = options.expected.keys().cloned().collect();
    if let Some(body) = &page {
        for reference in references(body) {
            site.check_reference("/", &reference, &mut paths);
        }
    }
    let published = site.get("/.well-known/peluit-bundle.json")?;
    if let Some(body) = published {
        match serde_json::from_slice::<BundleHashes>(&body) {
            Ok(list) if list.version == 1 => {
                for (path, digest) in &list.assets {
                    match options.expected.get(path) {
                        None => site.find(
                            "/.well-known/peluit-bundle.json",
                            format!("lists {path}, which the expected build does not have"),
                        ),
                        Some(expected) if expected != digest => site.find(
                            "/.well-known/peluit-bundle.json",
                            format!("lists {path} with SHA-256 {digest}; the expected build has {expected}"),
                        ),
                        Some(_) => {}
                    }
                    paths.insert(path.clone());
                }
                for path in options.expected.keys() {
                    if !list.assets.contains_key(path) {
                        site.find(
                            "/.well-known/peluit-bundle.json",
                            format!("does not list {path}"),
                        );
                    }
                }
            }
            _ => site.find(
                "/.well-known/peluit-bundle.json",
                "not a hash list of version 1".into(),
            ),
        }
    }
    for path in &paths {
        let body = if path == "/" {
            page.clone()
        } else {
            site.get(path)?
        };
        let Some(body) = body else { continue };
        let digest = hex::encode(Sha256::digest(&body));
        match options.expected.get(path) {
            Some(expected) if *expected == digest => {}
            Some(expected) => site.find(
                path,
                format!("served bytes have SHA-256 {digest}; the expected build has {expected}"),
            ),
            None => site.find(path, "served, but not part of the expected build".into()),
        }
        if path.ends_with(".js") || path.ends_with(".css") || path.ends_with(".html") || path == "/"
        {
            for reference in absolute_urls(&body) {
                site.check_reference(path, &reference, &mut BTreeSet::new());
            }
        }
    }
    if let Some(form) = site.get("/submit-file")? {
        for reference in references(&form) {
            site.check_reference("/submit-file", &reference, &mut BTreeSet::new());
        }
    }
    site.manifests(options)?;
    Ok(site.audit)
}

struct Site {
    client: Client,
    origin: String,
    audit: SiteAudit,
}

impl Site {
    fn find(&mut self, path: &str, why: String) {
        let url = format!("{}{path}", self.origin);
        self.audit.findings.push(Finding::url(url, why));
    }

    /// GETs a path of the origin; checks the header policy; `None` (with a finding) for a
    /// status other than 200. Only a failed connection stops the audit.
    fn get(&mut self, path: &str) -> AuditResult<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.origin);
        let response = self.client.get(&url).send().map_err(|e| {
            AuditError::new(
                "unreachable",
                format!("could not fetch {url}: {}", without_url(&e)),
                "check the address, your network, and for an onion address the Tor proxy (--proxy socks5h://127.0.0.1:9050)",
            )
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.check_headers(path, &headers);
        let mut body = Vec::new();
        let mut limited = std::io::Read::take(response, MAX_BODY);
        std::io::Read::read_to_end(&mut limited, &mut body).map_err(|e| {
            AuditError::new(
                "unreachable",
                format!("the body of {url} did not arrive ({e})"),
                "try again; if it persists, check the network path",
            )
        })?;
        self.audit.fetched.push(Fetched {
            url,
            status,
            sha256: hex::encode(Sha256::digest(&body)),
        });
        if status != 200 {
            self.find(path, format!("answered HTTP {status}"));
            return Ok(None);
        }
        Ok(Some(body))
    }

    /// docs/api.md#headers, on every response.
    fn check_headers(&mut self, path: &str, headers: &HeaderMap) {
        match headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
        {
            None => self.find(path, "no Content-Security-Policy header".into()),
            Some(csp) => {
                if let Some(why) = compare_csp(&csp) {
                    self.find(path, format!("Content-Security-Policy {why}"));
                }
            }
        }
        for (name, value) in POLICY_HEADERS {
            match headers.get(*name).map(|v| v.to_str().unwrap_or_default()) {
                None => self.find(
                    path,
                    format!("no {name} header (the policy says {value:?})"),
                ),
                Some(got) if got != *value => {
                    self.find(
                        path,
                        format!("{name} is {got:?}; the policy says {value:?}"),
                    );
                }
                Some(_) => {}
            }
        }
        if !headers.contains_key("permissions-policy") {
            self.find(path, "no permissions-policy header".into());
        }
        for (name, why) in FORBIDDEN_HEADERS {
            if headers.contains_key(*name) {
                self.find(path, format!("carries a {name} header: {why}"));
            }
        }
    }

    /// A reference on a page must stay on this origin; a path is added to those checked.
    fn check_reference(&mut self, from: &str, reference: &str, paths: &mut BTreeSet<String>) {
        let lower = reference.to_ascii_lowercase();
        if lower.starts_with("data:") || lower.starts_with('#') {
            return;
        }
        let external = lower.starts_with("//")
            || (lower.contains("://")
                && !lower.starts_with(&format!("{}/", self.origin))
                && lower != self.origin);
        if external {
            self.find(
                from,
                format!("refers to a third-party resource: {reference}"),
            );
            return;
        }
        if let Some(path) = reference.strip_prefix(&self.origin).or(Some(reference))
            && path.starts_with("/assets/")
        {
            paths.insert(path.split(['?', '#']).next().unwrap_or(path).to_owned());
        }
    }

    fn manifests(&mut self, options: &SiteOptions) -> AuditResult<()> {
        let Some(body) = self.get("/api/v1/institutions")? else {
            return Ok(());
        };
        let listing: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let institutions: Vec<serde_json::Value> = listing
            .get("institutions")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        let chosen = match &options.institution {
            Some(id) => institutions
                .iter()
                .find(|i| i["id"] == id.as_str())
                .cloned(),
            None if institutions.len() == 1 => institutions.first().cloned(),
            None => {
                return Err(AuditError::new(
                    "which-institution",
                    format!("the server serves {} institutions", institutions.len()),
                    "name the one whose manifest key you pinned with --institution ID",
                ));
            }
        };
        let Some(chosen) = chosen else {
            self.find(
                "/api/v1/institutions",
                "does not list the institution".into(),
            );
            return Ok(());
        };
        let id = chosen["id"].as_str().unwrap_or_default().to_owned();
        self.audit.institution = Some(id.clone());
        let pinned = options.manifest_key.to_string();
        if chosen["manifest_key"].as_str() != Some(pinned.as_str()) {
            self.find(
                "/api/v1/institutions",
                format!(
                    "tells pages to pin manifest key {} for {id}, not the published {pinned}",
                    chosen["manifest_key"].as_str().unwrap_or("(none)")
                ),
            );
        }
        let base = format!("/api/v1/institutions/{id}");
        let current = self.get(&format!("{base}/manifest"))?;
        let Some(history_body) = self.get(&format!("{base}/manifests"))? else {
            return Ok(());
        };
        let history_path = format!("{base}/manifests");
        // Each entry is the signed document byte for byte: read it raw, since re-encoding
        // a parsed value could reorder its members.
        #[derive(Deserialize)]
        struct History<'a> {
            #[serde(borrow)]
            manifests: Vec<&'a serde_json::value::RawValue>,
        }
        let documents = match serde_json::from_slice::<History<'_>>(&history_body) {
            Ok(history) => history.manifests,
            Err(_) => {
                self.find(
                    &history_path,
                    "not a manifest history ({\"manifests\":[…]})".into(),
                );
                Vec::new()
            }
        };
        let mut history = Vec::new();
        let mut raw = Vec::new();
        for (i, document) in documents.iter().enumerate() {
            let bytes = document.get().as_bytes().to_vec();
            match SignedManifest::from_json(&bytes) {
                Ok(signed) => {
                    history.push(signed);
                    raw.push(bytes);
                }
                Err(error) => self.find(
                    &history_path,
                    format!("entry {i} is not a signed manifest ({error})"),
                ),
            }
        }
        let mut policy = VerifyPolicy::new(options.manifest_key, options.today);
        policy.origin = Some(self.origin.clone());
        policy.min_serial = options.seen_serial;
        match verify_history(&history, &policy) {
            Ok(verified) => self.audit.manifest_serial = Some(verified.serial()),
            Err(error) => self.find(
                &history_path,
                format!("the manifest history does not verify: {error}"),
            ),
        }
        if let (Some(current), Some(last)) = (current, raw.last())
            && current != *last
        {
            self.find(
                &format!("{base}/manifest"),
                "the current manifest is not the newest entry of the history".into(),
            );
        }
        Ok(())
    }
}

/// Compares a served CSP with the policy, directive by directive; `None` when equal.
fn compare_csp(served: &str) -> Option<String> {
    let parse = |text: &str| -> BTreeMap<String, String> {
        text.split(';')
            .filter_map(|d| {
                let mut words = d.split_whitespace();
                let name = words.next()?.to_ascii_lowercase();
                Some((name, words.collect::<Vec<_>>().join(" ")))
            })
            .collect()
    };
    let want = parse(CONTENT_SECURITY_POLICY);
    let got = parse(served);
    for (name, value) in &want {
        match got.get(name) {
            None => return Some(format!("lacks {name} (the policy says {name} {value})")),
            Some(v) if v != value => {
                return Some(format!("has {name} {v}; the policy says {name} {value}"));
            }
            Some(_) => {}
        }
    }
    got.keys()
        .find(|name| !want.contains_key(*name))
        .map(|name| format!("has {name}, which the policy does not"))
}

/// `src`, `href` and `action` attribute values of an HTML page.
fn references(html: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(html);
    let mut out = Vec::new();
    for attribute in ["src=", "href=", "action=", "srcset="] {
        let mut rest = text.as_ref();
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            let value = &rest[1..];
            if let Some(end) = value.find(quote) {
                out.push(value[..end].to_owned());
            }
        }
    }
    out
}

/// Absolute `http(s)://` URLs in a script, style sheet or page.
fn absolute_urls(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for scheme in ["http://", "https://"] {
        let mut rest = text.as_ref();
        while let Some(at) = rest.find(scheme) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| c.is_whitespace() || "\"'`)<>".contains(c))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_owned());
            rest = &tail[scheme.len()..];
        }
    }
    out
}

/// reqwest's error text repeats the URL, which the message already names.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.without_url_ref_text();
    if text.is_empty() {
        text = "no answer".to_owned();
    }
    text
}

trait WithoutUrl {
    fn without_url_ref_text(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_text(&self) -> String {
        let mut parts = Vec::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(error) = source {
            parts.push(error.to_string());
            source = error.source();
        }
        if parts.is_empty() {
            if self.is_timeout() {
                return "timed out".to_owned();
            }
            return "request failed".to_owned();
        }
        parts.join(": ")
    }
}
