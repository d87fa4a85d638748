//! Idempotent resets: a repeated request with the same key gets the first answer back.
//!
//! A key's life, per user, as a repeat of it finds it at `now`:
//!
//! ```text
//!   new ──claim──▶ in progress ──reset commits──▶ answered ──replay window──▶ expired
//!    ▲             (409 to repeats; the claim      (same answer      (409 Expired;   │
//!    │              is the store's, never a row)    to the same       answer erased) │
//!    │                                              request)                         │
//!    └───────────────────────────── record lifetime: forgotten ◀─────────────────────┘
//! ```
//!
//! The decision for a stored record is [`judge`], pure; the guard against a concurrent repeat
//! is the store's (`IdempotencyStore::claim_idempotency`), held across nodes.

use std::time::Duration;

use subtle::ConstantTimeEq;

use super::DomainError;
use crate::store::IdempotencyRecord;
use crate::time::Timestamp;

/// Longest `Idempotency-Key` accepted (a UUID is 36).
pub const MAX_KEY_LEN: usize = 255;

/// Printable ASCII, 1 to 255 characters.
pub fn validate_key(key: &str) -> Result<(), DomainError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::IdempotencyKeyInvalid);
    }
    Ok(())
}

/// What a repeat of a key finds in its stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// Past the record's lifetime: the key may be used afresh.
    Forgotten,
    /// The same key with another session, user or body.
    Mismatch,
    /// The same request, past the replay window: the answer was erased.
    Expired,
    /// The same request within the window: its sealed answer.
    Answer(Vec<u8>),
}

/// Judges a stored record for a repeat whose request has `fingerprint`, at `now`. The
/// fingerprints are compared in constant time: the record must not become an oracle for the
/// old password the body carries.
pub fn judge(
    record: &IdempotencyRecord,
    fingerprint: &[u8],
    now: Timestamp,
    replay_window: Duration,
    record_ttl: Duration,
) -> Repeat {
    // Strictly after, as the purge deletes only strictly older records.
    if now > record.created_at.plus(record_ttl) {
        return Repeat::Forgotten;
    }
    if !bool::from(record.fingerprint.as_slice().ct_eq(fingerprint)) {
        return Repeat::Mismatch;
    }
    let in_window = now < record.created_at.plus(replay_window);
    match &record.answer {
        Some(sealed) if in_window => Repeat::Answer(sealed.clone()),
        _ => Repeat::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);
    const WINDOW: Duration = Duration::from_secs(60);
    const TTL: Duration = Duration::from_secs(3600);

    fn record(answer: Option<Vec<u8>>) -> IdempotencyRecord {
        IdempotencyRecord {
            username: "u".into(),
            key: "k".into(),
            fingerprint: b"fp".to_vec(),
            answer,
            created_at: T0,
        }
    }

    #[test]
    fn a_key_is_answered_then_expired_then_forgotten() {
        let r = record(Some(b"sealed".to_vec()));
        let at = |secs| T0.plus(Duration::from_secs(secs));
        assert_eq!(
            judge(&r, b"fp", at(59), WINDOW, TTL),
            Repeat::Answer(b"sealed".to_vec())
        );
        assert_eq!(judge(&r, b"fp", at(60), WINDOW, TTL), Repeat::Expired);
        assert_eq!(judge(&r, b"fp", at(3600), WINDOW, TTL), Repeat::Expired);
        assert_eq!(judge(&r, b"fp", at(3601), WINDOW, TTL), Repeat::Forgotten);
        // An answer already erased by the purge reads as expired within the window too.
        assert_eq!(
            judge(&record(None), b"fp", at(1), WINDOW, TTL),
            Repeat::Expired
        );
    }

    #[test]
    fn another_request_with_the_key_is_a_mismatch_until_forgotten() {
        let r = record(Some(b"sealed".to_vec()));
        assert_eq!(judge(&r, b"other", T0, WINDOW, TTL), Repeat::Mismatch);
        let later = T0.plus(TTL).plus(Duration::from_millis(1));
        assert_eq!(judge(&r, b"other", later, WINDOW, TTL), Repeat::Forgotten);
    }

    #[test]
    fn keys() {
        assert!(validate_key("2f1e7c4e-0b51-4a4e-9f39-9a4c7d0f1b2a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"k".repeat(256)).is_err());
    }
}
