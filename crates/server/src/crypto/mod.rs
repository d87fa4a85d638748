//! Everything that touches secret material: hashing, token generation, digests.

mod api_token;
mod attempt_digest;
mod generate;
mod idempotency;
mod password;
mod random;
mod session_token;

pub use api_token::{derive_api_token, new_api_token_seed};
pub use attempt_digest::AttemptDigest;
pub use generate::{generate_client_secret, generate_password};
pub use idempotency::IdempotencySeal;
pub use password::{Admission, Argon2Settings, CryptoError, PasswordHasher, Verification};
pub use random::{OsRandomness, Randomness, random_hex};
pub use session_token::{SessionToken, SessionTokenError, TokenDigest, digest};

/// HMAC-SHA-256 under `key`; HMAC takes a key of any length, so this cannot fail.
fn hmac(key: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"))
}
