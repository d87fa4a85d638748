//! Password verifications under the lockout rules: reserve one, verify, then count it as a
//! failure or end it with the success. The rules themselves are the pure functions of
//! [`super::lockout`]; this file runs them against a store, which holds a username's counters
//! still (on every node) while they decide.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::audit::{AuditEvent, AuditOutcome, RequestContext};
use super::lockout::{
    self, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, IpLimit, RESERVATION_TTL,
};
use super::{DomainError, SessionService};
use crate::crypto::Admission;
use crate::store::{CounterKey, CounterStore, CountersChange, StoreResult, UserRecord};
use crate::time::Timestamp;

/// Pause between tries while a username's verifications are all in flight.
const BUSY_RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// The lockout state machine run against a store of counters: read under the hold, decide,
/// write the decision. Provided for every [`CounterStore`], so that the domain and the
/// conformance suite drive both backends through the same rules.
#[async_trait]
pub trait CounterRules: CounterStore + Sync {
    /// Reserves one verification, or answers why not.
    async fn reserve_attempt(&self, request: &AttemptRequest) -> StoreResult<AttemptReservation> {
        let held = self.lock_counters(&request.key()).await?;
        let (answer, change) = lockout::reserve(held.counters(), request);
        held.apply(&change).await?;
        Ok(answer)
    }

    /// Ends a reservation other than by success; returns the end of the lock a failure
    /// started, if it started one.
    async fn finish_attempt(&self, end: &AttemptEnd) -> StoreResult<Option<Timestamp>> {
        let held = self
            .lock_counters(&username_key(&end.username, end.now))
            .await?;
        let (locked, change) = lockout::finish(held.counters(), end);
        held.apply(&change).await?;
        Ok(locked)
    }

    /// An administrator's unlock at `now`; false when nothing counted against the username.
    async fn clear_failures(&self, username: &str, now: Timestamp) -> StoreResult<bool> {
        let held = self.lock_counters(&username_key(username, now)).await?;
        match lockout::unlock(held.counters(), username, now) {
            Some(change) => held.apply(&change).await.map(|()| true),
            None => Ok(false),
        }
    }
}

impl<S: CounterStore + Sync + ?Sized> CounterRules for S {}

fn username_key(username: &str, now: Timestamp) -> CounterKey {
    CounterKey {
        username: username.to_owned(),
        address: None,
        now,
    }
}

/// A granted password verification, to be finished exactly once.
pub(super) struct Attempt<'a> {
    pub(super) username: &'a str,
    pub(super) id: String,
    /// The login's client address, which a failure is logged against.
    ip: Option<String>,
    /// Its place among the hashes, taken first so that overload is shed before any write.
    admission: Admission,
}

