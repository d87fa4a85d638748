//! `perf`: the two numbers that decide what the service costs, each as a ratio to its physical
//! limit measured in the same run — logins/s against raw argon2id hashes/s, and session checks/s
//! against health checks/s — with 1,000 and with 1,000,000 live sessions, plus peak memory
//! under a burst of logins and the SDK's overhead over a bare HTTP load generator.
//!
//! With `--backend postgres`, the two ratios with the small count of live sessions on a real
//! server on a fresh PostgreSQL database, seeded the same way (and dropped after the run).

pub(crate) mod argon2_limit;
mod burst;
pub(crate) mod served;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use m2m_session_client::{Client, SessionToken};
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_testkit::PgTestDatabase;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::load::{self, LoadResult};
use crate::seed::{self, api_token};
use burst::BurstResult;
use served::Served;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's store. `postgres`: a fresh database on the local PostgreSQL
    /// (M2M_TEST_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/test), logins ÷ argon2 and
    /// checks ÷ health checks with the small count of sessions only (no 1M-session phase, no
    /// burst, no SDK)
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// Measuring time of each rate in each round (split in two halves run A-B-B-A against its
    /// limit)
    #[arg(long, default_value = "4s")]
    duration: humantime::Duration,
    /// Times each pair of rates is measured A-B-B-A (each time for `duration`)
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent clients for the session and health checks
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Live sessions in the large phase
    #[arg(long, default_value_t = 1_000_000)]
    large: usize,
    /// Live sessions in the small phase (these are the tokens the checks use)
    #[arg(long, default_value_t = 1_000)]
    small: usize,
    /// Users the sessions and logins are spread over
    #[arg(long, default_value_t = 128)]
    users: usize,
    /// Concurrent logins (default: two per core, so every argon2 worker always has one waiting)
    #[arg(long)]
    login_concurrency: Option<usize>,
    /// Logins sent at once to measure peak memory and shedding
    #[arg(long, default_value_t = 500)]
    burst: usize,
    /// The server binary (default: `m2m-session` beside this executable)
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where to write the machine-readable result (default: target/bench-perf.json, or
    /// target/bench-perf-postgres.json with `--backend postgres`)
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

pub(crate) const WARMUP: Duration = Duration::from_millis(500);

/// One live-session count: both ratios against their limits.
#[derive(Debug, serde::Serialize)]
struct Phase {
    live_sessions: i64,
    /// Raw argon2id hashes/s on every core, measured around the logins (A-B-B-A).
    argon2_hashes_per_s: f64,
    logins: LoadResult,
    logins_over_argon2: f64,
    healthz: LoadResult,
    verify: LoadResult,
    verify_over_healthz: f64,
    /// Server CPU per login less argon2id's CPU per hash (both warm-up included), what a login
    /// costs besides its hash.
    server_cpu_ms_per_login_besides_argon2: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => served::default_binary()?,
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let argon2 = Argon2Settings::default();
    let dir = tempfile::tempdir()?;
    // Dropped (the database with it) after the servers, which are killed if an error ends the
    // run early.
    let postgres = match args.backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(PgTestDatabase::create().await),
    };
    let database = match &postgres {
        Some(db) => db.url().to_owned(),
        None => dir.path().join("bench.db").display().to_string(),
    };

    eprintln!(
        "{}: seeding {} users and {} sessions",
        args.backend.name(),
        args.users,
        args.small
    );
    seed::users(&database, args.users, argon2).await?;
    let tokens = Arc::new(seed::sessions(&database, args.users, args.small, 0).await?);

    let served = Served::start(&bin, &database, &[]).await?;
    if postgres.is_some() {
        // Starting PostgreSQL backends is not charged to what is measured.
        crate::nodes::open_pool(&served.base).await;
    }
    let bearer = api_token(&served.base).await?;
    let small = phase(&served, &database, &bearer, &tokens, &args, cores).await?;
    let sqlite = if postgres.is_some() {
        served.stop().await?;
        None
    } else {
        Some(sqlite_only(served, &bin, &database, &bearer, &tokens, &args, cores).await?)
    };
    let report = Report {
        machine: machine(cores),
        backend: args.backend,
        argon2_memory_kib: argon2.memory_kib,
        small,
        sqlite,
        seconds: started.elapsed().as_secs_f64(),
    };
    report.write(&args, cores)
}

