//! Fuzzes the bundle reader the desk and the courier run on whatever is on a USB stick
//! (`BundleReader`, docs/protocol.md#bundle).
//!
//! Arbitrary bytes must never panic. Reading every frame and payload must agree with
//! `BundleReader::verify`, and an accepted bundle, written again frame by frame with
//! `BundleWriter`, must give back exactly its bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peluit_proto::bundle::{BundleReader, BundleWriter};

fuzz_target!(|data: &[u8]| {
    let verified = BundleReader::verify(data).ok();
    let Ok(mut reader) = BundleReader::new(data) else {
        assert!(verified.is_none(), "verify accepted what new refused");
        return;
    };
    let header = reader.header().clone();
    let mut frames = Vec::new();
    let complete = loop {
        match reader.next_frame() {
            Ok(Some(mut frame)) => {
                let meta = frame.meta().clone();
                match frame.read_payload_to_end(data.len()) {
                    Ok(payload) => frames.push((meta, payload)),
                    Err(_) => break false,
                }
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    assert_eq!(
        reader.summary().cloned(),
        verified,
        "reading agrees with verify"
    );
    if !complete {
        return;
    }
    let mut writer = BundleWriter::new(Vec::new(), &header).expect("an accepted header writes");
    for (meta, payload) in &frames {
        writer
            .write_frame(meta, payload)
            .expect("an accepted frame writes");
    }
    assert_eq!(writer.finish().expect("finish"), data, "byte-exact rewrite");
});
