//! Seals a file with proto's streaming API, file to file, padded to its size bucket: the
//! sealer holds one 64 KiB piece at a time, whatever the file's size.
//!
//! Usage: `cargo run --release -p peluit-proto --example seal_file -- RECIPIENTS IN OUT`,
//! where RECIPIENTS is a file of `age1…` lines (as `age-keygen -y` writes) or one `age1…`.
//! Used by `benches/compare.sh`; the result opens with `open_file`, and with `age -d` to the
//! padded form (docs/protocol.md#padding).

use std::fs::File;
use std::io::{BufWriter, Read, Write};

use peluit_proto::keys::SealRecipient;
use peluit_proto::limits::CHUNK_SIZE;
use peluit_proto::seal::StreamSealer;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn recipients(arg: &str) -> Result<Vec<SealRecipient>> {
    let text = if arg.starts_with("age1") {
        arg.to_owned()
    } else {
        std::fs::read_to_string(arg)?
    };
    let recipients = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::parse)
        .collect::<std::result::Result<Vec<SealRecipient>, _>>()?;
    Ok(recipients)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [recipients_arg, input, output] = args.as_slice() else {
        return Err("usage: seal_file RECIPIENTS IN OUT".into());
    };
    let recipients = recipients(recipients_arg)?;
    let mut input = File::open(input)?;
    let content_len = input.metadata()?.len();
    let mut out = BufWriter::new(File::create(output)?);

    let mut sealer = StreamSealer::new(&recipients, content_len)?;
    out.write_all(&sealer.take_output())?;
    let mut piece = vec![0u8; CHUNK_SIZE];
    let mut left = content_len;
    while left > 0 {
        // Read exactly the declared length: a file that grows meanwhile is cut, one that
        // shrinks is an error, never a message whose length prefix lies.
        let n = usize::try_from(left.min(CHUNK_SIZE as u64))?;
        input.read_exact(&mut piece[..n])?;
        out.write_all(&sealer.push(&piece[..n])?)?;
        left -= n as u64;
    }
    while let Some(tail) = sealer.next_tail()? {
        out.write_all(&tail)?;
    }
    out.flush()?;
    eprintln!(
        "sealed {content_len} bytes to {} recipient(s): {} bytes, sha256 {}",
        recipients.len(),
        sealer.sealed_len(),
        hex::encode(sealer.sealed_sha256())
    );
    Ok(())
}
