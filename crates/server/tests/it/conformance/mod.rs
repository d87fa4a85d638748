//! The behaviour every `Store` backend must have, split by the store's roles (a file each, as
//! the backends are). Each test is a function over a store; the macro at the bottom
//! instantiates all of them for each backend.

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use m2m_session_server::crypto::{AttemptDigest, OsRandomness, SessionToken, digest};
use m2m_session_server::domain::CounterRules;
use m2m_session_server::domain::lockout::{
    self, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, Failure, IpLimit,
    Uncounted,
};
use m2m_session_server::store::{
    AddressCounters, ApiTokenRecord, AuditRecord, ClientRecord, PasswordReset, SessionRecord,
    SessionStart, Store, StoreError, UserRecord,
};
use m2m_session_server::time::Timestamp;

use crate::support::*;

mod audit;
mod clients;
mod counters;
mod database;
mod idempotency;
mod sessions;
mod users;

pub(crate) fn user(name: &str) -> UserRecord {
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
    let token = SessionToken::generate(&OsRandomness);
    SessionRecord {
        token_digest: token.digest(),
        id: token.expose()[..16].to_owned(),
        username: name.into(),
        client_id: client_id.into(),
        created_at: T0,
        last_used_at: T0,
        // What reads fill in from `user()`; inserts ignore it.
        account: Some("acct".into()),
        ip: Some("192.0.2.7".into()),
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
        request_id: Some("req-1".into()),
    }
}

fn start(session: &SessionRecord, attempt_id: &str, keep_sessions: Option<u32>) -> SessionStart {
    SessionStart {
        session: session.clone(),
        counters: lockout::succeeded(
            &attempt(&session.username, attempt_id, session.created_at),
            session.created_at,
        ),
        keep_sessions,
        audit: login_audit(&session.username),
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

fn attempt(name: &str, id: &str, now: Timestamp) -> AttemptRequest {
    AttemptRequest {
        username: name.into(),
        bucket: String::new(),
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
        bucket: String::new(),
        attempt_id: id.into(),
        threshold: 5,
        outcome,
        now,
        ip: None,
    }
}

/// The end of a login's attempt from `ip`: a failure is also logged against the address.
fn end_from(name: &str, id: &str, outcome: AttemptOutcome, now: Timestamp, ip: &str) -> AttemptEnd {
    AttemptEnd {
        ip: Some(ip.into()),
        ..end(name, id, outcome, now)
    }
}

const GRANTED: AttemptReservation = AttemptReservation::Granted;

const BUSY: AttemptReservation = AttemptReservation::Busy;

/// A wrong password no other failure of the test run used.
fn failed(until: Timestamp) -> AttemptOutcome {
    static GUESSES: AtomicU64 = AtomicU64::new(0);
    let n = GUESSES.fetch_add(1, Ordering::Relaxed);
    failed_with(until, &format!("guess {n}"))
}

/// The wrong password `guess`.
fn failed_with(until: Timestamp, guess: &str) -> AttemptOutcome {
    AttemptOutcome::Failed {
        lock_until: until,
        digest: password(guess),
    }
}

fn password(text: &str) -> AttemptDigest {
    AttemptDigest::derive(text.as_bytes(), "conformance")
}

/// Instantiates every test above for one backend: `conformance::<backend>::<test>`.
macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            conformance!(@tests $open;
                users::users_round_trip,
                users::rehash_is_a_compare_and_swap,
                users::reset_is_a_compare_and_swap_that_revokes_other_sessions,
                counters::reservations_never_exceed_the_threshold,
                counters::failures_lock_once_and_locks_are_never_extended,
                counters::stale_reservations_expire,
                counters::ip_failures_slide_and_count_checks_in_flight,
                counters::a_failure_that_arrived_before_a_success_does_not_count,
                counters::stale_counters_of_unknown_names_are_purged,
                counters::a_repeated_wrong_password_counts_once_until_the_count_starts_again,
                counters::buckets_count_apart_and_an_unlock_clears_them_all,
                counters::a_success_records_its_familiar_source_until_purged,
                counters::the_latest_ten_wrong_passwords_are_remembered,
                counters::uncounted_checks_use_the_address_allowance_not_its_limit,
                counters::remembered_passwords_of_an_ended_lock_are_purged,
                users::the_password_a_reset_replaced_is_recognised_until_its_grace_ends,
                idempotency::idempotency_claims_are_exclusive_per_user_and_key,
                audit::audit_records_round_trip_and_filter,
                clients::clients_round_trip_and_removal_cascades,
                clients::one_live_api_token_per_client_and_scope,
                clients::a_rotated_secret_replaces_the_hash_and_revokes_tokens_when_asked,
                sessions::sessions_touch_delete_and_purge,
                sessions::sessions_are_listed_revoked_and_capped,
                sessions::a_login_ends_its_reservation_and_starts_its_session_at_once,
                database::ping_answers,
                database::the_database_clock_is_close_to_ours,
            );
        }
    };
    (@tests $open:expr; $($role:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                #[allow(unused_imports)]
                use crate::support::*;
                let (_guard, store) = $open.await;
                super::$role::$name(store).await;
            }
        )*
    };
}

async fn open_sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let (dir, url) = temp_db();
    let store = sqlite_store(&url).await;
    (dir, store)
}

conformance!(sqlite, super::open_sqlite());
conformance!(postgres, crate::support::postgres_store());
