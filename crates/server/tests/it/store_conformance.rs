//! The behaviour every `Store` backend must have. Each test is a function over a store; the
//! macro at the bottom instantiates all of them for each backend.

use std::sync::Arc;

use m2m_session_server::crypto::{SessionToken, digest};
use m2m_session_server::store::{
    ApiTokenRecord, ClientRecord, PasswordReset, SessionRecord, Store, StoreError, UserRecord,
};
use m2m_session_server::time::Timestamp;

use crate::support::*;

fn user(name: &str) -> UserRecord {
    UserRecord {
        username: name.into(),
        account: Some("acct".into()),
        password_hash: format!("hash-of-{name}"),
        created_at: T0,
    }
}

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        secret_hash: "h".into(),
        scopes: vec!["a".into(), "b".into()],
        created_at: T0,
    }
}

fn session(name: &str, client_id: &str) -> SessionRecord {
    SessionRecord {
        token_digest: SessionToken::generate().digest(),
        username: name.into(),
        client_id: client_id.into(),
        created_at: T0,
        last_used_at: T0,
    }
}

fn api_token(client_id: &str, scope: &str, seed: u8, at: Timestamp) -> ApiTokenRecord {
    ApiTokenRecord {
        token_digest: digest(&format!("token-{client_id}-{scope}-{seed}-{}", at.0)),
        client_id: client_id.into(),
        scope: scope.into(),
        seed: vec![seed; 32],
        issued_at: at,
        expires_at: at.plus(mins(60)),
    }
}

pub async fn users_round_trip(store: Arc<dyn Store>) {
    store.insert_user(&user("bob")).await.unwrap();
    store.insert_user(&user("alice")).await.unwrap();
    assert!(matches!(
        store.insert_user(&user("bob")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find_user("bob").await.unwrap(), Some(user("bob")));
    assert_eq!(store.find_user("BOB").await.unwrap(), None);
    let names: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(store.remove_user("bob").await.unwrap());
    assert!(!store.remove_user("bob").await.unwrap());
    assert_eq!(store.find_user("bob").await.unwrap(), None);
}

pub async fn failures_count_atomically_and_locks_are_never_extended(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.add_failure("carol", T0).await.unwrap()
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=50).collect::<Vec<u32>>());
    store.lock("carol", T0.plus(mins(15))).await.unwrap();
    store.lock("carol", T0.plus(mins(30))).await.unwrap();
    let rec = store.lockout("carol").await.unwrap().unwrap();
    assert_eq!(rec.failures, 50);
    assert_eq!(rec.locked_until, Some(T0.plus(mins(15))));
    assert_eq!(store.list_lockouts().await.unwrap().len(), 1);
    assert!(store.clear_failures("carol").await.unwrap());
    assert!(!store.clear_failures("carol").await.unwrap());
    assert_eq!(store.lockout("carol").await.unwrap(), None);
}

pub async fn clients_round_trip_and_removal_cascades(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    assert!(matches!(
        store.insert_client(&client("c1")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client("c1")));
    store.insert_user(&user("dave")).await.unwrap();
    let s = session("dave", "c1");
    store.insert_session(&s).await.unwrap();
    let t = store
        .issue_api_token(&api_token("c1", "", 1, T0), T0)
        .await
        .unwrap();
    assert!(store.remove_client("c1").await.unwrap());
    assert!(!store.remove_client("c1").await.unwrap());
    assert_eq!(store.find_session(&s.token_digest).await.unwrap(), None);
    assert_eq!(store.find_api_token(&t.token_digest).await.unwrap(), None);
    assert!(store.list_clients().await.unwrap().is_empty());
}

pub async fn one_live_api_token_per_client_and_scope(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    let first = api_token("c1", "a", 1, T0);
    assert_eq!(store.issue_api_token(&first, T0).await.unwrap(), first);
    // Concurrent issuers all get the one already live.
    let mut tasks = Vec::new();
    for seed in 2..12u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .issue_api_token(&api_token("c1", "a", seed, T0), T0)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), first);
    }
    // Another scope is another token.
    let other_scope = api_token("c1", "b", 3, T0);
    assert_eq!(
        store.issue_api_token(&other_scope, T0).await.unwrap(),
        other_scope
    );
    // Once expired, a new candidate replaces it.
    let later = T0.plus(mins(60));
    let next = api_token("c1", "a", 4, later);
    assert_eq!(store.issue_api_token(&next, later).await.unwrap(), next);
    assert_eq!(
        store.find_api_token(&first.token_digest).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_api_token(&next.token_digest).await.unwrap(),
        Some(next.clone())
    );
    assert!(store.delete_api_token(&next.token_digest).await.unwrap());
    assert!(!store.delete_api_token(&next.token_digest).await.unwrap());
}

