use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Mutex, PoisonError};

use argon2::password_hash::{
    self, Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::AttemptDigest;

/// Cost parameters of argon2id; the defaults are OWASP's recommended minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory per hash, in KiB: the cost that makes guessing expensive on GPUs.
    pub memory_kib: u32,
    /// Passes over that memory.
    pub iterations: u32,
    /// Lanes per hash.
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

/// Why hashing or verifying a password failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The argon2 parameters were refused.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing itself failed (an unusable stored hash, for one).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The worker thread that computes hashes went away.
    #[error("hashing worker stopped unexpectedly")]
    Worker,
    /// More hashes are waiting than the queue allows: shed, rather than queue without limit.
    #[error("too many password hashes waiting")]
    Overloaded,
}

/// Hashes and verifies passwords with argon2id, off the async runtime.
///
/// Argon2 is deliberately slow and memory-hungry; running it on the runtime's threads would stall
/// every other request. A semaphore sized to the CPU count bounds the hashes running at once, and
/// each running hash borrows one of as many reused memory buffers (`MemoryPool`).
/// Unknown users are verified against a dummy hash made with the live parameters so that a wrong
/// username costs exactly what a wrong password costs.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
    settings: Argon2Settings,
    permits: Arc<Semaphore>,
    /// Hashes admitted (running or waiting), and how many may be.
    admitted: Arc<AtomicU64>,
    admission_limit: u64,
    memory: Arc<MemoryPool>,
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

/// A place among the hashes running or waiting, taken before any other work of a request so
/// that excess requests are shed at once, before they touch the database.
#[derive(Debug)]
pub struct Admission {
    admitted: Arc<AtomicU64>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Argon2 working memory, one buffer per worker, reused from hash to hash.
///
/// Allocating and faulting in `m` KiB for every hash cost throughput, and the freed buffers
/// stayed in malloc's per-thread arenas: peak memory under a burst of logins grew with the
/// number of blocking threads (406 MiB measured with 2 workers), not with the workers.
#[derive(Debug)]
struct MemoryPool {
    blocks: usize,
    free: Mutex<Vec<Vec<Block>>>,
}

impl MemoryPool {
    /// Runs `job` with a buffer of at least `blocks` blocks: a pooled one when the live
    /// parameters suffice, else (a stored hash with other parameters) a temporary one.
    fn with_buffer<T>(&self, blocks: usize, job: impl FnOnce(&mut [Block]) -> T) -> T {
        if blocks > self.blocks {
            return job(&mut vec![Block::default(); blocks]);
        }
        let pooled = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut buffer = pooled.unwrap_or_else(|| vec![Block::default(); self.blocks]);
        let result = job(&mut buffer);
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer);
        result
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
        let memory = Arc::new(MemoryPool {
            blocks: params.block_count(),
            free: Mutex::default(),
        });
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            workers
        };
        let dummy_hash = hash_with(&argon, &memory, "m2m-session dummy password")?;
        let queue_limit = if queue_limit == 0 {
            workers * 16
        } else {
            queue_limit
        };
        Ok(Self {
            argon,
            settings,
            permits: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(AtomicU64::new(0)),
            admission_limit: u64::try_from(workers + queue_limit).unwrap_or(u64::MAX),
            memory,
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

    /// Takes a place among the running and waiting hashes, or fails with
    /// [`CryptoError::Overloaded`] when all are taken.
    pub fn admit(&self) -> Result<Admission, CryptoError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.admission_limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(CryptoError::Overloaded);
        }
        Ok(Admission {
            admitted: self.admitted.clone(),
        })
    }

    /// Hashes a password into a PHC string with a fresh random salt.
    pub async fn hash(&self, password: &SecretString) -> Result<String, CryptoError> {
        let admission = self.admit()?;
        let (argon, memory, password) = (self.argon.clone(), self.memory.clone(), password.clone());
        self.run(&admission, move || {
            hash_with(&argon, &memory, password.expose_secret())
        })
        .await?
    }

