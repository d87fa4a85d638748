//! The three session operations of the contract (login, logout, password reset), under the
//! names the official ThingSpace SDKs give them.

use std::future::Future;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use m2m_session_model::{
    ConnectivityManagementResult, ErrorCode, IDEMPOTENCY_KEY_HEADER, LogInRequest, LogInResult,
    LogOutRequest, SessionResetPasswordRequest, SessionResetPasswordResult,
};
use secrecy::{ExposeSecret, SecretString};

use super::client_ip::ClientIp;
use super::extract::{ApiClient, JsonObject, SessionTokenHeader};
use super::openapi::{ApiTokenErrors, JsonBodyErrors, ServerErrors};
use super::request_id::RequestId;
use super::{AppError, AppState};
use crate::domain::{DomainError, RequestContext, USERNAME_FORBIDDEN_CHARS};

/// Start a session.
///
/// A new session token for a user, on behalf of the calling client.
#[utoipa::path(
    post, path = "/api/m2m/v1/session/login", tag = "session",
    request_body = LogInRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new session", body = LogInResult),
        (status = 400, description = "Login.InvalidCredentials, Login.Locked, RequestUndefined, DeserializationFailed, UnexpectedError, Request.InvalidCharacter", body = ConnectivityManagementResult),
        (status = 429, description = "Too many failed logins from this IP", body = ConnectivityManagementResult,
            headers(("Retry-After" = u64))),
        ApiTokenErrors, JsonBodyErrors, ServerErrors,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    body: JsonObject,
) -> Result<Json<LogInResult>, AppError> {
    let username = body.required_str("username")?.to_owned();
    let password = SecretString::from(body.required_str("password")?);
    if username.contains(USERNAME_FORBIDDEN_CHARS) {
        return Err(AppError::bad_request(
            ErrorCode::InvalidCharacter,
            "The username contains an invalid character.",
        ));
    }
    let ctx = RequestContext::new(client_id, ip).with_request_id(request_id);
    let (service, now) = (state.service.clone(), state.clock.now());
    let token =
        run_to_completion(async move { service.login(&ctx, &username, &password, now).await })
            .await?;
    Ok(Json(LogInResult {
        session_token: Some(token.expose().to_owned()),
    }))
}

/// End a session.
///
/// The session token stops working at once.
#[utoipa::path(
    post, path = "/api/m2m/v1/session/logout", tag = "session",
    params(("VZ-M2M-Token" = Option<String>, Header, description = "The session token (GUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token just ended", body = LogOutRequest),
        (status = 400, description = "SessionToken.Expired, SessionToken.Format, SessionToken.Invalid", body = ConnectivityManagementResult),
        ApiTokenErrors, ServerErrors,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    session: SessionTokenHeader,
) -> Result<Json<LogOutRequest>, AppError> {
    let token = session.token()?;
    let ctx = RequestContext::new(client_id, ip).with_request_id(request_id);
    let (service, now) = (state.service.clone(), state.clock.now());
    let ended = token.clone();
    run_to_completion(async move { service.logout(&ctx, &ended, now).await }).await?;
    Ok(Json(LogOutRequest {
        session_token: Some(token.expose().to_owned()),
    }))
}

/// Reset the session user's password.
///
/// The server generates the new password, makes it effective at once and returns it this once.
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
        (status = 409, description = "IdempotencyKey.InProgress or IdempotencyKey.Expired", body = ConnectivityManagementResult),
        (status = 422, description = "IdempotencyKey.Mismatch", body = ConnectivityManagementResult),
        ApiTokenErrors, JsonBodyErrors, ServerErrors,
    )
)]
pub async fn reset_password(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    session: SessionTokenHeader,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<SessionResetPasswordResult>, AppError> {
    let old_password = SecretString::from(body.required_str("oldPassword")?);
    let token = session.token()?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| AppError::from(DomainError::IdempotencyKeyInvalid))?
                .to_owned(),
        ),
    };
    let ctx = RequestContext::new(client_id, ip).with_request_id(request_id);
    let (service, now) = (state.service.clone(), state.clock.now());
    let new_password = run_to_completion(async move {
        service
            .reset_password(&ctx, &token, &old_password, idempotency_key.as_deref(), now)
            .await
    })
    .await?;
    Ok(Json(SessionResetPasswordResult {
        new_password: Some(new_password.expose_secret().to_owned()),
    }))
}

/// Runs a state-changing operation on its own task, so that a client hanging up cannot cancel
/// it half-way (a reservation taken but never released, a failure never counted).
async fn run_to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T, DomainError>> + Send + 'static,
) -> Result<T, AppError> {
    // In the request's span: its lines (a lock, a rehash) keep the request id.
    tokio::spawn(tracing::Instrument::in_current_span(work))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "operation task failed");
            AppError::internal()
        })?
        .map_err(AppError::from)
}
