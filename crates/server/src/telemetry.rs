//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.
//!
//! What is counted where: HTTP requests by route, method and status (`http/metrics_layer`),
//! logins by result and locks (`domain/service.rs`), time waiting for an argon2 worker
//! (`crypto/password.rs`), store failures seen by requests (`http/error.rs`), and live sessions,
//! counted in the store when scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets from 0.5 ms (a cached session check) to 10 s (a queued login).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder the first time; `None` if another recorder was installed
/// first by the embedding program (its metrics are then its own business).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use crate::domain::lockout::Uncounted;
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer, by route, method and status"
    );
    describe_counter!(
        "login_total",
        "Logins, by result (success, invalid_credentials, locked, ...)"
    );
    describe_counter!(
        "lockouts_total",
        "Usernames locked after consecutive failures"
    );
    describe_histogram!(
        "argon2_queue_wait_seconds",
        metrics::Unit::Seconds,
        "Time a password hash waited for an argon2 worker"
    );
    describe_counter!(
        "store_errors_total",
        "Requests that failed because the store failed"
    );
    describe_gauge!(
        "active_sessions",
        "Sessions used within the idle timeout, when scraped"
    );
    describe_counter!(
        "http_shed_total",
        "Requests answered 503 on purpose, by reason (overloaded, draining, connection_cap)"
    );
    describe_gauge!("http_connections_open", "Client connections open now");
    describe_counter!(
        "http_connections_refused_total",
        "Connections closed unread: the cap and its health reserve were all busy"
    );
    describe_counter!(
        "http_connections_evicted_total",
        "Idle health-reserve connections closed to make room for a new one"
    );
    describe_counter!(
        "http_accept_errors_total",
        "Failed accepts other than a client's reset, e.g. out of file descriptors"
    );
    describe_counter!(
        "http_connections_timed_out_total",
        "Connections closed by the header, keep-alive or TLS handshake timeout"
    );
    describe_counter!(
        "login_failures_uncounted_total",
        "Wrong passwords not counted towards a lock, by reason (repeated, stale_password, forgiven)"
    );
    // Rare events are shown at 0 from the start: an absent series cannot be alerted on.
    metrics::counter!("lockouts_total").increment(0);
    for reason in [
        Uncounted::Repeated,
        Uncounted::StalePassword,
        Uncounted::Forgiven,
    ] {
        metrics::counter!("login_failures_uncounted_total", "reason" => reason.as_str())
            .increment(0);
    }
    metrics::counter!("store_errors_total").increment(0);
}
