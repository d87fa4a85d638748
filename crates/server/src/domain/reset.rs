//! Password reset, plain and idempotent: the operation whose lost answer can lock a user out.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::audit::{AuditEvent, AuditOutcome, RequestContext};
use super::idempotency::{Repeat, judge, validate_key};
use super::lockout::AttemptOutcome;
use super::service::AuthenticatedSession;
use super::{DomainError, SessionService};
use crate::crypto::{IdempotencySeal, SessionToken, generate_password};
use crate::store::{IdempotencyRecord, PasswordReset, StoreError};
use crate::time::Timestamp;

/// When a request arrived (its `now`) and the [`TimeSource::monotonic`](crate::time::TimeSource::monotonic) reading taken as the
/// domain received it, from which a success's time is measured.
type Arrival = (Timestamp, Duration);

impl SessionService {
    /// Replaces the session user's password with a generated one, returned once.
    ///
    /// A wrong `old_password` counts as a failed login. On success every other session of the
    /// user is revoked in the same transaction; the presenting session stays valid. With an
    /// idempotency key, a repeat of the same request gets the same new password back for
    /// [`Policy::idempotency_replay_window`](super::Policy::idempotency_replay_window), so a retry after a lost answer cannot lock the
    /// user out of an account whose password they never saw.
    pub async fn reset_password(
        &self,
        ctx: &RequestContext,
        token: &SessionToken,
        old_password: &SecretString,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<SecretString, DomainError> {
        // As the domain received the request: a success's time counts from here.
        let started = self.time.monotonic();
        let session = match self.live_session(&ctx.client_id, token, now).await {
            Ok(session) => session,
            Err(e) => {
                let result = Err(e);
                self.audit_result(now, AuditEvent::Reset, &result, None, ctx, None)
                    .await;
                return result;
            }
        };
        let (result, detail) = match idempotency_key {
            None => (
                self.reset_unaudited(ctx, &session, old_password, None, (now, started))
                    .await,
                None,
            ),
            Some(key) => {
                self.reset_idempotent(ctx, &session, token, old_password, key, (now, started))
                    .await
            }
        };
        // A wrong old password was audited where the rule it met was known (`fail_attempt`).
        if AuditOutcome::of(&result) != AuditOutcome::InvalidCredentials {
            self.audit_result(
                now,
                AuditEvent::Reset,
                &result,
                Some(&session.username),
                ctx,
                detail,
            )
            .await;
        }
        result
    }

    async fn reset_idempotent(
        &self,
        ctx: &RequestContext,
        session: &AuthenticatedSession,
        token: &SessionToken,
        old_password: &SecretString,
        key: &str,
        at: Arrival,
    ) -> (Result<SecretString, DomainError>, Option<String>) {
        if let Err(e) = validate_key(key) {
            return (Err(e), None);
        }
        let claim = match self.store.claim_idempotency(&session.username, key).await {
            Ok(Some(claim)) => claim,
            Ok(None) => return (Err(DomainError::IdempotencyInProgress), None),
            Err(e) => return (Err(e.into()), None),
        };
        let answer = self
            .reset_claimed(ctx, session, token, old_password, key, at)
            .await;
        // After the reset's transaction committed: the next request with the key finds its
        // record.
        claim.release().await;
        answer
    }

    /// [`Self::reset_idempotent`] while it holds the key.
    async fn reset_claimed(
        &self,
        ctx: &RequestContext,
        session: &AuthenticatedSession,
        token: &SessionToken,
        old_password: &SecretString,
        key: &str,
        at: Arrival,
    ) -> (Result<SecretString, DomainError>, Option<String>) {
        let now = at.0;
        let seal = IdempotencySeal::new(token, &session.username, key);
        let fingerprint = seal.fingerprint(old_password.expose_secret().as_bytes());
        let replayed = |r: Result<Option<SecretString>, DomainError>| match r {
            Ok(Some(answer)) => Some((Ok(answer), Some("replayed for a repeated key".into()))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        };
        if let Some(done) = replayed(
            self.replay(&seal, &fingerprint, &session.username, key, now)
                .await,
        ) {
            return done;
        }
        let record = IdempotencyRecord {
            username: session.username.clone(),
            key: key.to_owned(),
            fingerprint: fingerprint.clone(),
            answer: None,
            created_at: now,
        };
        match self
            .reset_unaudited(ctx, session, old_password, Some((&seal, record)), at)
            .await
        {
            // Another node recorded this key first: its answer is the answer.
            Err(DomainError::AlreadyExists(_)) => {
                let again = self
                    .replay(&seal, &fingerprint, &session.username, key, now)
                    .await;
                replayed(again).unwrap_or((Err(DomainError::IdempotencyInProgress), None))
            }
            other => (other, None),
        }
    }

    /// The stored answer for a repeated key, `None` if the key is new (or forgotten).
    async fn replay(
        &self,
        seal: &IdempotencySeal,
        fingerprint: &[u8],
        username: &str,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<SecretString>, DomainError> {
        let Some(record) = self.store.find_idempotency(username, key).await? else {
            return Ok(None);
        };
        let policy = &self.policy;
        match judge(
            &record,
            fingerprint,
            now,
            policy.idempotency_replay_window,
            policy.idempotency_record_ttl,
        ) {
            Repeat::Forgotten => {
                // Clear it (and any other stale record) so the key can be used afresh.
                self.store
                    .purge_idempotency(
                        now.minus(policy.idempotency_replay_window),
                        now.minus(policy.idempotency_record_ttl),
                    )
                    .await?;
                Ok(None)
            }
            Repeat::Mismatch => Err(DomainError::IdempotencyMismatch),
            Repeat::Expired => Err(DomainError::IdempotencyExpired),
            // Sealed under another session's keys: the same key with another request.
            Repeat::Answer(sealed) => seal
                .open(&sealed)
                .map(Some)
                .ok_or(DomainError::IdempotencyMismatch),
        }
    }

    async fn reset_unaudited(
        &self,
        ctx: &RequestContext,
        session: &AuthenticatedSession,
        old_password: &SecretString,
        idempotency: Option<(&IdempotencySeal, IdempotencyRecord)>,
        at: Arrival,
    ) -> Result<SecretString, DomainError> {
        let (now, started) = at;
        let attempt = self
            .reserve_attempt(ctx, &session.username, None, now)
            .await?;
        let checked = self.verify_user(&attempt, old_password, now).await?;
        let Some(user) = checked.user else {
            self.fail_attempt(ctx, AuditEvent::Reset, &attempt, checked.digest, now)
                .await?;
            return Err(DomainError::OldPasswordMismatch);
        };
        let new_password = generate_password(self.rng.as_ref());
        // The replaced password's digest under the new salt: a worker still presenting it is
        // recognised from the one computation its login makes anyway.
        let replacing = self
            .hasher
            .hash_replacing(&new_password, old_password, &user.username)
            .await;
        let (new_hash, replaced) = match replacing {
            Ok(hashed) => hashed,
            Err(e) => {
                self.finish_attempt(&attempt, AttemptOutcome::Abandoned, now)
                    .await?;
                return Err(e.into());
            }
        };
        let reset = PasswordReset {
            username: user.username,
            expected_hash: user.password_hash,
            new_hash,
            keep_session: session.digest,
            counters: self.attempt_succeeded(&attempt, started, now),
            previous: self.previous_password(replaced, now),
            idempotency: idempotency.map(|(seal, mut record)| {
                record.answer = Some(seal.seal(self.rng.as_ref(), &new_password));
                record
            }),
            now,
        };
        // The reservation ends inside the reset's transaction: once it commits, nothing can
        // fail this request, so the new password is never lost to a later error.
        let applied = self.store.reset_password(&reset).await;
        if !matches!(applied, Ok(true)) {
            self.finish_attempt(&attempt, AttemptOutcome::Abandoned, now)
                .await?;
        }
        match applied {
            Ok(true) => Ok(new_password),
            Ok(false) => {
                let detail = "not counted: the password changed while it was checked";
                self.audit(
                    now,
                    AuditEvent::Reset,
                    AuditOutcome::InvalidCredentials,
                    Some(attempt.username),
                    ctx,
                    Some(detail.into()),
                )
                .await;
                Err(DomainError::OldPasswordMismatch)
            }
            // The idempotency record exists: another request with the key was first.
            Err(StoreError::Conflict) => Err(DomainError::AlreadyExists("idempotency key".into())),
            Err(e) => Err(e.into()),
        }
    }
}
