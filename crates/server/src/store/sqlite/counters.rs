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
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             SELECT f.failures, f.locked_until, f.forgiven_before,
                    (SELECT COUNT(*) FROM login_attempts WHERE username = ?1 AND expires_at > ?2)
                      AS in_flight,
                    (SELECT COUNT(*) FROM ip_failure_log WHERE ip = ?3 AND at > ?4)
                      AS ip_failures,
                    (SELECT MIN(at) FROM ip_failure_log WHERE ip = ?3 AND at > ?4)
                      AS oldest_ip_failure,
                    (SELECT COUNT(*) FROM login_attempts WHERE ip = ?3 AND expires_at > ?2)
                      AS ip_in_flight
             FROM (SELECT 1) LEFT JOIN login_failures f ON f.username = ?1;",
        )
        .bind(&key.username)
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

    async fn address_failures(&self, window: &AddressWindow) -> StoreResult<AddressCounters> {
        sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(at) FROM ip_failure_log WHERE ip = ? AND at > ?",
        )
        .bind(&window.ip)
        .bind(window.since.0)
        .fetch_one(&self.readers)
        .await
        .map(|(n, oldest)| rows::address_failures(n, oldest))
        .map_err(map_err)
    }

    async fn purge_counters(
        &self,
        unknown_failures_before: Timestamp,
        ip_failures_until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        let mut write = self.write(None).await?;
        // One round trip: each DELETE is followed by the count of the rows it removed.
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             DELETE FROM login_failures
             WHERE updated_at < ?
               AND (locked_until IS NULL OR locked_until <= ?)
               AND username NOT IN (SELECT username FROM users);
             SELECT changes();
             DELETE FROM ip_failure_log WHERE at <= ?;
             SELECT changes();
             DELETE FROM login_attempts WHERE expires_at <= ?;
             SELECT changes();
             COMMIT;",
        )
        .bind(unknown_failures_before.0)
        .bind(now.0)
        .bind(ip_failures_until.0)
        .bind(now.0);
        let purged = write.transaction(batch).await.and_then(|rows| {
            rows.iter().try_fold(0u64, |sum, row| {
                let n = row.try_get::<i64, _>(0).map_err(map_err)?;
                Ok(sum + u64::try_from(n).unwrap_or(0))
            })
        });
        write.done(purged).await
    }
}

/// The counters from the row of the `lock_counters` read.
fn read_counters(rows: &[SqliteRow], with_address: bool) -> StoreResult<Counters> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Backend("the counters read returned nothing".into()))?;
    rows::counters(row, with_address).map_err(map_err)
}
