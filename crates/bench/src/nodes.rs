//! Real `serve` processes on one PostgreSQL: one node, two, three, and one writing every use,
//! each with its `/healthz` rate in the same run (the ratio that says what a check costs), and
//! what PostgreSQL did per check; then revocation across nodes under load.
//!
//! Everything runs on 127.0.0.1 in a database created for the run and dropped after it; every
//! phase is bounded in time and its servers are stopped (SIGTERM, killed if need be, killed on
//! drop when an error ends the run early).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_testkit::{PgTestDatabase, postgres_admin_url};
use serde_json::{Value, json};

use crate::load::{self, LoadResult};
use crate::perf::served::{self, Served};
use crate::pg::{self, Counters, Monitor, Spent};
use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measuring time of each rate (session checks, then health checks) in each phase
    #[arg(long, default_value = "5s")]
    duration: humantime::Duration,
    /// Concurrent clients, spread over the nodes
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Live sessions the calls are spread over
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Most nodes: phases run 1, 2, … up to this many
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Rounds of the revocation test (log in, warm on node B, log out on node A, check on B)
    #[arg(long, default_value_t = 40)]
    revocation_rounds: usize,
    /// The server binary (default: `m2m-session` beside this executable)
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where to write the machine-readable result
    #[arg(long, default_value = "target/bench-nodes.json")]
    json: PathBuf,
}

/// The server's default: a session's last use is written at most once a minute.
const DEFAULT_GRANULARITY: &str = "60s";
/// The least the server accepts: every check writes the session's last use.
pub(crate) const EVERY_USE: &str = "1ms";
const WARMUP: Duration = Duration::from_secs(1);

/// The cheapest hash, as the users are seeded: logins here are not what is measured.
const CHEAP_HASH: [&str; 6] = [
    "--argon2-memory-kib",
    "8",
    "--argon2-iterations",
    "1",
    "--argon2-parallelism",
    "1",
];

/// `n` real servers on the database at `url`.
pub(crate) async fn start_nodes(
    bin: &std::path::Path,
    url: &str,
    n: usize,
    granularity: &str,
) -> anyhow::Result<Vec<Served>> {
    let mut extra = CHEAP_HASH.to_vec();
    extra.extend(["--session-touch-granularity", granularity]);
    let mut nodes = Vec::new();
    for _ in 0..n {
        // On an error the nodes already started are killed as they are dropped.
        nodes.push(Served::start(bin, url, &extra).await?);
    }
    for node in &nodes {
        open_pool(&node.base).await;
    }
    Ok(nodes)
}

/// Has the server at `base` open its database connections (`/readyz` asks the store), so
/// that starting PostgreSQL backends is not charged to what is measured next: a fixed number
/// of calls, so that what they cost is the same in every phase.
pub(crate) async fn open_pool(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..4 {
        let calls: Vec<_> = (0..32)
            .map(|_| tokio::spawn(http.get(format!("{base}/readyz")).send()))
            .collect();
        for call in calls {
            let _ = call.await;
        }
    }
}

/// Stops every node, even when one fails to stop; the first error is returned.
pub(crate) async fn stop_nodes(nodes: Vec<Served>) -> anyhow::Result<()> {
    let mut first = Ok(());
    for node in nodes {
        let stopped = node.stop().await;
        if first.is_ok() {
            first = stopped;
        }
    }
    first
}

fn cpu_of(nodes: &[Served]) -> anyhow::Result<f64> {
    nodes.iter().map(Served::cpu_seconds).sum()
}

/// One phase: checks then health checks on the same nodes, and what they cost.
#[derive(Debug, serde::Serialize)]
struct Phase {
    name: String,
    nodes: usize,
    touch_granularity: &'static str,
    verify: LoadResult,
    healthz: LoadResult,
    verify_over_healthz: f64,
    /// Database counters over the whole phase (nodes started and stopped, checks, health
    /// checks, which do not use the database).
    database: Counters,
    /// WAL and PostgreSQL CPU while the checks ran.
    postgres: Spent,
    row_writes_per_1000_checks: f64,
    transactions_per_check: f64,
    wal_bytes_per_1000_checks: f64,
    server_cpu_us_per_check: f64,
    postgres_backend_cpu_us_per_check: f64,
}

