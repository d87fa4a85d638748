//! The three operations of the seeds' `SessionManagementController`.

use axum::Json;
use axum::extract::State;
use m2m_session_model::{ErrorCode, LogInResult, LogOutRequest, SessionResetPasswordResult};
use secrecy::{ExposeSecret, SecretString};

use super::extract::{ApiClient, JsonObject, SessionTokenHeader};
use super::{AppError, AppState};
use crate::domain::USERNAME_FORBIDDEN_CHARS;
use crate::time::Timestamp;

pub async fn login(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    body: JsonObject,
) -> Result<Json<LogInResult>, AppError> {
    let username = body.required_str("username")?;
    let password = SecretString::from(body.required_str("password")?);
    if username.contains(USERNAME_FORBIDDEN_CHARS) {
        return Err(AppError::bad_request(
            ErrorCode::InvalidCharacter,
            "The username contains an invalid character.",
        ));
    }
    let token = state
        .service
        .login(&client_id, username, &password, Timestamp::now())
        .await?;
    Ok(Json(LogInResult {
        session_token: Some(token.expose().to_owned()),
    }))
}

pub async fn logout(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    session: SessionTokenHeader,
) -> Result<Json<LogOutRequest>, AppError> {
    let token = session.token()?;
    state
        .service
        .logout(&client_id, &token, Timestamp::now())
        .await?;
    Ok(Json(LogOutRequest {
        session_token: Some(token.expose().to_owned()),
    }))
}

pub async fn reset_password(
    State(state): State<AppState>,
    ApiClient(client_id): ApiClient,
    session: SessionTokenHeader,
    body: JsonObject,
) -> Result<Json<SessionResetPasswordResult>, AppError> {
    let old_password = SecretString::from(body.required_str("oldPassword")?);
    let token = session.token()?;
    let new_password = state
        .service
        .reset_password(&client_id, &token, &old_password, Timestamp::now())
        .await?;
    Ok(Json(SessionResetPasswordResult {
        new_password: Some(new_password.expose_secret().to_owned()),
    }))
}
