//! A login's own cost besides its argon2 computation, timed in process with the cheapest argon2
//! parameters on a real SQLite file: `cargo bench -p m2m-session-server --bench login_path`.
//! What the end-to-end ratio (`scripts/bench perf`) cannot resolve: the store's part of a
//! success and of a failure, which changes with the lockout rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use m2m_session_server::domain::{Policy, RequestContext, SessionService};
use m2m_session_server::store::{SqliteStore, StoreSettings};
use m2m_session_server::time::Timestamp;
use m2m_session_testkit::{CLIENT_ID, PASSWORD, USERNAME, cheap_hasher, seed};
use secrecy::SecretString;

fn login_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let policy = Policy {
        // The address must not be throttled: the path measured is the same every time.
        ip_failure_limit: 0,
        ..Policy::default()
    };
    let svc = runtime.block_on(async {
        let store = SqliteStore::open(&url, &StoreSettings::default())
            .await
            .unwrap();
        let store: std::sync::Arc<dyn m2m_session_server::store::Store> =
            std::sync::Arc::new(store);
        seed(store.clone(), Timestamp::now()).await;
        SessionService::new(store, cheap_hasher(), policy)
    });
    let ctx = RequestContext::new(CLIENT_ID, Some("192.0.2.1".parse().unwrap()));
    let right = SecretString::from(PASSWORD);
    c.bench_function("login, SQLite, cheapest argon2", |b| {
        b.iter(|| {
            runtime
                .block_on(svc.login(&ctx, USERNAME, &right, Timestamp::now()))
                .unwrap()
        })
    });
    // A new name each time, as in a password spray: every failure counts and none locks, so
    // each iteration takes the same path (one name's distinct guesses would lock it).
    let guesses = AtomicU64::new(0);
    let wrong = SecretString::from("a wrong password");
    c.bench_function(
        "failed login (a counted failure), SQLite, cheapest argon2",
        |b| {
            b.iter(|| {
                let name = format!("sprayed-{}", guesses.fetch_add(1, Ordering::Relaxed));
                runtime
                    .block_on(svc.login(&ctx, &name, &wrong, Timestamp::now()))
                    .unwrap_err()
            })
        },
    );
}

criterion_group!(benches, login_path);
criterion_main!(benches);
