//! The access log: one line per request answered, under the target [`TARGET`].
//!
//! Each line has `method`, `route` (the template, e.g. `/auth/verify`; `unmatched` for a path no
//! route serves, whose `path` is then given too, without its query and cut to
//! [`MAX_PATH_LEN`] bytes), `status`, `latency_ms` (until the answer's head was ready) and
//! `request_id`. Never a query string, a header or a body: tokens and passwords travel there.
//! Successful probes and scrapes (`/healthz`, `/readyz`, `/metrics`) are logged at DEBUG, so
//! that a load balancer's checks do not drown the log; everything else, and a failed probe, at
//! INFO.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::request_id;

/// The target of the access lines, e.g. for `RUST_LOG=info,m2m_session::access=warn`.
pub const TARGET: &str = "m2m_session::access";

/// The longest unmatched path logged, in bytes.
pub const MAX_PATH_LEN: usize = 128;

/// Middleware: logs the request once it is answered. It must sit inside the layer that
/// assigns the request id and outside the router (see [`super::router`]).
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let request_id = request_id::of(&request).to_owned();
    // Cheap: the URI shares its bytes.
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let latency_ms = started.elapsed().as_micros() as f64 / 1000.0;
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let path = match route {
        Some(_) => None,
        None => Some(truncated(uri.path())),
    };
    let route = route.unwrap_or("unmatched");
    macro_rules! access {
        ($level:ident) => {
            tracing::$level!(
                target: TARGET,
                method = %method,
                route = %route,
                // Quoted in text logs: the one value the client chose.
                path,
                status,
                latency_ms,
                request_id = %request_id,
                "answered"
            )
        };
    }
    let probe = matches!(route, "/healthz" | "/readyz" | "/metrics");
    if probe && response.status().is_success() {
        access!(debug);
    } else {
        access!(info);
    }
    response
}

/// `path` cut to at most [`MAX_PATH_LEN`] bytes, on a character boundary.
fn truncated(path: &str) -> &str {
    let mut end = path.len().min(MAX_PATH_LEN);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::{MAX_PATH_LEN, truncated};

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("/short"), "/short");
        let long = format!("/{}", "a".repeat(300));
        assert_eq!(truncated(&long).len(), MAX_PATH_LEN);
        let accented = format!("/{}é", "a".repeat(MAX_PATH_LEN - 2));
        assert_eq!(truncated(&accented), &accented[..MAX_PATH_LEN - 1]);
    }
}
