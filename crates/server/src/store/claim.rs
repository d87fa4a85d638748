//! The in-progress guard of an idempotent reset, held while the first request with a key runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

/// Something a backend holds for as long as a claim lives: a set entry in memory, or an open
/// transaction holding an advisory lock. Dropping it releases too (a cancelled request), only
/// less promptly than [`IdempotencyClaim::release`].
#[async_trait]
pub(super) trait Held: Send {
    async fn release(self: Box<Self>);
}

/// (username, key) held by one request; see [`super::IdempotencyStore::claim_idempotency`].
pub struct IdempotencyClaim(Box<dyn Held>);

impl IdempotencyClaim {
    pub(super) fn new(held: impl Held + 'static) -> Self {
        Self(Box::new(held))
    }

    /// Lets the next request with the key in, at once: call it after the reset's own
    /// transaction has committed, so that the next one finds its record.
    pub async fn release(self) {
        self.0.release().await;
    }
}

type Keys = Arc<Mutex<HashSet<(String, String)>>>;

/// Claims held in this process: enough where one process serves the database (SQLite).
#[derive(Debug, Default, Clone)]
pub(super) struct InMemoryClaims {
    keys: Keys,
}

struct InMemoryClaim {
    keys: Keys,
    key: (String, String),
}

impl InMemoryClaims {
    pub(super) fn claim(&self, username: &str, key: &str) -> Option<IdempotencyClaim> {
        let entry = (username.to_owned(), key.to_owned());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.insert(entry.clone()).then(|| {
            IdempotencyClaim::new(InMemoryClaim {
                keys: self.keys.clone(),
                key: entry,
            })
        })
    }
}

#[async_trait]
impl Held for InMemoryClaim {
    async fn release(self: Box<Self>) {}
}

impl Drop for InMemoryClaim {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}
