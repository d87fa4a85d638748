//! PostgreSQL backend, for several server nodes sharing one database.
//!
//! Every rule that must hold across nodes is enforced by the database: uniqueness by
//! constraints, the lockout reservation by a per-username transaction-scoped advisory lock, the
//! one-token-per-hour rule by an upsert. `synchronous_commit=on` makes every acknowledged
//! write durable before it returns.

/// The column `epoch`: the revocation epoch of the slot of the token whose digest is `$1`, read
/// by the statement that reads the token's record, so in the same snapshot (`cache.rs`).
macro_rules! epoch_of_slot {
    () => {
        "(SELECT epoch FROM revocation_epochs WHERE slot = get_byte($1, 0) % 64) AS epoch"
    };
}

mod audit;
mod batch;
mod cache;
mod clients;
mod counters;
mod idempotency;
mod pooler;
mod sessions;
mod users;

pub use cache::as_one_check;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};

use self::counters::{apply_change, lock_username};
use super::rows;
use super::{
    ApiTokenRecord, AuditRecord, ClientRecord, IdempotencyClaim, IdempotencyRecord, LockoutRecord,
    PasswordReset, SessionRecord, SessionStart, Store, StoreError, StoreResult, StoreSettings,
    UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// The PostgreSQL backend: for several nodes on one database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Connections that hold idempotency claims, apart from `pool`: a claim holds its
    /// connection for the whole reset, which needs connections of its own, so sharing one
    /// pool could starve the resets of the very claims that wait for them.
    claims: PgPool,
    /// Sessions and API tokens, served only when proven not revoked (`cache.rs`).
    cache: Arc<cache::ReadCache>,
    /// Last uses, written for many sessions in one statement (`sessions.rs`).
    touches: Arc<sessions::Touches>,
}

impl PostgresStore {
    /// Connects and applies the embedded migrations (under sqlx's advisory lock).
    ///
    /// `pgbouncer=session` in the URL says a pgbouncer in session mode is in front: see
    /// `pooler.rs` for what changes and why it is a switch. A transaction pooler is refused.
    pub async fn open(url: &str, settings: &StoreSettings) -> StoreResult<Self> {
        let (url, pooler) = pooler::split_url(url)?;
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("m2m-session");
        let options = pooler::connect_options(options, pooler);
        // One connection first, and the migrations on it: a pool that cannot connect reports
        // only "pool timed out", and the reason (refused, unknown host, authentication) is
        // what the person who named the database needs.
        let mut first = PgConnection::connect_with(&options).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot connect: {e}{}", pooler::hint(&e)))
        })?;
        pooler::refuse_transaction_pooling(&mut first, &options).await?;
        pooler::prepare(&mut first, pooler).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut first)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        drop(first);
        // No ping before each use (sqlx's default): it was a round trip per statement, a
        // third of a session check's. A connection that died answers its next statement with
        // an error, the request with 503, and the pool then replaces it.
        let pool_options = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false);
        let pool_options = pooler::after_connect(pool_options, pooler);
        let pool = pool_options
            .clone()
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        // Every reset with a key holds one for its whole run (two password hashes), so as many
        // as the main pool; opened on first use, as nodes without keyed resets need none.
        let claims = pool_options.connect_lazy_with(options);
        let cache = Arc::new(cache::ReadCache::new(
            pool.clone(),
            settings.acquire_timeout,
        ));
        let touches = sessions::touches(pool.clone());
        Ok(Self {
            pool,
            claims,
            cache,
            touches,
        })
    }

    /// Whether the read cache holds the session or API token with this digest; for tests.
    pub fn caches(&self, digest: &TokenDigest) -> bool {
        self.cache.holds(digest)
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_err)
    }
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Connection exceptions, shutdowns, too many connections, serialization failures
            // and deadlocks: the database is (momentarily) unable, not the request wrong.
            let transient = code.starts_with("08")
                || code.starts_with("57P")
                || matches!(code.as_ref(), "53300" | "40001" | "40P01" | "55P03");
            if transient {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Backend(e.to_string())
            }
        }
        // A connection cut mid-message surfaces as a protocol error.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(map_err)
    }

    async fn close(&self) {
        self.cache.close().await;
        self.pool.close().await;
    }

    async fn db_now(&self) -> StoreResult<Timestamp> {
        sqlx::query_scalar::<_, i64>(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        )
        .fetch_one(&self.pool)
        .await
        .map(Timestamp)
        .map_err(map_err)
    }

    async fn backup_to(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Config(
            "a PostgreSQL database is backed up with PostgreSQL's own tools: pg_dump for a \
             logical copy, pg_basebackup with WAL archiving for point-in-time recovery"
                .into(),
        ))
    }
}
