//! Failed-login counters in SQLite. The one writer connection is the hold: a request reads the
//! counters in a `BEGIN IMMEDIATE` transaction on it, the domain decides, and the change is
//! written and committed before the connection serves anyone else. Two round trips to the
//! connection's thread, whatever the change.

use async_trait::async_trait;

use super::*;
use crate::store::{
    AddressCounters, AddressWindow, CounterKey, CounterStore, Counters, CountersChange,
    LockedCounters,
};

/// The counters as read, with the transaction that read them still open on the writer.
struct Held<'a> {
    write: Write<'a>,
    counters: Counters,
}

#[async_trait]
impl LockedCounters for Held<'_> {
    fn counters(&self) -> &Counters {
        &self.counters
    }

    async fn apply(mut self: Box<Self>, change: &CountersChange) -> StoreResult<()> {
        let batch = sqlx::query(concat!(apply_change_sql!(), "COMMIT;"));
        let written = self.write.commit_batch(bind_change(batch, change)).await;
        self.write.done(written).await
    }
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn lock_counters<'a>(
        &'a self,
        key: &CounterKey,
    ) -> StoreResult<Box<dyn LockedCounters + 'a>> {
        let mut write = self.write(None).await?;
        let address = key.address.as_ref();
        // The remembered digests follow the counters' row in the same answer. `?N` names the
        // same argument in every statement of a batch (each statement must name all of
        // `?1`..`?N` it uses up to its highest, or sqlx binds the gaps positionally).
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             SELECT f.failures, f.locked_until, f.forgiven_before,
                    (SELECT COUNT(*) FROM login_attempts
                     WHERE username = ?1 AND bucket = ?2 AND expires_at > ?3) AS in_flight,
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = ?4 AND at > ?5 AND counted)
                      AS ip_failures,
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = ?4 AND at > ?5 AND counted)
                      AS oldest_ip_failure,
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = ?4 AND at > ?5)
                      AS ip_checks,
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = ?4 AND at > ?5)
                      AS oldest_ip_check,
                    (SELECT COUNT(*) FROM login_attempts WHERE ip = ?4 AND expires_at > ?3)
                      AS ip_in_flight,
                    p.digest AS previous_digest, p.until AS previous_until
             FROM (SELECT 1)
               LEFT JOIN login_failures f ON f.username = ?1 AND f.bucket = ?2
               LEFT JOIN previous_passwords p ON p.username = ?1 AND p.until > ?3;
             SELECT digest FROM failed_passwords WHERE username = ?1 AND bucket = ?2
             ORDER BY at DESC LIMIT 10;",
        )
        .bind(&key.username)
        .bind(&key.bucket)
        .bind(key.now.0)
        .bind(address.map(|a| a.ip.as_str()))
        .bind(address.map_or(0, |a| a.since.0));
        let rows = write.open_batch(batch).await?;
        match read_counters(&rows, address.is_some()) {
            Ok(counters) => Ok(Box::new(Held { write, counters })),
            Err(e) => {
                // Not left to the next write: SQLite's write lock would be held until then.
                write.rollback_batch().await;
                Err(e)
            }
        }
    }

    async fn lockouts(&self, username: &str) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(concat!(
            "SELECT * FROM login_failures WHERE username = ? AND ",
            counting_sql!(),
            " ORDER BY bucket"
        ))
        .bind(username)
        .try_map(|r: SqliteRow| rows::lockout(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn list_lockouts(&self) -> StoreResult<Vec<LockoutRecord>> {
        sqlx::query(concat!(
            "SELECT * FROM login_failures WHERE ",
            counting_sql!(),
            " ORDER BY username, bucket"
        ))
        .try_map(|r: SqliteRow| rows::lockout(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn familiar_since(
        &self,
        username: &str,
        network: &str,
    ) -> StoreResult<Option<Timestamp>> {
        sqlx::query_scalar::<_, i64>(
            "SELECT last_success_at FROM familiar_sources WHERE username = ? AND network = ?",
        )
        .bind(username)
        .bind(network)
        .fetch_optional(&self.readers)
        .await
        .map(|t| t.map(Timestamp))
        .map_err(map_err)
    }

    async fn address_failures(&self, window: &AddressWindow) -> StoreResult<AddressCounters> {
        sqlx::query_as::<_, (i64, Option<i64>, i64, Option<i64>)>(
            "SELECT COUNT(*) FILTER (WHERE counted), MIN(at) FILTER (WHERE counted),
                    COUNT(*), MIN(at)
             FROM ip_failure_log WHERE ip = ? AND at > ?",
        )
        .bind(&window.ip)
        .bind(window.since.0)
        .fetch_one(&self.readers)
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
        let mut write = self.write(None).await?;
        // One round trip: each DELETE is followed by the count of the rows it removed. Plain
        // `?`s, bound in order (see `lock_counters` on `?N` in batches).
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             DELETE FROM login_failures
             WHERE updated_at < ?
               AND (locked_until IS NULL OR locked_until <= ?)
               AND username NOT IN (SELECT username FROM users);
             SELECT changes();
             DELETE FROM failed_passwords
             WHERE NOT EXISTS (SELECT 1 FROM login_failures f
                               WHERE f.username = failed_passwords.username
                                 AND f.bucket = failed_passwords.bucket
                                 AND (f.locked_until IS NULL OR f.locked_until > ?));
             SELECT changes();
             DELETE FROM ip_failure_log WHERE at <= ?;
             SELECT changes();
             DELETE FROM login_attempts WHERE expires_at <= ?;
             SELECT changes();
             DELETE FROM previous_passwords WHERE until <= ?;
             SELECT changes();
             DELETE FROM familiar_sources WHERE last_success_at <= ?;
             SELECT changes();
             COMMIT;",
        )
        .bind(unknown_failures_before.0)
        .bind(now.0)
        .bind(now.0)
        .bind(ip_failures_until.0)
        .bind(now.0)
        .bind(now.0)
        .bind(familiar_until.0);
        let purged = write.transaction(batch).await.and_then(|rows| {
            rows.iter().try_fold(0u64, |sum, row| {
                let n = row.try_get::<i64, _>(0).map_err(map_err)?;
                Ok(sum + u64::try_from(n).unwrap_or(0))
            })
        });
        write.done(purged).await
    }
}

/// The counters from the rows of the `lock_counters` read: the counters' row, then one row
/// per remembered digest.
fn read_counters(rows: &[SqliteRow], with_address: bool) -> StoreResult<Counters> {
    let (row, digests) = rows
        .split_first()
        .ok_or_else(|| StoreError::Backend("the counters read returned nothing".into()))?;
    let mut counters = rows::counters(row, with_address).map_err(map_err)?;
    counters.remembered = digests
        .iter()
        .map(rows::remembered)
        .collect::<Result<_, _>>()
        .map_err(map_err)?;
    Ok(counters)
}
