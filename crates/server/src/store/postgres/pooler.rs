//! Nodes behind a connection pooler: pgbouncer in **session** pooling mode.
//!
//! pgbouncer 1.18 (Debian 12's) works with this store in session mode only, and only once the
//! node is told it is there, with `pgbouncer=session` in the database URL:
//!
//! - **Startup parameters.** sqlx sends `extra_float_digits`, and the store sends
//!   `options=-c synchronous_commit=on`; pgbouncer refuses a connection with either ("unsupported
//!   startup parameter") unless its `ignore_startup_parameters` lists them, and then it drops
//!   `synchronous_commit=on` without a word. With the switch the node sends neither and sets
//!   `synchronous_commit = on` with a `SET` on every new connection, which session mode keeps for
//!   as long as the connection lives (pgbouncer's `DISCARD ALL` clears it when it ends).
//! - **Transaction (and statement) pooling cannot work** with sqlx 0.8: every statement is
//!   parsed under a connection-local name (`sqlx_s_1`, ...) in one protocol round and executed in
//!   the next, and pgbouncer < 1.21 may hand each round to another server connection: "prepared
//!   statement sqlx_s_1 does not exist", or "already exists" when two clients' names meet on one
//!   server connection. `statement_cache_capacity(0)` does not help: it stops the caching, not the
//!   naming (sqlx-postgres 0.8.6, `connection/executor.rs`, `prepare`), and the names are then
//!   never closed. Unnamed statements would still be parsed and bound in two rounds, which can
//!   land on two server connections. The migrations also hold a session-level advisory lock.
//!   So [`refuse_transaction_pooling`] stops a node that sees it, in one line.
//!
//! Why a switch and not always: without a pooler, the startup parameter is the one way to set
//! `synchronous_commit` that costs no round trip, and every direct deployment keeps it.

use std::future::Future;
use std::pin::Pin;

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{Connection, Executor, Row};

use super::map_err;
use crate::store::{StoreError, StoreResult};

/// The database URL's query parameter that names the pooler in front of PostgreSQL.
pub(super) const PARAMETER: &str = "pgbouncer";

/// What sits between the node and PostgreSQL, as the database URL says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pooler {
    /// Nothing, or nothing the node was told of.
    Direct,
    /// pgbouncer with `pool_mode = session`: `pgbouncer=session`.
    PgbouncerSession,
}

/// Takes `pgbouncer=...` out of the URL (sqlx would only warn about a parameter it does not
/// know) and says what it asked for; the rest of the URL is left byte for byte.
pub(super) fn split_url(url: &str) -> StoreResult<(String, Pooler)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Pooler::Direct));
    };
    let mut pooler = Pooler::Direct;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != PARAMETER {
            kept.push(pair);
            continue;
        }
        pooler = match value {
            "session" => Pooler::PgbouncerSession,
            "transaction" | "statement" => {
                return Err(StoreError::Config(format!(
                    "{PARAMETER}={value} is not supported: sqlx's named prepared statements and \
                     the migrations' session lock need pgbouncer's pool_mode = session; use \
                     {PARAMETER}=session"
                )));
            }
            other => {
                return Err(StoreError::Config(format!(
                    "{PARAMETER}={other} in the database URL: the one value is \
                     {PARAMETER}=session (pgbouncer with pool_mode = session)"
                )));
            }
        };
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, pooler))
}

/// The connection options the pooler accepts: behind pgbouncer, only the startup parameters it
/// tracks (`synchronous_commit` is then set by [`after_connect`] and [`prepare`]).
pub(super) fn connect_options(options: PgConnectOptions, pooler: Pooler) -> PgConnectOptions {
    match pooler {
        Pooler::Direct => options.options([("synchronous_commit", "on")]),
        Pooler::PgbouncerSession => options.extra_float_digits(None),
    }
}

/// Behind pgbouncer, the `SET` on each new connection of a pool.
pub(super) fn after_connect(options: PgPoolOptions, pooler: Pooler) -> PgPoolOptions {
    match pooler {
        Pooler::Direct => options,
        Pooler::PgbouncerSession => options.after_connect(set_synchronous_commit),
    }
}

