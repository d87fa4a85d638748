//! A blocking API for programs without an async runtime, like `reqwest::blocking`: the same
//! names ([`Client`], [`Client::session_management`], [`SessionManagementController`] with the
//! three operations, [`Session`]) without `async`. Feature `blocking`.
//!
//! It wraps the async client rather than a second HTTP stack, so retries, the API token cache
//! and idempotent resets behave exactly as they do there. Each blocking client owns a small
//! current-thread tokio runtime (shared by its clones, sessions and controllers) and runs each
//! call to completion on the calling thread.
//!
//! Not for use inside an async runtime (a `#[tokio::main]` function or a task): blocking there
//! would stall the runtime, so every call returns [`Error::Construction`] instead. Use the
//! async [`crate::Client`] there. A blocking client may be built there and moved to a thread of
//! its own. The check is whether the thread has a tokio runtime context, so a closure of
//! `tokio::task::spawn_blocking` counts as inside too: there, call the async client through
//! `tokio::runtime::Handle::current().block_on(..)`.
//!
//! ```no_run
//! use m2m_session_client::blocking::Client;
//! use m2m_session_client::{LogInRequest, SecretString, SessionResetPasswordRequest};
//!
//! # fn demo() -> Result<(), m2m_session_client::Error> {
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080/api")?
//!     .oauth_client_credentials("my-app", SecretString::from("client-secret"))
//!     .build_blocking()?;
//! let sessions = client.session_management();
//!
//! let login = sessions
//!     .start_connectivity_management_session(Some(&LogInRequest::new("zbeeblebrox", "IMgr8")))?;
//! let token = login.session_token()?;
//! let reset = sessions
//!     .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new("IMgr8"))?;
//! let new_password = reset.new_password()?;
//! sessions.end_connectivity_management_session(&token)?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;

use m2m_session_model::{
    LogInRequest, LogInResult, LogOutRequest, SessionResetPasswordRequest,
    SessionResetPasswordResult,
};
use secrecy::SecretString;

use crate::{ApiResponse, ClientBuilder, Error, RequestOptions, SessionIdentity, SessionToken};

/// The message of the error returned by every blocking call made inside an async runtime.
const INSIDE_ASYNC: &str =
    "the blocking client cannot be used inside an async runtime; use the async Client";

/// The runtime every clone of one blocking client runs its calls on.
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> Result<Self, Error> {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| Error::Construction(format!("cannot start the blocking runtime: {e}")))
    }

    /// Runs `future` to completion on this thread; an error instead of tokio's panic (or a
    /// stalled runtime) when the thread is inside an async runtime.
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Construction(INSIDE_ASYNC.into()));
        }
        match &self.0 {
            Some(rt) => Ok(rt.block_on(future)),
            // Only taken when dropped.
            None => Err(Error::Construction(
                "the blocking runtime has shut down".into(),
            )),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropping a runtime where blocking is not allowed panics: a client built or last held
        // inside an async runtime lets its runtime go without waiting.
        if let Some(rt) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            rt.shutdown_background();
        }
    }
}

/// The blocking [`crate::Client`]: the same configuration, token cache and retries; calls that
/// block the calling thread. Cheap to clone; clones share the runtime and the token cache.
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<Runtime>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Client")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Validates the settings and builds a [`blocking::Client`](Client) (feature `blocking`).
    pub fn build_blocking(self) -> Result<Client, Error> {
        Client::new(self.build()?)
    }
}

impl Client {
    /// Starts configuring a client; finish with [`ClientBuilder::build_blocking`].
    pub fn builder() -> ClientBuilder {
        crate::Client::builder()
    }

    /// A blocking client calling through `client` (sharing its token cache and retry budget).
    pub fn new(client: crate::Client) -> Result<Self, Error> {
        Ok(Self {
            inner: client,
            runtime: Arc::new(Runtime::new()?),
        })
    }

    /// A client configured from the environment, as [`crate::Client::from_env`].
    pub fn from_env() -> Result<Self, Error> {
        Self::new(crate::Client::from_env()?)
    }

    /// The session operations under the names the official ThingSpace SDKs give them.
    pub fn session_management(&self) -> SessionManagementController {
        SessionManagementController {
            client: self.clone(),
        }
    }

    /// Forgets the cached API token, so the next call fetches a new one.
    pub fn clear_api_token(&self) -> Result<(), Error> {
        self.block_on(self.inner.clear_api_token())
    }

    /// The async client underneath.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        self.runtime.block_on(future)
    }
}

/// The blocking [`crate::SessionManagementController`]: the same operations and names.
///
/// Get one from [`Client::session_management`].
#[derive(Debug, Clone)]
pub struct SessionManagementController {
    client: Client,
}

impl SessionManagementController {
    fn controller(&self) -> crate::SessionManagementController {
        self.client.inner.session_management()
    }

    /// Starts a session: `POST /m2m/v1/session/login`; see
    /// [`crate::SessionManagementController::start_connectivity_management_session`].
    pub fn start_connectivity_management_session(
        &self,
        body: Option<&LogInRequest>,
    ) -> Result<ApiResponse<LogInResult>, Error> {
        self.start_connectivity_management_session_with(body, &RequestOptions::default())
    }

    /// [`Self::start_connectivity_management_session`] with per-call options.
    pub fn start_connectivity_management_session_with(
        &self,
        body: Option<&LogInRequest>,
        options: &RequestOptions,
    ) -> Result<ApiResponse<LogInResult>, Error> {
        let controller = self.controller();
        self.client
            .block_on(controller.start_connectivity_management_session_with(body, options))?
    }

