//! `peluit-audit bundle FILE`: checks an export or reply bundle without any secret key:
//! framing and digests (proto's `BundleReader`), the manifest's signature, every reply's
//! signature, and that every sealed payload is age with the manifest's stanza count.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use peluit_proto::Error as ProtoError;
use peluit_proto::bundle::{BundleError, BundleReader, FrameMeta};
use peluit_proto::keys::VerifyingKey;
use peluit_proto::limits::{MAX_ENVELOPE_LEN, MAX_MANIFEST_LEN, MAX_RECIPIENTS};
use peluit_proto::manifest::{Purpose, SignedManifest, VerifyPolicy};
use peluit_proto::reply::{MAX_SEALED_REPLY_JSON_LEN, SealedReply};
use serde::Serialize;

use crate::error::{AuditError, AuditResult};
use crate::findings::{Finding, Place};
use crate::scan::{AgeScanner, Expect, scan_message};

/// How to check a bundle.
#[derive(Clone, Debug, Default)]
pub struct BundleOptions {
    /// The institution's pinned manifest key: a manifest in the bundle (or given with
    /// `manifest`) must verify under it.
    pub manifest_key: Option<VerifyingKey>,
    /// A signed manifest to check sealed data and replies against when the bundle
    /// carries none (export bundles usually do not).
    pub manifest: Option<Vec<u8>>,
}

/// The outcome of a bundle check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BundleAudit {
    /// Every problem; empty for an intact bundle.
    pub findings: Vec<Finding>,
    /// `export` or `reply`, once the header was read.
    pub kind: Option<String>,
    /// The institution it is for.
    pub institution: Option<String>,
    /// The day it was written.
    pub created: Option<String>,
    /// Frames by kind.
    pub frames: std::collections::BTreeMap<String, u64>,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// The End frame's digest (hex) when the whole bundle verified.
    pub digest: Option<String>,
    /// Remarks that are not findings.
    pub notes: Vec<String>,
}