    /// Verifies a password against a stored PHC hash, or against the dummy hash when `None`
    /// (an unknown OAuth client), in which case the answer is always `false`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, CryptoError> {
        let admission = self.admit()?;
        let usable = self.usable(stored);
        let known = usable.is_some();
        // Unknown clients and refused hashes cost a verification like any other.
        let hash: String = usable.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (memory, password) = (self.memory.clone(), password.clone());
        let matched = self
            .run(&admission, move || {
                verify_with(&memory, password.expose_secret(), &hash)
            })
            .await?;
        Ok(known && matched)
    }

    /// A login's or reset's verification: whether `password` is the user's, and the
    /// [`AttemptDigest`] of what was presented, from the same single argon2 computation. An
    /// unknown user (`stored` is `None`, or refused) is computed with the live parameters and a
    /// salt derived from the username, so the same wrong password for the same unknown name
    /// gives the same digest on every node and after restarts, as it does for a real user.
    pub async fn verify_attempt(
        &self,
        admission: &Admission,
        username: &str,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, CryptoError> {
        let stored = self.usable(stored).map(str::to_owned);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let (argon, memory) = (self.argon.clone(), self.memory.clone());
        let (password, username) = (password.clone(), username.to_owned());
        self.run(admission, move || {
            attempt_with(
                &argon,
                &memory,
                password.expose_secret(),
                stored.as_deref(),
                &username,
            )
        })
        .await?
    }

    /// Hashes `new_password` with a fresh salt and, under the same salt, derives the digest
    /// `old_password` will have when a login presents it against the new hash: how a reset
    /// lets the password it replaced be recognised later without a second hash per login.
    /// Costs two argon2 computations, in one place among the hashes.
    pub async fn hash_replacing(
        &self,
        new_password: &SecretString,
        old_password: &SecretString,
        username: &str,
    ) -> Result<(String, AttemptDigest), CryptoError> {
        let admission = self.admit()?;
        let (argon, memory) = (self.argon.clone(), self.memory.clone());
        let (new, old, username) = (
            new_password.clone(),
            old_password.clone(),
            username.to_owned(),
        );
        self.run(&admission, move || {
            let salt = SaltString::generate(&mut OsRng);
            let hash = hash_with_salt(&argon, &memory, new.expose_secret(), &salt)?;
            let old = compute(
                &argon,
                &memory,
                old.expose_secret().as_bytes(),
                salt.as_salt(),
            )
            .map_err(|e| CryptoError::Hash(e.to_string()))?;
            Ok((hash, AttemptDigest::derive(old.as_bytes(), &username)))
        })
        .await?
    }

    /// The stored hash if it can be verified: a parsable PHC string within the cost cap.
    fn usable<'s>(&self, stored: Option<&'s str>) -> Option<&'s str> {
        stored.filter(|h| {
            let ok = PasswordHash::new(h).is_ok_and(|parsed| self.within_cap(&parsed));
            if !ok {
                tracing::warn!("stored password hash unparsable or over the cost cap; refused");
            }
            ok
        })
    }

    /// Runs `job` on a blocking thread once one of the worker permits is free.
    async fn run<T: Send + 'static>(
        &self,
        _admission: &Admission,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CryptoError> {
        let waiting = std::time::Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CryptoError::Worker)?;
        metrics::histogram!(crate::telemetry::ARGON2_QUEUE_WAIT)
            .record(waiting.elapsed().as_secs_f64());
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| CryptoError::Worker)
    }
}

/// Argon2 of `password` with the parameters of `argon`, in pooled memory; the same output as
/// `argon2`'s own `hash_password` (checked in the tests).
fn compute(
    argon: &Argon2<'_>,
    memory: &MemoryPool,
    password: &[u8],
    salt: Salt<'_>,
) -> password_hash::Result<Output> {
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let params = argon.params();
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    memory.with_buffer(params.block_count(), |blocks| {
        Output::init_with(len, |out| {
            argon
                .hash_password_into_with_memory(password, salt, out, blocks)
                .map_err(Into::into)
        })
    })
}

/// A PHC string for `password` with a fresh salt; `argon` is always the live argon2id.
fn hash_with(
    argon: &Argon2<'_>,
    memory: &MemoryPool,
    password: &str,
) -> Result<String, CryptoError> {
    hash_with_salt(argon, memory, password, &SaltString::generate(&mut OsRng))
}

