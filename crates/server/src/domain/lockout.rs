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

use crate::store::{
    AddressCounters, AddressWindow, Count, CounterKey, Counters, CountersChange, NewReservation,
};
use crate::time::Timestamp;

/// Asks for one password verification for `username`.
#[derive(Debug, Clone)]
pub struct AttemptRequest {
    /// The username as given (after NFC normalisation).
    pub username: String,
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
    /// Adds a failure, unless the request arrived before the user's latest success; locks
    /// until `lock_until` when the count reaches the threshold. A login's failure is also
    /// logged against its client address.
    Failed {
        /// When the lock this failure starts would end.
        lock_until: Timestamp,
    },
    /// Neither counts nor clears: the verification could not be completed.
    Abandoned,
}

/// Ends a reservation made with an [`AttemptRequest`].
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    /// The username the reservation was made for.
    pub username: String,
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

impl AttemptRequest {
    /// Whose counters the reservation reads.
    pub fn key(&self) -> CounterKey {
        CounterKey {
            username: self.username.clone(),
            address: self.ip.as_ref().map(IpLimit::window),
            now: self.now,
        }
    }
}

impl IpLimit {
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
    match c.locked_until {
        Some(until) if until <= now => (0, None, true),
        locked => (c.failures, locked, false),
    }
}

/// When an address at its limit gets its next try: as its oldest counted failure leaves the
/// window. `None` while it is under its limit.
pub fn throttled_until(a: &AddressCounters, limit: &IpLimit, now: Timestamp) -> Option<Timestamp> {
    let window = now.0 - limit.since.0;
    (a.failures >= limit.limit).then(|| Timestamp(a.oldest_failure.unwrap_or(now).0 + window))
}

/// An attempt asks to start. An address at its limit is refused first, as the contract orders
/// the throttle before the lock.
pub fn reserve(c: &Counters, request: &AttemptRequest) -> (AttemptReservation, CountersChange) {
    let (failures, locked_until, lock_ended) = in_force(c, request.now);
    let mut change = CountersChange {
        username: request.username.clone(),
        // An ended lock is written off, so that the count starts again.
        count: lock_ended.then_some(Count {
            failures: 0,
            locked_until: None,
        }),
        at: request.now,
        ..CountersChange::default()
    };
    let address = request.ip.as_ref().zip(c.address.as_ref());
    let address_has_room = address.is_none_or(|(limit, a)| a.failures + a.in_flight < limit.limit);
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

/// A granted attempt ended other than by success. Returns the end of the lock this failure
/// started, if it started one: a lock already in force is never extended.
pub fn finish(c: &Counters, end: &AttemptEnd) -> (Option<Timestamp>, CountersChange) {
    let mut change = CountersChange {
        username: end.username.clone(),
        release: Some(end.attempt_id.clone()),
        at: end.now,
        ..CountersChange::default()
    };
    let AttemptOutcome::Failed { lock_until } = end.outcome else {
        return (None, change);
    };
    change.address_failure = end.ip.clone();
    if end.now < c.forgiven_before {
        return (None, change);
    }
    let (failures, locked_until, _) = in_force(c, end.now);
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
    (starts.then_some(lock_until), change)
}

/// A granted attempt proved the password, decided at `success_at`: the count and any lock go,
/// and every request that arrived before `success_at` is forgiven. Needs no read, so a login
/// writes it in the same statement batch as its session.
pub fn succeeded(
    username: &str,
    attempt_id: &str,
    success_at: Timestamp,
    now: Timestamp,
) -> CountersChange {
    CountersChange {
        username: username.to_owned(),
        count: Some(Count {
            failures: 0,
            locked_until: None,
        }),
        forgive_before: Some(success_at),
        release: Some(attempt_id.to_owned()),
        at: now,
        ..CountersChange::default()
    }
}

/// An administrator ends a lock at `now`, forgiving as a success does; `None` when nothing
/// counted against the username.
pub fn unlock(c: &Counters, username: &str, now: Timestamp) -> Option<CountersChange> {
    (c.failures > 0 || c.locked_until.is_some()).then(|| CountersChange {
        username: username.to_owned(),
        count: Some(Count {
            failures: 0,
            locked_until: None,
        }),
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

    const T0: Timestamp = Timestamp(1_000_000);

    fn request(now: Timestamp) -> AttemptRequest {
        AttemptRequest {
            username: "u".into(),
            attempt_id: "a".into(),
            threshold: 3,
            ip: None,
            now,
            expires_at: now.plus(RESERVATION_TTL),
        }
    }

    fn failed(now: Timestamp) -> AttemptEnd {
        AttemptEnd {
            username: "u".into(),
            attempt_id: "a".into(),
            threshold: 3,
            outcome: AttemptOutcome::Failed {
                lock_until: now.plus(Duration::from_secs(60)),
            },
            now,
            ip: Some("192.0.2.1".into()),
        }
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
        next
    }

    #[test]
    fn the_threshold_th_failure_locks_once_and_a_lock_is_never_extended() {
        let mut c = Counters::default();
        for i in 1..=3 {
            let (locked, change) = finish(&c, &failed(T0));
            assert_eq!(locked.is_some(), i == 3, "failure {i}");
            c = after(c, &change);
        }
        assert_eq!(c.locked_until, Some(T0.plus(Duration::from_secs(60))));
        let later = T0.plus(Duration::from_secs(10));
        let (locked, change) = finish(&c, &failed(later));
        assert_eq!(locked, None);
        assert_eq!(after(c, &change).locked_until, c.locked_until);
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
        let (locked, change) = finish(&c, &failed(T0));
        assert_eq!(locked, None);
        assert_eq!(change.count.map(|c| c.failures), Some(1));
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
            &succeeded("u", "s", T0.plus(Duration::from_secs(1)), T0),
        );
        let (locked, change) = finish(&c, &failed(T0));
        assert_eq!((locked, change.count), (None, None));
        assert_eq!(change.address_failure.as_deref(), Some("192.0.2.1"));
        let (_, counted) = finish(&c, &failed(T0.plus(Duration::from_secs(1))));
        assert_eq!(counted.count.map(|c| c.failures), Some(1));
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
    fn unlock_forgets_only_what_counts() {
        assert_eq!(unlock(&Counters::default(), "u", T0), None);
        let c = Counters {
            failures: 1,
            ..Counters::default()
        };
        let change = unlock(&c, "u", T0).expect("a failure to forget");
        assert_eq!(after(c, &change).failures, 0);
        assert_eq!(change.forgive_before, Some(T0));
    }
}
