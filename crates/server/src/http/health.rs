use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{AppError, AppState};

/// The process is up and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers and no shutdown has begun; load balancers stop routing here otherwise.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        super::shed::record(super::shed::Reason::Draining);
        return Err(AppError::unavailable());
    }
    state.service.ready().await?;
    Ok(Json(json!({"status": "ready"})))
}
