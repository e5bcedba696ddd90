//! Builds a store for the scan benchmark (`bench/scan.sh`): real age ciphertext sealed by
//! proto to a three-recipient manifest, written through the store API.
//!
//! Usage: `make_bench_store DIR MIB` makes `DIR/data` (and `DIR/manifest-key.txt`, the
//! `INSTITUTION=KEY` pin) with MIB MiB of attachments in 64 MiB uploads, plus 1,000 cases.

use std::path::PathBuf;

use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::limits::SEALED_CHUNK_SIZE;
use peluit_proto::manifest::{
    FormDefinition, Institution, Manifest, ManifestKey, Purpose, VerifyPolicy,
};
use peluit_proto::seal::{StreamSealer, padded_len};
use peluit_proto::sealed::SealedChunk;
use peluit_store::{CiphertextStore, ManifestBytes, NewCase, PowHash, SledStore};
use sha2::{Digest, Sha256};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(mib)) = (args.next(), args.next()) else {
        return Err("usage: make_bench_store DIR MIB".into());
    };
    let dir = PathBuf::from(dir);
    let mib: u64 = mib.parse()?;
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let today = Day::from_unix_seconds(i64::try_from(seconds)?)?;
    let inst: InstitutionId = "itjen-bench".parse()?;
    let manifest_key = SigningKey::generate();
    let identities = [
        SealIdentity::generate(),
        SealIdentity::generate(),
        SealIdentity::generate(),
    ];
    let reply = SigningKey::generate();
    let manifest = Manifest {
        version: 1,
        institution: Institution {
            id: inst.clone(),
            name: "Inspektorat Bench".into(),
        },
        origins: vec!["http://127.0.0.1:8080".into()],
        serial: 1,
        valid_from: today,
        valid_until: today,
        keys: vec![
            ManifestKey {
                holder: "investigator:a".into(),
                purpose: Purpose::Seal,
                public: identities[0].recipient().to_string(),
            },
            ManifestKey {
                holder: "investigator:a".into(),
                purpose: Purpose::ReplySigning,
                public: reply.verifying_key().to_string(),
            },
            ManifestKey {
                holder: "investigator:b".into(),
                purpose: Purpose::Seal,
                public: identities[1].recipient().to_string(),
            },
            ManifestKey {
                holder: "investigator:b".into(),
                purpose: Purpose::ReplySigning,
                public: SigningKey::generate().verifying_key().to_string(),
            },
            ManifestKey {
                holder: "escrow".into(),
                purpose: Purpose::EscrowSeal,
                public: identities[2].recipient().to_string(),
            },
        ],
        form: FormDefinition::kws_default(),
    };
    let signed = manifest.sign(&manifest_key);
    let verified = signed.verify(&VerifyPolicy::new(manifest_key.verifying_key(), today))?;
    let store = SledStore::open(dir.join("data"))?;
    store.put_manifest(&inst, 1, &ManifestBytes::new(signed.to_json()))?;
    std::fs::write(
        dir.join("manifest-key.txt"),
        format!("{inst}={}\n", manifest_key.verifying_key()),
    )?;

    // Attachments: 64 MiB of content each, sealed as a page seals, appended 256 chunks
    // (16 MiB) per step.
    let content = vec![0x5au8; 64 * 1024];
    let per_upload: u64 = 64 * 1024 * 1024;
    let mut uploads = Vec::new();
    let mut left = mib * 1024 * 1024;
    while left > 0 {
        let len = left.min(per_upload);
        left -= len;
        let mut sealer = StreamSealer::new(&verified.seal_recipients(), len)?;
        let id = store.create_upload(&inst, sealer.total_len(), today)?;
        let mut pending = sealer.take_output();
        let mut offset = 0;
        let mut pushed = 0;
        let mut flush = |pending: &mut Vec<u8>, all: bool| -> Result<(), Failure> {
            let whole = if all {
                pending.len()
            } else {
                pending.len() / SEALED_CHUNK_SIZE * SEALED_CHUNK_SIZE
            };
            if whole >= 256 * SEALED_CHUNK_SIZE || (all && whole > 0) {
                let rest = pending.split_off(whole);
                let chunks: Vec<SealedChunk> = pending
                    .chunks(SEALED_CHUNK_SIZE)
                    .map(|c| SealedChunk::new(c.to_vec()))
                    .collect();
                for run in chunks.chunks(256) {
                    offset = store.append_upload_chunks(&inst, id, offset, run)?;
                }
                *pending = rest;
            }
            Ok(())
        };
        while pushed < len {
            let n = (len - pushed).min(content.len() as u64) as usize;
            pending.extend(sealer.push(&content[..n])?);
            pushed += n as u64;
            flush(&mut pending, false)?;
        }
        while let Some(tail) = sealer.next_tail()? {
            pending.extend(tail);
        }
        flush(&mut pending, true)?;
        store.complete_upload(&inst, id)?;
        uploads.push(id);
    }
    // Cases: the first takes every upload; the rest are short reports.
    for i in 0..1000u32 {
        let envelope = peluit_proto::sealed::SealedMessage::check(
            peluit_proto::seal::seal_padded(
                format!("{{\"case\":{i}}}").as_bytes(),
                &verified.seal_recipients(),
            )?,
            3,
            1 << 20,
        )?;
        let attachments = if i == 0 {
            std::mem::take(&mut uploads).into_iter().take(20).collect()
        } else {
            Vec::new()
        };
        store.submit_case(
            &inst,
            NewCase {
                day: today,
                size_bucket: padded_len(envelope.as_bytes().len() as u64),
                mailbox_key: SigningKey::generate().verifying_key(),
                envelope,
                attachments,
                pow_hash: PowHash::from_bytes(Sha256::digest(i.to_be_bytes()).into()),
            },
        )?;
    }
    println!("{}", dir.join("data").display());
    Ok(())
}
