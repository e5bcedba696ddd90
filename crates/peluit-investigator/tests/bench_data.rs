//! Writes the benchmark data of issue 5 (run by `bench/import.sh`, never by default):
//! a desk, an export bundle with one large attachment, one with many small reports, and
//! the same sealed attachment alone with an age identity file, for `rage -d` / `age -d`.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;

use peluit_proto::bundle::{BundleHeader, BundleKind, BundleWriter, FrameMeta};
use peluit_proto::day::Day;
use peluit_proto::envelope::{Answer, AttachmentRef, Report, seal_report};
use peluit_proto::ids::{CaseId, InstitutionId, UploadId};
use peluit_proto::keys::{SealIdentity, SigningKey};
use peluit_proto::manifest::{
    FormDefinition, Institution, Manifest, ManifestKey, Purpose, VerifyPolicy,
};
use peluit_proto::receipt::Receipt;
use peluit_proto::seal::StreamSealer;
use peluit_proto::wordlist::Language;
use zeroize::Zeroizing;

#[test]
#[ignore = "writes gigabytes; run by bench/import.sh"]
fn write_bench_data() {
    let out = PathBuf::from(std::env::var("PELUIT_BENCH_DIR").unwrap());
    let big: u64 = std::env::var("PELUIT_BENCH_BYTES").map_or(1 << 30, |v| v.parse().unwrap());
    let small: usize = std::env::var("PELUIT_BENCH_REPORTS").map_or(10_000, |v| v.parse().unwrap());
    let today: Day = "2026-03-14".parse().unwrap();
    let institution: InstitutionId = "itjen-bench".parse().unwrap();
    let investigator = SealIdentity::generate();
    let escrow = SealIdentity::generate();
    let reply = SigningKey::generate();
    let manifest_key = SigningKey::generate();
    let manifest = Manifest {
        version: 1,
        institution: Institution {
            id: institution.clone(),
            name: "Bench".into(),
        },
        origins: vec!["https://bench.example".into()],
        serial: 1,
        valid_from: today,
        valid_until: "2027-03-14".parse().unwrap(),
        keys: vec![
            ManifestKey {
                holder: "inv".into(),
                purpose: Purpose::Seal,
                public: investigator.recipient().to_string(),
            },
            ManifestKey {
                holder: "inv".into(),
                purpose: Purpose::ReplySigning,
                public: reply.verifying_key().to_string(),
            },
            ManifestKey {
                holder: "escrow".into(),
                purpose: Purpose::EscrowSeal,
                public: escrow.recipient().to_string(),
            },
        ],
        form: FormDefinition::kws_default(),
    }
    .sign(&manifest_key);
    let verified = manifest
        .verify(&VerifyPolicy::new(manifest_key.verifying_key(), today))
        .unwrap();
    std::fs::write(out.join("manifest.json"), manifest.to_json()).unwrap();
    std::fs::write(
        out.join("manifest-key.txt"),
        manifest_key.verifying_key().to_string(),
    )
    .unwrap();
    std::fs::write(
        out.join("identity.txt"),
        investigator.expose_secret_string().as_bytes(),
    )
    .unwrap();
    // The desk's key file, protected with the benchmark passphrase.
    let keys = peluit_investigator::keyfile::InvestigatorKeys {
        holder: "inv".into(),
        identity: SealIdentity::parse_secret(&investigator.expose_secret_string()).unwrap(),
        reply_key: SigningKey::from_seed(&reply.expose_seed()),
    };
    let pass = peluit_investigator::secrets::Passphrase::from_text(Zeroizing::new(
        "bench passphrase".into(),
    ));
    peluit_investigator::keyfile::write_investigator(&out.join("investigator.key"), &keys, &pass)
        .unwrap();
    let header = BundleHeader {
        kind: BundleKind::Export,
        institution: institution.clone(),
        created: today,
        cursor_from: 0,
        cursor_to: 1,
    };
    let reporter = Receipt::generate().derive(&institution);
    let report = |attachments: Vec<AttachmentRef>| Report {
        institution: institution.clone(),
        language: Language::Id,
        date: today,
        answers: vec![
            Answer::new("category", "suap"),
            Answer::new("what_happened", "Uang pelicin untuk izin."),
        ],
        attachments,
        reply_to: reporter.reply_recipient(),
        mailbox: reporter.mailbox_public_key(),
    };

    // One large attachment, sealed chunk by chunk to a file (memory stays small).
    let sealed_path = out.join("attachment.age");
    let mut sealed_file = std::io::BufWriter::new(std::fs::File::create(&sealed_path).unwrap());
    let mut sealer = StreamSealer::new(&verified.seal_recipients(), big).unwrap();
    sealed_file.write_all(&sealer.take_output()).unwrap();
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 253) as u8).collect();
    let mut left = big;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        sealed_file
            .write_all(&sealer.push(&chunk[..n]).unwrap())
            .unwrap();
        left -= n as u64;
    }
    while let Some(tail) = sealer.next_tail().unwrap() {
        sealed_file.write_all(&tail).unwrap();
    }
    sealed_file.flush().unwrap();
    drop(sealed_file);
    let upload = UploadId::random();
    let case = CaseId::random();
    let envelope = seal_report(
        &report(vec![AttachmentRef {
            upload,
            name: "video.mp4".into(),
            media_type: "video/mp4".into(),
            size: big,
            sealed_sha256: sealer.sealed_sha256(),
        }]),
        &verified,
    )
    .unwrap();
    let mut writer = BundleWriter::new(
        std::io::BufWriter::new(std::fs::File::create(out.join("big.bundle")).unwrap()),
        &header,
    )
    .unwrap();
    writer
        .write_frame(&FrameMeta::Manifest, &manifest.to_json())
        .unwrap();
    writer
        .write_frame(
            &FrameMeta::Case {
                case,
                day: today,
                mailbox_key: reporter.mailbox_public_key(),
                attachments: 1,
            },
            envelope.as_bytes(),
        )
        .unwrap();
    let sealed_len = std::fs::metadata(&sealed_path).unwrap().len();
    writer
        .write_frame_streamed(
            &FrameMeta::Attachment {
                case,
                upload,
                index: 0,
            },
            sealed_len,
            std::fs::File::open(&sealed_path).unwrap(),
        )
        .unwrap();
    writer.finish().unwrap().flush().unwrap();

    // Many small reports; their envelopes concatenated too, for the age CLIs.
    let mut writer = BundleWriter::new(
        std::io::BufWriter::new(std::fs::File::create(out.join("small.bundle")).unwrap()),
        &header,
    )
    .unwrap();
    writer
        .write_frame(&FrameMeta::Manifest, &manifest.to_json())
        .unwrap();
    let envelopes = out.join("envelopes");
    std::fs::create_dir_all(&envelopes).unwrap();
    for i in 0..small {
        let envelope = seal_report(&report(vec![]), &verified).unwrap();
        let case = CaseId::random();
        writer
            .write_frame(
                &FrameMeta::Case {
                    case,
                    day: today,
                    mailbox_key: reporter.mailbox_public_key(),
                    attachments: 0,
                },
                envelope.as_bytes(),
            )
            .unwrap();
        std::fs::write(envelopes.join(format!("{i}.age")), envelope.as_bytes()).unwrap();
    }
    writer.finish().unwrap().flush().unwrap();
}
