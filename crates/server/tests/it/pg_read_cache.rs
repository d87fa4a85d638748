//! The PostgreSQL node's read cache never serves a session or API token that was revoked
//! before the check began: by this node, by another node, by hand-written SQL, or racing the
//! check. The admin CLI's revocations are tested with the real binary in the CLI's tests. And
//! the cache is real: with the revocation trigger disabled, the very same steps serve a
//! revoked session, which is what every test here would then catch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_session_server::crypto::{OsRandomness, SessionToken, digest};
use m2m_session_server::store::{
    ApiTokenRecord, ClientStore, PostgresStore, SessionRecord, SessionStore, StoreSettings,
    UserStore, as_one_check,
};
use sqlx::Connection;

use crate::support::*;

async fn node(db: &PgTestDatabase) -> Arc<PostgresStore> {
    Arc::new(
        PostgresStore::open(db.url(), &StoreSettings::default())
            .await
            .unwrap(),
    )
}

/// A fresh database with clients and users, and two nodes on it.
async fn two_nodes() -> (PgTestDatabase, Arc<PostgresStore>, Arc<PostgresStore>) {
    let db = PgTestDatabase::create().await;
    let a = node(&db).await;
    seed_records(&*a, &["ann", "ben"]).await;
    let b = node(&db).await;
    (db, a, b)
}

async fn new_session(store: &PostgresStore, username: &str) -> SessionRecord {
    insert_new_session(store, username).await
}

fn api_token(name: &str) -> ApiTokenRecord {
    ApiTokenRecord {
        token_digest: digest(name),
        client_id: "c1".into(),
        scope: name.into(),
        seed: vec![7; 32],
        issued_at: T0,
        expires_at: T0.plus(Duration::from_secs(3600)),
    }
}

/// Looks the session up on `store` until its cache holds it, and once more: a cache hit.
async fn warm(store: &PostgresStore, session: &SessionRecord) {
    for _ in 0..3 {
        let found = store.find_session(&session.token_digest).await.unwrap();
        assert_eq!(found.as_ref(), Some(session));
    }
    assert!(
        store.caches(&session.token_digest),
        "the session never reached the cache"
    );
}

async fn warm_token(store: &PostgresStore, token: &ApiTokenRecord) {
    for _ in 0..3 {
        let found = store.find_api_token(&token.token_digest).await.unwrap();
        assert_eq!(found.as_ref(), Some(token));
    }
    assert!(store.caches(&token.token_digest), "never cached");
}

async fn assert_gone(store: &PostgresStore, session: &SessionRecord) {
    for _ in 0..3 {
        assert_eq!(
            store.find_session(&session.token_digest).await.unwrap(),
            None,
            "a revoked session was served"
        );
    }
}

async fn assert_token_gone(store: &PostgresStore, token: &ApiTokenRecord) {
    assert_eq!(
        store.find_api_token(&token.token_digest).await.unwrap(),
        None,
        "a revoked API token was served"
    );
}

/// Every kind of revocation, made by `revoker`, is observed at once by `checker`.
async fn every_revocation_is_observed(checker: &PostgresStore, revoker: &PostgresStore) {
    let s = new_session(checker, "ann").await;
    warm(checker, &s).await;
    assert!(revoker.delete_session(&s.token_digest).await.unwrap());
    assert_gone(checker, &s).await;

    let s = new_session(checker, "ann").await;
    warm(checker, &s).await;
    assert_eq!(revoker.delete_user_sessions("ann").await.unwrap(), 1);
    assert_gone(checker, &s).await;

    let s = new_session(checker, "ann").await;
    warm(checker, &s).await;
    assert!(revoker.delete_session_by_id(&s.id).await.unwrap());
    assert_gone(checker, &s).await;

    // Idle past the cutoff: purged.
    let s = new_session(checker, "ann").await;
    warm(checker, &s).await;
    assert_eq!(
        revoker
            .purge_sessions_idle_since(T0.plus(Duration::from_secs(1)))
            .await
            .unwrap(),
        1
    );
    assert_gone(checker, &s).await;

    // The user removed: its sessions go by cascade.
    let s = new_session(checker, "ben").await;
    warm(checker, &s).await;
    assert!(revoker.remove_user("ben").await.unwrap());
    assert_gone(checker, &s).await;

    let t = api_token("one");
    checker.issue_api_token(&t, T0).await.unwrap();
    warm_token(checker, &t).await;
    assert!(revoker.delete_api_token(&t.token_digest).await.unwrap());
    assert_token_gone(checker, &t).await;

    let t = api_token("two");
    checker.issue_api_token(&t, T0).await.unwrap();
    warm_token(checker, &t).await;
    assert!(
        revoker
            .replace_client_secret("c1", "new-hash", true)
            .await
            .unwrap()
    );
    assert_token_gone(checker, &t).await;

    // The client removed: its tokens and sessions go by cascade.
    let t = api_token("three");
    checker.issue_api_token(&t, T0).await.unwrap();
    warm_token(checker, &t).await;
    let s = new_session(checker, "ann").await;
    warm(checker, &s).await;
    assert!(revoker.remove_client("c1").await.unwrap());
    assert_token_gone(checker, &t).await;
    assert_gone(checker, &s).await;
}

