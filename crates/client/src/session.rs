use std::future::Future;
use std::sync::Mutex;

use m2m_session_model::{LogInRequest, SessionResetPasswordRequest};
use secrecy::{ExposeSecret, SecretString};

use crate::controller::SessionIdentity;
use crate::{ApiError, Client, Error, SessionToken};

/// A logged-in user, kept logged in: the platform's stated best practice done for you.
///
/// Logs in lazily on first use, reuses the `VZ-M2M-Token`, and when a call answers
/// `SessionToken.Expired` logs in again once and repeats the call. Concurrent callers share one
/// login. A login refused with `Login.InvalidCredentials` or `Login.Locked` stops the session:
/// every later use reports that refusal without asking the server again (a fleet retrying a
/// wrong password would lock its own account) until [`Session::resume`]. Opt-in: the
/// controller's operations stay available for full control.
///
/// ```no_run
/// # async fn demo(client: m2m_session_client::Client) -> Result<(), m2m_session_client::Error> {
/// use m2m_session_client::{SecretString, Session};
///
/// let session = Session::new(client, "zbeeblebrox", SecretString::from("IMgr8"));
/// // Any call of yours that carries the session token:
/// let who = session.run(|token| async move {
///     // e.g. a device API call with header VZ-M2M-Token: token.expose_secret()
///     Ok::<_, m2m_session_client::Error>(token)
/// }).await?;
/// session.logout().await?;
/// # Ok(()) }
/// ```
pub struct Session {
    client: Client,
    username: String,
    password: Mutex<SecretString>,
    /// Held across a login so that concurrent callers wait for the one in flight.
    token: tokio::sync::Mutex<Option<SessionToken>>,
    /// The refusal that stopped the session, reported again instead of a new login.
    stopped: Mutex<Option<Box<ApiError>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `username`; nothing is sent until it is first used.
    pub fn new(client: Client, username: impl Into<String>, password: SecretString) -> Self {
        Self {
            client,
            username: username.into(),
            password: Mutex::new(password),
            token: tokio::sync::Mutex::new(None),
            stopped: Mutex::new(None),
        }
    }

    /// The client the session calls through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a stopped session again with `password` (the one that was refused, once an
    /// administrator has unlocked the user, or a new one); the next use logs in.
    pub fn resume(&self, password: SecretString) {
        *lock(&self.password) = password;
        *lock(&self.stopped) = None;
    }

    /// The refusal that stopped the session, if one did.
    pub fn stopped_by(&self) -> Option<Error> {
        lock(&self.stopped).clone().map(Error::Api)
    }

    /// The current session token, logging in first if there is none. A stopped session
    /// reports its refusal, whatever token it still holds.
    pub async fn token(&self) -> Result<SessionToken, Error> {
        if let Some(refusal) = self.stopped_by() {
            return Err(refusal);
        }
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref() {
            return Ok(token.clone());
        }
        let token = self.login().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Runs `call` with the session token; if it fails with `SessionToken.Expired`, logs in
    /// again (once, shared with concurrent callers) and runs it once more.
    pub async fn run<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(SessionToken) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let token = self.token().await?;
        match call(token.clone()).await {
            Err(e) if e.is_session_expired() => {
                let fresh = self.relogin(&token).await?;
                call(fresh).await
            }
            other => other,
        }
    }

    /// Checks the session with the server (m2m-session servers only), logging in as needed.
    pub async fn verify(&self) -> Result<SessionIdentity, Error> {
        let controller = self.client.session_management();
        self.run(|token| {
            let controller = controller.clone();
            async move { Ok(controller.verify_session(&token).await?.result) }
        })
        .await
    }

    /// Resets the password; the new one is returned and kept for later logins.
    pub async fn reset_password(&self) -> Result<SecretString, Error> {
        let controller = self.client.session_management();
        let new_password = self
            .run(|token| {
                let controller = controller.clone();
                let body = SessionResetPasswordRequest::new(self.password().expose_secret());
                async move {
                    controller
                        .reset_connectivity_management_password(&token, &body)
                        .await?
                        .new_password()
                }
            })
            .await?;
        *lock(&self.password) = new_password.clone();
        Ok(new_password)
    }

    /// Ends the session if there is one. An already expired session counts as ended.
    pub async fn logout(&self) -> Result<(), Error> {
        let Some(token) = self.token.lock().await.take() else {
            return Ok(());
        };
        match self
            .client
            .session_management()
            .end_connectivity_management_session(&token)
            .await
        {
            Err(e) if e.is_session_expired() => Ok(()),
            other => other.map(drop),
        }
    }

    /// Logs in again unless a concurrent caller already has since `stale` was handed out.
    pub(crate) async fn relogin(&self, stale: &SessionToken) -> Result<SessionToken, Error> {
        let mut slot = self.token.lock().await;
        if let Some(current) = slot.as_ref()
            && current != stale
        {
            return Ok(current.clone());
        }
        tracing::debug!(username = %self.username, "session expired; logging in again");
        let token = self.login().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    async fn login(&self) -> Result<SessionToken, Error> {
        if let Some(refusal) = self.stopped_by() {
            return Err(refusal);
        }
        let body = LogInRequest::new(self.username.clone(), self.password().expose_secret());
        let answer = self
            .client
            .session_management()
            .start_connectivity_management_session(Some(&body))
            .await;
        match answer {
            Err(Error::Api(refusal)) if Error::Api(refusal.clone()).stops_logins() => {
                tracing::warn!(
                    username = %self.username,
                    error = %refusal,
                    "login refused; no more logins until the session is resumed"
                );
                *lock(&self.stopped) = Some(refusal.clone());
                Err(Error::Api(refusal))
            }
            answer => answer?.session_token(),
        }
    }

    fn password(&self) -> SecretString {
        lock(&self.password).clone()
    }
}

/// A lock whose holder cannot leave it inconsistent: a poisoned one is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
