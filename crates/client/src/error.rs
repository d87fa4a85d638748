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
    /// No response: connection refused or reset, TLS failure, DNS. The message names the
    /// innermost cause ("Connection refused"), so the reqwest error is not also a `source`:
    /// a chain printed in full would say it twice.
    #[error("{}", transport_line(.0))]
    Transport(reqwest::Error),
    /// The OAuth token endpoint refused to issue an API token.
    #[error("OAuth token request failed with {status}: {}{}", oauth_reason(body.as_ref(), raw_body), not_found_hint(*status))]
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
    #[error("undecodable response with status {status}{}{}", undecodable_body(*status, raw_body), not_found_hint(*status))]
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

/// One line: the code and the service's message first (what happened), then the status and
/// the request id (what to quote when reporting it).
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self
            .result
            .as_ref()
            .and_then(|r| r.error_message.as_deref())
            .or_else(|| self.fault.as_ref().map(|f| f.fault.message.as_str()));
        match (self.error_code(), message) {
            (Some(code), Some(msg)) => write!(f, "{code}: {msg}")?,
            (Some(code), None) => write!(f, "{code}")?,
            (None, _) => write!(f, "service answered: {}", excerpt(&self.raw_body))?,
        }
        write!(f, " (HTTP {}", self.status)?;
        if let Some(id) = self.request_id() {
            write!(f, ", request id {id}")?;
        }
        write!(f, "){}", not_found_hint(self.status))
    }
}

/// The part of a transport failure a person can act on: what could not be reached, and the
/// innermost cause ("Connection refused (os error 111)", "dns error: ...").
fn transport_line(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect to"
    } else {
        "request failed to"
    };
    let target = e
        .url()
        .map_or_else(|| "the server".to_owned(), |u| u.to_string());
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{what} {target}: {cause}")
}

/// What an undecodable answer said. A success's JSON is not shown: one that failed to decode (a
/// cut-off login answer, a token answer of another shape) may carry a token or a password.
fn undecodable_body(status: StatusCode, raw_body: &str) -> String {
    let json = matches!(raw_body.trim_start().chars().next(), Some('{' | '['));
    if status.is_success() && json {
        format!(": a JSON body of {} bytes, not shown", raw_body.len())
    } else {
        format!(": {}", excerpt(raw_body))
    }
}

/// The token endpoint's reason: its RFC 6749 `error`, else what it sent, else that it sent
/// nothing.
fn oauth_reason(body: Option<&OAuthErrorResponse>, raw_body: &str) -> String {
    match body {
        Some(b) => b.error.clone(),
        None if raw_body.trim().is_empty() => "no error body".to_owned(),
        None => excerpt(raw_body),
    }
}

/// A body as a short single line: the `errorMessage` of a JSON error body, else the start of
/// the text, enough to recognise it, never a page of HTML.
fn excerpt(body: &str) -> String {
    const MAX: usize = 120;
    if let Ok(ConnectivityManagementResult {
        error_code: Some(code),
        error_message,
        ..
    }) = serde_json::from_str(body)
    {
        return match error_message {
            Some(message) => format!("{code}: {message}"),
            None => code,
        };
    }
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "an empty body".to_owned();
    }
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// A 404 from this API almost always means a base URL without its `/api`.
fn not_found_hint(status: StatusCode) -> &'static str {
    if status == StatusCode::NOT_FOUND {
        "; check the base URL: it ends in /api, e.g. http://127.0.0.1:8080/api"
    } else {
        ""
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

    /// A login refused in a way a repeat cannot fix and could make worse (a wrong password
    /// counts towards the lock): [`Session`](crate::Session) stops logging in after it.
    pub fn stops_logins(&self) -> bool {
        self.is_invalid_credentials() || self.is_locked()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn api_error(status: StatusCode, body: &str) -> ApiError {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "req-1".parse().unwrap());
        ApiError {
            status,
            headers,
            result: serde_json::from_str(body).ok(),
            fault: None,
            raw_body: body.to_owned(),
        }
    }

    #[test]
    fn an_api_error_is_one_line_with_its_code_once() {
        let body = r#"{"errorCode":"UnifiedWebService.REQUEST_FAILED.SessionToken.Expired","errorMessage":"The session token has expired."}"#;
        let line = Error::Api(Box::new(api_error(StatusCode::BAD_REQUEST, body))).to_string();
        assert_eq!(
            line,
            "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired: The session token has \
             expired. (HTTP 400 Bad Request, request id req-1)"
        );
    }

    #[test]
    fn a_not_found_shows_the_body_and_hints_at_the_missing_api() {
        let body = r#"{"errorCode":"UnifiedWebService.REQUEST_FAILED.NotFound","errorMessage":"No such resource."}"#;
        let oauth = Error::OAuth {
            status: StatusCode::NOT_FOUND,
            body: None,
            raw_body: body.to_owned(),
        }
        .to_string();
        assert!(oauth.contains("No such resource."), "{oauth}");
        assert!(
            oauth.ends_with("it ends in /api, e.g. http://127.0.0.1:8080/api"),
            "{oauth}"
        );
        assert!(!oauth.contains("no error body"), "{oauth}");
        // A page of HTML is cut to one short line.
        let page = format!("<html>{}</html>", "x\n".repeat(1000));
        let html = Error::Api(Box::new(api_error(StatusCode::NOT_FOUND, &page))).to_string();
        assert_eq!(html.lines().count(), 1, "{html}");
        assert!(html.len() < 400, "{html}");
    }

    #[test]
    fn a_successful_answer_that_does_not_decode_never_shows_its_json() {
        let e = Error::UndecodableResponse {
            status: StatusCode::OK,
            headers: Box::default(),
            raw_body: r#"{"access_token":"tok-secret","expires_in":"3599"}"#.into(),
        };
        let line = e.to_string();
        assert!(!line.contains("tok-secret"), "{line}");
        assert!(
            line.contains("a JSON body of 49 bytes, not shown"),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        // A port just given up by the system: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/api/ts/v1/oauth2/token");
        let e = reqwest::Client::new().get(&url).send().await.unwrap_err();
        let line = Error::Transport(e).to_string();
        assert!(
            line.starts_with(&format!("cannot connect to {url}: ")),
            "{line}"
        );
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
        // The cause is in the message, so it is not also a source to be printed again.
        assert!(
            std::error::Error::source(&Error::Transport(
                reqwest::Client::new()
                    .get(format!("http://127.0.0.1:{port}/"))
                    .send()
                    .await
                    .unwrap_err()
            ))
            .is_none()
        );
    }
}
