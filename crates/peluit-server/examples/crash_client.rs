//! The client side of `tests/crash-loop.sh`: 20 reporters uploading and submitting against
//! a demo server that is killed and restarted under them, then an audit of the export.
//!
//! Usage: `crash_client DEMO_DIR STOP_FILE [TASKS]`. Reporters run until STOP_FILE exists
//! (each finishes its report, riding out restarts), then the client exports everything
//! with the demo token and checks: every acknowledged case is there byte for byte, every
//! exported case is whole and was sent by us, and interrupted uploads resumed from an
//! offset no lower than the last one acknowledged. It prints one summary line and exits
//! 1 on any violation.

// A test tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Demo, load_demo, report_body};
use peluit_proto::keys::SigningKey;
use peluit_proto::sealed::SealedMessage;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Stamp difficulty the client mints; the script starts the server with the same
/// `PELUIT_POW_BITS`.
const POW_BITS: u8 = 4;

#[derive(Default)]
struct Stats {
    acked: AtomicU64,
    maybe: AtomicU64,
    put_interrupted: AtomicU64,
    resumed_nonzero: AtomicU64,
    uploads: AtomicU64,
    violations: Mutex<Vec<String>>,
    /// Envelope SHA-256 → (acknowledged case id, attachment SHA-256).
    sent: Mutex<HashMap<[u8; 32], Sent>>,
}

/// An exported case: envelope SHA-256, announced attachments, attachment SHA-256s.
type ExportedCase = ([u8; 32], u32, Vec<[u8; 32]>);

#[derive(Clone)]
struct Sent {
    case: Option<String>,
    attachment: Option<[u8; 32]>,
}

impl Stats {
    fn violation(&self, text: String) {
        eprintln!("VIOLATION: {text}");
        self.violations.lock().unwrap().push(text);
    }
}

/// Waits until the (restarted) server answers `/healthz`.
async fn wait_up(demo: &Demo) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(response) = demo.client.get(&demo.health).send().await
            && response.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("server did not come back within 120 s".into())
}

/// Whether an answer means "the server went away or refused for now": retry.
fn transient(result: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match result {
        Err(_) => true,
        Ok(response) => response.status().is_server_error(),
    }
}

