use super::DomainError;

/// Characters the platform refuses in a username (`INPUT_INVALID.Request.InvalidCharacter`).
pub const USERNAME_FORBIDDEN_CHARS: [char; 3] = ['\'', '<', '\\'];

/// Longest username accepted by `user add`; logins with longer names simply fail.
pub const MAX_USERNAME_LEN: usize = 256;

/// Checks a username for `user add`: not blank, not too long, none of the forbidden characters.
pub fn validate_username(username: &str) -> Result<(), DomainError> {
    if username.trim().is_empty() {
        return Err(DomainError::InvalidInput(
            "username must not be empty".into(),
        ));
    }
    if username.len() > MAX_USERNAME_LEN {
        return Err(DomainError::InvalidInput(format!(
            "username must be at most {MAX_USERNAME_LEN} bytes"
        )));
    }
    if username
        .chars()
        .any(|c| USERNAME_FORBIDDEN_CHARS.contains(&c) || c.is_control())
    {
        return Err(DomainError::InvalidInput(
            "username must not contain ', <, \\ or control characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("zbeeblebrox").is_ok());
        assert!(validate_username("a.b@example.com").is_ok());
        for bad in ["", "  ", "o'brien", "a<b", "a\\b", "tab\there"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_username(&"x".repeat(257)).is_err());
    }
}
