//! Lockout as a state machine: a username's counters and an event, at a time, give the next
//! counters and the answer. Pure: no store, no clock. The stores only hold the counters still
//! while this decides (`store::CounterStore::lock_counters`), so the rules exist here once.
//!
//! ```text
//!                 failure (n + 1 < threshold)
//!                  ┌────────┐
//!                  ▼        │
//!   ┌──────────────────────────┐  failure (n + 1 = threshold)  ┌──────────────────────┐
//!   │ open: n failures counted │ ─────────────────────────────▶│ locked until t       │
//!   └──────────────────────────┘                               └──────────────────────┘
//!        ▲      ▲                     success, or admin unlock      │            │
//!        │      └───────────────────────────────────────────────────┘            │
//!        └────────────────────────── t passes (next event sees n = 0) ───────────┘
//! ```
//!
//! What counts as a failure (smart lockout):
//!
//! - **A repeated wrong password counts once.** Each counted failure remembers its password as
//!   a keyed digest ([`crate::crypto::AttemptDigest`]); the same password again, while the
//!   count lasts, is answered alike but not counted, and not logged against the address: it
//!   is no new guess. Every distinct guess still counts, so the guessing budget is unchanged.
//! - **The password a reset replaced is recognised, not counted**, until its grace period
//!   ends: workers of a fleet still retrying it cannot lock out the one holding the new one.
//! - **Buckets.** With familiar sources on, a network the user logged in from recently has
//!   counters of its own; every other source shares one. Each bucket runs the machine above.
//!
//! Around that, two rules keep parallel requests honest:
//!
//! - **Reservations.** A verification starts only if the failures already counted plus the
//!   verifications in flight stay under the threshold (and, for a login, under its client
//!   address's limit); otherwise it is answered busy and may wait. So no burst, parallel or
//!   spread over nodes, runs more verifications than the limits allow.
//! - **Forgiveness.** A success (or unlock) forgives every request that arrived before it: such
//!   a failure raced the success (a worker still presenting the password a parallel reset
//!   replaced) and must not lock out the user who just proved the password.

use std::time::Duration;

use crate::crypto::AttemptDigest;
use crate::store::{
    AddressCounters, AddressFailure, AddressWindow, Count, CounterKey, Counters, CountersChange,
    NewReservation,
};
use crate::time::Timestamp;

/// Asks for one password verification for `username`.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    /// The username as given (after NFC normalisation).
    pub username: String,
    /// Which of the username's counters the attempt counts against.
    pub bucket: String,
    /// Unique per attempt: how the reservation is found again to end it.
    pub attempt_id: String,
    /// Failures plus verifications in flight may not exceed this.
    pub threshold: u32,
    /// For a login: the client address's own budget, checked and reserved in the same step.
    pub ip: Option<IpLimit>,
    /// When the request arrived.
    pub now: Timestamp,
    /// When the reservation lapses if it is never finished (crash, cancelled request).
    pub expires_at: Timestamp,
}

/// At most `limit` failed logins from `ip` within any window's length. Failures logged after
/// `since` plus verifications in flight from the address may not reach `limit`, so no burst,
/// parallel or split over nodes, is verified past it.
#[derive(Debug, Clone)]
pub struct IpLimit {
    /// The client address, as text.
    pub ip: String,
    /// Failures allowed within the window.
    pub limit: u32,
    /// The start of the window that ends now.
    pub since: Timestamp,
}

/// The answer to an [`AttemptRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptReservation {
    /// The verification may run.
    Granted,
    /// The username is locked.
    Locked {
        /// When the lock ends ([`Timestamp::NEVER`] for a permanent lock).
        until: Timestamp,
    },
    /// The client address has reached its limit; its oldest counted failure leaves the window
    /// at `until`.
    Throttled {
        /// When the address gets its next try.
        until: Timestamp,
    },
    /// `threshold` verifications are already counted or running, for the username or the
    /// address; try again shortly.
    Busy,
}

/// How a granted verification ended, other than by success (which ends it with the session
/// it starts, or the reset it applies: see [`succeeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A wrong password: adds a failure unless a rule forgives it (see [`Failure`]); locks
    /// until `lock_until` when the count reaches the threshold. A counted (or forgiven)
    /// login's failure is also logged against its client address.
    Failed {
        /// When the lock this failure starts would end.
        lock_until: Timestamp,
        /// The presented password, as the lockout remembers it.
        digest: AttemptDigest,
    },
    /// Neither counts nor clears: the verification could not be completed.
    Abandoned,
}

