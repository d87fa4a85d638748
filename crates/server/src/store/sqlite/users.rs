//! Users and passwords in SQLite. A reset changes the hash, the sessions, the counters and
//! the idempotency record in one transaction on the writer connection.

use async_trait::async_trait;

use super::*;
use crate::store::UserStore;

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let statement = sqlx::query(
            "INSERT INTO users (username, account, password_hash, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.account)
        .bind(&user.password_hash)
        .bind(user.created_at.0);
        self.write_one(None, statement).await.map(drop)
    }

    async fn find_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE username = ?")
            .bind(username)
            .try_map(|r: SqliteRow| rows::user(&r))
            .fetch_optional(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY username")
            .try_map(|r: SqliteRow| rows::user(&r))
            .fetch_all(&self.readers)
            .await
            .map_err(map_err)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let mut tx = write.begin().await?;
        let removed = sqlx::query("DELETE FROM users WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        sqlx::query("DELETE FROM login_failures WHERE username = ?")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(removed > 0)).await
    }

    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let mut tx = write.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
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
        sqlx::query("DELETE FROM sessions WHERE username = ? AND token_hash <> ?")
            .bind(&reset.username)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE token_hash = ?")
            .bind(reset.now.0)
            .bind(keep)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        bind_change(sqlx::query(apply_change_sql!()), &reset.counters)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if let Some(record) = &reset.idempotency {
            sqlx::query(
                "INSERT INTO idempotency_records
                   (username, idem_key, fingerprint, answer, created_at)
                 VALUES (?, ?, ?, ?, ?)",
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
        write.done(Ok(true)).await
    }

    async fn update_password_hash(
        &self,
        username: &str,
        expected: &str,
        new_hash: &str,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
        )
        .bind(new_hash)
        .bind(username)
        .bind(expected);
        self.write_one(None, statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }
}
