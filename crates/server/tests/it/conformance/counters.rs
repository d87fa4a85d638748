//! Failed-login counters under the lockout rules: reservations, failures, locks, client addresses, forgiveness and purging, driven through `domain::CounterRules` as the service drives them.

use super::*;

pub async fn reservations_never_exceed_the_threshold(store: Arc<dyn Store>) {
    // 50 concurrent reservations: exactly 5 granted, the rest busy.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve_attempt(&attempt("carol", &format!("a{i}"), T0))
                .await
                .unwrap()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            GRANTED => granted += 1,
            BUSY => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 5);
}

pub async fn failures_lock_once_and_locks_are_never_extended(store: Arc<dyn Store>) {
    let lock_until = T0.plus(mins(15));
    for i in 0..5 {
        let id = format!("f{i}");
        assert_eq!(
            store
                .reserve_attempt(&attempt("dan", &id, T0))
                .await
                .unwrap(),
            GRANTED
        );
        let failure = store
            .finish_attempt(&end("dan", &id, failed(lock_until), T0))
            .await
            .unwrap();
        let counted = Failure::Counted {
            failures: i + 1,
            locked: (i == 4).then_some(lock_until),
        };
        assert_eq!(failure, Some(counted), "attempt {i}");
    }
    assert_eq!(
        store
            .reserve_attempt(&attempt("dan", "x", T0.plus(mins(1))))
            .await
            .unwrap(),
        AttemptReservation::Locked { until: lock_until }
    );
    let rec = store.lockout("dan").await.unwrap().unwrap();
    assert_eq!((rec.failures, rec.locked_until), (5, Some(lock_until)));
    // After the lock, the count starts again.
    let after = T0.plus(mins(15));
    assert_eq!(
        store
            .reserve_attempt(&attempt("dan", "y", after))
            .await
            .unwrap(),
        GRANTED
    );
    assert_eq!(
        store
            .finish_attempt(&end("dan", "y", failed(after.plus(mins(15))), after))
            .await
            .unwrap(),
        Some(Failure::Counted {
            failures: 1,
            locked: None
        })
    );
    assert_eq!(store.lockout("dan").await.unwrap().unwrap().failures, 1);
    // Abandoning neither counts nor clears (a login's success clears: see `start_session`).
    store
        .reserve_attempt(&attempt("dan", "z", after))
        .await
        .unwrap();
    store
        .finish_attempt(&end("dan", "z", AttemptOutcome::Abandoned, after))
        .await
        .unwrap();
    assert_eq!(store.lockout("dan").await.unwrap().unwrap().failures, 1);
    assert!(store.clear_failures("dan", T0).await.unwrap());
    assert_eq!(store.lockout("dan").await.unwrap(), None);
    assert!(!store.clear_failures("dan", T0).await.unwrap());
}

pub async fn stale_reservations_expire(store: Arc<dyn Store>) {
    for i in 0..5 {
        store
            .reserve_attempt(&attempt("eve", &format!("s{i}"), T0))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .reserve_attempt(&attempt("eve", "late", T0))
            .await
            .unwrap(),
        BUSY
    );
    // 30 s later the crashed reservations are void.
    assert_eq!(
        store
            .reserve_attempt(&attempt("eve", "later", T0.plus(secs(30))))
            .await
            .unwrap(),
        GRANTED
    );
    assert!(store.clear_failures("nobody", T0).await.is_ok());
    assert_eq!(store.list_lockouts().await.unwrap().len(), 0);
}

