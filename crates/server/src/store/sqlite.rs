//! SQLite backend: one writer connection, a few readers, WAL with `synchronous=FULL`.
//!
//! SQLite allows one writer at a time; funnelling writes through a single connection (as lldap
//! does) turns lock contention into an in-process queue, and `BEGIN IMMEDIATE` plus a busy
//! timeout handles the other processes (the admin CLI) that write to the same file.
//! `synchronous=FULL` makes every commit durable before it returns, so an acknowledged logout or
//! reset survives a power cut as well as a crash.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteQueryResult, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite};

use super::attempts;
use super::claim::InMemoryClaims;
use super::rows;
use super::sqlite_cache::{Invalidation, Lookup, ReadCache, Ticket};
use super::sqlite_writer::{Write, Writer};
use super::{
    ApiTokenRecord, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, AuditRecord,
    ClientRecord, IdempotencyClaim, IdempotencyRecord, IpLimit, LockoutRecord, PasswordReset,
    SessionRecord, SessionStart, Store, StoreError, StoreResult, StoreSettings, UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

/// Statements used alone and inside batches. A batch (several statements in one query) costs
/// one round trip to the connection's worker thread instead of one per statement; its `?`
/// parameters are bound in order across the statements.
macro_rules! insert_session_sql {
    () => {
        "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at)
         VALUES (?, ?, ?, ?, ?, ?);"
    };
}
/// A success (login or reset) clears the count and any lock, and forgives failures of
/// requests that arrived before it (see `SessionStart::success_at`).
/// Parameters: username, now, success_at.
macro_rules! record_success_sql {
    () => {
        "INSERT INTO login_failures (username, failures, locked_until, updated_at, forgiven_before)
         VALUES (?, 0, NULL, ?, ?)
         ON CONFLICT (username) DO UPDATE
           SET failures = 0, locked_until = NULL, updated_at = excluded.updated_at,
               forgiven_before = MAX(forgiven_before, excluded.forgiven_before);"
    };
}
/// Rows of `login_failures` that hold something against the username.
macro_rules! counting_sql {
    () => {
        "(failures > 0 OR locked_until IS NOT NULL)"
    };
}
macro_rules! insert_audit_sql {
    () => {
        "INSERT INTO audit_log (time, event, outcome, username, client_id, ip, detail)
         VALUES (?, ?, ?, ?, ?, ?, ?);"
    };
}

pub(super) type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

fn bind_session<'q>(query: SqliteQuery<'q>, session: &'q SessionRecord) -> SqliteQuery<'q> {
    query
        .bind(session.token_digest.as_bytes())
        .bind(&session.id)
        .bind(&session.username)
        .bind(&session.client_id)
        .bind(session.created_at.0)
        .bind(session.last_used_at.0)
}

fn bind_audit<'q>(query: SqliteQuery<'q>, record: &'q AuditRecord) -> SqliteQuery<'q> {
    query
        .bind(record.time.0)
        .bind(&record.event)
        .bind(&record.outcome)
        .bind(&record.username)
        .bind(&record.client_id)
        .bind(&record.ip)
        .bind(&record.detail)
}

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
        let base = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Another process's write lock is waited for as long as a pool connection is:
            // one setting bounds how long a request can wait before it is answered 503.
            .busy_timeout(settings.acquire_timeout)
            .foreign_keys(true);
        let mut writer = SqliteConnection::connect_with(&base)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
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

    /// Proves the cache consistent with the database as it is now (see `sqlite_cache`).
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

fn parse_url(url: &str) -> StoreResult<SqliteConnectOptions> {
    let bad = |e: sqlx::Error| StoreError::Backend(format!("invalid SQLite URL {url:?}: {e}"));
    if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(bad)
    } else {
        Ok(SqliteConnectOptions::new().filename(url))
    }
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517")) =>
        {
            // SQLITE_BUSY / SQLITE_LOCKED and their extended codes: another writer holds on.
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
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

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let statement = sqlx::query(
            "INSERT INTO users (username, account, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.account)
        .bind(&user.password_hash)
        .bind(user.created_at.0);
        self.write_one(None, statement).await.map(drop)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .try_map(|r: SqliteRow| rows::user(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .try_map(|r: SqliteRow| rows::user(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let mut tx = write.begin().await?;
        let removed = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query("DELETE FROM login_failures WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(removed > 0)).await
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let mut tx = write.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
        )
        .bind(&reset.new_hash)
        .bind(&reset.username)
        .bind(&reset.expected_hash)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        let keep = reset.keep_session.as_bytes();
        sqlx::query("DELETE FROM sessions WHERE username = ? AND token_hash <> ?")
            .bind(&reset.username)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE token_hash = ?")
            .bind(reset.now.0)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(record_success_sql!())
            .bind(&reset.username)
            .bind(reset.now.0)
            .bind(reset.success_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM login_attempts WHERE attempt_id = ?")
            .bind(&reset.attempt_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(record) = &reset.idempotency {
            sqlx::query(
                "INSERT INTO idempotency_records
                   (username, idem_key, fingerprint, answer, created_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&record.username)
            .bind(&record.key)
            .bind(&record.fingerprint)
            .bind(&record.answer)
            .bind(record.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(true)).await
    }

    async fn lockout(&self, username: &str) -> StoreResult<Option<LockoutRecord>> {
        sqlx::query(concat!(
            "SELECT * FROM login_failures WHERE username = ? AND ",
            counting_sql!()
        ))
        .bind(username)
        .try_map(|r: SqliteRow| rows::lockout(&r))
        .fetch_optional(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn clear_failures(&self, username: &str, now: Timestamp) -> StoreResult<bool> {
        let statement = sqlx::query(concat!(
            "UPDATE login_failures SET failures = 0, locked_until = NULL,
               forgiven_before = MAX(forgiven_before, ?) WHERE username = ? AND ",
            counting_sql!()
        ))
        .bind(now.0)
        .bind(username);
        self.write_one(None, statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn ip_failures_since(&self, limit: &IpLimit) -> StoreResult<(u32, Option<Timestamp>)> {
        sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(at) FROM ip_failure_log WHERE ip = ? AND at > ?",
        )
        .bind(&limit.ip)
        .bind(limit.since.0)
        .fetch_one(&self.readers)
        .await
        .map(|(n, oldest)| (rows::count(n), oldest.map(Timestamp)))
        .map_err(map_err)
    }

    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(concat!(
            "SELECT * FROM login_failures WHERE ",
            counting_sql!(),
            " ORDER BY username"
        ))
        .try_map(|r: SqliteRow| rows::lockout(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut write = self.write(None).await?;
        let failures = sqlx::query(
            "DELETE FROM login_failures
             WHERE updated_at < ?
               AND (locked_until IS NULL OR locked_until <= ?)
               AND username NOT IN (SELECT username FROM users)",
        )
        .bind(unknown_failures_before.0)
        .bind(now.0)
        .execute(write.conn())
        .await
        .map_err(map_err)?
        .rows_affected();
        let windows = sqlx::query("DELETE FROM ip_failure_log WHERE at <= ?")
            .bind(ip_failures_until.0)
            .execute(write.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
        let reservations = sqlx::query("DELETE FROM login_attempts WHERE expires_at <= ?")
            .bind(now.0)
            .execute(write.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
        write.done(Ok(failures + windows + reservations)).await
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let statement = sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, scopes, created_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&client.client_id)
        .bind(&client.secret_hash)
        .bind(client.scopes.join(" "))
        .bind(client.created_at.0);
        self.write_one(None, statement).await.map(drop)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients WHERE client_id = ?")
            .bind(client_id)
            .try_map(|r: SqliteRow| rows::client(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients ORDER BY client_id")
            .try_map(|r: SqliteRow| rows::client(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        let statement =
            sqlx::query("DELETE FROM oauth_clients WHERE client_id = ?").bind(client_id);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn issue_api_token(
        &self,
        candidate: &ApiTokenRecord,
        now: Timestamp,
    ) -> StoreResult<ApiTokenRecord> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let mut tx = write.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, client_id, scope, seed, issued_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (client_id, scope) DO UPDATE
               SET token_hash = excluded.token_hash, seed = excluded.seed,
                   issued_at = excluded.issued_at, expires_at = excluded.expires_at
             WHERE api_tokens.expires_at <= ?",
        )
        .bind(candidate.token_digest.as_bytes())
        .bind(&candidate.client_id)
        .bind(&candidate.scope)
        .bind(&candidate.seed)
        .bind(candidate.issued_at.0)
        .bind(candidate.expires_at.0)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let live = sqlx::query("SELECT * FROM api_tokens WHERE client_id = ? AND scope = ?")
            .bind(&candidate.client_id)
            .bind(&candidate.scope)
            .try_map(|r: SqliteRow| rows::api_token(&r))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(live)).await
    }

    async fn find_api_token(&self, digest: &TokenDigest) -> StoreResult<Option<ApiTokenRecord>> {
        let fetch = || {
            sqlx::query("SELECT * FROM api_tokens WHERE token_hash = ?")
                .bind(digest.as_bytes())
                .try_map(|r: SqliteRow| rows::api_token(&r))
                .fetch_optional(&self.readers)
        };
        self.read_through(
            self.cache.api_token(digest),
            fetch,
            ReadCache::fill_api_token,
        )
        .await
    }

    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool> {
        let statement =
            sqlx::query("DELETE FROM api_tokens WHERE token_hash = ?").bind(digest.as_bytes());
        self.write_one(Some(self.cache.invalidate(digest)), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let statement = bind_session(sqlx::query(insert_session_sql!()), session);
        self.write_one(None, statement).await.map(drop)
    }

    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64> {
        let (session, username) = (&start.session, start.session.username.as_str());
        // Only trimming can revoke a cached session.
        let mut write = self
            .write(start.keep_sessions.map(|_| self.cache.invalidate_all()))
            .await?;
        macro_rules! start_sql {
            ($($trim:expr)?) => {
                concat!(
                    "BEGIN IMMEDIATE;",
                    "DELETE FROM login_attempts WHERE attempt_id = ?;",
                    record_success_sql!(),
                    insert_session_sql!(),
                    insert_audit_sql!(),
                    $($trim,)?
                    "COMMIT;"
                )
            };
        }
        // The trim returns a row per session it revokes.
        let sql = match start.keep_sessions {
            None => start_sql!(),
            Some(_) => start_sql!(
                "DELETE FROM sessions WHERE username = ? AND token_hash NOT IN (
                    SELECT token_hash FROM sessions WHERE username = ?
                    ORDER BY created_at DESC, id DESC LIMIT ?)
                 RETURNING 1;"
            ),
        };
        let batch = sqlx::query(sql)
            .bind(&start.attempt_id)
            .bind(username)
            .bind(session.created_at.0)
            .bind(start.success_at.0);
        let mut batch = bind_audit(bind_session(batch, session), &start.audit);
        if let Some(keep) = start.keep_sessions {
            batch = batch.bind(username).bind(username).bind(i64::from(keep));
        }
        let revoked = write
            .transaction(batch)
            .await
            .map(|rows| u64::try_from(rows.len()).unwrap_or(u64::MAX));
        write.done(revoked).await
    }

    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        let fetch = || {
            sqlx::query(
                "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
                 WHERE s.token_hash = ?",
            )
            .bind(digest.as_bytes())
            .try_map(|r: SqliteRow| rows::session(&r))
            .fetch_optional(&self.readers)
        };
        self.read_through(self.cache.session(digest), fetch, ReadCache::fill_session)
            .await
    }

    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool> {
        // A cached last use older than the stored one could make a live session look idle.
        let statement = sqlx::query(
            "UPDATE sessions SET last_used_at = MAX(last_used_at, ?) WHERE token_hash = ?",
        )
        .bind(now.0)
        .bind(digest.as_bytes());
        self.write_one(Some(self.cache.invalidate(digest)), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool> {
        let statement =
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(digest.as_bytes());
        self.write_one(Some(self.cache.invalidate(digest)), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64> {
        let statement = sqlx::query("DELETE FROM sessions WHERE last_used_at < ?").bind(cutoff.0);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected())
    }

    async fn update_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
        )
        .bind(new_hash)
        .bind(username)
        .bind(expected);
        self.write_one(None, statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn reserve_attempt(&self, request: &AttemptRequest) -> StoreResult<AttemptReservation> {
        let mut write = self.write(None).await?;
        // One batch: forget lapsed reservations and an ended lock (the count then starts
        // again), reserve unless locked or failures plus reservations reach the threshold of
        // the username or of the address, and report what decided.
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             DELETE FROM login_attempts WHERE (username = ?1 OR ip = ?6) AND expires_at <= ?2;
             UPDATE login_failures SET failures = 0, locked_until = NULL
               WHERE username = ?1 AND locked_until <= ?2;
             INSERT INTO login_attempts (attempt_id, username, expires_at, ip)
               SELECT ?3, ?1, ?4, ?6
               WHERE NOT EXISTS (SELECT 1 FROM login_failures
                                 WHERE username = ?1 AND locked_until IS NOT NULL)
                 AND COALESCE((SELECT failures FROM login_failures WHERE username = ?1), 0)
                     + (SELECT COUNT(*) FROM login_attempts WHERE username = ?1) < ?5
                 AND (?6 IS NULL
                      OR (SELECT COUNT(*) FROM ip_failure_log WHERE ip = ?6 AND at > ?7)
                         + (SELECT COUNT(*) FROM login_attempts WHERE ip = ?6) < ?8);
             SELECT (SELECT locked_until FROM login_failures WHERE username = ?1),
                    EXISTS (SELECT 1 FROM login_attempts WHERE attempt_id = ?3),
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = ?6 AND at > ?7),
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = ?6 AND at > ?7);
             COMMIT;",
        )
        .bind(&request.username)
        .bind(request.now.0)
        .bind(&request.attempt_id)
        .bind(request.expires_at.0)
        .bind(i64::from(request.threshold))
        .bind(request.ip.as_ref().map(|ip| ip.ip.as_str()))
        .bind(request.ip.as_ref().map_or(0, |ip| ip.since.0))
        .bind(request.ip.as_ref().map_or(0, |ip| i64::from(ip.limit)));
        let reservation = write.transaction(batch).await.and_then(|rows| {
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Backend("the reservation reported nothing".into()))?;
            let get = |i| row.try_get::<Option<i64>, _>(i).map_err(map_err);
            let granted: bool = row.try_get(1).map_err(map_err)?;
            Ok(attempts::reservation(
                request,
                attempts::Counted {
                    granted,
                    locked_until: get(0)?,
                    ip_failures: get(2)?.unwrap_or(0),
                    oldest_ip_failure: get(3)?,
                },
            ))
        });
        write.done(reservation).await
    }

    async fn finish_attempt(&self, end: &AttemptEnd) -> StoreResult<Option<Timestamp>> {
        let mut write = self.write(None).await?;
        let mut tx = write.begin().await?;
        let ip: Option<Option<String>> =
            sqlx::query_scalar("DELETE FROM login_attempts WHERE attempt_id = ? RETURNING ip")
                .bind(&end.attempt_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut locked = None;
        if let AttemptOutcome::Failed { lock_until } = end.outcome {
            if let Some(Some(ip)) = ip {
                sqlx::query("INSERT INTO ip_failure_log (ip, at) VALUES (?, ?)")
                    .bind(ip)
                    .bind(end.now.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            let forgiven_before: Option<i64> =
                sqlx::query_scalar("SELECT forgiven_before FROM login_failures WHERE username = ?")
                    .bind(&end.username)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            if attempts::counts(end, forgiven_before) {
                let (failures, locked_until): (i64, Option<i64>) = sqlx::query_as(
                    "INSERT INTO login_failures (username, failures, locked_until, updated_at)
                     VALUES (?, 1, NULL, ?)
                     ON CONFLICT (username) DO UPDATE
                       SET failures = failures + 1, updated_at = excluded.updated_at
                     RETURNING failures, locked_until",
                )
                .bind(&end.username)
                .bind(end.now.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if locked_until.is_none() && failures >= i64::from(end.threshold) {
                    sqlx::query("UPDATE login_failures SET locked_until = ? WHERE username = ?")
                        .bind(lock_until.0)
                        .bind(&end.username)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    locked = Some(lock_until);
                }
            }
        }
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(locked)).await
    }

    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE last_used_at >= ?")
            .bind(since.0)
            .fetch_one(&self.readers)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(map_err)
    }

    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
             WHERE (?1 IS NULL OR s.username = ?1)
             ORDER BY s.created_at, s.id",
        )
        .bind(username)
        .try_map(|r: SqliteRow| rows::session(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64> {
        let statement = sqlx::query("DELETE FROM sessions WHERE username = ?").bind(username);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected())
    }

    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool> {
        let statement = sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn claim_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyClaim>> {
        Ok(self.claims.claim(username, key))
    }

    async fn find_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        sqlx::query("SELECT * FROM idempotency_records WHERE username = ? AND idem_key = ?")
            .bind(username)
            .bind(key)
            .try_map(|r: SqliteRow| rows::idempotency(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn purge_idempotency(
        &self,
        answers_before: Timestamp,
        records_before: Timestamp,
    ) -> StoreResult<u64> {
        let mut write = self.write(None).await?;
        let erased = sqlx::query(
            "UPDATE idempotency_records SET answer = NULL
             WHERE answer IS NOT NULL AND created_at < ?",
        )
        .bind(answers_before.0)
        .execute(write.conn())
        .await
        .map_err(map_err)?
        .rows_affected();
        let deleted = sqlx::query("DELETE FROM idempotency_records WHERE created_at < ?")
            .bind(records_before.0)
            .execute(write.conn())
            .await
            .map_err(map_err)?
            .rows_affected();
        write.done(Ok(erased + deleted)).await
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let statement = bind_audit(sqlx::query(insert_audit_sql!()), record);
        self.write_one(None, statement).await.map(drop)
    }

    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
    ) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR username = ?1) AND time >= ?2
             ORDER BY time, id",
        )
        .bind(username)
        .bind(since.map_or(i64::MIN, |t| t.0))
        .try_map(|r: SqliteRow| rows::audit(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }
}
