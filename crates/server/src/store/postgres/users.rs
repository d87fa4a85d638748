//! Users and passwords in PostgreSQL. A reset holds the username's lock, as every change of
//! its counters does, and changes the hash, the sessions, the counters and the idempotency
//! record in one transaction.

use async_trait::async_trait;

use super::*;
use crate::store::UserStore;

#[async_trait]
impl UserStore for PostgresStore {
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
        for table in ["login_failures", "failed_passwords"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE username = $1"))
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
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
        apply_change(&mut tx, &reset.counters).await?;
        sqlx::query("DELETE FROM previous_passwords WHERE username = $1")
            .bind(&reset.username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(previous) = &reset.previous {
            sqlx::query(
                "INSERT INTO previous_passwords (username, digest, until) VALUES ($1, $2, $3)",
            )
            .bind(&reset.username)
            .bind(previous.digest.as_bytes())
            .bind(previous.until.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
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
}
