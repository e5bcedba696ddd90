//! The client side of `benches/ingest.sh`: seals a large attachment once into a file,
//! streams it to a demo server as one or many concurrent uploads, and fires small durable
//! submissions from many clients, printing throughput and latency.
//!
//! Usage:
//!   `ingest_client make DEMO_DIR FILE BYTES`            seal BYTES of content into FILE
//!   `ingest_client upload DEMO_DIR FILE BYTES COUNT`    COUNT concurrent uploads of FILE's first BYTES
//!   `ingest_client submit DEMO_DIR CLIENTS TOTAL BITS`  TOTAL submissions of ~4 KiB envelopes

// A benchmark tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Demo, load_demo, report_body};
use peluit_proto::keys::SigningKey;
use peluit_proto::sealed::SealedMessage;
use serde_json::{Value, json};

/// Seals `len` bytes of content into `file` with the streaming sealer (real ciphertext).
fn make(demo: &Demo, file: &Path, len: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    let mut sealer = peluit_proto::seal::StreamSealer::new(&demo.recipients, len).unwrap();
    out.write_all(&sealer.take_output()).unwrap();
    let block = vec![0x5au8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&sealer.push(&block[..n]).unwrap()).unwrap();
        left -= n as u64;
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        out.write_all(&tail).unwrap();
    }
    out.flush().unwrap();
    println!(
        "sealed {len} bytes of content into {} bytes",
        sealer.sealed_len()
    );
}

/// Streams the first `len` bytes of `file` as the body of one PUT, 256 KiB at a time.
fn file_body(file: &Path, len: u64) -> reqwest::Body {
    let reader = std::fs::File::open(file).unwrap().take(len);
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let mut buffer = vec![0u8; 256 << 10];
        match reader.read(&mut buffer) {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buffer)), reader))
            }
            Err(error) => Some((Err(error), reader)),
        }
    });
    reqwest::Body::wrap_stream(stream)
}

async fn upload(demo: &Demo, file: &Path, len: u64) {
    let created: Value = demo
        .client
        .post(format!("{}/uploads", demo.api))
        .json(&json!({"version": 1, "sealed_size": len}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["upload"].as_str().unwrap().to_owned();
    let response = demo
        .client
        .put(format!("{}/uploads/{id}?offset=0", demo.api))
        .header("content-length", len.to_string())
        .body(file_body(file, len))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "PUT refused");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["offset"].as_u64(), Some(len));
}

async fn submit(demo: Arc<Demo>, clients: usize, total: usize, bits: u8) {
    // Everything is sealed and stamped before the clock starts.
    let content = vec![0x42u8; 3_900];
    let bodies: Vec<Value> = (0..total)
        .map(|_| {
            let envelope = peluit_proto::seal::seal_padded(&content, &demo.recipients).unwrap();
            let sha = SealedMessage::check(envelope.clone(), demo.recipients.len(), 1 << 20)
                .unwrap()
                .sha256();
            report_body(&envelope, &sha, &[], &SigningKey::generate(), bits)
        })
        .collect();
    let envelope_len = peluit_proto::seal::seal_padded(&content, &demo.recipients)
        .unwrap()
        .len();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (demo, bodies, next, latencies) = (
            demo.clone(),
            bodies.clone(),
            next.clone(),
            latencies.clone(),
        );
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() {
                    return;
                }
                let began = Instant::now();
                let response = demo
                    .client
                    .post(format!("{}/reports", demo.api))
                    .json(&bodies[i])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201, "submission refused");
                let elapsed = began.elapsed();
                latencies.lock().unwrap().push(elapsed);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "submissions: {total} x {envelope_len}-byte envelopes from {clients} clients in {seconds:.2} s: \
         {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        total as f64 / seconds,
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let demo = Arc::new(load_demo(Path::new(&args[2]), Duration::from_secs(3600)));
    match args[1].as_str() {
        "make" => make(&demo, Path::new(&args[3]), args[4].parse().unwrap()),
        "upload" => {
            let file = Path::new(&args[3]).to_path_buf();
            let len: u64 = args[4].parse().unwrap();
            let count: usize = args[5].parse().unwrap();
            let start = Instant::now();
            let mut handles = Vec::new();
            for _ in 0..count {
                let (demo, file) = (demo.clone(), file.clone());
                handles.push(tokio::spawn(async move { upload(&demo, &file, len).await }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
            let seconds = start.elapsed().as_secs_f64();
            let total = len * count as u64;
            println!(
                "upload: {count} x {len} bytes in {seconds:.2} s: {:.1} MB/s",
                total as f64 / seconds / 1e6
            );
        }
        "submit" => {
            submit(
                demo,
                args[3].parse().unwrap(),
                args[4].parse().unwrap(),
                args[5].parse().unwrap(),
            )
            .await
        }
        other => panic!("unknown mode {other}"),
    }
}
