//! Persistence behind one trait, so the domain never knows which database it runs on.
//!
//! Every method that changes state commits durably before it returns: the HTTP layer answers 200
//! only after that, which is what "nothing acknowledged is lost" rests on.

mod error;
mod records;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::{StoreError, StoreResult};
pub use records::{
    ApiTokenRecord, ClientRecord, LockoutRecord, PasswordReset, SessionRecord, UserRecord,
};
pub use sqlite::SqliteStore;

use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// Opens the store a database URL names: `sqlite://path`, `sqlite:path` or a plain file path.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(StoreError::Backend(
            "PostgreSQL is not supported by this build yet; use a SQLite path".into(),
        ));
    }
    Ok(Arc::new(SqliteStore::open(url).await?))
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Flushes and releases the database; the store is unusable afterwards.
    async fn close(&self) {}

    // Users.
    /// Fails with [`StoreError::Conflict`] when the username is taken.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Removes the user with its sessions and failure counter; false if there was none.
    async fn remove_user(&self, username: &str) -> StoreResult<bool>;
    /// Changes the password hash only if it is still `reset.expected_hash` (compare-and-swap),
    /// revokes every other session of the user, refreshes the kept one and clears the failure
    /// counter, all in one transaction. False when the hash had changed meanwhile.
    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool>;

    // Failed-login counters, keyed by the username as given.
    async fn lockout(&self, username: &str) -> StoreResult<Option<LockoutRecord>>;
    /// Atomically adds one failure and returns the new count.
    async fn add_failure(&self, username: &str, now: Timestamp) -> StoreResult<u32>;
    /// Sets the end of the lock unless one is already set (a lock is never extended).
    async fn lock(&self, username: &str, until: Timestamp) -> StoreResult<()>;
    /// Forgets failures and any lock; false if there was nothing to forget.
    async fn clear_failures(&self, username: &str) -> StoreResult<bool>;
    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>>;

    // OAuth clients.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Removes the client with its API tokens and sessions; false if there was none.
    async fn remove_client(&self, client_id: &str) -> StoreResult<bool>;

    // API tokens.
    /// Stores `candidate` unless a token for the same (client, scope) is still live at `now`,
    /// and returns whichever is live afterwards: concurrent issuers all get the same one.
    async fn issue_api_token(
        &self,
        candidate: &ApiTokenRecord,
        now: Timestamp,
    ) -> StoreResult<ApiTokenRecord>;
    async fn find_api_token(&self, digest: &TokenDigest) -> StoreResult<Option<ApiTokenRecord>>;
    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool>;

    // Sessions.
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>>;
    /// Records use of a session; false if it no longer exists.
    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool>;
    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool>;
    /// Deletes sessions last used before `cutoff`; returns how many.
    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64>;
}