#[tokio::test]
async fn revocations_by_this_node_are_never_served_from_the_cache() {
    let (_db, a, _b) = two_nodes().await;
    every_revocation_is_observed(&a, &a).await;
}

#[tokio::test]
async fn revocations_by_another_node_are_never_served_from_the_cache() {
    let (_db, a, b) = two_nodes().await;
    every_revocation_is_observed(&a, &b).await;
}

#[tokio::test]
async fn revocations_by_hand_written_sql_are_never_served_from_the_cache() {
    let (db, a, _b) = two_nodes().await;
    let mut sql = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(s.token_digest.as_bytes())
        .execute(&mut sql)
        .await
        .unwrap();
    assert_gone(&a, &s).await;

    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;
    sqlx::query("TRUNCATE sessions")
        .execute(&mut sql)
        .await
        .unwrap();
    assert_gone(&a, &s).await;
}

/// The control: without the trigger that moves the epochs, the cache serves a session another
/// node revoked. Every test above fails this way when the invalidation is disabled.
#[tokio::test]
async fn without_the_revocation_trigger_the_cache_would_serve_a_revoked_session() {
    let (db, a, b) = two_nodes().await;
    let mut sql = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("ALTER TABLE sessions DISABLE TRIGGER sessions_revoked")
        .execute(&mut sql)
        .await
        .unwrap();
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;
    assert!(b.delete_session(&s.token_digest).await.unwrap());
    assert_eq!(
        a.find_session(&s.token_digest).await.unwrap().as_ref(),
        Some(&s),
        "expected the stale entry to be served with the trigger disabled"
    );
}

/// Checks on one node racing revocations on either: once a revocation has returned, no check
/// that starts after it finds the session, however checks and validations interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_racing_revocations_never_see_a_revoked_session() {
    let (_db, a, b) = two_nodes().await;
    for round in 0..20 {
        let s = new_session(&a, "ann").await;
        warm(&a, &s).await;
        let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let mut checkers = Vec::new();
        for _ in 0..4 {
            let (a, revoked_at, digest) = (a.clone(), revoked_at.clone(), s.token_digest);
            checkers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut served_before = 0u32;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    // Two lookups as one check, as a request makes them: both may rest on
                    // one validation sent after the check began, never on an older one.
                    let found = as_one_check(started, async {
                        let first = a.find_session(&digest).await.unwrap();
                        let second = a.find_session(&digest).await.unwrap();
                        first.or(second)
                    })
                    .await;
                    let revoked = *revoked_at.lock().unwrap();
                    match revoked {
                        Some(at) => {
                            assert!(
                                found.is_none() || started < at,
                                "a check started after the revocation found the session"
                            );
                            if started > at + Duration::from_millis(20) {
                                return served_before;
                            }
                        }
                        None => served_before += u32::from(found.is_some()),
                    }
                }
                panic!("the checker never saw the revocation");
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let revoker = if round % 2 == 0 { &b } else { &a };
        assert!(revoker.delete_session(&s.token_digest).await.unwrap());
        *revoked_at.lock().unwrap() = Some(Instant::now());
        let mut served = 0;
        for c in checkers {
            served += c.await.unwrap();
        }
        assert!(served > 0, "no check ran before the revocation");
    }
}

/// Another node's touches do not reach this node's cache; its own do, and a touch of a session
/// that is gone says so.
#[tokio::test]
async fn touches_update_this_nodes_cache_and_report_sessions_that_are_gone() {
    let (_db, a, b) = two_nodes().await;
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;
    let later = T0.plus(Duration::from_secs(600));
    assert!(b.touch_session(&s.token_digest, later).await.unwrap());
    let stored = a.reload_session(&s.token_digest).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, later);

    let latest = T0.plus(Duration::from_secs(900));
    assert!(a.touch_session(&s.token_digest, latest).await.unwrap());
    let cached = a.find_session(&s.token_digest).await.unwrap().unwrap();
    assert_eq!(cached.last_used_at, latest);
    // Never backwards.
    assert!(a.touch_session(&s.token_digest, later).await.unwrap());
    let stored = b.reload_session(&s.token_digest).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, latest);

    assert!(b.delete_session(&s.token_digest).await.unwrap());
    assert!(!a.touch_session(&s.token_digest, latest).await.unwrap());
}

