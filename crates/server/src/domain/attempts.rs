//! Password verifications under the lockout rules: reserve one, verify, then count it as a
//! failure or end it with the success. The rules themselves are the pure functions of
//! [`super::lockout`]; this file runs them against a store, which holds a username's counters
//! still (on every node) while they decide.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::audit::{AuditEvent, AuditOutcome, RequestContext};
use super::familiar;
use super::lockout::{
    self, AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, Failure, IpLimit,
    RESERVATION_TTL, Uncounted,
};
use super::{DomainError, SessionService};
use crate::crypto::{Admission, AttemptDigest};
use crate::store::{
    CounterKey, CounterStore, CountersChange, PreviousPassword, StoreResult, UserRecord,
};
use crate::telemetry;
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

    /// Ends a reservation other than by success; says what became of a failure.
    async fn finish_attempt(&self, end: &AttemptEnd) -> StoreResult<Option<Failure>> {
        let held = self
            .lock_counters(&username_key(&end.username, &end.bucket, end.now))
            .await?;
        let (failure, change) = lockout::finish(held.counters(), end);
        held.apply(&change).await?;
        Ok(failure)
    }

    /// An administrator's unlock at `now`, of every bucket of the username; false when
    /// nothing counted against it.
    async fn clear_failures(&self, username: &str, now: Timestamp) -> StoreResult<bool> {
        let mut cleared = false;
        for record in self.lockouts(username).await? {
            let held = self
                .lock_counters(&username_key(username, &record.bucket, now))
                .await?;
            if let Some(change) = lockout::unlock(held.counters(), username, &record.bucket, now) {
                held.apply(&change).await?;
                cleared = true;
            }
        }
        Ok(cleared)
    }
}

impl<S: CounterStore + Sync + ?Sized> CounterRules for S {}

fn username_key(username: &str, bucket: &str, now: Timestamp) -> CounterKey {
    CounterKey {
        username: username.to_owned(),
        bucket: bucket.to_owned(),
        address: None,
        now,
        remembered: true,
    }
}

/// A granted password verification, to be finished exactly once.
pub(super) struct Attempt<'a> {
    pub(super) username: &'a str,
    /// What was reserved: its id, bucket and address.
    request: AttemptRequest,
    /// The familiar source a success is recorded for, when familiar sources are on.
    source: Option<String>,
    /// Its place among the hashes, taken first so that overload is shed before any write.
    admission: Admission,
}

/// What a verification found.
pub(super) struct Checked {
    /// The user, if the password is theirs.
    pub(super) user: Option<UserRecord>,
    /// The presented password as the lockout remembers it.
    pub(super) digest: AttemptDigest,
}

