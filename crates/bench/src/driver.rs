//! `driver`: is sqlx's SQLite driver what limits logins? A login's database work, run on a real
//! file by two drivers in turn (A-B-B-A): sqlx, as the server uses it, and `rusqlite` on a
//! dedicated thread, the alternative the issue names.
//!
//! Both sides do the same thing in the same number of hand-offs to a connection's thread, so
//! that only the driver differs. Per login: a user read on a reader; then, holding the one
//! writer (a tokio mutex, as the server's `Writer`), the reservation in two batches (`BEGIN
//! IMMEDIATE` and the counters' read; the decision in Rust; the attempt's insert and `COMMIT`)
//! and the `PRAGMA data_version` the server's `Write::done` reads after every write; then, on
//! the writer again, the start batch (the attempt deleted, a session and an audit row inserted,
//! `COMMIT`) and its `data_version`. Six hand-offs, four transactions' worth of statements.
//! There is no argon2 hash: what is measured is what a login costs besides it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use m2m_session_server::store::StoreSettings;
use rusqlite::{OpenFlags, params};
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{Mutex, oneshot};

use crate::load::{self, LoadResult};
use crate::perf::served::cpu_seconds;
use crate::perf::{WARMUP, abba};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measuring time of each driver (split in two halves, A-B-B-A)
    #[arg(long, default_value = "5s")]
    duration: humantime::Duration,
    /// Concurrent logins (default: two per core on a 2-core machine)
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Where to write the machine-readable result
    #[arg(long, default_value = "target/bench-driver.json")]
    json: PathBuf,
}

/// Users (and their counters' rows) the logins are spread over.
const USERS: u64 = 128;

const SCHEMA: &str = "
    CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
                        account TEXT NOT NULL);
    CREATE TABLE counters (username TEXT PRIMARY KEY REFERENCES users (username),
                           failures INTEGER NOT NULL, locked_until INTEGER);
    CREATE TABLE login_attempts (attempt_id TEXT PRIMARY KEY, username TEXT NOT NULL,
                                 expires_at INTEGER NOT NULL, ip TEXT);
    CREATE TABLE sessions (token_hash BLOB PRIMARY KEY, id TEXT NOT NULL,
                           username TEXT NOT NULL REFERENCES users (username),
                           client_id TEXT NOT NULL, created_at INTEGER NOT NULL,
                           last_used_at INTEGER NOT NULL, ip TEXT);
    CREATE INDEX sessions_last_used ON sessions (last_used_at);
    CREATE TABLE audit_log (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, event TEXT NOT NULL,
                            username TEXT, ip TEXT, detail TEXT);
    WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < 128)
    INSERT INTO users SELECT printf('user%03d', i), '$argon2id$stand-in', '{}' FROM n;
    INSERT INTO counters SELECT username, 0, NULL FROM users;";

// Each statement alone (rusqlite prepares them one by one) and in sqlx's batches (`concat!`).
macro_rules! select_user {
    () => {
        "SELECT username, password_hash, account FROM users WHERE username = ?;"
    };
}
macro_rules! select_counter {
    () => {
        "SELECT failures, locked_until FROM counters WHERE username = ?;"
    };
}
macro_rules! insert_attempt {
    () => {
        "INSERT INTO login_attempts (attempt_id, username, expires_at, ip) VALUES (?, ?, ?, ?);"
    };
}
macro_rules! delete_attempt {
    () => {
        "DELETE FROM login_attempts WHERE attempt_id = ?;"
    };
}
macro_rules! insert_session {
    () => {
        "INSERT INTO sessions (token_hash, id, username, client_id, created_at, last_used_at, ip)
         VALUES (?, ?, ?, 'bench', ?, ?, '127.0.0.1');"
    };
}
macro_rules! insert_audit {
    () => {
        "INSERT INTO audit_log (time, event, username, ip, detail)
         VALUES (?, 'login', ?, '127.0.0.1', ?);"
    };
}

/// One login's values; `n` makes its attempt and session unique across both drivers' runs.
struct Login {
    username: String,
    attempt_id: String,
    session_id: String,
    token_hash: [u8; 32],
    now: i64,
}

