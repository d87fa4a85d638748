//! `GET /auth/verify`: the session check a gateway (nginx `auth_request`) asks before every call
//! of the wider API. Only 2xx and 401 are meaningful to such a gateway, so every refusal is 401.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use m2m_session_model::ConnectivityManagementResult;

use super::extract::{ApiClient, SessionTokenHeader};
use super::openapi::ServerErrors;
use super::{AppError, AppState};

/// Check an API token and a session token, for a gateway.
///
/// The session's user and account come back as headers for the gateway to pass on.
#[utoipa::path(
    get, path = "/auth/verify", tag = "gateway",
    params(("VZ-M2M-Token" = Option<String>, Header, description = "The session token (GUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Valid; counts as session activity",
            headers(("X-M2M-Username" = String), ("X-M2M-Account" = String))),
        (status = 401, description = "Bad API token (fault body) or bad session (contract error body)",
            body = ConnectivityManagementResult),
        ServerErrors,
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    client: Result<ApiClient, AppError>,
    session: SessionTokenHeader,
) -> Response {
    match check(&state, client, &session).await {
        Ok(response) => response,
        Err(AppError::Api {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
            retry_after,
        }) => AppError::Api {
            status: StatusCode::UNAUTHORIZED,
            code,
            message,
            retry_after,
        }
        .into_response(),
        Err(other) => other.into_response(),
    }
}

async fn check(
    state: &AppState,
    client: Result<ApiClient, AppError>,
    session: &SessionTokenHeader,
) -> Result<Response, AppError> {
    let ApiClient(client_id) = client?;
    let token = session.token()?;
    let session = state
        .service
        .authenticate_session(&client_id, &token, state.clock.now())
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&session.username) {
        headers.insert("x-m2m-username", v);
    }
    if let Some(account) = session.account.as_deref()
        && let Ok(v) = HeaderValue::from_str(account)
    {
        headers.insert("x-m2m-account", v);
    }
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
