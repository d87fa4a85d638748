//! OAuth clients and API tokens in PostgreSQL; one live token per (client, scope) is an upsert.

use async_trait::async_trait;

use super::*;
use crate::store::ClientStore;

#[async_trait]
impl ClientStore for PostgresStore {
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

    async fn replace_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query("UPDATE oauth_clients SET secret_hash = $1 WHERE client_id = $2")
            .bind(secret_hash)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected()
            > 0;
        if updated && revoke_tokens {
            sqlx::query("DELETE FROM api_tokens WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(updated)
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
        let fetch = || {
            sqlx::query(concat!(
                "SELECT t.*, ",
                epoch_of_slot!(),
                " FROM api_tokens t WHERE token_hash = $1"
            ))
            .bind(digest.as_bytes())
            .try_map(|r: PgRow| Ok((rows::api_token(&r)?, r.try_get("epoch")?)))
            .fetch_optional(&self.pool)
        };
        self.cache
            .read(digest, || async { fetch().await.map_err(map_err) })
            .await
    }

    async fn delete_api_token(&self, digest: &TokenDigest) -> StoreResult<bool> {
        self.cache.forget(digest);
        sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(digest.as_bytes())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }
}
