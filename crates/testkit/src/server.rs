//! [`TestServer`]: a real m2m-session server in the test's own process, for the tests of programs
//! that talk to ThingSpace. Better than a mock: every answer is the real contract's, from the
//! real rules, and the test can still make the moments that are hard to wait for (an expired
//! session, a locked user, a slow or failing answer) happen on demand.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use m2m_session_model::ErrorCode;
use m2m_session_server::domain::{Policy, RequestContext, SessionService};
use m2m_session_server::http::{ApiClient, AppError, AppState, SessionTokenHeader, router};
use m2m_session_server::store::{SqliteStore, Store, StoreSettings};
use m2m_session_server::time::Timestamp;
use secrecy::SecretString;

use crate::{CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, cheap_hasher, seed};

/// The path of the device-API stand-in ([`TestServerBuilder::device_api`]): the platform's
/// device list, which needs both tokens like every ThingSpace call.
pub const DEVICE_API_PATH: &str = "/api/m2m/v1/devices/actions/list";

/// A server on `127.0.0.1` with a fresh SQLite database, the cheapest argon2 and the standard
/// client ([`CLIENT_ID`], [`CLIENT_SECRET`]) and user ([`USERNAME`], [`PASSWORD`]). It stops
/// and its database is deleted when it is dropped.
///
/// ```no_run
/// # async fn demo() {
/// use m2m_session_testkit::TestServer;
///
/// let server = TestServer::start().await;
/// // Point the program under test at server.base_url() with the standard credentials, then:
/// server.expire_sessions(TestServer::USERNAME).await; // its next call finds the session gone
/// server.fail_next(1, 503); // and the call after that gets a 503
/// # }
/// ```
pub struct TestServer {
    addr: SocketAddr,
    service: SessionService,
    faults: Arc<Faults>,
    device_api_calls: Arc<AtomicU64>,
    /// Fired on drop: the server stops accepting and ends its kept-alive connections too.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

/// Options of a [`TestServer`] before it starts.
#[derive(Default)]
pub struct TestServerBuilder {
    policy: Policy,
    routes: Vec<(String, MethodRouter<AppState>)>,
    device_api: bool,
}

/// What the next answers do instead of (or before) the real thing.
#[derive(Default)]
struct Faults {
    queue: Mutex<VecDeque<Fault>>,
}

#[derive(Clone, Copy)]
enum Fault {
    /// Answer this status with the contract's error body, without running the route.
    Fail(StatusCode),
    /// Wait this long, then answer for real.
    Delay(Duration),
}

impl Faults {
    fn push(&self, fault: Fault, times: usize) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.extend(std::iter::repeat_n(fault, times));
    }

    fn next(&self) -> Option<Fault> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

impl TestServerBuilder {
    /// The rules it runs with (idle timeout, lockout threshold, ...); the default is the
    /// platform's.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Adds a route of the test's own beside the contract's, e.g. a stand-in of another
    /// ThingSpace API; its handlers can take [`ApiClient`] and [`SessionTokenHeader`] to check
    /// tokens as the session routes do.
    pub fn route(mut self, path: &str, route: MethodRouter<AppState>) -> Self {
        self.routes.push((path.to_owned(), route));
        self
    }

    /// Adds `POST` [`DEVICE_API_PATH`], a stand-in of the platform's device list: it checks the
    /// bearer token (401 with the gateway's fault when it is bad) and the `VZ-M2M-Token` (400
    /// `SessionToken.Expired` when the session is gone), then answers
    /// `{"devices":[],"username":...}`. [`TestServer::device_api_calls`] counts its answers.
    pub fn device_api(mut self) -> Self {
        self.device_api = true;
        self
    }

