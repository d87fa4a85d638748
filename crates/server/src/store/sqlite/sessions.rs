//! Sessions in SQLite: checks are served by the read cache, and a login is one batch (one
//! round trip to the connection's thread) from `BEGIN IMMEDIATE` to `COMMIT`.

use async_trait::async_trait;

use super::*;
use crate::store::SessionStore;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let statement = bind_session(sqlx::query(insert_session_sql!()), session);
        self.write_one(None, statement).await.map(drop)
    }

    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64> {
        let (session, username) = (&start.session, start.session.username.as_str());
        // Only trimming can revoke a cached session.
        let mut write = self
            .write(start.keep_sessions.map(|_| self.cache.invalidate_all()))
            .await?;
        macro_rules! start_sql {
            ($($trim:expr)?) => {
                concat!(
                    "BEGIN IMMEDIATE;",
                    apply_change_sql!(),
                    insert_session_sql!(),
                    insert_audit_sql!(),
                    $($trim,)?
                    "COMMIT;"
                )
            };
        }
        // The trim returns a row per session it revokes.
        let sql = match start.keep_sessions {
            None => start_sql!(),
            Some(_) => start_sql!(
                "DELETE FROM sessions WHERE username = ? AND token_hash NOT IN (
                    SELECT token_hash FROM sessions WHERE username = ?
                    ORDER BY created_at DESC, id DESC LIMIT ?)
                 RETURNING 1;"
            ),
        };
        let batch = bind_change(sqlx::query(sql), &start.counters);
        let mut batch = bind_audit(bind_session(batch, session), &start.audit);
        if let Some(keep) = start.keep_sessions {
            batch = batch.bind(username).bind(username).bind(i64::from(keep));
        }
        let revoked = write
            .transaction(batch)
            .await
            .map(|rows| u64::try_from(rows.len()).unwrap_or(u64::MAX));
        write.done(revoked).await
    }

    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        let fetch = || {
            sqlx::query(
                "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
                 WHERE s.token_hash = ?",
            )
            .bind(digest.as_bytes())
            .try_map(|r: SqliteRow| rows::session(&r))
            .fetch_optional(&self.readers)
        };
        self.read_through(self.cache.session(digest), fetch, ReadCache::fill_session)
            .await
    }

    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool> {
        // A cached last use older than the stored one could make a live session look idle.
        let statement = sqlx::query(
            "UPDATE sessions SET last_used_at = MAX(last_used_at, ?) WHERE token_hash = ?",
        )
        .bind(now.0)
        .bind(digest.as_bytes());
        self.write_one(Some(self.cache.invalidate(digest)), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool> {
        let statement =
            sqlx::query("DELETE FROM sessions WHERE token_hash = ?").bind(digest.as_bytes());
        self.write_one(Some(self.cache.invalidate(digest)), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }

    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64> {
        let statement = sqlx::query("DELETE FROM sessions WHERE last_used_at < ?").bind(cutoff.0);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected())
    }

    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE last_used_at >= ?")
            .bind(since.0)
            .fetch_one(&self.readers)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(map_err)
    }

    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
             WHERE (?1 IS NULL OR s.username = ?1)
             ORDER BY s.created_at, s.id",
        )
        .bind(username)
        .try_map(|r: SqliteRow| rows::session(&r))
        .fetch_all(&self.readers)
        .await
        .map_err(map_err)
    }

    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64> {
        let statement = sqlx::query("DELETE FROM sessions WHERE username = ?").bind(username);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected())
    }

    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool> {
        let statement = sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id);
        self.write_one(Some(self.cache.invalidate_all()), statement)
            .await
            .map(|r| r.rows_affected() > 0)
    }
}
