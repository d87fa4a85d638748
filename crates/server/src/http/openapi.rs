//! The OpenAPI document of the whole HTTP surface, served at `GET /api/openapi.json`.
//!
//! Each operation is described by a `#[utoipa::path]` on the handler that serves it, so that a
//! change to a handler and to its description are made in the same place. The error answers
//! that several operations share are described once, here, as response sets. A test checks
//! that the document and [`super::ROUTES`] list exactly the same operations.

use m2m_session_model::{
    ConnectivityManagementResult, GatewayFault, GatewayFaultBody, LogInRequest, LogInResult,
    LogOutRequest, OAuthErrorResponse, SessionResetPasswordRequest, SessionResetPasswordResult,
    TokenResponse,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::health::{self, Status};
use super::metrics_route;
use super::oauth_routes::{self, RevokeRequest, TokenRequest};
use super::session_routes;
use super::verify_route;

// The response sets below are never built: only their `IntoResponses` impls are read, by the
// `#[utoipa::path]` attributes that name them. Hence `allow(dead_code)` on each.

/// The refusal of an operation behind an API token: the gateway's fault body, the same for
/// every such operation, because one extractor gives it before the handler runs.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum ApiTokenErrors {
    #[response(
        status = 401,
        description = "Missing or bad API token (fault 900902 or 900901)"
    )]
    Unauthorized(GatewayFault),
}

/// The failures of an operation that reaches the store, whatever the operation: a fault of
/// ours, or a store that cannot answer now (retrying later may succeed).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum ServerErrors {
    #[response(status = 500, description = "Unexpected failure")]
    Unexpected(ConnectivityManagementResult),
    #[response(
        status = 503,
        description = "Store unavailable, or the server overloaded",
        headers(("Retry-After" = u64))
    )]
    Unavailable(ConnectivityManagementResult),
}

/// The refusals of a JSON body before it is parsed: the same checks, in the same order, for
/// every operation that takes one.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum JsonBodyErrors {
    #[response(status = 413, description = "Body too large")]
    TooLarge(ConnectivityManagementResult),
    #[response(status = 415, description = "Not application/json")]
    NotJson(ConnectivityManagementResult),
}

/// What the two OAuth endpoints share: client authentication by HTTP Basic (RFC 6749 §2.3.1),
/// the body cap, and the store. Their 400s differ, so each handler lists its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum OAuthClientErrors {
    #[response(
        status = 401,
        description = "invalid_client",
        headers(("WWW-Authenticate" = String, description = "Basic"))
    )]
    InvalidClient(OAuthErrorResponse),
    #[response(status = 413, description = "Body too large")]
    TooLarge(ConnectivityManagementResult),
    #[response(
        status = 503,
        description = "Store unavailable, or the server overloaded",
        headers(("Retry-After" = u64))
    )]
    Unavailable(ConnectivityManagementResult),
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The document: every operation, the schemas their bodies use, and the two security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "m2m-session",
        description = "ThingSpace-compatible Connectivity Management session service"
    ),
    paths(
        oauth_routes::token,
        oauth_routes::revoke,
        session_routes::login,
        session_routes::logout,
        session_routes::reset_password,
        verify_route::verify,
        health::healthz,
        health::readyz,
        metrics_route::metrics,
        serve,
    ),
    components(schemas(
        LogInRequest, LogInResult, LogOutRequest, SessionResetPasswordRequest,
        SessionResetPasswordResult, ConnectivityManagementResult, TokenResponse,
        OAuthErrorResponse, GatewayFault, GatewayFaultBody, TokenRequest, RevokeRequest, Status
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// This OpenAPI document.
// Rendered anew for each request: it is small and requested rarely.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "operations",
    // The name the document had before it was served by this handler: clients may key on it.
    operation_id = "openapi_json",
    responses((status = 200, description = "This document", body = Object))
)]
pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
