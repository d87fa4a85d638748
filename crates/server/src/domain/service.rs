use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::audit::{self, AuditEvent, AuditOutcome, Entry, RequestContext};
use super::{DomainError, Policy};
use crate::crypto::{Admission, PasswordHasher, SessionToken, TokenDigest};
use crate::store::{
    AttemptEnd, AttemptOutcome, AttemptRequest, AttemptReservation, IpLimit, SessionRecord,
    SessionStart, Store, StoreError, UserRecord,
};
use crate::time::Timestamp;

/// A reservation that outlives this is void: covers a crash between reserve and finish.
const ATTEMPT_RESERVATION_TTL: Duration = Duration::from_secs(30);
/// Pause between tries while a username's verifications are all in flight.
const BUSY_RETRY_INTERVAL: Duration = Duration::from_millis(20);

/// The session operations of the contract, plus the API-token ones in `oauth.rs`.
#[derive(Clone)]
pub struct SessionService {
    pub(super) store: Arc<dyn Store>,
    pub(super) hasher: PasswordHasher,
    pub(super) policy: Policy,
}

/// A live session, after its token was checked against the presenting OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedSession {
    pub username: String,
    /// The user's account.
    pub account: Option<String>,
    pub client_id: String,
    pub digest: TokenDigest,
    /// Last use as stored (see [`Policy::touch_granularity`]).
    pub last_used_at: Timestamp,
}

/// A granted password verification, to be finished exactly once.
pub(super) struct Attempt<'a> {
    pub(super) username: &'a str,
    pub(super) id: String,
    /// Its place among the hashes, taken first so that overload is shed before any write.
    admission: Admission,
}

