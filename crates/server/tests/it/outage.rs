//! The database goes away mid-load: answers are 503 with Retry-After (never a hang, never a
//! 500), readiness says so, and service resumes by itself when the database is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m2m_session_server::store::StoreSettings;
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::*;

/// A TCP proxy to PostgreSQL that the test can cut (dropping live connections and refusing
/// new ones) and restore.
struct Cuttable {
    port: u16,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), live.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let upstream = upstream.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, cut, live }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.live.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Asks until `f` gives `want` (10 s at most).
async fn eventually<F, Fut>(want: u16, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    for _ in 0..100 {
        if f().await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never answered {want}");
}

async fn check_outage_and_recovery(
    f: &Fixture,
    bearer: &str,
    outage: impl FnOnce(),
    end: impl FnOnce(),
) {
    // A client that would notice a hang: no request may take 10 s.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let login = || async {
        http.post(f.url("/api/m2m/v1/session/login"))
            .bearer_auth(bearer)
            .json(&serde_json::json!({"username": USERNAME, "password": PASSWORD}))
            .send()
            .await
            .expect("the server answered in time")
    };
    assert_eq!(login().await.status(), 200);
    outage();
    for _ in 0..3 {
        let r = login().await;
        assert!(r.headers().contains_key("retry-after"));
        assert_error(
            r,
            503,
            "UnifiedWebService.REQUEST_FAILED.ServiceUnavailable",
        )
        .await;
    }
    end();
    eventually(200, || async { login().await.status().as_u16() }).await;
    eventually(200, || async {
        http.get(f.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;
}

#[tokio::test]
async fn postgres_cut_off_mid_run_answers_503_then_recovers() {
    let db = PgTestDatabase::create().await;
    let options: PgConnectOptions = db.url().parse().unwrap();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let proxy = Cuttable::start(upstream).await;
    let via_proxy = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        options.get_username(),
        proxy.port,
        options.get_database().unwrap()
    );
    seed(
        m2m_session_server::store::open(db.url(), &StoreSettings::default())
            .await
            .unwrap(),
    )
    .await;
    let f = Fixture::start_on(&via_proxy, |c| {
        c.store.acquire_timeout = Duration::from_millis(800);
    })
    .await;
    let bearer = f.api_token().await;
    let http = reqwest::Client::new();
    check_outage_and_recovery(&f, &bearer, || proxy.cut(), || proxy.restore()).await;
    // Readiness told the truth during the outage too.
    proxy.cut();
    let r = http.get(f.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    proxy.restore();
    drop(db);
}

#[tokio::test]
async fn sqlite_locked_by_another_process_answers_503_then_recovers() {
    let f = Fixture::start_with(|c| c.store.acquire_timeout = Duration::from_millis(500)).await;
    let bearer = f.api_token().await;
    let path = f.url.trim_start_matches("sqlite://").to_owned();
    let locker: Arc<Mutex<Option<sqlx::SqliteConnection>>> = Arc::default();
    let (hold, release) = (locker.clone(), locker.clone());
    let path_for_lock = path.clone();
    check_outage_and_recovery(
        &f,
        &bearer,
        move || {
            // Another process's long write transaction holds the database's write lock.
            let conn = std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    let mut conn =
                        sqlx::SqliteConnection::connect(&format!("sqlite://{path_for_lock}"))
                            .await
                            .unwrap();
                    sqlx::query("BEGIN EXCLUSIVE")
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    conn
                })
            })
            .join()
            .unwrap();
            *hold.lock().unwrap() = Some(conn);
        },
        move || {
            let conn = release.lock().unwrap().take().unwrap();
            std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    let mut conn = conn;
                    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                    conn.close().await.unwrap();
                })
            })
            .join()
            .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn readiness_is_off_while_another_process_holds_the_sqlite_write_lock() {
    let f = Fixture::start_with(|c| c.store.acquire_timeout = Duration::from_millis(500)).await;
    let ready = || async { f.http.get(f.url("/readyz")).send().await.unwrap().status() };
    assert_eq!(ready().await, 200);
    // Reads still work in WAL mode; writes (every login) cannot be taken.
    let mut locker = sqlx::SqliteConnection::connect(&f.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    assert_eq!(ready().await, 503);
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    assert_eq!(ready().await, 200);
    locker.close().await.unwrap();
}

/// One setting bounds the whole wait: a login against a write-locked SQLite file answers 503
/// after one acquire timeout, not one for the login and another for its audit line.
#[tokio::test]
async fn a_login_against_a_write_locked_sqlite_waits_one_acquire_timeout_not_two() {
    let wait = Duration::from_secs(2);
    let f = Fixture::start_with(|c| c.store.acquire_timeout = wait).await;
    let bearer = f.api_token().await;
    let mut locker = sqlx::SqliteConnection::connect(&f.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = f.login(&bearer, USERNAME, PASSWORD).await;
    let took = started.elapsed();
    assert_error(
        r,
        503,
        "UnifiedWebService.REQUEST_FAILED.ServiceUnavailable",
    )
    .await;
    // Two waits would take 4 s; one, 2 s and some slack.
    assert!(took < wait * 7 / 4, "the login waited {took:?}");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
}
