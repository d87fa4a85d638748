//! Sessions in PostgreSQL. A login holds the username's lock while it applies its success to
//! the counters, so that a failure recorded meanwhile reads the success's forgiveness. Checks
//! are served by the node's read cache (`cache.rs`), and last uses are written for many
//! sessions by one statement (`batch.rs`).

use async_trait::async_trait;

use super::*;
use crate::store::SessionStore;
use sqlx::Executor;

use super::audit::insert_audit;
use super::batch::Batcher;

#[async_trait]
impl SessionStore for PostgresStore {
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        insert_session(&self.pool, session).await
    }

    async fn start_session(&self, start: &SessionStart) -> StoreResult<u64> {
        let username = start.session.username.as_str();
        let mut tx = self.begin().await?;
        lock_username(&mut tx, username).await?;
        apply_change(&mut tx, &start.counters).await?;
        insert_session(&mut *tx, &start.session).await?;
        let revoked = match start.keep_sessions {
            Some(keep) => sqlx::query(
                "DELETE FROM sessions WHERE username = $1 AND token_hash NOT IN (
                    SELECT token_hash FROM sessions WHERE username = $1
                    ORDER BY created_at DESC, id DESC LIMIT $2)",
            )
            .bind(username)
            .bind(i64::from(keep))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected(),
            None => 0,
        };
        insert_audit(&mut *tx, &start.audit).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn find_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        self.cache.read(digest, || self.fetch_session(digest)).await
    }

    async fn reload_session(&self, digest: &TokenDigest) -> StoreResult<Option<SessionRecord>> {
        let found = self.fetch_session(digest).await?;
        // The cached copy learns the stored last use, so it is not read again at every check.
        if let Some((record, _)) = &found {
            self.cache.touched(digest, record.last_used_at);
        }
        Ok(found.map(|(record, _)| record))
    }

    async fn touch_session(&self, digest: &TokenDigest, now: Timestamp) -> StoreResult<bool> {
        match self.touches.submit((*digest, now)).await? {
            Some(last_used_at) => {
                self.cache.touched(digest, last_used_at);
                Ok(true)
            }
            None => {
                self.cache.forget(digest);
                Ok(false)
            }
        }
    }

    async fn delete_session(&self, digest: &TokenDigest) -> StoreResult<bool> {
        self.cache.forget(digest);
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(digest.as_bytes())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }

    async fn purge_sessions_idle_since(&self, cutoff: Timestamp) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE last_used_at < $1")
            .bind(cutoff.0)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn count_sessions_used_since(&self, since: Timestamp) -> StoreResult<u64> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions WHERE last_used_at >= $1")
            .bind(since.0)
            .fetch_one(&self.pool)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(map_err)
    }

    async fn list_sessions(&self, username: Option<&str>) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query(
            "SELECT s.*, u.account FROM sessions s JOIN users u ON u.username = s.username
             WHERE ($1::text IS NULL OR s.username = $1)
             ORDER BY s.created_at, s.id",
        )
        .bind(username)
        .try_map(|r: PgRow| rows::session(&r))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_user_sessions(&self, username: &str) -> StoreResult<u64> {
        sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(map_err)
    }

    async fn delete_session_by_id(&self, id: &str) -> StoreResult<bool> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(map_err)
    }
}

impl PostgresStore {
    /// The session with its slot's revocation epoch, read in one snapshot (`cache.rs`).
    async fn fetch_session(
        &self,
        digest: &TokenDigest,
    ) -> StoreResult<Option<(SessionRecord, i64)>> {
        sqlx::query(concat!(
            "SELECT s.*, u.account, ",
            epoch_of_slot!(),
            " FROM sessions s JOIN users u ON u.username = s.username WHERE s.token_hash = $1"
        ))
        .bind(digest.as_bytes())
        .try_map(|r: PgRow| Ok((rows::session(&r)?, r.try_get("epoch")?)))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }
}

/// Last uses waiting for one statement: each caller learns whether its session still exists,
/// and its last use as stored afterwards.
pub(super) type Touches = Batcher<(TokenDigest, Timestamp), Option<Timestamp>>;

pub(super) fn touches(pool: PgPool) -> Arc<Touches> {
    Batcher::new(move |items| touch_all(pool.clone(), items))
}

/// One `UPDATE` for every queued touch. A touch is awaited like any write (the check answers
/// after it is durable); batching changes only how many statements carry them.
async fn touch_all(
    pool: PgPool,
    items: Vec<(TokenDigest, Timestamp)>,
) -> StoreResult<Vec<Option<Timestamp>>> {
    // One entry per session (an UPDATE changes a row once), the latest use; in digest order,
    // so that two nodes' batches lock shared rows in the same order.
    let mut latest = std::collections::BTreeMap::new();
    for (digest, at) in &items {
        let entry = latest.entry(digest.0).or_insert(at.0);
        *entry = (*entry).max(at.0);
    }
    let hashes: Vec<&[u8]> = latest.keys().map(|k| k.as_slice()).collect();
    let times: Vec<i64> = latest.values().copied().collect();
    let statement = || {
        sqlx::query_as::<_, (Vec<u8>, i64)>(
            "UPDATE sessions AS s SET last_used_at = GREATEST(s.last_used_at, t.at)
             FROM unnest($1::bytea[], $2::int8[]) AS t(h, at)
             WHERE s.token_hash = t.h
             RETURNING s.token_hash, s.last_used_at",
        )
        .bind(&hashes)
        .bind(&times)
        .fetch_all(&pool)
    };
    // Revocations deleting several rows lock them in their own order; should one deadlock
    // with this batch, PostgreSQL cancels one of the two, and this side tries once more.
    let stored = match statement().await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01") => statement().await,
        other => other,
    }
    .map_err(map_err)?;
    let stored: std::collections::HashMap<Vec<u8>, i64> = stored.into_iter().collect();
    Ok(items
        .iter()
        .map(|(digest, _)| stored.get(digest.as_bytes()).copied().map(Timestamp))
        .collect())
}

pub(super) async fn insert_session<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    session: &SessionRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at, ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(session.token_digest.as_bytes())
    .bind(&session.id)
    .bind(&session.username)
    .bind(&session.client_id)
    .bind(session.created_at.0)
    .bind(session.last_used_at.0)
    .bind(&session.ip)
    .execute(executor)
    .await
    .map(drop)
    .map_err(map_err)
}
