use m2m_session_model::{
    LogInRequest, LogInResult, LogOutRequest, SessionResetPasswordRequest,
    SessionResetPasswordResult,
};
use reqwest::Method;
use tracing::Instrument as _;

use crate::client::{Call, Repeat, api_error, decode};
use crate::{ApiResponse, Client, Error, RequestOptions, SessionToken};

const LOGIN: &str = "/m2m/v1/session/login";
const LOGOUT: &str = "/m2m/v1/session/logout";
const RESET: &str = "/m2m/v1/session/password/actions/reset";
/// Beside `/api`, at the server's root.
const VERIFY: &str = "/auth/verify";

/// The span of one operation: named after it, with `operation` the same name and `status` and
/// `request_id` recorded by `Client::call` when the answer arrives. Never a secret.
macro_rules! operation_span {
    ($name:literal) => {
        tracing::info_span!(
            $name,
            operation = $name,
            status = tracing::field::Empty,
            request_id = tracing::field::Empty,
        )
    };
}

/// The three session operations, under the names of the official ThingSpace SDKs'
/// `SessionManagementController` (TypeScript and C#), so code ported from them reads the same.
///
/// Get one from [`Client::session_management`].
#[derive(Debug, Clone)]
pub struct SessionManagementController {
    client: Client,
}

/// Who a session belongs to, as `/auth/verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// `X-M2M-Username`.
    pub username: String,
    /// `X-M2M-Account`, when the user has one.
    pub account: Option<String>,
}

impl SessionManagementController {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Starts a session: `POST /m2m/v1/session/login`.
    ///
    /// Never retried once the request may have reached the server: a repeated login would count
    /// twice towards the lockout and open two sessions.
    pub async fn start_connectivity_management_session(
        &self,
        body: Option<&LogInRequest>,
    ) -> Result<ApiResponse<LogInResult>, Error> {
        self.start_connectivity_management_session_with(body, &RequestOptions::default())
            .await
    }

    /// [`Self::start_connectivity_management_session`] with per-call options.
    pub async fn start_connectivity_management_session_with(
        &self,
        body: Option<&LogInRequest>,
        options: &RequestOptions,
    ) -> Result<ApiResponse<LogInResult>, Error> {
        let json_body = body.map(to_json).transpose()?;
        let call = Call {
            method: Method::POST,
            path: LOGIN,
            json_body,
            session_token: None,
            idempotency_key: None,
            repeat: Repeat::OnlyUnsent,
            attempt_timeout: options.attempt_timeout,
            at_root: false,
        };
        let span = operation_span!("start_connectivity_management_session");
        async { decode(self.client.call(call).await?) }
            .instrument(span)
            .await
    }

    /// Ends a session: `POST /m2m/v1/session/logout`. Answers with the token just ended.
    pub async fn end_connectivity_management_session(
        &self,
        session: &SessionToken,
    ) -> Result<ApiResponse<LogOutRequest>, Error> {
        self.end_connectivity_management_session_with(session, &RequestOptions::default())
            .await
    }

    /// [`Self::end_connectivity_management_session`] with per-call options.
    pub async fn end_connectivity_management_session_with(
        &self,
        session: &SessionToken,
        options: &RequestOptions,
    ) -> Result<ApiResponse<LogOutRequest>, Error> {
        let call = Call {
            method: Method::POST,
            path: LOGOUT,
            json_body: None,
            session_token: Some(session.expose_secret()),
            idempotency_key: None,
            repeat: Repeat::OnlyUnsent,
            attempt_timeout: options.attempt_timeout,
            at_root: false,
        };
        let span = operation_span!("end_connectivity_management_session");
        async { decode(self.client.call(call).await?) }
            .instrument(span)
            .await
    }

    /// Replaces the password with a server-generated one:
    /// `PUT /m2m/v1/session/password/actions/reset`.
    ///
    /// Sent with an `Idempotency-Key` (a new UUID per call unless given in the options) that
    /// every retry reuses, so a retry after a lost answer gets the same new password instead of
    /// failing on an old password that no longer exists.
    pub async fn reset_connectivity_management_password(
        &self,
        session: &SessionToken,
        body: &SessionResetPasswordRequest,
    ) -> Result<ApiResponse<SessionResetPasswordResult>, Error> {
        self.reset_connectivity_management_password_with(session, body, &RequestOptions::default())
            .await
    }

    /// [`Self::reset_connectivity_management_password`] with per-call options.
    pub async fn reset_connectivity_management_password_with(
        &self,
        session: &SessionToken,
        body: &SessionResetPasswordRequest,
        options: &RequestOptions,
    ) -> Result<ApiResponse<SessionResetPasswordResult>, Error> {
        let key = options
            .idempotency_key
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let call = Call {
            method: Method::PUT,
            path: RESET,
            json_body: Some(to_json(body)?),
            session_token: Some(session.expose_secret()),
            idempotency_key: Some(key),
            repeat: Repeat::Safe,
            attempt_timeout: options.attempt_timeout,
            at_root: false,
        };
        let span = operation_span!("reset_connectivity_management_password");
        async { decode(self.client.call(call).await?) }
            .instrument(span)
            .await
    }

    /// Checks a session without changing anything and keeps it alive (`GET /auth/verify` of
    /// m2m-session servers; not an operation of the official SDKs or the platform).
    pub async fn verify_session(
        &self,
        session: &SessionToken,
    ) -> Result<ApiResponse<SessionIdentity>, Error> {
        let call = Call {
            method: Method::GET,
            path: VERIFY,
            json_body: None,
            session_token: Some(session.expose_secret()),
            idempotency_key: None,
            repeat: Repeat::Safe,
            attempt_timeout: None,
            at_root: true,
        };
        let span = operation_span!("verify_session");
        async {
            let raw = self.client.call(call).await?;
            if !raw.status.is_success() {
                // 401 with the contract's body means the session (not the API token) failed.
                return Err(api_error(raw));
            }
            let header = |name: &str| {
                raw.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let result = SessionIdentity {
                username: header("x-m2m-username").unwrap_or_default(),
                account: header("x-m2m-account"),
            };
            Ok(ApiResponse {
                status: raw.status,
                headers: raw.headers,
                result,
            })
        }
        .instrument(span)
        .await
    }
}

fn to_json<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body).map_err(|e| Error::Construction(format!("cannot encode body: {e}")))
}
