//! The SQLite backend's one writing connection, held behind a mutex rather than in a pool.
//!
//! Why not a pool of one: sqlx's pool pings a connection each time it is handed back, in a
//! spawned task, and the next writer waits for that round trip to the connection's worker
//! thread. A mutex serves the writers in order at no such cost.
//!
//! Why every write ends with [`Write::done`]: holding the connection lets each write be followed
//! by the read cache's validation before any other write of ours can commit, so the cache is
//! trusted again at once. Left to the background validation (see `sqlite_cache`), steady writes
//! (logins, last-use touches) kept session checks off the cache.

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Sqlite, Transaction};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::sqlite_cache::{Invalidation, ReadCache};
use super::{StoreError, StoreResult};

#[derive(Debug)]
pub(super) struct Writer {
    conn: Mutex<Option<SqliteConnection>>,
    /// How long a write waits for the connection before the store counts as unavailable.
    wait: Duration,
}

impl Writer {
    pub(super) fn new(conn: SqliteConnection, wait: Duration) -> Self {
        Self {
            conn: Mutex::new(Some(conn)),
            wait,
        }
    }

    pub(super) async fn lock(&self) -> StoreResult<MappedMutexGuard<'_, SqliteConnection>> {
        let guard = tokio::time::timeout(self.wait, self.conn.lock())
            .await
            .map_err(|_| StoreError::Unavailable("the database writer stayed busy".into()))?;
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))
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
    cache: &'a ReadCache,
}

impl<'a> Write<'a> {
    pub(super) fn new(
        invalidation: Option<Invalidation<'a>>,
        conn: MappedMutexGuard<'a, SqliteConnection>,
        cache: &'a ReadCache,
    ) -> Self {
        Self {
            invalidation,
            conn,
            cache,
        }
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
            .map_err(super::sqlite::map_err)
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
