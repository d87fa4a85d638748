//! Failed-login counters in PostgreSQL. The hold is a transaction-scoped advisory lock per
//! username (and, for a login, per client address, always taken after the username's): every
//! request that changes a username's counters, on any node, takes it first, reads, has the
//! domain decide, writes and commits.

use async_trait::async_trait;

use super::*;
use crate::store::{
    AddressCounters, AddressWindow, CounterKey, CounterStore, Counters, CountersChange,
    LockedCounters,
};

/// Serialises work on one username across every node, until the transaction ends.
pub(super) async fn lock_username(
    tx: &mut Transaction<'static, Postgres>,
    username: &str,
) -> StoreResult<()> {
    lock_username_and_address(tx, username, None).await
}

/// The username's lock and then, when given, the client address's, in one statement (the
/// select list is evaluated in order, so every node takes the two in the same order). The
/// seeds keep the keys apart: a username (0), an idempotency key (1, `idempotency.rs`) and an
/// address (2) never share a lock.
async fn lock_username_and_address(
    tx: &mut Transaction<'static, Postgres>,
    username: &str,
    address: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)),
                CASE WHEN $2::text IS NOT NULL
                     THEN pg_advisory_xact_lock(hashtextextended($2, 2)) END",
    )
    .bind(username)
    .bind(address)
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(map_err)
}

