//! The business rules, driven through the domain with an injected clock: a 20-minute expiry
//! test takes microseconds.

use m2m_session_server::crypto::{OsRandomness, SessionToken};
use m2m_session_server::domain::{Admin, DomainError, Policy, RequestContext, SessionService};
use m2m_session_server::time::Timestamp;

use crate::support::*;

const OTHER_CLIENT: &str = "other-app";

fn ctx() -> RequestContext {
    RequestContext::new(CLIENT_ID, None)
}

fn other_ctx() -> RequestContext {
    RequestContext::new(OTHER_CLIENT, None)
}

async fn login(svc: &SessionService, at: Timestamp) -> SessionToken {
    svc.login(&ctx(), USERNAME, &secret(PASSWORD), at)
        .await
        .unwrap()
}

/// A failed login with wrong password number `n`: a repeated identical wrong password counts
/// only once towards the lock, so each attempt meant to count brings a distinct one.
async fn fail(svc: &SessionService, at: Timestamp, n: u64) -> DomainError {
    svc.login(
        &ctx(),
        USERNAME,
        &secret(&format!("wrong password {n}")),
        at,
    )
    .await
    .unwrap_err()
}

fn admin(svc: &SessionService) -> Admin {
    Admin::new(svc.store().clone(), hasher())
}

#[tokio::test]
async fn session_expires_after_twenty_minutes_of_inactivity() {
    let (_dir, svc) = service(Policy::default()).await;
    let idle_then = |t: Timestamp| t.plus(mins(19)).plus(secs(59));
    let token = login(&svc, T0).await;
    let t1 = idle_then(T0);
    svc.authenticate_session(CLIENT_ID, &token, t1)
        .await
        .unwrap();
    // Use extends it: another 19:59 after the last use is still fine.
    let t2 = idle_then(t1);
    svc.authenticate_session(CLIENT_ID, &token, t2)
        .await
        .unwrap();
    // 20:01 after the last use is over.
    let late = t2.plus(mins(20)).plus(secs(1));
    let err = svc
        .authenticate_session(CLIENT_ID, &token, late)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::SessionExpired), "{err:?}");
    // And it stays over.
    let err = svc
        .authenticate_session(CLIENT_ID, &token, late)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::SessionExpired));
}

#[tokio::test]
async fn an_unused_session_dies_between_19_59_and_20_01() {
    let (_dir, svc) = service(Policy::default()).await;
    let a = login(&svc, T0).await;
    let b = login(&svc, T0).await;
    let at_19_59 = T0.plus(mins(19)).plus(secs(59));
    let at_20_01 = T0.plus(mins(20)).plus(secs(1));
    assert!(
        svc.authenticate_session(CLIENT_ID, &a, at_19_59)
            .await
            .is_ok()
    );
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &b, at_20_01).await,
        Err(DomainError::SessionExpired)
    ));
    assert!(matches!(
        svc.logout(&ctx(), &b, at_20_01).await,
        Err(DomainError::SessionExpired)
    ));
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = login(&svc, T0).await;
    svc.logout(&ctx(), &token, T0).await.unwrap();
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &token, T0).await,
        Err(DomainError::SessionExpired)
    ));
    assert!(matches!(
        svc.logout(&ctx(), &token, T0).await,
        Err(DomainError::SessionExpired)
    ));
}

#[tokio::test]
async fn sessions_are_bound_to_their_oauth_client() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = login(&svc, T0).await;
    assert!(matches!(
        svc.authenticate_session(OTHER_CLIENT, &token, T0).await,
        Err(DomainError::SessionExpired)
    ));
    assert!(matches!(
        svc.logout(&other_ctx(), &token, T0).await,
        Err(DomainError::SessionExpired)
    ));
    // The rightful client still has it.
    svc.authenticate_session(CLIENT_ID, &token, T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn never_issued_tokens_are_expired() {
    let (_dir, svc) = service(Policy::default()).await;
    let never = SessionToken::generate(&OsRandomness);
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &never, T0).await,
        Err(DomainError::SessionExpired)
    ));
}

