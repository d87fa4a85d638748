//! Sealing the stored answer of an idempotent reset.
//!
//! A replayed reset must return the very password the first attempt generated, so the answer
//! has to be kept; but a database reader must not learn it. The key is derived from the raw
//! session token (the database holds only its SHA-256) and the idempotency key, so only the
//! client that made the request can have the answer opened again. The request fingerprint is
//! keyed the same way, so it is no offline oracle for the old password.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};

use super::SessionToken;

const NONCE_LEN: usize = 12;

/// Keys for one (session, user, idempotency key).
pub struct IdempotencySeal {
    key: [u8; 32],
}

impl IdempotencySeal {
    /// Keys for one (session, user, idempotency key): a seal made for one of them opens for no other.
    pub fn new(session: &SessionToken, username: &str, idempotency_key: &str) -> Self {
        let mut mac = super::hmac(session.expose().as_bytes());
        mac.update(b"m2m-session idempotency v1\0");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(idempotency_key.as_bytes());
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// Identifies the request body; equal only for the same session, user, key and body.
    pub fn fingerprint(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = super::hmac(&self.key);
        mac.update(b"fingerprint\0");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Encrypts an answer for the idempotency record, under a fresh nonce from `rng`.
    pub fn seal(&self, rng: &dyn super::Randomness, answer: &SecretString) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let mut sealed = nonce.to_vec();
        // Encrypting a short in-memory buffer with a valid key and nonce cannot fail.
        sealed.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), answer.expose_secret().as_bytes())
                .unwrap_or_default(),
        );
        sealed
    }

    /// The answer, or `None` if it was sealed under other keys or tampered with.
    pub fn open(&self, sealed: &[u8]) -> Option<SecretString> {
        if sealed.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key));
        let plain = cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok().map(SecretString::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_session_and_key_open_the_answer() {
        let session = SessionToken::generate(&crate::crypto::OsRandomness);
        let seal = IdempotencySeal::new(&session, "alice", "k1");
        let sealed = seal.seal(
            &crate::crypto::OsRandomness,
            &SecretString::from("NewPassw0rd"),
        );
        assert!(!sealed.windows(11).any(|w| w == b"NewPassw0rd"));
        assert_eq!(seal.open(&sealed).unwrap().expose_secret(), "NewPassw0rd");
        let other_key = IdempotencySeal::new(&session, "alice", "k2");
        assert!(other_key.open(&sealed).is_none());
        let other_session = IdempotencySeal::new(
            &SessionToken::generate(&crate::crypto::OsRandomness),
            "alice",
            "k1",
        );
        assert!(other_session.open(&sealed).is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(seal.open(&tampered).is_none());
        assert_eq!(seal.fingerprint(b"body"), seal.fingerprint(b"body"));
        assert_ne!(seal.fingerprint(b"body"), seal.fingerprint(b"other"));
        assert_ne!(
            seal.fingerprint(b"body"),
            other_session.fingerprint(b"body")
        );
    }
}