/// Sends the request `build` makes until an answer is not transient, waiting for the
/// server to come back between tries; returns the answer and whether any try was lost.
async fn send_through_restarts(
    demo: &Demo,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(reqwest::Response, bool), String> {
    let mut retried = false;
    loop {
        let result = build().send().await;
        if !transient(&result) {
            return Ok((result.map_err(|e| e.to_string())?, retried));
        }
        retried = true;
        wait_up(demo).await?;
    }
}

async fn upload(demo: &Demo, stats: &Stats, sealed: &[u8]) -> Result<String, String> {
    let (response, _) = send_through_restarts(demo, || {
        demo.client
            .post(format!("{}/uploads", demo.api))
            .json(&json!({"version": 1, "sealed_size": sealed.len()}))
    })
    .await?;
    if response.status() != 201 {
        return Err(format!("create upload: {}", response.status()));
    }
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    let id = body["upload"].as_str().unwrap_or_default().to_owned();
    stats.uploads.fetch_add(1, Ordering::Relaxed);
    let mut acked = 0usize;
    let mut interrupted = false;
    let mut offset = 0usize;
    loop {
        if interrupted {
            let (response, _) = send_through_restarts(demo, || {
                demo.client.get(format!("{}/uploads/{id}", demo.api))
            })
            .await?;
            if response.status() != 200 {
                // The upload itself was lost although its creation was acknowledged.
                stats.violation(format!("upload state after restart: {}", response.status()));
                return Err("upload lost".into());
            }
            let body: Value = response.json().await.map_err(|e| e.to_string())?;
            offset = body["offset"].as_u64().unwrap_or(0) as usize;
            if offset < acked {
                stats.violation(format!(
                    "acknowledged upload offset {acked} went back to {offset}"
                ));
            }
            if offset > sealed.len() {
                stats.violation(format!("upload offset {offset} past its end"));
                return Err("bad offset".into());
            }
            if offset > 0 {
                stats.resumed_nonzero.fetch_add(1, Ordering::Relaxed);
            }
            interrupted = false;
        }
        if offset == sealed.len() {
            break;
        }
        let result = demo
            .client
            .put(format!("{}/uploads/{id}?offset={offset}", demo.api))
            .body(sealed[offset..].to_vec())
            .send()
            .await;
        match result {
            Ok(response) if response.status() == 200 => {
                let body: Value = response.json().await.map_err(|e| e.to_string())?;
                acked = body["offset"].as_u64().unwrap_or(0) as usize;
                offset = acked;
            }
            Ok(response) if response.status().is_client_error() => {
                // 409: a PUT whose answer was lost already moved the offset; ask.
                if response.status() != 409 {
                    stats.violation(format!("PUT refused: {}", response.status()));
                    return Err("put refused".into());
                }
                interrupted = true;
            }
            _ => {
                stats.put_interrupted.fetch_add(1, Ordering::Relaxed);
                interrupted = true;
                wait_up(demo).await?;
            }
        }
    }
    let (response, _) = send_through_restarts(demo, || {
        demo.client
            .post(format!("{}/uploads/{id}/complete", demo.api))
    })
    .await?;
    let status = response.status();
    if status != 200 {
        stats.violation(format!("complete after every byte: {status}"));
        return Err("complete refused".into());
    }
    Ok(id)
}

async fn one_report(demo: &Demo, stats: &Stats) -> Result<(), String> {
    let (envelope, attachment) = {
        let mut rng = rand::thread_rng();
        let content: Vec<u8> = (0..rng.gen_range(200..20_000))
            .map(|_| rng.r#gen())
            .collect();
        let envelope = peluit_proto::seal::seal_padded(&content, &demo.recipients).unwrap();
        let attachment = rng.gen_bool(0.8).then(|| {
            let content: Vec<u8> = (0..rng.gen_range(1..1_500_000))
                .map(|_| rng.r#gen())
                .collect();
            peluit_proto::seal::seal_padded(&content, &demo.recipients).unwrap()
        });
        (envelope, attachment)
    };
    let checked = SealedMessage::check(envelope.clone(), demo.recipients.len(), 1 << 20).unwrap();
    let envelope_sha = checked.sha256();
    let attachment_sha = attachment
        .as_ref()
        .map(|a| <[u8; 32]>::from(Sha256::digest(a)));
    let mut ids = Vec::new();
    if let Some(sealed) = &attachment {
        ids.push(upload(demo, stats, sealed).await?);
    }
    let body = report_body(
        &envelope,
        &envelope_sha,
        &ids,
        &SigningKey::generate(),
        POW_BITS,
    );
    // Known before it is sent, so that anything exported was sent by us.
    stats.sent.lock().unwrap().insert(
        envelope_sha,
        Sent {
            case: None,
            attachment: attachment_sha,
        },
    );
    let (response, uncertain) = send_through_restarts(demo, || {
        demo.client
            .post(format!("{}/reports", demo.api))
            .json(&body)
    })
    .await?;
    let status = response.status();
    if status == 201 {
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        let case = answer["case"].as_str().unwrap_or_default().to_owned();
        if let Some(sent) = stats.sent.lock().unwrap().get_mut(&envelope_sha) {
            sent.case = Some(case);
        }
        stats.acked.fetch_add(1, Ordering::Relaxed);
    } else if status == 409 && uncertain {
        // Stored before the crash, answer lost: never acknowledged, may be present.
        stats.maybe.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.violation(format!("submission refused: {status}"));
    }
    Ok(())
}

/// Exports everything into a file and checks it against what was sent and acknowledged.
async fn audit(demo: &Demo, stats: &Stats, scratch: &Path) -> Result<(u64, u64), String> {
    let mut response = demo
        .client
        .get(format!("{}/export?since=0", demo.api))
        .bearer_auth(&demo.token)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("export: {}", response.status()));
    }
    let path = scratch.join("export.bundle");
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    while let Some(bytes) = response.chunk().await.map_err(|e| e.to_string())? {
        file.write_all(&bytes).map_err(|e| e.to_string())?;
    }
    drop(file);
    let recipients = demo.recipients.len();
    let sent = stats.sent.lock().unwrap().clone();
    let mut problems = Vec::new();
    let mut cases: HashMap<String, ExportedCase> = HashMap::new();
    let reader = BufReader::new(std::fs::File::open(&path).map_err(|e| e.to_string())?);
    let mut bundle =
        peluit_proto::bundle::BundleReader::new(reader).map_err(|e| format!("bundle: {e}"))?;
    while let Some(mut frame) = bundle.next_frame().map_err(|e| format!("bundle: {e}"))? {
        match frame.meta().clone() {
            peluit_proto::bundle::FrameMeta::Case {
                case, attachments, ..
            } => {
                let bytes = frame
                    .read_payload_to_end(2 << 20)
                    .map_err(|e| format!("case payload: {e}"))?;
                // A whole envelope: a complete age message with the right recipients.
                match SealedMessage::check(bytes, recipients, 1 << 20) {
                    Ok(message) => {
                        cases.insert(
                            case.to_string(),
                            (message.sha256(), attachments, Vec::new()),
                        );
                    }
                    Err(_) => problems.push(format!("case {case}: envelope not whole")),
                }
            }
            peluit_proto::bundle::FrameMeta::Attachment { case, .. } => {
                let mut hasher = Sha256::new();
                let mut payload = frame.payload_reader();
                let mut buffer = vec![0u8; 1 << 16];
                loop {
                    let n = payload.read(&mut buffer).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buffer[..n]);
                }
                match cases.get_mut(&case.to_string()) {
                    Some(entry) => entry.2.push(hasher.finalize().into()),
                    None => problems.push(format!("attachment of unannounced case {case}")),
                }
            }
            _ => {
                let _ = frame.read_payload_to_end(64 << 20);
            }
        }
    }
    let by_envelope: HashMap<[u8; 32], &String> = cases
        .iter()
        .map(|(case, (sha, _, _))| (*sha, case))
        .collect();
    for (case, (envelope, announced, attachments)) in &cases {
        if attachments.len() != *announced as usize {
            problems.push(format!(
                "case {case}: {} of {announced} attachments",
                attachments.len()
            ));
        }
        match sent.get(envelope) {
            None => problems.push(format!("case {case}: never sent by us")),
            Some(s) => {
                if s.attachment.iter().copied().collect::<Vec<_>>() != *attachments {
                    problems.push(format!("case {case}: attachment bytes differ"));
                }
            }
        }
    }
    let mut acked = 0;
    for (envelope, s) in &sent {
        let Some(case) = &s.case else { continue };
        acked += 1;
        match by_envelope.get(envelope) {
            Some(found) if *found == case => {}
            Some(found) => problems.push(format!("acknowledged case {case} exported as {found}")),
            None => problems.push(format!("acknowledged case {case} missing or not identical")),
        }
    }
    for problem in problems {
        stats.violation(problem);
    }
    Ok((acked, cases.len() as u64))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: crash_client DEMO_DIR STOP_FILE [TASKS]");
        return std::process::ExitCode::from(2);
    }
    let dir = PathBuf::from(&args[1]);
    let stop = PathBuf::from(&args[2]);
    let tasks: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(20);
    let demo = Arc::new(load_demo(&dir, Duration::from_secs(60)));
    let stats = Arc::new(Stats::default());
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (demo, stats, stop) = (demo.clone(), stats.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            while !stop.exists() {
                if let Err(error) = one_report(&demo, &stats).await {
                    stats.violation(format!("reporter stopped: {error}"));
                    return;
                }
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    if let Err(error) = wait_up(&demo).await {
        stats.violation(error);
    }
    let (acked, exported) = match audit(&demo, &stats, &dir).await {
        Ok(counts) => counts,
        Err(error) => {
            stats.violation(format!("audit: {error}"));
            (0, 0)
        }
    };
    let violations = stats.violations.lock().unwrap().len();
    println!(
        "crash-client: acknowledged {acked} cases (all present and byte-identical: {}), \
         exported {exported}, ambiguous {} (stored before a kill, answer lost), uploads {}, \
         PUTs interrupted {}, resumed from a non-zero durable offset {}, violations {violations}",
        violations == 0,
        stats.maybe.load(Ordering::Relaxed),
        stats.uploads.load(Ordering::Relaxed),
        stats.put_interrupted.load(Ordering::Relaxed),
        stats.resumed_nonzero.load(Ordering::Relaxed),
    );
    if violations == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
