//! What an administrator may set as a password (NIST 800-63B §3.1.1.2): length, and not one of
//! the most common passwords. No composition rules.

use std::collections::HashSet;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::DomainError;

/// Shorter passwords are refused.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Below this a password is accepted with a warning.
pub const RECOMMENDED_PASSWORD_LEN: usize = 15;
/// Longer passwords are refused: argon2's cost should not be the caller's to choose.
pub const MAX_PASSWORD_LEN: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Refuses a password outside the rules; returns warnings for one that is allowed but weak.
pub fn check_password(password: &SecretString) -> Result<Vec<String>, DomainError> {
    let text = password.expose_secret();
    let len = text.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(DomainError::InvalidInput(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(DomainError::InvalidInput(format!(
            "password must have at most {MAX_PASSWORD_LEN} characters"
        )));
    }
    if COMMON.contains(text.to_lowercase().as_str()) {
        return Err(DomainError::InvalidInput(
            "password is one of the most common passwords; choose another".into(),
        ));
    }
    let mut warnings = Vec::new();
    if len < RECOMMENDED_PASSWORD_LEN {
        warnings.push(format!(
            "password has fewer than {RECOMMENDED_PASSWORD_LEN} characters; a longer one is safer"
        ));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str) -> Result<Vec<String>, DomainError> {
        check_password(&SecretString::from(p))
    }

    #[test]
    fn length_and_common_passwords() {
        assert!(COMMON.len() >= 4_000, "the shipped list is loaded");
        assert!(check("short").is_err());
        assert!(check(&"x".repeat(129)).is_err());
        assert!(check("password1").is_err());
        assert!(check("PassWord1").is_err(), "case does not help");
        assert!(check("qwertyuiop").is_err());
        assert_eq!(
            check("a very long passphrase indeed").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            check("Zq8!vLm2#t").unwrap().len(),
            1,
            "short but allowed: warned"
        );
        assert!(
            check(&"é".repeat(8)).is_ok(),
            "length counts characters, not bytes"
        );
    }
}
