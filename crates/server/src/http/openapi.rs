//! The OpenAPI document of the whole HTTP surface, served at `GET /api/openapi.json`.
//!
//! The operations are described here rather than on the handlers, so handlers stay a few lines;
//! a test checks that every route of [`super::ROUTES`] is in the document.

use m2m_session_model::{
    ConnectivityManagementResult, GatewayFault, GatewayFaultBody, LogInRequest, LogInResult,
    LogOutRequest, OAuthErrorResponse, SessionResetPasswordRequest, SessionResetPasswordResult,
    TokenResponse,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Form body of `POST /api/ts/v1/oauth2/token`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct TokenRequest {
    /// Must be `client_credentials`.
    grant_type: String,
    /// Space-separated scopes.
    scope: Option<String>,
}

/// Form body of `POST /api/ts/v1/oauth2/revoke` (RFC 7009).
#[derive(ToSchema)]
#[allow(dead_code)]
struct RevokeRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// Health and readiness answers.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Status {
    status: String,
}

#[utoipa::path(
    post, path = "/api/ts/v1/oauth2/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "The API token (the same one within its hour)", body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthErrorResponse),
        (status = 401, description = "invalid_client", body = OAuthErrorResponse,
            headers(("WWW-Authenticate" = String, description = "Basic"))),
        (status = 413, description = "Body too large", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn token() {}

#[utoipa::path(
    post, path = "/api/ts/v1/oauth2/revoke", tag = "oauth",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009)", body = Object),
        (status = 400, description = "invalid_request, or unauthorized_client for another client's token", body = OAuthErrorResponse),
        (status = 401, description = "invalid_client", body = OAuthErrorResponse,
            headers(("WWW-Authenticate" = String, description = "Basic"))),
        (status = 413, description = "Body too large", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn revoke() {}

#[utoipa::path(
    post, path = "/api/m2m/v1/session/login", tag = "session",
    request_body = LogInRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new session", body = LogInResult),
        (status = 400, description = "Login.InvalidCredentials, Login.Locked, RequestUndefined, DeserializationFailed, UnexpectedError, Request.InvalidCharacter", body = ConnectivityManagementResult),
        (status = 401, description = "Missing or bad API token (900902 / 900901)", body = GatewayFault),
        (status = 413, description = "Body too large", body = ConnectivityManagementResult),
        (status = 415, description = "Not application/json", body = ConnectivityManagementResult),
        (status = 429, description = "Too many failed logins from this IP", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
        (status = 500, description = "Unexpected failure", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable or overloaded", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn login() {}

#[utoipa::path(
    post, path = "/api/m2m/v1/session/logout", tag = "session",
    params(("VZ-M2M-Token" = Option<String>, Header, description = "The session token (GUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token just ended", body = LogOutRequest),
        (status = 400, description = "SessionToken.Expired, SessionToken.Format, SessionToken.Invalid", body = ConnectivityManagementResult),
        (status = 401, description = "Missing or bad API token", body = GatewayFault),
        (status = 500, description = "Unexpected failure", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn logout() {}

#[utoipa::path(
    put, path = "/api/m2m/v1/session/password/actions/reset", tag = "session",
    request_body = SessionResetPasswordRequest,
    params(
        ("VZ-M2M-Token" = Option<String>, Header, description = "The session token (GUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the reset safe to retry: a repeat gets the same answer for 10 minutes"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new password, shown once", body = SessionResetPasswordResult),
        (status = 400, description = "Password.OldPasswordMismatch, Login.Locked, SessionToken.*, RequestUndefined, DeserializationFailed, UnexpectedError, IdempotencyKey.Invalid", body = ConnectivityManagementResult),
        (status = 401, description = "Missing or bad API token", body = GatewayFault),
        (status = 409, description = "IdempotencyKey.InProgress or IdempotencyKey.Expired", body = ConnectivityManagementResult),
        (status = 413, description = "Body too large", body = ConnectivityManagementResult),
        (status = 415, description = "Not application/json", body = ConnectivityManagementResult),
        (status = 422, description = "IdempotencyKey.Mismatch", body = ConnectivityManagementResult),
        (status = 500, description = "Unexpected failure", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable or overloaded", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn reset_password() {}

#[utoipa::path(
    get, path = "/auth/verify", tag = "gateway",
    params(("VZ-M2M-Token" = Option<String>, Header, description = "The session token (GUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Valid; counts as session activity",
            headers(("X-M2M-Username" = String), ("X-M2M-Account" = String))),
        (status = 401, description = "Bad API token (fault body) or bad session (contract error body)",
            body = ConnectivityManagementResult),
        (status = 500, description = "Unexpected failure", body = ConnectivityManagementResult),
        (status = 503, description = "Store unavailable", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn verify() {}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves HTTP", body = Status))
)]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format (version 0.0.4)", body = String,
            content_type = "text/plain"),
        (status = 404, description = "The embedding program records metrics itself", body = String,
            content_type = "text/plain"),
    )
)]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The store answers", body = Status),
        (status = 503, description = "Store down, or shutting down", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
    )
)]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(
    get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object))
)]
#[allow(dead_code)]
fn openapi_json() {}

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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "m2m-session",
        description = "ThingSpace-compatible Connectivity Management session service"
    ),
    paths(
        token, revoke, login, logout, reset_password, verify, healthz, readyz, metrics,
        openapi_json
    ),
    components(schemas(
        LogInRequest, LogInResult, LogOutRequest, SessionResetPasswordRequest,
        SessionResetPasswordResult, ConnectivityManagementResult, TokenResponse,
        OAuthErrorResponse, GatewayFault, GatewayFaultBody, TokenRequest, RevokeRequest, Status
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The document, rendered once per request (it is small and requested rarely).
pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