impl Login {
    fn new(n: u64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self {
            username: format!("user{:03}", n % USERS),
            attempt_id: format!("attempt-{n}"),
            session_id: format!("session-{n}"),
            token_hash: token_hash(n),
            now,
        }
    }
}

/// A random-looking 32-byte key (splitmix64), as a token digest is: sequential keys would
/// always append to the end of the primary key's B-tree, which real logins never do.
fn token_hash(n: u64) -> [u8; 32] {
    let mut out = [0; 32];
    let mut x = n;
    for chunk in out.chunks_exact_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// The counters allow the login (no lockout here: every row says 0 failures).
fn decide(failures: i64) -> anyhow::Result<()> {
    anyhow::ensure!(failures < 5, "locked out");
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Driver {
    Sqlx,
    Rusqlite,
}

enum Store {
    Sqlx(SqlxStore),
    Rusqlite(RusqliteStore),
}

impl Store {
    async fn open(driver: Driver, path: &Path) -> anyhow::Result<Self> {
        Ok(match driver {
            Driver::Sqlx => Self::Sqlx(SqlxStore::open(path).await?),
            Driver::Rusqlite => Self::Rusqlite(RusqliteStore::open(path)?),
        })
    }

    async fn login(&self, n: u64) -> anyhow::Result<()> {
        let login = Arc::new(Login::new(n));
        match self {
            Self::Sqlx(store) => store.login(&login).await,
            Self::Rusqlite(store) => store.login(login).await,
        }
    }

    /// Closes every connection, so that the next run starts with a checkpointed file.
    async fn close(self) -> anyhow::Result<()> {
        match self {
            Self::Sqlx(store) => {
                store.readers.close().await;
                store.writer.into_inner().close().await?;
            }
            Self::Rusqlite(store) => {
                store.reader.close();
                store.writer.into_inner().close();
            }
        }
        Ok(())
    }
}

/// The server's connection settings (`store/sqlite/mod.rs`).
fn sqlx_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(StoreSettings::default().acquire_timeout)
        .foreign_keys(true)
}

/// The server's shape: one writer connection behind a mutex, a read-only pool of its default
/// size without a ping before each use.
struct SqlxStore {
    writer: Mutex<SqliteConnection>,
    readers: SqlitePool,
}

impl SqlxStore {
    async fn open(path: &Path) -> anyhow::Result<Self> {
        let writer = SqliteConnection::connect_with(&sqlx_options(path)).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(StoreSettings::default().max_connections)
            .test_before_acquire(false)
            .connect_with(sqlx_options(path).read_only(true))
            .await?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
        })
    }

    async fn login(&self, l: &Login) -> anyhow::Result<()> {
        sqlx::query(select_user!())
            .bind(&l.username)
            .fetch_optional(&self.readers)
            .await?
            .context("no such user")?;
        let mut conn = self.writer.lock().await;
        let reserved = async {
            let rows = sqlx::query(concat!("BEGIN IMMEDIATE;", select_counter!()))
                .bind(&l.username)
                .fetch_all(&mut *conn)
                .await?;
            decide(rows.first().context("no counters")?.try_get(0)?)?;
            sqlx::query(concat!(insert_attempt!(), "COMMIT;"))
                .bind(&l.attempt_id)
                .bind(&l.username)
                .bind(l.now + 60_000)
                .bind("127.0.0.1")
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        .await;
        Self::done(&mut conn, reserved).await?;
        drop(conn);
        let mut conn = self.writer.lock().await;
        let started = sqlx::query(concat!(
            "BEGIN IMMEDIATE;",
            delete_attempt!(),
            insert_session!(),
            insert_audit!(),
            "COMMIT;"
        ))
        .bind(&l.attempt_id)
        .bind(&l.token_hash[..])
        .bind(&l.session_id)
        .bind(&l.username)
        .bind(l.now)
        .bind(l.now)
        .bind(l.now)
        .bind(&l.username)
        .bind(&l.session_id)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(anyhow::Error::from);
        Self::done(&mut conn, started).await
    }

    /// Ends a write as the server's `Write::done` does (a failed one is rolled back instead).
    async fn done(conn: &mut SqliteConnection, written: anyhow::Result<()>) -> anyhow::Result<()> {
        if written.is_err() {
            sqlx::query("ROLLBACK").execute(&mut *conn).await.ok();
            return written;
        }
        sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(conn)
            .await?;
        Ok(())
    }
}

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// A `rusqlite` connection owned by a thread of its own, which runs the closures sent to it in
/// order; the caller awaits each answer on a oneshot.
struct Worker {
    jobs: mpsc::Sender<Job>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn open(path: &Path, flags: OpenFlags) -> anyhow::Result<Self> {
        let mut conn = rusqlite::Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(StoreSettings::default().acquire_timeout)?;
        // The file is in WAL mode already (set by sqlx when the schema was made, and kept).
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            for job in queue {
                job(&mut conn);
            }
        });
        Ok(Self { jobs, thread })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| drop(answer.send(f(conn)))))
            .map_err(|_| anyhow::anyhow!("the connection's thread has ended"))?;
        answered.await?
    }

    /// Ends the thread once it has run what was sent, and waits for it (it closes the file).
    fn close(self) {
        drop(self.jobs);
        self.thread.join().ok();
    }
}

