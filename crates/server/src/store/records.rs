use std::fmt;

use super::{CountersChange, PreviousPassword};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Unique; as created (NFC).
    pub username: String,
    /// The ThingSpace account the user belongs to.
    pub account: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the user was created.
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

/// Consecutive failures for one username as given, in one bucket, and the end of its lock if
/// locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutRecord {
    /// The username as given.
    pub username: String,
    /// [`super::SHARED_BUCKET`], or the familiar source's network the counters are for.
    pub bucket: String,
    /// Consecutive failures counted.
    pub failures: u32,
    /// When the lock ends, if locked.
    pub locked_until: Option<Timestamp>,
    /// The last change; unknown names' counters are purged after the lock window.
    pub updated_at: Timestamp,
}

/// An OAuth client as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Unique.
    pub client_id: String,
    /// argon2id PHC string of the client secret.
    pub secret_hash: String,
    /// Scopes the client may ask for; empty means any requested scope is echoed.
    pub scopes: Vec<String>,
    /// When the client was registered.
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

/// An API token as stored: its digest and seed, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// SHA-256 of the token.
    pub token_digest: TokenDigest,
    /// The client it was issued to.
    pub client_id: String,
    /// Normalised scope (sorted, space-separated); empty for none.
    pub scope: String,
    /// Input of the token's derivation from the client secret; useless without the secret.
    pub seed: Vec<u8>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// A session as stored: its token's digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the `VZ-M2M-Token`.
    pub token_digest: TokenDigest,
    /// Random id for administrators; reveals nothing about the token.
    pub id: String,
    /// Whose session it is.
    pub username: String,
    /// The OAuth client it was started for.
    pub client_id: String,
    /// When it was started.
    pub created_at: Timestamp,
    /// Its last use as written (coalesced, see `Policy::touch_granularity`).
    pub last_used_at: Timestamp,
    /// The owning user's account, read with the session so a session check is one lookup;
    /// ignored when a session is stored.
    pub account: Option<String>,
    /// The client address the login came from, as the trusted proxies reported it.
    pub ip: Option<String>,
}

/// A successful login, applied atomically by [`super::SessionStore::start_session`].
#[derive(Debug, Clone)]
pub struct SessionStart {
    /// The new session.
    pub session: SessionRecord,
    /// The login's success on the username's counters (see `domain/lockout.rs`): ends its
    /// reservation, clears the count and forgives what raced it.
    pub counters: CountersChange,
    /// Keep at most this many of the user's newest sessions, the new one included.
    pub keep_sessions: Option<u32>,
    /// The login's audit line, written with the session.
    pub audit: AuditRecord,
}

/// One password reset, applied atomically by [`super::UserStore::reset_password`].
#[derive(Clone)]
pub struct PasswordReset {
    /// Whose password changes.
    pub username: String,
    /// The hash the old password was verified against: the swap fails if it changed meanwhile.
    pub expected_hash: String,
    /// The new password's hash.
    pub new_hash: String,
    /// The presenting session, which stays valid; every other session of the user ends.
    pub keep_session: TokenDigest,
    /// The reset's success on the username's counters, in the same transaction.
    pub counters: CountersChange,
    /// The replaced password, to be recognised for a while (replaces any earlier one); `None`
    /// forgets any earlier one.
    pub previous: Option<PreviousPassword>,
    /// Recorded in the same transaction when the request carried an `Idempotency-Key`; a
    /// record already there for (user, key) fails the whole reset with `Conflict`.
    pub idempotency: Option<IdempotencyRecord>,
    /// When the reset happens: the kept session's last use.
    pub now: Timestamp,
}

/// What an idempotent reset leaves behind for its repeats.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The user the key belongs to: keys are scoped per user.
    pub username: String,
    /// The `Idempotency-Key` as sent.
    pub key: String,
    /// Keyed hash of the request (see `crypto::IdempotencySeal`).
    pub fingerprint: Vec<u8>,
    /// The sealed answer; `None` once the replay window has passed.
    pub answer: Option<Vec<u8>>,
    /// When the first request with the key ran.
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
    /// When it happened.
    pub time: Timestamp,
    /// `login`, `logout`, `reset`, `lock`, `unlock`, `revoke` or `admin`.
    pub event: String,
    /// `success`, `invalid_credentials`, `locked`, `throttled` or `error`.
    pub outcome: String,
    /// As given by the caller, whether or not such a user exists.
    pub username: Option<String>,
    /// The OAuth client that asked, if any.
    pub client_id: Option<String>,
    /// The client address, if known.
    pub ip: Option<String>,
    /// Free text for people: why, how many, until when.
    pub detail: Option<String>,
    /// The `X-Request-Id` of the request it records, which the client and the access log see
    /// too; `None` for administrative changes.
    pub request_id: Option<String>,
}
