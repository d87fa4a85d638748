//! Wire types of the ThingSpace Connectivity Management session API.
//!
//! Shared by the server and the client SDK so that both speak exactly the JSON the platform
//! speaks. Every response field is optional on deserialize and unknown fields are tolerated,
//! because the official SDKs treat them that way and a client must survive a newer server.
//! Request types derive `Debug` by hand so that a password never reaches a log line.
//!
//! Programs use these types through `m2m-session-client`, which re-exports them.

#![deny(missing_docs)]

/// The crate README's example, run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

pub mod error_code;
mod oauth;
mod session;

pub use error_code::{ErrorCode, SERVICE_PREFIX};
pub use oauth::{GatewayFault, GatewayFaultBody, OAuthErrorResponse, TokenResponse};
pub use session::{
    ConnectivityManagementResult, LogInRequest, LogInResult, LogOutRequest,
    SessionResetPasswordRequest, SessionResetPasswordResult,
};

/// Name of the header that carries the session token on every call after login.
pub const SESSION_TOKEN_HEADER: &str = "VZ-M2M-Token";

/// Name of the header that makes a password reset safe to retry.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Placeholder printed instead of a secret.
pub const REDACTED: &str = "[redacted]";
