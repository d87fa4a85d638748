use std::fmt;

use m2m_session_model::{
    ConnectivityManagementResult, ErrorCode, GatewayFault, OAuthErrorResponse,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Everything that can go wrong with a call, split by what the caller can do about it
/// (after smithy-rs): fix the input, wait and retry, re-authenticate, or report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client or the request could not be built; nothing was sent.
    #[error("invalid configuration: {0}")]
    Construction(String),
    /// No answer in time. The request may have reached the server.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// No response: connection refused or reset, TLS failure, DNS. `source` says which.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The OAuth token endpoint refused to issue an API token.
    #[error("OAuth token request failed with {status}: {}", body.as_ref().map_or("no error body", |b| b.error.as_str()))]
    OAuth {
        /// HTTP status of the token endpoint's answer.
        status: StatusCode,
        /// The RFC 6749 error body, when there was one.
        body: Option<OAuthErrorResponse>,
        /// The body exactly as received.
        raw_body: String,
    },
    /// The service answered with an error status and a JSON body.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The service answered but the body could not be decoded as expected.
    #[error("undecodable response with status {status}")]
    UndecodableResponse {
        /// HTTP status of the answer.
        status: StatusCode,
        /// Its headers.
        headers: Box<HeaderMap>,
        /// The body exactly as received.
        raw_body: String,
    },
}

/// An error answer of the service.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status: 400 for every documented operation error.
    pub status: StatusCode,
    /// Response headers (e.g. `Retry-After`).
    pub headers: HeaderMap,
    /// The `ConnectivityManagementResult` body, for every operation error.
    pub result: Option<ConnectivityManagementResult>,
    /// The gateway's `fault` body, for a 401 on the API token.
    pub fault: Option<GatewayFault>,
    /// The body exactly as received.
    pub raw_body: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service answered {}", self.status)?;
        if let Some(code) = self.error_code() {
            write!(f, " {code}")?;
        }
        if let Some(msg) = self
            .result
            .as_ref()
            .and_then(|r| r.error_message.as_deref())
        {
            write!(f, ": {msg}")?;
        }
        if let Some(id) = self.request_id() {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

impl ApiError {
    /// The server's `X-Request-Id` for this answer: quote it when reporting a problem, it is
    /// in the server's log lines of the request.
    pub fn request_id(&self) -> Option<&str> {
        request_id(&self.headers)
    }

    /// `errorCode` of the body, or the gateway fault's code.
    pub fn error_code(&self) -> Option<&str> {
        self.result
            .as_ref()
            .and_then(|r| r.error_code.as_deref())
            .or_else(|| self.fault.as_ref().map(|f| f.fault.code.as_str()))
    }
}

impl Error {
    /// The server's `X-Request-Id`, when the error is an answer that carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(e) => e.request_id(),
            Self::UndecodableResponse { headers, .. } => request_id(headers),
            _ => None,
        }
    }

    /// The service's `errorCode` (or gateway fault code), if the service answered with one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api(e) => e.error_code(),
            _ => None,
        }
    }

    /// The known code, matched on the stable part after the service name.
    pub fn known_code(&self) -> Option<ErrorCode> {
        self.error_code().and_then(ErrorCode::from_code)
    }

    /// HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::OAuth { status, .. } | Self::UndecodableResponse { status, .. } => Some(*status),
            Self::Api(e) => Some(e.status),
            _ => None,
        }
    }

    /// The session token is expired, ended or unknown: log in again.
    pub fn is_session_expired(&self) -> bool {
        self.known_code() == Some(ErrorCode::SessionTokenExpired)
    }

    /// The user is locked after too many failures; only time or an administrator helps.
    pub fn is_locked(&self) -> bool {
        self.known_code() == Some(ErrorCode::Locked)
    }

    /// Wrong username or password (the service does not say which).
    pub fn is_invalid_credentials(&self) -> bool {
        self.known_code() == Some(ErrorCode::InvalidCredentials)
    }

    /// The first reset with this `Idempotency-Key` was still running on the server when the
    /// operation's time ran out: repeat it with the same key (see
    /// [`RequestOptions::idempotency_key`](crate::RequestOptions)) to get its answer.
    pub fn is_in_progress(&self) -> bool {
        self.known_code() == Some(ErrorCode::IdempotencyKeyInProgress)
    }

    /// Nothing reached the server or it asked to come back later.
    ///
    /// Not a reset still in progress ([`Self::is_in_progress`]): calling the reset again
    /// would send a new idempotency key, and against a password the first request already
    /// replaced it would fail as a wrong old password and count towards the lock. Such a reset
    /// is waited for inside the call, as long as its deadline allows.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Transport(_) => true,
            _ => {
                !self.is_in_progress()
                    && self.status().is_some_and(super::retry::is_retryable_status)
            }
        }
    }
}

fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok())
}
