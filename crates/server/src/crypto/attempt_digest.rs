//! What the lockout remembers of a wrong password: enough to tell the same password again,
//! and nothing an attacker could guess faster than the stored password hash.
//!
//! The digest is an HMAC keyed with the argon2 output that the verification computed anyway
//! (the presented password under the user's salt and cost), over the username. Testing a guess
//! against it costs one argon2 computation, as against the stored hash; the username in the
//! message keeps unknown names, which share no stored salt, from sharing digests.

use std::fmt;

use hmac::Mac;
use subtle::ConstantTimeEq;

/// Bytes kept: 128 bits make a false "same password" practically impossible.
const LEN: usize = 16;

/// A keyed digest of one presented password for one username (see the module doc).
#[derive(Clone, Copy)]
pub struct AttemptDigest([u8; LEN]);

/// In constant time, as every comparison of digests.
impl PartialEq for AttemptDigest {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl Eq for AttemptDigest {}

impl AttemptDigest {
    /// The digest of a password whose argon2 output (with the user's salt) is `argon2_output`.
    pub fn derive(argon2_output: &[u8], username: &str) -> Self {
        let mut mac = super::hmac(argon2_output);
        mac.update(b"m2m-session attempt digest v1\0");
        mac.update(username.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; LEN];
        out.copy_from_slice(&full[..LEN]);
        Self(out)
    }

    /// As stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// From stored bytes; `None` if they are not a digest.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Whether both are the same password, compared in constant time.
    pub fn matches(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Whether it is among `remembered`; every entry is compared, in constant time.
    pub fn is_among(&self, remembered: &[Self]) -> bool {
        remembered
            .iter()
            .fold(false, |found, d| found | self.matches(d))
    }
}

impl fmt::Debug for AttemptDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttemptDigest(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_output_and_name_give_the_same_digest_and_nothing_else_does() {
        let a = AttemptDigest::derive(b"argon2 output one", "alice");
        assert!(a.matches(&AttemptDigest::derive(b"argon2 output one", "alice")));
        assert!(!a.matches(&AttemptDigest::derive(b"argon2 output two", "alice")));
        assert!(!a.matches(&AttemptDigest::derive(b"argon2 output one", "bob")));
        let stored = AttemptDigest::from_slice(a.as_bytes()).unwrap();
        assert!(stored.is_among(&[AttemptDigest::derive(b"x", "alice"), a]));
        assert!(!stored.is_among(&[]));
        assert_eq!(format!("{a:?}"), "AttemptDigest(..)");
    }
}
