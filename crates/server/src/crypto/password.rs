use std::sync::Arc;

use argon2::password_hash::{PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Cost parameters of argon2id; the defaults are OWASP's recommended minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Settings {
    /// The cheapest parameters argon2 accepts; for tests only.
    pub const MINIMUM: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("hashing worker stopped unexpectedly")]
    Worker,
}

/// Hashes and verifies passwords with argon2id, off the async runtime.
///
/// Argon2 is deliberately slow and memory-hungry; running it on the runtime's threads would stall
/// every other request. A semaphore sized to the CPU count bounds the memory in use at once.
/// Unknown users are verified against a dummy hash made with the live parameters so that a wrong
/// username costs exactly what a wrong password costs.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon.params())
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Builds the hasher and its dummy hash; `workers` bounds concurrent hashes (0 = CPU count).
    pub fn new(settings: Argon2Settings, workers: usize) -> Result<Self, CryptoError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| CryptoError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            workers
        };
        let dummy_hash = hash_blocking(&argon, "m2m-session dummy password")?;
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(workers)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub async fn hash(&self, password: &SecretString) -> Result<String, CryptoError> {
        let argon = self.argon.clone();
        let password = password.clone();
        self.run(move || hash_blocking(&argon, password.expose_secret()))
            .await?
    }

    /// Verifies a password against a stored PHC hash, or against the dummy hash when `None`
    /// (unknown user), in which case the answer is always `false`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, CryptoError> {
        let argon = self.argon.clone();
        let password = password.clone();
        let known = stored.is_some();
        let hash: String = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = self
            .run(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    argon
                        .verify_password(password.expose_secret().as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CryptoError::Worker)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| CryptoError::Worker)
    }
}

fn hash_blocking(argon: &Argon2<'_>, password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CryptoError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let hasher = PasswordHasher::new(Argon2Settings::MINIMUM, 2).unwrap();
        let pw = SecretString::from("correct horse");
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(!hash.contains("correct horse"));
        assert!(hasher.verify(&pw, Some(&hash)).await.unwrap());
        assert!(
            !hasher
                .verify(&SecretString::from("wrong"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!hasher.verify(&pw, Some("not a phc string")).await.unwrap());
    }

    #[test]
    fn rejects_impossible_parameters() {
        let bad = Argon2Settings {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert!(matches!(
            PasswordHasher::new(bad, 1),
            Err(CryptoError::Params(_))
        ));
    }
}
