//! Shared fixtures: real SQLite files in temp dirs, the real router on 127.0.0.1:0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use m2m_session_server::crypto::{Argon2Settings, OsRandomness, PasswordHasher, SessionToken};
use m2m_session_server::domain::{Policy, SessionService};
use m2m_session_server::store::{
    ClientRecord, SessionRecord, SessionStore, SqliteStore, Store, StoreSettings, UserRecord,
};
use m2m_session_server::time::Timestamp;
use m2m_session_server::{Server, ServerConfig};
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An arbitrary fixed "now" for domain tests.
pub const T0: Timestamp = Timestamp(1_700_000_000_000);
pub use m2m_session_testkit::{CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};

/// The shared bucket's counters of a username, where most tests look (familiar sources off).
#[allow(async_fn_in_trait)]
pub trait SharedLockout {
    /// `None` when nothing counts against the username in the shared bucket.
    async fn lockout(
        &self,
        username: &str,
    ) -> m2m_session_server::store::StoreResult<Option<m2m_session_server::store::LockoutRecord>>;
}

impl<S: m2m_session_server::store::CounterStore + Sync + ?Sized> SharedLockout for S {
    async fn lockout(
        &self,
        username: &str,
    ) -> m2m_session_server::store::StoreResult<Option<m2m_session_server::store::LockoutRecord>>
    {
        Ok(self
            .lockouts(username)
            .await?
            .into_iter()
            .find(|r| r.bucket == m2m_session_server::store::SHARED_BUCKET))
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A fresh directory and the URL of a SQLite file inside it.
pub fn temp_db() -> (TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m2m.db").display());
    (dir, url)
}

pub fn hasher() -> PasswordHasher {
    m2m_session_testkit::cheap_hasher()
}

pub async fn sqlite_store(url: &str) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(url, &StoreSettings::default())
            .await
            .unwrap(),
    )
}

pub use m2m_session_testkit::PgTestDatabase;

/// A PostgreSQL store on a fresh database of its own, dropped with the guard.
pub async fn postgres_store() -> (PgTestDatabase, Arc<dyn Store>) {
    let db = PgTestDatabase::create().await;
    let store = m2m_session_server::store::open(db.url(), &StoreSettings::default())
        .await
        .unwrap();
    (db, store)
}

/// Adds the standard OAuth client and user.
pub async fn seed(store: Arc<dyn Store>) {
    m2m_session_testkit::seed(store, T0).await;
}

/// OAuth client `c1` and users of `names` (account `acct`, a placeholder hash), written
/// straight to the store: for store tests that never verify a secret.
pub async fn seed_records(store: &dyn Store, names: &[&str]) {
    store
        .insert_client(&ClientRecord {
            client_id: "c1".into(),
            secret_hash: "h".into(),
            scopes: vec![],
            created_at: T0,
        })
        .await
        .unwrap();
    for name in names {
        store
            .insert_user(&UserRecord {
                username: (*name).into(),
                account: Some("acct".into()),
                password_hash: "h".into(),
                created_at: T0,
            })
            .await
            .unwrap();
    }
}

/// A domain service over a real SQLite file, seeded, with the given policy.
pub async fn service(policy: Policy) -> (TempDir, SessionService) {
    service_with(policy, hasher()).await
}

/// [`service`] with a hasher of the test's choosing.
pub async fn service_with(policy: Policy, hasher: PasswordHasher) -> (TempDir, SessionService) {
    let (dir, url) = temp_db();
    let store = sqlite_store(&url).await;
    seed(store.clone()).await;
    (dir, SessionService::new(store, hasher, policy))
}

pub fn test_config(database: &str) -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: database.to_owned(),
        argon2: Argon2Settings::MINIMUM,
        hash_workers: 2,
        shutdown_delay: Duration::ZERO,
        ..ServerConfig::default()
    }
}

/// The real server on an ephemeral loopback port.
pub struct TestServer {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: &ServerConfig) -> Self {
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            stop: Some(stop),
            join: Some(join),
        }
    }

    /// Signals shutdown without waiting: the drain can then be watched.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Graceful shutdown, waiting until the store is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            join.await.unwrap().unwrap();
        }
    }
}

