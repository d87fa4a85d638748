//! Smart lockout through the domain, with the time handed in: which wrong passwords count
//! (`domain/lockout.rs`), where (`domain/familiar.rs`), what the audit log says, and where each
//! rule ends.

use std::net::IpAddr;

use m2m_session_server::crypto::SessionToken;
use m2m_session_server::domain::{
    Admin, DomainError, FamiliarSources, Policy, RequestContext, SessionService,
};
use m2m_session_server::store::AuditRecord;
use m2m_session_server::time::Timestamp;
use secrecy::ExposeSecret;

use crate::support::*;

fn from(ip: &str) -> RequestContext {
    RequestContext::new(CLIENT_ID, Some(ip.parse::<IpAddr>().unwrap()))
}

async fn login_as(
    svc: &SessionService,
    ip: &str,
    username: &str,
    password: &str,
    at: Timestamp,
) -> Result<SessionToken, DomainError> {
    svc.login(&from(ip), username, &secret(password), at).await
}

async fn attempts_audited(svc: &SessionService, username: &str) -> Vec<AuditRecord> {
    let all = svc
        .store()
        .list_audit(Some(username), None, None)
        .await
        .unwrap();
    all.into_iter()
        .filter(|r| r.event == "login" || r.event == "reset")
        .collect()
}

fn invalid(r: Result<SessionToken, DomainError>) -> bool {
    matches!(r, Err(DomainError::InvalidCredentials))
}

fn locked<T>(r: &Result<T, DomainError>) -> bool {
    matches!(r, Err(DomainError::Locked { .. }))
}

#[tokio::test]
async fn a_hundred_repeats_of_one_wrong_password_count_once_and_say_so() {
    let (_dir, svc) = service(Policy::default()).await;
    for i in 0..100 {
        let at = T0.plus(secs(i));
        assert!(invalid(
            login_as(&svc, "192.0.2.1", USERNAME, "wrong", at).await
        ));
    }
    let failures = svc.store().lockouts(USERNAME).await.unwrap();
    assert_eq!(failures[0].failures, 1);
    let audited = attempts_audited(&svc, USERNAME).await;
    assert_eq!(audited.len(), 100);
    assert_eq!(
        audited[0].detail.as_deref(),
        Some("counted: failure 1 of 5")
    );
    for r in &audited[1..] {
        assert_eq!(r.outcome, "invalid_credentials");
        assert_eq!(
            r.detail.as_deref(),
            Some("not counted: the same wrong password already counts")
        );
    }
    // Four more distinct guesses lock as ever: the budget of distinct guesses is unchanged.
    for i in 0..4 {
        let guess = format!("guess {i}");
        assert!(invalid(
            login_as(&svc, "192.0.2.1", USERNAME, &guess, T0.plus(mins(2))).await
        ));
    }
    let r = login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0.plus(mins(2))).await;
    assert!(locked(&r), "{r:?}");
}

#[tokio::test]
async fn an_unknown_name_counts_repeats_and_guesses_as_a_user_does() {
    let (_dir, svc) = service(Policy::default()).await;
    let at = T0;
    for _ in 0..20 {
        assert!(invalid(
            login_as(&svc, "192.0.2.1", "nobody", "same", at).await
        ));
    }
    assert_eq!(svc.store().lockouts("nobody").await.unwrap()[0].failures, 1);
    for i in 0..4 {
        let guess = format!("guess {i}");
        assert!(invalid(
            login_as(&svc, "192.0.2.1", "nobody", &guess, at).await
        ));
    }
    let r = login_as(&svc, "192.0.2.1", "nobody", "anything", at).await;
    assert!(locked(&r), "{r:?}");
}

#[tokio::test]
async fn a_success_starts_the_count_and_the_remembered_passwords_afresh() {
    let (_dir, svc) = service(Policy::default()).await;
    assert!(invalid(
        login_as(&svc, "192.0.2.1", USERNAME, "typo", T0).await
    ));
    login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0.plus(secs(1)))
        .await
        .unwrap();
    // The same typo after the success is a new failure, counted.
    let later = T0.plus(secs(2));
    assert!(invalid(
        login_as(&svc, "192.0.2.1", USERNAME, "typo", later).await
    ));
    let audited = attempts_audited(&svc, USERNAME).await;
    assert_eq!(
        audited.last().unwrap().detail.as_deref(),
        Some("counted: failure 1 of 5")
    );
}

/// A fleet after a reset: the replaced password, from any number of workers, for the whole
/// grace period, never locks the user; from the grace period's end it is a wrong password
/// like any other.
#[tokio::test]
async fn the_replaced_password_is_stale_for_the_grace_period_then_counts() {
    let policy = Policy {
        previous_password_grace: mins(30),
        ..Policy::default()
    };
    let (_dir, svc) = service(policy).await;
    let token = login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0)
        .await
        .unwrap();
    let new = svc
        .reset_password(&from("192.0.2.1"), &token, &secret(PASSWORD), None, T0)
        .await
        .unwrap();
    let new = new.expose_secret();
    // Fifty retries through the grace period, the last a millisecond before its end.
    let end = T0.plus(mins(30));
    for i in 0..50u64 {
        let at = if i == 49 {
            end.minus(std::time::Duration::from_millis(1))
        } else {
            // From a second on: a request that arrived before the reset was decided raced
            // it and is forgiven, whatever its password.
            T0.plus(secs(1 + i * 30))
        };
        assert!(invalid(
            login_as(&svc, "192.0.2.9", USERNAME, PASSWORD, at).await
        ));
    }
    // A reset presenting it is recognised the same way.
    let r = svc
        .reset_password(
            &from("192.0.2.9"),
            &token,
            &secret(PASSWORD),
            None,
            T0.plus(mins(1)),
        )
        .await;
    assert!(matches!(r, Err(DomainError::OldPasswordMismatch)), "{r:?}");
    assert!(svc.store().lockouts(USERNAME).await.unwrap().is_empty());
    let audited = attempts_audited(&svc, USERNAME).await;
    let stale: Vec<_> = audited
        .iter()
        .filter(|r| r.outcome == "stale_password")
        .collect();
    assert_eq!(stale.len(), 51);
    assert_eq!(
        stale[0].detail.as_deref(),
        Some("not counted: the password the last reset replaced")
    );
    login_as(&svc, "192.0.2.1", USERNAME, new, end.minus(secs(1)))
        .await
        .unwrap();
    // At the end of the grace period it counts.
    assert!(invalid(
        login_as(&svc, "192.0.2.9", USERNAME, PASSWORD, end).await
    ));
    assert_eq!(svc.store().lockouts(USERNAME).await.unwrap()[0].failures, 1);
}

