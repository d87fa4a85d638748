use std::sync::Arc;

use secrecy::SecretString;

use super::{DomainError, Policy};
use crate::crypto::{PasswordHasher, SessionToken, TokenDigest, generate_password};
use crate::store::{PasswordReset, SessionRecord, Store};
use crate::time::Timestamp;

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
    /// The user's account, filled in by [`SessionService::authenticate_session`] only.
    pub account: Option<String>,
    pub client_id: String,
    pub digest: TokenDigest,
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

    /// Starts a session for `username` on behalf of OAuth client `client_id`.
    ///
    /// An unknown user costs one (dummy) hash like a known one, and both answer
    /// [`DomainError::InvalidCredentials`] and count towards the lock of that username.
    pub async fn login(
        &self,
        client_id: &str,
        username: &str,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<SessionToken, DomainError> {
        let had_failures = self.ensure_not_locked(username, now).await?;
        let user = self.store.find_user(username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.as_str());
        if !self.hasher.verify(password, stored).await? {
            self.record_failure(username, now).await?;
            return Err(DomainError::InvalidCredentials);
        }
        if had_failures {
            self.store.clear_failures(username).await?;
        }
        let token = SessionToken::generate();
        self.store
            .insert_session(&SessionRecord {
                token_digest: token.digest(),
                username: username.to_owned(),
                client_id: client_id.to_owned(),
                created_at: now,
                last_used_at: now,
            })
            .await?;
        Ok(token)
    }

    /// Checks that `token` is a live session of `client_id` and records its use.
    pub async fn authenticate_session(
        &self,
        client_id: &str,
        token: &SessionToken,
        now: Timestamp,
    ) -> Result<AuthenticatedSession, DomainError> {
        let mut session = self.live_session(client_id, token, now).await?;
        if !self.store.touch_session(&session.digest, now).await? {
            return Err(DomainError::SessionExpired);
        }
        session.account = self
            .store
            .find_user(&session.username)
            .await?
            .and_then(|u| u.account);
        Ok(session)
    }

    /// Ends the session at once; the same token answers `SessionExpired` from then on.
    pub async fn logout(
        &self,
        client_id: &str,
        token: &SessionToken,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        let session = self.live_session(client_id, token, now).await?;
        if !self.store.delete_session(&session.digest).await? {
            return Err(DomainError::SessionExpired);
        }
        Ok(())
    }

    /// Replaces the session user's password with a generated one, returned once.
    ///
    /// A wrong `old_password` counts as a failed login. On success every other session of the
    /// user is revoked in the same transaction; the presenting session stays valid.
    pub async fn reset_password(
        &self,
        client_id: &str,
        token: &SessionToken,
        old_password: &SecretString,
        now: Timestamp,
    ) -> Result<SecretString, DomainError> {
        let session = self.live_session(client_id, token, now).await?;
        let username = session.username.as_str();
        self.ensure_not_locked(username, now).await?;
        let user = self
            .store
            .find_user(username)
            .await?
            .ok_or(DomainError::SessionExpired)?;
        if !self
            .hasher
            .verify(old_password, Some(&user.password_hash))
            .await?
        {
            self.record_failure(username, now).await?;
            return Err(DomainError::OldPasswordMismatch);
        }
        let new_password = generate_password();
        let reset = PasswordReset {
            username: user.username,
            expected_hash: user.password_hash,
            new_hash: self.hasher.hash(&new_password).await?,
            keep_session: session.digest,
            now,
        };
        if !self.store.reset_password(&reset).await? {
            // Another reset won the race; the old password this request proved is gone.
            return Err(DomainError::OldPasswordMismatch);
        }
        Ok(new_password)
    }

    /// Deletes sessions idle past the timeout; expiry does not depend on it, only table size.
    pub async fn purge_idle_sessions(&self, now: Timestamp) -> Result<u64, DomainError> {
        let cutoff = now.minus(self.policy.session_idle_timeout);
        Ok(self.store.purge_sessions_idle_since(cutoff).await?)
    }

    async fn live_session(
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
        if self.is_idle_expired(&session, now) {
            self.store.delete_session(&digest).await?;
            return Err(DomainError::SessionExpired);
        }
        if session.client_id != client_id {
            return Err(DomainError::SessionExpired);
        }
        Ok(AuthenticatedSession {
            username: session.username,
            account: None,
            client_id: session.client_id,
            digest,
        })
    }

    fn is_idle_expired(&self, session: &SessionRecord, now: Timestamp) -> bool {
        now >= session.last_used_at.plus(self.policy.session_idle_timeout)
    }

    /// Refuses a locked username; forgets an expired lock. Returns whether failures are on record.
    async fn ensure_not_locked(&self, username: &str, now: Timestamp) -> Result<bool, DomainError> {
        let Some(record) = self.store.lockout(username).await? else {
            return Ok(false);
        };
        match record.locked_until {
            Some(until) if until > now => Err(DomainError::Locked { until }),
            Some(_) => {
                self.store.clear_failures(username).await?;
                Ok(false)
            }
            None => Ok(record.failures > 0),
        }
    }

    async fn record_failure(&self, username: &str, now: Timestamp) -> Result<(), DomainError> {
        let failures = self.store.add_failure(username, now).await?;
        if failures >= self.policy.lockout_threshold {
            let until = self
                .policy
                .lockout_duration
                .map_or(Timestamp::NEVER, |d| now.plus(d));
            self.store.lock(username, until).await?;
            tracing::warn!(
                username,
                "user locked after {failures} consecutive failures"
            );
        }
        Ok(())
    }
}