impl SessionService {
    /// Reserves one of the username's `threshold` verifications (and, for a login, one of
    /// the client address's), waiting (bounded) while all are in flight. Reserving before
    /// verifying is what keeps parallel guesses within both limits, on one node or many. A
    /// place among the password hashes is taken first: when the hasher is full the request is
    /// shed at once, before it writes anything.
    pub(super) async fn reserve_attempt<'a>(
        &self,
        ctx: &RequestContext,
        username: &'a str,
        ip: Option<IpLimit>,
        now: Timestamp,
    ) -> Result<Attempt<'a>, DomainError> {
        let admission = self.hasher.admit()?;
        let source = ctx
            .ip
            .and_then(|ip| self.policy.familiar_sources.source_of(ip));
        let last_success = match &source {
            Some(source) => self.store.familiar_since(username, source).await?,
            None => None,
        };
        let request = AttemptRequest {
            username: username.to_owned(),
            bucket: familiar::bucket(
                source.as_deref(),
                last_success,
                self.policy.familiar_source_window,
                now,
            ),
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
                        request,
                        source,
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

    /// Whether `password` is the user's, with its digest, from one argon2 computation.
    /// Abandons the attempt if the check itself fails.
    pub(super) async fn verify_user(
        &self,
        attempt: &Attempt<'_>,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<Checked, DomainError> {
        let checked = async {
            let user = self.store.find_user(attempt.username).await?;
            let stored = user.as_ref().map(|u| u.password_hash.as_str());
            let verification = self
                .hasher
                .verify_attempt(&attempt.admission, attempt.username, password, stored)
                .await?;
            Ok::<_, DomainError>(Checked {
                user: user.filter(|_| verification.matched),
                digest: verification.digest,
            })
        }
        .await;
        if checked.is_err() {
            self.finish_attempt(attempt, AttemptOutcome::Abandoned, now)
                .await?;
        }
        checked
    }

    /// Ends an attempt with a wrong password (`digest`): counts it unless a rule forgives
    /// it, reports the lock it starts, and audits `event`'s failure with the rule that
    /// applied.
    pub(super) async fn fail_attempt(
        &self,
        ctx: &RequestContext,
        event: AuditEvent,
        attempt: &Attempt<'_>,
        digest: AttemptDigest,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let lock_until = self
            .policy
            .lockout_duration
            .map_or(Timestamp::NEVER, |d| now.plus(d));
        let outcome = AttemptOutcome::Failed { lock_until, digest };
        let failure = self.finish_attempt(attempt, outcome, now).await?;
        let Some(failure) = failure else {
            return Ok(());
        };
        let threshold = self.policy.lockout_threshold;
        let bucket = &attempt.request.bucket;
        let place = if bucket.is_empty() {
            String::new()
        } else {
            format!(" from familiar source {bucket}")
        };
        let (outcome, detail) = match failure {
            Failure::Counted { failures, .. } => (
                AuditOutcome::InvalidCredentials,
                format!("counted: failure {failures} of {threshold}{place}"),
            ),
            Failure::Uncounted(why) => {
                metrics::counter!(telemetry::LOGIN_FAILURES_UNCOUNTED, "reason" => why.as_str())
                    .increment(1);
                let text = match why {
                    Uncounted::Forgiven => "it arrived before the user's last success or unlock",
                    Uncounted::Repeated => "the same wrong password already counts",
                    Uncounted::StalePassword => "the password the last reset replaced",
                };
                let outcome = if why == Uncounted::StalePassword {
                    AuditOutcome::StalePassword
                } else {
                    AuditOutcome::InvalidCredentials
                };
                (outcome, format!("not counted: {text}{place}"))
            }
        };
        self.audit(
            now,
            event,
            outcome,
            Some(attempt.username),
            ctx,
            Some(detail),
        )
        .await;
        if let Failure::Counted {
            locked: Some(until),
            ..
        } = failure
        {
            metrics::counter!(telemetry::LOCKOUTS).increment(1);
            tracing::warn!(
                username = attempt.username,
                bucket = %bucket,
                until = %until.to_rfc3339(),
                "username locked after {threshold} consecutive failures"
            );
            let detail = format!(
                "locked until {} ({} s){place}",
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
    ) -> Result<Option<Failure>, DomainError> {
        let end = AttemptEnd {
            username: attempt.username.to_owned(),
            bucket: attempt.request.bucket.clone(),
            attempt_id: attempt.request.attempt_id.clone(),
            threshold: self.policy.lockout_threshold,
            outcome,
            now,
            ip: attempt.request.ip.as_ref().map(|ip| ip.ip.clone()),
        };
        Ok(self.store.finish_attempt(&end).await?)
    }

    /// What a reset remembers of the password it replaced, for the grace period.
    pub(super) fn previous_password(
        &self,
        digest: AttemptDigest,
        now: Timestamp,
    ) -> Option<PreviousPassword> {
        let grace = self.policy.previous_password_grace;
        (!grace.is_zero()).then(|| PreviousPassword {
            digest,
            until: now.plus(grace),
        })
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
        CountersChange {
            familiar: attempt.source.clone(),
            ..lockout::succeeded(&attempt.request, success_at)
        }
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