    /// Ends a session: `POST /m2m/v1/session/logout`; see
    /// [`crate::SessionManagementController::end_connectivity_management_session`].
    pub fn end_connectivity_management_session(
        &self,
        session: &SessionToken,
    ) -> Result<ApiResponse<LogOutRequest>, Error> {
        self.end_connectivity_management_session_with(session, &RequestOptions::default())
    }

    /// [`Self::end_connectivity_management_session`] with per-call options.
    pub fn end_connectivity_management_session_with(
        &self,
        session: &SessionToken,
        options: &RequestOptions,
    ) -> Result<ApiResponse<LogOutRequest>, Error> {
        let controller = self.controller();
        self.client
            .block_on(controller.end_connectivity_management_session_with(session, options))?
    }

    /// Replaces the password with a server-generated one, idempotently:
    /// `PUT /m2m/v1/session/password/actions/reset`; see
    /// [`crate::SessionManagementController::reset_connectivity_management_password`].
    pub fn reset_connectivity_management_password(
        &self,
        session: &SessionToken,
        body: &SessionResetPasswordRequest,
    ) -> Result<ApiResponse<SessionResetPasswordResult>, Error> {
        self.reset_connectivity_management_password_with(session, body, &RequestOptions::default())
    }

    /// [`Self::reset_connectivity_management_password`] with per-call options.
    pub fn reset_connectivity_management_password_with(
        &self,
        session: &SessionToken,
        body: &SessionResetPasswordRequest,
        options: &RequestOptions,
    ) -> Result<ApiResponse<SessionResetPasswordResult>, Error> {
        let controller = self.controller();
        self.client.block_on(
            controller.reset_connectivity_management_password_with(session, body, options),
        )?
    }

    /// Checks a session without changing anything (m2m-session servers only); see
    /// [`crate::SessionManagementController::verify_session`].
    pub fn verify_session(
        &self,
        session: &SessionToken,
    ) -> Result<ApiResponse<SessionIdentity>, Error> {
        let controller = self.controller();
        self.client.block_on(controller.verify_session(session))?
    }
}

/// The blocking [`crate::Session`]: a logged-in user, kept logged in (lazy login, one re-login
/// when a call reports `SessionToken.Expired`, no more logins after `Login.InvalidCredentials`
/// or `Login.Locked` until [`Session::resume`]). Share it between threads with an `Arc`.
///
/// ```no_run
/// # fn demo(client: m2m_session_client::blocking::Client) -> Result<(), m2m_session_client::Error> {
/// use m2m_session_client::SecretString;
/// use m2m_session_client::blocking::Session;
///
/// let session = Session::new(client, "zbeeblebrox", SecretString::from("IMgr8"));
/// // Any blocking call of yours that carries the session token:
/// let ok = session.run(|token| {
///     // e.g. a device API call with header VZ-M2M-Token: token.expose_secret()
///     Ok::<_, m2m_session_client::Error>(!token.expose_secret().is_empty())
/// })?;
/// session.logout()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Session {
    client: Client,
    inner: crate::Session,
}

impl Session {
    /// A session for `username`; nothing is sent until it is first used.
    pub fn new(client: Client, username: impl Into<String>, password: SecretString) -> Self {
        let inner = crate::Session::new(client.inner.clone(), username, password);
        Self { client, inner }
    }

    /// The client the session calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a stopped session again with `password`; the next use logs in.
    pub fn resume(&self, password: SecretString) {
        self.inner.resume(password);
    }

    /// The refusal that stopped the session, if one did.
    pub fn stopped_by(&self) -> Option<Error> {
        self.inner.stopped_by()
    }

    /// The current session token, logging in first if there is none.
    pub fn token(&self) -> Result<SessionToken, Error> {
        self.client.block_on(self.inner.token())?
    }

    /// Runs `call` with the session token; if it fails with `SessionToken.Expired`, logs in
    /// again (once, shared with other threads) and runs it once more. `call` runs outside the
    /// client's runtime, so it may make blocking calls of its own (this client's included).
    pub fn run<T, F>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(SessionToken) -> Result<T, Error>,
    {
        let token = self.token()?;
        match call(token.clone()) {
            Err(e) if e.is_session_expired() => {
                let fresh = self.client.block_on(self.inner.relogin(&token))??;
                call(fresh)
            }
            other => other,
        }
    }

    /// Checks the session with the server (m2m-session servers only), logging in as needed.
    pub fn verify(&self) -> Result<SessionIdentity, Error> {
        self.client.block_on(self.inner.verify())?
    }

    /// Resets the password; the new one is returned and kept for later logins.
    pub fn reset_password(&self) -> Result<SecretString, Error> {
        self.client.block_on(self.inner.reset_password())?
    }

    /// Ends the session if there is one. An already expired session counts as ended.
    pub fn logout(&self) -> Result<(), Error> {
        self.client.block_on(self.inner.logout())?
    }

    /// The async session underneath (sharing this one's token and state).
    pub fn as_async(&self) -> &crate::Session {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::builder()
            .oauth_client_credentials("id", SecretString::from("s"))
            .build_blocking()
            .unwrap()
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Client>();
        assert_send_sync::<SessionManagementController>();
        assert_send_sync::<Session>();
    }

    #[tokio::test]
    async fn inside_an_async_runtime_calls_fail_without_a_panic_and_drop_is_quiet() {
        let client = client();
        let token = SessionToken::new("t");
        let err = client
            .session_management()
            .end_connectivity_management_session(&token)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Construction(m) if m.contains("inside an async runtime")),
            "{err:?}"
        );
        let session = Session::new(client, "u", SecretString::from("p"));
        assert!(matches!(session.token(), Err(Error::Construction(_))));
        // As documented: spawn_blocking has the runtime's context too.
        let session = tokio::task::spawn_blocking(move || {
            assert!(matches!(session.token(), Err(Error::Construction(_))));
            session
        })
        .await
        .unwrap();
        drop(session);
    }
}
