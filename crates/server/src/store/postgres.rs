//! PostgreSQL backend, for several server nodes sharing one database.
//!
//! Every rule that must hold across nodes is enforced by the database: uniqueness by
//! constraints, the lockout reservation by a per-username transaction-scoped advisory lock, the
//! one-token-per-hour rule by an upsert. `synchronous_commit=on` makes every acknowledged
//! write durable before it returns.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, Transaction};

use super::attempts;
use super::claim::{Held, IdempotencyClaim};
use super::rows;
use super::{
    ApiTokenRecord, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, AuditRecord,
    ClientRecord, IdempotencyRecord, IpLimit, LockoutRecord, PasswordReset, SessionRecord,
    SessionStart, Store, StoreError, StoreResult, StoreSettings, UserRecord,
};
use crate::crypto::TokenDigest;
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Connections that hold idempotency claims, apart from `pool`: a claim holds its
    /// connection for the whole reset, which needs connections of its own, so sharing one
    /// pool could starve the resets of the very claims that wait for them.
    claims: PgPool,
}

impl PostgresStore {
    /// Connects and applies the embedded migrations (under sqlx's advisory lock).
    pub async fn open(url: &str, settings: &StoreSettings) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("m2m-session")
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        // Every reset with a key holds one for its whole run (two password hashes), so as many
        // as the main pool; opened on first use, as nodes without keyed resets need none.
        let claims = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(Self { pool, claims })
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(map_err)
    }
}

/// Serialises work on one username across every node, until the transaction ends.
async fn lock_username(tx: &mut Transaction<'static, Postgres>, username: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(username)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(map_err)
}

/// Serialises reservations from one client address across every node, after the username's
/// lock (always in that order, so two reservations never wait for each other in a cycle).
async fn lock_ip(tx: &mut Transaction<'static, Postgres>, ip: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))")
        .bind(ip)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(map_err)
}

/// A success clears the count and any lock, and forgives failures of requests that arrived
/// before it (see `SessionStart::success_at`).
async fn record_success(
    tx: &mut Transaction<'static, Postgres>,
    username: &str,
    now: Timestamp,
    success_at: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO login_failures (username, failures, locked_until, updated_at, forgiven_before)
         VALUES ($1, 0, NULL, $2, $3)
         ON CONFLICT (username) DO UPDATE
           SET failures = 0, locked_until = NULL, updated_at = excluded.updated_at,
               forgiven_before = GREATEST(login_failures.forgiven_before,
                                          excluded.forgiven_before)",
    )
    .bind(username)
    .bind(now.0)
    .bind(success_at.0)
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(map_err)
}

/// An open transaction holding the key's advisory lock: released by its end, and by the
/// database when the connection dies with the node.
struct AdvisoryClaim(Transaction<'static, Postgres>);

#[async_trait]
impl Held for AdvisoryClaim {
    async fn release(self: Box<Self>) {
        if let Err(e) = self.0.rollback().await {
            tracing::debug!(error = %e, "idempotency claim released with its connection");
        }
    }
}

async fn insert_session<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    session: &SessionRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(session.token_digest.as_bytes())
    .bind(&session.id)
    .bind(&session.username)
    .bind(&session.client_id)
    .bind(session.created_at.0)
    .bind(session.last_used_at.0)
    .execute(executor)
    .await
    .map(drop)
    .map_err(map_err)
}

async fn insert_audit<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    record: &AuditRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (time, event, outcome, username, client_id, ip, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(record.time.0)
    .bind(&record.event)
    .bind(&record.outcome)
    .bind(&record.username)
    .bind(&record.client_id)
    .bind(&record.ip)
    .bind(&record.detail)
    .execute(executor)
    .await
    .map(drop)
    .map_err(map_err)
}

