//! `TestServer` as a downstream test uses it: the real contract, and the hard moments on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use m2m_session_testkit::{DEVICE_API_PATH, TestServer};
use serde_json::{Value, json};

async fn api_token(http: &reqwest::Client, server: &TestServer) -> String {
    let answer: Value = http
        .post(format!("{}/ts/v1/oauth2/token", server.base_url()))
        .basic_auth(TestServer::CLIENT_ID, Some(TestServer::CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn login(http: &reqwest::Client, server: &TestServer, bearer: &str) -> (u16, Value) {
    let answer = http
        .post(format!("{}/m2m/v1/session/login", server.base_url()))
        .bearer_auth(bearer)
        .json(&json!({"username": TestServer::USERNAME, "password": TestServer::PASSWORD}))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn devices(
    http: &reqwest::Client,
    server: &TestServer,
    bearer: &str,
    session: &str,
) -> (u16, Value) {
    let answer = http
        .post(format!("http://{}{DEVICE_API_PATH}", server.addr()))
        .bearer_auth(bearer)
        .header("VZ-M2M-Token", session)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn an_expired_session_and_a_locked_user_on_demand() {
    let server = TestServer::builder().device_api().start().await;
    let http = reqwest::Client::new();
    let bearer = api_token(&http, &server).await;
    let (status, body) = login(&http, &server, &bearer).await;
    assert_eq!(status, 200, "{body}");
    let session = body["sessionToken"].as_str().unwrap().to_owned();
    let (status, body) = devices(&http, &server, &bearer, &session).await;
    assert_eq!(
        (status, body["username"].as_str()),
        (200, Some(TestServer::USERNAME))
    );
    assert_eq!(server.expire_sessions(TestServer::USERNAME).await, 1);
    let (status, body) = devices(&http, &server, &bearer, &session).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errorCode"],
        "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
    );
    // A bad bearer token is the gateway's 401 fault, as on the platform.
    let (status, body) = devices(&http, &server, "not-a-token", &session).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(server.device_api_calls(), 1);
    server.lock_user(TestServer::USERNAME).await;
    let (status, body) = login(&http, &server, &bearer).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errorCode"],
        "UnifiedWebService.REQUEST_FAILED.Login.Locked"
    );
}

#[tokio::test]
async fn the_next_answers_fail_or_wait_when_asked() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let bearer = api_token(&http, &server).await;
    server.fail_next(2, 503);
    for _ in 0..2 {
        let (status, body) = login(&http, &server, &bearer).await;
        assert_eq!(status, 503);
        assert_eq!(
            body["errorCode"],
            "UnifiedWebService.REQUEST_FAILED.UnexpectedError"
        );
    }
    assert_eq!(login(&http, &server, &bearer).await.0, 200);
    // A slow answer: a client that waits 50 ms gives up on a 10 s delay.
    server.delay_next(1, Duration::from_secs(10));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}/m2m/v1/session/login", server.base_url()))
        .bearer_auth(&bearer)
        .json(&json!({"username": TestServer::USERNAME, "password": TestServer::PASSWORD}))
        .send()
        .await
        .unwrap_err();
    assert!(gave_up.is_timeout(), "{gave_up}");
    assert_eq!(login(&http, &server, &bearer).await.0, 200);
}