#[tokio::test]
async fn lockout_at_exactly_five_and_success_resets_the_count() {
    let (_dir, svc) = service(Policy::default()).await;
    for i in 0..4 {
        let t = T0.plus(secs(i));
        assert!(matches!(
            fail(&svc, t, i).await,
            DomainError::InvalidCredentials
        ));
    }
    // Four failures then the right password: accepted, and the count starts over.
    login(&svc, T0.plus(secs(5))).await;
    for i in 0..4 {
        assert!(matches!(
            fail(&svc, T0.plus(secs(10 + i)), 10 + i).await,
            DomainError::InvalidCredentials
        ));
    }
    login(&svc, T0.plus(secs(20))).await;
    // Five in a row lock; the fifth itself still says invalid credentials.
    for i in 0..5 {
        assert!(matches!(
            fail(&svc, T0.plus(secs(30 + i)), 30 + i).await,
            DomainError::InvalidCredentials
        ));
    }
    let err = svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), T0.plus(secs(40)))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Locked { .. }), "{err:?}");
}

#[tokio::test]
async fn lock_releases_after_the_duration_and_is_not_extended_by_failures() {
    let (_dir, svc) = service(Policy::default()).await;
    for i in 0..5 {
        fail(&svc, T0, i).await;
    }
    // Failures during the lock are refused without extending it.
    for m in [1, 5, 14] {
        assert!(matches!(
            fail(&svc, T0.plus(mins(m)), 10 + m).await,
            DomainError::Locked { .. }
        ));
    }
    let just_before = T0.plus(mins(15)).minus(secs(1));
    match svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), just_before)
        .await
    {
        Err(DomainError::Locked { until }) => assert_eq!(until, T0.plus(mins(15))),
        other => panic!("expected Locked, got {other:?}"),
    }
    login(&svc, T0.plus(mins(15))).await;
}

#[tokio::test]
async fn after_a_lock_expires_the_count_starts_again() {
    let (_dir, svc) = service(Policy::default()).await;
    for i in 0..5 {
        fail(&svc, T0, i).await;
    }
    let later = T0.plus(mins(16));
    // One failure after the lock is the first of a new run, not the sixth of the old one.
    assert!(matches!(
        fail(&svc, later, 5).await,
        DomainError::InvalidCredentials
    ));
    login(&svc, later).await;
}

#[tokio::test]
async fn permanent_lock_needs_an_administrator() {
    let policy = Policy {
        lockout_duration: None,
        ..Policy::default()
    };
    let (_dir, svc) = service(policy).await;
    for i in 0..5 {
        fail(&svc, T0, i).await;
    }
    let years_later = T0.plus(mins(60 * 24 * 365 * 10));
    assert!(matches!(
        svc.login(&ctx(), USERNAME, &secret(PASSWORD), years_later)
            .await,
        Err(DomainError::Locked {
            until: Timestamp::NEVER
        })
    ));
    admin(&svc).unlock_user(USERNAME, T0).await.unwrap();
    login(&svc, years_later).await;
}

#[tokio::test]
async fn unknown_usernames_answer_like_wrong_passwords_and_lock_too() {
    let (_dir, svc) = service(Policy::default()).await;
    for i in 0..5 {
        let err = svc
            .login(&ctx(), "nobody", &secret(&format!("whatever{i}")), T0)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::InvalidCredentials));
    }
    assert!(matches!(
        svc.login(&ctx(), "nobody", &secret("whatever1"), T0).await,
        Err(DomainError::Locked { .. })
    ));
    // The real user is unaffected.
    login(&svc, T0).await;
}

#[tokio::test]
async fn reset_revokes_other_sessions_only_and_replaces_the_password() {
    let (_dir, svc) = service(Policy::default()).await;
    let current = login(&svc, T0).await;
    let other = login(&svc, T0).await;
    let new_password = svc
        .reset_password(&ctx(), &current, &secret(PASSWORD), None, T0.plus(secs(1)))
        .await
        .unwrap();
    let at = T0.plus(secs(2));
    svc.authenticate_session(CLIENT_ID, &current, at)
        .await
        .unwrap();
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &other, at).await,
        Err(DomainError::SessionExpired)
    ));
    assert!(matches!(
        svc.login(&ctx(), USERNAME, &secret(PASSWORD), at).await,
        Err(DomainError::InvalidCredentials)
    ));
    svc.login(&ctx(), USERNAME, &new_password, at)
        .await
        .unwrap();
}

#[tokio::test]
async fn reset_with_a_wrong_old_password_counts_as_a_failure() {
    let (_dir, svc) = service(Policy::default()).await;
    // A second before: failures of requests arriving while a login succeeds do not count.
    let token = login(&svc, T0.minus(secs(1))).await;
    for i in 0..5 {
        let err = svc
            .reset_password(
                &ctx(),
                &token,
                &secret(&format!("not it at all {i}")),
                None,
                T0,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::OldPasswordMismatch), "{err:?}");
    }
    // Locked now: neither reset nor login goes through, even with the right password.
    assert!(matches!(
        svc.reset_password(&ctx(), &token, &secret(PASSWORD), None, T0)
            .await,
        Err(DomainError::Locked { .. })
    ));
    assert!(matches!(
        svc.login(&ctx(), USERNAME, &secret(PASSWORD), T0).await,
        Err(DomainError::Locked { .. })
    ));
}