#[tokio::test]
async fn without_a_grace_period_the_replaced_password_counts_at_once() {
    let policy = Policy {
        previous_password_grace: std::time::Duration::ZERO,
        ..Policy::default()
    };
    let (_dir, svc) = service(policy).await;
    let token = login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0)
        .await
        .unwrap();
    svc.reset_password(&from("192.0.2.1"), &token, &secret(PASSWORD), None, T0)
        .await
        .unwrap();
    assert!(invalid(
        login_as(&svc, "192.0.2.9", USERNAME, PASSWORD, T0.plus(secs(1))).await
    ));
    assert_eq!(svc.store().lockouts(USERNAME).await.unwrap()[0].failures, 1);
}

/// Five distinct wrong passwords for the user from `ip` at `at`, each refused as one.
async fn five_guesses(svc: &SessionService, ip: &str, prefix: &str, at: Timestamp) {
    for i in 0..5 {
        let guess = format!("{prefix}{i}");
        assert!(invalid(login_as(svc, ip, USERNAME, &guess, at).await));
    }
}

fn familiar(mode: FamiliarSources) -> Policy {
    Policy {
        familiar_sources: mode,
        familiar_source_window: mins(60),
        ip_failure_limit: 0,
        ..Policy::default()
    }
}

/// A guesser elsewhere locks only the bucket every unfamiliar source shares; the address the
/// user logged in from keeps its own count, and loses it when it has not been seen for the
/// window.
#[tokio::test]
async fn a_guesser_elsewhere_cannot_lock_out_a_familiar_address() {
    let (_dir, svc) = service(familiar(FamiliarSources::Address)).await;
    let home = "192.0.2.1";
    // A second before the guesses: requests that arrive while a login succeeds are forgiven.
    login_as(&svc, home, USERNAME, PASSWORD, T0.minus(secs(1)))
        .await
        .unwrap();
    five_guesses(&svc, "127.0.0.2", "guess ", T0).await;
    let r = login_as(&svc, "127.0.0.2", USERNAME, PASSWORD, T0).await;
    assert!(locked(&r), "{r:?}");
    // A neighbour of the familiar address is not familiar in address mode.
    let r = login_as(&svc, "192.0.2.2", USERNAME, PASSWORD, T0).await;
    assert!(locked(&r), "{r:?}");
    login_as(&svc, home, USERNAME, PASSWORD, T0.plus(mins(1)))
        .await
        .unwrap();
    // The familiar address's own typos count in its own bucket, to the same threshold.
    for i in 0..5 {
        let typo = format!("typo {i}");
        assert!(invalid(
            login_as(&svc, home, USERNAME, &typo, T0.plus(mins(2))).await
        ));
    }
    let r = login_as(&svc, home, USERNAME, PASSWORD, T0.plus(mins(2))).await;
    assert!(locked(&r), "{r:?}");
    let buckets: Vec<_> = svc
        .store()
        .lockouts(USERNAME)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.bucket, r.failures))
        .collect();
    assert_eq!(buckets, [(String::new(), 5), (home.to_owned(), 5)]);
    // An unlock clears both.
    Admin::new(svc.store().clone(), hasher())
        .unlock_user(USERNAME, T0.plus(mins(3)))
        .await
        .unwrap();
    let r = login_as(&svc, "127.0.0.2", USERNAME, PASSWORD, T0.plus(mins(20))).await;
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn a_familiar_source_stays_familiar_for_its_window_only() {
    let (_dir, svc) = service(familiar(FamiliarSources::Network)).await;
    login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0)
        .await
        .unwrap();
    five_guesses(&svc, "198.51.100.7", "guess ", T0).await;
    // Another machine of the same /24, a second before the window ends: familiar.
    let last = T0.plus(mins(60)).minus(secs(1));
    login_as(&svc, "192.0.2.77", USERNAME, PASSWORD, last)
        .await
        .unwrap();
    // Its success moved the window on; an hour after that, the network is a stranger again and
    // shares the locked bucket (the lock lasts 15 minutes from the guesses: lock it anew).
    let stranger_again = last.plus(mins(60));
    five_guesses(&svc, "198.51.100.7", "later guess ", stranger_again).await;
    let r = login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, stranger_again).await;
    assert!(locked(&r), "{r:?}");
}

#[tokio::test]
async fn with_familiar_sources_off_every_source_shares_one_count() {
    let (_dir, svc) = service(familiar(FamiliarSources::Off)).await;
    login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0.minus(secs(1)))
        .await
        .unwrap();
    five_guesses(&svc, "198.51.100.7", "guess ", T0).await;
    let r = login_as(&svc, "192.0.2.1", USERNAME, PASSWORD, T0).await;
    assert!(locked(&r), "{r:?}");
}
