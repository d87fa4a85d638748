//! Business rules: sessions, lockout, password reset, API tokens, administration.
//!
//! Pure logic over a [`Store`](crate::store::Store) and a password hasher. Every function takes
//! `now`; nothing here reads the clock, touches HTTP or knows which database is underneath.

mod admin;
mod audit;
mod error;
mod idempotency;
mod oauth;
mod password_policy;
mod policy;
mod reset;
mod service;
mod simulator;
mod username;

pub use admin::{AddedUser, Admin, NewClient, NewUser, SessionSummary, UserStatus};
pub use audit::{AuditEvent, AuditOutcome, RequestContext};
pub use error::DomainError;
pub use oauth::{ClientCredentials, IssuedApiToken, RevokeOutcome, normalize_scope};
pub use password_policy::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, check_password};
pub use policy::Policy;
pub use service::{AuthenticatedSession, SessionService};
pub use username::{
    CollisionKey, MAX_USERNAME_LEN, USERNAME_FORBIDDEN_CHARS, resolve_username,
    validate_new_username,
};
