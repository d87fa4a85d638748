//! Faults a real server will not produce on demand, from a mock server. Each test asserts the
//! exact number of attempts, and that a login or logout is never repeated once the server saw it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use m2m_session_client::{
    Client, Error, LogInRequest, RetryConfig, SessionResetPasswordRequest, SessionToken,
};
use secrecy::SecretString;
use serde_json::json;
use tokio::io::AsyncReadExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::fast_retry;

const TOKEN: &str = "/api/ts/v1/oauth2/token";
const LOGIN: &str = "/api/m2m/v1/session/login";
const LOGOUT: &str = "/api/m2m/v1/session/logout";
const RESET: &str = "/api/m2m/v1/session/password/actions/reset";
const SESSION: &str = "bcce3ea6-fe4f-4952-bacf-eadd80718e83";

async fn mock_with_token() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "api-token-1", "token_type": "bearer", "expires_in": 3600
        })))
        .mount(&server)
        .await;
    server
}

fn client_for(api_base: &str, oauth_base: &str, retry: RetryConfig) -> Client {
    Client::builder()
        .base_url(api_base)
        .unwrap()
        .oauth_base_url(url::Url::parse(oauth_base).unwrap())
        .oauth_client_credentials("app", SecretString::from("secret"))
        .retry(retry)
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn client(server: &MockServer) -> Client {
    let base = format!("{}/api", server.uri());
    client_for(&base, &format!("{base}/ts/v1"), fast_retry())
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn reset_body() -> SessionResetPasswordRequest {
    SessionResetPasswordRequest::new("old-password")
}

fn session() -> SessionToken {
    SessionToken::new(SESSION)
}

#[tokio::test]
async fn reset_retries_a_503_with_the_same_idempotency_key() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "0")
                .set_body_json(
                    json!({"errorCode": "UnifiedWebService.REQUEST_FAILED.ServiceUnavailable"}),
                ),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"newPassword": "Wh0a1545a84d"})),
        )
        .mount(&server)
        .await;
    let r = client(&server)
        .session_management()
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap();
    assert_eq!(r.result.new_password.as_deref(), Some("Wh0a1545a84d"));
    let resets = requests_to(&server, RESET).await;
    assert_eq!(resets.len(), 2);
    let key = |r: &wiremock::Request| r.headers["idempotency-key"].to_str().unwrap().to_owned();
    assert_eq!(key(&resets[0]), key(&resets[1]));
    assert_eq!(key(&resets[0]).len(), 36);
    assert_eq!(resets[0].headers["vz-m2m-token"], SESSION);
}

fn in_progress() -> ResponseTemplate {
    ResponseTemplate::new(409).set_body_json(json!({
        "errorCode": "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.InProgress",
        "errorMessage": "A request with this Idempotency-Key is still in progress."
    }))
}

#[tokio::test]
async fn a_reset_in_progress_is_waited_for_beyond_the_attempts_honouring_retry_after() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(in_progress().insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(in_progress())
        .up_to_n_times(4)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"newPassword": "Wh0a1545a84d"})),
        )
        .with_priority(3)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let r = client(&server)
        .session_management()
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap();
    assert_eq!(r.result.new_password.as_deref(), Some("Wh0a1545a84d"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1"
    );
    let resets = requests_to(&server, RESET).await;
    assert_eq!(
        resets.len(),
        6,
        "5 answers in progress, then the stored one"
    );
    let key = |r: &wiremock::Request| r.headers["idempotency-key"].to_str().unwrap().to_owned();
    assert!(resets.iter().all(|r| key(r) == key(&resets[0])));
}

#[tokio::test]
async fn a_reset_in_progress_for_ever_stops_at_the_operation_timeout_with_its_code() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(in_progress())
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    let client = Client::builder()
        .base_url(&base)
        .unwrap()
        .oauth_client_credentials("app", SecretString::from("secret"))
        .retry(fast_retry())
        .operation_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let e = client
        .session_management()
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap_err();
    assert!(e.is_in_progress(), "{e:?}");
    // Not for a caller's own retry loop, which would send the reset with a new key.
    assert!(!e.is_transient());
    assert!(e.to_string().contains("IdempotencyKey.InProgress"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(requests_to(&server, RESET).await.len() > 3);
}

#[tokio::test]
async fn a_reset_in_progress_with_a_too_long_retry_after_is_not_waited_for() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(in_progress().insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let e = client(&server)
        .session_management()
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap_err();
    assert!(e.is_in_progress(), "{e:?}");
    assert_eq!(requests_to(&server, RESET).await.len(), 1);
}

#[tokio::test]
async fn login_is_not_retried_after_a_503() {
    let server = mock_with_token().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let e = client(&server)
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 503);
    assert!(e.is_transient());
    assert_eq!(requests_to(&server, LOGIN).await.len(), 1);
}