#[tokio::test]
async fn removing_a_user_ends_its_sessions() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = login(&svc, T0).await;
    admin(&svc).remove_user(USERNAME, T0).await.unwrap();
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &token, T0).await,
        Err(DomainError::SessionExpired)
    ));
    assert!(matches!(
        admin(&svc).remove_user(USERNAME, T0).await,
        Err(DomainError::NotFound(_))
    ));
}

#[tokio::test]
async fn purge_deletes_only_idle_sessions() {
    let (_dir, svc) = service(Policy::default()).await;
    let old = login(&svc, T0).await;
    let fresh = login(&svc, T0.plus(mins(15))).await;
    let purged = svc.purge(T0.plus(mins(21))).await.unwrap();
    assert_eq!(purged, 1);
    assert!(
        svc.store()
            .find_session(&old.digest())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        svc.store()
            .find_session(&fresh.digest())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn admin_refuses_duplicates_and_bad_input() {
    let (_dir, svc) = service(Policy::default()).await;
    let admin = admin(&svc);
    let dup = m2m_session_server::domain::NewUser {
        username: USERNAME.into(),
        account: None,
        password: Some(secret("long enough pw")),
    };
    assert!(matches!(
        admin.add_user(dup, T0).await,
        Err(DomainError::AlreadyExists(_))
    ));
    for (name, pw) in [("o'brien", "long enough pw"), ("fine", "short")] {
        let user = m2m_session_server::domain::NewUser {
            username: name.into(),
            account: None,
            password: Some(secret(pw)),
        };
        assert!(matches!(
            admin.add_user(user, T0).await,
            Err(DomainError::InvalidInput(_))
        ));
    }
    assert!(matches!(
        admin.unlock_user("never-seen", T0).await,
        Err(DomainError::NotFound(_))
    ));
}

#[tokio::test]
async fn session_use_is_written_at_most_once_per_granularity() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = login(&svc, T0).await;
    let stored = |svc: &SessionService| {
        let store = svc.store().clone();
        let digest = token.digest();
        async move {
            store
                .find_session(&digest)
                .await
                .unwrap()
                .unwrap()
                .last_used_at
        }
    };
    svc.authenticate_session(CLIENT_ID, &token, T0.plus(secs(30)))
        .await
        .unwrap();
    assert_eq!(stored(&svc).await, T0, "no write within the granularity");
    svc.authenticate_session(CLIENT_ID, &token, T0.plus(secs(59)))
        .await
        .unwrap();
    assert_eq!(stored(&svc).await, T0);
    // Real last use T0+59s, stored T0: the session ends at most one granularity early...
    let end = T0.plus(mins(20));
    assert!(
        svc.authenticate_session(CLIENT_ID, &token, end.minus(secs(1)))
            .await
            .is_ok()
    );
    // ...and that use, over a minute after the stored one, was written.
    assert_eq!(stored(&svc).await, end.minus(secs(1)));
}

#[tokio::test]
async fn a_session_never_outlives_the_idle_timeout_after_its_real_last_use() {
    let (_dir, svc) = service(Policy::default()).await;
    let token = login(&svc, T0).await;
    svc.authenticate_session(CLIENT_ID, &token, T0.plus(secs(59)))
        .await
        .unwrap();
    // Real last use T0+59s; stored T0. It is over by T0+20m, earlier than T0+59s+20m by less
    // than the granularity, never later.
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &token, T0.plus(mins(20)))
            .await,
        Err(DomainError::SessionExpired)
    ));
}

#[tokio::test]
async fn short_idle_timeouts_keep_a_fine_granularity() {
    let policy = Policy {
        session_idle_timeout: secs(10),
        ..Policy::default()
    };
    let (_dir, svc) = service(policy).await;
    let token = login(&svc, T0).await;
    // Granularity is 1 s here (a tenth of 10 s): a use every 9 s keeps it alive.
    let mut t = T0;
    for _ in 0..5 {
        t = t.plus(secs(9));
        svc.authenticate_session(CLIENT_ID, &token, t)
            .await
            .unwrap();
    }
    assert!(matches!(
        svc.authenticate_session(CLIENT_ID, &token, t.plus(secs(10)))
            .await,
        Err(DomainError::SessionExpired)
    ));
}
