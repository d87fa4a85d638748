//! OAuth 2.0 client credentials (RFC 6749 §4.4) and revocation (RFC 7009).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use m2m_session_model::{OAuthErrorResponse, TokenResponse};
use secrecy::{ExposeSecret, SecretString};
use utoipa::ToSchema;

use super::extract::{media_type, read_limited};
use super::openapi::OAuthClientErrors;
use super::parse;
use super::{AppError, AppState};
use crate::domain::{AuthenticatedClient, ClientCredentials, RevokeOutcome};

// The two form bodies exist only as schemas of the OpenAPI document: the handlers read the form
// as pairs (see `Form`), so that a repeated parameter can be refused as RFC 6749 asks.

/// Form body of `POST /api/ts/v1/oauth2/token`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct TokenRequest {
    /// Must be `client_credentials`.
    grant_type: String,
    /// Space-separated scopes.
    scope: Option<String>,
}

/// Form body of `POST /api/ts/v1/oauth2/revoke` (RFC 7009).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct RevokeRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// Issue an API token (client credentials, RFC 6749 §4.4).
///
/// A client that asks again within the token's hour gets the same token.
#[utoipa::path(
    post, path = "/api/ts/v1/oauth2/token", tag = "oauth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "The API token (the same one within its hour)", body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope", body = OAuthErrorResponse),
        OAuthClientErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<TokenResponse>, AppError> {
    let client = authenticate(&state, &headers).await?;
    let form = read_form(&state, &headers, body).await?;
    match form.get("grant_type") {
        None => {
            return Err(invalid_request("grant_type is required."));
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(AppError::oauth(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
            ));
        }
    }
    let issued = state
        .service
        .issue_api_token(&client, form.get("scope"), state.clock.now())
        .await?;
    Ok(Json(TokenResponse {
        access_token: issued.access_token.expose_secret().to_owned(),
        token_type: "bearer".to_owned(),
        expires_in: Some(issued.expires_in.as_secs()),
        scope: Some(issued.scope),
    }))
}

/// Revoke an API token (RFC 7009).
///
/// The token stops working, and the client's next token request issues a new one.
#[utoipa::path(
    post, path = "/api/ts/v1/oauth2/revoke", tag = "oauth",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009)", body = Object),
        (status = 400, description = "invalid_request, or unauthorized_client for another client's token", body = OAuthErrorResponse),
        OAuthClientErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, AppError> {
    let client = authenticate(&state, &headers).await?;
    let form = read_form(&state, &headers, body).await?;
    let token = form
        .get("token")
        .ok_or_else(|| invalid_request("token is required."))?;
    let outcome = state.service.revoke_api_token(&client, token).await?;
    if outcome == RevokeOutcome::Revoked {
        tracing::info!(client_id = client.client_id(), "API token revoked");
    }
    Ok(Json(serde_json::json!({})))
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<AuthenticatedClient, AppError> {
    let credentials = basic_credentials(headers).ok_or_else(AppError::invalid_client)?;
    Ok(state
        .service
        .authenticate_client(&credentials, state.clock.now())
        .await?)
}

fn basic_credentials(headers: &HeaderMap) -> Option<ClientCredentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (client_id, secret) = parse::basic_credentials(value)?;
    Some(ClientCredentials {
        client_id,
        secret: SecretString::from(secret),
    })
}

/// A form body's parameters; RFC 6749 §3.2 forbids repeating one.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_form(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Form, AppError> {
    let bytes = read_limited(body, state).await?;
    if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    parse::form(&bytes)
        .map(Form)
        .ok_or_else(|| invalid_request("The form body is malformed or repeats a parameter."))
}

fn invalid_request(description: &'static str) -> AppError {
    AppError::oauth(StatusCode::BAD_REQUEST, "invalid_request", description)
}