pub async fn sessions_touch_delete_and_purge(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("erin")).await.unwrap();
    let s = session("erin", "c1");
    store.insert_session(&s).await.unwrap();
    assert_eq!(
        store.find_session(&s.token_digest).await.unwrap(),
        Some(s.clone())
    );
    assert!(
        store
            .touch_session(&s.token_digest, T0.plus(mins(5)))
            .await
            .unwrap()
    );
    // Touching never moves last use backwards.
    assert!(
        store
            .touch_session(&s.token_digest, T0.plus(mins(1)))
            .await
            .unwrap()
    );
    let found = store.find_session(&s.token_digest).await.unwrap().unwrap();
    assert_eq!(found.last_used_at, T0.plus(mins(5)));
    let idle = session("erin", "c1");
    store.insert_session(&idle).await.unwrap();
    assert_eq!(
        store
            .purge_sessions_idle_since(T0.plus(mins(1)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.find_session(&idle.token_digest).await.unwrap(), None);
    assert!(store.delete_session(&s.token_digest).await.unwrap());
    assert!(!store.delete_session(&s.token_digest).await.unwrap());
    assert!(!store.touch_session(&s.token_digest, T0).await.unwrap());
    // Removing the user removes its sessions.
    let s2 = session("erin", "c1");
    store.insert_session(&s2).await.unwrap();
    store.remove_user("erin").await.unwrap();
    assert_eq!(store.find_session(&s2.token_digest).await.unwrap(), None);
}

pub async fn reset_is_a_compare_and_swap_that_revokes_other_sessions(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("fay")).await.unwrap();
    let keep = session("fay", "c1");
    let drop = session("fay", "c1");
    store.insert_session(&keep).await.unwrap();
    store.insert_session(&drop).await.unwrap();
    store.add_failure("fay", T0).await.unwrap();
    let reset = PasswordReset {
        username: "fay".into(),
        expected_hash: "hash-of-fay".into(),
        new_hash: "new-hash".into(),
        keep_session: keep.token_digest,
        now: T0.plus(mins(3)),
    };
    assert!(store.reset_password(&reset).await.unwrap());
    assert_eq!(
        store.find_user("fay").await.unwrap().unwrap().password_hash,
        "new-hash"
    );
    assert_eq!(store.find_session(&drop.token_digest).await.unwrap(), None);
    let kept = store
        .find_session(&keep.token_digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.last_used_at, T0.plus(mins(3)));
    assert_eq!(store.lockout("fay").await.unwrap(), None);
    // The same reset again: the expected hash is gone, nothing changes.
    assert!(!store.reset_password(&reset).await.unwrap());
    assert_eq!(
        store.find_user("fay").await.unwrap().unwrap().password_hash,
        "new-hash"
    );
}

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            conformance!(@tests $open;
                users_round_trip,
                failures_count_atomically_and_locks_are_never_extended,
                clients_round_trip_and_removal_cascades,
                one_live_api_token_per_client_and_scope,
                sessions_touch_delete_and_purge,
                reset_is_a_compare_and_swap_that_revokes_other_sessions,
                ping_answers,
            );
        }
    };
    (@tests $open:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $open.await;
                super::$name(store).await;
            }
        )*
    };
}

async fn open_sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let (dir, url) = temp_db();
    let store = sqlite_store(&url).await;
    (dir, store)
}

conformance!(sqlite, open_sqlite());
