//! Users: insert, find, list, remove, and the password changes (rehash, reset) that are compare-and-swaps.

use m2m_session_server::store::PreviousPassword;

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
        counters: lockout::succeeded(&attempt("fay", "r2", T0.plus(mins(3))), T0.plus(mins(3))),
        previous: None,
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

pub async fn the_password_a_reset_replaced_is_recognised_until_its_grace_ends(
    store: Arc<dyn Store>,
) {
    store.insert_client(&client("c1")).await.unwrap();
    store.insert_user(&user("hal")).await.unwrap();
    let keep = session("hal", "c1");
    store.insert_session(&keep).await.unwrap();
    store
        .reserve_attempt(&attempt("hal", "r", T0))
        .await
        .unwrap();
    let until = T0.plus(mins(20));
    let reset = |expected: &str, new: &str, previous: Option<PreviousPassword>| PasswordReset {
        username: "hal".into(),
        expected_hash: expected.into(),
        new_hash: new.into(),
        keep_session: keep.token_digest,
        counters: lockout::succeeded(&attempt("hal", "r", T0), T0),
        previous,
        idempotency: None,
        now: T0,
    };
    let previous = PreviousPassword {
        digest: password("the old one"),
        until,
    };
    assert!(
        store
            .reset_password(&reset("hash-of-hal", "new", Some(previous)))
            .await
            .unwrap()
    );
    let fail = |id: &'static str, guess: &'static str, at: Timestamp| {
        let store = store.clone();
        async move {
            store
                .reserve_attempt(&attempt("hal", id, at))
                .await
                .unwrap();
            store
                .finish_attempt(&end("hal", id, failed_with(at.plus(mins(15)), guess), at))
                .await
                .unwrap()
        }
    };
    for (i, id) in ["s1", "s2", "s3", "s4", "s5", "s6"].into_iter().enumerate() {
        let at = T0.plus(mins(i as u64));
        assert_eq!(
            fail(id, "the old one", at).await,
            Some(Failure::Uncounted(Uncounted::StalePassword))
        );
    }
    assert_eq!(store.lockout("hal").await.unwrap(), None);
    // Once the grace period is over it is a wrong password like any other.
    assert!(matches!(
        fail("late", "the old one", until).await,
        Some(Failure::Counted { failures: 1, .. })
    ));
    // A reset without one forgets the earlier replaced password.
    assert!(
        store
            .reset_password(&reset("new", "newer", None))
            .await
            .unwrap()
    );
    assert!(matches!(
        fail("after", "the old one", T0.plus(mins(1))).await,
        Some(Failure::Counted { failures: 1, .. })
    ));
    // The user's removal takes it along.
    assert!(store.remove_user("hal").await.unwrap());
}
