//! Routes and extractors: turn HTTP into domain calls and domain results into the contract's
//! answers. Handlers are a few lines each; rules live in the domain.

mod access_log;
mod client_ip;
mod error;
mod extract;
mod health;
mod metrics_route;
mod oauth_routes;
pub mod openapi;
pub mod parse;
mod request_id;
mod session_routes;
pub mod shed;
mod verify_route;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use m2m_session_model::ErrorCode;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use access_log::TARGET as ACCESS_LOG_TARGET;
pub use client_ip::resolve as resolve_client_ip;
pub use error::AppError;
/// The bearer and session-token extractors, for routes added beside the contract's (a test's
/// stand-in of another ThingSpace API checks its tokens exactly as the session routes do).
pub use extract::{ApiClient, SessionTokenHeader};

use crate::domain::SessionService;

/// Default cap on request bodies: far above any valid request of the contract.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The domain: every handler's only way to the rules and the data. Behind an `Arc`: the
    /// state is cloned for every request (axum's handler service, the `State` extractor), and
    /// a service clone was a dozen reference counts and half a kilobyte copied, 3% of a
    /// session check's CPU.
    pub service: std::sync::Arc<SessionService>,
    /// "Now" for every request: this node's clock set to the database's.
    pub clock: crate::clock::Clock,
    /// Largest request body accepted, in bytes (413 beyond).
    pub body_limit: usize,
    /// How long a handler waits for a whole request body (408 beyond).
    pub body_read_timeout: std::time::Duration,
    /// Peers whose `X-Forwarded-For` (or `Forwarded`) is believed.
    pub trusted_proxies: std::sync::Arc<Vec<ipnet::IpNet>>,
    /// Set when shutdown has begun: `/readyz` then answers 503.
    pub draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Whether this listener serves `/metrics` (not when a metrics listener of its own is set).
    pub serves_metrics: bool,
}

impl AppState {
    /// State for `service` with the defaults (this host's clock, no trusted proxies).
    pub fn new(service: SessionService) -> Self {
        Self {
            service: std::sync::Arc::new(service),
            clock: crate::clock::Clock::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: crate::listener::ConnectionLimits::default().body_read_timeout,
            trusted_proxies: std::sync::Arc::default(),
            draining: std::sync::Arc::default(),
            serves_metrics: true,
        }
    }
}

/// A request is one check for the read caches: its bearer and its session may be proven
/// unrevoked by one validation sent after it arrived (`store/postgres/cache.rs`).
async fn one_check(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    crate::store::as_one_check(std::time::Instant::now(), next.run(request)).await
}

/// The router of `--metrics-listen`: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics_route::metrics))
        .with_state(AppState {
            serves_metrics: true,
            ..state
        })
}

/// Declares every route once: the router is built from this, and [`ROUTES`] lists them for the
/// test that checks the OpenAPI document covers every one.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every (method, path) the server serves.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn add_routes(router: Router<AppState>) -> Router<AppState> {
            router$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

routes! {
    post "/api/ts/v1/oauth2/token" => oauth_routes::token,
    post "/api/ts/v1/oauth2/revoke" => oauth_routes::revoke,
    post "/api/m2m/v1/session/login" => session_routes::login,
    post "/api/m2m/v1/session/logout" => session_routes::logout,
    put "/api/m2m/v1/session/password/actions/reset" => session_routes::reset_password,
    get "/auth/verify" => verify_route::verify,
    get "/healthz" => health::healthz,
    get "/readyz" => health::readyz,
    get "/api/openapi.json" => openapi::serve,
    get "/metrics" => metrics_route::metrics,
}

/// The whole HTTP surface on one router.
pub fn router(state: AppState) -> Router {
    add_routes(Router::new())
        .route_layer(axum::middleware::from_fn(metrics_route::track))
        .route_layer(axum::middleware::from_fn(one_check))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        // Tokens and passwords travel in these responses: no cache may keep them.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ))
        .layer(axum::middleware::from_fn(shed::over_capacity))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = request.uri().path(),
                        request_id = request_id::of(request),
                    )
                })
                .on_failure(on_failure),
        )
        // One line per request, with its route template (set by `metrics_route::track` on the
        // response) and its id; outside the trace layer, so that the line stands on its own.
        .layer(axum::middleware::from_fn(access_log::log))
        // Outside the trace layer and the access log, so that both have the id.
        .layer(axum::middleware::from_fn(request_id::assign))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            // `VZ-M2M-Token`, in the lower case `HeaderName` requires.
            HeaderName::from_static("vz-m2m-token"),
        ]))
}

/// 503s are shed on purpose and summarised where they are decided (see [`shed`]); any other
/// 5xx is a fault.
fn on_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        other => tracing::error!(classification = %other, ?latency, "response failed"),
    }
}

async fn not_found() -> AppError {
    AppError::api(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "No such resource.",
    )
}

async fn method_not_allowed() -> AppError {
    AppError::api(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "This method is not allowed on this resource.",
    )
}
