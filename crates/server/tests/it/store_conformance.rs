//! The behaviour every `Store` backend must have. Each test is a function over a store; the
//! macro at the bottom instantiates all of them for each backend.

use std::sync::Arc;

use m2m_session_server::crypto::{SessionToken, digest};
use m2m_session_server::store::{
    ApiTokenRecord, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, AuditRecord,
    ClientRecord, IpLimit, PasswordReset, SessionRecord, SessionStart, Store, StoreError,
    UserRecord,
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
    let token = SessionToken::generate();
    SessionRecord {
        token_digest: token.digest(),
        id: token.expose()[..16].to_owned(),
        username: name.into(),
        client_id: client_id.into(),
        created_at: T0,
        last_used_at: T0,
        // What reads fill in from `user()`; inserts ignore it.
        account: Some("acct".into()),
    }
}

fn login_audit(name: &str) -> AuditRecord {
    AuditRecord {
        time: T0,
        event: "login".into(),
        outcome: "success".into(),
        username: Some(name.into()),
        client_id: Some("c1".into()),
        ip: Some("192.0.2.7".into()),
        detail: None,
    }
}

fn start(session: &SessionRecord, attempt_id: &str, keep_sessions: Option<u32>) -> SessionStart {
    SessionStart {
        session: session.clone(),
        attempt_id: attempt_id.into(),
        keep_sessions,
        audit: login_audit(&session.username),
        success_at: session.created_at,
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

fn attempt(name: &str, id: &str, now: Timestamp) -> AttemptRequest {
    AttemptRequest {
        username: name.into(),
        attempt_id: id.into(),
        threshold: 5,
        ip: None,
        now,
        expires_at: now.plus(secs(30)),
    }
}

/// A login's reservation from `ip`, allowed `limit` failures an hour.
fn attempt_from(name: &str, id: &str, now: Timestamp, ip: &str, limit: u32) -> AttemptRequest {
    AttemptRequest {
        ip: Some(IpLimit {
            ip: ip.into(),
            limit,
            since: now.minus(mins(60)),
        }),
        ..attempt(name, id, now)
    }
}

fn end(name: &str, id: &str, outcome: AttemptOutcome, now: Timestamp) -> AttemptEnd {
    AttemptEnd {
        username: name.into(),
        attempt_id: id.into(),
        threshold: 5,
        outcome,
        now,
    }
}

const GRANTED: AttemptReservation = AttemptReservation::Granted;
const BUSY: AttemptReservation = AttemptReservation::Busy;

fn failed(until: Timestamp) -> AttemptOutcome {
    AttemptOutcome::Failed { lock_until: until }
}

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
        let locked = store
            .finish_attempt(&end("dan", &id, failed(lock_until), T0))
            .await
            .unwrap();
        assert_eq!(locked, (i == 4).then_some(lock_until), "attempt {i}");
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
        None
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
            .finish_attempt(&end(name, name, failed(T0.plus(mins(15))), at))
            .await
            .unwrap();
    }
    store
        .finish_attempt(&end("c", "c", AttemptOutcome::Abandoned, T0))
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
        .finish_attempt(&end("e", "e", failed(later.plus(mins(15))), later))
        .await
        .unwrap();
    // The read that refuses a throttled address before any write sees the same.
    let window = IpLimit {
        ip: ip.into(),
        limit: 3,
        since: later.minus(mins(60)),
    };
    assert_eq!(
        store.ip_failures_since(&window).await.unwrap(),
        (3, Some(T0))
    );
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
    ok.success_at = T0.plus(std::time::Duration::from_millis(40));
    store.start_session(&ok).await.unwrap();
    let arrived_during = T0.plus(std::time::Duration::from_millis(39));
    store
        .finish_attempt(&end("gil", "racing", lock, arrived_during))
        .await
        .unwrap();
    assert_eq!(store.lockout("gil").await.unwrap(), None);
    // Arrived once it was decided: counts.
    let after = ok.success_at;
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
    older.success_at = T0;
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

/// The in-progress guard of an idempotent reset: one holder per (user, key), released at once
/// by `release`, and by dropping the claim (a cancelled request) soon after.
pub async fn idempotency_claims_are_exclusive_per_user_and_key(store: Arc<dyn Store>) {
    let claim = store.claim_idempotency("kim", "k1").await.unwrap().unwrap();
    assert!(
        store
            .claim_idempotency("kim", "k1")
            .await
            .unwrap()
            .is_none()
    );
    let other_key = store.claim_idempotency("kim", "k2").await.unwrap().unwrap();
    let other_user = store.claim_idempotency("lee", "k1").await.unwrap().unwrap();
    claim.release().await;
    let again = store.claim_idempotency("kim", "k1").await.unwrap().unwrap();
    drop(again);
    let mut reclaimed = None;
    for _ in 0..100 {
        reclaimed = store.claim_idempotency("kim", "k1").await.unwrap();
        if reclaimed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reclaimed.is_some(), "a dropped claim was never released");
    other_key.release().await;
    other_user.release().await;
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
        .finish_attempt(&end("real", "from-ip", failed(T0.plus(mins(15))), T0))
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
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at)
            .await
            .unwrap(),
        1
    );
    // Sixteen minutes on: the unknown name's counter and its expired lock go; the real user's
    // counter stays (its failures are consecutive however old); the IP window stays an hour.
    let at = T0.plus(mins(16));
    assert_eq!(
        store
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at)
            .await
            .unwrap(),
        2
    );
    assert!(store.lockout("ghost").await.unwrap().is_none());
    assert!(store.lockout("locked-ghost").await.unwrap().is_none());
    assert_eq!(store.lockout("real").await.unwrap().unwrap().failures, 3);
    let at = T0.plus(mins(61));
    assert_eq!(
        store
            .purge_counters(at.minus(mins(15)), at.minus(mins(60)), at)
            .await
            .unwrap(),
        1,
        "the address's failure leaves with its window"
    );
}

