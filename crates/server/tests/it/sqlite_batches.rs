//! The SQLite store sends a login's reservation and its start each as one batch that begins
//! and commits its own transaction. A batch cut off half way (its request cancelled while
//! the connection's thread runs it) must not leave that transaction open for the next write.

use std::time::Duration;

use m2m_session_server::crypto::{OsRandomness, SessionToken};
use m2m_session_server::domain::CounterRules;
use m2m_session_server::domain::lockout::{
    self, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation,
};
use m2m_session_server::store::{AuditRecord, SessionRecord, SessionStart};

use crate::support::*;

fn request(id: &str) -> AttemptRequest {
    AttemptRequest {
        username: "ann".into(),
        bucket: String::new(),
        attempt_id: id.into(),
        threshold: 5,
        ip: None,
        now: T0,
        expires_at: T0.plus(secs(30)),
    }
}

fn start(id: &str) -> SessionStart {
    let token = SessionToken::generate(&OsRandomness);
    SessionStart {
        session: SessionRecord {
            token_digest: token.digest(),
            id: token.expose()[..16].to_owned(),
            username: "ann".into(),
            client_id: "c1".into(),
            created_at: T0,
            last_used_at: T0,
            account: None,
            ip: None,
        },
        counters: lockout::succeeded(&request(id), T0),
        keep_sessions: Some(3),
        audit: AuditRecord {
            time: T0,
            event: "login".into(),
            outcome: "success".into(),
            username: Some("ann".into()),
            client_id: Some("c1".into()),
            ip: None,
            detail: None,
            request_id: None,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_cancelled_half_way_leave_no_transaction_open() {
    let (_dir, url) = temp_db();
    let store = sqlite_store(&url).await;
    seed_records(store.as_ref(), &["ann"]).await;
    // Cut each batch off after a growing delay, so that some stop before they are sent, some
    // on the connection's thread, some after they finished.
    for i in 0..200u64 {
        let cut = Duration::from_micros(i * 5);
        let id = format!("a{i}");
        let (reservation, session) = (request(&id), start(&id));
        let reserve = store.reserve_attempt(&reservation);
        if let Ok(Ok(AttemptReservation::Granted)) = tokio::time::timeout(cut, reserve).await {
            let _ = tokio::time::timeout(cut, store.start_session(&session)).await;
        }
        // Whatever was cut off, the next writes work.
        store.finish_attempt(&abandon(&id)).await.unwrap();
        assert_eq!(
            store.reserve_attempt(&request("probe")).await.unwrap(),
            AttemptReservation::Granted,
            "round {i}"
        );
        store.finish_attempt(&abandon("probe")).await.unwrap();
    }
    // The cap held for every start that committed.
    assert!(store.list_sessions(Some("ann")).await.unwrap().len() <= 3);
}

fn abandon(id: &str) -> AttemptEnd {
    AttemptEnd {
        username: "ann".into(),
        bucket: String::new(),
        attempt_id: id.into(),
        threshold: 5,
        outcome: AttemptOutcome::Abandoned,
        now: T0,
        ip: None,
    }
}