    /// Starts the server; panics with the reason if it cannot (a test cannot go on without it).
    pub async fn start(self) -> TestServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&url, &StoreSettings::default())
                .await
                .unwrap_or_else(|e| panic!("the test database did not open: {e}")),
        );
        seed(store.clone(), Timestamp::now()).await;
        let service = SessionService::new(store, cheap_hasher(), self.policy);
        let faults = Arc::new(Faults::default());
        let device_api_calls = Arc::new(AtomicU64::new(0));
        let mut extra: Router<AppState> = Router::new();
        for (path, route) in self.routes {
            extra = extra.route(&path, route);
        }
        if self.device_api {
            let calls = device_api_calls.clone();
            extra = extra.route(
                DEVICE_API_PATH,
                axum::routing::post(move |state, client, session| {
                    device_list(state, client, session, calls.clone())
                }),
            );
        }
        let state = AppState::new(service.clone());
        let app = extra.with_state(state.clone()).merge(router(state)).layer(
            axum::middleware::from_fn_with_state(faults.clone(), inject_faults),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        TestServer {
            addr,
            service,
            faults,
            device_api_calls,
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl TestServer {
    /// The standard OAuth client's id.
    pub const CLIENT_ID: &'static str = CLIENT_ID;
    /// The standard OAuth client's secret.
    pub const CLIENT_SECRET: &'static str = CLIENT_SECRET;
    /// The standard user.
    pub const USERNAME: &'static str = USERNAME;
    /// The standard user's password.
    pub const PASSWORD: &'static str = PASSWORD;

    /// A server with the platform's rules and the standard client and user.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// A server with options: rules, routes of the test's own, the device-API stand-in.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// The API base URL, ending in `/api`, as an SDK or the CLI takes it.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The domain service behind it, for anything the helpers below do not cover.
    pub fn service(&self) -> &SessionService {
        &self.service
    }

    /// Ends every session of `username`, as an idle timeout or an administrator would: the
    /// next call with one of them gets `SessionToken.Expired`. Returns how many there were.
    pub async fn expire_sessions(&self, username: &str) -> u64 {
        self.service
            .store()
            .delete_user_sessions(username)
            .await
            .unwrap_or_else(|e| panic!("expiring the sessions of {username:?} failed: {e}"))
    }

    /// Locks `username` the way the platform does: as many distinct wrong passwords as the
    /// lockout threshold allows. Its next login gets `Login.Locked`; panics if the rules the
    /// server runs with do not lock.
    pub async fn lock_user(&self, username: &str) {
        let ctx = RequestContext::new(CLIENT_ID, None);
        let mut last = None;
        for n in 0..self.service.policy().lockout_threshold {
            let wrong = SecretString::from(format!("not the password {n}"));
            last = self
                .service
                .login(&ctx, username, &wrong, Timestamp::now())
                .await
                .err();
        }
        let locked = matches!(
            self.service
                .login(&ctx, username, &SecretString::from("x"), Timestamp::now())
                .await,
            Err(m2m_session_server::domain::DomainError::Locked { .. })
        );
        assert!(
            locked,
            "{username:?} was not locked by its wrong passwords (last answer: {last:?})"
        );
    }

    /// The next `times` requests (any route) are answered `status` with the contract's error
    /// body (`UnifiedWebService.REQUEST_FAILED.UnexpectedError`) without reaching the route:
    /// a server failing as real ones do.
    pub fn fail_next(&self, times: usize, status: u16) {
        let status = StatusCode::from_u16(status)
            .unwrap_or_else(|_| panic!("{status} is not an HTTP status"));
        self.faults.push(Fault::Fail(status), times);
    }

    /// The next `times` requests wait `delay` before they are answered for real.
    pub fn delay_next(&self, times: usize, delay: Duration) {
        self.faults.push(Fault::Delay(delay), times);
    }

    /// How many calls the device-API stand-in has answered 200.
    pub fn device_api_calls(&self) -> u64 {
        self.device_api_calls.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn inject_faults(
    State(faults): State<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    match faults.next() {
        Some(Fault::Fail(status)) => {
            let body = serde_json::json!({
                "errorCode": ErrorCode::UnexpectedError.as_str(),
                "errorMessage": "A failure the test asked for.",
            });
            (status, Json(body)).into_response()
        }
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        None => next.run(request).await,
    }
}

async fn device_list(
    State(state): State<AppState>,
    client: Result<ApiClient, AppError>,
    session: SessionTokenHeader,
    calls: Arc<AtomicU64>,
) -> Result<Json<serde_json::Value>, AppError> {
    let ApiClient(client_id) = client?;
    let token = session.token()?;
    let session = state
        .service
        .authenticate_session(&client_id, &token, state.clock.now())
        .await?;
    calls.fetch_add(1, Ordering::SeqCst);
    Ok(Json(
        serde_json::json!({"devices": [], "username": session.username}),
    ))
}
