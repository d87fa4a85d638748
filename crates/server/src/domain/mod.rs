//! Business rules: sessions, lockout, password reset, API tokens, administration.
//!
//! Pure logic over a [`Store`](crate::store::Store) and a password hasher. Every function takes
//! `now`; nothing here reads the clock, touches HTTP or knows which database is underneath.

mod admin;
mod error;
mod oauth;
mod policy;
mod service;
mod validate;

pub use admin::{Admin, NewClient, NewUser, UserStatus};
pub use error::DomainError;
pub use oauth::{ClientCredentials, IssuedApiToken, RevokeOutcome, normalize_scope};
pub use policy::Policy;
pub use service::{AuthenticatedSession, SessionService};
pub use validate::{USERNAME_FORBIDDEN_CHARS, validate_username};
