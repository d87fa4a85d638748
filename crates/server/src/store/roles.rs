//! The store by role: one small trait per kind of record, which [`super::Store`] combines.
//! Each backend implements a role in a file of its own (`sqlite/sessions.rs`,
//! `postgres/sessions.rs`, ...), and the conformance suite is split the same way.

use async_trait::async_trait;

use super::{
    AddressCounters, AddressWindow, ApiTokenRecord, AuditRecord, ClientRecord, CounterKey,
    IdempotencyClaim, IdempotencyRecord, LockedCounters, LockoutRecord, PasswordReset,
    SessionRecord, SessionStart, StoreResult, UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// Users and their passwords.
#[async_trait]
pub trait UserStore {
    /// Fails with [`super::StoreError::Conflict`] when the username is taken.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// The user of exactly this name.
    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Every user, by name.
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Removes the user with its sessions and failure counter; false if there was none.
    async fn remove_user(&self, username: &str) -> StoreResult<bool>;
    /// Changes the password hash only if it is still `reset.expected_hash` (compare-and-swap),
    /// revokes every other session of the user, refreshes the kept one, applies the reset's
    /// change to the counters and records its idempotency key, all in one transaction. False
    /// when the hash had changed meanwhile (then nothing is written).
    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool>;
    /// Replaces a password hash only if it is still `expected` (rehash on login).
    async fn update_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> StoreResult<bool>;
}

/// Failed-login counters, keyed by the username as given, and the client addresses' failures.
#[async_trait]
pub trait CounterStore {
    /// Holds the key's counters, across processes, until the returned guard is applied or
    /// dropped, and reads them. Two holders of one username never overlap; a backend takes
    /// the username's hold before the address's, so that two requests never wait for each
    /// other in a cycle.
    async fn lock_counters<'a>(
        &'a self,
        key: &CounterKey,
    ) -> StoreResult<Box<dyn LockedCounters + 'a>>;
    /// The username's failures and lock in each bucket where something counts against it.
    async fn lockouts(&self, username: &str) -> StoreResult<Vec<LockoutRecord>>;
    /// Usernames with failures or a lock, one record per bucket.
    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>>;
    /// When the username last logged in successfully from the familiar-source `network`.
    async fn familiar_since(&self, username: &str, network: &str)
    -> StoreResult<Option<Timestamp>>;
    /// The address's failures within its window, read without holding anything: a hint that
    /// lets an address already at its limit be refused before any write.
    async fn address_failures(&self, window: &AddressWindow) -> StoreResult<AddressCounters>;
    /// Forgets what no longer counts: failure counters of usernames that are not users, not
    /// locked and untouched since `unknown_failures_before` (they expire with the lock
    /// window); failures of client addresses logged at or before `ip_failures_until`;
    /// reservations that have expired at `now`; remembered wrong passwords of counters that
    /// are gone or whose lock has ended; replaced passwords no longer recognised at
    /// `now`; familiar sources last seen at or before `familiar_until`. Returns how many rows
    /// went.
    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        familiar_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;
}

/// OAuth clients and the API tokens issued to them.
#[async_trait]
pub trait ClientStore {
    /// Fails with [`super::StoreError::Conflict`] when the id is taken.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// The client of exactly this id.
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// Every client, by id.
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Removes the client with its API tokens and sessions; false if there was none.
    async fn remove_client(&self, client_id: &str) -> StoreResult<bool>;
    /// Replaces the client's secret hash and, when `revoke_tokens`, deletes its API tokens in
    /// the same transaction; false if there is no such client (then nothing is written).
    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool>;
    /// Stores `candidate` unless a token for the same (client, scope) is still live at `now`,
    /// and returns whichever is live afterwards: concurrent issuers all get the same one.
    async fn issue_api_token(
        &self,
        candidate: &ApiTokenRecord,
        now: Timestamp,
    ) -> StoreResult<ApiTokenRecord>;
    /// The API token with this digest, live or not.
    async fn find_api_token(&self, digest: &TokenDigest) -> StoreResult<Option<ApiTokenRecord>>;
    /// Deletes one API token; false if there was none.
    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool>;
}

/// Sessions, found by the digest of their token.
#[async_trait]
pub trait SessionStore {
    /// Stores a session as given (administrative and test use; logins use `start_session`).
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// A successful login in one transaction: applies its change to the counters, stores the
    /// session, revokes the user's oldest sessions beyond `keep_sessions` and appends the audit
    /// line. One durable commit per login rather than four, and nothing half done if the
    /// process dies. Returns how many sessions were revoked.
    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64>;
    /// The session whose token has this digest, live or not.
    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>>;
    /// The session as the database holds it now, past any cache. A cache may hold a last use
    /// older than the one stored (PostgreSQL nodes do not see each other's touches), so a
    /// session that looks idle is read again here before it is ended. SQLite's cache sees
    /// every commit, so there the two reads are one.
    async fn reload_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        self.find_session(digest).await
    }
    /// Records use of a session; false if it no longer exists.
    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool>;
    /// Deletes one session; false if there was none.
    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool>;
    /// Deletes sessions last used before `cutoff`; returns how many.
    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64>;
    /// Sessions last used at or after `since`: the live ones, given the idle timeout.
    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64>;
    /// All sessions, or one user's, oldest first.
    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>>;
    /// Deletes every session of a user; returns how many.
    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64>;
    /// Deletes one session by its administrator id; false if there was none.
    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool>;
}

/// What idempotent resets leave for their repeats.
#[async_trait]
pub trait IdempotencyStore {
    /// Holds (username, key) for one idempotent reset until the claim is released; `None`
    /// while another request holds it, on this node or another. A claim lives in memory or in
    /// an open database transaction, never in a row, so a crash cannot leave a key stuck.
    async fn claim_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyClaim>>;
    /// What an idempotent reset with (username, key) left, if anything.
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
}

/// The audit log, append-only.
#[async_trait]
pub trait AuditStore {
    /// Appends one line; lines are never changed.
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()>;
    /// Oldest first, optionally for one username and from a time on; with a limit, only the
    /// newest that many (still oldest first).
    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<AuditRecord>>;
}
