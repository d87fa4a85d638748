//! The audit log in SQLite.

use async_trait::async_trait;

use super::*;
use crate::store::AuditStore;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        let statement = bind_audit(sqlx::query(insert_audit_sql!()), record);
        self.write_one(None, statement).await.map(drop)
    }

    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(
            "SELECT * FROM (
               SELECT * FROM audit_log WHERE (?1 IS NULL OR username = ?1) AND time >= ?2
               ORDER BY time DESC, id DESC LIMIT ?3)
             ORDER BY time, id",
        )
        .bind(username)
        .bind(since.map_or(i64::MIN, |t| t.0))
        .bind(limit.map_or(-1, i64::from))
        .try_map(|r: SqliteRow| rows::audit(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }
}
