//! Writes the seed corpora in `fuzz/seeds/<target>/`: small, valid inputs for every target,
//! made with proto's own writers and the fixture keys, so the fuzzers start from accepted
//! structures. Run `cargo run --manifest-path fuzz/Cargo.toml --bin write_seeds` and commit.
//!
//! Ciphertext differs on each run (age picks fresh ephemeral keys and nonces); every other
//! seed is the same bytes each time.

use std::path::{Path, PathBuf};

use peluit_fuzz as fixtures;
use peluit_proto::auth::{Challenge, respond};
use peluit_proto::bundle::{BundleHeader, BundleKind, BundleWriter, FrameMeta};
use peluit_proto::envelope::{
    Answer, AttachmentRef, FollowUp, Report, seal_follow_up, seal_report,
};
use peluit_proto::header::inspect_header;
use peluit_proto::ids::{CaseId, UploadId};
use peluit_proto::pow::Stamp;
use peluit_proto::receipt::Receipt;
use peluit_proto::reply::{Reply, ReplyKind, SealedReply, Status, seal_reply};
use peluit_proto::seal::{open_padded, seal, seal_padded};
use peluit_proto::wordlist::Language;
use zeroize::Zeroizing;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Seeds {
    root: PathBuf,
}

impl Seeds {
    fn write(&self, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
        Ok(())
    }

    /// A seed for a two-layer target: the mode byte, then the input.
    fn write_mode(&self, target: &str, name: &str, mode: u8, bytes: &[u8]) -> Result<()> {
        let mut seed = vec![mode];
        seed.extend_from_slice(bytes);
        self.write(target, name, &seed)
    }
}

fn age_header(seeds: &Seeds) -> Result<()> {
    let one = [fixtures::investigator().recipient()];
    let three = [
        fixtures::investigator().recipient(),
        fixtures::escrow().recipient(),
        fixtures::reporter().recipient(),
    ];
    let padded = seal_padded(b"laporan", &one)?;
    seeds.write("age_header", "padded_1_recipient.age", &padded)?;
    let raw = seal(b"isi", &three)?;
    seeds.write("age_header", "raw_3_recipients.age", &raw)?;
    let header_len = inspect_header(&raw)?.header_len;
    seeds.write("age_header", "header_only.age", &raw[..header_len])?;
    // The same header without the grease stanza, as the Go age CLI writes them.
    let text = String::from_utf8(raw[..header_len].to_vec())?;
    let mut lines = text.split_inclusive('\n').peekable();
    let mut stripped = String::new();
    while let Some(line) = lines.next() {
        if line.starts_with("-> ") && line.contains("-grease") {
            // Skip the stanza's body lines, up to and including its short last line.
            while let Some(body) = lines.next_if(|l| !l.starts_with("-> ") && !l.starts_with("---"))
            {
                if body.len() < 65 {
                    break;
                }
            }
            continue;
        }
        stripped.push_str(line);
    }
    seeds.write("age_header", "no_grease.age", stripped.as_bytes())?;
    Ok(())
}

fn receipt_parse(seeds: &Seeds) -> Result<()> {
    let receipt = Receipt::from_entropy(&Zeroizing::new(*b"peluit-seed-1"));
    let id = receipt.words(Language::Id);
    let en = receipt.words(Language::En);
    seeds.write("receipt_parse", "id.txt", id.as_bytes())?;
    seeds.write("receipt_parse", "en.txt", en.as_bytes())?;
    // As a reporter might type it: capitals, four-letter prefixes, dashes and commas.
    let typed: Vec<String> = id
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            let w = if i % 2 == 0 { &w[..w.len().min(4)] } else { w };
            if i % 3 == 0 {
                w.to_uppercase()
            } else {
                w.to_owned()
            }
        })
        .collect();
    seeds.write("receipt_parse", "typed.txt", typed.join(" - ,").as_bytes())?;
    Ok(())
}

fn auth_json(seeds: &Seeds) -> Result<()> {
    let challenge = Challenge::from_issued(fixtures::institution(), [9; 32]);
    seeds.write("auth_json", "challenge.json", &challenge.to_json())?;
    let response = respond(&challenge, &fixtures::mailbox_key());
    seeds.write("auth_json", "response.json", &response.to_json())?;
    Ok(())
}

fn pow_stamp(seeds: &Seeds) -> Result<()> {
    let stamp = Stamp::mint(&[0x5a; 32], 8);
    seeds.write("pow_stamp", "stamp.json", &stamp.to_json())?;
    Ok(())
}

fn manifest_json(seeds: &Seeds) -> Result<()> {
    let json = fixtures::manifest().signed().to_json();
    seeds.write("manifest_json", "manifest.json", &json)?;
    Ok(())
}

fn sealed_reply(kind: ReplyKind, text: &str) -> Result<SealedReply> {
    let reply = Reply {
        case: CaseId::from_bytes([7; 16]),
        seq: 1,
        date: fixtures::today(),
        kind,
        text: text.to_owned(),
        attachments: Vec::new(),
    };
    Ok(seal_reply(
        &reply,
        &fixtures::reporter().recipient(),
        &fixtures::mailbox_key().verifying_key(),
        &fixtures::institution(),
        &fixtures::inspectorate(),
        &fixtures::reply_signer(),
    )?)
}