pub async fn ip_failures_slide_and_count_checks_in_flight(store: Arc<dyn Store>) {
    let ip = "192.0.2.1";
    // Three checks in flight from one address use up a limit of three: a fourth waits.
    for name in ["a", "b", "c"] {
        assert_eq!(
            store
                .reserve_attempt(&attempt_from(name, name, T0, ip, 3))
                .await
                .unwrap(),
            GRANTED
        );
    }
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("d", "d", T0, ip, 3))
            .await
            .unwrap(),
        BUSY
    );
    // Two fail, one is abandoned: the abandoned one frees its place, the failures hold theirs.
    for (name, at) in [("a", T0), ("b", T0.plus(mins(30)))] {
        store
            .finish_attempt(&end_from(name, name, failed(T0.plus(mins(15))), at, ip))
            .await
            .unwrap();
    }
    store
        .finish_attempt(&end_from("c", "c", AttemptOutcome::Abandoned, T0, ip))
        .await
        .unwrap();
    let later = T0.plus(mins(31));
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("e", "e", later, ip, 3))
            .await
            .unwrap(),
        GRANTED
    );
    store
        .finish_attempt(&end_from("e", "e", failed(later.plus(mins(15))), later, ip))
        .await
        .unwrap();
    // The read that refuses a throttled address before any write sees the same.
    let window = IpLimit {
        ip: ip.into(),
        limit: 3,
        since: later.minus(mins(60)),
    };
    let AddressCounters {
        failures,
        oldest_failure,
        ..
    } = store.address_failures(&window.window()).await.unwrap();
    assert_eq!((failures, oldest_failure), (3, Some(T0)));
    // At the limit: refused until the oldest failure leaves the window, whoever asks; other
    // addresses and checks without an address (resets) are not affected.
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("f", "f", later, ip, 3))
            .await
            .unwrap(),
        AttemptReservation::Throttled {
            until: T0.plus(mins(60))
        }
    );
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("f", "f2", later, "2001:db8::1", 3))
            .await
            .unwrap(),
        GRANTED
    );
    assert_eq!(
        store
            .reserve_attempt(&attempt("f", "f3", later))
            .await
            .unwrap(),
        GRANTED
    );
    // The window slides: an hour after the first failure there is room for exactly one.
    let slid = T0.plus(mins(60)).plus(secs(1));
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("g", "g", slid, ip, 3))
            .await
            .unwrap(),
        GRANTED
    );
    assert_eq!(
        store
            .reserve_attempt(&attempt_from("h", "h", slid, ip, 3))
            .await
            .unwrap(),
        BUSY
    );
}

/// A failure of a request that arrived before a success (or an admin unlock) of the same user
/// does not count; one that arrived at or after it counts as ever.
pub async fn a_failure_that_arrived_before_a_success_does_not_count(store: Arc<dyn Store>) {
    seed_records(store.as_ref(), &["gil"]).await;
    let lock = failed(T0.plus(mins(15)));
    for id in ["ok", "racing"] {
        assert_eq!(
            store
                .reserve_attempt(&attempt("gil", id, T0))
                .await
                .unwrap(),
            GRANTED
        );
    }
    // The success arrived at T0 and was decided 40 ms later.
    let mut ok = start(&session("gil", "c1"), "ok", None);
    let success_at = T0.plus(std::time::Duration::from_millis(40));
    ok.counters.forgive_before = Some(success_at);
    store.start_session(&ok).await.unwrap();
    let arrived_during = T0.plus(std::time::Duration::from_millis(39));
    store
        .finish_attempt(&end("gil", "racing", lock, arrived_during))
        .await
        .unwrap();
    assert_eq!(store.lockout("gil").await.unwrap(), None);
    // Arrived once it was decided: counts.
    let after = success_at;
    store
        .reserve_attempt(&attempt("gil", "late", after))
        .await
        .unwrap();
    store
        .finish_attempt(&end("gil", "late", lock, after))
        .await
        .unwrap();
    assert_eq!(store.lockout("gil").await.unwrap().unwrap().failures, 1);
    // A later success's time never moves the mark back.
    let mut older = start(&session("gil", "c1"), "none", None);
    older.counters.forgive_before = Some(T0);
    store.start_session(&older).await.unwrap();
    store
        .reserve_attempt(&attempt("gil", "again", after))
        .await
        .unwrap();
    store
        .finish_attempt(&end("gil", "again", lock, arrived_during))
        .await
        .unwrap();
    assert_eq!(store.lockout("gil").await.unwrap(), None);
    // An admin unlock forgives the requests that arrived before it, as a success does.
    let unlock_at = after.plus(secs(10));
    store
        .reserve_attempt(&attempt("gil", "f1", after))
        .await
        .unwrap();
    store
        .finish_attempt(&end("gil", "f1", lock, after))
        .await
        .unwrap();
    store
        .reserve_attempt(&attempt("gil", "in-flight", after.plus(secs(5))))
        .await
        .unwrap();
    assert!(store.clear_failures("gil", unlock_at).await.unwrap());
    store
        .finish_attempt(&end("gil", "in-flight", lock, after.plus(secs(5))))
        .await
        .unwrap();
    assert_eq!(store.lockout("gil").await.unwrap(), None);
    assert!(store.list_lockouts().await.unwrap().is_empty());
}