/// A seeded database, a running server and an HTTP client.
pub struct Fixture {
    pub dir: TempDir,
    pub url: String,
    pub server: TestServer,
    pub http: reqwest::Client,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let (dir, url) = temp_db();
        seed(sqlite_store(&url).await).await;
        Self::start_in(dir, &url, tweak).await
    }

    /// A server on an existing, already seeded database.
    pub async fn start_on(url: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), url, tweak).await
    }

    async fn start_in(dir: TempDir, url: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let url = url.to_owned();
        let mut config = test_config(&url);
        tweak(&mut config);
        let server = TestServer::start(&config).await;
        Self {
            dir,
            url,
            server,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    /// An API token for the standard client.
    pub async fn api_token(&self) -> String {
        self.api_token_for(CLIENT_ID, CLIENT_SECRET).await
    }

    pub async fn api_token_for(&self, id: &str, secret: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/ts/v1/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token request failed");
        json(r).await["access_token"].as_str().unwrap().to_owned()
    }

    /// A JSON call with the given bearer token and optional session token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(s) = session {
            req = req.header("VZ-M2M-Token", s);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    pub async fn login(&self, bearer: &str, username: &str, password: &str) -> Response {
        self.call(
            Method::POST,
            "/api/m2m/v1/session/login",
            bearer,
            None,
            Some(serde_json::json!({"username": username, "password": password})),
        )
        .await
    }

    /// Logs in the standard user and returns the session token.
    pub async fn session(&self, bearer: &str) -> String {
        let r = self.login(bearer, USERNAME, PASSWORD).await;
        assert_eq!(r.status(), 200);
        json(r).await["sessionToken"].as_str().unwrap().to_owned()
    }

    pub async fn logout(&self, bearer: &str, session: &str) -> Response {
        self.call(
            Method::POST,
            "/api/m2m/v1/session/logout",
            bearer,
            Some(session),
            None,
        )
        .await
    }

    pub async fn reset(&self, bearer: &str, session: &str, old: &str) -> Response {
        self.call(
            Method::PUT,
            "/api/m2m/v1/session/password/actions/reset",
            bearer,
            Some(session),
            Some(serde_json::json!({"oldPassword": old})),
        )
        .await
    }

    /// A reset with an `Idempotency-Key`.
    pub async fn reset_with_key(
        &self,
        bearer: &str,
        session: &str,
        old: &str,
        key: &str,
    ) -> Response {
        self.http
            .put(self.url("/api/m2m/v1/session/password/actions/reset"))
            .bearer_auth(bearer)
            .header("VZ-M2M-Token", session)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"oldPassword": old}))
            .send()
            .await
            .unwrap()
    }
}

pub async fn json(r: Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

/// Asserts a 400 (or `status`) with the given full error code, returning the body.
pub async fn assert_error(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "unexpected status for {code}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body = json(r).await;
    assert_eq!(body["errorCode"], code, "body: {body}");
    assert!(body["errorMessage"].is_string(), "body: {body}");
    body
}

/// Where a domain test's store lives; the guard keeps the database until the test ends.
pub enum Backend {
    Sqlite(TempDir),
    Postgres(PgTestDatabase),
}

impl Backend {
    /// A fresh, seeded store of each kind, for tests instantiated on every backend.
    pub async fn sqlite() -> (Self, Arc<dyn Store>) {
        let (dir, url) = temp_db();
        let store = sqlite_store(&url).await;
        seed(store.clone()).await;
        (Self::Sqlite(dir), store)
    }

    pub async fn postgres() -> (Self, Arc<dyn Store>) {
        let (db, store) = postgres_store().await;
        seed(store.clone()).await;
        (Self::Postgres(db), store)
    }

    /// The store a second node would use: another on the same PostgreSQL database, or the
    /// same SQLite store, as one process serves a SQLite file.
    pub async fn peer(&self, store: &Arc<dyn Store>) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(_) => store.clone(),
            Self::Postgres(_) => self.second_node().await,
        }
    }

    /// Another store on the same database: what a second node sees.
    pub async fn second_node(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => {
                sqlite_store(&format!("sqlite://{}", dir.path().join("m2m.db").display())).await
            }
            Self::Postgres(db) => {
                m2m_session_server::store::open(db.url(), &StoreSettings::default())
                    .await
                    .unwrap()
            }
        }
    }
}

/// A live session of `username` for client `c1` (account `acct`, as `seed_records` makes it),
/// last used at `T0`, under `token`.
pub fn session_of(token: &SessionToken, username: &str) -> SessionRecord {
    SessionRecord {
        token_digest: token.digest(),
        id: token.expose()[..16].to_owned(),
        username: username.into(),
        client_id: "c1".into(),
        created_at: T0,
        last_used_at: T0,
        account: Some("acct".into()),
        ip: None,
    }
}

/// A new session of `username` stored in `store` (see [`session_of`]).
pub async fn insert_new_session(
    store: &(impl SessionStore + ?Sized),
    username: &str,
) -> SessionRecord {
    let token = SessionToken::generate(&OsRandomness);
    let record = session_of(&token, username);
    store.insert_session(&record).await.unwrap();
    record
}
