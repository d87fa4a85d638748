//! `sdk`: what the Rust SDK costs over bare HTTP, as two ratios measured in one run.
//!
//! 1. The SDK's `verify_session` against the load generator, on the same endpoint of a real
//!    `serve` process at the same concurrency (the ratio `perf` also reports).
//! 2. The `middleware` feature's `ThingSpaceAuth` on a device-API stand-in (the testkit's
//!    `TestServer`, in this process) against plain reqwest sending the same two headers itself.
//!
//! Each pair is measured A-B-B-A for `rounds` rounds: the shared machine drifts, and the order
//! must not favour either side.

use std::sync::Arc;
use std::time::Duration;

use m2m_session_client::{Client, SecretString, Session, ThingSpaceAuth};
use m2m_session_server::crypto::Argon2Settings;
use m2m_session_testkit::{DEVICE_API_PATH, TestServer};

use crate::load::{self, LoadResult};
use crate::perf::served::{self, Served};
use crate::perf::{WARMUP, abba, sdk_against_tool};
use crate::seed;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measuring time of each side in each round (split in two halves, A-B-B-A)
    #[arg(long, default_value = "4s")]
    duration: humantime::Duration,
    /// Rounds of A-B-B-A
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Concurrent callers on each side
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let half = *args.duration / 2;
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("bench.db").display().to_string();
    eprintln!("seeding 16 users and 1,000 sessions");
    seed::users(&database, 16, Argon2Settings::MINIMUM).await?;
    let tokens = Arc::new(seed::sessions(&database, 16, 1_000, 0).await?);
    let served = Served::start(&served::default_binary()?, &database, &[]).await?;
    let (sdk, tool) =
        sdk_against_tool(&served, &tokens, args.concurrency, half, args.rounds).await?;
    served.stop().await?;

    eprintln!("middleware against plain reqwest on a device-API stand-in");
    let (middleware, plain) = middleware_against_plain(&args, half).await?;

    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "", "calls/s", "p99 ms", "failures"
    );
    for (name, r) in [
        ("SDK verify_session (serve)", &sdk),
        ("load generator, same endpoint", &tool),
        ("middleware, device-API stand-in", &middleware),
        ("plain reqwest with both headers, same route", &plain),
    ] {
        println!(
            "{name:<44} {:>10.0} {:>10.2} {:>8}",
            r.per_second, r.p99_ms, r.failures
        );
    }
    println!(
        "SDK ÷ load generator: {:.2}; middleware ÷ plain reqwest: {:.2}",
        sdk.per_second / tool.per_second,
        middleware.per_second / plain.per_second
    );
    Ok(())
}

/// The same stand-in route called through `ThingSpaceAuth` and with the headers set by hand.
async fn middleware_against_plain(
    args: &Args,
    half: Duration,
) -> anyhow::Result<(LoadResult, LoadResult)> {
    let server = TestServer::builder().device_api().start().await;
    let client = Client::builder()
        .base_url(&server.base_url())?
        .oauth_client_credentials(
            TestServer::CLIENT_ID,
            SecretString::from(TestServer::CLIENT_SECRET),
        )
        .build()?;
    let session = Arc::new(Session::new(
        client.clone(),
        TestServer::USERNAME,
        SecretString::from(TestServer::PASSWORD),
    ));
    let pool = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()
    };
    let with_auth = reqwest_middleware::ClientBuilder::new(pool()?)
        .with(ThingSpaceAuth::new(session.clone()))
        .build();
    let bare = pool()?;
    // The plain side gets its tokens the way a program without the middleware would: once.
    let bearer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/ts/v1/oauth2/token", server.base_url()))
        .basic_auth(TestServer::CLIENT_ID, Some(TestServer::CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer = bearer["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no access_token from the test server"))?
        .to_owned();
    let token = session.token().await?;
    let url = format!("http://{}{DEVICE_API_PATH}", server.addr());
    let through_middleware = {
        let url = url.clone();
        move |_| {
            let sent = with_auth.post(&url).send();
            async move { sent.await.is_ok_and(|r| r.status() == 200) }
        }
    };
    let by_hand = {
        let token = token.expose_secret().to_owned();
        move |_| {
            let sent = bare
                .post(&url)
                .bearer_auth(&bearer)
                .header("VZ-M2M-Token", &token)
                .send();
            async move { sent.await.is_ok_and(|r| r.status() == 200) }
        }
    };
    let (through_middleware, by_hand) = (Arc::new(through_middleware), Arc::new(by_hand));
    abba(
        args.rounds,
        || {
            let call = through_middleware.clone();
            async move {
                Ok(load::run_calls(args.concurrency, WARMUP, half, move |w| call(w)).await)
            }
        },
        || {
            let call = by_hand.clone();
            async move {
                Ok(load::run_calls(args.concurrency, WARMUP, half, move |w| call(w)).await)
            }
        },
    )
    .await
}
