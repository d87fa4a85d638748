use std::fmt;
use std::time::Duration;

use m2m_session_model::{ConnectivityManagementResult, ErrorCode, GatewayFault};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::controller::SessionManagementController;
use crate::oauth::TokenCache;
use crate::retry::{RetryBudget, is_retryable_status};
use crate::{ApiError, ApiResponse, ClientBuilder, Environment, Error, RetryConfig};

/// The SDK's entry point. Cheap to clone; clones share the connection pool, the API token cache
/// and the retry budget.
///
/// ```no_run
/// # async fn demo() -> Result<(), m2m_session_client::Error> {
/// use m2m_session_client::{Client, LogInRequest, SecretString};
///
/// let client = Client::builder()
///     .base_url("http://127.0.0.1:8080/api")?
///     .oauth_client_credentials("my-app", SecretString::from("client-secret"))
///     .build()?;
/// let login = client
///     .session_management()
///     .start_connectivity_management_session(Some(&LogInRequest::new("zbeeblebrox", "IMgr8")))
///     .await?;
/// println!("status {}", login.status);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: std::sync::Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) oauth_base: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) scope: Option<String>,
    pub(crate) attempt_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) retry: RetryConfig,
    pub(crate) budget: RetryBudget,
    pub(crate) tokens: TokenCache,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("oauth_base", &self.inner.oauth_base)
            .field("client_id", &self.inner.client_id)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Only if it provably never reached the server (login, logout).
    OnlyUnsent,
    /// Whenever the failure is transient (token requests, resets with an idempotency key).
    Safe,
}

/// One HTTP exchange's outcome, body read in full.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A call of the session API, as the controller describes it.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) json_body: Option<Vec<u8>>,
    pub(crate) session_token: Option<&'a str>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) repeat: Repeat,
    pub(crate) attempt_timeout: Option<Duration>,
    /// The path is relative to the server root (the base without its trailing `/api`).
    pub(crate) at_root: bool,
}