impl SessionService {
    /// Reserves one of the username's `threshold` verifications (and, for a login, one of
    /// the client address's), waiting (bounded) while all are in flight. Reserving before
    /// verifying is what keeps parallel guesses within both limits, on one node or many. A
    /// place among the password hashes is taken first: when the hasher is full the request is
    /// shed at once, before it writes anything.
    pub(super) async fn reserve_attempt<'a>(
        &self,
        username: &'a str,
        ip: Option<IpLimit>,
        now: Timestamp,
    ) -> Result<Attempt<'a>, DomainError> {
        let admission = self.hasher.admit()?;
        let request = AttemptRequest {
            username: username.to_owned(),
            attempt_id: self.random_id(16),
            threshold: self.policy.lockout_threshold,
            ip,
            now,
            expires_at: now.plus(RESERVATION_TTL),
        };
        let deadline = self.time.monotonic() + self.policy.attempt_wait;
        loop {
            match self.store.reserve_attempt(&request).await? {
                AttemptReservation::Granted => {
                    return Ok(Attempt {
                        username,
                        id: request.attempt_id,
                        ip: request.ip.map(|ip| ip.ip),
                        admission,
                    });
                }
                AttemptReservation::Locked { until } => return Err(DomainError::Locked { until }),
                AttemptReservation::Throttled { until } => {
                    return Err(DomainError::Throttled {
                        retry_after: now.until(until),
                    });
                }
                AttemptReservation::Busy if self.time.monotonic() >= deadline => {
                    return Err(DomainError::Busy);
                }
                AttemptReservation::Busy => self.time.sleep(BUSY_RETRY_INTERVAL).await,
            }
        }
    }

    /// The user if `password` is theirs. Abandons the attempt if the check itself fails.
    pub(super) async fn verify_user(
        &self,
        attempt: &Attempt<'_>,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<Option<UserRecord>, DomainError> {
        let checked = async {
            let user = self.store.find_user(attempt.username).await?;
            let stored = user.as_ref().map(|u| u.password_hash.as_str());
            let ok = self
                .hasher
                .verify_admitted(&attempt.admission, password, stored)
                .await?;
            Ok::<_, DomainError>(user.filter(|_| ok))
        }
        .await;
        if checked.is_err() {
            self.finish_attempt(attempt, AttemptOutcome::Abandoned, now)
                .await?;
        }
        checked
    }

    /// Counts a wrong password; audits and reports the lock it starts, if any.
    pub(super) async fn fail_attempt(
        &self,
        ctx: &RequestContext,
        attempt: &Attempt<'_>,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let lock_until = self
            .policy
            .lockout_duration
            .map_or(Timestamp::NEVER, |d| now.plus(d));
        let outcome = AttemptOutcome::Failed { lock_until };
        if let Some(until) = self.finish_attempt(attempt, outcome, now).await? {
            metrics::counter!("lockouts_total").increment(1);
            tracing::warn!(
                username = attempt.username,
                until = %until.to_rfc3339(),
                "username locked after {} consecutive failures",
                self.policy.lockout_threshold
            );
            let detail = format!(
                "locked until {} ({} s)",
                until.to_rfc3339(),
                now.until(until).as_secs()
            );
            self.audit(
                now,
                AuditEvent::Lock,
                AuditOutcome::Success,
                Some(attempt.username),
                ctx,
                Some(detail),
            )
            .await;
        }
        Ok(())
    }

    pub(super) async fn finish_attempt(
        &self,
        attempt: &Attempt<'_>,
        outcome: AttemptOutcome,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, DomainError> {
        let end = AttemptEnd {
            username: attempt.username.to_owned(),
            attempt_id: attempt.id.clone(),
            threshold: self.policy.lockout_threshold,
            outcome,
            now,
            ip: attempt.ip.clone(),
        };
        Ok(self.store.finish_attempt(&end).await?)
    }

    /// The counters' change of a verification that proved the password: decided when this is
    /// called, which is later than `now` (when the request arrived) by the time it has taken
    /// since `started` (a [`TimeSource::monotonic`](crate::time::TimeSource::monotonic) reading taken as the domain received it).
    /// Failures of requests that arrived before that raced this success and are forgiven.
    pub(super) fn attempt_succeeded(
        &self,
        attempt: &Attempt<'_>,
        started: Duration,
        now: Timestamp,
    ) -> CountersChange {
        let success_at = now.plus(self.time.monotonic().saturating_sub(started));
        lockout::succeeded(attempt.username, &attempt.id, success_at, now)
    }

    /// Refuses an address already at its limit with a read, before any write: a flood from a
    /// throttled address then costs no write and no wait for the writer.
    pub(super) async fn refuse_throttled(
        &self,
        ip: &IpLimit,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let failures = self.store.address_failures(&ip.window()).await?;
        match lockout::throttled_until(&failures, ip, now) {
            Some(until) => Err(DomainError::Throttled {
                retry_after: now.until(until),
            }),
            None => Ok(()),
        }
    }

    /// The client address's budget of failed logins, when it has one.
    pub(super) fn ip_limit(&self, ctx: &RequestContext, now: Timestamp) -> Option<IpLimit> {
        let limit = self.policy.ip_failure_limit;
        ctx.ip.filter(|_| limit > 0).map(|ip| IpLimit {
            ip: ip.to_string(),
            limit,
            since: now.minus(self.policy.ip_failure_window),
        })
    }
}