/// Ends a reservation made with an [`AttemptRequest`].
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    /// The username the reservation was made for.
    pub username: String,
    /// The bucket it was made in.
    pub bucket: String,
    /// The reservation's id.
    pub attempt_id: String,
    /// Failures that lock the username.
    pub threshold: u32,
    /// How the verification ended.
    pub outcome: AttemptOutcome,
    /// When the request arrived: its failure does not count if a success of the user was
    /// decided after that.
    pub now: Timestamp,
    /// The client address of a login, which a failure is logged against.
    pub ip: Option<String>,
}

/// What became of a failed verification: the audit log says which rule applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It counts: `failures` now count in its bucket; `locked` is the lock it started.
    Counted {
        /// Failures counted in the bucket, this one included.
        failures: u32,
        /// The end of the lock this failure started, if it started one.
        locked: Option<Timestamp>,
    },
    /// It does not count, for this reason.
    Uncounted(Uncounted),
}

/// Why a wrong password did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncounted {
    /// The request arrived before a success of the user (it raced that success).
    Forgiven,
    /// The same wrong password already counts in the bucket.
    Repeated,
    /// The password the last reset replaced, within its grace period.
    StalePassword,
}

impl Uncounted {
    /// The name in metrics (`reason`) and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forgiven => "forgiven",
            Self::Repeated => "repeated",
            Self::StalePassword => "stale_password",
        }
    }
}

impl AttemptRequest {
    /// Whose counters the reservation reads.
    pub fn key(&self) -> CounterKey {
        CounterKey {
            username: self.username.clone(),
            bucket: self.bucket.clone(),
            address: self.ip.as_ref().map(IpLimit::window),
            now: self.now,
            remembered: false,
        }
    }
}

impl IpLimit {
    /// Wrong passwords in all, counted or not, the address may send within the window.
    pub fn checks(&self) -> u32 {
        self.limit.saturating_mul(CHECKS_PER_FAILURE)
    }

    /// The address and the start of its window, as the store reads them.
    pub fn window(&self) -> AddressWindow {
        AddressWindow {
            ip: self.ip.clone(),
            since: self.since,
        }
    }
}

/// The counters as they stand at `now`: a lock that has ended counts nothing any more.
fn in_force(c: &Counters, now: Timestamp) -> (u32, Option<Timestamp>, bool) {
    let (failures, locked) = standing(c.failures, c.locked_until, now);
    (
        failures,
        locked,
        locked.is_none() && c.locked_until.is_some(),
    )
}

/// A stored count and lock as they stand at `now`: a lock that has ended counts nothing any
/// more, though it stays stored until the username's next change. What administration shows.
pub fn standing(
    failures: u32,
    locked_until: Option<Timestamp>,
    now: Timestamp,
) -> (u32, Option<Timestamp>) {
    match locked_until {
        Some(until) if until <= now => (0, None),
        locked => (failures, locked),
    }
}

/// An address may send this many times its limit of wrong passwords in all, those that did
/// not count (repeated, replaced) included: a fleet behind one address retrying a stale
/// password is not throttled, and still nobody gets unbounded argon2 work from one address.
pub const CHECKS_PER_FAILURE: u32 = 10;

/// When an address at its limit gets its next try: as its oldest new guess leaves the window
/// (or, at its allowance of wrong passwords in all, the oldest of those). `None` while it is
/// under both.
pub fn throttled_until(a: &AddressCounters, limit: &IpLimit, now: Timestamp) -> Option<Timestamp> {
    let window = now.0 - limit.since.0;
    let leaves = |oldest: Option<Timestamp>| Timestamp(oldest.unwrap_or(now).0 + window);
    if a.failures >= limit.limit {
        Some(leaves(a.oldest_failure))
    } else if a.checks >= limit.checks() {
        Some(leaves(a.oldest_check))
    } else {
        None
    }
}

