//! The benchmarks' data: one OAuth client and users with the argon2 parameters the server will
//! use (any backend), and sessions written in bulk (a million logins would take hours of
//! argon2): on SQLite or PostgreSQL, with the million on SQLite only.

use std::time::Duration;

use anyhow::{Context, ensure};

use m2m_session_server::crypto::{Argon2Settings, OsRandomness, SessionToken};
use m2m_session_server::domain::{NewClient, NewUser, Policy};
use m2m_session_server::open_admin;
use m2m_session_server::time::Timestamp;
use secrecy::SecretString;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

pub const CLIENT_ID: &str = "bench";
pub const SECRET: &str = "bench-secret-0123456789";
pub const PASSWORD: &str = "bench password 0123456789";

pub fn username(i: usize) -> String {
    format!("bench-user-{i}")
}

/// Creates the client and `users` users through the admin façade, hashing as the server will.
pub async fn users(database: &str, users: usize, argon2: Argon2Settings) -> anyhow::Result<()> {
    let admin = open_admin(database, argon2, true).await?;
    let now = Timestamp::now();
    admin
        .add_client(
            NewClient {
                client_id: CLIENT_ID.into(),
                secret: Some(SecretString::from(SECRET)),
                scopes: vec![],
            },
            now,
        )
        .await?;
    for i in 0..users {
        admin
            .add_user(
                NewUser {
                    username: username(i),
                    account: Some(format!("account-{}", i % 7)),
                    password: Some(SecretString::from(PASSWORD)),
                },
                now,
            )
            .await?;
    }
    Ok(())
}

/// A connection to the store the server will use: a SQLite path or a PostgreSQL URL.
enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// `$body` on either backend's connection, bound to `$c` (`$n` parameters suit both).
macro_rules! on_either {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            Conn::Sqlite($c) => $body,
            Conn::Postgres($c) => $body,
        }
    };
}

impl Conn {
    async fn open(database: &str) -> anyhow::Result<Self> {
        Ok(if is_postgres(database) {
            Self::Postgres(PgConnection::connect(database).await?)
        } else {
            let options = SqliteConnectOptions::new()
                .filename(database)
                .busy_timeout(Duration::from_secs(10));
            Self::Sqlite(SqliteConnection::connect_with(&options).await?)
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        on_either!(self, c => c.close().await?);
        Ok(())
    }
}

/// Whether `database` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// Inserts `known` sessions whose tokens are returned, then (on SQLite only) `filler` more
/// with random digests (indistinguishable to the store), all live and spread over the users,
/// in one transaction.
pub async fn sessions(
    database: &str,
    users: usize,
    known: usize,
    filler: usize,
) -> anyhow::Result<Vec<String>> {
    let mut conn = Conn::open(database).await?;
    ensure!(
        filler == 0 || matches!(conn, Conn::Sqlite(_)),
        "filler sessions are seeded on SQLite only"
    );
    let now = Timestamp::now().0;
    let mut tokens = Vec::with_capacity(known);
    on_either!(&mut conn, c => {
        let mut tx = c.begin().await?;
        for i in 0..known {
            let token = SessionToken::generate(&OsRandomness);
            // An id unrelated to the token, as the server's: another token's digest.
            let id = SessionToken::generate(&OsRandomness).digest().as_bytes()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            sqlx::query(
                "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token.digest().as_bytes().to_vec())
            .bind(id)
            .bind(username(i % users))
            .bind(CLIENT_ID)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tokens.push(token.expose().to_owned());
        }
        if filler > 0 {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)
                 INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at)
                 SELECT randomblob(32), lower(hex(randomblob(8))), 'bench-user-' || (i % $2), $3, $4, $5
                 FROM n",
            )
            .bind(i64::try_from(filler)?)
            .bind(i64::try_from(users)?)
            .bind(CLIENT_ID)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    });
    conn.close().await?;
    Ok(tokens)
}

/// Spreads the last uses of the sessions of `tokens` evenly over the past touch granularity
/// (the server's default, a minute), as a steady population leaves them: from now on one comes
/// due for its last-use write every granularity ÷ `tokens.len()` (60 ms for 1,000), through
/// the whole measurement. Left as seeded, they came due all at once, in a storm of writes in
/// whichever measurement ran a minute later, and in the others not at all.
///
/// Written from this process, so the server sees another process's commit: on SQLite its read
/// cache starts over, as after an admin command; on PostgreSQL an update is no revocation, so
/// a session the server has cached keeps the last use it read or wrote itself, which was
/// spread the first time (its cache is empty before the first checks).
pub async fn spread_last_uses(database: &str, tokens: &[String]) -> anyhow::Result<()> {
    let mut conn = Conn::open(database).await?;
    let now = Timestamp::now().0;
    let granularity = i64::try_from(Policy::default().touch_granularity().as_millis())?;
    let count = i64::try_from(tokens.len().max(1))?;
    on_either!(&mut conn, c => {
        let mut tx = c.begin().await?;
        for (i, token) in (0..).zip(tokens) {
            let digest = SessionToken::parse(token)?.digest();
            sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now - granularity + (i + 1) * granularity / count)
                .bind(digest.as_bytes())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    conn.close().await?;
    Ok(())
}

/// Live sessions in the store, as the server will see them.
pub async fn count_sessions(database: &str) -> anyhow::Result<i64> {
    let mut conn = Conn::open(database).await?;
    let n = on_either!(&mut conn, c => {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&mut *c)
            .await?
    });
    conn.close().await?;
    Ok(n)
}

/// An API token for the benchmark's client, from the server at `base`.
pub async fn api_token(base: &str) -> anyhow::Result<String> {
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/ts/v1/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    Ok(token["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}