/// The phases only the SQLite server has: the SDK against the load generator, the same rates
/// with 1M live sessions, and the burst; `served` is the small phase's server, stopped here.
async fn sqlite_only(
    served: Served,
    bin: &Path,
    database: &str,
    bearer: &str,
    tokens: &Arc<Vec<String>>,
    args: &Args,
    cores: usize,
) -> anyhow::Result<SqliteOnly> {
    let (sdk, tool) =
        sdk_against_tool(&served, tokens, args.concurrency, half(args), args.rounds).await?;
    served.stop().await?;

    eprintln!("adding {} sessions", args.large.saturating_sub(args.small));
    seed::sessions(
        database,
        args.users,
        0,
        args.large.saturating_sub(args.small),
    )
    .await?;
    let served = Served::start(bin, database, &[]).await?;
    let large = phase(&served, database, bearer, tokens, args, cores).await?;
    served.stop().await?;

    eprintln!("burst of {} logins", args.burst);
    let served = Served::start(bin, database, &[]).await?;
    let burst = burst::run(&served, bearer, args.users, args.burst).await?;
    served.stop().await?;

    Ok(SqliteOnly {
        large,
        sdk,
        tool,
        sdk_over_tool: sdk.per_second / tool.per_second,
        burst,
    })
}

async fn phase(
    served: &Served,
    database: &str,
    bearer: &str,
    tokens: &Arc<Vec<String>>,
    args: &Args,
    cores: usize,
) -> anyhow::Result<Phase> {
    let live_sessions = seed::count_sessions(database).await?;
    eprintln!("{live_sessions} live sessions: argon2id on {cores} threads against logins");
    let concurrency = args.login_concurrency.unwrap_or(cores * 2);
    let (argon2, logins) = abba(
        args.rounds,
        || async move {
            let (settings, duration) = (Argon2Settings::default(), half(args));
            // This process does nothing else meanwhile: its CPU time is the hashes'.
            let before = served::cpu_seconds(std::process::id())?;
            let (per_s, hashes) = tokio::task::spawn_blocking(move || {
                argon2_limit::hashes_per_second(settings, cores, WARMUP, duration)
            })
            .await??;
            let mut limit = rate(per_s, half(args));
            limit.sent_in_all = hashes;
            limit.server_cpu_s = served::cpu_seconds(std::process::id())? - before;
            Ok(limit)
        },
        || {
            let base = &served.base;
            charged(
                served,
                login_load(base, bearer, args.users, concurrency, half(args)),
            )
        },
    )
    .await?;
    eprintln!("{live_sessions} live sessions: /healthz against /auth/verify");
    let healthz: load::Request = {
        let url = format!("{}/healthz", served.base);
        Arc::new(move |http: &reqwest::Client, _| http.get(&url))
    };
    let verify = verify_request(&served.base, bearer, tokens);
    let (healthz, verify) = abba(
        args.rounds,
        || {
            let load = load::run(args.concurrency, WARMUP, half(args), 200, healthz.clone());
            charged(served, load)
        },
        || async {
            seed::spread_last_uses(database, tokens).await?;
            let load = load::run(args.concurrency, WARMUP, half(args), 204, verify.clone());
            charged(served, load).await
        },
    )
    .await?;
    Ok(Phase {
        live_sessions,
        argon2_hashes_per_s: argon2.per_second,
        logins_over_argon2: logins.per_second / argon2.per_second,
        logins,
        verify_over_healthz: verify.per_second / healthz.per_second,
        server_cpu_ms_per_login_besides_argon2: (logins.server_cpu_us_per_request()
            - argon2.server_cpu_us_per_request())
            / 1e3,
        healthz,
        verify,
    })
}

/// Runs `load` and records the server's CPU time meanwhile: a cost per request that the
/// shared machine's speed changes far less than it changes rates.
async fn charged(
    served: &Served,
    load: impl Future<Output = LoadResult>,
) -> anyhow::Result<LoadResult> {
    let before = served.cpu_seconds()?;
    let mut result = load.await;
    result.server_cpu_s = served.cpu_seconds()? - before;
    Ok(result)
}

fn half(args: &Args) -> Duration {
    *args.duration / 2
}

