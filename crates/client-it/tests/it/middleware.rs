//! `ThingSpaceAuth` on a program's own reqwest client, against the real server with the
//! testkit's device-API stand-in: both tokens added, an expired session renewed by one login
//! however many calls notice it, a refused API token renewed, and a refused login never
//! repeated.

use std::sync::Arc;

use m2m_session_client::{Client, SecretString, Session, ThingSpaceAuth, thingspace_error};
use m2m_session_testkit::{DEVICE_API_PATH, TestServer};
use reqwest_middleware::ClientWithMiddleware;

fn sdk_client(server: &TestServer) -> Client {
    crate::support::builder_for(server).build().unwrap()
}

fn authenticated(server: &TestServer, password: &str) -> (Arc<Session>, ClientWithMiddleware) {
    let session = Arc::new(Session::new(
        sdk_client(server),
        TestServer::USERNAME,
        SecretString::from(password.to_owned()),
    ));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ThingSpaceAuth::new(session.clone()))
        .build();
    (session, http)
}

async fn list_devices(server: &TestServer, http: &ClientWithMiddleware) -> reqwest::Response {
    http.post(format!("http://{}{DEVICE_API_PATH}", server.addr()))
        .json(&serde_json::json!({"accountName": "0000123456-00001"}))
        .send()
        .await
        .unwrap()
}

/// Audit lines of the standard user's logins with this outcome.
async fn logins(server: &TestServer, outcome: &str) -> usize {
    server
        .service()
        .store()
        .list_audit(Some(TestServer::USERNAME), None, None)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event == "login" && r.outcome == outcome)
        .count()
}

#[tokio::test]
async fn twenty_calls_across_an_expiry_log_in_once_and_all_succeed() {
    let server = TestServer::builder().device_api().start().await;
    let (_session, http) = authenticated(&server, TestServer::PASSWORD);
    assert_eq!(list_devices(&server, &http).await.status(), 200);
    assert_eq!(logins(&server, "success").await, 1);
    assert_eq!(server.expire_sessions(TestServer::USERNAME).await, 1);
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let http = http.clone();
            let server_addr = server.addr();
            tokio::spawn(async move {
                http.post(format!("http://{server_addr}{DEVICE_API_PATH}"))
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    // Exactly one login more, however many calls found the session gone.
    assert_eq!(logins(&server, "success").await, 2);
    assert_eq!(server.device_api_calls(), 21);
}

#[tokio::test]
async fn a_refused_api_token_is_fetched_again_and_the_call_repeated() {
    let server = TestServer::builder().device_api().start().await;
    let (_session, http) = authenticated(&server, TestServer::PASSWORD);
    assert_eq!(list_devices(&server, &http).await.status(), 200);
    // Every API token of the client is revoked (as a secret rotation does); the SDK's cached
    // one is now refused with the gateway's 900901.
    let store = server.service().store();
    let hash = store
        .find_client(TestServer::CLIENT_ID)
        .await
        .unwrap()
        .unwrap()
        .secret_hash;
    assert!(
        store
            .replace_client_secret(TestServer::CLIENT_ID, &hash, true)
            .await
            .unwrap()
    );
    assert_eq!(list_devices(&server, &http).await.status(), 200);
    assert_eq!(server.device_api_calls(), 2);
    assert_eq!(logins(&server, "success").await, 1, "the session was kept");
}

#[tokio::test]
async fn a_wrong_password_is_tried_once_and_never_locks_the_user() {
    let server = TestServer::builder().device_api().start().await;
    let (session, http) = authenticated(&server, "not the password");
    for _ in 0..10 {
        let error = http
            .post(format!("http://{}{DEVICE_API_PATH}", server.addr()))
            .send()
            .await
            .unwrap_err();
        let sdk = thingspace_error(&error).unwrap_or_else(|| panic!("not the SDK's: {error}"));
        assert!(sdk.is_invalid_credentials(), "{sdk}");
    }
    // One attempt reached the server; the user is far from its lock.
    assert_eq!(logins(&server, "invalid_credentials").await, 1);
    assert!(session.stopped_by().is_some());
    // Resumed with the right password, it logs in and the calls go through.
    session.resume(SecretString::from(TestServer::PASSWORD));
    assert_eq!(list_devices(&server, &http).await.status(), 200);
    assert_eq!(logins(&server, "success").await, 1);
}

#[tokio::test]
async fn a_locked_user_stops_the_session_too() {
    let server = TestServer::builder().device_api().start().await;
    server.lock_user(TestServer::USERNAME).await;
    let refused_before = logins(&server, "locked").await;
    let (session, http) = authenticated(&server, TestServer::PASSWORD);
    for _ in 0..3 {
        let error = http
            .post(format!("http://{}{DEVICE_API_PATH}", server.addr()))
            .send()
            .await
            .unwrap_err();
        assert!(thingspace_error(&error).unwrap().is_locked(), "{error}");
    }
    assert_eq!(logins(&server, "locked").await, refused_before + 1);
    assert!(session.stopped_by().unwrap().is_locked());
}

#[tokio::test]
async fn the_tokens_go_to_the_session_origin_only() {
    let server = TestServer::builder().device_api().start().await;
    let elsewhere = TestServer::builder().device_api().start().await;
    let (_session, http) = authenticated(&server, TestServer::PASSWORD);
    // Another origin gets the request as the program made it: no bearer, no session token.
    let answer = http
        .post(format!("http://{}{DEVICE_API_PATH}", elsewhere.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(elsewhere.device_api_calls(), 0);
    assert_eq!(
        logins(&server, "success").await,
        0,
        "no login for a foreign call"
    );
    // The answer keeps its URL through the middleware's classification.
    let answer = list_devices(&server, &http).await;
    assert_eq!(answer.url().host_str(), Some("127.0.0.1"));
    assert_eq!(answer.url().path(), DEVICE_API_PATH);
}