/// Concurrent touches of many sessions, some of them gone: each caller gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_touches_each_get_their_own_answer() {
    let (_db, a, b) = two_nodes().await;
    let mut sessions = Vec::new();
    for i in 0..40 {
        let s = new_session(&a, if i % 2 == 0 { "ann" } else { "ben" }).await;
        if i % 4 == 0 {
            assert!(b.delete_session(&s.token_digest).await.unwrap());
        }
        sessions.push((i, s));
    }
    let calls: Vec<_> = sessions
        .iter()
        .map(|(i, s)| {
            let (a, digest, i) = (a.clone(), s.token_digest, *i);
            tokio::spawn(async move {
                let at = T0.plus(Duration::from_secs(60 + i));
                (i, a.touch_session(&digest, at).await.unwrap())
            })
        })
        .collect();
    for call in calls {
        let (i, touched) = call.await.unwrap();
        assert_eq!(touched, i % 4 != 0, "session {i}");
    }
    for (i, s) in &sessions {
        if i % 4 != 0 {
            let stored = b.reload_session(&s.token_digest).await.unwrap().unwrap();
            assert_eq!(stored.last_used_at, T0.plus(Duration::from_secs(60 + i)));
        }
    }
}

/// A session used on node B keeps living on node A, whose cache still holds an older last use:
/// node A reads the stored one before ending it as idle. Without the second read, A ended a
/// session that B had just used.
#[tokio::test]
async fn a_session_used_on_another_node_is_not_ended_as_idle() {
    use m2m_session_server::domain::{Policy, SessionService};

    let (_db, a, b) = two_nodes().await;
    let token = SessionToken::generate(&OsRandomness);
    a.insert_session(&session_of(&token, "ann")).await.unwrap();
    let service =
        |store: Arc<PostgresStore>| SessionService::new(store, hasher(), Policy::default());
    let (on_a, on_b) = (service(a.clone()), service(b.clone()));
    on_a.authenticate_session("c1", &token, T0.plus(mins(1)))
        .await
        .unwrap();
    assert!(a.caches(&token.digest()));
    on_b.authenticate_session("c1", &token, T0.plus(mins(15)))
        .await
        .unwrap();
    // 21 minutes after node A's last sight of it, 6 after B's.
    on_a.authenticate_session("c1", &token, T0.plus(mins(22)))
        .await
        .expect("a session used 7 minutes ago was ended");
    // Idle on both for 20 minutes: ended.
    assert!(
        on_a.authenticate_session("c1", &token, T0.plus(mins(43)))
            .await
            .is_err()
    );
    assert_eq!(b.reload_session(&token.digest()).await.unwrap(), None);
}

/// Validations run on a connection of their own. When it dies, the checks that waited on it are
/// answered "unavailable" (never with the cached record), the next validation opens another,
/// and the cache serves again; closing the store closes it.
#[tokio::test]
async fn a_lost_validation_connection_is_replaced_and_never_serves_a_revoked_session() {
    use m2m_session_server::store::{Store, StoreError};

    let (db, a, b) = two_nodes().await;
    let mut sql = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let validators = "SELECT pid FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()
                        AND query LIKE '%array_agg(epoch ORDER BY slot)%'";
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;
    let pids: Vec<i32> = sqlx::query_scalar(validators)
        .fetch_all(&mut sql)
        .await
        .unwrap();
    assert_eq!(
        pids.len(),
        1,
        "expected one validations' connection: {pids:?}"
    );
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .execute(&mut sql)
        .await
        .unwrap();
    assert!(b.delete_session(&s.token_digest).await.unwrap());
    for _ in 0..3 {
        match a.find_session(&s.token_digest).await {
            Ok(found) => assert_eq!(found, None, "a revoked session was served"),
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("expected unavailable or nothing, got {e:?}"),
        }
    }
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;

    a.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<i32> = sqlx::query_scalar(validators)
            .fetch_all(&mut sql)
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the validations' connection outlived the store: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A validation PostgreSQL does not answer (here it waits behind a lock on the epochs; in life,
/// a connection a firewall dropped without a word) is given up after the store's acquire
/// timeout: the check is answered "unavailable", never with the cached record, instead of
/// waiting with every other check of the node; the next validation runs on a new connection.
#[tokio::test]
async fn a_validation_that_hangs_is_given_up_and_its_connection_replaced() {
    use m2m_session_server::store::StoreError;

    let db = PgTestDatabase::create().await;
    let settings = StoreSettings {
        acquire_timeout: Duration::from_millis(500),
        ..StoreSettings::default()
    };
    let a = PostgresStore::open(db.url(), &settings).await.unwrap();
    seed_records(&a, &["ann"]).await;
    let s = new_session(&a, "ann").await;
    warm(&a, &s).await;

    let mut blocker = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut lock = blocker.begin().await.unwrap();
    sqlx::query("LOCK TABLE revocation_epochs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let check = tokio::time::timeout(Duration::from_secs(20), a.find_session(&s.token_digest))
        .await
        .expect("the check waited for a validation that never came");
    match check {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("did not answer"), "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    lock.rollback().await.unwrap();
    warm(&a, &s).await;
}
