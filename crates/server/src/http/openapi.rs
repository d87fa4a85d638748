//! The OpenAPI document of the whole HTTP surface, served at `GET /api/openapi.json`.
//!
//! Each operation is described by a `#[utoipa::path]` on the handler that serves it, so that a
//! change to a handler and to its description are made in the same place. A test checks that
//! every route of [`super::ROUTES`] is in the document.

use m2m_session_model::{
    ConnectivityManagementResult, GatewayFault, GatewayFaultBody, LogInRequest, LogInResult,
    LogOutRequest, OAuthErrorResponse, SessionResetPasswordRequest, SessionResetPasswordResult,
    TokenResponse,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::health::{self, Status};
use super::metrics_route;
use super::oauth_routes::{self, RevokeRequest, TokenRequest};
use super::session_routes;
use super::verify_route;

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
