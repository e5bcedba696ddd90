//! `GET /api/v1/institutions`: the inspectorates this server accepts reports for, so a
//! page or courier can find an id, whether a manifest is published, the manifest key the
//! page pins and the proof-of-work difficulty it must meet.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::state::AppState;

/// One institution as listed.
#[derive(Debug, Serialize)]
pub struct InstitutionSummary {
    /// Its id (in every other URL).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// The serial of its current manifest, if one was published.
    pub manifest_serial: Option<u64>,
    /// The configured manifest key (base64 Ed25519) that every manifest must be signed
    /// with; the page verifies under it and shows its fingerprint words.
    pub manifest_key: String,
    /// Leading zero bits a report's proof-of-work stamp needs (docs/protocol.md#pow).
    pub pow_bits: u8,
}

/// The list.
#[derive(Debug, Serialize)]
pub struct InstitutionList {
    /// Institutions, in configuration order.
    pub institutions: Vec<InstitutionSummary>,
}

/// `GET /api/v1/institutions`.
pub async fn list_institutions(State(state): State<AppState>) -> Json<InstitutionList> {
    Json(InstitutionList {
        institutions: state
            .institutions()
            .iter()
            .map(|i| InstitutionSummary {
                id: i.config.id.to_string(),
                name: i.config.name.clone(),
                manifest_serial: i.current_opt().map(|m| m.serial()),
                manifest_key: i.config.manifest_key.to_string(),
                pow_bits: state.limits().pow_bits,
            })
            .collect(),
    })
}