/// A function, not a closure: the hook must take a connection of any lifetime. A plain `&str`
/// goes out with the simple protocol: no prepared statement.
fn set_synchronous_commit(
    conn: &mut PgConnection,
    _: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + '_>> {
    Box::pin(async move { conn.execute(SET_SYNCHRONOUS_COMMIT).await.map(drop) })
}

const SET_SYNCHRONOUS_COMMIT: &str = "SET synchronous_commit = on";

/// Readies the first connection, on which the migrations run, as the pools ready theirs.
pub(super) async fn prepare(conn: &mut PgConnection, pooler: Pooler) -> StoreResult<()> {
    if pooler == Pooler::PgbouncerSession {
        conn.execute(SET_SYNCHRONOUS_COMMIT)
            .await
            .map_err(map_err)?;
    }
    Ok(())
}

/// The hint for a pgbouncer that refused the node's startup parameters.
pub(super) fn hint(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(db) if db.message().contains("unsupported startup parameter") => {
            " (pgbouncer in front? add ?pgbouncer=session to the database URL, with pool_mode = session)"
        }
        _ => "",
    }
}

/// Refuses a transaction (or statement) pooler, in one line, before the migrations run on it.
///
/// Two connections open at once never share a PostgreSQL backend, directly or through session
/// pooling; through transaction pooling the second is handed the server connection the first
/// just released (pgbouncer reuses the most recent one first). So equal backend ids prove
/// transaction pooling; different ones do not prove its absence (another client can take that
/// server connection in between, or `server_round_robin` be on): a check, not a guarantee. The
/// queries are plain `&str`s, sent with the simple protocol (no prepared statement), which a
/// transaction pooler carries intact.
pub(super) async fn refuse_transaction_pooling(
    first: &mut PgConnection,
    options: &PgConnectOptions,
) -> StoreResult<()> {
    let mut second = PgConnection::connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}{}", hint(&e))))?;
    let ours = backend_pid(first).await?;
    let theirs = backend_pid(&mut second).await?;
    let _ = second.close().await;
    if ours == theirs {
        return Err(StoreError::Config(
            "two connections got one PostgreSQL backend: a pooler in transaction or statement \
             mode is in front (pgbouncer pool_mode = transaction); this store needs pool_mode = \
             session (and ?pgbouncer=session in the URL) or PostgreSQL directly"
                .into(),
        ));
    }
    Ok(())
}

async fn backend_pid(conn: &mut PgConnection) -> StoreResult<i32> {
    conn.fetch_one("SELECT pg_backend_pid()")
        .await
        .and_then(|row| row.try_get::<i32, _>(0))
        .map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_taken_out_of_the_url_and_the_rest_left_as_it_was() {
        let cases = [
            ("postgres://u@h/db", "postgres://u@h/db", Pooler::Direct),
            (
                "postgres://u@h/db?pgbouncer=session",
                "postgres://u@h/db",
                Pooler::PgbouncerSession,
            ),
            (
                "postgres://u@h/db?sslmode=require&pgbouncer=session&application_name=a%20b",
                "postgres://u@h/db?sslmode=require&application_name=a%20b",
                Pooler::PgbouncerSession,
            ),
            (
                "postgres://u@h/db?sslmode=require",
                "postgres://u@h/db?sslmode=require",
                Pooler::Direct,
            ),
        ];
        for (url, rest, pooler) in cases {
            assert_eq!(split_url(url).unwrap(), (rest.to_owned(), pooler), "{url}");
        }
    }

    #[test]
    fn transaction_pooling_and_unknown_values_are_refused_in_one_line() {
        for value in ["transaction", "statement", "yes", ""] {
            let url = format!("postgres://u@h/db?pgbouncer={value}");
            let Err(StoreError::Config(message)) = split_url(&url) else {
                panic!("{url} was accepted");
            };
            assert!(!message.contains('\n'), "{message}");
            assert!(message.contains("pgbouncer=session"), "{message}");
        }
    }
}
