use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::attempts::CounterRules;
use super::audit::{self, AuditEvent, AuditOutcome, Entry};
use super::lockout;
use super::password_policy::check_password;
use super::username::{refuse_look_alike, resolve_username, validate_new_username};
use super::{DomainError, normalize_scope};
use crate::crypto::{
    OsRandomness, PasswordHasher, Randomness, generate_client_secret, generate_password,
};
use crate::store::{AuditRecord, ClientRecord, Store, StoreError, UserRecord};
use crate::time::Timestamp;

/// What the admin commands do, over the same store the server uses. Every change is audited.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    rng: Arc<dyn Randomness>,
}

/// A user to create with [`Admin::add_user`].
pub struct NewUser {
    /// Validated and normalised (NFC); look-alikes of existing names are refused.
    pub username: String,
    /// The ThingSpace account the user belongs to, returned with sessions.
    pub account: Option<String>,
    /// `None` generates one, which is returned once.
    pub password: Option<SecretString>,
}

/// The result of [`Admin::add_user`].
pub struct AddedUser {
    /// The generated password, when none was given; shown once.
    pub generated_password: Option<SecretString>,
    /// Reasons the given password is weak though allowed.
    pub warnings: Vec<String>,
}

/// An OAuth client to register with [`Admin::add_client`].
pub struct NewClient {
    /// Printable ASCII without spaces, at most 128 characters: it travels in Basic headers.
    pub client_id: String,
    /// `None` generates one, which is returned once.
    pub secret: Option<SecretString>,
    /// Scopes it may ask for; empty allows any requested scope.
    pub scopes: Vec<String>,
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    /// The username as stored.
    pub username: String,
    /// The user's account, if any.
    pub account: Option<String>,
    /// When the user was created.
    pub created_at: Timestamp,
    /// Failures counted towards the lock (zero once a lock has ended).
    pub failures: u32,
    /// Set only while the lock is in force.
    pub locked_until: Option<Timestamp>,
}

/// A username's lockout as `user lockout` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutState {
    /// Where something counts against the username: the shared bucket (`""`) and familiar
    /// sources. Empty when nothing does.
    pub buckets: Vec<BucketState>,
    /// The username's recent password checks that failed or were refused, and its locks and
    /// unlocks, newest last (at most [`RECENT_ATTEMPTS`], from the last day).
    pub recent: Vec<AuditRecord>,
}

/// One bucket's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    /// `""` for the bucket every source shares, else a familiar source.
    pub bucket: String,
    /// Failures counted (zero once a lock has ended).
    pub failures: u32,
    /// Set only while the lock is in force.
    pub locked_until: Option<Timestamp>,
}

/// How many recent audit lines [`Admin::lockout_state`] shows.
pub const RECENT_ATTEMPTS: usize = 10;

/// A session as `session list` shows it: never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's administrator id (never the token).
    pub id: String,
    /// First 8 hex digits of the token's SHA-256.
    pub token_sha256_prefix: String,
    /// Whose session it is.
    pub username: String,
    /// The OAuth client it was started for.
    pub client_id: String,
    /// When it was started.
    pub created_at: Timestamp,
    /// Its last use as stored (writes are coalesced, see `Policy::touch_granularity`).
    pub last_used_at: Timestamp,
    /// The address its login came from, when known.
    pub ip: Option<String>,
}