struct Run<'a> {
    bin: PathBuf,
    url: String,
    monitor: Monitor,
    bearer: String,
    sessions: Arc<Vec<String>>,
    args: &'a Args,
}

/// `GET /auth/verify`, worker `w` on node `w % nodes` with session `w % sessions`.
fn verify_on(bases: Arc<Vec<String>>, bearer: &str, sessions: &Arc<Vec<String>>) -> load::Request {
    let (bearer, sessions) = (bearer.to_owned(), sessions.clone());
    Arc::new(move |http: &reqwest::Client, worker| {
        http.get(format!("{}/auth/verify", bases[worker % bases.len()]))
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", &sessions[worker % sessions.len()])
    })
}

impl Run<'_> {
    async fn phase(&mut self, n: usize, granularity: &'static str) -> anyhow::Result<Phase> {
        let name = if granularity == EVERY_USE {
            format!("{n} node(s), last use written every check")
        } else {
            format!("{n} node(s)")
        };
        eprintln!("phase: {name}");
        let before = pg::counters(&self.url).await?;
        let nodes = start_nodes(&self.bin, &self.url, n, granularity).await?;
        let measured = self.measure(&nodes).await;
        let stopped = stop_nodes(nodes).await;
        let (verify, healthz, postgres) = measured?;
        stopped?;
        let database = pg::counters(&self.url).await? - before;
        let checks = verify.sent_in_all.max(1) as f64;
        Ok(Phase {
            name,
            nodes: n,
            touch_granularity: granularity,
            verify_over_healthz: verify.per_second / healthz.per_second,
            row_writes_per_1000_checks: database.row_writes as f64 * 1_000.0 / checks,
            transactions_per_check: database.transactions as f64 / checks,
            wal_bytes_per_1000_checks: postgres.wal_bytes as f64 * 1_000.0 / checks,
            server_cpu_us_per_check: verify.server_cpu_us_per_request(),
            postgres_backend_cpu_us_per_check: postgres.backend_cpu_s * 1e6 / checks,
            verify,
            healthz,
            database,
            postgres,
        })
    }

    async fn measure(
        &mut self,
        nodes: &[Served],
    ) -> anyhow::Result<(LoadResult, LoadResult, Spent)> {
        let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.base.clone()).collect());
        let (cpu, pg) = (cpu_of(nodes)?, self.monitor.sample().await?);
        let verify = verify_on(bases.clone(), &self.bearer, &self.sessions);
        let mut verify = load::run(
            self.args.concurrency,
            WARMUP,
            *self.args.duration,
            204,
            verify,
        )
        .await;
        let postgres = self.monitor.sample().await?.since(&pg);
        verify.server_cpu_s = cpu_of(nodes)? - cpu;
        let cpu = cpu_of(nodes)?;
        let healthz: load::Request = Arc::new(move |http: &reqwest::Client, w| {
            http.get(format!("{}/healthz", bases[w % bases.len()]))
        });
        let mut healthz = load::run(
            self.args.concurrency,
            WARMUP,
            *self.args.duration,
            200,
            healthz,
        )
        .await;
        healthz.server_cpu_s = cpu_of(nodes)? - cpu;
        Ok((verify, healthz, postgres))
    }

    async fn revocation(&mut self, n: usize) -> anyhow::Result<Revocation> {
        eprintln!(
            "revocation under load: {} rounds on {n} nodes",
            self.args.revocation_rounds
        );
        let nodes = start_nodes(&self.bin, &self.url, n, DEFAULT_GRANULARITY).await?;
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let request = verify_on(Arc::new(bases.clone()), &self.bearer, &self.sessions);
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(self.args.concurrency)
                .build()?;
            let (concurrency, stop) = (self.args.concurrency, stop.clone());
            tokio::spawn(async move {
                load::run_calls_until(
                    concurrency,
                    WARMUP,
                    Duration::from_secs(120),
                    stop,
                    move |w| {
                        let sent = request(&http, w).send();
                        async move {
                            match sent.await {
                                Ok(r) => r.status().as_u16() == 204,
                                Err(_) => false,
                            }
                        }
                    },
                )
                .await
            })
        };
        // The rounds start once the load is past its warm-up.
        tokio::time::sleep(WARMUP).await;
        let rounds = self.rounds(&bases).await;
        stop.store(true, Ordering::Relaxed);
        let load = load.await;
        let stopped = stop_nodes(nodes).await;
        let mut result = rounds?;
        stopped?;
        result.load = load?;
        Ok(result)
    }

    async fn rounds(&self, bases: &[String]) -> anyhow::Result<Revocation> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut result = Revocation {
            nodes: bases.len(),
            ..Revocation::default()
        };
        let check = |base: &str, token: &str| {
            http.get(format!("{base}/auth/verify"))
                .bearer_auth(&self.bearer)
                .header("VZ-M2M-Token", token)
                .send()
        };
        for round in 0..self.args.revocation_rounds {
            let a = &bases[round % bases.len()];
            let b = &bases[(round + 1) % bases.len()];
            let login: Value = http
                .post(format!("{a}/api/m2m/v1/session/login"))
                .bearer_auth(&self.bearer)
                .json(&json!({"username": seed::username(0), "password": seed::PASSWORD}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let token = login["sessionToken"].as_str().context("no session")?;
            for _ in 0..3 {
                let warm = check(b, token).await?.status().as_u16();
                ensure!(
                    warm == 204,
                    "round {round}: warming on node B answered {warm}"
                );
            }
            let logout = http
                .post(format!("{a}/api/m2m/v1/session/logout"))
                .bearer_auth(&self.bearer)
                .header("VZ-M2M-Token", token)
                .send()
                .await?
                .status()
                .as_u16();
            ensure!(
                logout == 200,
                "round {round}: logout on node A answered {logout}"
            );
            match check(b, token).await?.status().as_u16() {
                401 => result.refused += 1,
                204 => result.served += 1,
                other => result.other.push(other),
            }
            result.rounds += 1;
        }
        Ok(result)
    }
}

