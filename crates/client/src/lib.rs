//! Rust SDK for the ThingSpace Connectivity Management **session** API.
//!
//! The official SDKs' `SessionManagementController` with the same three operations and names,
//! plus what they lack: typed errors, retries only where repeating is safe, an API token cache
//! shared by every clone of the client, an idempotent password reset, and an optional
//! [`Session`] that logs in again by itself when the session expires.
//!
//! # Quickstart
//!
//! ```no_run
//! use m2m_session_client::{Client, LogInRequest, SecretString, SessionResetPasswordRequest};
//!
//! # async fn demo() -> Result<(), m2m_session_client::Error> {
//! let client = Client::builder()
//!     .base_url("http://127.0.0.1:8080/api")?
//!     .oauth_client_credentials("my-app", SecretString::from("client-secret"))
//!     .build()?;
//! let sessions = client.session_management();
//!
//! let login = sessions
//!     .start_connectivity_management_session(Some(&LogInRequest::new("zbeeblebrox", "IMgr8")))
//!     .await?;
//! let token = login.session_token()?;
//!
//! let reset = sessions
//!     .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new("IMgr8"))
//!     .await?;
//! let new_password = reset.new_password()?; // a SecretString: `expose_secret()` to read it
//!
//! sessions.end_connectivity_management_session(&token).await?;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! [`Error`] says what happened and so what to do: [`Error::Construction`] (nothing was sent),
//! [`Error::Timeout`] (may have been sent), [`Error::Transport`] (no response),
//! [`Error::OAuth`] (no API token), [`Error::Api`] (the service refused, with its
//! `ConnectivityManagementResult` and the raw body), [`Error::UndecodableResponse`] (raw body
//! kept). [`Error::is_session_expired`], [`Error::is_locked`] and
//! [`Error::is_invalid_credentials`] match the stable part of the error code.
//!
//! # Retries
//!
//! On by default, 3 attempts in all, with capped full-jitter backoff, `Retry-After` honoured, a
//! retry budget shared by clones, and only where safe:
//!
//! | request | retried on |
//! |---|---|
//! | OAuth token | connection failures, timeouts, 408/429/500/502/503/504 |
//! | login, logout | connection failures only (the request never reached the server) |
//! | reset | like the token, always with the same `Idempotency-Key` |
//!
//! Any call answered 401 by the gateway is repeated once with a fresh API token. A reset answered
//! 409 `IdempotencyKey.InProgress` (a retry that overtook its first attempt, still running on the
//! server) is repeated with the same key after a backoff or the `Retry-After` until the stored
//! answer comes or the operation timeout is near; then it fails with that 409
//! ([`Error::is_in_progress`]).
//!
//! # Secrets
//!
//! Client secrets, passwords and tokens are [`SecretString`]s or redact themselves: no `Debug`,
//! `Display` or tracing output of this crate shows them. [`SecretString`] and [`ExposeSecret`]
//! are re-exported from `secrecy`, so a program needs no dependency of its own to pass or read
//! one.
//!
//! # Tracing
//!
//! Every operation runs in an `INFO` span named after it
//! (`start_connectivity_management_session`, `end_connectivity_management_session`,
//! `reset_connectivity_management_password`, `verify_session`) with the fields `operation` (the
//! same name) and, once the answer arrives, `status` and `request_id` (the server's
//! `X-Request-Id`, to quote when reporting a problem). Fetching the API token is a `DEBUG` span
//! `oauth_token` with the `client_id`; retries, waits and re-logins are `DEBUG` events inside
//! them. No span or event carries a password, secret or token.

#![deny(missing_docs)]

#[cfg(feature = "blocking")]
pub mod blocking;
mod builder;
mod client;
mod controller;
mod error;
#[cfg(feature = "middleware")]
pub mod middleware;
mod oauth;
mod response;
mod retry;
mod session;
mod token;

pub use builder::{ClientBuilder, Environment};
pub use client::Client;
pub use controller::{SessionIdentity, SessionManagementController};
pub use error::{ApiError, Error};
pub use m2m_session_model::{
    ConnectivityManagementResult, ErrorCode, GatewayFault, GatewayFaultBody, LogInRequest,
    LogInResult, LogOutRequest, OAuthErrorResponse, SessionResetPasswordRequest,
    SessionResetPasswordResult,
};
#[cfg(feature = "middleware")]
pub use middleware::{ThingSpaceAuth, thingspace_error};
pub use reqwest::StatusCode;
pub use reqwest::header::HeaderMap;
pub use response::{ApiResponse, RequestOptions};
pub use retry::RetryConfig;
pub use secrecy::{ExposeSecret, SecretString};
pub use session::Session;
pub use token::SessionToken;
pub use url::Url;

/// The crate README's examples, compiled (not run) as doc tests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

#[cfg(test)]
mod send_sync {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}

    /// Futures of every public operation must be `Send`, or they cannot be spawned.
    #[test]
    fn public_futures_are_send_and_types_are_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<Session>();
        assert_send_sync::<Error>();
        let client = Client::builder()
            .oauth_client_credentials("id", secrecy::SecretString::from("s"))
            .build()
            .unwrap();
        let api = client.session_management();
        let token = SessionToken::new("t");
        let login = LogInRequest::new("u", "p");
        let reset = SessionResetPasswordRequest::new("p");
        assert_send(&api.start_connectivity_management_session(Some(&login)));
        assert_send(&api.end_connectivity_management_session(&token));
        assert_send(&api.reset_connectivity_management_password(&token, &reset));
        assert_send(&api.verify_session(&token));
        let session = Session::new(client, "u", secrecy::SecretString::from("p"));
        assert_send(&session.verify());
        assert_send(&session.reset_password());
        assert_send(&session.logout());
        assert_send(&session.token());
    }
}
