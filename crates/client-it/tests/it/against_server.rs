//! End to end: the SDK drives the real server.

use std::sync::Arc;
use std::time::Duration;

use m2m_session_client::{
    Error, ErrorCode, LogInRequest, Session, SessionResetPasswordRequest, SessionToken,
};
use m2m_session_server::domain::Policy;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

fn code<T>(r: Result<T, Error>) -> Option<ErrorCode> {
    r.map(drop).unwrap_err().known_code()
}

fn creds() -> LogInRequest {
    LogInRequest::new(USERNAME, PASSWORD)
}

#[tokio::test]
async fn the_three_operations_round_trip() {
    let server = CountingServer::start(Policy::default()).await;
    let api = server.client().session_management();
    let login = api
        .start_connectivity_management_session(Some(&creds()))
        .await
        .unwrap();
    assert_eq!(login.status, 200);
    let token = login.session_token().unwrap();
    let reset = api
        .reset_connectivity_management_password(&token, &SessionResetPasswordRequest::new(PASSWORD))
        .await
        .unwrap();
    let new_password = reset.new_password().unwrap();
    let new_password = new_password.expose_secret();
    assert_eq!(new_password.len(), 22);
    let out = api
        .end_connectivity_management_session(&token)
        .await
        .unwrap();
    assert_eq!(
        out.result.session_token.as_deref(),
        Some(token.expose_secret())
    );
    let again = api
        .start_connectivity_management_session(Some(&LogInRequest::new(USERNAME, new_password)))
        .await
        .unwrap();
    assert!(again.result.session_token.is_some());
}

