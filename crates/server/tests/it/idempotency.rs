//! Idempotent resets: the lost-answer hazard of every official SDK, closed on the server side.

use m2m_session_server::crypto::SessionToken;
use m2m_session_server::domain::{DomainError, Policy, RequestContext, SessionService};
use m2m_session_server::time::Timestamp;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

fn ctx() -> RequestContext {
    RequestContext::new(CLIENT_ID, None)
}

async fn session(svc: &SessionService) -> SessionToken {
    svc.login(&ctx(), USERNAME, &secret(PASSWORD), T0)
        .await
        .unwrap()
}

async fn reset(
    svc: &SessionService,
    token: &SessionToken,
    old: &str,
    key: &str,
    at: Timestamp,
) -> Result<SecretString, DomainError> {
    svc.reset_password(&ctx(), token, &secret(old), Some(key), at)
        .await
}

#[tokio::test]
async fn a_repeat_within_ten_minutes_gets_the_same_password() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = session(&svc).await;
    let first = reset(&svc, &token, PASSWORD, "key-1", T0).await.unwrap();
    let again = reset(&svc, &token, PASSWORD, "key-1", T0.plus(mins(9)))
        .await
        .unwrap();
    assert_eq!(first.expose_secret(), again.expose_secret());
    // The password really is the one handed out (twice), and the old one is gone.
    svc.login(&ctx(), USERNAME, &first, T0.plus(mins(9)))
        .await
        .unwrap();
    assert!(matches!(
        svc.login(&ctx(), USERNAME, &secret(PASSWORD), T0.plus(mins(9)))
            .await,
        Err(DomainError::InvalidCredentials)
    ));
    // Later repeats within the day: Expired; after it (with a new session, the old one having
    // idled out), the key is new again.
    assert!(matches!(
        reset(&svc, &token, PASSWORD, "key-1", T0.plus(mins(10))).await,
        Err(DomainError::IdempotencyExpired)
    ));
    let next_day = T0.plus(mins(24 * 60)).plus(secs(1));
    svc.authenticate_session(CLIENT_ID, &token, T0.plus(mins(15)))
        .await
        .ok();
    let fresh = svc.login(&ctx(), USERNAME, &first, next_day).await.unwrap();
    let third = reset(&svc, &fresh, first.expose_secret(), "key-1", next_day)
        .await
        .unwrap();
    assert_ne!(third.expose_secret(), first.expose_secret());
}

#[tokio::test]
async fn the_same_key_with_another_body_or_session_is_a_mismatch() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = session(&svc).await;
    let other_session = session(&svc).await;
    let new = reset(&svc, &token, PASSWORD, "key-2", T0).await.unwrap();
    assert!(matches!(
        reset(&svc, &token, "another body", "key-2", T0).await,
        Err(DomainError::IdempotencyMismatch)
    ));
    // The other session was revoked by the reset; with a live one it would be a mismatch too.
    assert!(matches!(
        reset(&svc, &other_session, PASSWORD, "key-2", T0).await,
        Err(DomainError::SessionExpired)
    ));
    let third = svc.login(&ctx(), USERNAME, &new, T0).await.unwrap();
    assert!(matches!(
        reset(&svc, &third, PASSWORD, "key-2", T0).await,
        Err(DomainError::IdempotencyMismatch)
    ));
}

#[tokio::test]
async fn a_failed_reset_records_nothing_so_its_retry_runs() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = session(&svc).await;
    assert!(matches!(
        reset(&svc, &token, "not the password", "key-3", T0).await,
        Err(DomainError::OldPasswordMismatch)
    ));
    assert!(
        svc.store()
            .find_idempotency(USERNAME, "key-3")
            .await
            .unwrap()
            .is_none()
    );
    let new = reset(&svc, &token, PASSWORD, "key-3", T0).await.unwrap();
    svc.login(&ctx(), USERNAME, &new, T0).await.unwrap();
}

#[tokio::test]
async fn the_stored_answer_cannot_be_read_from_the_database_and_is_erased_after_the_window() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = session(&svc).await;
    let new = reset(&svc, &token, PASSWORD, "key-4", T0).await.unwrap();
    let record = svc
        .store()
        .find_idempotency(USERNAME, "key-4")
        .await
        .unwrap()
        .unwrap();
    let sealed = record.answer.clone().unwrap();
    let plain = new.expose_secret().as_bytes();
    assert!(!sealed.windows(plain.len()).any(|w| w == plain));
    svc.purge(T0.plus(mins(11))).await.unwrap();
    let record = svc
        .store()
        .find_idempotency(USERNAME, "key-4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.answer, None, "answer erased after 10 minutes");
    svc.purge(T0.plus(mins(24 * 60 + 1))).await.unwrap();
    assert!(
        svc.store()
            .find_idempotency(USERNAME, "key-4")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_never_run_twice() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = session(&svc).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (svc, token) = (svc.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            reset(&svc, &token, PASSWORD, "key-5", T0).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => answers.push(p.expose_secret().to_owned()),
            Err(DomainError::IdempotencyInProgress) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(!answers.is_empty());
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one reset, one password"
    );
}

#[tokio::test]
async fn http_status_codes_for_idempotency_errors() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let put = |key: &str, old: &str| {
        f.http
            .put(f.url("/api/m2m/v1/session/password/actions/reset"))
            .bearer_auth(&bearer)
            .header("VZ-M2M-Token", &token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"oldPassword": old}))
            .send()
    };
    let first = json(put("k-http", PASSWORD).await.unwrap()).await;
    let again = json(put("k-http", PASSWORD).await.unwrap()).await;
    assert_eq!(first, again);
    assert_error(
        put("k-http", "different").await.unwrap(),
        422,
        "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Mismatch",
    )
    .await;
    assert_error(
        put("bad key with spaces", PASSWORD).await.unwrap(),
        400,
        "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Invalid",
    )
    .await;
}