#[tokio::test]
async fn the_oauth_token_request_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "api-token-1", "token_type": "bearer", "expires_in": 3600
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(LOGOUT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sessionToken": SESSION})))
        .mount(&server)
        .await;
    client(&server)
        .session_management()
        .end_connectivity_management_session(&session())
        .await
        .unwrap();
    assert_eq!(requests_to(&server, TOKEN).await.len(), 2);
    let token_request = &requests_to(&server, TOKEN).await[1];
    assert_eq!(
        String::from_utf8_lossy(&token_request.body),
        "grant_type=client_credentials"
    );
    assert!(
        token_request.headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn slow_answers_time_out_and_only_resets_are_repeated() {
    let server = mock_with_token().await;
    let slow = ResponseTemplate::new(200)
        .set_delay(Duration::from_secs(3))
        .set_body_json(json!({}));
    for (m, p) in [("POST", LOGIN), ("POST", LOGOUT), ("PUT", RESET)] {
        Mock::given(method(m))
            .and(path(p))
            .respond_with(slow.clone())
            .mount(&server)
            .await;
    }
    let api = client(&server).session_management();
    let e = api
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    let e = api
        .end_connectivity_management_session(&session())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    let e = api
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert_eq!(requests_to(&server, LOGIN).await.len(), 1);
    assert_eq!(requests_to(&server, LOGOUT).await.len(), 1);
    assert_eq!(requests_to(&server, RESET).await.len(), 3);
}

#[tokio::test]
async fn the_whole_operation_has_a_deadline() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "10"))
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    let client = Client::builder()
        .base_url(&base)
        .unwrap()
        .oauth_client_credentials("app", SecretString::from("secret"))
        .operation_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let e = client
        .session_management()
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Timeout(d) if d == Duration::from_millis(300)),
        "{e:?}"
    );
    assert_eq!(requests_to(&server, RESET).await.len(), 1);
}

#[tokio::test]
async fn a_401_mid_session_refreshes_the_token_and_repeats_once() {
    let server = mock_with_token().await;
    Mock::given(method("POST"))
        .and(path(LOGOUT))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "fault": {"code": "900901", "message": "Invalid Credentials", "description": ""}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(LOGOUT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sessionToken": SESSION})))
        .mount(&server)
        .await;
    let api = client(&server).session_management();
    api.end_connectivity_management_session(&session())
        .await
        .unwrap();
    assert_eq!(requests_to(&server, TOKEN).await.len(), 2);
    assert_eq!(requests_to(&server, LOGOUT).await.len(), 2);
}

#[tokio::test]
async fn a_persistent_401_is_repeated_only_once() {
    let server = mock_with_token().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "fault": {"code": "900901", "message": "Invalid Credentials", "description": ""}
        })))
        .mount(&server)
        .await;
    let e = client(&server)
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), Some("900901"));
    assert_eq!(requests_to(&server, LOGIN).await.len(), 2);
    assert_eq!(requests_to(&server, TOKEN).await.len(), 2);
}

#[tokio::test]
async fn a_non_json_error_keeps_the_raw_body() {
    let server = mock_with_token().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .respond_with(ResponseTemplate::new(400).set_body_string("<html>Bad Request</html>"))
        .mount(&server)
        .await;
    let e = client(&server)
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    match e {
        Error::UndecodableResponse {
            status, raw_body, ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(raw_body, "<html>Bad Request</html>");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(requests_to(&server, LOGIN).await.len(), 1);
}

#[tokio::test]
async fn unknown_fields_in_a_200_are_tolerated() {
    let server = mock_with_token().await;
    Mock::given(method("POST"))
        .and(path(LOGIN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sessionToken": SESSION, "expiresIn": 1200, "nested": {"a": [1, 2]}
        })))
        .mount(&server)
        .await;
    let r = client(&server)
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap();
    assert_eq!(r.result.session_token.as_deref(), Some(SESSION));
}

#[tokio::test]
async fn the_retry_budget_stops_retry_storms() {
    let server = mock_with_token().await;
    Mock::given(method("PUT"))
        .and(path(RESET))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let base = format!("{}/api", server.uri());
    let client = client_for(&base, &format!("{base}/ts/v1"), fast_retry().budget(1));
    let api = client.session_management();
    for _ in 0..3 {
        api.reset_connectivity_management_password(&session(), &reset_body())
            .await
            .unwrap_err();
    }
    // Three calls of three attempts each would be 9; the budget allowed one retry in all.
    assert_eq!(requests_to(&server, RESET).await.len(), 4);
}

/// A server that reads each request and closes the connection without answering.
async fn hang_up_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    (format!("http://{addr}/api"), accepted)
}

#[tokio::test]
async fn connection_dropped_after_sending_repeats_reset_but_not_login() {
    let oauth = mock_with_token().await;
    let (base, accepted) = hang_up_server().await;
    let client = client_for(&base, &format!("{}/api/ts/v1", oauth.uri()), fast_retry());
    let api = client.session_management();
    let e = api
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let e = api
        .reset_connectivity_management_password(&session(), &reset_body())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1 + 3);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_the_allowed_attempts() {
    let oauth = mock_with_token().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let base = format!("http://{closed}/api");
    let client = client_for(&base, &format!("{}/api/ts/v1", oauth.uri()), fast_retry());
    let e = client
        .session_management()
        .start_connectivity_management_session(Some(&LogInRequest::new("u", "p")))
        .await
        .unwrap_err();
    match e {
        Error::Transport(source) => assert!(source.is_connect()),
        other => panic!("{other:?}"),
    }
}
