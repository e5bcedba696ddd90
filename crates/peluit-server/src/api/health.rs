//! `GET /healthz`: liveness for load balancers and scripts. It says only that the process
//! answers; a read-only store shows as 503 `read_only` on the first write.

use axum::Json;
use serde::Serialize;

/// The health answer.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"ok"` when the process answers.
    pub status: &'static str,
}

/// `GET /healthz`.
pub async fn get_healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}
