//! [`ThingSpaceAuth`]: the API token and the session on any ThingSpace call made with the
//! program's own `reqwest` client (feature `middleware`).
//!
//! A program logs in in order to call the platform's other APIs (devices, SIM actions,
//! diagnostics, SMS): every one of those calls needs `Authorization: Bearer` and
//! `VZ-M2M-Token`, and each can find either expired. This middleware, for the ecosystem's
//! `reqwest-middleware` (the stack `reqwest-retry` and `reqwest-tracing` plug into; reqwest
//! itself is not a `tower` service), adds both, fetches a new API token when the gateway refuses
//! one (fault `900901`), logs in again when a call reports `SessionToken.Expired` (one login
//! however many calls notice it at once) and repeats the call once when its body can be
//! repeated. A login refused with `Login.InvalidCredentials` or `Login.Locked` is never tried
//! again on its own: the [`Session`] stops and every later call reports that refusal, so a
//! fleet with a wrong password cannot lock its own account ([`Session::resume`] starts again).
//!
//! The tokens go only to the session's own origin: the scheme, host and port of the
//! [`Client`](crate::Client)'s base URL (the platform's other APIs live there too). A request
//! to any other origin passes through untouched. reqwest follows redirects below the
//! middleware and drops `Authorization` on a redirect to another host, but not `VZ-M2M-Token`:
//! give the client `reqwest::redirect::Policy::none()` (or a same-host policy) if the APIs it
//! calls may redirect elsewhere.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use m2m_session_client::{Client, SecretString, Session, ThingSpaceAuth};
//!
//! let client = Client::from_env()?;
//! let session = Arc::new(Session::new(client, "zbeeblebrox", SecretString::from("IMgr8")));
//! let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(ThingSpaceAuth::new(session))
//!     .build();
//! let devices = http
//!     .post("https://thingspace.verizon.com/api/m2m/v1/devices/actions/list")
//!     .json(&serde_json::json!({"accountName": "0000123456-00001"}))
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use http::Extensions;
use m2m_session_model::{ConnectivityManagementResult, ErrorCode, GatewayFault};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use reqwest::{Request, Response, ResponseBuilderExt as _, StatusCode};
use reqwest_middleware::{Middleware, Next};
use secrecy::{ExposeSecret, SecretString};

use crate::{Error, Session, SessionToken};

/// Adds the API token and the session token to every request; see the [module](self).
#[derive(Debug, Clone)]
pub struct ThingSpaceAuth {
    session: Arc<Session>,
}

impl ThingSpaceAuth {
    /// Authenticates with `session` (shared: every client it is on logs in once).
    pub fn new(session: Arc<Session>) -> Self {
        Self { session }
    }

