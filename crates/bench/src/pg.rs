//! What PostgreSQL did meanwhile, read without any configuration a superuser would have to
//! change (`pg_stat_statements` is not preloaded on the machine's server):
//!
//! - [`counters`]: rows written and transactions of the benchmark's own database, from the
//!   statistics views. A backend publishes its counts when it has been idle a while or when it
//!   exits, so they are read with no server running (stopping a server closes its pool).
//! - [`Monitor::sample`]: the WAL position (cluster-wide: another database's writes meanwhile
//!   count too, which is why [`Counters::other_transactions`] is reported beside it) and the CPU
//!   time of the PostgreSQL processes, from `/proc` as for the server: the backends serving the
//!   benchmark's database, and the cluster's background processes (WAL writer, checkpointer…).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::perf::served;

/// Cumulative counters of one database (and of the others, to see whether they were idle).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counters {
    /// Rows inserted, updated and deleted in the database's tables.
    pub row_writes: i64,
    /// Transactions committed or rolled back in the database; each statement outside an
    /// explicit transaction is one.
    pub transactions: i64,
    /// Transactions in every other database of the cluster (a sign the WAL figures are shared).
    pub other_transactions: i64,
}

impl std::ops::Sub for Counters {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            row_writes: self.row_writes - o.row_writes,
            transactions: self.transactions - o.transactions,
            other_transactions: self.other_transactions - o.other_transactions,
        }
    }
}

/// The counters of the database at `url`, once the backends that just exited have published
/// theirs. The connection reading them adds a few transactions of its own to the next reading.
pub async fn counters(url: &str) -> anyhow::Result<Counters> {
    // Statistics of exited backends arrive shortly after they exit.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await?;
    let (row_writes, transactions, other_transactions): (i64, i64, i64) = sqlx::query_as(
        "SELECT
           (SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
              FROM pg_stat_user_tables),
           (SELECT COALESCE(SUM(xact_commit + xact_rollback), 0)::bigint
              FROM pg_stat_database WHERE datname = current_database()),
           (SELECT COALESCE(SUM(xact_commit + xact_rollback), 0)::bigint
              FROM pg_stat_database WHERE datname <> current_database())",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(Counters {
        row_writes,
        transactions,
        other_transactions,
    })
}

/// One connection to the cluster's administrative database (so that its own queries are not
/// counted in the benchmark's database), sampling WAL and CPU.
pub struct Monitor {
    conn: PgConnection,
    database: String,
}

/// The WAL position and the CPU time of PostgreSQL's processes at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    wal_bytes: i64,
    backends: HashMap<i32, f64>,
    background: HashMap<i32, f64>,
}

/// What happened between two samples.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Spent {
    pub wal_bytes: i64,
    /// CPU seconds of the backends serving the benchmark's database.
    pub backend_cpu_s: f64,
    /// CPU seconds of the cluster's other processes (WAL writer, checkpointer, background
    /// writer, autovacuum), which serve every database.
    pub background_cpu_s: f64,
}

impl Monitor {
    /// Connects to `admin_url` to watch the database at `url`.
    pub async fn connect(admin_url: &str, url: &str) -> anyhow::Result<Self> {
        let database = url
            .rsplit_once('/')
            .context("database URL without /DATABASE")?
            .1
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let conn = PgConnection::connect(admin_url).await?;
        Ok(Self { conn, database })
    }

    pub async fn sample(&mut self) -> anyhow::Result<Sample> {
        let wal_bytes: i64 =
            sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
                .fetch_one(&mut self.conn)
                .await?;
        let processes: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT pid, datname IS NOT DISTINCT FROM $1 AND backend_type = 'client backend'
               FROM pg_stat_activity
              WHERE pid <> pg_backend_pid()
                AND (datname = $1 OR backend_type <> 'client backend')",
        )
        .bind(&self.database)
        .fetch_all(&mut self.conn)
        .await?;
        let mut sample = Sample {
            wal_bytes,
            ..Sample::default()
        };
        for (pid, serves_us) in processes {
            // A process that exited since the query has nothing more to count.
            let Ok(cpu) = served::cpu_seconds(pid.unsigned_abs()) else {
                continue;
            };
            if serves_us {
                sample.backends.insert(pid, cpu);
            } else {
                sample.background.insert(pid, cpu);
            }
        }
        Ok(sample)
    }
}

impl Sample {
    /// From `before` to this sample. A process that started meanwhile counts from zero; one
    /// that exited meanwhile is lost (servers keep their connections while measured).
    pub fn since(&self, before: &Sample) -> Spent {
        let delta = |now: &HashMap<i32, f64>, then: &HashMap<i32, f64>| -> f64 {
            now.iter()
                .map(|(pid, cpu)| cpu - then.get(pid).copied().unwrap_or(0.0))
                .sum()
        };
        Spent {
            wal_bytes: self.wal_bytes - before.wal_bytes,
            backend_cpu_s: delta(&self.backends, &before.backends),
            background_cpu_s: delta(&self.background, &before.background),
        }
    }
}
