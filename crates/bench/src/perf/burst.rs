//! Many logins at once: the server's peak memory, and how fast it sheds what it cannot hash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Barrier;

use super::served::Served;
use crate::load::percentile_ms;
use crate::seed;

#[derive(Debug, Clone, serde::Serialize)]
pub struct BurstResult {
    pub logins: usize,
    pub succeeded: usize,
    /// Answered 503 `ServiceUnavailable` (argon2 queue full) at once.
    pub shed: usize,
    pub other: usize,
    pub rss_before_mib: f64,
    pub peak_rss_mib: f64,
    pub shed_p50_ms: f64,
    pub shed_p99_ms: f64,
    pub shed_max_ms: f64,
    pub all_answered_ms: f64,
}

/// Sends `logins` logins at the same instant, each on its own connection, spread over `users`.
pub async fn run(
    served: &Served,
    bearer: &str,
    users: usize,
    logins: usize,
) -> anyhow::Result<BurstResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(logins)
        .timeout(Duration::from_secs(120))
        .build()?;
    let rss_before = served.rss_kib()?;
    let barrier = Arc::new(Barrier::new(logins + 1));
    let mut tasks = Vec::new();
    for i in 0..logins {
        let request = http
            .post(format!("{}/api/m2m/v1/session/login", served.base))
            .bearer_auth(bearer)
            .json(&json!({"username": seed::username(i % users), "password": seed::PASSWORD}));
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sent = Instant::now();
            let status = request.send().await.map(|r| r.status().as_u16()).ok();
            (status, sent.elapsed())
        }));
    }
    let start = Instant::now();
    barrier.wait().await;
    let (mut succeeded, mut other) = (0, 0);
    let mut shed = Vec::new();
    for t in tasks {
        match t.await? {
            (Some(200), _) => succeeded += 1,
            (Some(503), took) => shed.push(took),
            _ => other += 1,
        }
    }
    let all_answered = start.elapsed();
    shed.sort();
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(BurstResult {
        logins,
        succeeded,
        shed: shed.len(),
        other,
        rss_before_mib: mib(rss_before),
        peak_rss_mib: mib(served.peak_rss_kib()?),
        shed_p50_ms: percentile_ms(&shed, 0.5),
        shed_p99_ms: percentile_ms(&shed, 0.99),
        shed_max_ms: shed.last().map_or(0.0, |d| d.as_secs_f64() * 1_000.0),
        all_answered_ms: all_answered.as_secs_f64() * 1_000.0,
    })
}
