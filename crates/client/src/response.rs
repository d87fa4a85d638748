use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A successful answer: status, headers, and the decoded body.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    /// HTTP status (200 for the session operations).
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The decoded body.
    pub result: T,
}

/// Per-call settings that override the client's.
///
/// ```
/// use std::time::Duration;
/// use m2m_session_client::RequestOptions;
/// let options = RequestOptions::default()
///     .attempt_timeout(Duration::from_secs(5))
///     .idempotency_key("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a");
/// assert_eq!(options.idempotency_key.as_deref(), Some("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Replaces the client's per-attempt timeout for this call.
    pub attempt_timeout: Option<Duration>,
    /// The `Idempotency-Key` of a reset; by default a new UUID per call, reused by its retries.
    /// Pass your own to make a reset safe to repeat across process restarts.
    pub idempotency_key: Option<String>,
}

impl RequestOptions {
    /// Sets [`Self::attempt_timeout`].
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// Sets [`Self::idempotency_key`].
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}
