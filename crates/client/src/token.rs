use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A `VZ-M2M-Token` session token.
///
/// Kept as a secret: `Debug` never shows it (and there is no `Display`). Get it from a login's
/// answer with [`ApiResponse::session_token`](crate::ApiResponse::session_token), or let
/// [`crate::Session`] handle it.
///
/// ```
/// use m2m_session_client::SessionToken;
/// let token = SessionToken::new("bcce3ea6-fe4f-4952-bacf-eadd80718e83");
/// assert_eq!(token.expose_secret(), "bcce3ea6-fe4f-4952-bacf-eadd80718e83");
/// assert!(!format!("{token:?}").contains("bcce3ea6"));
/// ```
#[derive(Clone)]
pub struct SessionToken(SecretString);

impl SessionToken {
    /// Wraps token text, e.g. one kept from an earlier run.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token text, for the `VZ-M2M-Token` header of your other ThingSpace calls.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret()
            .eq_ignore_ascii_case(other.expose_secret())
    }
}

impl Eq for SessionToken {}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}
