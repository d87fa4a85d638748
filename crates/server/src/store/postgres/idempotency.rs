//! Idempotency records in PostgreSQL. A claim is a transaction-scoped advisory lock held on a
//! connection of its own, so it holds across nodes and ends with the connection.

use async_trait::async_trait;

use super::*;
use crate::store::IdempotencyStore;
use crate::store::claim::Held;

#[async_trait]
impl IdempotencyStore for PostgresStore {
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