/// The alternative: the same writer mutex and statements, each batch one closure on the
/// writer's thread; the read on a second connection with a thread of its own.
struct RusqliteStore {
    writer: Mutex<Worker>,
    reader: Worker,
}

impl RusqliteStore {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Ok(Self {
            writer: Mutex::new(Worker::open(path, OpenFlags::default())?),
            reader: Worker::open(path, read_only)?,
        })
    }

    async fn login(&self, l: Arc<Login>) -> anyhow::Result<()> {
        let login = l.clone();
        self.reader
            .call(move |c| {
                let mut read = c.prepare_cached(select_user!())?;
                Ok(read.query_row([&login.username], |r| r.get::<_, String>(1))?)
            })
            .await?;
        let writer = self.writer.lock().await;
        let login = l.clone();
        let reserved = async {
            let failures = writer
                .call(move |c| {
                    c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                    let mut read = c.prepare_cached(select_counter!())?;
                    Ok(read.query_row([&login.username], |r| r.get::<_, i64>(0))?)
                })
                .await?;
            decide(failures)?;
            let login = l.clone();
            writer
                .call(move |c| {
                    let l = &*login;
                    let expires = l.now + 60_000;
                    let mut insert = c.prepare_cached(insert_attempt!())?;
                    insert.execute(params![l.attempt_id, l.username, expires, "127.0.0.1"])?;
                    c.prepare_cached("COMMIT")?.execute([])?;
                    Ok(())
                })
                .await
        }
        .await;
        Self::done(&writer, reserved).await?;
        drop(writer);
        let writer = self.writer.lock().await;
        let login = l.clone();
        let started = writer
            .call(move |c| {
                let l = &*login;
                c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                c.prepare_cached(delete_attempt!())?
                    .execute([&l.attempt_id])?;
                c.prepare_cached(insert_session!())?.execute(params![
                    l.token_hash,
                    l.session_id,
                    l.username,
                    l.now,
                    l.now
                ])?;
                c.prepare_cached(insert_audit!())?.execute(params![
                    l.now,
                    l.username,
                    l.session_id
                ])?;
                c.prepare_cached("COMMIT")?.execute([])?;
                Ok(())
            })
            .await;
        Self::done(&writer, started).await
    }

    /// [`SqlxStore::done`], one closure on the writer's thread.
    async fn done(writer: &Worker, written: anyhow::Result<()>) -> anyhow::Result<()> {
        if written.is_err() {
            writer.call(|c| Ok(c.execute_batch("ROLLBACK")?)).await.ok();
            return written;
        }
        writer
            .call(|c| {
                let mut version = c.prepare_cached("PRAGMA data_version")?;
                Ok(version.query_row([], |r| r.get::<_, i64>(0))?)
            })
            .await?;
        Ok(())
    }
}

/// Context switches of every thread of this process so far. A thread that ends takes its
/// count with it, so this is read while the drivers' threads are alive.
fn context_switches() -> anyhow::Result<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let count = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"));
            if let Some(count) = count {
                sum += count.trim().parse::<u64>()?;
            }
        }
    }
    Ok(sum)
}

