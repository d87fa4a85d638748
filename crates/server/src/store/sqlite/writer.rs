//! The SQLite backend's one writing connection, held behind a mutex rather than in a pool.
//!
//! Why not a pool of one: sqlx's pool pings a connection each time it is handed back, in a
//! spawned task, and the next writer waits for that round trip to the connection's worker
//! thread. A mutex serves the writers in order at no such cost.
//!
//! Why every write ends with [`Write::done`]: holding the connection lets each write be followed
//! by the read cache's validation before any other write of ours can commit, so the cache is
//! trusted again at once. Left to the background validation (see `cache.rs`), steady writes
//! (logins, last-use touches) kept session checks off the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Execute, Sqlite, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::cache::{Invalidation, ReadCache};
use super::sql::{SqliteQuery, map_err};
use crate::store::{StoreError, StoreResult};

#[derive(Debug)]
pub(super) struct Writer {
    conn: Mutex<Option<SqliteConnection>>,
    /// A batch that opened its own transaction may have stopped before its end (an error, or
    /// its request cancelled): the next write rolls back first.
    unfinished: AtomicBool,
    /// How long a write waits for the connection before the store counts as unavailable.
    wait: Duration,
}

impl Writer {
    pub(super) fn new(conn: SqliteConnection, wait: Duration) -> Self {
        Self {
            conn: Mutex::new(Some(conn)),
            unfinished: AtomicBool::new(false),
            wait,
        }
    }

    pub(super) async fn lock(&self) -> StoreResult<MappedMutexGuard<'_, SqliteConnection>> {
        let guard = tokio::time::timeout(self.wait, self.conn.lock())
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stayed busy".into()))?;
        let mut conn = MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        // Cleared only once the rollback has run: cancelled on the way, it is tried again.
        if self.unfinished.load(Ordering::Acquire) {
            rollback(&mut conn).await;
            self.unfinished.store(false, Ordering::Release);
        }
        Ok(conn)
    }

    /// Whether SQLite's write lock can be taken now. Another process holding it leaves reads
    /// working (WAL) but every login waiting, so readiness asks this too. The probe does not
    /// wait for the lock (busy timeout 0 for its one `BEGIN IMMEDIATE`); the caller runs it
    /// on a task of its own, so that the usual busy timeout is always put back.
    pub(super) async fn probe(&self) -> StoreResult<()> {
        let mut conn = self.lock().await?;
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        let taken = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await;
        if taken.is_ok() {
            rollback(&mut conn).await;
        }
        let restore = format!("PRAGMA busy_timeout = {}", self.wait.as_millis());
        let restored = sqlx::query(&restore).execute(&mut *conn).await;
        taken.map_err(map_err)?;
        restored.map(drop).map_err(map_err)
    }

    /// Takes the connection out: every later write fails as unavailable.
    pub(super) async fn take(&self) -> Option<SqliteConnection> {
        self.conn.lock().await.take()
    }
}

/// The writer connection, held for one write.
pub(super) struct Write<'a> {
    // Fields drop in declaration order: whatever happens, the write's cache entries are gone
    // before the connection is free for the next write (and its validation).
    invalidation: Option<Invalidation<'a>>,
    conn: MappedMutexGuard<'a, SqliteConnection>,
    writer: &'a Writer,
    cache: &'a ReadCache,
}

impl<'a> Write<'a> {
    pub(super) async fn new(
        writer: &'a Writer,
        invalidation: Option<Invalidation<'a>>,
        cache: &'a ReadCache,
    ) -> StoreResult<Self> {
        Ok(Self {
            invalidation,
            conn: writer.lock().await?,
            writer,
            cache,
        })
    }

    pub(super) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// `BEGIN IMMEDIATE`: takes SQLite's write lock at once, so that another process's write
    /// is waited for here (busy timeout) rather than failing the transaction half way.
    pub(super) async fn begin(&mut self) -> StoreResult<Transaction<'_, Sqlite>> {
        self.conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// Runs a batch that is its own transaction, from `BEGIN IMMEDIATE;` to `COMMIT;`, and
    /// returns the rows its statements produced. One round trip to the connection's thread
    /// where a [`Self::begin`] transaction takes two more, one each for BEGIN and COMMIT; a
    /// login has two such batches. A batch that fails or is cancelled half way is rolled back
    /// (now, or at the next write).
    pub(super) async fn transaction(
        &mut self,
        batch: SqliteQuery<'_>,
    ) -> StoreResult<Vec<SqliteRow>> {
        debug_assert!(
            batch.sql().starts_with("BEGIN IMMEDIATE;") && batch.sql().ends_with("COMMIT;"),
            "a batch transaction must begin and end itself"
        );
        self.run(batch, true).await
    }

    /// Runs a batch that begins a transaction (`BEGIN IMMEDIATE;` first) and leaves it open
    /// for [`Self::commit_batch`]: a read, a decision in Rust, then the write, in one
    /// transaction and two round trips. Dropped before the commit, the transaction is rolled
    /// back at the next write.
    pub(super) async fn open_batch(
        &mut self,
        batch: SqliteQuery<'_>,
    ) -> StoreResult<Vec<SqliteRow>> {
        debug_assert!(batch.sql().starts_with("BEGIN IMMEDIATE;"));
        self.run(batch, false).await
    }

    /// Ends the transaction [`Self::open_batch`] began with a batch that ends in `COMMIT;`.
    pub(super) async fn commit_batch(&mut self, batch: SqliteQuery<'_>) -> StoreResult<()> {
        debug_assert!(batch.sql().ends_with("COMMIT;"));
        self.run(batch, true).await.map(drop)
    }

    /// Ends the transaction [`Self::open_batch`] began without writing anything.
    pub(super) async fn rollback_batch(&mut self) {
        rollback(&mut self.conn).await;
        self.writer.unfinished.store(false, Ordering::Release);
    }

    /// Runs a batch inside a transaction of its own, which is unfinished until a batch that
    /// `ends` it has succeeded; any failure rolls it back.
    async fn run(&mut self, batch: SqliteQuery<'_>, ends: bool) -> StoreResult<Vec<SqliteRow>> {
        self.writer.unfinished.store(true, Ordering::Release);
        let rows = batch.fetch_all(&mut *self.conn).await;
        if rows.is_err() {
            rollback(&mut self.conn).await;
        }
        if rows.is_err() || ends {
            self.writer.unfinished.store(false, Ordering::Release);
        }
        rows.map_err(map_err)
    }

    /// Ends the write: drops its cache entries, then validates the cache against the database
    /// as the write left it, and passes `result` through. A write that returns early without
    /// this leaves the cache to the background validation; it is never unsafe.
    pub(super) async fn done<T>(mut self, result: StoreResult<T>) -> StoreResult<T> {
        drop(self.invalidation.take());
        // The header before `data_version`: see `ReadCache::validated`.
        if let Some(header) = self.cache.header() {
            match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut *self.conn)
                .await
            {
                Ok(version) => self.cache.validated(header, version),
                Err(e) => tracing::debug!(error = %e, "read cache validation failed"),
            }
        }
        result
    }
}

/// Ends whatever transaction a batch left open; there may be none (it failed on BEGIN, or
/// SQLite already rolled it back), and that error is expected.
async fn rollback(conn: &mut SqliteConnection) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::debug!(error = %e, "rollback after an unfinished batch");
    }
}
