//! Everything that touches secret material: hashing, token generation, digests.

mod api_token;
mod generate;
mod idempotency;
mod password;
mod random;
mod session_token;

pub use api_token::{derive_api_token, new_api_token_seed};
pub use generate::{generate_client_secret, generate_password};
pub use idempotency::IdempotencySeal;
pub use password::{Admission, Argon2Settings, CryptoError, PasswordHasher};
pub use random::{OsRandomness, Randomness, random_hex};
pub use session_token::{SessionToken, SessionTokenError, TokenDigest, digest};
