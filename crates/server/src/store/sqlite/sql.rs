//! SQL shared by the SQLite role files: statements that run alone and inside batches, their
//! binders, and how sqlx's errors map to the store's.
//!
//! A batch (several statements in one query) costs one round trip to the connection's worker
//! thread instead of one per statement; its `?` parameters are bound in order across the
//! statements, so each statement here comes with the binder that fills its `?`s.

use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;

use crate::crypto::AttemptDigest;
use crate::store::{AuditRecord, CountersChange, SessionRecord, StoreError};

pub(super) type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

macro_rules! insert_session_sql {
    () => {
        "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at, ip)
         VALUES (?, ?, ?, ?, ?, ?, ?);"
    };
}

macro_rules! insert_audit_sql {
    () => {
        "INSERT INTO audit_log (time, event, outcome, username, client_id, ip, detail, request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?);"
    };
}

/// Writes a [`CountersChange`]: each statement does nothing when its part is unset (a `NULL`
/// id, address or digest, or a false flag), so one text serves every change and fits in any
/// batch.
macro_rules! apply_change_sql {
    () => {
        "DELETE FROM login_attempts WHERE attempt_id = ?;
         INSERT INTO login_attempts (attempt_id, username, expires_at, ip, bucket)
           SELECT ?, ?, ?, ?, ? WHERE ? IS NOT NULL;
         INSERT INTO ip_failure_log (ip, at, counted) SELECT ?, ?, ? WHERE ? IS NOT NULL;
         INSERT INTO login_failures
             (username, bucket, failures, locked_until, updated_at, forgiven_before)
           SELECT ?, ?, ?, ?, ?, ? WHERE ?
           ON CONFLICT (username, bucket) DO UPDATE
             SET failures = CASE WHEN ? THEN excluded.failures ELSE failures END,
                 locked_until = CASE WHEN ? THEN excluded.locked_until ELSE locked_until END,
                 updated_at = excluded.updated_at,
                 forgiven_before = MAX(forgiven_before, excluded.forgiven_before);
         DELETE FROM failed_passwords WHERE username = ? AND bucket = ? AND ?;
         INSERT INTO failed_passwords (username, bucket, digest, at)
           SELECT ?, ?, ?, ? WHERE ? IS NOT NULL
           ON CONFLICT (username, bucket, digest) DO UPDATE SET at = excluded.at;
         INSERT INTO familiar_sources (username, network, last_success_at)
           SELECT ?, ?, ? WHERE ? IS NOT NULL
           ON CONFLICT (username, network) DO UPDATE
             SET last_success_at = MAX(last_success_at, excluded.last_success_at);"
    };
}

/// Rows of `login_failures` that hold something against the username.
macro_rules! counting_sql {
    () => {
        "(failures > 0 OR locked_until IS NOT NULL)"
    };
}

pub(super) fn bind_session<'q>(
    query: SqliteQuery<'q>,
    session: &'q SessionRecord,
) -> SqliteQuery<'q> {
    query
        .bind(session.token_digest.as_bytes())
        .bind(&session.id)
        .bind(&session.username)
        .bind(&session.client_id)
        .bind(session.created_at.0)
        .bind(session.last_used_at.0)
        .bind(&session.ip)
}

pub(super) fn bind_audit<'q>(query: SqliteQuery<'q>, record: &'q AuditRecord) -> SqliteQuery<'q> {
    query
        .bind(record.time.0)
        .bind(&record.event)
        .bind(&record.outcome)
        .bind(&record.username)
        .bind(&record.client_id)
        .bind(&record.ip)
        .bind(&record.detail)
        .bind(&record.request_id)
}

/// Fills the `?`s of [`apply_change_sql`].
pub(super) fn bind_change<'q>(
    query: SqliteQuery<'q>,
    change: &'q CountersChange,
) -> SqliteQuery<'q> {
    let reserve = change.reserve.as_ref();
    let reserved = reserve.map(|r| r.attempt_id.as_str());
    let count = change.count;
    let remember = change.remember.as_ref().map(AttemptDigest::as_bytes);
    let address = change.address_failure.as_ref();
    let (username, bucket) = (&change.username, &change.bucket);
    query
        .bind(change.release.as_deref())
        .bind(reserved)
        .bind(username)
        .bind(reserve.map(|r| r.expires_at.0))
        .bind(reserve.and_then(|r| r.ip.as_deref()))
        .bind(bucket)
        .bind(reserved)
        .bind(address.map(|a| a.ip.as_str()))
        .bind(change.at.0)
        .bind(address.is_some_and(|a| a.counts))
        .bind(address.map(|a| a.ip.as_str()))
        .bind(username)
        .bind(bucket)
        .bind(count.map_or(0, |c| i64::from(c.failures)))
        .bind(count.and_then(|c| c.locked_until).map(|t| t.0))
        .bind(change.at.0)
        .bind(change.forgive_before.map_or(0, |t| t.0))
        .bind(change.touches_counter())
        .bind(count.is_some())
        .bind(count.is_some())
        .bind(username)
        .bind(bucket)
        .bind(change.forget_remembered)
        .bind(username)
        .bind(bucket)
        .bind(remember)
        .bind(change.at.0)
        .bind(remember)
        .bind(username)
        .bind(change.familiar.as_deref())
        .bind(change.at.0)
        .bind(change.familiar.as_deref())
}

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db)
            if matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517")) =>
        {
            // SQLITE_BUSY / SQLITE_LOCKED and their extended codes: another writer holds on.
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}