#[tokio::test]
async fn every_contract_error_is_typed() {
    let server = CountingServer::start(Policy::default()).await;
    let api = server.client().session_management();

    let wrong = LogInRequest::new(USERNAME, "wrong-password");
    let e = api
        .start_connectivity_management_session(Some(&wrong))
        .await
        .unwrap_err();
    assert!(e.is_invalid_credentials(), "{e}");
    assert_eq!(e.status().unwrap(), 400);
    // The server's request id travels with the error, for reports.
    let id = e.request_id().expect("no request id").to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(e.to_string().contains(&id), "{e}");
    let unknown = LogInRequest::new("nobody", "wrong-password");
    assert!(
        api.start_connectivity_management_session(Some(&unknown))
            .await
            .unwrap_err()
            .is_invalid_credentials()
    );
    assert_eq!(
        code(api.start_connectivity_management_session(None).await),
        Some(ErrorCode::RequestUndefined)
    );
    let missing = LogInRequest {
        username: Some(USERNAME.into()),
        password: None,
    };
    assert_eq!(
        code(
            api.start_connectivity_management_session(Some(&missing))
                .await
        ),
        Some(ErrorCode::UnexpectedError)
    );
    let bad_char = LogInRequest::new("o'brien", "whatever1");
    assert_eq!(
        code(
            api.start_connectivity_management_session(Some(&bad_char))
                .await
        ),
        Some(ErrorCode::InvalidCharacter)
    );

    let token = SessionToken::new(
        api.start_connectivity_management_session(Some(&creds()))
            .await
            .unwrap()
            .result
            .session_token
            .unwrap(),
    );
    let bad_old = SessionResetPasswordRequest::new("not the password");
    assert_eq!(
        code(
            api.reset_connectivity_management_password(&token, &bad_old)
                .await
        ),
        Some(ErrorCode::OldPasswordMismatch)
    );
    assert_eq!(
        code(
            api.end_connectivity_management_session(&SessionToken::new("garbage"))
                .await
        ),
        Some(ErrorCode::SessionTokenInvalid)
    );
    api.end_connectivity_management_session(&token)
        .await
        .unwrap();
    let e = api
        .end_connectivity_management_session(&token)
        .await
        .unwrap_err();
    assert!(e.is_session_expired());
    match &e {
        Error::Api(api_error) => {
            assert!(api_error.raw_body.contains("SessionToken.Expired"));
            assert!(api_error.headers.contains_key("content-type"));
        }
        other => panic!("{other:?}"),
    }

    // Four more wrong passwords (one was above) lock the user: each a distinct one, as a
    // repeated wrong password counts only once.
    for i in 0..4 {
        let wrong = LogInRequest::new(USERNAME, format!("wrong-password-{i}"));
        api.start_connectivity_management_session(Some(&wrong))
            .await
            .unwrap_err();
    }
    let e = api
        .start_connectivity_management_session(Some(&creds()))
        .await
        .unwrap_err();
    assert!(e.is_locked(), "{e}");

    // Bad OAuth credentials: an OAuth error with the RFC 6749 body, nothing else sent.
    let bad = server
        .client_with(CLIENT_ID, "wrong-secret")
        .session_management();
    match bad
        .start_connectivity_management_session(Some(&creds()))
        .await
        .unwrap_err()
    {
        Error::OAuth { status, body, .. } => {
            assert_eq!(status, 401);
            assert_eq!(body.unwrap().error, "invalid_client");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn one_token_request_serves_many_calls_and_clones() {
    let server = CountingServer::start(Policy::default()).await;
    let client = server.client();
    for _ in 0..5 {
        let api = client.clone().session_management();
        let login = api
            .start_connectivity_management_session(Some(&creds()))
            .await
            .unwrap();
        let token = SessionToken::new(login.result.session_token.unwrap());
        api.end_connectivity_management_session(&token)
            .await
            .unwrap();
    }
    assert_eq!(server.logins(), 5);
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_token_fetch() {
    let server = CountingServer::start(Policy::default()).await;
    let client = server.client();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = client.session_management();
        tasks.push(tokio::spawn(async move {
            api.start_connectivity_management_session(Some(&creds()))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(server.logins(), 20);
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn a_revoked_api_token_is_replaced_once_transparently() {
    let server = CountingServer::start(Policy::default()).await;
    let client = server.client();
    let api = client.session_management();
    api.start_connectivity_management_session(Some(&creds()))
        .await
        .unwrap();
    // Revoke the cached token behind the client's back.
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/ts/v1/oauth2/token", server.api_base))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/ts/v1/oauth2/revoke", server.api_base))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", token["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = server.token_requests();
    api.start_connectivity_management_session(Some(&creds()))
        .await
        .unwrap();
    assert_eq!(server.token_requests(), before + 1);
    assert_eq!(server.logins(), 3, "one login, one 401, one repeat");
}

fn short_idle() -> Policy {
    Policy {
        session_idle_timeout: Duration::from_secs(1),
        ..Policy::default()
    }
}

#[tokio::test]
async fn session_logs_in_lazily_and_again_after_expiry() {
    let server = CountingServer::start(short_idle()).await;
    let session = Session::new(server.client(), USERNAME, SecretString::from(PASSWORD));
    assert_eq!(server.logins(), 0);
    let who = session.verify().await.unwrap();
    assert_eq!(who.username, USERNAME);
    assert_eq!(who.account.as_deref(), Some("acme"));
    session.verify().await.unwrap();
    assert_eq!(server.logins(), 1);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    session.verify().await.unwrap();
    assert_eq!(server.logins(), 2);
    session.logout().await.unwrap();
    session.logout().await.unwrap();
}

#[tokio::test]
async fn concurrent_callers_share_one_relogin() {
    let server = CountingServer::start(short_idle()).await;
    let session = Arc::new(Session::new(
        server.client(),
        USERNAME,
        SecretString::from(PASSWORD),
    ));
    session.verify().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let session = session.clone();
        tasks.push(tokio::spawn(async move { session.verify().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        server.logins(),
        2,
        "one initial login and one shared re-login"
    );
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn session_reset_keeps_the_new_password_for_later_logins() {
    let server = CountingServer::start(Policy::default()).await;
    let session = Session::new(server.client(), USERNAME, SecretString::from(PASSWORD));
    let new_password = session.reset_password().await.unwrap();
    assert_ne!(new_password.expose_secret(), PASSWORD);
    session.logout().await.unwrap();
    session.verify().await.unwrap();
    assert_eq!(server.logins(), 2);
    assert!(!format!("{session:?}").contains(new_password.expose_secret()));
}