/// `GET /auth/verify` over every known session in turn.
fn verify_request(base: &str, bearer: &str, tokens: &Arc<Vec<String>>) -> load::Request {
    let (url, bearer, tokens) = (
        format!("{base}/auth/verify"),
        bearer.to_owned(),
        tokens.clone(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move |http: &reqwest::Client, _| {
        let token = &tokens[next.fetch_add(1, Ordering::Relaxed) % tokens.len()];
        http.get(&url)
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", token)
    })
}

async fn login_load(
    base: &str,
    bearer: &str,
    users: usize,
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let request: load::Request = {
        let (url, bearer) = (
            format!("{base}/api/m2m/v1/session/login"),
            bearer.to_owned(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        Arc::new(move |http: &reqwest::Client, _| {
            let user = seed::username(next.fetch_add(1, Ordering::Relaxed) % users);
            http.post(&url)
                .bearer_auth(&bearer)
                .json(&json!({"username": user, "password": seed::PASSWORD}))
        })
    };
    load::run(concurrency, WARMUP, duration, 200, request).await
}

/// Runs A, B, B, A `rounds` times and merges each side, so a drift in the machine's speed hits
/// both alike, and a swing that A-B-B-A cannot cancel is averaged over several.
pub(crate) async fn abba<A, B, FA, FB>(
    rounds: usize,
    a: A,
    b: B,
) -> anyhow::Result<(LoadResult, LoadResult)>
where
    A: Fn() -> FA,
    B: Fn() -> FB,
    FA: std::future::Future<Output = anyhow::Result<LoadResult>>,
    FB: std::future::Future<Output = anyhow::Result<LoadResult>>,
{
    let round = || async {
        let (a1, b1) = (a().await?, b().await?);
        let (b2, a2) = (b().await?, a().await?);
        Ok::<_, anyhow::Error>((merge(a1, a2), merge(b1, b2)))
    };
    let (mut sum_a, mut sum_b) = round().await?;
    for _ in 1..rounds {
        let (more_a, more_b) = round().await?;
        (sum_a, sum_b) = (merge(sum_a, more_a), merge(sum_b, more_b));
    }
    Ok((sum_a, sum_b))
}

/// A rate measured outside the load generator, as a [`LoadResult`] without latencies.
fn rate(per_second: f64, duration: Duration) -> LoadResult {
    let seconds = duration.as_secs_f64();
    LoadResult {
        requests: (per_second * seconds).round() as u64,
        sent_in_all: 0,
        failures: 0,
        seconds,
        per_second,
        p50_ms: 0.0,
        p99_ms: 0.0,
        server_cpu_s: 0.0,
    }
}

/// Sums two runs; latency percentiles are the worse of the two.
fn merge(x: LoadResult, y: LoadResult) -> LoadResult {
    let requests = x.requests + y.requests;
    let seconds = x.seconds + y.seconds;
    LoadResult {
        requests,
        sent_in_all: x.sent_in_all + y.sent_in_all,
        failures: x.failures + y.failures,
        seconds,
        per_second: requests as f64 / seconds,
        p50_ms: x.p50_ms.max(y.p50_ms),
        p99_ms: x.p99_ms.max(y.p99_ms),
        server_cpu_s: x.server_cpu_s + y.server_cpu_s,
    }
}

/// The SDK's `verify_session` in a loop against the bare load generator on the same endpoint,
/// `half` each per round, A-B-B-A.
pub(crate) async fn sdk_against_tool(
    served: &Served,
    tokens: &Arc<Vec<String>>,
    concurrency: usize,
    half: Duration,
    rounds: usize,
) -> anyhow::Result<(LoadResult, LoadResult)> {
    eprintln!("SDK against the load generator");
    let client = Client::builder()
        .base_url(&format!("{}/api", served.base))?
        .oauth_client_credentials(seed::CLIENT_ID, SecretString::from(seed::SECRET))
        .build()?;
    let bearer = api_token(&served.base).await?;
    let raw = verify_request(&served.base, &bearer, tokens);
    let sdk_call = {
        let tokens = tokens.clone();
        let next = Arc::new(AtomicUsize::new(0));
        move |_| {
            let controller = client.session_management();
            let token = SessionToken::new(
                tokens[next.fetch_add(1, Ordering::Relaxed) % tokens.len()].clone(),
            );
            async move { controller.verify_session(&token).await.is_ok() }
        }
    };
    let sdk_call = Arc::new(sdk_call);
    abba(
        rounds,
        || {
            let call = sdk_call.clone();
            async move { Ok(load::run_calls(concurrency, WARMUP, half, move |w| call(w)).await) }
        },
        || async { Ok(load::run(concurrency, WARMUP, half, 204, raw.clone()).await) },
    )
    .await
}

#[derive(Debug, serde::Serialize)]
struct Report {
    machine: Value,
    backend: Backend,
    argon2_memory_kib: u32,
    small: Phase,
    /// What only the SQLite run measures.
    #[serde(flatten)]
    sqlite: Option<SqliteOnly>,
    seconds: f64,
}

#[derive(Debug, serde::Serialize)]
struct SqliteOnly {
    large: Phase,
    sdk: LoadResult,
    tool: LoadResult,
    sdk_over_tool: f64,
    burst: BurstResult,
}

impl Report {
    fn write(&self, args: &Args, cores: usize) -> anyhow::Result<()> {
        self.print(cores);
        let json = args.json.clone().unwrap_or_else(|| match self.backend {
            Backend::Sqlite => "target/bench-perf.json".into(),
            Backend::Postgres => "target/bench-perf-postgres.json".into(),
        });
        if let Some(dir) = json.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        println!("written to {}", json.display());
        Ok(())
    }

    fn print(&self, cores: usize) {
        let backend = self.backend.name();
        let mut phases = vec![(format!("{backend}, 1k sessions"), &self.small)];
        if let Some(sqlite) = &self.sqlite {
            phases.push((format!("{backend}, 1M sessions"), &sqlite.large));
        }
        // One line of the table: a cell per phase.
        let row = |measure: &str, cell: &dyn Fn(&Phase) -> String, goal: &str| {
            let cells: Vec<String> = phases.iter().map(|(_, p)| cell(p)).collect();
            let goal = if goal.is_empty() {
                String::new()
            } else {
                format!("{goal} ")
            };
            println!("| {measure} | {} | {goal}|", cells.join(" | "));
        };
        let names: Vec<&str> = phases.iter().map(|(name, _)| name.as_str()).collect();
        println!("| measure | {} | goal |", names.join(" | "));
        println!("|---|{}---|", "---|".repeat(phases.len()));
        row("live sessions", &|p| p.live_sessions.to_string(), "");
        row(
            &format!("raw argon2id hashes/s, {cores} threads"),
            &|p| format!("{:.1}", p.argon2_hashes_per_s),
            "",
        );
        row("logins/s", &|p| format!("{:.1}", p.logins.per_second), "");
        row(
            "logins/s ÷ argon2id hashes/s",
            &|p| format!("**{:.2}**", p.logins_over_argon2),
            "≥ 0.90",
        );
        row(
            "server CPU ms per login / besides argon2id",
            &|p| {
                format!(
                    "{:.1} / {:.1}",
                    p.logins.server_cpu_us_per_request() / 1e3,
                    p.server_cpu_ms_per_login_besides_argon2
                )
            },
            "",
        );
        row(
            "/healthz req/s",
            &|p| format!("{:.0}", p.healthz.per_second),
            "",
        );
        row(
            "/auth/verify req/s",
            &|p| format!("{:.0}", p.verify.per_second),
            "",
        );
        row(
            "/auth/verify ÷ /healthz",
            &|p| format!("**{:.2}**", p.verify_over_healthz),
            // Issue 18's goals: a PostgreSQL node's check may cost a cheap round trip.
            match self.backend {
                Backend::Sqlite => "≥ 0.80",
                Backend::Postgres => "≥ 0.70",
            },
        );
        row(
            "server CPU µs per /healthz / per /auth/verify",
            &|p| {
                format!(
                    "{:.0} / {:.0}",
                    p.healthz.server_cpu_us_per_request(),
                    p.verify.server_cpu_us_per_request()
                )
            },
            "",
        );
        row(
            "/auth/verify p50 / p99 ms",
            &|p| format!("{:.2} / {:.2}", p.verify.p50_ms, p.verify.p99_ms),
            "p99 < 5",
        );
        if let Some(sqlite) = &self.sqlite {
            println!(
                "| verify p99 1M ÷ 1k | | **{:.2}** | ≤ 1.5 |",
                sqlite.large.verify.p99_ms / self.small.verify.p99_ms
            );
        }
        row(
            "failures (logins, healthz, verify)",
            &|p| {
                format!(
                    "{}, {}, {}",
                    p.logins.failures, p.healthz.failures, p.verify.failures
                )
            },
            "0",
        );
        let Some(sqlite) = &self.sqlite else {
            println!("total time {:.0} s", self.seconds);
            return;
        };
        let b = &sqlite.burst;
        let budget = cores as f64 * f64::from(self.argon2_memory_kib) / 1024.0 + 64.0;
        println!();
        println!("| burst of {} logins at once | value | goal |", b.logins);
        println!("|---|---|---|");
        println!(
            "| peak RSS MiB (before: {:.1}) | **{:.1}** | ≤ {budget:.1} |",
            b.rss_before_mib, b.peak_rss_mib
        );
        println!(
            "| succeeded / shed (503) / other | {} / {} / {} | |",
            b.succeeded, b.shed, b.other
        );
        println!(
            "| shed answer p50 / p99 / max ms | {:.1} / {:.1} / {:.1} | |",
            b.shed_p50_ms, b.shed_p99_ms, b.shed_max_ms
        );
        println!("| all answered after ms | {:.0} | |", b.all_answered_ms);
        println!();
        println!(
            "SDK verify_session calls/s {:.0} ÷ load generator {:.0} = **{:.2}** (goal ≥ 0.80)",
            sqlite.sdk.per_second, sqlite.tool.per_second, sqlite.sdk_over_tool
        );
        println!("total time {:.0} s", self.seconds);
    }
}

fn machine(cores: usize) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    json!({ "cores": cores, "cpu": cpu, "os": std::env::consts::OS })
}
