use std::fmt;

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
    pub username: String,
    pub client_id: String,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
}

/// One password reset, applied atomically by [`super::Store::reset_password`].
#[derive(Clone)]
pub struct PasswordReset {
    pub username: String,
    pub expected_hash: String,
    pub new_hash: String,
    pub keep_session: TokenDigest,
    pub now: Timestamp,
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
