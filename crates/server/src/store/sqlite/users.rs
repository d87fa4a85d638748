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
        for table in ["login_failures", "failed_passwords"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE username = ?"))
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        write.done(Ok(removed > 0)).await
    }

    /// Two round trips to the writer's thread: the compare-and-swap, whose result decides,
    /// then every other statement of the reset with its commit.
    async fn reset_password(&self, reset: &PasswordReset) -> StoreResult<bool> {
        let mut write = self.write(Some(self.cache.invalidate_all())).await?;
        let swap = sqlx::query(
            "BEGIN IMMEDIATE;
             UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?;
             SELECT changes();",
        )
        .bind(&reset.new_hash)
        .bind(&reset.username)
        .bind(&reset.expected_hash);
        let rows = write.open_batch(swap).await?;
        let swapped = rows
            .first()
            .map_or(Ok(0), |row| row.try_get::<i64, _>(0))
            .map_err(map_err);
        if !matches!(swapped, Ok(n) if n > 0) {
            // Not left to the next write: SQLite's write lock would be held until then.
            write.rollback_batch().await;
            return write.done(swapped.map(|_| false)).await;
        }
        let keep = reset.keep_session.as_bytes();
        let record = reset.idempotency.as_ref();
        let rest = sqlx::query(concat!(
            "DELETE FROM sessions WHERE username = ? AND token_hash <> ?;
             UPDATE sessions SET last_used_at = ? WHERE token_hash = ?;",
            apply_change_sql!(),
            "DELETE FROM previous_passwords WHERE username = ?;
             INSERT INTO previous_passwords (username, digest, until)
               SELECT ?, ?, ? WHERE ? IS NOT NULL;
             INSERT INTO idempotency_records (username, idem_key, fingerprint, answer, created_at)
               SELECT ?, ?, ?, ?, ? WHERE ? IS NOT NULL;
             COMMIT;"
        ))
        .bind(&reset.username)
        .bind(keep)
        .bind(reset.now.0)
        .bind(keep);
        let previous = reset.previous.as_ref();
        let previous_digest = previous.map(|p| p.digest.as_bytes());
        let rest = bind_change(rest, &reset.counters)
            .bind(&reset.username)
            .bind(&reset.username)
            .bind(previous_digest)
            .bind(previous.map(|p| p.until.0))
            .bind(previous_digest)
            .bind(record.map(|r| r.username.as_str()))
            .bind(record.map(|r| r.key.as_str()))
            .bind(record.map(|r| r.fingerprint.as_slice()))
            .bind(record.and_then(|r| r.answer.as_deref()))
            .bind(record.map(|r| r.created_at.0))
            .bind(record.map(|r| r.key.as_str()));
        let committed = write.commit_batch(rest).await;
        write.done(committed.map(|()| true)).await
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