    /// The session the requests carry.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

/// The SDK's own error inside a middleware error: a refused login, or an API token that could
/// not be had.
pub fn thingspace_error(error: &reqwest_middleware::Error) -> Option<&Error> {
    match error {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<Error>(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}

/// What an answer asks of the middleware.
enum Verdict {
    /// Hand it to the caller.
    Done(Response),
    /// The gateway refused the API token (fault `900901`).
    ApiTokenRefused(Response),
    /// The session is gone: log in again.
    SessionExpired(Response),
}

/// [`m2m_session_model::SESSION_TOKEN_HEADER`] as a header name (names are lower case on the
/// wire's side of `http`).
const SESSION_TOKEN: HeaderName = HeaderName::from_static("vz-m2m-token");

/// Error answers are small: larger bodies are not read to classify them.
const MAX_CLASSIFIED_BODY: u64 = 64 * 1024;

#[async_trait::async_trait]
impl Middleware for ThingSpaceAuth {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let client = self.session.client();
        if !client.serves(request.url()) {
            return next.run(request, extensions).await;
        }
        let mut bearer = client.api_token().await.map_err(stop)?;
        let mut token = self.session.token().await.map_err(stop)?;
        // Kept for one repeat; a streamed body cannot be repeated, and then the answer that
        // asked for the repeat is handed back (after the new login, for the next call).
        let spare = request.try_clone();
        let mut request = Some(request);
        let (mut bearer_renewed, mut session_renewed) = (false, false);
        loop {
            let Some(mut sending) = request.take() else {
                unreachable!("a request is set before every turn of the loop")
            };
            authorize(&mut sending, &bearer, &token)?;
            let answer = next.clone().run(sending, extensions).await?;
            let repeat = match classify(answer).await? {
                Verdict::Done(answer) => return Ok(answer),
                Verdict::ApiTokenRefused(answer) if bearer_renewed => return Ok(answer),
                Verdict::ApiTokenRefused(answer) => {
                    tracing::debug!("API token refused; fetching a new one");
                    client.invalidate_api_token(&bearer).await;
                    bearer = client.api_token().await.map_err(stop)?;
                    bearer_renewed = true;
                    answer
                }
                Verdict::SessionExpired(answer) if session_renewed => return Ok(answer),
                Verdict::SessionExpired(answer) => {
                    token = self.session.relogin(&token).await.map_err(stop)?;
                    session_renewed = true;
                    answer
                }
            };
            match spare.as_ref().and_then(Request::try_clone) {
                Some(again) => request = Some(again),
                None => return Ok(repeat),
            }
        }
    }
}

/// The SDK's error as the middleware's: callers find it with [`thingspace_error`].
fn stop(error: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::Middleware(error.into())
}

fn authorize(
    request: &mut Request,
    bearer: &SecretString,
    token: &SessionToken,
) -> reqwest_middleware::Result<()> {
    let header = |value: String| {
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            stop(Error::Construction(
                "a token is not a valid header value".into(),
            ))
        })?;
        value.set_sensitive(true);
        Ok::<_, reqwest_middleware::Error>(value)
    };
    let headers = request.headers_mut();
    headers.insert(
        AUTHORIZATION,
        header(format!("Bearer {}", bearer.expose_secret()))?,
    );
    headers.insert(SESSION_TOKEN, header(token.expose_secret().to_owned())?);
    Ok(())
}

/// Reads an error answer's body to tell an expired session or a refused API token from the
/// call's own errors; the answer is handed on rebuilt with the same status, headers and body.
async fn classify(answer: Response) -> reqwest_middleware::Result<Verdict> {
    let status = answer.status();
    // Only an answer that declares a small length is read (a chunked one could be endless, and
    // a part read could not be handed on whole).
    let small = answer
        .content_length()
        .is_some_and(|n| n <= MAX_CLASSIFIED_BODY);
    if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED) || !small {
        return Ok(Verdict::Done(answer));
    }
    let version = answer.version();
    let headers = answer.headers().clone();
    let url = answer.url().clone();
    let body = answer.bytes().await?;

    let expired = serde_json::from_slice::<ConnectivityManagementResult>(&body)
        .ok()
        .and_then(|r| r.error_code)
        .and_then(|code| ErrorCode::from_code(&code))
        == Some(ErrorCode::SessionTokenExpired);
    let refused = status == StatusCode::UNAUTHORIZED
        && serde_json::from_slice::<GatewayFault>(&body)
            .is_ok_and(|f| f.fault.code == GatewayFault::invalid_credentials().fault.code);
    // The caller's `url()` (and error_for_status's message) stay the answer's own.
    let mut rebuilt = http::Response::builder()
        .status(status)
        .version(version)
        .url(url)
        .body(body)
        .map_err(|e| {
            stop(Error::Construction(format!(
                "an answer could not be rebuilt: {e}"
            )))
        })?;
    *rebuilt.headers_mut() = headers;
    let answer = Response::from(rebuilt);
    Ok(if expired {
        Verdict::SessionExpired(answer)
    } else if refused {
        Verdict::ApiTokenRefused(answer)
    } else {
        Verdict::Done(answer)
    })
}
