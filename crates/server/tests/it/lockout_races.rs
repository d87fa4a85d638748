//! The lockout and throttle rules under parallel requests, on every backend: a success is never
//! followed by a lock its own concurrent checks caused, and no burst gets past the per-IP limit.

use std::sync::Arc;

use m2m_session_server::crypto::{Argon2Settings, PasswordHasher};
use m2m_session_server::domain::{DomainError, Policy, RequestContext, SessionService};
use m2m_session_server::store::Store;
use secrecy::ExposeSecret;

use crate::support::*;

fn ctx() -> RequestContext {
    RequestContext::new(CLIENT_ID, Some("192.0.2.10".parse().unwrap()))
}

/// Room in the hasher's queue for every request: what is tested is the lock, not shedding.
fn roomy_hasher() -> PasswordHasher {
    PasswordHasher::with_queue(Argon2Settings::MINIMUM, 2, 64).unwrap()
}

fn service(store: Arc<dyn Store>, policy: Policy) -> SessionService {
    SessionService::new(store, roomy_hasher(), policy)
}

/// 20 parallel resets, all with the right old password and each with its own key: one wins,
/// the others meet a password that changed under them. None of them may lock the user, who
/// holds a valid new password.
pub async fn parallel_correct_resets_never_lock_the_user(backend: Backend, store: Arc<dyn Store>) {
    let svc = service(store, Policy::default());
    let peer = service(backend.second_node().await, Policy::default());
    let token = svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), T0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        // Split over two nodes.
        let svc = if i % 2 == 0 {
            svc.clone()
        } else {
            peer.clone()
        };
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("key-{i}");
            svc.reset_password(&ctx(), &token, &secret(PASSWORD), Some(&key), T0)
                .await
        }));
    }
    let mut new_passwords = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => new_passwords.push(p),
            Err(DomainError::OldPasswordMismatch) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(new_passwords.len(), 1, "exactly one reset wins");
    assert_eq!(svc.store().lockout(USERNAME).await.unwrap(), None);
    let other = backend.second_node().await;
    let fresh = service(other, Policy::default());
    fresh
        .login(&ctx(), USERNAME, &new_passwords[0], T0)
        .await
        .unwrap_or_else(|e| panic!("the new password must log in: {e:?}"));
}

/// Logins with the old password race a reset: those that arrived before the reset succeeded
/// do not count, so the user is not locked; later wrong passwords count as usual.
pub async fn requests_that_arrived_before_a_success_do_not_count(
    backend: Backend,
    store: Arc<dyn Store>,
) {
    let svc = service(store, Policy::default());
    let token = svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), T0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (svc, token) = (svc.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            if i == 0 {
                svc.reset_password(&ctx(), &token, &secret(PASSWORD), None, T0)
                    .await
                    .map(|p| Some(p.expose_secret().to_owned()))
            } else {
                svc.login(&ctx(), USERNAME, &secret(PASSWORD), T0)
                    .await
                    .map(|_| None)
            }
        }));
    }
    let mut new_password = None;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(p)) => new_password = Some(p),
            Ok(None) | Err(DomainError::InvalidCredentials) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let new_password = new_password.expect("the reset succeeds");
    let second = service(backend.second_node().await, Policy::default());
    second
        .login(&ctx(), USERNAME, &secret(&new_password), T0)
        .await
        .unwrap_or_else(|e| panic!("not locked after a racing success: {e:?}"));
    // Requests that arrive after the success count as ever: five lock the user. Each brings a
    // wrong password of its own (a repeated one, or the replaced one, would not count again).
    let later = T0.plus(secs(1));
    for i in 0..5 {
        assert!(matches!(
            second
                .login(&ctx(), USERNAME, &secret(&format!("wrong-{i}")), later)
                .await,
            Err(DomainError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        svc.login(&ctx(), USERNAME, &secret(&new_password), later)
            .await,
        Err(DomainError::Locked { .. })
    ));
}

/// 40 parallel wrong logins from one address, for 40 different usernames, against a limit of
/// 10 failures per address: at most 10 are verified, the rest are throttled, on one node or two.
pub async fn a_parallel_burst_never_passes_the_ip_limit(backend: Backend, store: Arc<dyn Store>) {
    let policy = Policy {
        ip_failure_limit: 10,
        ..Policy::default()
    };
    let nodes = [
        service(store, policy.clone()),
        service(backend.second_node().await, policy),
    ];
    let before: u64 = nodes.iter().map(|n| n.hasher().verifications()).sum();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let svc = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("guess-{i}");
            svc.login(&ctx(), &name, &secret("wrong password"), T0)
                .await
        }));
    }
    let (mut invalid, mut throttled) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(DomainError::InvalidCredentials) => invalid += 1,
            Err(DomainError::Throttled { .. }) => throttled += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let verified: u64 = nodes
        .iter()
        .map(|n| n.hasher().verifications())
        .sum::<u64>()
        - before;
    assert!(
        invalid <= 10,
        "{invalid} wrong logins answered past the limit of 10"
    );
    assert!(
        verified <= 10,
        "{verified} verifications ran past the limit of 10"
    );
    assert_eq!(invalid + throttled, 40);
    // The right password from that address is throttled too, within the window.
    assert!(matches!(
        nodes[0]
            .login(&ctx(), USERNAME, &secret(PASSWORD), T0.plus(mins(59)))
            .await,
        Err(DomainError::Throttled { .. })
    ));
}

