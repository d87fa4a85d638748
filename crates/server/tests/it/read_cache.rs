//! The SQLite store's read cache never serves a session or API token the database no longer
//! holds, whether this store or another connection (another process, the admin CLI) revoked it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m2m_session_server::crypto::digest;
use m2m_session_server::store::{
    ApiTokenRecord, ClientStore, SessionRecord, SessionStore, SqliteStore, StoreSettings, UserStore,
};

use crate::support::*;

async fn open(url: &str) -> Arc<SqliteStore> {
    Arc::new(
        SqliteStore::open(url, &StoreSettings::default())
            .await
            .unwrap(),
    )
}

async fn seeded(store: &SqliteStore) {
    seed_records(store, &["ann", "ben"]).await;
}

async fn new_session(store: &SqliteStore, username: &str) -> SessionRecord {
    insert_new_session(store, username).await
}

/// Looks the session up until the cache holds it (validation runs in the background).
async fn warm(store: &SqliteStore, session: &SessionRecord) {
    for _ in 0..200 {
        let found = store.find_session(&session.token_digest).await.unwrap();
        assert_eq!(found.as_ref(), Some(session));
        if store.caches(&session.token_digest) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the session never reached the cache");
}

/// Not found now, nor after the cache has had time to validate itself again.
async fn assert_gone(store: &SqliteStore, session: &SessionRecord) {
    for _ in 0..20 {
        assert_eq!(
            store.find_session(&session.token_digest).await.unwrap(),
            None
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn revocations_by_this_store_are_never_served_from_the_cache() {
    let (_dir, url) = temp_db();
    let store = open(&url).await;
    seeded(&store).await;

    let s = new_session(&store, "ann").await;
    warm(&store, &s).await;
    assert!(store.delete_session(&s.token_digest).await.unwrap());
    assert_gone(&store, &s).await;

    let s = new_session(&store, "ann").await;
    warm(&store, &s).await;
    assert_eq!(store.delete_user_sessions("ann").await.unwrap(), 1);
    assert_gone(&store, &s).await;

    let s = new_session(&store, "ann").await;
    warm(&store, &s).await;
    assert!(store.delete_session_by_id(&s.id).await.unwrap());
    assert_gone(&store, &s).await;

    // A touch is never hidden by an older cached last use.
    let s = new_session(&store, "ann").await;
    warm(&store, &s).await;
    let later = T0.plus(Duration::from_secs(300));
    assert!(store.touch_session(&s.token_digest, later).await.unwrap());
    let found = store.find_session(&s.token_digest).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, later);

    let s = new_session(&store, "ben").await;
    warm(&store, &s).await;
    assert!(store.remove_user("ben").await.unwrap());
    assert_gone(&store, &s).await;
}

#[tokio::test]
async fn revocations_by_another_connection_are_never_served_from_the_cache() {
    let (_dir, url) = temp_db();
    let server = open(&url).await;
    // The admin CLI's connection, as far as SQLite can tell.
    let admin = open(&url).await;
    seeded(&server).await;

    let s = new_session(&server, "ann").await;
    warm(&server, &s).await;
    assert!(admin.delete_session(&s.token_digest).await.unwrap());
    assert_gone(&server, &s).await;

    let s = new_session(&server, "ann").await;
    warm(&server, &s).await;
    assert_eq!(admin.delete_user_sessions("ann").await.unwrap(), 1);
    assert_gone(&server, &s).await;

    let s = new_session(&server, "ben").await;
    warm(&server, &s).await;
    assert!(admin.remove_user("ben").await.unwrap());
    assert_gone(&server, &s).await;

    let token = ApiTokenRecord {
        token_digest: digest("api-token"),
        client_id: "c1".into(),
        scope: String::new(),
        seed: vec![7; 32],
        issued_at: T0,
        expires_at: T0.plus(Duration::from_secs(3600)),
    };
    server.issue_api_token(&token, T0).await.unwrap();
    for _ in 0..200 {
        assert!(
            server
                .find_api_token(&token.token_digest)
                .await
                .unwrap()
                .is_some()
        );
        if server.caches(&token.token_digest) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(server.caches(&token.token_digest), "token never cached");
    assert!(admin.remove_client("c1").await.unwrap());
    assert_eq!(
        server.find_api_token(&token.token_digest).await.unwrap(),
        None
    );
}

/// Checks racing with revocations: once a revocation has returned, no check that starts after
/// it may find the session, however the checks and the cache's validations interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_racing_revocations_never_see_a_revoked_session() {
    let (_dir, url) = temp_db();
    let server = open(&url).await;
    let admin = open(&url).await;
    seeded(&server).await;
    for round in 0..20 {
        let s = new_session(&server, "ann").await;
        warm(&server, &s).await;
        let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let mut checkers = Vec::new();
        for _ in 0..3 {
            let (server, revoked_at, digest) = (server.clone(), revoked_at.clone(), s.token_digest);
            checkers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let found = server.find_session(&digest).await.unwrap();
                    let revoked = *revoked_at.lock().unwrap();
                    if let Some(at) = revoked {
                        assert!(
                            found.is_none() || started < at,
                            "a check started after the revocation found the session"
                        );
                        if started > at + Duration::from_millis(20) {
                            return;
                        }
                    }
                }
                panic!("the checker never saw the revocation");
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Alternate who revokes: this store (own write) or the other connection.
        let revoker = if round % 2 == 0 { &admin } else { &server };
        assert!(revoker.delete_session(&s.token_digest).await.unwrap());
        *revoked_at.lock().unwrap() = Some(Instant::now());
        for c in checkers {
            c.await.unwrap();
        }
    }
}

/// This store's own writes leave the cache trusted at once: the first lookup after one fills
/// it, with no wait for a background validation. Before, every write of ours (a login, a
/// last-use touch) sent lookups to the database until one had run, at most every 50 ms.
#[tokio::test]
async fn writes_by_this_store_leave_the_cache_trusted() {
    let (_dir, url) = temp_db();
    let store = open(&url).await;
    seeded(&store).await;
    let other = new_session(&store, "ben").await;
    for minute in 1..=5 {
        let later = T0.plus(Duration::from_secs(60 * minute));
        assert!(
            store
                .touch_session(&other.token_digest, later)
                .await
                .unwrap()
        );
        let s = new_session(&store, "ann").await;
        let found = store.find_session(&s.token_digest).await.unwrap();
        assert_eq!(found.as_ref(), Some(&s));
        assert!(
            store.caches(&s.token_digest),
            "the first lookup after a write went uncached"
        );
    }
}