impl Client {
    /// Starts configuring a client; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the environment: `M2M_URL` (the API base including `/api`) or
    /// `M2M_ENVIRONMENT` (`production`, `staging`, `mock`), plus `M2M_CLIENT_ID` and
    /// `M2M_CLIENT_SECRET`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut builder = Self::builder();
        builder = match (get("M2M_URL"), get("M2M_ENVIRONMENT")) {
            (Some(url), _) => builder.base_url(&url)?,
            (None, Some(env)) => builder.environment(match env.to_ascii_lowercase().as_str() {
                "production" => Environment::Production,
                "staging" => Environment::Staging,
                "mock" => Environment::Mock,
                other => {
                    return Err(Error::Construction(format!(
                        "M2M_ENVIRONMENT must be production, staging or mock, not {other:?}"
                    )));
                }
            }),
            (None, None) => builder,
        };
        let id = get("M2M_CLIENT_ID")
            .ok_or_else(|| Error::Construction("M2M_CLIENT_ID is not set".into()))?;
        let secret = get("M2M_CLIENT_SECRET")
            .ok_or_else(|| Error::Construction("M2M_CLIENT_SECRET is not set".into()))?;
        builder
            .oauth_client_credentials(id, SecretString::from(secret))
            .build()
    }

    /// The session operations under the names the official ThingSpace SDKs give them (their
    /// `SessionManagementController`).
    pub fn session_management(&self) -> SessionManagementController {
        SessionManagementController::new(self.clone())
    }

    /// Forgets the cached API token, so the next call fetches a new one.
    pub async fn clear_api_token(&self) {
        self.inner.tokens.clear().await;
    }

    /// Whether `url` is on the service's origin (scheme, host and port of the base URL): the
    /// only place its tokens may be sent.
    #[cfg(feature = "middleware")]
    pub(crate) fn serves(&self, url: &url::Url) -> bool {
        url::Url::parse(&self.inner.base).is_ok_and(|base| base.origin() == url.origin())
    }

    /// The API token, from the cache or fetched (one fetch however many callers wait).
    #[cfg(feature = "middleware")]
    pub(crate) async fn api_token(&self) -> Result<SecretString, Error> {
        self.inner.tokens.get(self).await
    }

    /// Drops `token` from the cache if it is still the cached one.
    #[cfg(feature = "middleware")]
    pub(crate) async fn invalidate_api_token(&self, token: &SecretString) {
        self.inner.tokens.invalidate(token).await;
    }

    /// Runs a call within the operation timeout: API token, attempts, one repeat after a 401.
    pub(crate) async fn call(&self, call: Call<'_>) -> Result<RawResponse, Error> {
        let limit = self.inner.operation_timeout;
        let deadline = Instant::now() + limit;
        let raw = tokio::time::timeout_at(deadline, self.call_untimed(call, deadline))
            .await
            .map_err(|_| Error::Timeout(limit))??;
        // On the operation's span (fields it does not declare are ignored): what to quote when
        // reporting a problem, recorded whatever the answer.
        let span = tracing::Span::current();
        span.record("status", raw.status.as_u16());
        if let Some(id) = raw
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record("request_id", id);
        }
        tracing::debug!(status = raw.status.as_u16(), "answered");
        Ok(raw)
    }

    async fn call_untimed(&self, call: Call<'_>, deadline: Instant) -> Result<RawResponse, Error> {
        let base = if call.at_root {
            self.inner
                .base
                .strip_suffix("/api")
                .unwrap_or(&self.inner.base)
        } else {
            &self.inner.base
        };
        let url = format!("{base}{}", call.path);
        let attempt_timeout = call.attempt_timeout.unwrap_or(self.inner.attempt_timeout);
        let mut repeated_after_401 = false;
        loop {
            let bearer = self.inner.tokens.get(self).await?;
            let build = || {
                let mut req = self
                    .inner
                    .http
                    .request(call.method.clone(), &url)
                    .bearer_auth(bearer.expose_secret());
                if let Some(token) = call.session_token {
                    req = req.header(m2m_session_model::SESSION_TOKEN_HEADER, token);
                }
                if let Some(key) = &call.idempotency_key {
                    req = req.header(m2m_session_model::IDEMPOTENCY_KEY_HEADER, key);
                }
                if let Some(body) = &call.json_body {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                }
                req
            };
            let raw = self
                .send(call.repeat, attempt_timeout, Some(deadline), build)
                .await?;
            // A 401 is the gateway refusing the API token before anything ran: drop the token
            // and repeat once with a fresh one, whatever the operation.
            if raw.status == StatusCode::UNAUTHORIZED
                && !repeated_after_401
                && !is_session_error(&raw.body)
            {
                tracing::debug!("API token refused; fetching a new one");
                self.inner.tokens.invalidate(&bearer).await;
                repeated_after_401 = true;
                continue;
            }
            return Ok(raw);
        }
    }

    /// Sends with retries as far as `repeat` allows.
    ///
    /// A safe request answered `IdempotencyKey.InProgress` is waited for until `deadline`: the
    /// server is still making the answer (typically to an attempt of ours that timed out), and
    /// giving up would lose it just like a lost answer would. Those waits spend neither attempts
    /// nor the retry budget, which exist to bound repeats of failures.
    pub(crate) async fn send(
        &self,
        repeat: Repeat,
        attempt_timeout: Duration,
        deadline: Option<Instant>,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<RawResponse, Error> {
        let retry = &self.inner.retry;
        let budget = &self.inner.budget;
        let mut attempt: u32 = 0;
        let mut waits: u32 = 0;
        let mut in_progress: Option<RawResponse> = None;
        loop {
            attempt += 1;
            let more_allowed = attempt < retry.attempts();
            let sent = attempt_once(build().timeout(attempt_timeout));
            // Once the server has said "in progress", running out of time mid-attempt reports
            // that answer (what the caller can act on), not a bare timeout.
            let outcome = match (deadline, in_progress.take()) {
                (Some(deadline), Some(last)) => {
                    match tokio::time::timeout_at(deadline, sent).await {
                        Ok(outcome) => outcome,
                        Err(_) => return Ok(last),
                    }
                }
                _ => sent.await,
            };
            match outcome {
                Ok(raw) if raw.status.is_success() => {
                    budget.refund();
                    return Ok(raw);
                }
                Ok(raw)
                    if repeat == Repeat::Safe && retry.attempts() > 1 && is_in_progress(&raw) =>
                {
                    let Some(delay) = retry.delay(waits, Some(&raw.headers)) else {
                        return Ok(raw);
                    };
                    if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                        return Ok(raw);
                    }
                    tracing::debug!(waits, ?delay, "still in progress on the server; waiting");
                    attempt -= 1;
                    waits += 1;
                    tokio::time::sleep(delay).await;
                    in_progress = Some(raw);
                    continue;
                }
                Ok(raw) => {
                    if repeat == Repeat::Safe
                        && is_retryable_status(raw.status)
                        && more_allowed
                        && let Some(delay) = retry.delay(attempt - 1, Some(&raw.headers))
                        && budget.try_spend()
                    {
                        tracing::debug!(status = %raw.status, attempt, ?delay, "retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Ok(raw);
                }
                Err(e) => {
                    let unsent = e.is_connect();
                    if (unsent || repeat == Repeat::Safe) && more_allowed && budget.try_spend() {
                        let delay = retry.backoff(attempt - 1);
                        tracing::debug!(error = %e, attempt, ?delay, "retrying after transport error");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(if e.is_timeout() {
                        Error::Timeout(attempt_timeout)
                    } else {
                        Error::Transport(e)
                    });
                }
            }
        }
    }
}

/// 409 `IdempotencyKey.InProgress`: the first request with this key is still running.
fn is_in_progress(raw: &RawResponse) -> bool {
    raw.status == StatusCode::CONFLICT
        && serde_json::from_slice::<ConnectivityManagementResult>(&raw.body).is_ok_and(|r| {
            r.error_code.as_deref().and_then(ErrorCode::from_code)
                == Some(ErrorCode::IdempotencyKeyInProgress)
        })
}

/// A body in the contract's error shape: the session failed, not the API token.
fn is_session_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("errorCode").is_some_and(serde_json::Value::is_string))
}

