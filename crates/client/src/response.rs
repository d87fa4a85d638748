use std::time::Duration;

use m2m_session_model::{LogInResult, SessionResetPasswordResult};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;

use crate::{Error, SessionToken};

/// A successful answer: status, headers, and the decoded body.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    /// HTTP status (200 for the session operations).
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The decoded body.
    pub result: T,
}

impl ApiResponse<LogInResult> {
    /// The session token of a login, ready for the other operations and for the
    /// `VZ-M2M-Token` header of your own calls.
    ///
    /// # Errors
    ///
    /// [`Error::UndecodableResponse`] when the answer has no `sessionToken` (the contract always
    /// sends one; a server that does not is not speaking it).
    ///
    /// ```no_run
    /// # async fn demo(client: m2m_session_client::Client) -> Result<(), m2m_session_client::Error> {
    /// use m2m_session_client::LogInRequest;
    /// let login = client
    ///     .session_management()
    ///     .start_connectivity_management_session(Some(&LogInRequest::new("zbeeblebrox", "IMgr8")))
    ///     .await?;
    /// let token = login.session_token()?;
    /// # Ok(()) }
    /// ```
    pub fn session_token(&self) -> Result<SessionToken, Error> {
        self.result
            .session_token
            .as_deref()
            .map(SessionToken::new)
            .ok_or_else(|| self.missing("a login answer without sessionToken"))
    }
}

impl ApiResponse<SessionResetPasswordResult> {
    /// The password the server generated, shown this once: keep it, the old one no longer works.
    ///
    /// # Errors
    ///
    /// [`Error::UndecodableResponse`] when the answer has no `newPassword`.
    pub fn new_password(&self) -> Result<SecretString, Error> {
        self.result
            .new_password
            .as_deref()
            .map(SecretString::from)
            .ok_or_else(|| self.missing("a reset answer without newPassword"))
    }
}

impl<T> ApiResponse<T> {
    /// A successful answer that lacks what the operation promises.
    fn missing(&self, what: &str) -> Error {
        Error::UndecodableResponse {
            status: self.status,
            headers: Box::new(self.headers.clone()),
            raw_body: what.to_owned(),
        }
    }
}

/// Per-call settings that override the client's.
///
/// ```
/// use std::time::Duration;
/// use m2m_session_client::RequestOptions;
/// let options = RequestOptions::default()
///     .attempt_timeout(Duration::from_secs(5))
///     .idempotency_key("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a");
/// assert_eq!(options.idempotency_key.as_deref(), Some("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Replaces the client's per-attempt timeout for this call.
    pub attempt_timeout: Option<Duration>,
    /// The `Idempotency-Key` of a reset; by default a new UUID per call, reused by its retries.
    /// Pass your own to make a reset safe to repeat across process restarts.
    pub idempotency_key: Option<String>,
}

impl RequestOptions {
    /// Sets [`Self::attempt_timeout`].
    #[must_use]
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// Sets [`Self::idempotency_key`].
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response<T>(result: T) -> ApiResponse<T> {
        ApiResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            result,
        }
    }

    #[test]
    fn a_login_answer_gives_its_token_or_says_it_has_none() {
        let login = response(LogInResult {
            session_token: Some("bcce3ea6-fe4f-4952-bacf-eadd80718e83".into()),
        });
        assert_eq!(
            login.session_token().ok(),
            Some(SessionToken::new("bcce3ea6-fe4f-4952-bacf-eadd80718e83"))
        );
        let empty = response(LogInResult::default()).session_token();
        let Err(e @ Error::UndecodableResponse { .. }) = empty else {
            panic!("{empty:?}");
        };
        assert!(e.to_string().contains("without sessionToken"), "{e}");
    }

    #[test]
    fn a_reset_answer_gives_its_password_as_a_secret() {
        use secrecy::ExposeSecret;
        let reset = response(SessionResetPasswordResult {
            new_password: Some("Wh0a1545a84d".into()),
        });
        let password = reset.new_password().ok();
        assert_eq!(
            password.as_ref().map(ExposeSecret::expose_secret),
            Some("Wh0a1545a84d")
        );
        assert!(!format!("{password:?}").contains("Wh0a1545a84d"));
        assert!(
            response(SessionResetPasswordResult::default())
                .new_password()
                .is_err()
        );
    }
}
