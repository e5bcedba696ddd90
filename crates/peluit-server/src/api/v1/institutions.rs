//! `GET /api/v1/institutions`: the inspectorates this server accepts reports for, so a
//! page or courier can find an id and whether a manifest is published.

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
            })
            .collect(),
    })
}