/// The window slides: never more than the limit of failures within any window's length, even
/// across the boundary a fixed window would have.
pub async fn the_ip_window_slides(_backend: Backend, store: Arc<dyn Store>) {
    let policy = Policy {
        ip_failure_limit: 4,
        ip_failure_window: mins(60),
        ..Policy::default()
    };
    let svc = service(store, policy);
    let names = std::sync::atomic::AtomicU32::new(0);
    // A new username each time, so that no username's own lock gets in the way.
    let wrong = |at| {
        let svc = svc.clone();
        let name = format!(
            "nobody-{}",
            names.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        async move { svc.login(&ctx(), &name, &secret("wrong"), at).await }
    };
    // Two failures early in the window, two late.
    for at in [T0, T0.plus(mins(1)), T0.plus(mins(58)), T0.plus(mins(59))] {
        assert!(matches!(
            wrong(at).await,
            Err(DomainError::InvalidCredentials)
        ));
    }
    // Just past the first window's end, a fixed window would start counting afresh: the
    // last hour still holds three failures, so one more is allowed and then the limit holds.
    let after = T0.plus(mins(60)).plus(secs(1));
    assert!(matches!(
        wrong(after).await,
        Err(DomainError::InvalidCredentials)
    ));
    match wrong(after).await {
        Err(DomainError::Throttled { retry_after }) => {
            // Until the failure at T0 + 1 min leaves the window.
            assert_eq!(retry_after, secs(59));
        }
        other => panic!("expected the sliding window to throttle: {other:?}"),
    }
    let later = T0.plus(mins(61)).plus(secs(1));
    assert!(matches!(
        wrong(later).await,
        Err(DomainError::InvalidCredentials)
    ));
}

/// With permanent locks the username counters wait for an administrator, but the addresses'
/// failures still leave with their window: the log cannot grow for ever.
pub async fn address_failures_are_purged_even_with_permanent_locks(
    _backend: Backend,
    store: Arc<dyn Store>,
) {
    let policy = Policy {
        lockout_duration: None,
        ..Policy::default()
    };
    let svc = service(store, policy);
    for name in ["ghost-1", "ghost-2"] {
        assert!(matches!(
            svc.login(&ctx(), name, &secret("wrong"), T0).await,
            Err(DomainError::InvalidCredentials)
        ));
    }
    // Within the hour nothing goes; after it, the two logged failures do, the counters stay.
    assert_eq!(svc.purge(T0.plus(mins(59))).await.unwrap(), 0);
    assert_eq!(svc.purge(T0.plus(mins(61))).await.unwrap(), 2);
    assert_eq!(
        svc.store()
            .lockout("ghost-1")
            .await
            .unwrap()
            .unwrap()
            .failures,
        1
    );
}

/// After a reset, 10 workers on two nodes retry the replaced password 20 times each, in
/// parallel, while the holder of the new password logs in on both: none of the retries
/// counts, so the new password keeps working; then a guesser's repeated wrong password, also
/// in parallel over both nodes, counts once.
pub async fn parallel_stale_and_repeated_passwords_never_lock_the_user(
    backend: Backend,
    store: Arc<dyn Store>,
) {
    let policy = Policy {
        ip_failure_limit: 0,
        ..Policy::default()
    };
    let svc = service(store, policy.clone());
    let peer = service(backend.second_node().await, policy);
    let token = svc
        .login(&ctx(), USERNAME, &secret(PASSWORD), T0)
        .await
        .unwrap();
    let new = svc
        .reset_password(&ctx(), &token, &secret(PASSWORD), None, T0)
        .await
        .unwrap();
    let later = T0.plus(secs(1));
    let mut tasks = Vec::new();
    for worker in 0..10 {
        let svc = if worker % 2 == 0 {
            svc.clone()
        } else {
            peer.clone()
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let r = svc.login(&ctx(), USERNAME, &secret(PASSWORD), later).await;
                assert!(matches!(r, Err(DomainError::InvalidCredentials)), "{r:?}");
            }
        }));
    }
    for node in [&svc, &peer] {
        let (node, new) = (node.clone(), new.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                node.login(&ctx(), USERNAME, &new, later)
                    .await
                    .unwrap_or_else(|e| panic!("the new password must log in: {e:?}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(svc.store().lockout(USERNAME).await.unwrap(), None);
    let guessing = later.plus(secs(1));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let svc = if i % 2 == 0 {
            svc.clone()
        } else {
            peer.clone()
        };
        tasks.push(tokio::spawn(async move {
            svc.login(&ctx(), USERNAME, &secret("one guess"), guessing)
                .await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r, Err(DomainError::InvalidCredentials)), "{r:?}");
    }
    let counted = svc.store().lockout(USERNAME).await.unwrap().unwrap();
    assert_eq!(counted.failures, 1);
    peer.login(&ctx(), USERNAME, &new, guessing)
        .await
        .unwrap_or_else(|e| panic!("the new password must log in: {e:?}"));
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (backend, store) = crate::support::Backend::sqlite().await;
                    super::$name(backend, store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let (backend, store) = crate::support::Backend::postgres().await;
                    super::$name(backend, store).await;
                }
            )*
        }
    };
}

on_every_backend!(
    parallel_correct_resets_never_lock_the_user,
    requests_that_arrived_before_a_success_do_not_count,
    a_parallel_burst_never_passes_the_ip_limit,
    the_ip_window_slides,
    address_failures_are_purged_even_with_permanent_locks,
    parallel_stale_and_repeated_passwords_never_lock_the_user,
);
