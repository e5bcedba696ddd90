//! What the example clients share: the demo server as its `demo.json` describes it, and a
//! report request stamped the way a reporter's page stamps one.

// Each example uses part of it; a failed step should stop the tool loudly.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use peluit_proto::keys::{SealRecipient, SigningKey, VerifyingKey};
use peluit_proto::manifest::{SignedManifest, VerifyPolicy};
use peluit_proto::pow::Stamp;
use serde_json::{Value, json};

/// A demo server's addresses, desk token and verified recipients, with an HTTP client.
pub struct Demo {
    /// The institution's API root, without a trailing slash.
    pub api: String,
    /// The server's `/healthz` address.
    pub health: String,
    /// The desk token, for exports.
    pub token: String,
    /// The seal recipients of the verified manifest.
    pub recipients: Vec<SealRecipient>,
    pub client: reqwest::Client,
}

/// Reads `dir/demo.json`, verifies the manifest it names, and makes a client whose
/// requests give up after `timeout`.
pub fn load_demo(dir: &Path, timeout: Duration) -> Demo {
    let description: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo.json")).unwrap()).unwrap();
    let manifest_key: VerifyingKey = description["manifest_key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let manifest = std::fs::read(description["files"]["manifest"].as_str().unwrap()).unwrap();
    let verified = SignedManifest::from_json(&manifest)
        .unwrap()
        .verify(&VerifyPolicy::new(
            manifest_key,
            peluit_server::state::today(),
        ))
        .unwrap();
    let token = std::fs::read_to_string(description["files"]["token"].as_str().unwrap())
        .unwrap()
        .trim()
        .to_owned();
    let api_url = description["api_url"].as_str().unwrap();
    let origin = api_url.trim_end_matches("/api/v1/");
    Demo {
        api: format!(
            "{api_url}institutions/{}",
            description["institution"].as_str().unwrap()
        ),
        health: format!("{origin}/healthz"),
        token,
        recipients: verified.seal_recipients(),
        client: reqwest::Client::builder().timeout(timeout).build().unwrap(),
    }
}

/// A report request around `envelope`, whose sealed SHA-256 is `envelope_sha256`, with a
/// proof-of-work stamp of `bits`.
pub fn report_body(
    envelope: &[u8],
    envelope_sha256: &[u8; 32],
    attachments: &[String],
    mailbox: &SigningKey,
    bits: u8,
) -> Value {
    let stamp: Value =
        serde_json::from_slice(&Stamp::mint(envelope_sha256, bits).to_json()).unwrap();
    json!({
        "version": 1,
        "envelope": peluit_proto::encoding::b64(envelope),
        "attachments": attachments,
        "mailbox_key": mailbox.verifying_key().to_string(),
        "stamp": stamp,
    })
}