impl Admin {
    /// Administration with the operating system's randomness for generated secrets.
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher) -> Self {
        Self {
            store,
            hasher,
            rng: Arc::new(OsRandomness),
        }
    }

    /// Where generated passwords and client secrets draw their randomness from.
    pub fn with_randomness(mut self, rng: Arc<dyn Randomness>) -> Self {
        self.rng = rng;
        self
    }

    /// Creates a user; a given password must pass the password policy.
    pub async fn add_user(&self, user: NewUser, now: Timestamp) -> Result<AddedUser, DomainError> {
        let username = validate_new_username(&user.username)?;
        refuse_look_alike(self.store.as_ref(), &username).await?;
        let (password, added) = self.password_or_generated(user.password)?;
        let record = UserRecord {
            username: username.clone(),
            account: user.account,
            password_hash: self.hasher.hash(&password).await?,
            created_at: now,
        };
        self.store
            .insert_user(&record)
            .await
            .map_err(|e| conflict_as(e, format!("user {username:?}")))?;
        self.audit(now, AuditEvent::Admin, Some(&username), "user added")
            .await;
        Ok(added)
    }

    /// Sets a user's password (given, or generated and returned once) and ends the user's
    /// sessions, which were opened with the old one. A lock stays: `unlock_user` ends it.
    /// Returns the password's warnings and how many sessions ended.
    pub async fn set_password(
        &self,
        username: &str,
        password: Option<SecretString>,
        now: Timestamp,
    ) -> Result<(AddedUser, u64), DomainError> {
        let username = &resolve_username(self.store.as_ref(), username).await?;
        let user = self
            .store
            .find_user(username)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("user {username:?}")))?;
        let (password, added) = self.password_or_generated(password)?;
        let new_hash = self.hasher.hash(&password).await?;
        // Compare-and-swap, as a rehash does: a reset that lands meanwhile is not overwritten.
        if !self
            .store
            .update_password_hash(username, &user.password_hash, &new_hash)
            .await?
        {
            return Err(DomainError::Internal(format!(
                "the password of {username:?} changed meanwhile (a reset or a login's rehash); \
                 nothing was set: run the command again"
            )));
        }
        let ended = self.store.delete_user_sessions(username).await?;
        let detail = format!("password set by an administrator; {ended} session(s) ended");
        self.audit(now, AuditEvent::Admin, Some(username), &detail)
            .await;
        Ok((added, ended))
    }

    /// A given password checked against the policy, or a generated one to be shown once.
    fn password_or_generated(
        &self,
        given: Option<SecretString>,
    ) -> Result<(SecretString, AddedUser), DomainError> {
        Ok(match given {
            Some(password) => {
                let warnings = check_password(&password)?;
                let added = AddedUser {
                    generated_password: None,
                    warnings,
                };
                (password, added)
            }
            None => {
                let generated = generate_password(self.rng.as_ref());
                let added = AddedUser {
                    generated_password: Some(generated.clone()),
                    warnings: Vec::new(),
                };
                (generated, added)
            }
        })
    }

    /// Every user with the state of their lock at `now`.
    pub async fn list_users(&self, now: Timestamp) -> Result<Vec<UserStatus>, DomainError> {
        let users = self.store.list_users().await?;
        let lockouts = self.store.list_lockouts().await?;
        Ok(users
            .into_iter()
            .map(|u| {
                // Across buckets: the most failures, the latest lock in force.
                let buckets = lockouts.iter().filter(|l| l.username == u.username);
                let (failures, locked_until) = buckets.fold((0, None), |(failures, locked), l| {
                    let (n, until) = lockout::standing(l.failures, l.locked_until, now);
                    (failures.max(n), locked.max(until))
                });
                UserStatus {
                    failures,
                    locked_until,
                    username: u.username,
                    account: u.account,
                    created_at: u.created_at,
                }
            })
            .collect())
    }

    /// Clears the lock and failure count of a username (known or not, since counters are kept
    /// for any name given); `NotFound` only when there is neither a user nor a counter.
    pub async fn unlock_user(&self, username: &str, now: Timestamp) -> Result<(), DomainError> {
        let username = &resolve_username(self.store.as_ref(), username).await?;
        let cleared = self
            .store
            // The database's clock, as the nodes judge by it: an admin host's clock running
            // ahead must not forgive failures still to come.
            .clear_failures(username, self.store.db_now().await?)
            .await?;
        if cleared || self.store.find_user(username).await?.is_some() {
            self.audit(
                now,
                AuditEvent::Unlock,
                Some(username),
                "unlocked by an administrator",
            )
            .await;
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("user {username:?}")))
        }
    }

    /// What counts against a username (known or not), per bucket, and its recent failed or
    /// refused password checks; `NotFound` when there is neither a user nor a counter.
    pub async fn lockout_state(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<LockoutState, DomainError> {
        let username = &resolve_username(self.store.as_ref(), username).await?;
        let buckets: Vec<_> = self
            .store
            .lockouts(username)
            .await?
            .into_iter()
            .map(|l| {
                let (failures, locked_until) = lockout::standing(l.failures, l.locked_until, now);
                BucketState {
                    failures,
                    locked_until,
                    bucket: l.bucket,
                }
            })
            .collect();
        if buckets.is_empty() && self.store.find_user(username).await?.is_none() {
            return Err(DomainError::NotFound(format!("user {username:?}")));
        }
        let day = std::time::Duration::from_secs(24 * 3600);
        let mut recent: Vec<_> = self
            .store
            .list_audit(Some(username), Some(now.minus(day)), None)
            .await?
            .into_iter()
            .filter(|r| match r.event.as_str() {
                "lock" | "unlock" => true,
                "login" | "reset" => r.outcome != AuditOutcome::Success.as_str(),
                _ => false,
            })
            .collect();
        recent.drain(..recent.len().saturating_sub(RECENT_ATTEMPTS));
        Ok(LockoutState { buckets, recent })
    }

    /// Removes a user with their sessions and counters; audited.
    pub async fn remove_user(&self, username: &str, now: Timestamp) -> Result<(), DomainError> {
        let username = &resolve_username(self.store.as_ref(), username).await?;
        if self.store.remove_user(username).await? {
            self.audit(
                now,
                AuditEvent::Admin,
                Some(username),
                "user removed with its sessions",
            )
            .await;
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("user {username:?}")))
        }
    }

    /// Registers an OAuth client; returns the generated secret when none was given.
    pub async fn add_client(
        &self,
        client: NewClient,
        now: Timestamp,
    ) -> Result<Option<SecretString>, DomainError> {
        validate_client_id(&client.client_id)?;
        let scopes = normalize_scope(&client.scopes.join(" "))
            .map_err(|_| DomainError::InvalidInput("invalid scope".into()))?;
        let (secret, generated) = self.secret_or_generated(client.secret)?;
        let record = ClientRecord {
            client_id: client.client_id.clone(),
            secret_hash: self.hasher.hash(&secret).await?,
            scopes,
            created_at: now,
        };
        self.store
            .insert_client(&record)
            .await
            .map_err(|e| conflict_as(e, format!("client {:?}", client.client_id)))?;
        self.audit(
            now,
            AuditEvent::Admin,
            None,
            &format!("client {:?} added", client.client_id),
        )
        .await;
        Ok(generated)
    }

    /// Gives a client a new secret (given, or generated and returned once). Its API tokens are
    /// revoked at once unless `keep_tokens`, in which case they live until they expire (at most
    /// an hour): the choice between cutting off a leaked secret's tokens and rotating without
    /// a failed call. Sessions stay either way: each call also needs a live API token.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret: Option<SecretString>,
        keep_tokens: bool,
        now: Timestamp,
    ) -> Result<Option<SecretString>, DomainError> {
        let (secret, generated) = self.secret_or_generated(secret)?;
        let hash = self.hasher.hash(&secret).await?;
        if !self
            .store
            .replace_client_secret(client_id, &hash, !keep_tokens)
            .await?
        {
            return Err(DomainError::NotFound(format!("client {client_id:?}")));
        }
        let tokens = if keep_tokens {
            "its API tokens kept until they expire"
        } else {
            "its API tokens revoked"
        };
        let detail = format!("client {client_id:?} secret rotated; {tokens}");
        self.audit(now, AuditEvent::Admin, None, &detail).await;
        Ok(generated)
    }

    /// A given client secret (never empty), or a generated one to be shown once.
    fn secret_or_generated(
        &self,
        given: Option<SecretString>,
    ) -> Result<(SecretString, Option<SecretString>), DomainError> {
        let generated = given
            .is_none()
            .then(|| generate_client_secret(self.rng.as_ref()));
        let secret = given.or_else(|| generated.clone()).unwrap_or_default();
        if secret.expose_secret().is_empty() {
            return Err(DomainError::InvalidInput(
                "client secret must not be empty".into(),
            ));
        }
        Ok((secret, generated))
    }

    /// Every registered OAuth client (secrets are stored hashed and never shown).
    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, DomainError> {
        Ok(self.store.list_clients().await?)
    }

    /// Removes a client with its API tokens and sessions; audited.
    pub async fn remove_client(&self, client_id: &str, now: Timestamp) -> Result<(), DomainError> {
        if self.store.remove_client(client_id).await? {
            let detail = format!("client {client_id:?} removed with its tokens and sessions");
            self.audit(now, AuditEvent::Admin, None, &detail).await;
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("client {client_id:?}")))
        }
    }

    /// Sessions, all or one user's, oldest first, as administrators see them.
    pub async fn list_sessions(
        &self,
        username: Option<&str>,
    ) -> Result<Vec<SessionSummary>, DomainError> {
        let username = match username {
            Some(name) => Some(resolve_username(self.store.as_ref(), name).await?),
            None => None,
        };
        Ok(self
            .store
            .list_sessions(username.as_deref())
            .await?
            .into_iter()
            .map(|s| SessionSummary {
                token_sha256_prefix: s.token_digest.short_hex(),
                id: s.id,
                username: s.username,
                client_id: s.client_id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                ip: s.ip,
            })
            .collect())
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn revoke_user_sessions(
        &self,
        username: &str,
        now: Timestamp,
    ) -> Result<u64, DomainError> {
        let username = &resolve_username(self.store.as_ref(), username).await?;
        // One rule for every command that names a user: no such user is an error, not "0".
        if self.store.find_user(username).await?.is_none() {
            return Err(DomainError::NotFound(format!("user {username:?}")));
        }
        let n = self.store.delete_user_sessions(username).await?;
        self.audit(
            now,
            AuditEvent::Revoke,
            Some(username),
            &format!("{n} session(s) revoked"),
        )
        .await;
        Ok(n)
    }

    /// Ends one session by its administrator id; audited.
    pub async fn revoke_session(&self, id: &str, now: Timestamp) -> Result<(), DomainError> {
        if self.store.delete_session_by_id(id).await? {
            self.audit(
                now,
                AuditEvent::Revoke,
                None,
                &format!("session {id} revoked"),
            )
            .await;
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("session {id:?}")))
        }
    }

    /// The audit log, optionally for one username, from a time on and only the newest
    /// `limit` lines; oldest first.
    pub async fn audit_log(
        &self,
        username: Option<&str>,
        since: Option<Timestamp>,
        limit: Option<u32>,
    ) -> Result<Vec<AuditRecord>, DomainError> {
        Ok(self.store.list_audit(username, since, limit).await?)
    }

    /// A consistent copy of the database in a new file, taken while servers keep running.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), DomainError> {
        Ok(self.store.backup_to(path).await?)
    }

    async fn audit(&self, now: Timestamp, event: AuditEvent, username: Option<&str>, detail: &str) {
        let entry = Entry {
            event,
            outcome: AuditOutcome::Success,
            username,
            context: None,
            detail: Some(detail.to_owned()),
        };
        audit::append(self.store.as_ref(), now, entry).await;
    }
}

fn conflict_as(e: StoreError, what: String) -> DomainError {
    match e {
        StoreError::Conflict => DomainError::AlreadyExists(what),
        other => other.into(),
    }
}

/// Client ids travel in Basic headers and logs: printable ASCII without spaces, and short.
fn validate_client_id(client_id: &str) -> Result<(), DomainError> {
    let ok = !client_id.is_empty()
        && client_id.len() <= 128
        && client_id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(DomainError::InvalidInput(
            "client id must be 1-128 printable ASCII characters without spaces".into(),
        ))
    }
}