/// Writes the parts of `change` that are set; decides nothing.
pub(super) async fn apply_change(
    tx: &mut Transaction<'static, Postgres>,
    change: &CountersChange,
) -> StoreResult<()> {
    if let Some(attempt_id) = &change.release {
        sqlx::query("DELETE FROM login_attempts WHERE attempt_id = $1")
            .bind(attempt_id)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    if let Some(reserve) = &change.reserve {
        sqlx::query(
            "INSERT INTO login_attempts (attempt_id, username, expires_at, ip, bucket)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&reserve.attempt_id)
        .bind(&change.username)
        .bind(reserve.expires_at.0)
        .bind(reserve.ip.as_deref())
        .bind(&change.bucket)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    if let Some(failure) = &change.address_failure {
        sqlx::query("INSERT INTO ip_failure_log (ip, at, counted) VALUES ($1, $2, $3)")
            .bind(&failure.ip)
            .bind(change.at.0)
            .bind(failure.counts)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    if change.touches_counter() {
        let count = change.count;
        sqlx::query(
            "INSERT INTO login_failures
               (username, failures, locked_until, updated_at, forgiven_before, bucket)
             VALUES ($1, $2, $3, $4, $5, $7)
             ON CONFLICT (username, bucket) DO UPDATE
               SET failures = CASE WHEN $6 THEN excluded.failures
                                   ELSE login_failures.failures END,
                   locked_until = CASE WHEN $6 THEN excluded.locked_until
                                       ELSE login_failures.locked_until END,
                   updated_at = excluded.updated_at,
                   forgiven_before = GREATEST(login_failures.forgiven_before,
                                              excluded.forgiven_before)",
        )
        .bind(&change.username)
        .bind(count.map_or(0, |c| i64::from(c.failures)))
        .bind(count.and_then(|c| c.locked_until).map(|t| t.0))
        .bind(change.at.0)
        .bind(change.forgive_before.map_or(0, |t| t.0))
        .bind(count.is_some())
        .bind(&change.bucket)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    if change.forget_remembered {
        sqlx::query("DELETE FROM failed_passwords WHERE username = $1 AND bucket = $2")
            .bind(&change.username)
            .bind(&change.bucket)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?;
    }
    if let Some(digest) = &change.remember {
        sqlx::query(
            "INSERT INTO failed_passwords (username, bucket, digest, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username, bucket, digest) DO UPDATE SET at = excluded.at",
        )
        .bind(&change.username)
        .bind(&change.bucket)
        .bind(digest.as_bytes())
        .bind(change.at.0)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    if let Some(network) = &change.familiar {
        sqlx::query(
            "INSERT INTO familiar_sources (username, network, last_success_at) VALUES ($1, $2, $3)
             ON CONFLICT (username, network) DO UPDATE
               SET last_success_at = GREATEST(familiar_sources.last_success_at,
                                              excluded.last_success_at)",
        )
        .bind(&change.username)
        .bind(network)
        .bind(change.at.0)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// The counters as read, with the transaction that holds their locks.
struct Held {
    tx: Transaction<'static, Postgres>,
    counters: Counters,
}

#[async_trait]
impl LockedCounters for Held {
    fn counters(&self) -> &Counters {
        &self.counters
    }

    async fn apply(mut self: Box<Self>, change: &CountersChange) -> StoreResult<()> {
        apply_change(&mut self.tx, change).await?;
        self.tx.commit().await.map_err(map_err)
    }
}

#[async_trait]
impl CounterStore for PostgresStore {
    async fn lock_counters<'a>(
        &'a self,
        key: &CounterKey,
    ) -> StoreResult<Box<dyn LockedCounters + 'a>> {
        let mut tx = self.begin().await?;
        let address = key.address.as_ref();
        lock_username_and_address(&mut tx, &key.username, address.map(|a| a.ip.as_str())).await?;
        // One statement, one snapshot: a failure finishing meanwhile on another node moves
        // from the reservations to the log without being missed by both counts.
        let mut counters = sqlx::query(
            "SELECT f.failures, f.locked_until, f.forgiven_before,
                    (SELECT COUNT(*) FROM login_attempts
                     WHERE username = $1 AND bucket = $5 AND expires_at > $2) AS in_flight,
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = $3 AND at > $4 AND counted)
                      AS ip_failures,
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = $3 AND at > $4 AND counted)
                      AS oldest_ip_failure,
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = $3 AND at > $4)
                      AS ip_checks,
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = $3 AND at > $4)
                      AS oldest_ip_check,
                    (SELECT COUNT(*) FROM login_attempts WHERE ip = $3 AND expires_at > $2)
                      AS ip_in_flight,
                    p.digest AS previous_digest, p.until AS previous_until
             FROM (SELECT 1) AS one
               LEFT JOIN login_failures f ON f.username = $1 AND f.bucket = $5
               LEFT JOIN previous_passwords p ON p.username = $1 AND p.until > $2",
        )
        .bind(&key.username)
        .bind(key.now.0)
        .bind(address.map(|a| a.ip.as_str()))
        .bind(address.map_or(0, |a| a.since.0))
        .bind(&key.bucket)
        .try_map(|row: PgRow| rows::counters(&row, address.is_some()))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        if key.remembered {
            counters.remembered = sqlx::query(
                "SELECT digest FROM failed_passwords WHERE username = $1 AND bucket = $2
                 ORDER BY at DESC LIMIT 10",
            )
            .bind(&key.username)
            .bind(&key.bucket)
            .try_map(|row: PgRow| rows::remembered(&row))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        Ok(Box::new(Held { tx, counters }))
    }

    async fn lockouts(&self, username: &str) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(
            "SELECT * FROM login_failures
             WHERE username = $1 AND (failures > 0 OR locked_until IS NOT NULL)
             ORDER BY bucket",
        )
        .bind(username)
        .try_map(|r: PgRow| rows::lockout(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(
            "SELECT * FROM login_failures
             WHERE failures > 0 OR locked_until IS NOT NULL ORDER BY username, bucket",
        )
        .try_map(|r: PgRow| rows::lockout(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn familiar_since(
        &self,
        username: &str,
        network: &str,
    ) -> StoreResult<Option<Timestamp>> {
        sqlx::query_scalar::<_, i64>(
            "SELECT last_success_at FROM familiar_sources WHERE username = $1 AND network = $2",
        )
        .bind(username)
        .bind(network)
        .fetch_optional(&self.pool)
        .await
        .map(|t| t.map(Timestamp))
        .map_err(map_err)
    }

    async fn address_failures(&self, window: &AddressWindow) -> StoreResult<AddressCounters> {
        sqlx::query_as::<_, (i64, Option<i64>, i64, Option<i64>)>(
            "SELECT COUNT(*) FILTER (WHERE counted), MIN(at) FILTER (WHERE counted),
                    COUNT(*), MIN(at)
             FROM ip_failure_log WHERE ip = $1 AND at > $2",
        )
        .bind(&window.ip)
        .bind(window.since.0)
        .fetch_one(&self.pool)
        .await
        .map(|(n, oldest, checks, oldest_check)| {
            rows::address_failures((n, oldest), (checks, oldest_check))
        })
        .map_err(map_err)
    }

    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        familiar_until: Timestamp,
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
        let orphans = sqlx::query(
            "DELETE FROM failed_passwords p
             WHERE NOT EXISTS (SELECT 1 FROM login_failures f
                               WHERE f.username = p.username AND f.bucket = p.bucket
                                 AND (f.locked_until IS NULL OR f.locked_until > $1))",
        )
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        // Each of the rest deletes the rows of one table at or before one cutoff.
        let mut purged = failures + orphans;
        for (sql, cutoff) in [
            (
                "DELETE FROM ip_failure_log WHERE at <= $1",
                ip_failures_until,
            ),
            ("DELETE FROM login_attempts WHERE expires_at <= $1", now),
            ("DELETE FROM previous_passwords WHERE until <= $1", now),
            (
                "DELETE FROM familiar_sources WHERE last_success_at <= $1",
                familiar_until,
            ),
        ] {
            purged += sqlx::query(sql)
                .bind(cutoff.0)
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        Ok(purged)
    }
}
