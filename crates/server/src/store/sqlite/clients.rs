//! OAuth clients and API tokens in SQLite; token lookups go through the read cache.

use async_trait::async_trait;

use super::*;
use crate::store::ClientStore;

#[async_trait]
impl ClientStore for SqliteStore {
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

    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        // Cached API tokens go too when the tokens are revoked.
        let mut write = self
            .write(revoke_tokens.then(|| self.cache.invalidate_all()))
            .await?;
        let batch = sqlx::query(
            "BEGIN IMMEDIATE;
             UPDATE oauth_clients SET secret_hash = ? WHERE client_id = ? RETURNING 1;
             DELETE FROM api_tokens WHERE client_id = ? AND ?;
             COMMIT;",
        )
        .bind(secret_hash)
        .bind(client_id)
        .bind(client_id)
        .bind(revoke_tokens);
        let updated = write.transaction(batch).await.map(|rows| !rows.is_empty());
        write.done(updated).await
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
}