/// One driver's results over all its runs.
#[derive(Debug, serde::Serialize)]
struct Side {
    driver: Driver,
    load: LoadResult,
    /// Process CPU time per login, warm-up included (as `LoadResult::server_cpu_s`).
    cpu_us_per_login: f64,
    /// Voluntary and involuntary context switches of all threads per login, warm-up included.
    context_switches_per_login: f64,
}

/// Opens `driver`'s connections, runs logins for `half` after the warm-up, and closes them;
/// CPU time is put in the result, context switches added to `switches`.
async fn measured(
    driver: Driver,
    path: &Path,
    args: &Args,
    next: &Arc<AtomicU64>,
    switches: &AtomicU64,
) -> anyhow::Result<LoadResult> {
    eprintln!("{driver:?}: {} concurrent logins", args.concurrency);
    let store = Arc::new(Store::open(driver, path).await?);
    let (cpu, switched) = (cpu_seconds(std::process::id())?, context_switches()?);
    let (logins, next, warned) = (
        store.clone(),
        next.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    let mut result = load::run_calls(args.concurrency, WARMUP, *args.duration / 2, move |_| {
        let (store, warned) = (logins.clone(), warned.clone());
        let n = next.fetch_add(1, Ordering::Relaxed);
        async move {
            let login = store.login(n).await;
            if let Err(e) = &login
                && !warned.swap(true, Ordering::Relaxed)
            {
                eprintln!("{driver:?}: a login failed: {e:#}");
            }
            login.is_ok()
        }
    })
    .await;
    result.server_cpu_s = cpu_seconds(std::process::id())? - cpu;
    switches.fetch_add(context_switches()? - switched, Ordering::Relaxed);
    Arc::into_inner(store)
        .context("a login outlived its run")?
        .close()
        .await?;
    Ok(result)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("driver.db");
    let mut setup = SqliteConnection::connect_with(&sqlx_options(&path)).await?;
    sqlx::raw_sql(SCHEMA).execute(&mut setup).await?;
    setup.close().await?;

    let next = Arc::new(AtomicU64::new(0));
    let (sqlx_switches, rusqlite_switches) = (AtomicU64::new(0), AtomicU64::new(0));
    let (sqlx_load, rusqlite_load) = abba(
        1,
        || measured(Driver::Sqlx, &path, &args, &next, &sqlx_switches),
        || measured(Driver::Rusqlite, &path, &args, &next, &rusqlite_switches),
    )
    .await?;
    let side = |driver, load: LoadResult, switches: &AtomicU64| Side {
        driver,
        load,
        cpu_us_per_login: load.server_cpu_us_per_request(),
        context_switches_per_login: switches.load(Ordering::Relaxed) as f64
            / load.sent_in_all.max(1) as f64,
    };
    let sqlx = side(Driver::Sqlx, sqlx_load, &sqlx_switches);
    let rusqlite = side(Driver::Rusqlite, rusqlite_load, &rusqlite_switches);
    let (a, b) = (&sqlx, &rusqlite);
    let rows = [
        ("logins/s", a.load.per_second, b.load.per_second),
        (
            "process CPU µs per login",
            a.cpu_us_per_login,
            b.cpu_us_per_login,
        ),
        (
            "context switches per login",
            a.context_switches_per_login,
            b.context_switches_per_login,
        ),
        ("login p50 ms", a.load.p50_ms, b.load.p50_ms),
        ("login p99 ms", a.load.p99_ms, b.load.p99_ms),
    ];
    println!(
        "| concurrency {} | sqlx | rusqlite | rusqlite ÷ sqlx |",
        args.concurrency
    );
    println!("|---|---|---|---|");
    let mut ratios = serde_json::Map::new();
    for (name, a, b) in rows {
        println!("| {name} | {a:.3} | {b:.3} | **{:.2}** |", b / a);
        ratios.insert(name.to_owned(), json!(b / a));
    }
    println!(
        "| failures | {} | {} | |",
        sqlx.load.failures, rusqlite.load.failures
    );
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let report = json!({
        "cores": cores,
        "concurrency": args.concurrency,
        "seconds_per_driver": args.duration.as_secs_f64(),
        "sqlx": sqlx,
        "rusqlite": rusqlite,
        "rusqlite_over_sqlx": ratios,
    });
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", args.json.display());
    Ok(())
}
