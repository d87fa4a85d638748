//! The hazard every official SDK has: a reset whose answer is lost. Here a proxy forwards the
//! first reset to the real server and swallows the answer; the SDK's retry carries the same
//! `Idempotency-Key`, gets the same new password, and the user can log in with it. Under load the
//! retry can arrive while the first reset is still running (409 `IdempotencyKey.InProgress`):
//! the SDK waits for it rather than giving up on an answer that is about to exist.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use m2m_session_client::{
    Client, LogInRequest, RequestOptions, SessionResetPasswordRequest, SessionToken,
};
use m2m_session_server::crypto::{Argon2Settings, PasswordHasher};
use m2m_session_server::domain::Policy;
use secrecy::SecretString;

use crate::support::*;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    resets_seen: Arc<AtomicUsize>,
}

/// Forwards everything; the first reset's answer never comes back (the upstream did apply it).
async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let is_reset = parts.uri.path().ends_with("/password/actions/reset");
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut upstream = proxy.http.request(
        parts.method.clone(),
        format!("{}{}", proxy.upstream, parts.uri),
    );
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.body(body).send().await.expect("upstream answers");
    if is_reset && proxy.resets_seen.fetch_add(1, Ordering::SeqCst) == 0 {
        // The server has reset the password; its answer is lost on the way back.
        std::future::pending::<()>().await;
    }
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(Body::from(answer.bytes().await.unwrap_or_default()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_lost_reset_answer_is_recovered_by_the_retry() {
    let server = CountingServer::start(Policy::default()).await;
    let upstream = server.api_base.trim_end_matches("/api").to_owned();
    let proxy = Proxy {
        upstream,
        http: reqwest::Client::new(),
        resets_seen: Arc::default(),
    };
    let resets_seen = proxy.resets_seen.clone();
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::builder()
        .base_url(&format!("http://{addr}/api"))
        .unwrap()
        .oauth_client_credentials(CLIENT_ID, SecretString::from(CLIENT_SECRET))
        .retry(fast_retry())
        .attempt_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let api = client.session_management();
    let login = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, PASSWORD)))
        .await
        .unwrap();
    let token = SessionToken::new(login.result.session_token.unwrap());
    let reset = api
        .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new(PASSWORD))
        .await
        .unwrap();
    let new_password = reset.result.new_password.unwrap();
    assert_eq!(
        resets_seen.load(Ordering::SeqCst),
        2,
        "one lost answer, one retry"
    );
    assert_eq!(
        server.count("/api/m2m/v1/session/password/actions/reset"),
        2
    );
    // The password the client received is the one the server set.
    api.start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, new_password)))
        .await
        .unwrap();
    let old = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, PASSWORD)))
        .await
        .unwrap_err();
    assert!(old.is_invalid_credentials());
}

/// A reset that takes far longer than the SDK's attempt timeout: argon2 with a high cost for the
/// new password's hash (the seeded password was hashed cheaply, so logins stay fast).
fn slow_hasher() -> PasswordHasher {
    let settings = Argon2Settings {
        memory_kib: 8 * 1024,
        iterations: 100,
        parallelism: 1,
    };
    PasswordHasher::new(settings, 1).unwrap()
}

#[tokio::test]
async fn a_reset_still_running_is_awaited_not_failed() {
    const RESET: &str = "/api/m2m/v1/session/password/actions/reset";
    let server = CountingServer::start_with(Policy::default(), slow_hasher()).await;
    let client = Client::builder()
        .base_url(&server.api_base)
        .unwrap()
        .oauth_client_credentials(CLIENT_ID, SecretString::from(CLIENT_SECRET))
        // Room for attempts that time out on a loaded machine; the 409s spend none.
        .retry(fast_retry().max_attempts(10))
        .operation_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let api = client.session_management();
    let login = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, PASSWORD)))
        .await
        .unwrap();
    let token = SessionToken::new(login.result.session_token.unwrap());
    let started = Instant::now();
    let reset = api
        .reset_connectivity_management_password_with(
            &token,
            &SessionResetPasswordRequest::new(PASSWORD),
            &RequestOptions::default().attempt_timeout(Duration::from_millis(300)),
        )
        .await;
    let statuses = server.statuses(RESET);
    eprintln!(
        "reset took {:?}; {} answers of 409 IdempotencyKey.InProgress",
        started.elapsed(),
        statuses.iter().filter(|s| **s == 409).count()
    );
    let new_password = reset.unwrap().result.new_password.unwrap();
    assert!(
        statuses.contains(&409),
        "the first reset must still be running when a retry arrives: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    api.start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, new_password)))
        .await
        .unwrap();
    let old = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, PASSWORD)))
        .await
        .unwrap_err();
    assert!(old.is_invalid_credentials());
}