impl SessionService {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher, policy: Policy) -> Self {
        Self {
            store,
            hasher,
            policy,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Starts a session for `username` on behalf of `ctx.client_id`.
    ///
    /// An unknown user costs one (dummy) hash like a known one, and both answer
    /// [`DomainError::InvalidCredentials`] and count towards the lock of that username. Every
    /// attempt is audited.
    pub async fn login(
        &self,
        ctx: &RequestContext,
        username: &str,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<SessionToken, DomainError> {
        let result = self.login_unaudited(ctx, username, password, now).await;
        let outcome = AuditOutcome::of(&result);
        metrics::counter!("login_total", "result" => outcome.as_str()).increment(1);
        // A session that started was audited in the transaction that stored it.
        if result.is_err() {
            self.audit_result(now, AuditEvent::Login, &result, Some(username), ctx, None)
                .await;
        }
        result
    }

    async fn login_unaudited(
        &self,
        ctx: &RequestContext,
        username: &str,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<SessionToken, DomainError> {
        let username = &super::resolve_username(self.store.as_ref(), username).await?;
        self.simulate_user(username, password, now).await?;
        let ip = self.ip_limit(ctx, now);
        if let Some(ip) = &ip {
            self.refuse_throttled(ip, now).await?;
        }
        let attempt = self.reserve_attempt(username, ip, now).await?;
        let verified = self.verify_user(&attempt, password, now).await?;
        let Some(user) = verified else {
            self.fail_attempt(ctx, &attempt, now).await?;
            return Err(DomainError::InvalidCredentials);
        };
        self.rehash_if_needed(&user, password).await;
        let token = SessionToken::generate();
        let start = SessionStart {
            session: SessionRecord {
                token_digest: token.digest(),
                id: new_session_id(),
                username: username.to_owned(),
                client_id: ctx.client_id.clone(),
                created_at: now,
                last_used_at: now,
                account: None,
            },
            attempt_id: attempt.id.clone(),
            keep_sessions: self.policy.max_sessions_per_user,
            audit: Entry {
                event: AuditEvent::Login,
                outcome: AuditOutcome::Success,
                username: Some(username),
                context: Some(ctx),
                detail: None,
            }
            .record(now),
            success_at: ctx.success_at(now),
        };
        let revoked = match self.store.start_session(&start).await {
            Ok(revoked) => revoked,
            Err(e) => {
                // Release the reservation now rather than let it count until it lapses.
                if let Err(release) = self
                    .finish_attempt(&attempt, AttemptOutcome::Abandoned, now)
                    .await
                {
                    tracing::debug!(error = %release, "login reservation left to lapse");
                }
                return Err(e.into());
            }
        };
        if revoked > 0
            && let Some(keep) = self.policy.max_sessions_per_user
        {
            self.audit(
                now,
                AuditEvent::Revoke,
                AuditOutcome::Success,
                Some(username),
                ctx,
                Some(format!(
                    "{revoked} oldest session(s) over the cap of {keep}"
                )),
            )
            .await;
        }
        Ok(token)
    }

    /// Checks that `token` is a live session of `client_id` and records its use.
    pub async fn authenticate_session(
        &self,
        client_id: &str,
        token: &SessionToken,
        now: Timestamp,
    ) -> Result<AuthenticatedSession, DomainError> {
        let session = self.live_session(client_id, token, now).await?;
        // Writes are coalesced: the stored last use may lag the real one by the granularity.
        if now >= session.last_used_at.plus(self.policy.touch_granularity())
            && !self.store.touch_session(&session.digest, now).await?
        {
            return Err(DomainError::SessionExpired);
        }
        Ok(session)
    }

    /// Ends the session at once; the same token answers `SessionExpired` from then on.
    pub async fn logout(
        &self,
        ctx: &RequestContext,
        token: &SessionToken,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let session = self.live_session(&ctx.client_id, token, now).await;
        let username = session.as_ref().ok().map(|s| s.username.clone());
        let result = match session {
            Ok(session) => match self.store.delete_session(&session.digest).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(DomainError::SessionExpired),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        };
        self.audit_result(
            now,
            AuditEvent::Logout,
            &result,
            username.as_deref(),
            ctx,
            None,
        )
        .await;
        result
    }

    /// Deletes sessions idle past the timeout (expiry does not depend on it, only table size),
    /// erases idempotent answers past their window, and forgets counters that no longer count.
    pub async fn purge(&self, now: Timestamp) -> Result<u64, DomainError> {
        let cutoff = now.minus(self.policy.session_idle_timeout);
        let sessions = self.store.purge_sessions_idle_since(cutoff).await?;
        let idempotency = self
            .store
            .purge_idempotency(
                now.minus(self.policy.idempotency_replay_window),
                now.minus(self.policy.idempotency_record_ttl),
            )
            .await?;
        // Permanent locks have no window: username counters then wait for an administrator
        // (a cutoff before any time keeps them all), while the addresses' failures and lapsed
        // reservations still go.
        let unknown_failures_before = self
            .policy
            .lockout_duration
            .map_or(Timestamp(i64::MIN), |window| now.minus(window));
        let counters = self
            .store
            .purge_counters(
                unknown_failures_before,
                now.minus(self.policy.ip_failure_window),
                now,
            )
            .await?;
        Ok(sessions + idempotency + counters)
    }

    pub(super) async fn live_session(
        &self,
        client_id: &str,
        token: &SessionToken,
        now: Timestamp,
    ) -> Result<AuthenticatedSession, DomainError> {
        let digest = token.digest();
        let session = self
            .store
            .find_session(&digest)
            .await?
            .ok_or(DomainError::SessionExpired)?;
        if self.is_over(&session, now) {
            self.store.delete_session(&digest).await?;
            return Err(DomainError::SessionExpired);
        }
        if session.client_id != client_id {
            return Err(DomainError::SessionExpired);
        }
        Ok(AuthenticatedSession {
            username: session.username,
            account: session.account,
            client_id: session.client_id,
            digest,
            last_used_at: session.last_used_at,
        })
    }

    fn is_over(&self, session: &SessionRecord, now: Timestamp) -> bool {
        let idle = now >= session.last_used_at.plus(self.policy.session_idle_timeout);
        let too_old = self
            .policy
            .session_max_lifetime
            .is_some_and(|max| now >= session.created_at.plus(max));
        idle || too_old
    }

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
            attempt_id: uuid::Uuid::new_v4().to_string(),
            threshold: self.policy.lockout_threshold,
            ip,
            now,
            expires_at: now.plus(ATTEMPT_RESERVATION_TTL),
        };
        let deadline = tokio::time::Instant::now() + self.policy.attempt_wait;
        loop {
            match self.store.reserve_attempt(&request).await? {
                AttemptReservation::Granted => {
                    return Ok(Attempt {
                        username,
                        id: request.attempt_id,
                        admission,
                    });
                }
                AttemptReservation::Locked { until } => return Err(DomainError::Locked { until }),
                AttemptReservation::Throttled { until } => {
                    return Err(DomainError::Throttled {
                        retry_after: now.until(until),
                    });
                }
                AttemptReservation::Busy if tokio::time::Instant::now() >= deadline => {
                    return Err(DomainError::Busy);
                }
                AttemptReservation::Busy => tokio::time::sleep(BUSY_RETRY_INTERVAL).await,
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
        };
        Ok(self.store.finish_attempt(&end).await?)
    }

    /// Refuses an address already at its limit with a read, before any write: a flood from a
    /// throttled address then costs no write and no wait for the writer.
    async fn refuse_throttled(&self, ip: &IpLimit, now: Timestamp) -> Result<(), DomainError> {
        let (failures, oldest) = self.store.ip_failures_since(ip).await?;
        if failures >= ip.limit {
            // When the oldest counted failure leaves the window.
            let until = Timestamp(oldest.map_or(now.0, |t| t.0) + (now.0 - ip.since.0));
            return Err(DomainError::Throttled {
                retry_after: now.until(until),
            });
        }
        Ok(())
    }

    /// The client address's budget of failed logins, when it has one.
    fn ip_limit(&self, ctx: &RequestContext, now: Timestamp) -> Option<IpLimit> {
        let limit = self.policy.ip_failure_limit;
        ctx.ip.filter(|_| limit > 0).map(|ip| IpLimit {
            ip: ip.to_string(),
            limit,
            since: now.minus(self.policy.ip_failure_window),
        })
    }

    /// Upgrades a hash made with other parameters, after the password was proven. Best effort:
    /// never fails the login, and a concurrent change of the hash wins (compare-and-swap).
    async fn rehash_if_needed(&self, user: &UserRecord, password: &SecretString) {
        if !self.hasher.needs_rehash(&user.password_hash) {
            return;
        }
        let result = async {
            let new_hash = self.hasher.hash(password).await?;
            Ok::<_, DomainError>(
                self.store
                    .update_password_hash(&user.username, &user.password_hash, &new_hash)
                    .await?,
            )
        }
        .await;
        match result {
            Ok(true) => tracing::info!(username = user.username, "password rehashed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(username = user.username, error = %e, "rehash failed"),
        }
    }

    /// Audits an operation's result, except when the store was unavailable: the line could
    /// not be written either, and trying would make the caller wait a second store timeout
    /// before its 503. The failure itself is logged where it is answered.
    pub(super) async fn audit_result<T>(
        &self,
        now: Timestamp,
        event: AuditEvent,
        result: &Result<T, DomainError>,
        username: Option<&str>,
        ctx: &RequestContext,
        detail: Option<String>,
    ) {
        if matches!(result, Err(DomainError::Store(StoreError::Unavailable(_)))) {
            tracing::debug!(
                event = event.as_str(),
                "audit line skipped: the store is unavailable"
            );
            return;
        }
        let outcome = AuditOutcome::of(result);
        self.audit(now, event, outcome, username, ctx, detail).await;
    }

    pub(super) async fn audit(
        &self,
        now: Timestamp,
        event: AuditEvent,
        outcome: AuditOutcome,
        username: Option<&str>,
        ctx: &RequestContext,
        detail: Option<String>,
    ) {
        let entry = Entry {
            event,
            outcome,
            username,
            context: Some(ctx),
            detail,
        };
        audit::append(self.store.as_ref(), now, entry).await;
    }
}

/// A random session id for administrators (64 bits, hex).
fn new_session_id() -> String {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    hex::encode(bytes)
}