pub async fn stale_counters_of_unknown_names_are_purged(store: Arc<dyn Store>) {
    store.insert_user(&user("real")).await.unwrap();
    for name in ["real", "ghost", "locked-ghost"] {
        for i in 0..(if name == "locked-ghost" { 5 } else { 2 }) {
            let id = format!("{name}{i}");
            store
                .reserve_attempt(&attempt(name, &id, T0))
                .await
                .unwrap();
            store
                .finish_attempt(&end(name, &id, failed(T0.plus(mins(15))), T0))
                .await
                .unwrap();
        }
    }
    store
        .reserve_attempt(&attempt_from("real", "from-ip", T0, "192.0.2.9", 100))
        .await
        .unwrap();
    store
        .finish_attempt(&end_from(
            "real",
            "from-ip",
            failed(T0.plus(mins(15))),
            T0,
            "192.0.2.9",
        ))
        .await
        .unwrap();
    store
        .reserve_attempt(&attempt("someone", "dangling", T0))
        .await
        .unwrap();
    // Ten minutes on: nothing is stale yet (the lock window is 15 minutes).
    let at = T0.plus(mins(10));
    assert_eq!(
        store
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at, at)
            .await
            .unwrap(),
        1
    );
    // Sixteen minutes on: the unknown name's counter and its expired lock go, with the
    // wrong passwords they remembered (2 + 5); the real user's counter stays (its failures
    // are consecutive however old); the IP window stays an hour.
    let at = T0.plus(mins(16));
    assert_eq!(
        store
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at, at)
            .await
            .unwrap(),
        2 + 7
    );
    assert!(store.lockout("ghost").await.unwrap().is_none());
    assert!(store.lockout("locked-ghost").await.unwrap().is_none());
    assert_eq!(store.lockout("real").await.unwrap().unwrap().failures, 3);
    let at = T0.plus(mins(61));
    assert_eq!(
        store
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at, at)
            .await
            .unwrap(),
        1,
        "the address's failure leaves with its window"
    );
}

async fn fail_in(
    store: &Arc<dyn Store>,
    name: &str,
    bucket: &str,
    id: &str,
    guess: &str,
    at: Timestamp,
) -> (AttemptReservation, Option<Failure>) {
    let request = AttemptRequest {
        bucket: bucket.into(),
        ..attempt(name, id, at)
    };
    let reserved = store.reserve_attempt(&request).await.unwrap();
    if reserved != GRANTED {
        return (reserved, None);
    }
    let end = AttemptEnd {
        bucket: bucket.into(),
        ..end_from(
            name,
            id,
            failed_with(at.plus(mins(15)), guess),
            at,
            "192.0.2.44",
        )
    };
    (reserved, store.finish_attempt(&end).await.unwrap())
}

pub async fn a_repeated_wrong_password_counts_once_until_the_count_starts_again(
    store: Arc<dyn Store>,
) {
    let window = IpLimit {
        ip: "192.0.2.44".into(),
        limit: 100,
        since: T0.minus(mins(60)),
    }
    .window();
    assert!(matches!(
        fail_in(&store, "ray", "", "first", "guess", T0).await.1,
        Some(Failure::Counted { failures: 1, .. })
    ));
    for i in 0..20 {
        let (_, failure) = fail_in(&store, "ray", "", &format!("again{i}"), "guess", T0).await;
        assert_eq!(failure, Some(Failure::Uncounted(Uncounted::Repeated)));
    }
    assert_eq!(store.lockout("ray").await.unwrap().unwrap().failures, 1);
    // Only the counted failure is logged against the address: a repeat is no new guess.
    assert_eq!(store.address_failures(&window).await.unwrap().failures, 1);
    // Another name's same password counts for that name.
    assert!(matches!(
        fail_in(&store, "sam", "", "sam", "guess", T0).await.1,
        Some(Failure::Counted { failures: 1, .. })
    ));
    // Distinct guesses lock as ever; the repeats took no reservation with them.
    for (i, guess) in ["b", "c", "d", "e"].into_iter().enumerate() {
        let (_, failure) = fail_in(&store, "ray", "", guess, guess, T0).await;
        let locked = (i == 3).then_some(T0.plus(mins(15)));
        assert_eq!(
            failure,
            Some(Failure::Counted {
                failures: i as u32 + 2,
                locked
            })
        );
    }
    // An unlock starts the count again and forgets what was remembered.
    assert!(store.clear_failures("ray", T0.plus(secs(1))).await.unwrap());
    let later = T0.plus(secs(2));
    assert!(matches!(
        fail_in(&store, "ray", "", "fresh", "guess", later).await.1,
        Some(Failure::Counted { failures: 1, .. })
    ));
}

