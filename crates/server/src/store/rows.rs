//! Row decoding shared by the backends: one definition of each record's columns.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::{
    AddressCounters, ApiTokenRecord, AuditRecord, ClientRecord, Counters, IdempotencyRecord,
    LockoutRecord, PreviousPassword, SessionRecord, UserRecord,
};
use crate::crypto::{AttemptDigest, TokenDigest};
use crate::time::Timestamp;

/// The column types the schema uses, read by name.
pub(super) trait Columns {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! columns_via_try_get {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}

columns_via_try_get!(SqliteRow);
columns_via_try_get!(PgRow);

pub(super) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn ts(row: &impl Columns, col: &str) -> Result<Timestamp, sqlx::Error> {
    row.int(col).map(Timestamp)
}

fn digest(row: &impl Columns, col: &str) -> Result<TokenDigest, sqlx::Error> {
    TokenDigest::from_slice(&row.bytes(col)?).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: "token digest is not 32 bytes".into(),
    })
}

pub(super) fn user(row: &impl Columns) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        username: row.text("username")?,
        account: row.opt_text("account")?,
        password_hash: row.text("password_hash")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(super) fn lockout(row: &impl Columns) -> Result<LockoutRecord, sqlx::Error> {
    Ok(LockoutRecord {
        username: row.text("username")?,
        bucket: row.text("bucket")?,
        failures: count(row.int("failures")?),
        locked_until: row.opt_int("locked_until")?.map(Timestamp),
        updated_at: ts(row, "updated_at")?,
    })
}

pub(super) fn client(row: &impl Columns) -> Result<ClientRecord, sqlx::Error> {
    Ok(ClientRecord {
        client_id: row.text("client_id")?,
        secret_hash: row.text("secret_hash")?,
        scopes: row
            .text("scopes")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        created_at: ts(row, "created_at")?,
    })
}

pub(super) fn api_token(row: &impl Columns) -> Result<ApiTokenRecord, sqlx::Error> {
    Ok(ApiTokenRecord {
        token_digest: digest(row, "token_hash")?,
        client_id: row.text("client_id")?,
        scope: row.text("scope")?,
        seed: row.bytes("seed")?,
        issued_at: ts(row, "issued_at")?,
        expires_at: ts(row, "expires_at")?,
    })
}

pub(super) fn session(row: &impl Columns) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        token_digest: digest(row, "token_hash")?,
        id: row.text("id")?,
        username: row.text("username")?,
        client_id: row.text("client_id")?,
        created_at: ts(row, "created_at")?,
        last_used_at: ts(row, "last_used_at")?,
        account: row.opt_text("account")?,
        ip: row.opt_text("ip")?,
    })
}

pub(super) fn audit(row: &impl Columns) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        time: ts(row, "time")?,
        event: row.text("event")?,
        outcome: row.text("outcome")?,
        username: row.opt_text("username")?,
        client_id: row.opt_text("client_id")?,
        ip: row.opt_text("ip")?,
        detail: row.opt_text("detail")?,
        request_id: row.opt_text("request_id")?,
    })
}

pub(super) fn idempotency(row: &impl Columns) -> Result<IdempotencyRecord, sqlx::Error> {
    Ok(IdempotencyRecord {
        username: row.text("username")?,
        key: row.text("idem_key")?,
        fingerprint: row.bytes("fingerprint")?,
        answer: row.opt_bytes("answer")?,
        created_at: ts(row, "created_at")?,
    })
}

/// The counters `lock_counters` reads, from the columns both backends name alike; the
/// address's columns only when the key named one.
pub(super) fn counters(row: &impl Columns, with_address: bool) -> Result<Counters, sqlx::Error> {
    let address = if with_address {
        Some(AddressCounters {
            in_flight: count(row.int("ip_in_flight")?),
            ..address_failures(
                (row.int("ip_failures")?, row.opt_int("oldest_ip_failure")?),
                (row.int("ip_checks")?, row.opt_int("oldest_ip_check")?),
            )
        })
    } else {
        None
    };
    Ok(Counters {
        failures: count(row.opt_int("failures")?.unwrap_or(0)),
        locked_until: row.opt_int("locked_until")?.map(Timestamp),
        forgiven_before: Timestamp(row.opt_int("forgiven_before")?.unwrap_or(0)),
        in_flight: count(row.int("in_flight")?),
        address,
        remembered: Vec::new(),
        previous: match row.opt_bytes("previous_digest")? {
            Some(bytes) => Some(PreviousPassword {
                digest: attempt_digest(&bytes, "previous_digest")?,
                until: ts(row, "previous_until")?,
            }),
            None => None,
        },
    })
}

/// One remembered wrong password, from the `digest` column.
pub(super) fn remembered(row: &impl Columns) -> Result<AttemptDigest, sqlx::Error> {
    attempt_digest(&row.bytes("digest")?, "digest")
}

fn attempt_digest(bytes: &[u8], col: &str) -> Result<AttemptDigest, sqlx::Error> {
    AttemptDigest::from_slice(bytes).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: "attempt digest is not 16 bytes".into(),
    })
}

/// An address's new guesses and all its wrong passwords in its window, as counted by the
/// database, each with the oldest of them.
pub(super) fn address_failures(
    (failures, oldest_failure): (i64, Option<i64>),
    (checks, oldest_check): (i64, Option<i64>),
) -> AddressCounters {
    AddressCounters {
        failures: count(failures),
        oldest_failure: oldest_failure.map(Timestamp),
        checks: count(checks),
        oldest_check: oldest_check.map(Timestamp),
        in_flight: 0,
    }
}