pub async fn audit_records_round_trip_and_filter(store: Arc<dyn Store>) {
    let record = |t: i64, user: &str| AuditRecord {
        time: Timestamp(t),
        event: "login".into(),
        outcome: "invalid_credentials".into(),
        username: Some(user.into()),
        client_id: Some("c1".into()),
        ip: Some("192.0.2.1".into()),
        detail: None,
    };
    for (t, u) in [(1, "a"), (2, "b"), (3, "a")] {
        store.append_audit(&record(t, u)).await.unwrap();
    }
    assert_eq!(store.list_audit(None, None).await.unwrap().len(), 3);
    assert_eq!(
        store.list_audit(Some("a"), None).await.unwrap(),
        vec![record(1, "a"), record(3, "a")]
    );
    assert_eq!(
        store
            .list_audit(None, Some(Timestamp(2)))
            .await
            .unwrap()
            .len(),
        2
    );
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
        attempt_id: "r2".into(),
        idempotency: None,
        now: T0.plus(mins(3)),
        success_at: T0.plus(mins(3)),
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
        store.list_audit(Some("jay"), None).await.unwrap(),
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
    assert_eq!(store.list_audit(Some("jay"), None).await.unwrap().len(), 1);
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

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

pub async fn the_database_clock_is_close_to_ours(store: Arc<dyn Store>) {
    let clock = m2m_session_server::clock::Clock::default();
    let offset = clock.sync(store.as_ref()).await.unwrap();
    assert!(offset.abs() < 5_000, "offset {offset} ms");
    assert_eq!(clock.offset_ms(), offset);
    let db = store.db_now().await.unwrap();
    assert!((clock.now().0 - db.0).abs() < 5_000);
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            conformance!(@tests $open;
                users_round_trip,
                reservations_never_exceed_the_threshold,
                failures_lock_once_and_locks_are_never_extended,
                stale_reservations_expire,
                ip_failures_slide_and_count_checks_in_flight,
                a_failure_that_arrived_before_a_success_does_not_count,
                idempotency_claims_are_exclusive_per_user_and_key,
                audit_records_round_trip_and_filter,
                stale_counters_of_unknown_names_are_purged,
                sessions_are_listed_revoked_and_capped,
                a_login_ends_its_reservation_and_starts_its_session_at_once,
                rehash_is_a_compare_and_swap,
                clients_round_trip_and_removal_cascades,
                one_live_api_token_per_client_and_scope,
                sessions_touch_delete_and_purge,
                reset_is_a_compare_and_swap_that_revokes_other_sessions,
                ping_answers,
                the_database_clock_is_close_to_ours,
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
conformance!(postgres, postgres_store());
