//! One node against two on one PostgreSQL: the cost of sharing, and the writes per call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_server::{Server, ServerConfig};
use m2m_session_testkit::PgTestDatabase;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::oneshot;

use crate::load::{self, LoadResult};
use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measuring time per phase
    #[arg(long, default_value = "5s")]
    duration: humantime::Duration,
    /// Concurrent clients
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Live sessions the calls are spread over
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Where to write the machine-readable result
    #[arg(long, default_value = "target/bench-nodes.json")]
    json: PathBuf,
}

const DEFAULT_GRANULARITY: Duration = Duration::from_secs(60);

struct Node {
    base: String,
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_nodes(url: &str, n: usize, granularity: Duration) -> anyhow::Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let mut config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: url.to_owned(),
            argon2: Argon2Settings::MINIMUM,
            shutdown_delay: Duration::ZERO,
            ..ServerConfig::default()
        };
        config.policy.session_touch_granularity = granularity;
        let server = Server::bind(&config).await?;
        let base = format!("http://{}", server.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        nodes.push(Node { base, stop, join });
    }
    Ok(nodes)
}

/// Stops the nodes; closing their pools makes PostgreSQL flush their statistics.
async fn stop_nodes(nodes: Vec<Node>) -> anyhow::Result<()> {
    for node in nodes {
        let _ = node.stop.send(());
        node.join.await??;
    }
    Ok(())
}

/// Rows inserted, updated and deleted in all tables so far.
async fn row_writes(url: &str) -> anyhow::Result<i64> {
    let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
    // Statistics of exited backends arrive shortly after they exit.
    tokio::time::sleep(Duration::from_millis(700)).await;
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut conn)
        .await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables",
    )
    .fetch_one(&mut conn)
    .await?;
    Ok(n)
}

async fn setup(url: &str, sessions: usize) -> anyhow::Result<(String, Vec<String>)> {
    seed::users(url, 1, Argon2Settings::MINIMUM).await?;
    let nodes = start_nodes(url, 1, DEFAULT_GRANULARITY).await?;
    let http = reqwest::Client::new();
    let bearer = seed::api_token(&nodes[0].base).await?;
    let mut tokens = Vec::new();
    for _ in 0..sessions {
        let r: Value = http
            .post(format!("{}/api/m2m/v1/session/login", nodes[0].base))
            .bearer_auth(&bearer)
            .json(&json!({"username": seed::username(0), "password": seed::PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        tokens.push(r["sessionToken"].as_str().context("no session")?.to_owned());
    }
    stop_nodes(nodes).await?;
    Ok((bearer, tokens))
}

async fn phase(
    url: &str,
    n: usize,
    granularity: Duration,
    args: &Args,
    bearer: &str,
    sessions: &Arc<Vec<String>>,
) -> anyhow::Result<(LoadResult, i64)> {
    let before = row_writes(url).await?;
    let nodes = start_nodes(url, n, granularity).await?;
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.base.clone()).collect());
    let (bearer, sessions) = (bearer.to_owned(), sessions.clone());
    let result = load::run(
        args.concurrency,
        Duration::from_secs(1),
        *args.duration,
        204,
        Arc::new(move |http, worker| {
            http.get(format!("{}/auth/verify", bases[worker % bases.len()]))
                .bearer_auth(&bearer)
                .header("VZ-M2M-Token", &sessions[worker % sessions.len()])
        }),
    )
    .await;
    stop_nodes(nodes).await?;
    let writes = row_writes(url).await? - before;
    Ok((result, writes))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = PgTestDatabase::create().await;
    let url = db.url().to_owned();
    let (bearer, sessions) = setup(&url, args.sessions).await?;
    let sessions = Arc::new(sessions);
    let g = DEFAULT_GRANULARITY;
    let (one, one_writes) = phase(&url, 1, g, &args, &bearer, &sessions).await?;
    let (two, two_writes) = phase(&url, 2, g, &args, &bearer, &sessions).await?;
    // The same single node writing every use: what coalescing saves, and proof the count works.
    let (every, every_writes) = phase(&url, 1, Duration::ZERO, &args, &bearer, &sessions).await?;
    ensure!(
        one.requests > 0 && two.requests > 0 && every.requests > 0,
        "no request succeeded"
    );
    let per_1000 = |writes: i64, r: &LoadResult| writes as f64 * 1_000.0 / r.sent_in_all as f64;
    let report = json!({
        "benchmark": "nodes",
        "method": "GET /auth/verify (bearer + VZ-M2M-Token), closed loop, in-process nodes on one PostgreSQL",
        "concurrency": args.concurrency,
        "sessions": args.sessions,
        "one_node": one,
        "two_nodes": two,
        "two_over_one": two.per_second / one.per_second,
        "row_writes_per_1000_calls_one_node": per_1000(one_writes, &one),
        "row_writes_per_1000_calls_two_nodes": per_1000(two_writes, &two),
        "one_node_writing_every_use": every,
        "row_writes_per_1000_calls_writing_every_use": per_1000(every_writes, &every),
        "coalesced_over_every_use": one.per_second / every.per_second,
    });
    println!("| setup | calls/s | p50 ms | p99 ms | failures | row writes / 1,000 calls |");
    println!("|---|---|---|---|---|---|");
    for (name, r, w) in [
        ("1 node", &one, one_writes),
        ("2 nodes", &two, two_writes),
        ("1 node, last use written every call", &every, every_writes),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            r.per_second,
            r.p50_ms,
            r.p99_ms,
            r.failures,
            per_1000(w, r)
        );
    }
    println!(
        "two nodes / one node: {:.2}",
        two.per_second / one.per_second
    );
    println!(
        "coalesced / writing every use: {:.2}",
        one.per_second / every.per_second
    );
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", args.json.display());
    Ok(())
}