fn map_err(e: sqlx::Error) -> StoreError {
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

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (username, account, password_hash, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.username)
        .bind(&user.account)
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .try_map(|r: PgRow| rows::user(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .try_map(|r: PgRow| rows::user(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query("DELETE FROM login_failures WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(removed > 0)
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // As every change of the counter: a failure being recorded meanwhile then reads the
        // success's forgiveness, not the value before it.
        lock_username(&mut tx, &reset.username).await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE username = $2 AND password_hash = $3",
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
        sqlx::query("DELETE FROM sessions WHERE username = $1 AND token_hash <> $2")
            .bind(&reset.username)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_hash = $2")
            .bind(reset.now.0)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        record_success(&mut tx, &reset.username, reset.now, reset.success_at).await?;
        sqlx::query("DELETE FROM login_attempts WHERE attempt_id = $1")
            .bind(&reset.attempt_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(record) = &reset.idempotency {
            sqlx::query(
                "INSERT INTO idempotency_records
                   (username, idem_key, fingerprint, answer, created_at)
                 VALUES ($1, $2, $3, $4, $5)",
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
        Ok(true)
    }

    async fn update_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> StoreResult<bool> {
        sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE username = $2 AND password_hash = $3",
        )
        .bind(new_hash)
        .bind(username)
        .bind(expected)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(map_err)
    }

    async fn lockout(&self, username: &str) -> StoreResult<Option<LockoutRecord>> {
        sqlx::query(
            "SELECT * FROM login_failures
             WHERE username = $1 AND (failures > 0 OR locked_until IS NOT NULL)",
        )
        .bind(username)
        .try_map(|r: PgRow| rows::lockout(&r))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn reserve_attempt(&self, request: &AttemptRequest) -> StoreResult<AttemptReservation> {
        let username = request.username.as_str();
        let ip = request.ip.as_ref();
        let now = request.now.0;
        let mut tx = self.begin().await?;
        lock_username(&mut tx, username).await?;
        if let Some(ip) = ip {
            lock_ip(&mut tx, &ip.ip).await?;
        }
        sqlx::query(
            "DELETE FROM login_attempts WHERE (username = $1 OR ip = $2) AND expires_at <= $3",
        )
        .bind(username)
        .bind(ip.map(|ip| ip.ip.as_str()))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "UPDATE login_failures SET failures = 0, locked_until = NULL
             WHERE username = $1 AND locked_until <= $2",
        )
        .bind(username)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        // One statement, one snapshot: a failure finishing meanwhile moves from the
        // reservations to the log without being missed by both counts.
        let (failures, locked_until, in_flight, ip_failures, oldest, ip_in_flight): (
            i64,
            Option<i64>,
            i64,
            i64,
            Option<i64>,
            i64,
        ) = sqlx::query_as(
            "SELECT COALESCE((SELECT failures FROM login_failures WHERE username = $1), 0),
                    (SELECT locked_until FROM login_failures WHERE username = $1),
                    (SELECT COUNT(*) FROM login_attempts WHERE username = $1),
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = $2 AND at > $3),
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = $2 AND at > $3),
                    (SELECT COUNT(*) FROM login_attempts WHERE ip = $2)",
        )
        .bind(username)
        .bind(ip.map(|ip| ip.ip.as_str()))
        .bind(ip.map_or(0, |ip| ip.since.0))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let granted = locked_until.is_none()
            && failures + in_flight < i64::from(request.threshold)
            && ip.is_none_or(|ip| ip_failures + ip_in_flight < i64::from(ip.limit));
        if granted {
            sqlx::query(
                "INSERT INTO login_attempts (attempt_id, username, expires_at, ip)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&request.attempt_id)
            .bind(username)
            .bind(request.expires_at.0)
            .bind(ip.map(|ip| ip.ip.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(attempts::reservation(
            request,
            attempts::Counted {
                granted,
                locked_until,
                ip_failures,
                oldest_ip_failure: oldest,
            },
        ))
    }

    async fn finish_attempt(&self, end: &AttemptEnd) -> StoreResult<Option<Timestamp>> {
        let mut tx = self.begin().await?;
        lock_username(&mut tx, &end.username).await?;
        let ip: Option<Option<String>> =
            sqlx::query_scalar("DELETE FROM login_attempts WHERE attempt_id = $1 RETURNING ip")
                .bind(&end.attempt_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        let mut locked = None;
        if let AttemptOutcome::Failed { lock_until } = end.outcome {
            if let Some(Some(ip)) = ip {
                sqlx::query("INSERT INTO ip_failure_log (ip, at) VALUES ($1, $2)")
                    .bind(ip)
                    .bind(end.now.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            let forgiven_before: Option<i64> = sqlx::query_scalar(
                "SELECT forgiven_before FROM login_failures WHERE username = $1",
            )
            .bind(&end.username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            if attempts::counts(end, forgiven_before) {
                let (failures, locked_until): (i64, Option<i64>) = sqlx::query_as(
                    "INSERT INTO login_failures (username, failures, locked_until, updated_at)
                     VALUES ($1, 1, NULL, $2)
                     ON CONFLICT (username) DO UPDATE
                       SET failures = login_failures.failures + 1,
                           updated_at = excluded.updated_at
                     RETURNING failures, locked_until",
                )
                .bind(&end.username)
                .bind(end.now.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
                if locked_until.is_none() && failures >= i64::from(end.threshold) {
                    sqlx::query("UPDATE login_failures SET locked_until = $1 WHERE username = $2")
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
        Ok(locked)
    }

    async fn clear_failures(&self, username: &str, now: Timestamp) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        lock_username(&mut tx, username).await?;
        let cleared = sqlx::query(
            "UPDATE login_failures SET failures = 0, locked_until = NULL,
               forgiven_before = GREATEST(forgiven_before, $2)
             WHERE username = $1 AND (failures > 0 OR locked_until IS NOT NULL)",
        )
        .bind(username)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(cleared > 0)
    }

    async fn ip_failures_since(&self, limit: &IpLimit) -> StoreResult<(u32, Option<Timestamp>)> {
        sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(at) FROM ip_failure_log WHERE ip = $1 AND at > $2",
        )
        .bind(&limit.ip)
        .bind(limit.since.0)
        .fetch_one(&self.pool)
        .await
        .map(|(n, oldest)| (rows::count(n), oldest.map(Timestamp)))
        .map_err(map_err)
    }

    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(
            "SELECT * FROM login_failures
             WHERE failures > 0 OR locked_until IS NOT NULL ORDER BY username",
        )
        .try_map(|r: PgRow| rows::lockout(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let failures = sqlx::query(
            "DELETE FROM login_failures
             WHERE updated_at < $1
               AND (locked_until IS NULL OR locked_until <= $2)
               AND username NOT IN (SELECT username FROM users)",
        )
        .bind(unknown_failures_before.0)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        let windows = sqlx::query("DELETE FROM ip_failure_log WHERE at <= $1")
            .bind(ip_failures_until.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        let reservations = sqlx::query("DELETE FROM login_attempts WHERE expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(failures + windows + reservations)
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (client_id, secret_hash, scopes, created_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&client.client_id)
        .bind(&client.secret_hash)
        .bind(client.scopes.join(" "))
        .bind(client.created_at.0)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(map_err)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .try_map(|r: PgRow| rows::client(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        sqlx::query("SELECT * FROM oauth_clients ORDER BY client_id")
            .try_map(|r: PgRow| rows::client(&r))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
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
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (client_id, scope) DO UPDATE
               SET token_hash = excluded.token_hash, seed = excluded.seed,
                   issued_at = excluded.issued_at, expires_at = excluded.expires_at
             WHERE api_tokens.expires_at <= $7",
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
        let live = sqlx::query("SELECT * FROM api_tokens WHERE client_id = $1 AND scope = $2")
            .bind(&candidate.client_id)
            .bind(&candidate.scope)
            .try_map(|r: PgRow| rows::api_token(&r))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(live)
    }

    async fn find_api_token(&self, digest: &TokenDigest) -> StoreResult<Option<ApiTokenRecord>> {
        sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1")
            .bind(digest.as_bytes())
            .try_map(|r: PgRow| rows::api_token(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool> {
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(digest.as_bytes())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        insert_session(&self.pool, session).await
    }

    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64> {
        let username = start.session.username.as_str();
        let mut tx = self.begin().await?;
        lock_username(&mut tx, username).await?;
        sqlx::query("DELETE FROM login_attempts WHERE attempt_id = $1")
            .bind(&start.attempt_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        record_success(
            &mut tx,
            username,
            start.session.created_at,
            start.success_at,
        )
        .await?;
        insert_session(&mut *tx, &start.session).await?;
        let revoked = match start.keep_sessions {
            Some(keep) => sqlx::query(
                "DELETE FROM sessions WHERE username = $1 AND token_hash NOT IN (
                    SELECT token_hash FROM sessions WHERE username = $1
                    ORDER BY created_at DESC, id DESC LIMIT $2)",
            )
            .bind(username)
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected(),
            None => 0,
        };
        insert_audit(&mut *tx, &start.audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        sqlx::query(
            "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
             WHERE s.token_hash = $1",
        )
        .bind(digest.as_bytes())
        .try_map(|r: PgRow| rows::session(&r))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool> {
        sqlx::query(
            "UPDATE sessions SET last_used_at = GREATEST(last_used_at, $1) WHERE token_hash = $2",
        )
        .bind(now.0)
        .bind(digest.as_bytes())
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected() > 0)
        .map_err(map_err)
    }

    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(digest.as_bytes())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE last_used_at < $1")
            .bind(cutoff.0)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE last_used_at >= $1")
            .bind(since.0)
            .fetch_one(&self.pool)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(map_err)
    }

    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
             WHERE ($1::text IS NULL OR s.username = $1)
             ORDER BY s.created_at, s.id",
        )
        .bind(username)
        .try_map(|r: PgRow| rows::session(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn claim_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyClaim>> {
        let mut tx = self.claims.begin().await.map_err(map_err)?;
        // Seeded apart from the username locks (seed 0) and the address locks (seed 2).
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($2, hashtextextended($1, 1)))",
        )
        .bind(username)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        Ok(held.then(|| IdempotencyClaim::new(AdvisoryClaim(tx))))
    }

    async fn find_idempotency(
        &self,
        username: &str,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        sqlx::query("SELECT * FROM idempotency_records WHERE username = $1 AND idem_key = $2")
            .bind(username)
            .bind(key)
            .try_map(|r: PgRow| rows::idempotency(&r))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn purge_idempotency(
        &self,
        answers_before: Timestamp,
        records_before: Timestamp,
    ) -> StoreResult<u64> {
        let erased = sqlx::query(
            "UPDATE idempotency_records SET answer = NULL
             WHERE answer IS NOT NULL AND created_at < $1",
        )
        .bind(answers_before.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        let deleted = sqlx::query("DELETE FROM idempotency_records WHERE created_at < $1")
            .bind(records_before.0)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        Ok(erased + deleted)
    }

    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        insert_audit(&self.pool, record).await
    }

    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
    ) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR username = $1) AND time >= $2
             ORDER BY time, id",
        )
        .bind(username)
        .bind(since.map_or(i64::MIN, |t| t.0))
        .try_map(|r: PgRow| rows::audit(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }
}
