//! SQLite backend: one writer connection, a few readers, WAL with `synchronous=FULL`.
//!
//! SQLite allows one writer at a time; funnelling writes through a single connection (as lldap
//! does) turns lock contention into an in-process queue, and `BEGIN IMMEDIATE` plus a busy
//! timeout handles the other processes (the admin CLI) that write to the same file.
//! `synchronous=FULL` makes every commit durable before it returns, so an acknowledged logout or
//! reset survives a power cut as well as a crash.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    ApiTokenRecord, ClientRecord, LockoutRecord, PasswordReset, SessionRecord, Store, StoreError,
    StoreResult, UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite:path` or a
    /// plain path) and applies the embedded migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let base = parse_url(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(base.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self { writer, readers })
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
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

fn map_err(e: sqlx::Error) -> StoreError {
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

fn ts(row: &SqliteRow, col: &str) -> Result<Timestamp, sqlx::Error> {
    row.try_get::<i64, _>(col).map(Timestamp)
}

fn digest_col(row: &SqliteRow, col: &str) -> Result<TokenDigest, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(col)?;
    TokenDigest::from_slice(&bytes).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: "token digest is not 32 bytes".into(),
    })
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn user_from(row: &SqliteRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        username: row.try_get("username")?,
        account: row.try_get("account")?,
        password_hash: row.try_get("password_hash")?,
        created_at: ts(row, "created_at")?,
    })
}

fn lockout_from(row: &SqliteRow) -> Result<LockoutRecord, sqlx::Error> {
    Ok(LockoutRecord {
        username: row.try_get("username")?,
        failures: count(row.try_get("failures")?),
        locked_until: row
            .try_get::<Option<i64>, _>("locked_until")?
            .map(Timestamp),
        updated_at: ts(row, "updated_at")?,
    })
}

fn client_from(row: &SqliteRow) -> Result<ClientRecord, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ClientRecord {
        client_id: row.try_get("client_id")?,
        secret_hash: row.try_get("secret_hash")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: ts(row, "created_at")?,
    })
}

fn api_token_from(row: &SqliteRow) -> Result<ApiTokenRecord, sqlx::Error> {
    Ok(ApiTokenRecord {
        token_digest: digest_col(row, "token_hash")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        seed: row.try_get("seed")?,
        issued_at: ts(row, "issued_at")?,
        expires_at: ts(row, "expires_at")?,
    })
}

fn session_from(row: &SqliteRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        token_digest: digest_col(row, "token_hash")?,
        username: row.try_get("username")?,
        client_id: row.try_get("client_id")?,
        created_at: ts(row, "created_at")?,
        last_used_at: ts(row, "last_used_at")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map(drop)
            .map_err(map_err)
    }

    /// Checkpoints the WAL into the main file and closes every connection.
    async fn close(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint at close failed");
        }
        self.readers.close().await;
        self.writer.close().await;
    }

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (username, account, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.account)
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .try_map(|r: SqliteRow| user_from(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .try_map(|r: SqliteRow| user_from(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
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
        Ok(removed > 0)
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
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
        sqlx::query("DELETE FROM login_failures WHERE username = ?")
            .bind(&reset.username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn lockout(&self, username: &str) -> StoreResult<Option<LockoutRecord>> {
        sqlx::query("SELECT * FROM login_failures WHERE username = ?")
            .bind(username)
            .try_map(|r: SqliteRow| lockout_from(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn add_failure(&self, username: &str, now: Timestamp) -> StoreResult<u32> {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO login_failures (username, failures, locked_until, updated_at)
             VALUES (?, 1, NULL, ?)
             ON CONFLICT (username) DO UPDATE
               SET failures = failures + 1, updated_at = excluded.updated_at
             RETURNING failures",
        )
        .bind(username)
        .bind(now.0)
        .fetch_one(&self.writer)
        .await
        .map(count)
        .map_err(map_err)
    }

    async fn lock(&self, username: &str, until: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE login_failures SET locked_until = ? WHERE username = ? AND locked_until IS NULL",
        )
        .bind(until.0)
        .bind(username)
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn clear_failures(&self, username: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM login_failures WHERE username = ?")
            .bind(username)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query("SELECT * FROM login_failures ORDER BY username")
            .try_map(|r: SqliteRow| lockout_from(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, scopes, created_at)
             VALUES (?, ?, ?, ?)",
        )
        .bind(&client.client_id)
        .bind(&client.secret_hash)
        .bind(client.scopes.join(" "))
        .bind(client.created_at.0)
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients WHERE client_id = ?")
            .bind(client_id)
            .try_map(|r: SqliteRow| client_from(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients ORDER BY client_id")
            .try_map(|r: SqliteRow| client_from(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM oauth_clients WHERE client_id = ?")
            .bind(client_id)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn issue_api_token(
        &self,
        candidate: &ApiTokenRecord,
        now: Timestamp,
    ) -> StoreResult<ApiTokenRecord> {
        let mut tx = self.begin().await?;
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
            .try_map(|r: SqliteRow| api_token_from(&r))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(live)
    }

    async fn find_api_token(&self, digest: &TokenDigest) -> StoreResult<Option<ApiTokenRecord>> {
        sqlx::query("SELECT * FROM api_tokens WHERE token_hash = ?")
            .bind(digest.as_bytes())
            .try_map(|r: SqliteRow| api_token_from(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = ?")
            .bind(digest.as_bytes())
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, username, client_id, created_at, last_used_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(session.token_digest.as_bytes())
        .bind(&session.username)
        .bind(&session.client_id)
        .bind(session.created_at.0)
        .bind(session.last_used_at.0)
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE token_hash = ?")
            .bind(digest.as_bytes())
            .try_map(|r: SqliteRow| session_from(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool> {
        sqlx::query("UPDATE sessions SET last_used_at = MAX(last_used_at, ?) WHERE token_hash = ?")
            .bind(now.0)
            .bind(digest.as_bytes())
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(digest.as_bytes())
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE last_used_at < ?")
            .bind(cutoff.0)
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }
}
