use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::{DomainError, normalize_scope, validate_username};
use crate::crypto::{PasswordHasher, generate_client_secret, generate_password};
use crate::store::{ClientRecord, Store, StoreError, UserRecord};
use crate::time::Timestamp;

/// Longest password accepted from an administrator.
pub const MAX_PASSWORD_LEN: usize = 128;
/// Shortest password accepted from an administrator (NIST 800-63B).
pub const MIN_PASSWORD_LEN: usize = 8;

/// What the admin commands do, over the same store the server uses.
#[derive(Clone)]
pub struct Admin {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
}

pub struct NewUser {
    pub username: String,
    pub account: Option<String>,
    /// `None` generates one, which is returned once.
    pub password: Option<SecretString>,
}

pub struct NewClient {
    pub client_id: String,
    /// `None` generates one, which is returned once.
    pub secret: Option<SecretString>,
    pub scopes: Vec<String>,
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    pub username: String,
    pub account: Option<String>,
    pub created_at: Timestamp,
    pub failures: u32,
    /// Set only while the lock is in force.
    pub locked_until: Option<Timestamp>,
}

impl Admin {
    pub fn new(store: Arc<dyn Store>, hasher: PasswordHasher) -> Self {
        Self { store, hasher }
    }

    /// Creates a user; returns the generated password when none was given.
    pub async fn add_user(
        &self,
        user: NewUser,
        now: Timestamp,
    ) -> Result<Option<SecretString>, DomainError> {
        validate_username(&user.username)?;
        let generated = user.password.is_none().then(generate_password);
        let password = user
            .password
            .or_else(|| generated.clone())
            .unwrap_or_default();
        validate_password(&password)?;
        let record = UserRecord {
            username: user.username.clone(),
            account: user.account,
            password_hash: self.hasher.hash(&password).await?,
            created_at: now,
        };
        self.store
            .insert_user(&record)
            .await
            .map_err(|e| conflict_as(e, format!("user {:?}", user.username)))?;
        Ok(generated)
    }

    pub async fn list_users(&self, now: Timestamp) -> Result<Vec<UserStatus>, DomainError> {
        let users = self.store.list_users().await?;
        let lockouts = self.store.list_lockouts().await?;
        Ok(users
            .into_iter()
            .map(|u| {
                let lock = lockouts.iter().find(|l| l.username == u.username);
                UserStatus {
                    failures: lock.map_or(0, |l| l.failures),
                    locked_until: lock.and_then(|l| l.locked_until).filter(|t| *t > now),
                    username: u.username,
                    account: u.account,
                    created_at: u.created_at,
                }
            })
            .collect())
    }

    /// Clears the lock and failure count of a username (known or not, since counters are kept
    /// for any name given); `NotFound` only when there is neither a user nor a counter.
    pub async fn unlock_user(&self, username: &str) -> Result<(), DomainError> {
        let cleared = self.store.clear_failures(username).await?;
        if cleared || self.store.find_user(username).await?.is_some() {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("user {username:?}")))
        }
    }

    pub async fn remove_user(&self, username: &str) -> Result<(), DomainError> {
        if self.store.remove_user(username).await? {
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
        let generated = client.secret.is_none().then(generate_client_secret);
        let secret = client
            .secret
            .or_else(|| generated.clone())
            .unwrap_or_default();
        if secret.expose_secret().is_empty() {
            return Err(DomainError::InvalidInput(
                "client secret must not be empty".into(),
            ));
        }
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
        Ok(generated)
    }

    pub async fn list_clients(&self) -> Result<Vec<ClientRecord>, DomainError> {
        Ok(self.store.list_clients().await?)
    }

    pub async fn remove_client(&self, client_id: &str) -> Result<(), DomainError> {
        if self.store.remove_client(client_id).await? {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("client {client_id:?}")))
        }
    }
}

fn conflict_as(e: StoreError, what: String) -> DomainError {
    match e {
        StoreError::Conflict => DomainError::AlreadyExists(what),
        other => DomainError::Store(other),
    }
}

fn validate_password(password: &SecretString) -> Result<(), DomainError> {
    let len = password.expose_secret().chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(DomainError::InvalidInput(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(DomainError::InvalidInput(format!(
            "password must have at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
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
