//! Connections cannot hold the server: timeouts per connection state, a bound on buffered
//! header bytes, a connection cap with a reserve for health checks, and bodies judged before
//! they are read. Raw sockets on 127.0.0.1, every wait bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_session_server::listener::HEALTH_RESERVE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(1);
/// The generous bound of every "closed within": the timeout plus 5 s.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

async fn short_timeouts() -> Fixture {
    Fixture::start_with(|c| {
        c.connections.header_read_timeout = TIMEOUT;
        c.connections.body_read_timeout = TIMEOUT;
        c.connections.keep_alive_timeout = TIMEOUT;
    })
    .await
}

fn addr(f: &Fixture) -> String {
    f.server.base.trim_start_matches("http://").to_owned()
}

/// Sends `bytes` and reads until the server closes; `None` if still open after the bound.
async fn send_and_wait_for_close(addr: &str, bytes: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(CLOSED_WITHIN, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&answer).into_owned())
}

fn login_head(bearer: &str, extra: &str) -> String {
    format!(
        "POST /api/m2m/v1/session/login HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_within_their_timeouts() {
    let f = short_timeouts().await;
    let bearer = f.api_token().await;
    let addr = addr(&f);
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("nothing", Vec::new()),
        ("half a request line", b"POST /api/m2m/v1/sess".to_vec()),
        (
            "half the headers",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaa".to_vec(),
        ),
        (
            "half a body",
            format!(
                "{}{{\"username\":",
                login_head(&bearer, "Content-Length: 100\r\n")
            )
            .into_bytes(),
        ),
        (
            "an unfinished chunked body",
            format!(
                "{}5\r\n{{\"use\r\n",
                login_head(&bearer, "Transfer-Encoding: chunked\r\n")
            )
            .into_bytes(),
        ),
        (
            "silence after a keep-alive answer",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ];
    let started = Instant::now();
    let runs = cases.into_iter().map(|(name, bytes)| {
        let addr = addr.clone();
        async move { (name, send_and_wait_for_close(&addr, &bytes).await) }
    });
    for (name, answer) in futures_join_all(runs).await {
        let answer = answer.unwrap_or_else(|| panic!("{name}: still open after {CLOSED_WITHIN:?}"));
        if name == "half a body" || name == "an unfinished chunked body" {
            assert!(answer.starts_with("HTTP/1.1 408"), "{name}: {answer}");
            assert!(answer.contains("DeserializationFailed"), "{name}: {answer}");
        }
    }
    assert!(started.elapsed() < CLOSED_WITHIN + Duration::from_secs(1));
    f.server.stop().await;
}

/// `join_all` without a futures dependency: each on its own task.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_slowloris_burst_is_closed_within_the_timeout_and_healthz_answers_throughout() {
    let f = Fixture::start_with(|c| {
        c.connections.header_read_timeout = TIMEOUT;
        c.connections.max_connections = 50;
    })
    .await;
    let addr = addr(&f);
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    // Every check on a fresh connection, as a load balancer's probe would come.
    for _ in 0..5 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            reqwest::Client::new().get(f.url("/healthz")).send(),
        )
        .await
        .expect("/healthz did not answer during the flood")
        .unwrap();
        assert_eq!(r.status(), 200);
    }
    let closed = tokio::time::timeout(CLOSED_WITHIN, async {
        for s in &mut held {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "slow connections still open after {CLOSED_WITHIN:?}"
    );
    f.server.stop().await;
}

#[tokio::test]
async fn beyond_the_cap_only_health_is_served_and_idle_reserve_connections_make_room() {
    let cap = 4;
    let f = Fixture::start_with(|c| c.connections.max_connections = cap).await;
    let bearer = f.api_token().await;
    let addr = addr(&f);
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        assert!(s.read(&mut buf).await.unwrap() > 0);
        held.push(s);
    }
    // The reserve: health answers, anything else 503 in the contract's shape.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = http.get(f.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(f.url("/api/m2m/v1/session/login"))
        .bearer_auth(&bearer)
        .json(&serde_json::json!({"username": USERNAME, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    assert!(r.headers().contains_key("retry-after"));
    assert_error(
        r,
        503,
        "UnifiedWebService.REQUEST_FAILED.ServiceUnavailable",
    )
    .await;
    // A reserve full of silent connections does not keep a probe out: the probe takes the
    // place of the one that waited longest, which is closed.
    let mut silent = Vec::new();
    for _ in 0..HEALTH_RESERVE {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let r = http.get(f.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut buf = [0u8; 16];
    let oldest = tokio::time::timeout(CLOSED_WITHIN, silent[0].read(&mut buf))
        .await
        .expect("the oldest reserve connection was not closed");
    assert!(matches!(oldest, Ok(0) | Err(_)));
    drop(silent);
    drop(held);
    f.server.stop().await;
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_the_body_is_sent() {
    let f = short_timeouts().await;
    let bearer = f.api_token().await;
    let head = login_head(&bearer, "Content-Length: 1000000000\r\n");
    let answer = send_and_wait_for_close(&addr(&f), head.as_bytes())
        .await
        .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PayloadTooLarge"), "{answer}");
    f.server.stop().await;
}

#[tokio::test]
async fn a_body_cut_short_or_badly_chunked_is_400_not_413() {
    let f = short_timeouts().await;
    let bearer = f.api_token().await;
    let addr = addr(&f);
    let cases = [
        (
            "cut short",
            format!(
                "{}{}",
                login_head(&bearer, "Content-Length: 100\r\n"),
                "x".repeat(32)
            ),
        ),
        (
            "malformed chunk size",
            format!(
                "{}zz\r\nabc\r\n",
                login_head(&bearer, "Transfer-Encoding: chunked\r\n")
            ),
        ),
        (
            "missing final chunk",
            format!(
                "{}5\r\nhello\r\n",
                login_head(&bearer, "Transfer-Encoding: chunked\r\n")
            ),
        ),
    ];
    for (name, request) in cases {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(CLOSED_WITHIN, s.read_to_string(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer"))
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        assert!(answer.contains("DeserializationFailed"), "{name}: {answer}");
    }
    f.server.stop().await;
}

/// Peak memory of this test process (server and client) in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 500 connections each sending 256 KiB of headers that never end. Without a bound hyper
/// buffers up to ~400 KiB each (125 MiB here); with the default 16 KiB it is 8 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_cannot_grow_memory_past_the_header_bound() {
    const CONNECTIONS: usize = 500;
    const PER_CONNECTION: usize = 256 * 1024;
    let f = Fixture::start_with(|c| {
        c.connections.header_read_timeout = Duration::from_secs(3);
        c.connections.max_connections = CONNECTIONS;
    })
    .await;
    let addr = addr(&f);
    let before = peak_rss_kib();
    // One padding buffer for all, so that the client's own memory stays out of the figure.
    let padding: Arc<[u8]> = vec![b'a'; PER_CONNECTION].into();
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let (addr, padding) = (addr.clone(), padding.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect(&addr).await else {
                return;
            };
            let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-{i}: ");
            // The server stops reading (431 and close) once its bound is reached.
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                s.write_all(head.as_bytes()).await?;
                s.write_all(&padding).await
            })
            .await;
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }));
    }
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::Client::new().get(f.url("/healthz")).send(),
    )
    .await
    .expect("/healthz did not answer during the flood")
    .unwrap();
    assert_eq!(r.status(), 200);
    for t in tasks {
        t.await.unwrap();
    }
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    eprintln!("peak RSS grew by {grown_mib} MiB under {CONNECTIONS} half-sent headers");
    // 500 × 16 KiB is 8 MiB; the rest is slack for allocator and task overhead.
    assert!(grown_mib < 40, "peak RSS grew by {grown_mib} MiB");
    f.server.stop().await;
}
