//! Simulator mode (`serve --simulator`), for teams testing ThingSpace integrations offline, like
//! the platform's API console simulator: any OAuth client id and any username are accepted the
//! first time they are seen, with whatever secret or password comes with them, and are created
//! on the spot. From then on everything is the real service: that secret and that password,
//! expiry, logout, reset, lockout and every error code.

use secrecy::SecretString;

use super::{DomainError, SessionService};
use crate::store::{ClientRecord, StoreError, UserRecord};
use crate::time::Timestamp;

impl SessionService {
    /// In simulator mode, creates an unknown client with the presented secret.
    pub(super) async fn simulate_client(
        &self,
        client_id: &str,
        secret: &SecretString,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        if !self.policy.simulator || self.store.find_client(client_id).await?.is_some() {
            return Ok(());
        }
        let record = ClientRecord {
            client_id: client_id.to_owned(),
            secret_hash: self.hasher.hash(secret).await?,
            scopes: Vec::new(),
            created_at: now,
        };
        tracing::info!(client_id, "simulator: OAuth client created on first use");
        ignore_conflict(self.store.insert_client(&record).await)
    }

    /// In simulator mode, creates an unknown user with the presented password.
    pub(super) async fn simulate_user(
        &self,
        username: &str,
        password: &SecretString,
        now: Timestamp,
    ) -> Result<(), DomainError> {
        if !self.policy.simulator
            || username.is_empty()
            || self.store.find_user(username).await?.is_some()
        {
            return Ok(());
        }
        let record = UserRecord {
            username: username.to_owned(),
            account: None,
            password_hash: self.hasher.hash(password).await?,
            created_at: now,
        };
        tracing::info!(username, "simulator: user created on first login");
        ignore_conflict(self.store.insert_user(&record).await)
    }
}

/// A parallel first use created it already: that one wins, as a real account would.
fn ignore_conflict(result: Result<(), StoreError>) -> Result<(), DomainError> {
    match result {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
