//! Opens a padded message with proto's streaming API, file to file: each 64 KiB chunk is
//! authenticated before it is written, and the output is kept only if the whole message is.
//!
//! Usage: `cargo run --release -p peluit-proto --example open_file -- IDENTITY IN OUT`,
//! where IDENTITY is an age identity file (`AGE-SECRET-KEY-1…` lines; `#` comments) and OUT
//! is a path, `-` for standard output or `/dev/null`. A path is written as `OUT.partial` and
//! renamed only after the end verifies (docs/protocol.md#sealing). Used by `benches/compare.sh`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use peluit_proto::keys::SealIdentity;
use peluit_proto::limits::CHUNK_SIZE;
use peluit_proto::seal::StreamOpener;
use zeroize::Zeroizing;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn identities(path: &str) -> Result<Vec<SealIdentity>> {
    let text = Zeroizing::new(std::fs::read_to_string(path)?);
    let identities = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .map(SealIdentity::parse_secret)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if identities.is_empty() {
        return Err(format!("no AGE-SECRET-KEY-1 line in {path}").into());
    }
    Ok(identities)
}

fn copy_out(mut opener: impl Read, out: impl Write) -> Result<u64> {
    let mut out = BufWriter::with_capacity(CHUNK_SIZE, out);
    let mut buf = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
    let mut total = 0u64;
    loop {
        let n = opener.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
    out.flush()?;
    Ok(total)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [identity, input, output] = args.as_slice() else {
        return Err("usage: open_file IDENTITY IN OUT".into());
    };
    let identities = identities(identity)?;
    let opener = StreamOpener::new(BufReader::new(File::open(input)?), &identities)?;
    match output.as_str() {
        "-" => {
            copy_out(opener, std::io::stdout().lock())?;
        }
        "/dev/null" => {
            copy_out(opener, std::io::sink())?;
        }
        path => {
            let partial = format!("{path}.partial");
            match copy_out(opener, File::create(&partial)?) {
                Ok(_) => std::fs::rename(&partial, path)?,
                Err(e) => {
                    // Never leave unauthenticated plaintext behind.
                    std::fs::remove_file(&partial)?;
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
