use std::sync::Arc;

use secrecy::SecretString;

use super::audit::{self, AuditEvent, AuditOutcome, Entry, RequestContext};
use super::lockout::AttemptOutcome;
use super::{DomainError, Policy};
use crate::clock::Clock;
use crate::crypto::{
    OsRandomness, PasswordHasher, Randomness, SessionToken, TokenDigest, random_hex,
};
use crate::store::{SessionRecord, SessionStart, Store, UserRecord};
use crate::time::{TimeSource, Timestamp};

/// The session operations of the contract, plus the API-token ones in `oauth.rs`.
#[derive(Clone)]
pub struct SessionService {
    pub(super) store: Arc<dyn Store>,
    pub(super) hasher: PasswordHasher,
    pub(super) policy: Policy,
    /// Read only to wait and to measure how long a request took: every rule takes the
    /// request's `now` instead.
    pub(super) time: Arc<dyn TimeSource>,
    pub(super) rng: Arc<dyn Randomness>,
}

/// A live session, after its token was checked against the presenting OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedSession {
    /// The session's user.
    pub username: String,
    /// The user's account.
    pub account: Option<String>,
    /// The OAuth client the session belongs to.
    pub client_id: String,
    /// The token's digest, as the store knows the session.
    pub digest: TokenDigest,
    /// Last use as stored (see [`Policy::touch_granularity`]).
    pub last_used_at: Timestamp,
}

impl SessionService {
    /// A service on this host's clock and the operating system's randomness; see
    /// [`Self::with_time`] and [`Self::with_randomness`] to hand in others.
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher, policy: Policy) -> Self {
        Self {
            store,
            hasher,
            policy,
            time: Arc::new(Clock::default()),
            rng: Arc::new(OsRandomness),
        }
    }

    /// The clock to wait and to measure durations by (the rules themselves take the
    /// request's `now`); tests hand in one they move themselves.
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.time = time;
        self
    }

    /// Where tokens, generated passwords and identifiers draw their randomness from.
    pub fn with_randomness(mut self, rng: Arc<dyn Randomness>) -> Self {
        self.rng = rng;
        self
    }

    /// The rules this service applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The store, for what runs beside the service on the same data: administration
    /// ([`super::Admin`]) and tests. The HTTP layer asks the service instead.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether the store answers (and, for SQLite, its write lock can be taken): what
    /// readiness reports to load balancers.
    pub async fn ready(&self) -> Result<(), DomainError> {
        Ok(self.store.ping().await?)
    }

    /// Sessions not idle past the timeout at `now`.
    pub async fn live_sessions(&self, now: Timestamp) -> Result<u64, DomainError> {
        let since = now.minus(self.policy.session_idle_timeout);
        Ok(self.store.count_sessions_used_since(since).await?)
    }

    /// The password hasher, shared with administration so both use the same parameters.
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
        metrics::counter!(crate::telemetry::LOGINS, "result" => outcome.as_str()).increment(1);
        // A session that started was audited in the transaction that stored it, a wrong
        // password where the rule it met was known (`fail_attempt`).
        if result.is_err() && outcome != AuditOutcome::InvalidCredentials {
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
        let started = self.time.monotonic();
        let username = &super::resolve_username(self.store.as_ref(), username).await?;
        self.simulate_user(username, password, now).await?;
        let ip = self.ip_limit(ctx, now);
        if let Some(ip) = &ip {
            self.refuse_throttled(ip, now).await?;
        }
        let attempt = self.reserve_attempt(ctx, username, ip, now).await?;
        let checked = self.verify_user(&attempt, password, now).await?;
        let Some(user) = checked.user else {
            self.fail_attempt(ctx, AuditEvent::Login, &attempt, checked.digest, now)
                .await?;
            return Err(DomainError::InvalidCredentials);
        };
        self.rehash_if_needed(&user, password).await;
        let token = SessionToken::generate(self.rng.as_ref());
        let start = SessionStart {
            session: SessionRecord {
                token_digest: token.digest(),
                id: self.random_id(8),
                username: username.to_owned(),
                client_id: ctx.client_id.clone(),
                created_at: now,
                last_used_at: now,
                account: None,
                ip: ctx.ip.map(|ip| ip.to_string()),
            },
            counters: self.attempt_succeeded(&attempt, started, now),
            keep_sessions: self.policy.max_sessions_per_user,
            audit: Entry {
                event: AuditEvent::Login,
                outcome: AuditOutcome::Success,
                username: Some(username),
                context: Some(ctx),
                detail: None,
            }
            .record(now),
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
                now.minus(self.policy.familiar_source_window),
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
        let mut session = self
            .store
            .find_session(&digest)
            .await?
            .ok_or(DomainError::SessionExpired)?;
        if self.is_over(&session, now) {
            // A cached last use may lag another node's touch: ended only as stored.
            session = self
                .store
                .reload_session(&digest)
                .await?
                .ok_or(DomainError::SessionExpired)?;
            if self.is_over(&session, now) {
                self.store.delete_session(&digest).await?;
                return Err(DomainError::SessionExpired);
            }
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
        if matches!(result, Err(DomainError::Unavailable(_))) {
            tracing::debug!(
                event = event.as_str(),
                "audit line skipped: the store is unavailable"
            );
            return;
        }
        let outcome = AuditOutcome::of(result);
        // An error's line says which one: "logout error" alone tells an operator nothing.
        let detail = match (detail, result) {
            (None, Err(e)) if outcome == AuditOutcome::Error => Some(e.to_string()),
            (detail, _) => detail,
        };
        self.audit(now, event, outcome, username, ctx, detail).await;
    }

    /// A random identifier of `bytes` bytes, as hex: unique, not secret.
    pub(super) fn random_id(&self, bytes: usize) -> String {
        random_hex(self.rng.as_ref(), bytes)
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
