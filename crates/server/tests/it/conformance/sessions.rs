//! Sessions: their life (touch, delete, purge), listing and the cap, and a login's one-transaction start.

use super::*;

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
    assert_eq!(
        store
            .count_sessions_used_since(T0.plus(mins(5)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_sessions_used_since(T0.plus(mins(6)))
            .await
            .unwrap(),
        0
    );
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

pub async fn sessions_are_listed_revoked_and_capped(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("gus")).await.unwrap();
    store.insert_user(&user("hal")).await.unwrap();
    let mut gus = Vec::new();
    for i in 0..4 {
        let mut s = session("gus", "c1");
        s.created_at = T0.plus(secs(i));
        store.insert_session(&s).await.unwrap();
        gus.push(s);
    }
    let hal = session("hal", "c1");
    store.insert_session(&hal).await.unwrap();
    assert_eq!(store.list_sessions(None).await.unwrap().len(), 5);
    assert_eq!(store.list_sessions(Some("gus")).await.unwrap(), gus);
    // A login capped at three sessions keeps the newest two and itself.
    let mut newest = session("gus", "c1");
    newest.created_at = T0.plus(secs(4));
    store
        .reserve_attempt(&attempt("gus", "cap", T0))
        .await
        .unwrap();
    assert_eq!(
        store
            .start_session(&start(&newest, "cap", Some(3)))
            .await
            .unwrap(),
        2
    );
    gus.push(newest.clone());
    assert_eq!(
        store.list_sessions(Some("gus")).await.unwrap(),
        gus[2..].to_vec()
    );
    assert!(store.delete_session_by_id(&newest.id).await.unwrap());
    assert!(store.delete_session_by_id(&gus[2].id).await.unwrap());
    assert!(!store.delete_session_by_id(&gus[2].id).await.unwrap());
    assert_eq!(store.delete_user_sessions("gus").await.unwrap(), 1);
    assert_eq!(store.list_sessions(None).await.unwrap(), vec![hal]);
}

pub async fn a_login_ends_its_reservation_and_starts_its_session_at_once(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("jay")).await.unwrap();
    for id in ["f1", "f2"] {
        store
            .reserve_attempt(&attempt("jay", id, T0))
            .await
            .unwrap();
        store
            .finish_attempt(&end("jay", id, failed(T0.plus(mins(15))), T0))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .reserve_attempt(&attempt("jay", "ok", T0))
            .await
            .unwrap(),
        GRANTED
    );
    let new = session("jay", "c1");
    assert_eq!(
        store.start_session(&start(&new, "ok", None)).await.unwrap(),
        0
    );
    assert_eq!(
        store.find_session(&new.token_digest).await.unwrap(),
        Some(new.clone())
    );
    assert_eq!(store.lockout("jay").await.unwrap(), None);
    assert_eq!(
        store.list_audit(Some("jay"), None, None).await.unwrap(),
        vec![login_audit("jay")]
    );
    // Failures cleared and the reservation gone: all five verifications are free again.
    for i in 0..5 {
        assert_eq!(
            store
                .reserve_attempt(&attempt("jay", &format!("n{i}"), T0))
                .await
                .unwrap(),
            GRANTED
        );
    }
    // Nothing is half done: a session that cannot be stored leaves the counters alone.
    store
        .finish_attempt(&end("jay", "n0", failed(T0.plus(mins(15))), T0))
        .await
        .unwrap();
    assert!(matches!(
        store.start_session(&start(&new, "n1", None)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.lockout("jay").await.unwrap().unwrap().failures, 1);
    assert_eq!(
        store
            .reserve_attempt(&attempt("jay", "n5", T0))
            .await
            .unwrap(),
        BUSY
    );
    assert_eq!(
        store
            .list_audit(Some("jay"), None, None)
            .await
            .unwrap()
            .len(),
        1
    );
}
