//! Business rules: sessions, lockout, password reset, API tokens, administration.
//!
//! Rules over a [`Store`](crate::store::Store), a password hasher, a clock and a source of
//! randomness, all handed in. Every rule takes the request's `now`; the clock is read only to
//! wait and to measure how long a request has taken. Nothing here touches HTTP or knows which
//! database is underneath.

mod admin;
mod attempts;
mod audit;
mod error;
mod familiar;
mod idempotency;
pub mod lockout;
mod oauth;
mod password_policy;
mod policy;
mod reset;
mod service;
mod simulator;
mod username;

pub use admin::{
    AddedUser, Admin, BucketState, LockoutState, NewClient, NewUser, RECENT_ATTEMPTS,
    SessionSummary, UserStatus,
};
pub use attempts::CounterRules;
pub use audit::{AuditEvent, AuditOutcome, RequestContext};
pub use error::DomainError;
pub use familiar::FamiliarSources;
pub use oauth::{
    AuthenticatedClient, ClientCredentials, IssuedApiToken, RevokeOutcome, normalize_scope,
};
pub use password_policy::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, check_password};
pub use policy::Policy;
pub use service::{AuthenticatedSession, SessionService};
pub use username::{
    CollisionKey, MAX_USERNAME_LEN, USERNAME_FORBIDDEN_CHARS, resolve_username,
    validate_new_username,
};