#[derive(Debug, Default, serde::Serialize)]
struct Revocation {
    nodes: usize,
    rounds: usize,
    /// Checks on node B right after node A acknowledged the logout, answered 401.
    refused: usize,
    /// … answered 204: a revoked session served.
    served: usize,
    /// … answered anything else (proves nothing either way).
    other: Vec<u16>,
    /// The load on every node meanwhile.
    load: LoadResult,
}

/// A login for each of `sessions` sessions, through one node that is then stopped.
async fn setup(
    bin: &std::path::Path,
    url: &str,
    sessions: usize,
) -> anyhow::Result<(String, Vec<String>)> {
    seed::users(url, 1, Argon2Settings::MINIMUM).await?;
    let mut nodes = start_nodes(bin, url, 1, DEFAULT_GRANULARITY).await?;
    let node = nodes.pop().context("no node")?;
    let logins = async {
        let http = reqwest::Client::new();
        let bearer = seed::api_token(&node.base).await?;
        let mut tokens = Vec::new();
        for _ in 0..sessions {
            let r: Value = http
                .post(format!("{}/api/m2m/v1/session/login", node.base))
                .bearer_auth(&bearer)
                .json(&json!({"username": seed::username(0), "password": seed::PASSWORD}))
                .send()
                .await?
                .json()
                .await?;
            tokens.push(r["sessionToken"].as_str().context("no session")?.to_owned());
        }
        Ok::<_, anyhow::Error>((bearer, tokens))
    }
    .await;
    node.stop().await?;
    logins
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.nodes >= 2, "--nodes must be at least 2");
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => served::default_binary()?,
    };
    let db = PgTestDatabase::create().await;
    let url = db.url().to_owned();
    let (bearer, sessions) = setup(&bin, &url, args.sessions).await?;
    let monitor = Monitor::connect(&postgres_admin_url(), &url).await?;
    let mut run = Run {
        bin,
        url,
        monitor,
        bearer,
        sessions: Arc::new(sessions),
        args: &args,
    };
    let mut phases = Vec::new();
    for n in 1..=args.nodes {
        phases.push(run.phase(n, DEFAULT_GRANULARITY).await?);
    }
    // The same single node writing every use: what coalescing saves, and proof the count works.
    phases.push(run.phase(1, EVERY_USE).await?);
    let revocation = run.revocation(args.nodes).await?;
    ensure!(
        phases.iter().all(|p| p.verify.requests > 0),
        "no request succeeded"
    );
    let one = phases[0].verify.per_second;
    let report = json!({
        "benchmark": "nodes",
        "method": "GET /auth/verify (bearer + VZ-M2M-Token) then GET /healthz, closed loop, \
                   spread over real `serve` processes on one PostgreSQL database",
        "concurrency": args.concurrency,
        "sessions": args.sessions,
        "duration_s": args.duration.as_secs_f64(),
        "phases": phases,
        "scaling_over_one_node": phases[..args.nodes].iter().map(|p| p.verify.per_second / one).collect::<Vec<_>>(),
        "revocation": revocation,
    });
    print(&phases, &revocation);
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", args.json.display());
    if revocation.refused != revocation.rounds || revocation.rounds == 0 {
        bail!(
            "revocation under load: {} of {} rounds not refused ({} served, others: {:?})",
            revocation.rounds - revocation.refused,
            revocation.rounds,
            revocation.served,
            revocation.other
        );
    }
    Ok(())
}

