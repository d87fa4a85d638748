//! 503s the server gives on purpose: overload, draining, the connection cap.
//!
//! They are expected states, not faults: each is counted in
//! `m2m_session_http_shed_total{reason}`, and the log gets one WARN summary at most every
//! [`SUMMARY_INTERVAL`], so that a burst of 300 shed logins is one line rather than 300 ERROR
//! lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppError;
use crate::listener::OverCapacity;
use crate::telemetry;

/// The shortest time between two summary lines.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Why a request was shed with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The argon2 queue is full, or the store's connections are all busy.
    Overloaded,
    /// Shutdown has begun (`/readyz`).
    Draining,
    /// A request on a connection beyond the connection cap.
    ConnectionCap,
}

impl Reason {
    /// Every reason, for the counters shown at 0 from the start.
    pub(crate) const ALL: [Self; 3] = [Self::Overloaded, Self::Draining, Self::ConnectionCap];

    /// The `reason` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::Draining => "draining",
            Self::ConnectionCap => "connection_cap",
        }
    }
}

static SINCE_SUMMARY: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static LAST_SUMMARY: Mutex<Option<Instant>> = Mutex::new(None);

/// Counts one shed answer and writes the summary line when it is due.
pub fn record(reason: Reason) {
    metrics::counter!(telemetry::HTTP_SHED, "reason" => reason.as_str()).increment(1);
    SINCE_SUMMARY[reason as usize].fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    {
        let mut last = LAST_SUMMARY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < SUMMARY_INTERVAL) {
            return;
        }
        *last = Some(now);
    }
    let counts = Reason::ALL.map(|r| SINCE_SUMMARY[r as usize].swap(0, Ordering::Relaxed));
    tracing::warn!(
        overloaded = counts[0],
        draining = counts[1],
        connection_cap = counts[2],
        "answered 503 on purpose (overload, drain or connection cap) since the last such line; \
         see m2m_session_http_shed_total"
    );
}

/// On a connection beyond the cap only the health endpoints are served.
pub async fn over_capacity(request: Request, next: Next) -> Response {
    let health = matches!(request.uri().path(), "/healthz" | "/readyz");
    if request.extensions().get::<OverCapacity>().is_some() && !health {
        record(Reason::ConnectionCap);
        return AppError::unavailable().into_response();
    }
    next.run(request).await
}
