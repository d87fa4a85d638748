//! Idempotency records in SQLite. Claims live in this process: one process serves a SQLite
//! file.

use async_trait::async_trait;

use super::*;
use crate::store::IdempotencyStore;

#[async_trait]
impl IdempotencyStore for SqliteStore {
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
}
