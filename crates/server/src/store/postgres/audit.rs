//! The audit log in PostgreSQL.

use async_trait::async_trait;

use super::*;
use crate::store::AuditStore;
use sqlx::Executor;

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, record: &AuditRecord) -> StoreResult<()> {
        insert_audit(&self.pool, record).await
    }

    async fn list_audit(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
        limit: Option<u32>,
    ) -> StoreResult<Vec<AuditRecord>> {
        sqlx::query(
            "SELECT * FROM (
               SELECT * FROM audit_log WHERE ($1::text IS NULL OR username = $1) AND time >= $2
               ORDER BY time DESC, id DESC LIMIT $3) newest
             ORDER BY time, id",
        )
        .bind(username)
        .bind(since.map_or(i64::MIN, |t| t.0))
        .bind(limit.map(i64::from))
        .try_map(|r: PgRow| rows::audit(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }
}

pub(super) async fn insert_audit<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    record: &AuditRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (time, event, outcome, username, client_id, ip, detail, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(record.time.0)
    .bind(&record.event)
    .bind(&record.outcome)
    .bind(&record.username)
    .bind(&record.client_id)
    .bind(&record.ip)
    .bind(&record.detail)
    .bind(&record.request_id)
    .execute(executor)
    .await
    .map(drop)
    .map_err(map_err)
}