pub async fn buckets_count_apart_and_an_unlock_clears_them_all(store: Arc<dyn Store>) {
    let familiar = "192.0.2.0/24";
    for i in 0..5 {
        let guess = format!("attacker {i}");
        fail_in(&store, "una", "", &guess, &guess, T0).await;
    }
    let (locked, _) = fail_in(&store, "una", "", "shared", "x", T0).await;
    assert_eq!(
        locked,
        AttemptReservation::Locked {
            until: T0.plus(mins(15))
        }
    );
    // The familiar bucket is untouched, and its failures count on their own.
    let (granted, failure) = fail_in(&store, "una", familiar, "fam", "typo", T0).await;
    assert_eq!(granted, GRANTED);
    assert_eq!(
        failure,
        Some(Failure::Counted {
            failures: 1,
            locked: None
        })
    );
    // A repeat is judged within its own bucket: the attacker's guess counts here.
    assert!(matches!(
        fail_in(&store, "una", familiar, "fam2", "attacker 0", T0)
            .await
            .1,
        Some(Failure::Counted { failures: 2, .. })
    ));
    let records = store.lockouts("una").await.unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.bucket.as_str(), r.failures, r.locked_until.is_some()))
        .collect();
    assert_eq!(seen, [("", 5, true), (familiar, 2, false)]);
    assert_eq!(store.list_lockouts().await.unwrap().len(), 2);
    assert!(store.clear_failures("una", T0.plus(secs(1))).await.unwrap());
    assert!(store.lockouts("una").await.unwrap().is_empty());
    assert!(!store.clear_failures("una", T0.plus(secs(2))).await.unwrap());
}

pub async fn a_success_records_its_familiar_source_until_purged(store: Arc<dyn Store>) {
    seed_records(store.as_ref(), &["vic"]).await;
    let network = "192.0.2.0/24";
    assert_eq!(store.familiar_since("vic", network).await.unwrap(), None);
    store
        .reserve_attempt(&attempt("vic", "ok", T0))
        .await
        .unwrap();
    let mut ok = start(&session("vic", "c1"), "ok", None);
    ok.counters.familiar = Some(network.into());
    store.start_session(&ok).await.unwrap();
    assert_eq!(
        store.familiar_since("vic", network).await.unwrap(),
        Some(T0)
    );
    assert_eq!(
        store
            .familiar_since("vic", "198.51.100.0/24")
            .await
            .unwrap(),
        None
    );
    // A later success moves it on, an earlier one never back.
    for (id, at) in [("later", T0.plus(mins(5))), ("earlier", T0)] {
        store
            .reserve_attempt(&attempt("vic", id, at))
            .await
            .unwrap();
        let mut again = start(&session("vic", "c1"), id, None);
        again.counters.familiar = Some(network.into());
        again.counters.at = at;
        store.start_session(&again).await.unwrap();
    }
    assert_eq!(
        store.familiar_since("vic", network).await.unwrap(),
        Some(T0.plus(mins(5)))
    );
    let at = T0.plus(mins(10));
    let purge = |familiar_until| {
        let store = store.clone();
        async move {
            store
                .purge_counters(at.minus(mins(15)), at.minus(mins(60)), familiar_until, at)
                .await
                .unwrap()
        }
    };
    assert_eq!(purge(T0).await, 0);
    assert_eq!(purge(T0.plus(mins(5))).await, 1);
    assert_eq!(store.familiar_since("vic", network).await.unwrap(), None);
}

