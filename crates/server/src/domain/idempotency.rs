//! Idempotent resets: a repeated request with the same key gets the first answer back. The
//! guard against a concurrent repeat is the store's (`Store::claim_idempotency`).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"k".repeat(256)).is_err());
    }
}
