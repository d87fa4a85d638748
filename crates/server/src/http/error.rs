use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use m2m_session_model::{
    ConnectivityManagementResult, ErrorCode, GatewayFault, OAuthErrorResponse,
};

use crate::domain::DomainError;
use crate::telemetry;

/// Seconds a client should wait after a 503 before trying again.
const RETRY_AFTER_UNAVAILABLE: u64 = 1;

/// Every non-2xx answer of the HTTP layer, in one of the contract's three shapes.
#[derive(Debug)]
pub enum AppError {
    /// `ConnectivityManagementResult` body.
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The contract's `errorCode`.
        code: ErrorCode,
        /// The `errorMessage`: one line a person can act on.
        message: Cow<'static, str>,
        /// Seconds for a `Retry-After` header, when waiting helps.
        retry_after: Option<u64>,
    },
    /// The gateway's 401 `fault` body for a missing or bad API token.
    Fault(GatewayFault),
    /// RFC 6749 error body of the token and revoke endpoints.
    OAuth {
        /// The HTTP status.
        status: StatusCode,
        /// RFC 6749's `error`.
        error: &'static str,
        /// RFC 6749's `error_description`.
        description: Option<&'static str>,
    },
}

impl AppError {
    /// A documented operation error: always HTTP 400.
    pub fn bad_request(code: ErrorCode, message: &'static str) -> Self {
        Self::api(StatusCode::BAD_REQUEST, code, message)
    }

    /// An answer in the contract's shape, with any status.
    pub fn api(status: StatusCode, code: ErrorCode, message: &'static str) -> Self {
        Self::Api {
            status,
            code,
            message: Cow::Borrowed(message),
            retry_after: None,
        }
    }

    /// 503 with `Retry-After`: the store or the hasher cannot take the request now.
    pub fn unavailable() -> Self {
        Self::Api {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::ServiceUnavailable,
            message: Cow::Borrowed("The service is temporarily unavailable; try again shortly."),
            retry_after: Some(RETRY_AFTER_UNAVAILABLE),
        }
    }

    /// 500 without detail: the cause goes to the log, never to the client.
    pub fn internal() -> Self {
        Self::api(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::UnexpectedError,
            "An unexpected error occurred.",
        )
    }

    /// An RFC 6749 error answer.
    pub fn oauth(status: StatusCode, error: &'static str, description: &'static str) -> Self {
        Self::OAuth {
            status,
            error,
            description: Some(description),
        }
    }

    /// 401 `invalid_client` with a Basic challenge: unknown client or wrong secret.
    pub fn invalid_client() -> Self {
        Self::OAuth {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: None,
        }
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::InvalidCredentials => Self::bad_request(
                ErrorCode::InvalidCredentials,
                "The username or password is incorrect.",
            ),
            DomainError::Locked { .. } => Self::bad_request(
                ErrorCode::Locked,
                "The user is locked after too many failed attempts; contact your administrator.",
            ),
            DomainError::SessionExpired => Self::bad_request(
                ErrorCode::SessionTokenExpired,
                "The session token has expired or was ended; log in again.",
            ),
            DomainError::OldPasswordMismatch => Self::bad_request(
                ErrorCode::OldPasswordMismatch,
                "The old password is incorrect.",
            ),
            DomainError::InvalidApiToken => Self::Fault(GatewayFault::invalid_credentials()),
            DomainError::InvalidClient => Self::invalid_client(),
            DomainError::InvalidScope => Self::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "The requested scope is invalid or not allowed for this client.",
            ),
            DomainError::UnauthorizedClient => Self::oauth(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "The token was issued to another client.",
            ),
            DomainError::Throttled { retry_after } => Self::Api {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: ErrorCode::Throttled,
                message: Cow::Borrowed(
                    "Too many failed logins from this address; try again later.",
                ),
                // Rounded up: a client waiting exactly this long is no longer throttled.
                retry_after: Some(
                    retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
                ),
            },
            DomainError::Busy | DomainError::Overloaded => {
                super::shed::record(super::shed::Reason::Overloaded);
                Self::unavailable()
            }
            // A reset takes a few password hashes: a second is a fair first wait for a retry.
            DomainError::IdempotencyInProgress => Self::Api {
                status: StatusCode::CONFLICT,
                code: ErrorCode::IdempotencyKeyInProgress,
                message: Cow::Borrowed(
                    "A request with this Idempotency-Key is still in progress; retry it shortly.",
                ),
                retry_after: Some(1),
            },
            DomainError::IdempotencyExpired => Self::api(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyKeyExpired,
                "The answer for this Idempotency-Key is no longer available.",
            ),
            DomainError::IdempotencyMismatch => Self::api(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyMismatch,
                "This Idempotency-Key was used with a different request.",
            ),
            DomainError::IdempotencyKeyInvalid => Self::bad_request(
                ErrorCode::IdempotencyKeyInvalid,
                "The Idempotency-Key must be 1 to 255 printable ASCII characters.",
            ),
            DomainError::Unavailable(reason) => {
                metrics::counter!(telemetry::STORE_ERRORS).increment(1);
                tracing::warn!(%reason, "store unavailable");
                Self::unavailable()
            }
            DomainError::StoreFailed(error) => {
                metrics::counter!(telemetry::STORE_ERRORS).increment(1);
                tracing::error!(%error, "store failed");
                Self::internal()
            }
            other => {
                tracing::error!(error = %other, "request failed unexpectedly");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Api {
                status,
                code,
                message,
                retry_after,
            } => {
                let body = ConnectivityManagementResult::new(code.as_str(), message);
                let mut response = (status, Json(body)).into_response();
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                }
                response
            }
            Self::Fault(fault) => {
                let mut response = (StatusCode::UNAUTHORIZED, Json(fault)).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::OAuth {
                status,
                error,
                description,
            } => {
                let body = OAuthErrorResponse {
                    error: error.to_owned(),
                    error_description: description.map(str::to_owned),
                };
                let mut response = (status, Json(body)).into_response();
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"m2m-session\""),
                    );
                }
                response
            }
        }
    }
}
