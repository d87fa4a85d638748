//! Users: insert, find, list, remove, and the password changes (rehash, reset) that are compare-and-swaps.

use super::*;

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

pub async fn rehash_is_a_compare_and_swap(store: Arc<dyn Store>) {
    store.insert_user(&user("ivy")).await.unwrap();
    assert!(
        !store
            .update_password_hash("ivy", "stale", "new")
            .await
            .unwrap()
    );
    assert!(
        store
            .update_password_hash("ivy", "hash-of-ivy", "new")
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_user("ivy").await.unwrap().unwrap().password_hash,
        "new"
    );
}

pub async fn reset_is_a_compare_and_swap_that_revokes_other_sessions(store: Arc<dyn Store>) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("fay")).await.unwrap();
    let keep = session("fay", "c1");
    let drop = session("fay", "c1");
    store.insert_session(&keep).await.unwrap();
    store.insert_session(&drop).await.unwrap();
    store
        .reserve_attempt(&attempt("fay", "r1", T0))
        .await
        .unwrap();
    store
        .finish_attempt(&end("fay", "r1", failed(T0.plus(mins(15))), T0))
        .await
        .unwrap();
    store
        .reserve_attempt(&attempt("fay", "r2", T0))
        .await
        .unwrap();
    let reset = PasswordReset {
        username: "fay".into(),
        expected_hash: "hash-of-fay".into(),
        new_hash: "new-hash".into(),
        keep_session: keep.token_digest,
        counters: lockout::succeeded("fay", "r2", T0.plus(mins(3)), T0.plus(mins(3))),
        idempotency: None,
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
    // The reservation ended with the reset: five more can be granted.
    for i in 0..5 {
        let granted = store
            .reserve_attempt(&attempt("fay", &format!("n{i}"), T0))
            .await
            .unwrap();
        assert_eq!(granted, GRANTED);
    }
    // The same reset again: the expected hash is gone, nothing changes.
    assert!(!store.reset_password(&reset).await.unwrap());
    assert_eq!(
        store.find_user("fay").await.unwrap().unwrap().password_hash,
        "new-hash"
    );
}
