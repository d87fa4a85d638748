//! `costs`: what one operation costs on PostgreSQL with one real node — login, check, check
//! that writes the last use (touch), logout, password reset — in server CPU, PostgreSQL
//! statements, round trips, transactions, row writes, WAL bytes and PostgreSQL CPU per
//! operation: the inputs of the capacity model in docs/scaling.md.
//!
//! Each operation runs in its own phase on a freshly started node, with the server's default
//! argon2id parameters, between two readings of the database's counters taken with no server
//! running; a phase without operations measures what starting and stopping a node costs, and
//! is subtracted. The node reaches PostgreSQL through a relay that counts the statements it
//! sends ([`crate::pgproxy`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_testkit::{PgTestDatabase, postgres_admin_url};
use serde_json::{Value, json};

use crate::load;
use crate::perf::served::{self, Served};
use crate::pg::{self, Counters, Monitor, Spent};
use crate::pgproxy::{Messages, Relay};
use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users (each logs in `logins-per-user` times; one session each is reset, the others
    /// logged out)
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Logins per user, at least 2
    #[arg(long, default_value_t = 3)]
    logins_per_user: usize,
    /// Measuring time of the checks (with and without last-use writes)
    #[arg(long, default_value = "5s")]
    duration: humantime::Duration,
    /// Concurrent clients for the checks
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The server binary (default: `m2m-session` beside this executable)
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where to write the machine-readable result
    #[arg(long, default_value = "target/bench-costs.json")]
    json: PathBuf,
}

