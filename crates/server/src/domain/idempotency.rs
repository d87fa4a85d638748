//! Idempotent resets: a repeated request with the same key gets the first answer back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::DomainError;

/// Longest `Idempotency-Key` accepted (a UUID is 36).
pub const MAX_KEY_LEN: usize = 255;

/// Printable ASCII, 1 to 255 characters.
pub fn validate_key(key: &str) -> Result<(), DomainError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::IdempotencyKeyInvalid);
    }
    Ok(())
}

/// Keys whose first request is running in this process. Held in memory only, so a crash can
/// never leave a key stuck "in progress".
#[derive(Debug, Default, Clone)]
pub struct InFlight {
    keys: Arc<Mutex<HashSet<(String, String)>>>,
}

/// Releases its key when dropped, however the request ends.
pub struct Claim {
    keys: Arc<Mutex<HashSet<(String, String)>>>,
    key: (String, String),
}

impl InFlight {
    /// Claims (user, key), or `None` when a request with them is already running.
    pub fn claim(&self, username: &str, key: &str) -> Option<Claim> {
        let entry = (username.to_owned(), key.to_owned());
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.insert(entry.clone()).then(|| Claim {
            keys: self.keys.clone(),
            key: entry,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_released_on_drop() {
        let in_flight = InFlight::default();
        let claim = in_flight.claim("alice", "k").unwrap();
        assert!(in_flight.claim("alice", "k").is_none());
        assert!(in_flight.claim("bob", "k").is_some());
        drop(claim);
        assert!(in_flight.claim("alice", "k").is_some());
    }

    #[test]
    fn keys() {
        assert!(validate_key("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"k".repeat(256)).is_err());
    }
}
