use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a token: the only form in which any token is stored or looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The 32 bytes of the digest, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A digest read back from the store; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// First 8 hex digits, enough for an operator to tell sessions apart, useless to an attacker.
    pub fn short_hex(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Constant-time equality, for comparing digests outside an index lookup.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({}…)", self.short_hex())
    }
}

/// SHA-256 of arbitrary token text.
pub fn digest(text: &str) -> TokenDigest {
    TokenDigest(Sha256::digest(text.as_bytes()).into())
}

/// A `VZ-M2M-Token`: 128 random bits, as a lowercase GUID.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

/// Why header text is not a session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionTokenError {
    /// Not the 8-4-4-4-12 GUID form.
    #[error("session token is not a GUID")]
    NotAGuid,
}

impl SessionToken {
    /// A fresh token. All 128 bits are random (not a v4 UUID, which fixes 6 of them).
    pub fn generate(rng: &dyn super::Randomness) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes);
        Self(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
    }

    /// Parses header text: the 8-4-4-4-12 form only, in any case, canonicalised to lowercase.
    pub fn parse(text: &str) -> Result<Self, SessionTokenError> {
        if text.len() != 36 {
            return Err(SessionTokenError::NotAGuid);
        }
        let uuid = uuid::Uuid::try_parse(text).map_err(|_| SessionTokenError::NotAGuid)?;
        Ok(Self(uuid.hyphenated().to_string()))
    }

    /// The token text, to be sent to its owner and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps and looks up instead of the token.
    pub fn digest(&self) -> TokenDigest {
        digest(&self.0)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_lowercase_guids_and_distinct() {
        let a = SessionToken::generate(&crate::crypto::OsRandomness);
        let b = SessionToken::generate(&crate::crypto::OsRandomness);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 36);
        assert_eq!(a.expose(), a.expose().to_lowercase());
        assert_eq!(SessionToken::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn parsing_is_case_insensitive_and_strict_about_shape() {
        let t = SessionToken::parse("BCCE3EA6-FE4F-4952-BACF-EADD80718E83").unwrap();
        assert_eq!(t.expose(), "bcce3ea6-fe4f-4952-bacf-eadd80718e83");
        for bad in [
            "",
            "not-a-guid",
            "bcce3ea6fe4f4952bacfeadd80718e83",
            "{bcce3ea6-fe4f-4952-bacf-eadd80718e83}",
            "bcce3ea6-fe4f-4952-bacf-eadd80718e8g",
        ] {
            assert_eq!(
                SessionToken::parse(bad),
                Err(SessionTokenError::NotAGuid),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let t = SessionToken::generate(&crate::crypto::OsRandomness);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert!(!format!("{:?}", t.digest()).contains(&hex::encode(t.digest().0)));
    }
}