/// Concurrent logins, logouts and resets: two per core keeps every argon2 worker busy.
fn op_concurrency() -> usize {
    2 * std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// No phase of a fixed number of operations runs longer.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// One operation's phase: totals, and per operation.
#[derive(Debug, Clone, serde::Serialize)]
struct Cost {
    op: &'static str,
    /// Operations sent (all count in the costs) and those that failed.
    sent: u64,
    failed: u64,
    seconds: f64,
    per_second: f64,
    server_cpu_s: f64,
    messages: Messages,
    /// Less the phase without operations.
    database: Counters,
    postgres: Spent,
    per_op: PerOp,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct PerOp {
    server_cpu_us: f64,
    statements: f64,
    round_trips: f64,
    transactions: f64,
    row_writes: f64,
    wal_bytes: f64,
    postgres_backend_cpu_us: f64,
    postgres_background_cpu_us: f64,
}

struct Bench {
    bin: PathBuf,
    url: String,
    relay: Relay,
    monitor: Monitor,
    bearer: String,
    /// What a node's start and stop add to the database's counters.
    idle: Counters,
}

/// Operations done in a phase: sent, failed.
type Done = (u64, u64);

impl Bench {
    /// Starts a node, runs `ops` against its base URL, stops it, and charges the operations
    /// with everything measured meanwhile.
    async fn phase<F, Fut>(
        &mut self,
        op: &'static str,
        granularity: &str,
        ops: F,
    ) -> anyhow::Result<Cost>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = anyhow::Result<Done>>,
    {
        eprintln!("phase: {op}");
        let before = pg::counters(&self.url).await?;
        let node = Served::start(
            &self.bin,
            &self.relay.url,
            &["--session-touch-granularity", granularity],
        )
        .await?;
        crate::nodes::open_pool(&node.base).await;
        let measured = async {
            let (cpu, pg, messages) = (
                node.cpu_seconds()?,
                self.monitor.sample().await?,
                self.relay.messages(),
            );
            let started = Instant::now();
            let done = ops(node.base.clone()).await?;
            let seconds = started.elapsed().as_secs_f64();
            let messages = self.relay.messages() - messages;
            let postgres = self.monitor.sample().await?.since(&pg);
            let cpu = node.cpu_seconds()? - cpu;
            Ok::<_, anyhow::Error>((done, seconds, messages, postgres, cpu))
        }
        .await;
        let stopped = node.stop().await;
        let ((sent, failed), seconds, messages, postgres, server_cpu_s) = measured?;
        stopped?;
        let database = pg::counters(&self.url).await? - before - self.idle;
        let n = sent.max(1) as f64;
        Ok(Cost {
            op,
            sent,
            failed,
            seconds,
            per_second: (sent - failed) as f64 / seconds,
            server_cpu_s,
            messages,
            database,
            postgres,
            per_op: PerOp {
                server_cpu_us: server_cpu_s * 1e6 / n,
                statements: messages.statements as f64 / n,
                round_trips: messages.round_trips as f64 / n,
                transactions: database.transactions as f64 / n,
                row_writes: database.row_writes as f64 / n,
                wal_bytes: postgres.wal_bytes as f64 / n,
                postgres_backend_cpu_us: postgres.backend_cpu_s * 1e6 / n,
                postgres_background_cpu_us: postgres.background_cpu_s * 1e6 / n,
            },
        })
    }
}

/// Runs `call(i)` for every `i` in `0..count` from `concurrency` workers: sent and failed.
async fn each<F, Fut>(count: usize, call: F) -> Done
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (call, next) = (Arc::new(call), Arc::new(AtomicUsize::new(0)));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + PHASE_LIMIT;
    let workers: Vec<_> = (0..op_concurrency())
        .map(|_| {
            let (call, next, sent, failed) =
                (call.clone(), next.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || Instant::now() > deadline {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !call(i).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.logins_per_user >= 2,
        "--logins-per-user must be at least 2"
    );
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => served::default_binary()?,
    };
    let argon2 = Argon2Settings::default();
    let db = PgTestDatabase::create().await;
    let url = db.url().to_owned();
    eprintln!("seeding {} users (default argon2id)", args.users);
    seed::users(&url, args.users, argon2).await?;
    let relay = Relay::start(&url).await?;
    let monitor = Monitor::connect(&postgres_admin_url(), &url).await?;

    // The API token, from a node started and stopped for it.
    let node = Served::start(&bin, &relay.url, &[]).await?;
    let bearer = seed::api_token(&node.base).await;
    node.stop().await?;
    let mut bench = Bench {
        bin,
        url,
        relay,
        monitor,
        bearer: bearer?,
        idle: Counters::default(),
    };
    let idle = bench.phase("idle", "60s", |_| async { Ok((0, 0)) }).await?;
    bench.idle = idle.database;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (users, logins) = (args.users, args.users * args.logins_per_user);
    // Login i is user i % users's (i / users)th: the first of each user's is reset, the
    // others logged out.
    let tokens: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; logins]));
    let login = {
        let (http, bearer, tokens) = (http.clone(), bench.bearer.clone(), tokens.clone());
        bench
            .phase("login", "60s", move |base| async move {
                Ok(each(logins, move |i| {
                    let sent = http
                        .post(format!("{base}/api/m2m/v1/session/login"))
                        .bearer_auth(&bearer)
                        .json(&json!({"username": seed::username(i % users), "password": seed::PASSWORD}))
                        .send();
                    let tokens = tokens.clone();
                    async move {
                        let Ok(r) = sent.await.and_then(reqwest::Response::error_for_status)
                        else {
                            return false;
                        };
                        let Ok(body) = r.json::<Value>().await else {
                            return false;
                        };
                        let Some(token) = body["sessionToken"].as_str() else {
                            return false;
                        };
                        if let Ok(mut t) = tokens.lock() {
                            t[i] = Some(token.to_owned());
                        }
                        true
                    }
                })
                .await)
            })
            .await?
    };
    let tokens: Vec<Option<String>> = tokens
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    let live: Arc<Vec<String>> = Arc::new(tokens.iter().flatten().cloned().collect());
    ensure!(!live.is_empty(), "no login succeeded");

    // Checks right after the logins: within the minute, so none writes the last use.
    let bearer = bench.bearer.clone();
    let checks = |granularity: &'static str, op: &'static str| {
        let (bearer, live) = (bearer.clone(), live.clone());
        let (concurrency, duration) = (args.concurrency, *args.duration);
        (op, granularity, move |base: String| async move {
            let next = Arc::new(AtomicUsize::new(0));
            let request: load::Request = Arc::new(move |http: &reqwest::Client, _| {
                let token = &live[next.fetch_add(1, Ordering::Relaxed) % live.len()];
                http.get(format!("{base}/auth/verify"))
                    .bearer_auth(&bearer)
                    .header("VZ-M2M-Token", token)
            });
            let r = load::run(concurrency, Duration::ZERO, duration, 204, request).await;
            Ok::<Done, anyhow::Error>((r.sent_in_all, r.failures))
        })
    };
    let (op, g, f) = checks("60s", "check");
    let check = bench.phase(op, g, f).await?;
    let (op, g, f) = checks(crate::nodes::EVERY_USE, "check writing last use (touch)");
    let touch = bench.phase(op, g, f).await?;

    let to_log_out: Arc<Vec<String>> = Arc::new(
        tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| i / users > 0)
            .filter_map(|(_, t)| t.clone())
            .collect(),
    );
    let logout = {
        let (http, bearer) = (http.clone(), bench.bearer.clone());
        bench
            .phase("logout", "60s", move |base| async move {
                let count = to_log_out.len();
                Ok(each(count, move |i| {
                    let sent = http
                        .post(format!("{base}/api/m2m/v1/session/logout"))
                        .bearer_auth(&bearer)
                        .header("VZ-M2M-Token", &to_log_out[i])
                        .send();
                    async move { sent.await.is_ok_and(|r| r.status().as_u16() == 200) }
                })
                .await)
            })
            .await?
    };
    let to_reset: Arc<Vec<String>> = Arc::new(tokens[..users].iter().flatten().cloned().collect());
    let reset = {
        let (http, bearer) = (http.clone(), bench.bearer.clone());
        bench
            .phase("password reset", "60s", move |base| async move {
                let count = to_reset.len();
                Ok(each(count, move |i| {
                    let sent = http
                        .put(format!("{base}/api/m2m/v1/session/password/actions/reset"))
                        .bearer_auth(&bearer)
                        .header("VZ-M2M-Token", &to_reset[i])
                        .json(&json!({"oldPassword": seed::PASSWORD}))
                        .send();
                    async move { sent.await.is_ok_and(|r| r.status().as_u16() == 200) }
                })
                .await)
            })
            .await?
    };

    // What one hash costs in this process, to tell a login's own cost from argon2id's.
    let before = served::cpu_seconds(std::process::id())?;
    let (_, hashes) = tokio::task::spawn_blocking(move || {
        crate::perf::argon2_limit::hashes_per_second(
            argon2,
            1,
            Duration::from_millis(200),
            Duration::from_secs(2),
        )
    })
    .await??;
    let argon2_cpu_ms = (served::cpu_seconds(std::process::id())? - before) * 1e3 / hashes as f64;

    let costs = vec![idle, login, check, touch, logout, reset];
    print(&costs, argon2_cpu_ms);
    let report = json!({
        "benchmark": "costs",
        "method": "one real `serve` node on PostgreSQL per operation, through a relay counting \
                   protocol messages; database counters with no node running, less a phase \
                   without operations",
        "machine_cores": std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        "argon2": { "memory_kib": argon2.memory_kib, "iterations": argon2.iterations,
                    "parallelism": argon2.parallelism, "cpu_ms_per_hash_in_process": argon2_cpu_ms },
        "users": args.users,
        "logins_per_user": args.logins_per_user,
        "check_concurrency": args.concurrency,
        "costs": costs,
    });
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", args.json.display());
    for c in &costs[1..] {
        ensure!(
            c.sent > 0 && c.failed == 0,
            "{}: {} of {} failed",
            c.op,
            c.failed,
            c.sent
        );
    }
    Ok(())
}

fn print(costs: &[Cost], argon2_cpu_ms: f64) {
    println!(
        "| operation | ops | ops/s | server CPU µs/op | statements/op | round trips/op | transactions/op | row writes/op | WAL bytes/op | PG backend CPU µs/op | PG background CPU µs/op |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for c in costs.iter().filter(|c| c.op != "idle") {
        let p = &c.per_op;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} |",
            c.op,
            c.sent,
            c.per_second,
            p.server_cpu_us,
            p.statements,
            p.round_trips,
            p.transactions,
            p.row_writes,
            p.wal_bytes,
            p.postgres_backend_cpu_us,
            p.postgres_background_cpu_us,
        );
    }
    if let Some(idle) = costs.iter().find(|c| c.op == "idle") {
        println!(
            "a node's start and stop (subtracted): {} transactions, {} row writes",
            idle.database.transactions, idle.database.row_writes
        );
    }
    println!("argon2id, server defaults, one hash in this process: {argon2_cpu_ms:.1} ms CPU");
    let other: i64 = costs.iter().map(|c| c.database.other_transactions).sum();
    println!(
        "transactions in other databases of the cluster meanwhile: {other} (WAL is cluster-wide)"
    );
}
