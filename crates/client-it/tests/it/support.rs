use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use m2m_session_client::{Client, RetryConfig};
use m2m_session_server::crypto::PasswordHasher;
use m2m_session_server::domain::{Policy, SessionService};
use m2m_session_server::http::{AppState, router};
use m2m_session_server::store;
use m2m_session_server::time::Timestamp;
use secrecy::SecretString;

pub use m2m_session_testkit::{CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};

/// The real router on 127.0.0.1:0 over a real SQLite file, counting requests per path.
pub struct CountingServer {
    pub api_base: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    statuses: Arc<Mutex<Vec<(String, u16)>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl CountingServer {
    pub async fn start(policy: Policy) -> Self {
        Self::start_with(policy, m2m_session_testkit::cheap_hasher()).await
    }

    /// With a hasher of the test's choosing, e.g. slow enough to keep a reset running.
    pub async fn start_with(policy: Policy, hasher: PasswordHasher) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m2m.db").display());
        let store = store::open(&url, &store::StoreSettings::default())
            .await
            .unwrap();
        m2m_session_testkit::seed(store.clone(), Timestamp::now()).await;
        let service = SessionService::new(store, hasher, policy);
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let statuses: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, status_sink, auth_sink) =
            (counts.clone(), statuses.clone(), authorizations.clone());
        let app = router(AppState::new(service)).layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let (sink, status_sink, auth_sink) =
                    (sink.clone(), status_sink.clone(), auth_sink.clone());
                async move {
                    let path = req.uri().path().to_owned();
                    *sink.lock().unwrap().entry(path.clone()).or_default() += 1;
                    if let Some(value) = req.headers().get("authorization") {
                        let value = value.to_str().unwrap_or_default().to_owned();
                        auth_sink.lock().unwrap().push(value);
                    }
                    let response = next.run(req).await;
                    status_sink
                        .lock()
                        .unwrap()
                        .push((path, response.status().as_u16()));
                    response
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            api_base: format!("http://{addr}/api"),
            counts,
            statuses,
            authorizations,
            _dir: dir,
        }
    }

    pub fn count(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The statuses answered on `path`, in order.
    pub fn statuses(&self, path: &str) -> Vec<u16> {
        self.statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, s)| *s)
            .collect()
    }

    /// Every `Authorization` header received (`Basic ...` for tokens, `Bearer ...` for calls).
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().unwrap().clone()
    }

    pub fn token_requests(&self) -> usize {
        self.count("/api/ts/v1/oauth2/token")
    }

    pub fn logins(&self) -> usize {
        self.count("/api/m2m/v1/session/login")
    }

    pub fn client(&self) -> Client {
        self.client_with(CLIENT_ID, CLIENT_SECRET)
    }

    pub fn client_with(&self, id: &str, secret: &str) -> Client {
        Client::builder()
            .base_url(&self.api_base)
            .unwrap()
            .oauth_client_credentials(id, SecretString::from(secret.to_owned()))
            .retry(fast_retry())
            .build()
            .unwrap()
    }
}

/// Default attempts, tiny waits: retries are exercised without slowing the suite.
pub fn fast_retry() -> RetryConfig {
    RetryConfig::default()
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(20))
}

/// A client builder for a testkit `TestServer`, with its standard OAuth client.
pub fn builder_for(server: &m2m_session_testkit::TestServer) -> m2m_session_client::ClientBuilder {
    use m2m_session_testkit::TestServer;
    Client::builder()
        .base_url(&server.base_url())
        .unwrap()
        .oauth_client_credentials(
            TestServer::CLIENT_ID,
            secrecy::SecretString::from(TestServer::CLIENT_SECRET),
        )
}
