//! Prometheus metrics: one recorder per process, rendered by `GET /metrics`.
//!
//! Every series of ours is named here once, with the prefix `m2m_session_` (the constants
//! below); the code that counts uses the constants. What is counted where: HTTP requests by
//! route, method and status (`http/metrics_route.rs`), logins by result (`domain/service.rs`),
//! locks and uncounted wrong passwords (`domain/attempts.rs`), time waiting for an argon2
//! worker (`crypto/password.rs`), store failures seen by requests (`http/error.rs`), shed
//! answers (`http/shed.rs`), connections (`listener/mod.rs`), and live sessions, counted in
//! the store when scraped. The process's own figures (`process_*`, CPU, memory, file
//! descriptors, start time) are read from the OS when scraped and keep the unprefixed names
//! every Prometheus client library gives them, so that standard dashboards and alerts find
//! them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::AuditOutcome;
use crate::domain::lockout::Uncounted;
use crate::http::shed;

/// The name of one of our series: the prefix, written once, and `$name`.
macro_rules! prefixed {
    ($name:literal) => {
        concat!("m2m_session_", $name)
    };
}

/// Counter: HTTP requests answered, by `route` (template), `method` and `status`.
pub const HTTP_REQUESTS: &str = prefixed!("http_requests_total");
/// Histogram: time to answer, same labels.
pub const HTTP_REQUEST_DURATION: &str = prefixed!("http_request_duration_seconds");
/// Counter: logins by `result`.
pub const LOGINS: &str = prefixed!("login_total");
/// Counter: usernames locked.
pub const LOCKOUTS: &str = prefixed!("lockouts_total");
/// Counter: wrong passwords not counted towards a lock, by `reason`.
pub const LOGIN_FAILURES_UNCOUNTED: &str = prefixed!("login_failures_uncounted_total");
/// Histogram: time a hash waited for an argon2 worker.
pub const ARGON2_QUEUE_WAIT: &str = prefixed!("argon2_queue_wait_seconds");
/// Counter: requests failed by the store.
pub const STORE_ERRORS: &str = prefixed!("store_errors_total");
/// Gauge: sessions used within the idle timeout, counted when scraped.
pub const ACTIVE_SESSIONS: &str = prefixed!("active_sessions");
/// Counter: 503s given on purpose, by `reason`.
pub const HTTP_SHED: &str = prefixed!("http_shed_total");
/// Gauge: client connections open.
pub const HTTP_CONNECTIONS_OPEN: &str = prefixed!("http_connections_open");
/// Counter: connections closed unread (cap and reserve full).
pub const HTTP_CONNECTIONS_REFUSED: &str = prefixed!("http_connections_refused_total");
/// Counter: idle reserve connections closed for a new one.
pub const HTTP_CONNECTIONS_EVICTED: &str = prefixed!("http_connections_evicted_total");
/// Counter: failed accepts other than a client's reset.
pub const HTTP_ACCEPT_ERRORS: &str = prefixed!("http_accept_errors_total");
/// Counter: connections closed by a header, keep-alive or handshake timeout.
pub const HTTP_CONNECTIONS_TIMED_OUT: &str = prefixed!("http_connections_timed_out_total");
/// Gauge, always 1: the `version` and `commit` of this build.
pub const BUILD_INFO: &str = prefixed!("build_info");

/// The commit this binary was built from (`build.rs`: the `M2M_SESSION_COMMIT` variable at
/// build time, else `git rev-parse --short=12 HEAD`, else `unknown`).
pub const COMMIT: &str = env!("M2M_SESSION_COMMIT");

/// Latency buckets from 0.5 ms (a cached session check) to 10 s (a queued login).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

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

/// Reads the process's CPU time, memory, file descriptors and threads into their gauges: called
/// before each render.
pub fn collect_process() {
    PROCESS.get_or_init(process_collector).collect();
}

fn process_collector() -> metrics_process::Collector {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector
}

/// The results `login_total` counts (all that [`AuditOutcome::of`] gives for a login).
const LOGIN_RESULTS: [AuditOutcome; 5] = [
    AuditOutcome::Success,
    AuditOutcome::InvalidCredentials,
    AuditOutcome::Locked,
    AuditOutcome::Throttled,
    AuditOutcome::Error,
];

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to answer, by route, method and status"
    );
    describe_counter!(
        LOGINS,
        "Logins, by result (success, invalid_credentials, locked, throttled, error)"
    );
    describe_counter!(LOCKOUTS, "Usernames locked after consecutive failures");
    describe_histogram!(
        ARGON2_QUEUE_WAIT,
        metrics::Unit::Seconds,
        "Time a password hash waited for an argon2 worker"
    );
    describe_counter!(
        STORE_ERRORS,
        "Requests that failed because the store failed"
    );
    describe_gauge!(
        ACTIVE_SESSIONS,
        "Sessions used within the idle timeout, when scraped"
    );
    describe_counter!(
        HTTP_SHED,
        "Requests answered 503 on purpose, by reason (overloaded, draining, connection_cap)"
    );
    describe_gauge!(HTTP_CONNECTIONS_OPEN, "Client connections open now");
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "Connections closed unread: the cap and its health reserve were all busy"
    );
    describe_counter!(
        HTTP_CONNECTIONS_EVICTED,
        "Idle health-reserve connections closed to make room for a new one"
    );
    describe_counter!(
        HTTP_ACCEPT_ERRORS,
        "Failed accepts other than a client's reset, e.g. out of file descriptors"
    );
    describe_counter!(
        HTTP_CONNECTIONS_TIMED_OUT,
        "Connections closed by the header, keep-alive or TLS handshake timeout"
    );
    describe_counter!(
        LOGIN_FAILURES_UNCOUNTED,
        "Wrong passwords not counted towards a lock, by reason (repeated, stale_password, forgiven)"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1: the version and commit this server was built from"
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => COMMIT)
        .set(1.0);

    // Every counter whose labels are known in advance is shown at 0 from the start: an absent
    // series cannot be alerted on, and `rate()` misses the first increment of one that appears
    // late. (`http_requests_total` appears per route, method and status as they are answered.)
    for counter in [
        LOCKOUTS,
        STORE_ERRORS,
        HTTP_CONNECTIONS_REFUSED,
        HTTP_CONNECTIONS_EVICTED,
        HTTP_ACCEPT_ERRORS,
        HTTP_CONNECTIONS_TIMED_OUT,
    ] {
        metrics::counter!(counter).increment(0);
    }
    for result in LOGIN_RESULTS {
        metrics::counter!(LOGINS, "result" => result.as_str()).increment(0);
    }
    for reason in [
        Uncounted::Repeated,
        Uncounted::StalePassword,
        Uncounted::Forgiven,
    ] {
        metrics::counter!(LOGIN_FAILURES_UNCOUNTED, "reason" => reason.as_str()).increment(0);
    }
    for reason in shed::Reason::ALL {
        metrics::counter!(HTTP_SHED, "reason" => reason.as_str()).increment(0);
    }
    metrics::gauge!(HTTP_CONNECTIONS_OPEN).increment(0.0);
    // Registered, so that it is rendered (empty) before the first login.
    let _ = metrics::histogram!(ARGON2_QUEUE_WAIT);
    collect_process();
}