/// An attempt asks to start. An address at its limit is refused first, as the contract orders
/// the throttle before the lock.
pub fn reserve(c: &Counters, request: &AttemptRequest) -> (AttemptReservation, CountersChange) {
    let (failures, locked_until, lock_ended) = in_force(c, request.now);
    let mut change = CountersChange {
        username: request.username.clone(),
        bucket: request.bucket.clone(),
        // An ended lock is written off, so that the count starts again.
        count: lock_ended.then_some(Count {
            failures: 0,
            locked_until: None,
        }),
        forget_remembered: lock_ended,
        at: request.now,
        ..CountersChange::default()
    };
    let address = request.ip.as_ref().zip(c.address.as_ref());
    let address_has_room = address.is_none_or(|(limit, a)| {
        a.failures + a.in_flight < limit.limit && a.checks + a.in_flight < limit.checks()
    });
    if locked_until.is_none() && failures + c.in_flight < request.threshold && address_has_room {
        change.reserve = Some(NewReservation {
            attempt_id: request.attempt_id.clone(),
            ip: request.ip.as_ref().map(|ip| ip.ip.clone()),
            expires_at: request.expires_at,
        });
        return (AttemptReservation::Granted, change);
    }
    let answer = if let Some(until) =
        address.and_then(|(limit, a)| throttled_until(a, limit, request.now))
    {
        AttemptReservation::Throttled { until }
    } else if let Some(until) = locked_until {
        AttemptReservation::Locked { until }
    } else {
        AttemptReservation::Busy
    };
    (answer, change)
}

/// A granted attempt ended other than by success: what became of its failure (`None` when it
/// was abandoned). A lock already in force is never extended.
pub fn finish(c: &Counters, end: &AttemptEnd) -> (Option<Failure>, CountersChange) {
    let mut change = CountersChange {
        username: end.username.clone(),
        bucket: end.bucket.clone(),
        release: Some(end.attempt_id.clone()),
        at: end.now,
        ..CountersChange::default()
    };
    let AttemptOutcome::Failed { lock_until, digest } = end.outcome else {
        return (None, change);
    };
    let logged = |counts| end.ip.clone().map(|ip| AddressFailure { ip, counts });
    // No new guess first: not counted, and logged against the address only towards its
    // larger allowance, whenever it came.
    let stale = c
        .previous
        .as_ref()
        .is_some_and(|p| end.now < p.until && digest.matches(&p.digest));
    let (failures, locked_until, lock_ended) = in_force(c, end.now);
    // The remembered passwords belong to the count: an ended lock took them with it.
    let repeated = !lock_ended && digest.is_among(&c.remembered);
    if stale || repeated {
        change.address_failure = logged(false);
        let why = if stale {
            Uncounted::StalePassword
        } else {
            Uncounted::Repeated
        };
        return (Some(Failure::Uncounted(why)), change);
    }
    // A new guess: the address's limit pays for it even when it raced a success.
    change.address_failure = logged(true);
    if end.now < c.forgiven_before {
        return (Some(Failure::Uncounted(Uncounted::Forgiven)), change);
    }
    let failures = failures.saturating_add(1);
    let starts = locked_until.is_none() && failures >= end.threshold;
    change.count = Some(Count {
        failures,
        locked_until: if starts {
            Some(lock_until)
        } else {
            locked_until
        },
    });
    change.forget_remembered = lock_ended;
    change.remember = Some(digest);
    let locked = starts.then_some(lock_until);
    (Some(Failure::Counted { failures, locked }), change)
}

/// A granted attempt proved the password, decided at `success_at`: the bucket's count, its
/// lock and its remembered passwords go, and every request that arrived before `success_at`
/// is forgiven. Needs no read, so a login writes it in the same statement batch as its
/// session.
pub fn succeeded(request: &AttemptRequest, success_at: Timestamp) -> CountersChange {
    CountersChange {
        username: request.username.clone(),
        bucket: request.bucket.clone(),
        count: Some(Count {
            failures: 0,
            locked_until: None,
        }),
        forget_remembered: true,
        forgive_before: Some(success_at),
        release: Some(request.attempt_id.clone()),
        at: request.now,
        ..CountersChange::default()
    }
}

/// An administrator ends a bucket's lock at `now`, forgiving as a success does; `None` when
/// nothing counted against the username there.
pub fn unlock(
    c: &Counters,
    username: &str,
    bucket: &str,
    now: Timestamp,
) -> Option<CountersChange> {
    let counting = c.failures > 0 || c.locked_until.is_some() || !c.remembered.is_empty();
    counting.then(|| CountersChange {
        username: username.to_owned(),
        bucket: bucket.to_owned(),
        count: Some(Count {
            failures: 0,
            locked_until: None,
        }),
        forget_remembered: true,
        forgive_before: Some(now),
        at: now,
        ..CountersChange::default()
    })
}