/// Only the latest ten wrong passwords are remembered: a repeat of an older one counts again
/// (stricter, never looser), and a large threshold cannot make the read grow with it.
pub async fn the_latest_ten_wrong_passwords_are_remembered(store: Arc<dyn Store>) {
    let fail = |id: String, guess: String, at: Timestamp| {
        let store = store.clone();
        async move {
            let request = AttemptRequest {
                threshold: 100,
                ..attempt("wes", &id, at)
            };
            assert_eq!(store.reserve_attempt(&request).await.unwrap(), GRANTED);
            let end = AttemptEnd {
                threshold: 100,
                ..end("wes", &id, failed_with(at.plus(mins(15)), &guess), at)
            };
            store.finish_attempt(&end).await.unwrap()
        }
    };
    for i in 0..12u64 {
        let at = T0.plus(secs(i));
        fail(format!("g{i}"), format!("guess {i}"), at).await;
    }
    let later = T0.plus(secs(20));
    assert_eq!(
        fail("r11".into(), "guess 11".into(), later).await,
        Some(Failure::Uncounted(Uncounted::Repeated))
    );
    assert_eq!(
        fail("r2".into(), "guess 2".into(), later).await,
        Some(Failure::Uncounted(Uncounted::Repeated))
    );
    assert!(matches!(
        fail("r0".into(), "guess 0".into(), later).await,
        Some(Failure::Counted { failures: 13, .. })
    ));
    // Counted again, it is the latest again: its next repeat counts no more.
    assert_eq!(
        fail("r0-again".into(), "guess 0".into(), later.plus(secs(1))).await,
        Some(Failure::Uncounted(Uncounted::Repeated))
    );
}

/// Wrong passwords that did not count are logged against the address apart: they never
/// reach its limit of new guesses, only its ten-times-larger allowance of checks.
pub async fn uncounted_checks_use_the_address_allowance_not_its_limit(store: Arc<dyn Store>) {
    let ip = "192.0.2.55";
    let check = |id: String, at: Timestamp| {
        let store = store.clone();
        async move {
            let reserved = store
                .reserve_attempt(&attempt_from("xia", &id, at, ip, 2))
                .await
                .unwrap();
            if reserved == GRANTED {
                let failed = failed_with(at.plus(mins(15)), "the same guess");
                store
                    .finish_attempt(&end_from("xia", &id, failed, at, ip))
                    .await
                    .unwrap();
            }
            reserved
        }
    };
    // One new guess, then its repeats: 20 wrong passwords in all from the address.
    for i in 0..20 {
        assert_eq!(
            check(format!("c{i}"), T0.plus(secs(i))).await,
            GRANTED,
            "check {i}"
        );
    }
    let window = IpLimit {
        ip: ip.into(),
        limit: 2,
        since: T0.plus(secs(30)).minus(mins(60)),
    };
    let a = store.address_failures(&window.window()).await.unwrap();
    assert_eq!((a.failures, a.oldest_failure), (1, Some(T0)));
    assert_eq!((a.checks, a.oldest_check), (20, Some(T0)));
    assert_eq!(
        check("over".into(), T0.plus(secs(30))).await,
        AttemptReservation::Throttled {
            until: T0.plus(mins(60))
        }
    );
}

/// A user's remembered wrong passwords go with the lock that ended, even if the user never
/// comes back to start the count again.
pub async fn remembered_passwords_of_an_ended_lock_are_purged(store: Arc<dyn Store>) {
    store.insert_user(&user("yan")).await.unwrap();
    for i in 0..5u64 {
        let id = format!("y{i}");
        store
            .reserve_attempt(&attempt("yan", &id, T0))
            .await
            .unwrap();
        store
            .finish_attempt(&end("yan", &id, failed(T0.plus(mins(15))), T0))
            .await
            .unwrap();
    }
    let purge = |at: Timestamp| {
        let store = store.clone();
        async move {
            store
                .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at, at)
                .await
                .unwrap()
        }
    };
    // While the lock lasts they stay.
    assert_eq!(purge(T0.plus(mins(14))).await, 0);
    // Once it has ended they go; the user's counter stays until its next change.
    assert_eq!(purge(T0.plus(mins(15))).await, 5);
    assert_eq!(store.lockout("yan").await.unwrap().unwrap().failures, 5);
}
