//! Persistence behind one trait, so the domain never knows which database it runs on.
//!
//! Every method that changes state commits durably before it returns: the HTTP layer answers 200
//! only after that, which is what "nothing acknowledged is lost" rests on.

mod attempts;
mod claim;
mod error;
mod postgres;
mod records;
mod rows;
mod sqlite;
mod sqlite_cache;
mod sqlite_writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use claim::IdempotencyClaim;
pub use error::{StoreError, StoreResult};
pub use postgres::PostgresStore;
pub use records::{
    ApiTokenRecord, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, AuditRecord,
    ClientRecord, IdempotencyRecord, IpLimit, LockoutRecord, PasswordReset, SessionRecord,
    SessionStart, UserRecord,
};
pub use sqlite::SqliteStore;

use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Most connections open at once (SQLite: readers; its writer is always one connection).
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Opens the store a database URL names: `postgres://...` or `postgresql://...` for PostgreSQL;
/// `sqlite://path`, `sqlite:path` or a plain file path for SQLite.
pub async fn open(url: &str, settings: &StoreSettings) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, settings).await?))
    } else {
        Ok(Arc::new(SqliteStore::open(url, settings).await?))
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Flushes and releases the database; the store is unusable afterwards.
    async fn close(&self) {}

    /// The database's clock. Nodes sharing a database measure their offset to it, so that idle
    /// expiry is computed against one clock however the nodes' clocks drift.
    async fn db_now(&self) -> StoreResult<Timestamp>;

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

    /// Replaces a password hash only if it is still `expected` (rehash on login).
    async fn update_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> StoreResult<bool>;

    // Failed-login counters, keyed by the username as given.
    /// The username's failures and lock; `None` when nothing counts against it.
    async fn lockout(&self, username: &str) -> StoreResult<Option<LockoutRecord>>;
    /// Atomically, across processes: refuses while the client address is at its limit or the
    /// username is locked (forgetting a lock that has ended), refuses as busy while failures
    /// plus live reservations reach the threshold (of the username, or of the address),
    /// otherwise records a reservation. Checking and reserving in one step is what stops
    /// parallel guesses from running more verifications than either limit allows.
    async fn reserve_attempt(&self, request: &AttemptRequest) -> StoreResult<AttemptReservation>;
    /// Atomically drops the reservation and applies its outcome; returns the end of a lock this
    /// failure started, if it started one. A lock already in force is never extended; a
    /// failure of a request that arrived before the user's latest success does not count.
    async fn finish_attempt(&self, end: &AttemptEnd) -> StoreResult<Option<Timestamp>>;
    /// Forgets failures and any lock, and forgives the requests that arrived before `now` as a
    /// success does; false if there was nothing to forget.
    async fn clear_failures(&self, username: &str, now: Timestamp) -> StoreResult<bool>;
    /// The failures logged for a client address after `limit.since` and the oldest of them:
    /// a read, so that an address already at its limit is refused without taking a write.
    /// Only a hint: [`Store::reserve_attempt`] decides, atomically.
    async fn ip_failures_since(&self, limit: &IpLimit) -> StoreResult<(u32, Option<Timestamp>)>;
    /// Usernames with failures or a lock.
    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>>;
    /// Forgets what no longer counts: failure counters of usernames that are not users, not
    /// locked and untouched since `unknown_failures_before` (they expire with the lock
    /// window); failures of client addresses logged at or before `ip_failures_until`;
    /// reservations that have expired at `now`. Returns how many rows went.
    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;

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
    /// A successful login in one transaction: ends its reservation as a success (clearing the
    /// failure count), stores the session, revokes the user's oldest sessions beyond
    /// `keep_sessions` and appends the audit line. One durable commit per login rather than
    /// four, and nothing half done if the process dies. Returns how many sessions were revoked.
    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64>;
    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>>;
    /// Records use of a session; false if it no longer exists.
    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool>;
    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool>;
    /// Deletes sessions last used before `cutoff`; returns how many.
    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64>;
    /// Sessions last used at or after `since`: the live ones, given the idle timeout.
    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64>;
    /// All sessions, or one user's, oldest first.
    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>>;
    /// Deletes every session of a user; returns how many.
    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64>;
    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool>;

    // Idempotent resets.
    /// Holds (username, key) for one idempotent reset until the claim is released; `None`
    /// while another request holds it, on this node or another. A claim lives in memory or in
    /// an open database transaction, never in a row, so a crash cannot leave a key stuck.
    async fn claim_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyClaim>>;
    async fn find_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Erases sealed answers created before `answers_before` and whole records created before
    /// `records_before`; returns how many rows changed.
    async fn purge_idempotency(
        &self,
        answers_before: Timestamp,
        records_before: Timestamp,
    ) -> StoreResult<u64>;

    // Audit log.
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    /// Oldest first, optionally for one username and from a time on.
    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
    ) -> StoreResult<Vec<AuditRecord>>;
}
