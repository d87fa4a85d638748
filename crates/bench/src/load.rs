//! A closed-loop load generator: `concurrency` workers, each sending its next request when the
//! previous one is answered, for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One HTTP request built by worker `i`.
pub type Request = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadResult {
    /// Successful requests in the measured time.
    pub requests: u64,
    /// Every request sent, warm-up included (for per-request costs counted outside).
    pub sent_in_all: u64,
    pub failures: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time the server process spent meanwhile, warm-up included, where measured.
    pub server_cpu_s: f64,
}

impl LoadResult {
    /// The server's CPU time per request sent, in microseconds.
    pub fn server_cpu_us_per_request(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.sent_in_all.max(1) as f64
    }
}

/// Sends `request` with one pooled HTTP client and counts answers with `expected_status`.
pub async fn run(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    expected_status: u16,
    request: Request,
) -> LoadResult {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    run_calls(concurrency, warmup, duration, move |worker| {
        let sent = request(&http, worker).send();
        async move {
            match sent.await {
                Ok(r) => {
                    let ok = r.status().as_u16() == expected_status;
                    let _ = r.bytes().await;
                    ok
                }
                Err(_) => false,
            }
        }
    })
    .await
}

/// Runs `call` (worker index → success) from `concurrency` workers for `duration` after a
/// `warmup`; the index lets calls be spread over nodes, users or sessions.
pub async fn run_calls<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    call: F,
) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    run_calls_until(
        concurrency,
        warmup,
        duration,
        Arc::new(AtomicBool::new(false)),
        call,
    )
    .await
}

/// [`run_calls`] that also ends as soon as `stop` is set (the measured time is then shorter
/// than `duration`, and the rates are per the time actually measured).
pub async fn run_calls_until<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    stop: Arc<AtomicBool>,
    call: F,
) -> LoadResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let failures = Arc::new(AtomicU64::new(0));
    let sent_in_all = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (call, failures, sent_in_all, stop) = (
            call.clone(),
            failures.clone(),
            sent_in_all.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                sent_in_all.fetch_add(1, Ordering::Relaxed);
                let ok = call(worker).await;
                if sent >= measure_from {
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    summarize(
        all,
        measured,
        failures.load(Ordering::Relaxed),
        sent_in_all.load(Ordering::Relaxed),
    )
}

fn summarize(mut all: Vec<Duration>, duration: Duration, failures: u64, sent: u64) -> LoadResult {
    all.sort();
    let seconds = duration.as_secs_f64();
    LoadResult {
        requests: all.len() as u64,
        sent_in_all: sent,
        failures,
        seconds,
        per_second: if seconds > 0.0 {
            all.len() as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile_ms(&all, 0.50),
        p99_ms: percentile_ms(&all, 0.99),
        server_cpu_s: 0.0,
    }
}

/// Percentile (0–1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
}
