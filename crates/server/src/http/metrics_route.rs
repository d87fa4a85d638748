//! `GET /metrics` (Prometheus text format) and the layer that counts every routed request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::telemetry;

/// Counts and times each request by its route template (never the raw path: bounded labels),
/// and hands the template on in the response's extensions to the access log, which sits
/// outside the router and so never sees the request's [`MatchedPath`].
pub async fn track(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let labels = [
        ("route", route),
        ("method", method),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!(telemetry::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(telemetry::HTTP_REQUEST_DURATION, &labels)
        .record(started.elapsed().as_secs_f64());
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Prometheus metrics: counters and timings of this process.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4)", body = String,
            content_type = "text/plain"),
        (status = 404, description = "The embedding program records metrics itself", body = String,
            content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if !state.serves_metrics {
        return super::not_found().await.into_response();
    }
    let Some(handle) = telemetry::handle() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are recorded by the embedding program",
        )
            .into_response();
    };
    match state.service.live_sessions(state.clock.now()).await {
        Ok(n) => metrics::gauge!(telemetry::ACTIVE_SESSIONS).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "counting active sessions for /metrics failed"),
    }
    telemetry::collect_process();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
