use axum::Json;
use axum::extract::State;
use m2m_session_model::ConnectivityManagementResult;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{AppError, AppState};

/// Health and readiness answers.
// Only a schema of the OpenAPI document: the handlers build the same shape with `json!`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct Status {
    status: String,
}

/// Liveness: the process is up and serving HTTP.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves HTTP", body = Status))
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers and no shutdown has begun.
///
/// Load balancers stop routing here otherwise.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = Status),
        (status = 503, description = "Store down, or shutting down", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        super::shed::record(super::shed::Reason::Draining);
        return Err(AppError::unavailable());
    }
    state.service.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
