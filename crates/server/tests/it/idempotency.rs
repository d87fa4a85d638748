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

pub async fn a_repeat_within_ten_minutes_gets_the_same_password(
    _backend: Backend,
    svc: SessionService,
) {
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

pub async fn the_same_key_with_another_body_or_session_is_a_mismatch(
    _backend: Backend,
    svc: SessionService,
) {
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

pub async fn a_failed_reset_records_nothing_so_its_retry_runs(
    _backend: Backend,
    svc: SessionService,
) {
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

pub async fn the_stored_answer_cannot_be_read_from_the_database_and_is_erased_after_the_window(
    _backend: Backend,
    svc: SessionService,
) {
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

/// Eight parallel repeats, over two nodes where the backend has them: one reset runs.
pub async fn concurrent_repeats_never_run_twice(backend: Backend, svc: SessionService) {
    let peer = SessionService::new(backend.peer(svc.store()).await, hasher(), Policy::default());
    let token = session(&svc).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let svc = if i % 2 == 0 {
            svc.clone()
        } else {
            peer.clone()
        };
        let token = token.clone();
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

/// Scope is (user, key): another user's reset with the same key is a request of its own.
pub async fn a_key_is_scoped_to_its_user(_backend: Backend, svc: SessionService) {
    let other = m2m_session_server::domain::NewUser {
        username: "other".into(),
        account: None,
        password: Some(secret("other-password-0123")),
    };
    m2m_session_server::domain::Admin::new(svc.store().clone(), hasher())
        .add_user(other, T0)
        .await
        .unwrap();
    let mine = session(&svc).await;
    let theirs = svc
        .login(&ctx(), "other", &secret("other-password-0123"), T0)
        .await
        .unwrap();
    let a = reset(&svc, &mine, PASSWORD, "shared-key", T0)
        .await
        .unwrap();
    let b = svc
        .reset_password(
            &ctx(),
            &theirs,
            &secret("other-password-0123"),
            Some("shared-key"),
            T0,
        )
        .await
        .unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    svc.login(&ctx(), "other", &b, T0).await.unwrap();
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (backend, store) = crate::support::Backend::sqlite().await;
                    let svc = super::SessionService::new(
                        store, crate::support::hasher(), super::Policy::default());
                    super::$name(backend, svc).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (backend, store) = crate::support::Backend::postgres().await;
                    let svc = super::SessionService::new(
                        store, crate::support::hasher(), super::Policy::default());
                    super::$name(backend, svc).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_repeat_within_ten_minutes_gets_the_same_password,
    the_same_key_with_another_body_or_session_is_a_mismatch,
    a_failed_reset_records_nothing_so_its_retry_runs,
    the_stored_answer_cannot_be_read_from_the_database_and_is_erased_after_the_window,
    concurrent_repeats_never_run_twice,
    a_key_is_scoped_to_its_user,
);

#[tokio::test]
async fn http_status_codes_for_idempotency_errors() {
    let f = Fixture::start().await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let put = |key: &'static str, old: &'static str| f.reset_with_key(&bearer, &token, old, key);
    let first = json(put("k-http", PASSWORD).await).await;
    let again = json(put("k-http", PASSWORD).await).await;
    assert_eq!(first, again);
    assert_error(
        put("k-http", "different").await,
        422,
        "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Mismatch",
    )
    .await;
    assert_error(
        put("bad key with spaces", PASSWORD).await,
        400,
        "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Invalid",
    )
    .await;
}

/// The guard holds across nodes: with the key held by another node (a second store on the same
/// PostgreSQL database), a reset over HTTP answers 409 InProgress with a Retry-After, and runs
/// once the other node lets go.
#[tokio::test]
async fn a_key_held_by_another_node_answers_409_in_progress_over_http() {
    let (db, other_node) = postgres_store().await;
    seed(other_node.clone()).await;
    let f = Fixture::start_on(db.url(), |_| {}).await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let put = || f.reset_with_key(&bearer, &token, PASSWORD, "k-held");
    let held = other_node
        .claim_idempotency(USERNAME, "k-held")
        .await
        .unwrap()
        .unwrap();
    let busy = put().await;
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_error(
        busy,
        409,
        "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.InProgress",
    )
    .await;
    // Nothing ran: the old password still logs in, and nothing counts against the user.
    assert_eq!(other_node.lockout(USERNAME).await.unwrap(), None);
    held.release().await;
    let first = json(put().await).await;
    let again = json(put().await).await;
    assert_eq!(first, again);
    assert!(first["newPassword"].is_string());
}

#[tokio::test]
async fn http_409_expired_after_the_replay_window() {
    let f = Fixture::start_with(|c| c.policy.idempotency_replay_window = secs(1)).await;
    let bearer = f.api_token().await;
    let token = f.session(&bearer).await;
    let put = || f.reset_with_key(&bearer, &token, PASSWORD, "k-late");
    assert_eq!(put().await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_error(
        put().await,
        409,
        "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.Expired",
    )
    .await;
}
