use std::fmt;

use super::CountersChange;
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    pub account: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: Timestamp,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("account", &self.account)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Consecutive failures for one username as given, and the end of its lock if locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutRecord {
    pub username: String,
    pub failures: u32,
    pub locked_until: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    /// argon2id PHC string of the client secret.
    pub secret_hash: String,
    /// Scopes the client may ask for; empty means any requested scope is echoed.
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
}

impl fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub token_digest: TokenDigest,
    pub client_id: String,
    /// Normalised scope (sorted, space-separated); empty for none.
    pub scope: String,
    /// Input of the token's derivation from the client secret; useless without the secret.
    pub seed: Vec<u8>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_digest: TokenDigest,
    /// Random id for administrators; reveals nothing about the token.
    pub id: String,
    pub username: String,
    pub client_id: String,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    /// The owning user's account, read with the session so a session check is one lookup;
    /// ignored when a session is stored.
    pub account: Option<String>,
}

/// A successful login, applied atomically by [`super::Store::start_session`].
#[derive(Debug, Clone)]
pub struct SessionStart {
    pub session: SessionRecord,
    /// The login's success on the username's counters (see `domain/lockout.rs`): ends its
    /// reservation, clears the count and forgives what raced it.
    pub counters: CountersChange,
    /// Keep at most this many of the user's newest sessions, the new one included.
    pub keep_sessions: Option<u32>,
    /// The login's audit line, written with the session.
    pub audit: AuditRecord,
}

/// One password reset, applied atomically by [`super::Store::reset_password`].
#[derive(Clone)]
pub struct PasswordReset {
    pub username: String,
    pub expected_hash: String,
    pub new_hash: String,
    pub keep_session: TokenDigest,
    /// The reset's success on the username's counters, in the same transaction.
    pub counters: CountersChange,
    /// Recorded in the same transaction when the request carried an `Idempotency-Key`; a
    /// record already there for (user, key) fails the whole reset with `Conflict`.
    pub idempotency: Option<IdempotencyRecord>,
    pub now: Timestamp,
}

/// What an idempotent reset leaves behind for its repeats.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub username: String,
    pub key: String,
    /// Keyed hash of the request (see `crypto::IdempotencySeal`).
    pub fingerprint: Vec<u8>,
    /// The sealed answer; `None` once the replay window has passed.
    pub answer: Option<Vec<u8>>,
    pub created_at: Timestamp,
}

impl fmt::Debug for IdempotencyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyRecord")
            .field("username", &self.username)
            .field("key", &self.key)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordReset")
            .field("username", &self.username)
            .field("keep_session", &self.keep_session)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// One line of the audit log. Never holds a password or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub time: Timestamp,
    /// `login`, `logout`, `reset`, `lock`, `unlock`, `revoke` or `admin`.
    pub event: String,
    /// `success`, `invalid_credentials`, `locked`, `throttled` or `error`.
    pub outcome: String,
    /// As given by the caller, whether or not such a user exists.
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}