impl BundleAudit {
    /// Whether the bundle passed.
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// What sealed payloads are checked against.
struct Keys {
    counts: Vec<usize>,
    reply_signers: Vec<VerifyingKey>,
    known: bool,
}

impl Keys {
    fn unknown() -> Self {
        Self {
            counts: (1..=MAX_RECIPIENTS).collect(),
            reply_signers: Vec::new(),
            known: false,
        }
    }
}

/// Checks the bundle in `path`. `Err` only when the file cannot be read.
pub fn audit_bundle(path: &Path, options: &BundleOptions) -> AuditResult<BundleAudit> {
    let file = File::open(path).map_err(|e| AuditError::io("open", path, &e))?;
    let mut audit = BundleAudit::default();
    let mut keys = Keys::unknown();
    if let Some(bytes) = &options.manifest {
        match manifest_keys(bytes, options.manifest_key.as_ref()) {
            Ok(k) => keys = k,
            Err(why) => audit
                .findings
                .push(Finding::whole(format!("the given manifest: {why}"))),
        }
    }
    let mut reader = match BundleReader::new(BufReader::with_capacity(1 << 20, file)) {
        Ok(reader) => reader,
        Err(error) => {
            audit.findings.push(Finding::whole(framing(&error, path)?));
            return Ok(audit);
        }
    };
    let header = reader.header().clone();
    audit.kind = Some(header.kind.as_str().to_owned());
    audit.institution = Some(header.institution.to_string());
    audit.created = Some(header.created.to_string());
    loop {
        let mut frame = match reader.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                audit.findings.push(Finding::whole(framing(&error, path)?));
                return Ok(audit);
            }
        };
        let meta = frame.meta().clone();
        let place = Place::Frame {
            index: frame.index(),
            frame: meta.kind_name().to_owned(),
        };
        *audit.frames.entry(meta.kind_name().to_owned()).or_default() += 1;
        audit.payload_bytes += frame.payload_len();
        let mut find = |why: String| {
            audit.findings.push(Finding {
                place: place.clone(),
                why,
            })
        };
        let read_all = |frame: &mut peluit_proto::bundle::Frame<'_, _>, limit: usize| {
            frame.read_payload_to_end(limit)
        };
        match &meta {
            FrameMeta::Manifest => match read_all(&mut frame, MAX_MANIFEST_LEN) {
                Ok(bytes) => match manifest_keys(&bytes, options.manifest_key.as_ref()) {
                    Ok(k) => {
                        let signed = SignedManifest::from_json(&bytes).ok();
                        if signed.is_some_and(|s| s.manifest().institution.id != header.institution)
                        {
                            find("the manifest is for another institution than the bundle".into());
                        }
                        keys = k;
                    }
                    Err(why) => find(why),
                },
                Err(error) => find(payload_error(&error)),
            },
            FrameMeta::Case { .. } | FrameMeta::FollowUp { .. } => {
                match read_all(&mut frame, MAX_ENVELOPE_LEN) {
                    Ok(bytes) => {
                        if let Err(why) = scan_message(&bytes, &keys.counts) {
                            find(why);
                        }
                    }
                    Err(error) => find(payload_error(&error)),
                }
            }
            FrameMeta::Attachment { .. } => {
                let mut scanner = AgeScanner::new(Expect::Complete {
                    counts: &keys.counts,
                });
                let mut payload = frame.payload_reader();
                let mut buf = vec![0u8; 1 << 20];
                let mut failed = None;
                loop {
                    match payload.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => scanner.feed(&buf[..n]),
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
                if let Some(error) = failed {
                    if error.kind() == std::io::ErrorKind::InvalidData {
                        find(format!("payload damaged: {error}"));
                        continue;
                    }
                    return Err(AuditError::io("read", path, &error));
                }
                if let Err(why) = scanner.finish() {
                    find(why);
                }
            }
            FrameMeta::Reply => match read_all(&mut frame, MAX_SEALED_REPLY_JSON_LEN) {
                Ok(bytes) => match SealedReply::from_json(&bytes) {
                    Ok(reply) => {
                        if *reply.institution() != header.institution {
                            find("the reply is for another institution than the bundle".into());
                        } else if keys.known {
                            let verdict = keys
                                .counts
                                .iter()
                                .map(|c| reply.verify(&keys.reply_signers, c + 1))
                                .find(Result::is_ok)
                                .unwrap_or_else(|| {
                                    reply.verify(&keys.reply_signers, keys.counts[0] + 1)
                                });
                            if let Err(error) = verdict {
                                find(format!(
                                    "the reply does not verify against the manifest ({error})"
                                ));
                            }
                        }
                        let plus: Vec<usize> = keys.counts.iter().map(|c| c + 1).collect();
                        if let Err(why) = scan_message(reply.ciphertext(), &plus) {
                            find(format!("reply ciphertext: {why}"));
                        }
                    }
                    Err(error) => find(format!("not a sealed reply ({error})")),
                },
                Err(error) => find(payload_error(&error)),
            },
            FrameMeta::Delete { .. } => {}
        }
    }
    if let Some(summary) = reader.summary() {
        audit.digest = Some(hex::encode(summary.digest));
    }
    if !keys.known {
        audit.notes.push(
            "no manifest in the bundle and none given (--manifest): stanza counts were only \
             checked to be between 1 and 16, and reply signatures were not checked"
                .into(),
        );
    }
    if options.manifest_key.is_none() {
        audit
            .notes
            .push("no --manifest-key: the manifest's signature was not checked".into());
    }
    Ok(audit)
}

/// A framing error is a finding; an I/O error stops the audit.
fn framing(error: &ProtoError, path: &Path) -> AuditResult<String> {
    match error {
        ProtoError::Bundle(BundleError::Io(kind)) => {
            Err(AuditError::io("read", path, &std::io::Error::from(*kind)))
        }
        other => Ok(format!("bundle framing: {other}")),
    }
}

fn payload_error(error: &ProtoError) -> String {
    format!("payload: {error}")
}

/// Parses (and, with a pinned key, verifies) a signed manifest; returns what sealed data
/// is checked against.
fn manifest_keys(bytes: &[u8], pinned: Option<&VerifyingKey>) -> Result<Keys, String> {
    let signed =
        SignedManifest::from_json(bytes).map_err(|e| format!("not a signed manifest ({e})"))?;
    let m = signed.manifest();
    match pinned {
        // Signature and every rule; its dates are reported, not judged, here.
        Some(key) => {
            signed
                .verify(&VerifyPolicy::new(*key, m.valid_from))
                .map_err(|e| format!("the manifest does not verify under the pinned key ({e})"))?;
        }
        None => m
            .check()
            .map_err(|e| format!("the manifest breaks a rule ({e})"))?,
    }
    let counts = vec![
        m.keys
            .iter()
            .filter(|k| matches!(k.purpose, Purpose::Seal | Purpose::EscrowSeal))
            .count(),
    ];
    let reply_signers = m
        .keys
        .iter()
        .filter(|k| k.purpose == Purpose::ReplySigning)
        .filter_map(|k| k.public.parse().ok())
        .collect();
    Ok(Keys {
        counts,
        reply_signers,
        known: true,
    })
}