/// How long a reservation lives if it is never finished: covers a crash between reserve and
/// finish.
pub const RESERVATION_TTL: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PreviousPassword;

    const T0: Timestamp = Timestamp(1_000_000);

    fn request(now: Timestamp) -> AttemptRequest {
        AttemptRequest {
            username: "u".into(),
            bucket: String::new(),
            attempt_id: "a".into(),
            threshold: 3,
            ip: None,
            now,
            expires_at: now.plus(RESERVATION_TTL),
        }
    }

    fn password(text: &str) -> AttemptDigest {
        AttemptDigest::derive(text.as_bytes(), "u")
    }

    fn failed_with(now: Timestamp, text: &str) -> AttemptEnd {
        AttemptEnd {
            username: "u".into(),
            bucket: String::new(),
            attempt_id: "a".into(),
            threshold: 3,
            outcome: AttemptOutcome::Failed {
                lock_until: now.plus(Duration::from_secs(60)),
                digest: password(text),
            },
            now,
            ip: Some("192.0.2.1".into()),
        }
    }

    /// The wrong password logged against the test's address, as a new guess or not.
    fn logged(counts: bool) -> Option<AddressFailure> {
        Some(AddressFailure {
            ip: "192.0.2.1".into(),
            counts,
        })
    }

    /// A wrong password no earlier failure used.
    fn failed(now: Timestamp) -> AttemptEnd {
        failed_with(now, &format!("guess at {}", now.0))
    }

    /// The counters after a change, as a store would leave them (reservations aside).
    fn after(c: Counters, change: &CountersChange) -> Counters {
        let mut next = c;
        if let Some(count) = change.count {
            next.failures = count.failures;
            next.locked_until = count.locked_until;
        }
        if let Some(t) = change.forgive_before {
            next.forgiven_before = next.forgiven_before.max(t);
        }
        if change.forget_remembered {
            next.remembered.clear();
        }
        next.remembered.extend(change.remember);
        next
    }

    fn locked(failure: Option<Failure>) -> Option<Timestamp> {
        match failure {
            Some(Failure::Counted { locked, .. }) => locked,
            _ => None,
        }
    }

    #[test]
    fn the_threshold_th_failure_locks_once_and_a_lock_is_never_extended() {
        let mut c = Counters::default();
        for i in 1..=3 {
            let (failure, change) = finish(&c, &failed_with(T0, &format!("guess {i}")));
            assert_eq!(locked(failure).is_some(), i == 3, "failure {i}");
            c = after(c, &change);
        }
        assert_eq!(c.locked_until, Some(T0.plus(Duration::from_secs(60))));
        let later = T0.plus(Duration::from_secs(10));
        let (failure, change) = finish(&c, &failed(later));
        assert_eq!(locked(failure), None);
        assert_eq!(after(c.clone(), &change).locked_until, c.locked_until);
        assert_eq!(
            reserve(&c, &request(later)).0,
            AttemptReservation::Locked {
                until: T0.plus(Duration::from_secs(60))
            }
        );
    }

    #[test]
    fn an_ended_lock_is_written_off_and_the_count_starts_again() {
        let c = Counters {
            failures: 3,
            locked_until: Some(T0),
            remembered: vec![password("old guess")],
            ..Counters::default()
        };
        let (answer, change) = reserve(&c, &request(T0));
        assert_eq!(answer, AttemptReservation::Granted);
        assert_eq!(
            change.count,
            Some(Count {
                failures: 0,
                locked_until: None
            })
        );
        assert!(change.forget_remembered);
        // A guess remembered by the ended count counts again.
        let (failure, change) = finish(&c, &failed_with(T0, "old guess"));
        assert_eq!(
            failure,
            Some(Failure::Counted {
                failures: 1,
                locked: None
            })
        );
        assert!(change.forget_remembered);
        assert_eq!(after(c, &change).remembered, vec![password("old guess")]);
    }

    #[test]
    fn verifications_in_flight_count_against_the_threshold() {
        let c = Counters {
            failures: 1,
            in_flight: 2,
            ..Counters::default()
        };
        let (answer, change) = reserve(&c, &request(T0));
        assert_eq!(answer, AttemptReservation::Busy);
        assert_eq!(change.reserve, None);
    }

    #[test]
    fn a_failure_that_arrived_before_a_success_does_not_count_but_is_logged() {
        let c = after(
            Counters::default(),
            &succeeded(&request(T0), T0.plus(Duration::from_secs(1))),
        );
        let (failure, change) = finish(&c, &failed(T0));
        assert_eq!(failure, Some(Failure::Uncounted(Uncounted::Forgiven)));
        assert_eq!(change.count, None);
        assert_eq!(change.remember, None);
        assert_eq!(change.address_failure, logged(true));
        let (_, counted) = finish(&c, &failed(T0.plus(Duration::from_secs(1))));
        assert_eq!(counted.count.map(|c| c.failures), Some(1));
    }

    #[test]
    fn a_repeated_wrong_password_counts_once_and_only_towards_the_address_allowance() {
        let mut c = Counters::default();
        let (first, change) = finish(&c, &failed_with(T0, "guess"));
        assert_eq!(
            first,
            Some(Failure::Counted {
                failures: 1,
                locked: None
            })
        );
        assert_eq!(change.remember, Some(password("guess")));
        c = after(c, &change);
        for i in 1..100 {
            let (again, change) =
                finish(&c, &failed_with(T0.plus(Duration::from_secs(i)), "guess"));
            assert_eq!(again, Some(Failure::Uncounted(Uncounted::Repeated)));
            assert_eq!((change.count, change.remember), (None, None));
            assert_eq!(change.address_failure, logged(false));
            assert_eq!(change.release.as_deref(), Some("a"));
            c = after(c, &change);
        }
        assert_eq!(c.failures, 1);
        // Distinct guesses still count, up to the lock.
        let (_, change) = finish(&c, &failed_with(T0, "second"));
        c = after(c, &change);
        let (third, _) = finish(&c, &failed_with(T0, "third"));
        assert_eq!(locked(third), Some(T0.plus(Duration::from_secs(60))));
    }

    #[test]
    fn a_success_or_an_unlock_forgets_the_remembered_passwords() {
        let c = after(
            Counters::default(),
            &finish(&Counters::default(), &failed_with(T0, "guess")).1,
        );
        let change = succeeded(&request(T0), T0);
        assert!(change.forget_remembered);
        let cleared = after(c.clone(), &change);
        let (again, _) = finish(
            &cleared,
            &failed_with(T0.plus(Duration::from_secs(1)), "guess"),
        );
        assert!(matches!(again, Some(Failure::Counted { failures: 1, .. })));
        let change = unlock(&c, "u", "", T0).expect("a failure to forget");
        assert!(change.forget_remembered);
        // Only remembered passwords left (a count cleared by hand): unlock still forgets them.
        let only_remembered = Counters {
            remembered: vec![password("guess")],
            ..Counters::default()
        };
        assert!(unlock(&only_remembered, "u", "", T0).is_some());
    }

    #[test]
    fn the_replaced_password_is_not_counted_until_its_grace_period_ends() {
        let until = T0.plus(Duration::from_secs(600));
        let c = Counters {
            previous: Some(PreviousPassword {
                digest: password("old"),
                until,
            }),
            ..Counters::default()
        };
        for at in [T0, until.minus(Duration::from_millis(1))] {
            let (failure, change) = finish(&c, &failed_with(at, "old"));
            assert_eq!(failure, Some(Failure::Uncounted(Uncounted::StalePassword)));
            assert_eq!(
                (change.count, change.address_failure),
                (None, logged(false))
            );
        }
        let (failure, _) = finish(&c, &failed_with(until, "old"));
        assert!(matches!(
            failure,
            Some(Failure::Counted { failures: 1, .. })
        ));
        let (failure, _) = finish(&c, &failed_with(T0, "another"));
        assert!(matches!(
            failure,
            Some(Failure::Counted { failures: 1, .. })
        ));
    }

    #[test]
    fn no_new_guess_costs_the_address_its_limit_even_when_it_raced_a_success() {
        let c = Counters {
            forgiven_before: T0.plus(Duration::from_secs(1)),
            previous: Some(PreviousPassword {
                digest: password("old"),
                until: T0.plus(Duration::from_secs(600)),
            }),
            remembered: vec![password("typo")],
            ..Counters::default()
        };
        let (stale, change) = finish(&c, &failed_with(T0, "old"));
        assert_eq!(stale, Some(Failure::Uncounted(Uncounted::StalePassword)));
        assert_eq!(change.address_failure, logged(false));
        let (repeated, change) = finish(&c, &failed_with(T0, "typo"));
        assert_eq!(repeated, Some(Failure::Uncounted(Uncounted::Repeated)));
        assert_eq!(change.address_failure, logged(false));
        let (forgiven, change) = finish(&c, &failed_with(T0, "new guess"));
        assert_eq!(forgiven, Some(Failure::Uncounted(Uncounted::Forgiven)));
        assert_eq!(change.address_failure, logged(true));
    }

    #[test]
    fn an_abandoned_attempt_only_ends_its_reservation() {
        let end = AttemptEnd {
            outcome: AttemptOutcome::Abandoned,
            ..failed(T0)
        };
        let (failure, change) = finish(&Counters::default(), &end);
        assert_eq!(failure, None);
        assert_eq!(
            change,
            CountersChange {
                username: "u".into(),
                release: Some("a".into()),
                at: T0,
                ..CountersChange::default()
            }
        );
    }

    #[test]
    fn buckets_are_named_in_every_change() {
        let req = AttemptRequest {
            bucket: "192.0.2.0/24".into(),
            ..request(T0)
        };
        assert_eq!(reserve(&Counters::default(), &req).1.bucket, "192.0.2.0/24");
        assert_eq!(succeeded(&req, T0).bucket, "192.0.2.0/24");
        let end = AttemptEnd {
            bucket: "192.0.2.0/24".into(),
            ..failed(T0)
        };
        assert_eq!(finish(&Counters::default(), &end).1.bucket, "192.0.2.0/24");
        assert_eq!(req.key().bucket, "192.0.2.0/24");
    }

    #[test]
    fn an_address_at_its_limit_is_throttled_before_the_lock_is_reported() {
        let limit = IpLimit {
            ip: "192.0.2.1".into(),
            limit: 2,
            since: T0.minus(Duration::from_secs(3600)),
        };
        let c = Counters {
            locked_until: Some(T0.plus(Duration::from_secs(60))),
            address: Some(AddressCounters {
                failures: 2,
                oldest_failure: Some(T0.minus(Duration::from_secs(10))),
                checks: 2,
                oldest_check: Some(T0.minus(Duration::from_secs(10))),
                in_flight: 0,
            }),
            ..Counters::default()
        };
        let req = AttemptRequest {
            ip: Some(limit),
            ..request(T0)
        };
        assert_eq!(
            reserve(&c, &req).0,
            AttemptReservation::Throttled {
                until: T0.plus(Duration::from_secs(3590))
            }
        );
    }

    #[test]
    fn an_address_gets_ten_times_its_limit_in_wrong_passwords_that_did_not_count() {
        let limit = IpLimit {
            ip: "192.0.2.1".into(),
            limit: 2,
            since: T0.minus(Duration::from_secs(3600)),
        };
        let with = |failures, checks, in_flight| Counters {
            address: Some(AddressCounters {
                failures,
                oldest_failure: Some(T0.minus(Duration::from_secs(10))),
                checks,
                oldest_check: Some(T0.minus(Duration::from_secs(20))),
                in_flight,
            }),
            ..Counters::default()
        };
        let req = AttemptRequest {
            ip: Some(limit),
            ..request(T0)
        };
        assert_eq!(
            reserve(&with(1, 19, 0), &req).0,
            AttemptReservation::Granted
        );
        // The last place is in flight: wait.
        assert_eq!(reserve(&with(1, 19, 1), &req).0, AttemptReservation::Busy);
        // At 20 in all: refused until the oldest of them leaves the window.
        assert_eq!(
            reserve(&with(1, 20, 0), &req).0,
            AttemptReservation::Throttled {
                until: T0.plus(Duration::from_secs(3580))
            }
        );
    }

    #[test]
    fn unlock_forgets_only_what_counts() {
        assert_eq!(unlock(&Counters::default(), "u", "", T0), None);
        let c = Counters {
            failures: 1,
            ..Counters::default()
        };
        let change = unlock(&c, "u", "", T0).expect("a failure to forget");
        assert_eq!(after(c, &change).failures, 0);
        assert_eq!(change.forgive_before, Some(T0));
    }
}
