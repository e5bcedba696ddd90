//! Fixed keys and a verified manifest shared by the fuzz targets and the seed writer
//! (`src/bin/write_seeds.rs`), all from fixed seeds so that seeds and targets agree.
//!
//! Targets that need a sealed message (envelope, reply plaintext) seal the fuzz input to
//! these keys inside the target, so that the parser behind the opener sees arbitrary bytes.

use std::sync::OnceLock;

use peluit_proto::day::Day;
use peluit_proto::ids::InstitutionId;
use peluit_proto::keys::{SealIdentity, SealRecipient, SigningKey, VerifyingKey};
use peluit_proto::manifest::{
    FormDefinition, Institution, MANIFEST_VERSION, Manifest, ManifestKey, Purpose,
    VerifiedManifest, VerifyPolicy,
};
use zeroize::Zeroizing;

/// The institution of every fixture.
pub const INSTITUTION: &str = "itjen-contoh";
/// The day the fixture manifest is verified on.
pub const TODAY: &str = "2026-06-15";

fn seed(n: u8) -> Zeroizing<[u8; 32]> {
    Zeroizing::new([n; 32])
}

/// The investigator's age identity (manifest seal key).
pub fn investigator() -> SealIdentity {
    SealIdentity::from_secret_bytes(&seed(0x11))
}

/// The escrow identity (manifest escrow-seal key).
pub fn escrow() -> SealIdentity {
    SealIdentity::from_secret_bytes(&seed(0x30))
}

/// The reporter's reply identity.
pub fn reporter() -> SealIdentity {
    SealIdentity::from_secret_bytes(&seed(0x40))
}

/// The reporter's mailbox key.
pub fn mailbox_key() -> SigningKey {
    SigningKey::from_seed(&seed(0x41))
}

/// The investigator's reply-signing key.
pub fn reply_signer() -> SigningKey {
    SigningKey::from_seed(&seed(0x21))
}

/// The institution's offline manifest key.
pub fn manifest_key() -> SigningKey {
    SigningKey::from_seed(&seed(0x01))
}

/// The institution id.
pub fn institution() -> InstitutionId {
    INSTITUTION.parse().expect("fixture institution id")
}

/// The day fixtures are dated.
pub fn today() -> Day {
    TODAY.parse().expect("fixture day")
}

/// The manifest's seal recipients, in manifest order (investigator, escrow).
pub fn inspectorate() -> Vec<SealRecipient> {
    vec![investigator().recipient(), escrow().recipient()]
}

/// The public keys allowed to sign replies.
pub fn reply_signers() -> Vec<VerifyingKey> {
    vec![reply_signer().verifying_key()]
}

/// The fixture manifest: one investigator (seal and reply-signing keys), the escrow, and
/// the default form, signed with the manifest key and verified. Built once per process.
pub fn manifest() -> &'static VerifiedManifest {
    static MANIFEST: OnceLock<VerifiedManifest> = OnceLock::new();
    MANIFEST.get_or_init(|| {
        let key = |holder: &str, purpose, public: String| ManifestKey {
            holder: holder.to_owned(),
            purpose,
            public,
        };
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            institution: Institution {
                id: institution(),
                name: "Inspektorat Jenderal Kementerian Contoh".to_owned(),
            },
            origins: vec!["https://lapor.contoh.go.id".to_owned()],
            serial: 1,
            valid_from: "2026-01-01".parse().expect("day"),
            valid_until: "2026-12-31".parse().expect("day"),
            keys: vec![
                key(
                    "investigator:ani",
                    Purpose::Seal,
                    investigator().recipient().to_string(),
                ),
                key(
                    "investigator:ani",
                    Purpose::ReplySigning,
                    reply_signer().verifying_key().to_string(),
                ),
                key(
                    "escrow",
                    Purpose::EscrowSeal,
                    escrow().recipient().to_string(),
                ),
            ],
            form: FormDefinition::kws_default(),
        };
        let key = manifest_key();
        manifest
            .sign(&key)
            .verify(&VerifyPolicy::new(key.verifying_key(), today()))
            .expect("the fixture manifest verifies")
    })
}

/// Splits a fuzz input into a mode byte and the rest (targets that fuzz two layers).
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(mode, rest)| (*mode, rest))
}
