//! The `errorCode`s of the contract: every one this system emits, and how to match one from any
//! service by its stable part.

use std::fmt;

/// The service part of every code; clients match on what follows it, which is stable.
pub const SERVICE_PREFIX: &str = "UnifiedWebService.";

/// Every `errorCode` this system emits, documented by the platform or decided in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `REQUEST_FAILED.SessionToken.Expired` (400): the session token is not a live session of
    /// this client (idle too long, logged out, revoked, never issued): log in again.
    SessionTokenExpired,
    /// `REQUEST_FAILED.SessionToken.Format` (400): the `VZ-M2M-Token` header is missing.
    SessionTokenFormat,
    /// `INPUT_INVALID.SessionToken.Invalid` (400): the `VZ-M2M-Token` header is not a GUID.
    SessionTokenInvalid,
    /// `INPUT_INVALID.RequestUndefined` (400): the body is empty (or whitespace, or JSON
    /// `null`) where one is required.
    RequestUndefined,
    /// `INPUT_INVALID.DeserializationFailed` (400, or 408 when the body is too slow): the
    /// body is not a JSON object, or did not arrive whole.
    DeserializationFailed,
    /// `REQUEST_FAILED.UnexpectedError`: a required field is missing, `null` or not a string
    /// (400), or a fault of the server (500).
    UnexpectedError,
    /// `INPUT_INVALID.Request.InvalidCharacter` (400): `'`, `<` or `\` in a login's username.
    InvalidCharacter,
    /// `REQUEST_FAILED.Login.InvalidCredentials` (400): wrong username or password, one code for
    /// both.
    InvalidCredentials,
    /// `REQUEST_FAILED.Login.Locked` (400): the username is locked after too many failures.
    Locked,
    /// `REQUEST_FAILED.Password.OldPasswordMismatch` (400): a reset with a wrong `oldPassword`.
    OldPasswordMismatch,
    /// `REQUEST_FAILED.Throttled` (429): too many failed logins from this client address;
    /// `Retry-After` says when to come back.
    Throttled,
    /// `REQUEST_FAILED.IdempotencyKey.Expired` (409): the stored answer for this
    /// `Idempotency-Key` is gone.
    IdempotencyKeyExpired,
    /// `INPUT_INVALID.IdempotencyKey.Mismatch` (422): the `Idempotency-Key` was used with another
    /// body or session.
    IdempotencyKeyMismatch,
    /// `REQUEST_FAILED.IdempotencyKey.InProgress` (409): a reset with this `Idempotency-Key` is
    /// still running; repeat it with the same key.
    IdempotencyKeyInProgress,
    /// `INPUT_INVALID.IdempotencyKey.Invalid` (400): the `Idempotency-Key` is not 1 to 255
    /// printable ASCII characters.
    IdempotencyKeyInvalid,
    /// `REQUEST_FAILED.NotFound` (404): unknown path.
    NotFound,
    /// `REQUEST_FAILED.MethodNotAllowed` (405): known path, wrong method.
    MethodNotAllowed,
    /// `INPUT_INVALID.PayloadTooLarge` (413): the body is too large.
    PayloadTooLarge,
    /// `INPUT_INVALID.UnsupportedMediaType` (415): a body whose `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// `REQUEST_FAILED.ServiceUnavailable` (503): the service is overloaded, draining or cannot
    /// reach its store; `Retry-After` says when to come back.
    ServiceUnavailable,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 20] = [
        Self::SessionTokenExpired,
        Self::SessionTokenFormat,
        Self::SessionTokenInvalid,
        Self::RequestUndefined,
        Self::DeserializationFailed,
        Self::UnexpectedError,
        Self::InvalidCharacter,
        Self::InvalidCredentials,
        Self::Locked,
        Self::OldPasswordMismatch,
        Self::Throttled,
        Self::IdempotencyKeyExpired,
        Self::IdempotencyKeyMismatch,
        Self::IdempotencyKeyInProgress,
        Self::IdempotencyKeyInvalid,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ServiceUnavailable,
    ];

    /// The full code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SessionTokenExpired => "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
            Self::SessionTokenFormat => "UnifiedWebService.REQUEST_FAILED.SessionToken.Format",
            Self::SessionTokenInvalid => "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid",
            Self::RequestUndefined => "UnifiedWebService.INPUT_INVALID.RequestUndefined",
            Self::DeserializationFailed => "UnifiedWebService.INPUT_INVALID.DeserializationFailed",
            Self::UnexpectedError => "UnifiedWebService.REQUEST_FAILED.UnexpectedError",
            Self::InvalidCharacter => "UnifiedWebService.INPUT_INVALID.Request.InvalidCharacter",
            Self::InvalidCredentials => "UnifiedWebService.REQUEST_FAILED.Login.InvalidCredentials",
            Self::Locked => "UnifiedWebService.REQUEST_FAILED.Login.Locked",
            Self::OldPasswordMismatch => {
                "UnifiedWebService.REQUEST_FAILED.Password.OldPasswordMismatch"
            }
            Self::Throttled => "UnifiedWebService.REQUEST_FAILED.Throttled",
            Self::IdempotencyKeyExpired => {
                "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.Expired"
            }
            Self::IdempotencyKeyMismatch => {
                "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Mismatch"
            }
            Self::IdempotencyKeyInProgress => {
                "UnifiedWebService.REQUEST_FAILED.IdempotencyKey.InProgress"
            }
            Self::IdempotencyKeyInvalid => "UnifiedWebService.INPUT_INVALID.IdempotencyKey.Invalid",
            Self::NotFound => "UnifiedWebService.REQUEST_FAILED.NotFound",
            Self::MethodNotAllowed => "UnifiedWebService.REQUEST_FAILED.MethodNotAllowed",
            Self::PayloadTooLarge => "UnifiedWebService.INPUT_INVALID.PayloadTooLarge",
            Self::UnsupportedMediaType => "UnifiedWebService.INPUT_INVALID.UnsupportedMediaType",
            Self::ServiceUnavailable => "UnifiedWebService.REQUEST_FAILED.ServiceUnavailable",
        }
    }

    /// The stable part after the service name, e.g. `REQUEST_FAILED.SessionToken.Expired`.
    pub fn stable_part(self) -> &'static str {
        stable_part(self.as_str())
    }

    /// Recognises a code from any service by its stable part.
    pub fn from_code(code: &str) -> Option<Self> {
        let wanted = stable_part(code);
        Self::ALL.into_iter().find(|c| c.stable_part() == wanted)
    }
}

/// Strips the service name (everything up to the first dot) from a code.
pub fn stable_part(code: &str) -> &str {
    code.split_once('.').map_or(code, |(_, rest)| rest)
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_service_prefix_and_round_trips() {
        for code in ErrorCode::ALL {
            assert!(code.as_str().starts_with(SERVICE_PREFIX));
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(code));
        }
    }

    #[test]
    fn matching_ignores_the_service_name() {
        assert_eq!(
            ErrorCode::from_code("OtherService.REQUEST_FAILED.SessionToken.Expired"),
            Some(ErrorCode::SessionTokenExpired)
        );
        assert_eq!(ErrorCode::from_code("Nope"), None);
    }
}
