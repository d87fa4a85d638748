//! Persistence behind small traits by role ([`roles`]), combined in [`Store`], so the domain
//! never knows which database it runs on. Each backend is a folder with a file per role.
//!
//! Every method that changes state commits durably before it returns: the HTTP layer answers 200
//! only after that, which is what "nothing acknowledged is lost" rests on.

mod claim;
mod counters;
mod error;
mod postgres;
mod records;
pub mod roles;
mod rows;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use claim::IdempotencyClaim;
pub use counters::{
    AddressCounters, AddressFailure, AddressWindow, Count, CounterKey, Counters, CountersChange,
    LockedCounters, NewReservation, PreviousPassword, SHARED_BUCKET,
};
pub use error::{StoreError, StoreResult};
pub use postgres::{PostgresStore, as_one_check};
pub use records::{
    ApiTokenRecord, AuditRecord, ClientRecord, IdempotencyRecord, LockoutRecord, PasswordReset,
    SessionRecord, SessionStart, UserRecord,
};
pub use roles::{AuditStore, ClientStore, CounterStore, IdempotencyStore, SessionStore, UserStore};
pub use sqlite::SqliteStore;

use crate::time::Timestamp;

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Most connections open at once (SQLite: readers; its writer is always one connection).
    pub max_connections: u32,
    /// How long a request waits for a connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
    /// Whether a SQLite file that is not there is created. Only the server (and `init`) create
    /// one: an admin command with a mistyped path must not make an empty database and succeed.
    pub create_if_missing: bool,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            create_if_missing: true,
        }
    }
}

/// Opens the store a database URL names: `postgres://...` or `postgresql://...` for PostgreSQL;
/// `sqlite://path`, `sqlite:path` or a plain file path for SQLite. Any other `scheme://` is
/// refused rather than taken for a file name.
pub async fn open(url: &str, settings: &StoreSettings) -> StoreResult<Arc<dyn Store>> {
    // Schemes are case-insensitive (RFC 3986); the backends want them in lower case.
    let lowered = match url.split_once("://") {
        Some((scheme, rest)) if scheme.bytes().any(|b| b.is_ascii_uppercase()) => {
            format!("{}://{rest}", scheme.to_ascii_lowercase())
        }
        _ => url.to_owned(),
    };
    let url = lowered.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStore::open(url, settings).await?));
    }
    if let Some((scheme, _)) = url.split_once("://")
        && !scheme.eq_ignore_ascii_case("sqlite")
        && !scheme.contains(['/', '\\'])
    {
        return Err(StoreError::Config(format!(
            "{scheme}:// databases are not supported; use sqlite://PATH (the default, a file) \
             or postgres://USER@HOST/DATABASE"
        )));
    }
    Ok(Arc::new(SqliteStore::open(url, settings).await?))
}

/// Everything the domain keeps: the roles of [`roles`] combined, plus the database itself.
#[async_trait]
pub trait Store:
    UserStore
    + CounterStore
    + ClientStore
    + SessionStore
    + IdempotencyStore
    + AuditStore
    + Send
    + Sync
    + 'static
{
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Flushes and releases the database; the store is unusable afterwards.
    async fn close(&self) {}

    /// The database's clock. Nodes sharing a database measure their offset to it, so that idle
    /// expiry is computed against one clock however the nodes' clocks drift.
    async fn db_now(&self) -> StoreResult<Timestamp>;

    /// Writes a consistent copy of the whole database to a new file at `path`, while the
    /// database stays in use.
    async fn backup_to(&self, path: &std::path::Path) -> StoreResult<()>;
}
