use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// More hashes are waiting than the queue allows: shed, rather than queue without limit.
    #[error("too many password hashes waiting")]
    Overloaded,
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
    settings: Argon2Settings,
    permits: Arc<Semaphore>,
    /// Hashes waiting for a worker, and how many may wait.
    waiting: Arc<AtomicU64>,
    queue_limit: u64,
    dummy_hash: Arc<str>,
    verifications: Arc<AtomicU64>,
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
    /// Builds the hasher and its dummy hash; `workers` bounds concurrent hashes (0 = CPU count)
    /// and up to 16 per worker may wait for one.
    pub fn new(settings: Argon2Settings, workers: usize) -> Result<Self, CryptoError> {
        Self::with_queue(settings, workers, 0)
    }

    /// Like [`Self::new`] with a queue of `queue_limit` waiting hashes (0 = 16 per worker).
    /// Memory stays bounded by `workers × memory_kib` plus small per-waiter state.
    pub fn with_queue(
        settings: Argon2Settings,
        workers: usize,
        queue_limit: usize,
    ) -> Result<Self, CryptoError> {
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
        let queue_limit = if queue_limit == 0 {
            workers * 16
        } else {
            queue_limit
        };
        Ok(Self {
            argon,
            settings,
            permits: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(AtomicU64::new(0)),
            queue_limit: u64::try_from(queue_limit).unwrap_or(u64::MAX),
            dummy_hash: dummy_hash.into(),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Password verifications started so far (dummy ones included): what an attacker got.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether a stored hash was made with other than the configured algorithm or parameters.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        PasswordHash::new(stored).map_or(true, |h| {
            h.algorithm != argon2::ARGON2ID_IDENT
                || h.version != Some(u32::from(Version::V0x13))
                || Params::try_from(&h).ok().is_none_or(|p| {
                    (p.m_cost(), p.t_cost(), p.p_cost())
                        != (
                            self.settings.memory_kib,
                            self.settings.iterations,
                            self.settings.parallelism,
                        )
                })
        })
    }

    /// A stored hash whose cost exceeds this is refused unverified: a planted hash with huge
    /// parameters must not be able to burn the CPU or exhaust memory.
    fn within_cap(&self, hash: &PasswordHash<'_>) -> bool {
        let Ok(params) = Params::try_from(hash) else {
            return false;
        };
        let s = self.settings;
        params.m_cost() <= s.memory_kib.saturating_mul(4).max(262_144)
            && params.t_cost() <= s.iterations.saturating_mul(4).max(10)
            && params.p_cost() <= s.parallelism.saturating_mul(4).max(8)
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
        let usable = stored.filter(|h| {
            let ok = PasswordHash::new(h).is_ok_and(|parsed| self.within_cap(&parsed));
            if !ok {
                tracing::warn!("stored password hash unparsable or over the cost cap; refused");
            }
            ok
        });
        let known = usable.is_some();
        // Unknown users and refused hashes cost a verification like any other.
        let hash: String = usable.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        self.verifications.fetch_add(1, Ordering::Relaxed);
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
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                // All workers busy: wait in line, unless the line is full.
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(CryptoError::Overloaded);
                }
                let permit = self.permits.acquire().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                permit.map_err(|_| CryptoError::Worker)?
            }
        };
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

    #[tokio::test]
    async fn knows_when_to_rehash_and_refuses_planted_costs() {
        let hasher = PasswordHasher::new(Argon2Settings::MINIMUM, 1).unwrap();
        let pw = SecretString::from("correct horse");
        let current = hasher.hash(&pw).await.unwrap();
        assert!(!hasher.needs_rehash(&current));
        let other = PasswordHasher::new(
            Argon2Settings {
                memory_kib: 16,
                ..Argon2Settings::MINIMUM
            },
            1,
        )
        .unwrap();
        let weaker_or_other = other.hash(&pw).await.unwrap();
        assert!(hasher.needs_rehash(&weaker_or_other));
        assert!(hasher.verify(&pw, Some(&weaker_or_other)).await.unwrap());
        assert!(hasher.needs_rehash("not a hash"));
        // m = 4 GiB: refused without being computed (it would take seconds and 4 GiB).
        let planted =
            "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        let before = hasher.verifications();
        assert!(!hasher.verify(&pw, Some(planted)).await.unwrap());
        assert_eq!(hasher.verifications(), before + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn excess_hashes_are_shed_not_queued_without_limit() {
        let hasher = PasswordHasher::with_queue(Argon2Settings::default(), 1, 2).unwrap();
        let pw = SecretString::from("correct horse");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (hasher, pw) = (hasher.clone(), pw.clone());
            tasks.push(tokio::spawn(async move { hasher.hash(&pw).await }));
        }
        let mut done = 0;
        let mut shed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => done += 1,
                Err(CryptoError::Overloaded) => shed += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // One running and two waiting at most when the burst arrives; the rest are shed.
        assert!(done >= 3, "{done} done");
        assert!(shed >= 1, "nothing was shed");
        assert_eq!(done + shed, 12);
        // Once the burst is over the hasher serves again.
        assert!(hasher.hash(&pw).await.is_ok());
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
