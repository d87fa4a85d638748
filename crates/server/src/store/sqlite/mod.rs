//! SQLite backend: one writer connection, a few readers, WAL with `synchronous=FULL`.
//!
//! SQLite allows one writer at a time; funnelling writes through a single connection (as lldap
//! does) turns lock contention into an in-process queue, and `BEGIN IMMEDIATE` plus a busy
//! timeout handles the other processes (the admin CLI) that write to the same file.
//! `synchronous=FULL` makes every commit durable before it returns, so an acknowledged logout or
//! reset survives a power cut as well as a crash.

#[macro_use]
mod sql;
mod audit;
mod cache;
mod clients;
mod counters;
mod idempotency;
mod sessions;
mod users;
mod writer;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteRow,
};
use sqlx::{Connection, Row};

use self::cache::{Invalidation, Lookup, ReadCache, Ticket};
use self::sql::{SqliteQuery, bind_audit, bind_change, bind_session, map_err};
use self::writer::{Write, Writer};
use super::claim::InMemoryClaims;
use super::rows;
use super::{
    ApiTokenRecord, AuditRecord, ClientRecord, IdempotencyClaim, IdempotencyRecord, LockoutRecord,
    PasswordReset, SessionRecord, SessionStart, Store, StoreError, StoreResult, StoreSettings,
    UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// The embedded SQLite backend: one file, one process, zero configuration.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    readers: SqlitePool,
    cache: Arc<ReadCache>,
    /// Idempotency claims: in this process, as one process serves a SQLite file.
    claims: InMemoryClaims,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite:path` or a
    /// plain path) and applies the embedded migrations.
    pub async fn open(url: &str, settings: &StoreSettings) -> StoreResult<Self> {
        let options = parse_url(url)?;
        let in_memory = options.get_filename().as_os_str().is_empty()
            || options
                .get_filename()
                .to_string_lossy()
                .contains(":memory:");
        let path = (!in_memory).then(|| options.get_filename().to_owned());
        if let Some(path) = &path {
            check_path(path, settings.create_if_missing)?;
        }
        let base = options
            .create_if_missing(settings.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            // Another process's write lock is waited for as long as a pool connection is:
            // one setting bounds how long a request can wait before it is answered 503.
            .busy_timeout(settings.acquire_timeout)
            .foreign_keys(true);
        let mut writer = SqliteConnection::connect_with(&base)
            .await
            .map_err(|e| file_error(e, base.get_filename(), "cannot open the database"))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => {
                    match file_error(e, base.get_filename(), "cannot open the database") {
                        refusal @ StoreError::Config(_) => refusal,
                        other => StoreError::Backend(format!("migration failed: {other}")),
                    }
                }
                other => StoreError::Backend(format!("migration failed: {other}")),
            })?;
        let writer = Arc::new(Writer::new(writer, settings.acquire_timeout));
        // No ping before each use: an embedded connection cannot have been dropped by a peer,
        // and the ping is a round trip to the connection's worker thread.
        let readers = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(base.read_only(true))
            .await
            .map_err(map_err)?;
        // After connecting: the `-shm` file exists once a connection is in WAL mode.
        let cache = Arc::new(ReadCache::new(path.as_deref()));
        Ok(Self {
            writer,
            readers,
            cache,
            claims: InMemoryClaims::default(),
        })
    }

    /// Whether the read cache holds the session or API token with this digest; for tests.
    pub fn caches(&self, digest: &TokenDigest) -> bool {
        self.cache.holds(digest)
    }

    /// Answers from the cache on a hit; otherwise reads the database (the query is built only
    /// then: a hit must cost no query, argument or boxed future), fills the cache when that is
    /// safe, and has the cache validated if it noticed a change.
    async fn read_through<T, F>(
        &self,
        lookup: Lookup<T>,
        fetch: impl FnOnce() -> F,
        fill: impl FnOnce(&ReadCache, Ticket, &T),
    ) -> StoreResult<Option<T>>
    where
        F: Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        let ticket = match lookup {
            Lookup::Hit(record) => return Ok(Some(record)),
            Lookup::Miss(ticket) => ticket,
        };
        let found = fetch().await.map_err(map_err)?;
        if let Some(record) = &found {
            fill(&self.cache, ticket, record);
        }
        if ticket.needs_validation {
            self.spawn_cache_validation();
        }
        Ok(found)
    }

    /// Validates the cache in the background: the request that noticed a change has already
    /// been answered from the database, and must not wait for the writer connection.
    fn spawn_cache_validation(&self) {
        let store = self.clone();
        tokio::spawn(async move { store.validate_cache().await });
    }

    /// Proves the cache consistent with the database as it is now (see `cache.rs`).
    async fn validate_cache(&self) {
        let Some(_validating) = self.cache.try_begin_validation() else {
            return;
        };
        if let Ok(write) = self.write(None).await {
            write.done(Ok(())).await.ok();
        }
    }

    /// One statement on the writer connection, a transaction of its own (see [`Write`]).
    async fn write_one<'a>(
        &'a self,
        invalidation: Option<Invalidation<'a>>,
        statement: SqliteQuery<'_>,
    ) -> StoreResult<SqliteQueryResult> {
        let mut write = self.write(invalidation).await?;
        let result = statement.execute(write.conn()).await.map_err(map_err);
        write.done(result).await
    }

    /// Takes the writer connection for one write, which drops `invalidation`'s cache entries
    /// when it ends (see [`Write`]).
    async fn write<'a>(&'a self, invalidation: Option<Invalidation<'a>>) -> StoreResult<Write<'a>> {
        Write::new(&self.writer, invalidation, &self.cache).await
    }
}

/// Says in a person's terms what SQLite would only call "unable to open database file".
fn check_path(path: &std::path::Path, create: bool) -> StoreResult<()> {
    if !create && !path.exists() && !path.is_dir() {
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        return Err(StoreError::Config(format!(
            "no database at {}: `m2m-session serve` or `m2m-session init` creates it, or pass \
             --database with the path of an existing one",
            shown.display()
        )));
    }
    check_new_file(path, "the database", "--database")
}

/// A file about to be written at `path` (`role`, named by `option`): refused in words when its
/// directory is missing, or when `path` is a directory.
fn check_new_file(path: &std::path::Path, role: &str, option: &str) -> StoreResult<()> {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if path.is_dir() {
        return Err(StoreError::Config(format!(
            "{} is a directory; name a file in it, e.g. {}",
            shown.display(),
            shown.join("m2m-session.db").display()
        )));
    }
    if path.exists() {
        return Ok(());
    }
    let Some(dir) = shown.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let problem = if dir.is_dir() {
        return Ok(());
    } else if dir.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    Err(StoreError::Config(format!(
        "cannot create {role} {}: {} {problem}; create the directory or pass another {option}",
        shown.display(),
        dir.display()
    )))
}

/// An error of opening or writing the file at `path`: SQLite's codes 14 (cannot open) and 26
/// (not a database) said in words, naming the file; others as any store error. Only here:
/// the same codes in a running server's queries are not about which file was named.
fn file_error(e: sqlx::Error, path: &std::path::Path, doing: &str) -> StoreError {
    let reason = match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("14") => {
            "SQLite refuses it (code 14): it must be a database file, or a new name in an \
             existing directory, that this user may read and write"
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some("26") => {
            "it is not an SQLite database (code 26); pass --database with the path of the \
             m2m-session database"
        }
        _ => return map_err(e),
    };
    StoreError::Config(format!("{doing} {}: {reason}", path.display()))
}

fn parse_url(url: &str) -> StoreResult<SqliteConnectOptions> {
    let bad = |e: sqlx::Error| StoreError::Backend(format!("invalid SQLite URL {url:?}: {e}"));
    if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(bad)
    } else {
        Ok(SqliteConnectOptions::new().filename(url))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(drop)
            .map_err(map_err)?;
        let writer = self.writer.clone();
        tokio::spawn(async move { writer.probe().await })
            .await
            .map_err(|e| StoreError::Backend(format!("write probe failed: {e}")))?
    }

    /// An embedded database's clock is this process's clock.
    async fn db_now(&self) -> StoreResult<Timestamp> {
        Ok(Timestamp::now())
    }

    /// `VACUUM INTO` on a reader: a consistent snapshot, taken while the writer goes on.
    async fn backup_to(&self, path: &std::path::Path) -> StoreResult<()> {
        check_new_file(path, "the backup", "backup path")?;
        // Made here, empty (which VACUUM INTO accepts), so that its existence is checked and
        // its mode set at once: a copy of every hash and token digest is not for other users.
        let mut new = std::fs::OpenOptions::new();
        new.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut new, 0o600);
        new.open(path).map_err(|e| {
            StoreError::Config(if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} already exists; name a new file (a backup never overwrites)",
                    path.display()
                )
            } else {
                format!("cannot create the backup {}: {e}", path.display())
            })
        })?;
        let copied = sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(&self.readers)
            .await
            .map(drop)
            .map_err(|e| file_error(e, path, "cannot write the backup"));
        if copied.is_err() {
            let _ = std::fs::remove_file(path);
        }
        copied
    }

    /// Checkpoints the WAL into the main file and closes every connection.
    async fn close(&self) {
        if let Some(mut writer) = self.writer.take().await {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut writer)
                .await
            {
                tracing::warn!(error = %e, "WAL checkpoint at close failed");
            }
            if let Err(e) = writer.close().await {
                tracing::warn!(error = %e, "closing the writer connection failed");
            }
        }
        self.readers.close().await;
    }
}