async fn attempt_once(req: RequestBuilder) -> Result<RawResponse, reqwest::Error> {
    let response = req.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

/// A 2xx body decoded as `T`, or the matching error.
pub(crate) fn decode<T: DeserializeOwned>(raw: RawResponse) -> Result<ApiResponse<T>, Error> {
    if !raw.status.is_success() {
        return Err(api_error(raw));
    }
    match serde_json::from_slice::<T>(&raw.body) {
        Ok(result) => Ok(ApiResponse {
            status: raw.status,
            headers: raw.headers,
            result,
        }),
        Err(_) => Err(undecodable(raw)),
    }
}

/// An error answer: the contract's error body, the gateway fault, or undecodable.
pub(crate) fn api_error(raw: RawResponse) -> Error {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&raw.body) else {
        return undecodable(raw);
    };
    let fault = map
        .contains_key("fault")
        .then(|| {
            serde_json::from_value::<GatewayFault>(serde_json::Value::Object(map.clone())).ok()
        })
        .flatten();
    let result = if fault.is_some() {
        None
    } else {
        serde_json::from_value::<ConnectivityManagementResult>(serde_json::Value::Object(map)).ok()
    };
    Error::Api(Box::new(ApiError {
        status: raw.status,
        headers: raw.headers,
        result,
        fault,
        raw_body: String::from_utf8_lossy(&raw.body).into_owned(),
    }))
}

fn undecodable(raw: RawResponse) -> Error {
    Error::UndecodableResponse {
        status: raw.status,
        headers: Box::new(raw.headers),
        raw_body: String::from_utf8_lossy(&raw.body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn from_env_reads_url_or_environment_and_requires_credentials() {
        let c = Client::from_lookup(env(&[
            ("M2M_URL", "http://127.0.0.1:9/api"),
            ("M2M_CLIENT_ID", "id"),
            ("M2M_CLIENT_SECRET", "s"),
        ]))
        .unwrap();
        assert_eq!(c.inner.base, "http://127.0.0.1:9/api");
        let c = Client::from_lookup(env(&[
            ("M2M_ENVIRONMENT", "staging"),
            ("M2M_CLIENT_ID", "id"),
            ("M2M_CLIENT_SECRET", "s"),
        ]))
        .unwrap();
        assert_eq!(c.inner.base, "https://staging.thingspace.verizon.com/api");
        assert!(matches!(
            Client::from_lookup(env(&[("M2M_CLIENT_ID", "id")])),
            Err(Error::Construction(_))
        ));
        assert!(matches!(
            Client::from_lookup(env(&[
                ("M2M_ENVIRONMENT", "moon"),
                ("M2M_CLIENT_ID", "id"),
                ("M2M_CLIENT_SECRET", "s"),
            ])),
            Err(Error::Construction(_))
        ));
    }

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn error_bodies_are_classified() {
        let e = api_error(raw(
            400,
            r#"{"errorCode":"UnifiedWebService.REQUEST_FAILED.SessionToken.Expired","errorMessage":"m"}"#,
        ));
        assert!(e.is_session_expired());
        assert!(!e.is_locked());
        let e = api_error(raw(
            401,
            r#"{"fault":{"code":"900901","message":"Invalid Credentials","description":""}}"#,
        ));
        assert_eq!(e.error_code(), Some("900901"));
        let e = api_error(raw(400, "<html>oops</html>"));
        match e {
            Error::UndecodableResponse {
                raw_body, status, ..
            } => {
                assert_eq!(raw_body, "<html>oops</html>");
                assert_eq!(status, 400);
            }
            other => panic!("{other:?}"),
        }
    }
}
