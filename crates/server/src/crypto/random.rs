//! Where secrets' randomness comes from, handed to whoever draws it, so that the domain never
//! reaches for a generator of its own and a test can say where its tokens come from.

use rand::RngCore;

/// A source of random bytes fit for secrets.
pub trait Randomness: Send + Sync + 'static {
    /// Fills `bytes` with random bytes; never fails (an entropy failure aborts).
    fn fill(&self, bytes: &mut [u8]);
}

/// The operating system's generator: what the server uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandomness;

impl Randomness for OsRandomness {
    fn fill(&self, bytes: &mut [u8]) {
        rand::rngs::OsRng.fill_bytes(bytes);
    }
}

/// Lets `rand`'s samplers (alphanumerics, ranges) draw from a [`Randomness`].
pub(super) struct Draw<'a>(pub &'a dyn Randomness);

impl RngCore for Draw<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

/// `len` random bytes as lowercase hex: identifiers that need to be unique, not secret.
pub fn random_hex(rng: &dyn Randomness, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    hex::encode(bytes)
}