fn reply_json(seeds: &Seeds) -> Result<()> {
    let reporter = [fixtures::reporter()];
    let message = sealed_reply(ReplyKind::Message, "Terima kasih atas laporan Anda.")?;
    seeds.write_mode("reply_json", "sealed_message.json", 0, &message.to_json())?;
    let plaintext = open_padded(message.ciphertext(), &reporter, 1 << 20)?;
    seeds.write_mode("reply_json", "message_plaintext.json", 1, &plaintext)?;
    let status = sealed_reply(ReplyKind::Status(Status::ALL[1]), "")?;
    let plaintext = open_padded(status.ciphertext(), &reporter, 1 << 20)?;
    seeds.write_mode("reply_json", "status_plaintext.json", 1, &plaintext)?;
    Ok(())
}

fn attachment(n: u8) -> AttachmentRef {
    AttachmentRef {
        upload: UploadId::from_bytes([n; 16]),
        name: format!("bukti-{n}.pdf"),
        media_type: "application/pdf".to_owned(),
        size: 12_345,
        sealed_sha256: [n; 32],
    }
}

fn report() -> Report {
    Report {
        institution: fixtures::institution(),
        language: Language::Id,
        date: fixtures::today(),
        answers: vec![
            Answer::new("category", "pengadaan"),
            Answer::new("what_happened", "Harga kontrak digelembungkan.\nDua kali."),
            Answer::new("who_involved", "Pejabat pembuat komitmen"),
            Answer::new("where", "Kantor wilayah"),
            Answer::new("when", "Maret 2026"),
            Answer::new("how_discovered", "Dokumen lelang"),
            Answer::new("estimated_loss", "250000000"),
            Answer::new("free_text", ""),
        ],
        attachments: vec![attachment(1)],
        reply_to: fixtures::reporter().recipient(),
        mailbox: fixtures::mailbox_key().verifying_key(),
    }
}

fn envelope(seeds: &Seeds) -> Result<Vec<u8>> {
    let investigator = [fixtures::investigator()];
    let sealed = seal_report(&report(), fixtures::manifest())?;
    let plaintext = open_padded(sealed.as_bytes(), &investigator, 1 << 20)?;
    seeds.write_mode("envelope", "report.json", 0, &plaintext)?;
    let follow_up = FollowUp {
        institution: fixtures::institution(),
        date: fixtures::today(),
        text: "Ada dokumen baru.".to_owned(),
        attachments: vec![attachment(2)],
    };
    let sealed_follow_up = seal_follow_up(&follow_up, fixtures::manifest())?;
    let plaintext = open_padded(sealed_follow_up.as_bytes(), &investigator, 1 << 20)?;
    seeds.write_mode("envelope", "follow_up.json", 1, &plaintext)?;
    Ok(sealed.into_bytes())
}

fn bundle(seeds: &Seeds, sealed_report: &[u8]) -> Result<()> {
    let case = CaseId::from_bytes([3; 16]);
    let header = |kind| BundleHeader {
        kind,
        institution: fixtures::institution(),
        created: fixtures::today(),
        cursor_from: 10,
        cursor_to: if kind == BundleKind::Export { 12 } else { 10 },
    };
    let manifest = fixtures::manifest().signed().to_json();

    let mut export = BundleWriter::new(Vec::new(), &header(BundleKind::Export))?;
    export.write_frame(&FrameMeta::Manifest, &manifest)?;
    export.write_frame(
        &FrameMeta::Case {
            case,
            day: fixtures::today(),
            mailbox_key: fixtures::mailbox_key().verifying_key(),
            attachments: 0,
        },
        sealed_report,
    )?;
    export.write_frame(
        &FrameMeta::Delete {
            case: CaseId::from_bytes([4; 16]),
        },
        &[],
    )?;
    seeds.write("bundle", "export.bundle", &export.finish()?)?;

    let reply = sealed_reply(ReplyKind::Message, "Laporan sedang ditelaah.")?;
    let mut replies = BundleWriter::new(Vec::new(), &header(BundleKind::Reply))?;
    replies.write_frame(&FrameMeta::Reply, &reply.to_json())?;
    seeds.write("bundle", "reply.bundle", &replies.finish()?)?;

    let empty = BundleWriter::new(Vec::new(), &header(BundleKind::Export))?;
    seeds.write("bundle", "empty.bundle", &empty.finish()?)?;
    Ok(())
}

fn main() -> Result<()> {
    let root = std::env::args().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"),
        PathBuf::from,
    );
    let seeds = Seeds { root };
    age_header(&seeds)?;
    receipt_parse(&seeds)?;
    auth_json(&seeds)?;
    pow_stamp(&seeds)?;
    manifest_json(&seeds)?;
    reply_json(&seeds)?;
    let sealed_report = envelope(&seeds)?;
    bundle(&seeds, &sealed_report)?;
    eprintln!("seeds written to {}", seeds.root.display());
    Ok(())
}