/// A PHC string for `password` with `salt`.
fn hash_with_salt(
    argon: &Argon2<'_>,
    memory: &MemoryPool,
    password: &str,
    salt: &SaltString,
) -> Result<String, CryptoError> {
    let hash = || {
        let output = compute(argon, memory, password.as_bytes(), salt.as_salt())?;
        Ok::<_, password_hash::Error>(
            PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(argon.params())?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            }
            .to_string(),
        )
    };
    hash().map_err(|e| CryptoError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `stored`, computed with the stored parameters.
fn verify_with(memory: &MemoryPool, password: &str, stored: &str) -> bool {
    check(memory, password, stored).is_ok_and(|(matched, _)| matched)
}

/// Whether `password` matches `stored`, and the argon2 output it gave.
fn check(
    memory: &MemoryPool,
    password: &str,
    stored: &str,
) -> password_hash::Result<(bool, Output)> {
    let parsed = PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(password_hash::Error::PhcStringField);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let argon = Argon2::new(algorithm, version, Params::try_from(&parsed)?);
    let computed = compute(&argon, memory, password.as_bytes(), salt)?;
    // `Output` compares in constant time.
    Ok((computed == expected, computed))
}

/// What a login's or reset's password check found; see [`PasswordHasher::verify_attempt`].
#[derive(Debug, Clone)]
pub struct Verification {
    /// The password is the user's.
    pub matched: bool,
    /// What the lockout remembers of the presented password.
    pub digest: AttemptDigest,
}

/// [`PasswordHasher::verify_attempt`]'s computation: against `stored` when there is one, else
/// (an unknown user) against a salt derived from the username with the live parameters.
fn attempt_with(
    argon: &Argon2<'_>,
    memory: &MemoryPool,
    password: &str,
    stored: Option<&str>,
    username: &str,
) -> Result<Verification, CryptoError> {
    let checked = stored.and_then(|s| check(memory, password, s).ok());
    let (matched, output) = match checked {
        Some(found) => found,
        None => {
            let salt_bytes = Sha256::new()
                .chain_update(b"m2m-session unknown user salt\0")
                .chain_update(username.as_bytes())
                .finalize();
            let salt = SaltString::encode_b64(&salt_bytes[..16])
                .map_err(|e| CryptoError::Hash(e.to_string()))?;
            let output = compute(argon, memory, password.as_bytes(), salt.as_salt())
                .map_err(|e| CryptoError::Hash(e.to_string()))?;
            (false, output)
        }
    };
    Ok(Verification {
        matched,
        digest: AttemptDigest::derive(output.as_bytes(), username),
    })
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
    async fn pooled_memory_gives_the_same_hashes_as_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let settings = Argon2Settings {
            memory_kib: 64,
            iterations: 2,
            parallelism: 2,
        };
        let hasher = PasswordHasher::new(settings, 2).unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 2, 2, None).unwrap(),
        );
        let pw = SecretString::from("correct horse");
        // Ours, checked by the crate's own verifier.
        let ours = hasher.hash(&pw).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(
            reference
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
        // The crate's, with the same and with other parameters and algorithms, checked by ours
        // through the pool (smaller and larger than its buffers).
        for (algorithm, m, t, p) in [
            (Algorithm::Argon2id, 64, 2, 2),
            (Algorithm::Argon2id, 8, 1, 1),
            (Algorithm::Argon2id, 256, 3, 1),
            (Algorithm::Argon2i, 64, 2, 1),
        ] {
            let other = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(m, t, p, None).unwrap(),
            );
            let theirs = other
                .hash_password(b"correct horse", &SaltString::generate(&mut OsRng))
                .unwrap()
                .to_string();
            assert!(hasher.verify(&pw, Some(&theirs)).await.unwrap(), "{theirs}");
            let wrong = SecretString::from("correct horsf");
            assert!(!hasher.verify(&wrong, Some(&theirs)).await.unwrap());
        }
        // Only the live parameters' buffers are kept, one per worker at most.
        assert!(hasher.memory.free.lock().unwrap().len() <= 2);
    }

    #[tokio::test]
    async fn an_attempt_digest_tells_the_same_password_and_the_one_a_reset_replaced() {
        let hasher = PasswordHasher::new(Argon2Settings::MINIMUM, 1).unwrap();
        let (old, new) = (SecretString::from("old one"), SecretString::from("new one"));
        let attempt = |pw: &str, stored: Option<String>, user: &'static str| {
            let hasher = hasher.clone();
            let pw = SecretString::from(pw.to_owned());
            async move {
                let admission = hasher.admit().unwrap();
                hasher
                    .verify_attempt(&admission, user, &pw, stored.as_deref())
                    .await
                    .unwrap()
            }
        };
        let (hash, previous) = hasher.hash_replacing(&new, &old, "alice").await.unwrap();
        assert!(hasher.verify(&new, Some(&hash)).await.unwrap());
        let right = attempt("new one", Some(hash.clone()), "alice").await;
        assert!(right.matched);
        // The replaced password, presented against the new hash, gives the remembered digest.
        let stale = attempt("old one", Some(hash.clone()), "alice").await;
        assert!(!stale.matched);
        assert!(stale.digest.matches(&previous));
        let wrong = attempt("wrong", Some(hash.clone()), "alice").await;
        assert!(!wrong.digest.matches(&previous));
        assert!(
            wrong
                .digest
                .matches(&attempt("wrong", Some(hash), "alice").await.digest)
        );
        // Unknown names: stable per name and password, apart between names, never a match.
        let ghost = attempt("wrong", None, "ghost").await;
        assert!(!ghost.matched);
        assert!(
            ghost
                .digest
                .matches(&attempt("wrong", None, "ghost").await.digest)
        );
        assert!(
            !ghost
                .digest
                .matches(&attempt("wrong", None, "phantom").await.digest)
        );
        assert!(
            !ghost
                .digest
                .matches(&attempt("other", None, "ghost").await.digest)
        );
        // One argon2 computation per attempt, as for `verify`.
        let before = hasher.verifications();
        attempt("wrong", None, "ghost").await;
        assert_eq!(hasher.verifications(), before + 1);
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
        assert!((3..12).contains(&done), "{done} done");
        assert!(shed >= 1, "nothing was shed");
        assert_eq!(done + shed, 12);
        // Once the burst is over the hasher serves again.
        assert!(hasher.hash(&pw).await.is_ok());
    }

    #[test]
    fn admissions_are_counted_until_dropped() {
        let hasher = PasswordHasher::with_queue(Argon2Settings::MINIMUM, 1, 2).unwrap();
        let held: Vec<_> = (0..3).map(|_| hasher.admit().unwrap()).collect();
        assert!(matches!(hasher.admit(), Err(CryptoError::Overloaded)));
        drop(held);
        assert!(hasher.admit().is_ok());
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