fn print(phases: &[Phase], revocation: &Revocation) {
    println!(
        "| phase | checks/s | p50 / p99 ms | failures | /healthz req/s | verify ÷ healthz | row writes / 1,000 checks | transactions / check | WAL bytes / 1,000 checks | server CPU µs / check | PG backend CPU µs / check |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in phases {
        println!(
            "| {} | {:.0} | {:.2} / {:.2} | {} | {:.0} | **{:.2}** | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} |",
            p.name,
            p.verify.per_second,
            p.verify.p50_ms,
            p.verify.p99_ms,
            p.verify.failures + p.healthz.failures,
            p.healthz.per_second,
            p.verify_over_healthz,
            p.row_writes_per_1000_checks,
            p.transactions_per_check,
            p.wal_bytes_per_1000_checks,
            p.server_cpu_us_per_check,
            p.postgres_backend_cpu_us_per_check,
        );
    }
    let one = phases[0].verify.per_second;
    for p in phases
        .iter()
        .skip(1)
        .filter(|p| p.touch_granularity != EVERY_USE)
    {
        println!(
            "{} nodes ÷ 1 node (checks/s): {:.2}",
            p.nodes,
            p.verify.per_second / one
        );
    }
    if let Some(every) = phases.iter().find(|p| p.touch_granularity == EVERY_USE) {
        println!(
            "1 node, coalesced ÷ writing every use (checks/s): {:.2}",
            one / every.verify.per_second
        );
    }
    let other = phases
        .iter()
        .map(|p| p.database.other_transactions)
        .sum::<i64>();
    println!(
        "transactions in other databases of the cluster meanwhile: {other} (WAL is cluster-wide)"
    );
    println!(
        "revocation under load: {}/{} refused ({} served, {} other) on {} nodes, load {:.0} checks/s, p99 {:.2} ms, {} failures",
        revocation.refused,
        revocation.rounds,
        revocation.served,
        revocation.other.len(),
        revocation.nodes,
        revocation.load.per_second,
        revocation.load.p99_ms,
        revocation.load.failures
    );
}
